import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {type CountsJson, describeCounts, editJson, editLines, total} from '../../cli/edit.js'
import {intFlag, u64Arg, u64Flag} from '../../cli/flags.js'
import {type MapperJson, mapperJson, registerLine} from '../../cli/json.js'
import {color} from '../../cli/style.js'
import {GRANULARITIES, type Granularity, MAX_L2_BUDGET} from '../../core/mapper.js'
import {MAX_VMID} from '../../core/registers.js'
import {ATTRS, type Attr, REGIME_NAMES, type RegimeName} from '../../core/descriptor.js'
import {formatSize, hex} from '../../core/u64.js'
import {updateSnapshot} from '../../snapshot/store.js'

export interface MapRegionJson {
  mapped: {ipa: string; end: string; size: number; pa: string; attr: Attr; descriptor: string}
  /** leaf descriptors covering the range: written + unchanged */
  blocks: number
  written: number
  unchanged: number
  leaves: {written: CountsJson; unchanged: CountsJson}
  splits: number
  newTables: string[]
  orphanedTables: number
  mapperCreated: boolean
  mapper: MapperJson
}

export default class MapRegion extends HvmemCommand {
  static override summary = 'Map [IPA, IPA+SIZE) in the translation tables, identity or to --pa, with the largest descriptors that fit.'
  static override description = `Creates the mapper (its L1 table, from the heap) on first use; --regime, --vmid and --l2-budget apply then. Any 4 KiB-aligned range maps: hvmem uses 1 GiB blocks (L1), 2 MiB blocks (L2) and 4 KiB pages (L3) as the alignment of IPA and PA allows, smaller ones at the edges; --granularity caps the size (2M gives the sprint plan's 2 MiB blocks). L2 tables count against the budget; L3 tables only need heap. The range must end inside the 39-bit input space and its output inside the 40-bit physical space.

An existing mapping with other output or attributes is refused (exit 6), naming it, unless --replace; mapping a range again as it is changes nothing. All or nothing: a conflict, the budget (exit 7) or the heap (exit 5) fails the whole command and the snapshot is unchanged.

Attributes, stage 2 (the default; KVM-compatible; block at P): normal = P | 0x7fd (Normal WB, RW, executable), device = P | 0x0040_0000_0000_07c5 (Device-nGnRE, RW, execute-never), readonly = P | 0x77d (Normal WB, RO, executable); pages have bit 1 set as well (0x7ff ...).

With --regime stage1 the tables are the hypervisor's own (EL2, TTBR0_EL2, MAIR_EL2 0x0004ff00) and the attributes are the sprint plan's stage-1 numbers: normal = P | 0x405 (AttrIndx 1 Normal WB, RW), device = P | 0x409 (AttrIndx 2 Device-nGnRE, RW), readonly = P | 0x485 (AttrIndx 1, AP[2] read-only).`
  static override examples = [
    '<%= config.bin %> map region 0x4000_0000 1G',
    '<%= config.bin %> map region 0x0900_0000 4K --attr device',
    '<%= config.bin %> map region 0x8000_0000 64M --pa 0x4800_0000',
    '<%= config.bin %> map region 0x4000_0000 1G --granularity 2M --vmid 5 --l2-budget 8',
    '<%= config.bin %> map region 0x4000_0000 1G --regime stage1',
  ]

  static override args = {
    ipa: u64Arg({description: 'First input address (4 KiB aligned).', required: true}),
    size: u64Arg({description: 'Bytes to map (a multiple of 4 KiB).', required: true}),
  }

  static override flags = {
    attr: Flags.option({options: ATTRS, summary: 'Memory attributes.', default: 'normal' as Attr})(),
    pa: u64Flag({summary: 'Output address of IPA (default: IPA, an identity map).'}),
    granularity: Flags.option({options: GRANULARITIES, summary: 'Largest descriptor to use.', default: '1G' as Granularity})(),
    replace: Flags.boolean({summary: 'Overwrite existing mappings in the range.', default: false}),
    regime: Flags.option({options: REGIME_NAMES, summary: 'Translation regime (when the mapper is created; default stage2).'})(),
    vmid: intFlag(0, MAX_VMID)({summary: 'VMID for VTTBR_EL2 (stage 2, when the mapper is created; default 0).'}),
    'l2-budget': intFlag(1, MAX_L2_BUDGET)({summary: 'Most L2 tables the mapper may allocate (when it is created; default 4).'}),
  }

  async run(): Promise<MapRegionJson> {
    const {args, flags} = await this.parse(MapRegion)
    const {result, created, mapper, registers} = await updateSnapshot(flags.snapshot, (machine) => {
      const {mapper, created} = machine.ensureMapper({regime: flags.regime as RegimeName | undefined, vmid: flags.vmid, l2Budget: flags['l2-budget']})
      const result = mapper.mapRegion(args.ipa, args.size, flags.attr, {pa: flags.pa, granularity: flags.granularity, replace: flags.replace})
      return {result, created, mapper: mapperJson(mapper), registers: registerLine(mapper)}
    })
    const end = result.ipa + result.size
    const target = result.pa === result.ipa ? '' : ` -> ${hex(result.pa)}`
    if (created) this.log(`Created the ${mapper.regime} mapper: L1 table at ${mapper.root}${mapper.regime === 'stage2' ? `, VMID ${mapper.vmid}` : ''}, L2 budget ${mapper.l2Budget}`)
    this.log(
      `Mapped ${color.bold(`${hex(result.ipa)}-${hex(end)}`)}${target} (${formatSize(result.size)}) ${result.attr}: ${describeCounts(result.written)} written, ${describeCounts(result.unchanged)} already so; descriptor at ${hex(result.ipa)} ${hex(result.descriptor)}`,
    )
    for (const line of editLines(result)) this.log(line)
    this.log(registers)
    const json = editJson(result)
    return {
      mapped: {ipa: hex(result.ipa), end: hex(end), size: Number(result.size), pa: hex(result.pa), attr: result.attr, descriptor: hex(result.descriptor)},
      blocks: total(result.written) + total(result.unchanged),
      written: total(result.written),
      unchanged: total(result.unchanged),
      leaves: {written: json.written, unchanged: json.unchanged},
      splits: result.splits,
      newTables: json.newTables,
      orphanedTables: result.orphanedTables,
      mapperCreated: created,
      mapper,
    }
  }
}
