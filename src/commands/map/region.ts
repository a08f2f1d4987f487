import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {intFlag, u64Arg} from '../../cli/flags.js'
import {type MapperJson, mapperJson, registerLine} from '../../cli/json.js'
import {color} from '../../cli/style.js'
import {MAX_L2_BUDGET} from '../../core/mapper.js'
import {MAX_VMID} from '../../core/registers.js'
import {ATTRS, type Attr, REGIME_NAMES, type RegimeName} from '../../core/descriptor.js'
import {formatSize, hex} from '../../core/u64.js'
import {updateSnapshot} from '../../snapshot/store.js'

export interface MapRegionJson {
  mapped: {ipa: string; end: string; size: number; attr: Attr; descriptor: string}
  blocks: number
  written: number
  unchanged: number
  newTables: string[]
  mapperCreated: boolean
  mapper: MapperJson
}

export default class MapRegion extends HvmemCommand {
  static override summary = 'Identity-map [IPA, IPA+SIZE) in the translation tables with 2 MiB blocks.'
  static override description = `Creates the mapper (its L1 table, from the heap) on first use; --regime, --vmid and --l2-budget apply then. L2 tables are allocated from the heap as needed, up to the budget. IPA and SIZE must be 2 MiB multiples inside the 39-bit IPA space. All or nothing: a conflict with an existing mapping (exit 6), the budget (exit 7) or the heap (exit 5) fails the whole command and the snapshot is unchanged. Mapping a range again with the same attributes changes nothing.

Attributes, stage 2 (the default; KVM-compatible; block at P): normal = P | 0x7fd (Normal WB, RW, executable), device = P | 0x0040_0000_0000_07c5 (Device-nGnRE, RW, execute-never), readonly = P | 0x77d (Normal WB, RO, executable).

With --regime stage1 the tables are the hypervisor's own (EL2, TTBR0_EL2, MAIR_EL2 0x0004ff00) and the attributes are the sprint plan's stage-1 numbers: normal = P | 0x405 (AttrIndx 1 Normal WB, RW), device = P | 0x409 (AttrIndx 2 Device-nGnRE, RW), readonly = P | 0x485 (AttrIndx 1, AP[2] read-only).`
  static override examples = [
    '<%= config.bin %> map region 0x4000_0000 1G',
    '<%= config.bin %> map region 0x0900_0000 2M --attr device',
    '<%= config.bin %> map region 0x1000_0000 0x20_0000 --attr readonly --vmid 5 --l2-budget 8',
    '<%= config.bin %> map region 0x4000_0000 1G --regime stage1',
  ]

  static override args = {
    ipa: u64Arg({description: 'First IPA (2 MiB aligned).', required: true}),
    size: u64Arg({description: 'Bytes to map (a multiple of 2 MiB).', required: true}),
  }

  static override flags = {
    attr: Flags.option({options: ATTRS, summary: 'Memory attributes.', default: 'normal' as Attr})(),
    regime: Flags.option({options: REGIME_NAMES, summary: 'Translation regime (when the mapper is created; default stage2).'})(),
    vmid: intFlag(0, MAX_VMID)({summary: 'VMID for VTTBR_EL2 (stage 2, when the mapper is created; default 0).'}),
    'l2-budget': intFlag(1, MAX_L2_BUDGET)({summary: 'Most L2 tables the mapper may allocate (when it is created; default 4).'}),
  }

  async run(): Promise<MapRegionJson> {
    const {args, flags} = await this.parse(MapRegion)
    const {result, created, mapper, registers} = await updateSnapshot(flags.snapshot, (machine) => {
      const {mapper, created} = machine.ensureMapper({regime: flags.regime as RegimeName | undefined, vmid: flags.vmid, l2Budget: flags['l2-budget']})
      return {result: mapper.mapRegion(args.ipa, args.size, flags.attr), created, mapper: mapperJson(mapper), registers: registerLine(mapper)}
    })
    const end = result.ipa + result.size
    if (created) this.log(`Created the ${mapper.regime} mapper: L1 table at ${mapper.root}${mapper.regime === 'stage2' ? `, VMID ${mapper.vmid}` : ''}, L2 budget ${mapper.l2Budget}`)
    this.log(
      `Mapped ${color.bold(`${hex(result.ipa)}-${hex(end)}`)} (${formatSize(result.size)}) ${result.attr}: ${result.blocks} block(s) of 2M, ${result.written} written, ${result.unchanged} already mapped; first descriptor ${hex(result.descriptor)}`,
    )
    if (result.newTables.length > 0) this.log(`New L2 table(s): ${result.newTables.map((t) => hex(t)).join(', ')}`)
    this.log(registers)
    return {
      mapped: {ipa: hex(result.ipa), end: hex(end), size: Number(result.size), attr: result.attr, descriptor: hex(result.descriptor)},
      blocks: result.blocks,
      written: result.written,
      unchanged: result.unchanged,
      newTables: result.newTables.map((t) => hex(t)),
      mapperCreated: created,
      mapper,
    }
  }
}
