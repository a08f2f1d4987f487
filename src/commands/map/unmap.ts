import {describeCounts, type EditJson, type Edited, editJson, editLines, edited, verboseFlag} from '../../cli/edit.js'
import {u64Arg} from '../../cli/flags.js'
import type {MapperJson} from '../../cli/json.js'
import {MachineCommand, type Parsed} from '../../cli/machine-command.js'
import {requireMapper} from '../../cli/mapper.js'
import type {Machine} from '../../core/machine.js'
import type {EditResult} from '../../core/mapper.js'
import {formatSize, hex} from '../../core/u64.js'

export interface UnmapJson extends EditJson {
  mapper: MapperJson
}

const args = {
  ipa: u64Arg({description: 'First input address (4 KiB aligned).', required: true}),
  size: u64Arg({description: 'Bytes to unmap (a multiple of 4 KiB).', required: true}),
}
const flags = {
  verbose: verboseFlag,
}
type Input = Parsed<typeof flags, typeof args>

export default class MapUnmap extends MachineCommand<Input, Edited<EditResult>, UnmapJson> {
  static override summary = 'Remove every mapping in [IPA, IPA+SIZE), splitting blocks the range covers only in part.'
  static override description = `A block that the range covers in part is first split into a next-level table that keeps the rest of the block exactly as it was (a 1 GiB block into 2 MiB blocks, a 2 MiB block into pages; an L2 table counts against the budget). Tables the range covers whole are dropped: their pages become unreachable (see "heap status"). Unmapping what is not mapped is not an error. All or nothing.`
  static override examples = ['<%= config.bin %> map unmap 0x4000_0000 2M', '<%= config.bin %> map unmap 0x4010_0000 4K']

  static override args = args
  static override flags = flags
  protected readonly changes = true

  protected work(machine: Machine, {args}: Input): Edited<EditResult> {
    const mapper = requireMapper(machine)
    return edited(mapper, mapper.unmap(args.ipa, args.size))
  }

  protected report({result, mapper, geometry}: Edited<EditResult>, {args, flags}: Input): UnmapJson {
    this.log(`Unmapped ${hex(args.ipa)}-${hex(args.ipa + args.size)} (${formatSize(args.size)}): ${describeCounts(result.cleared, geometry)} leaf descriptor(s) cleared`)
    for (const line of editLines(result, geometry, flags.verbose)) this.log(line)
    return {...editJson(result, geometry, flags.verbose), mapper}
  }
}
