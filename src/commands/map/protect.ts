import {Flags} from '@oclif/core'

import {describeCounts, type EditJson, type Edited, editJson, editLines, edited, verboseFlag} from '../../cli/edit.js'
import {u64Arg} from '../../cli/flags.js'
import type {MapperJson} from '../../cli/json.js'
import {MachineCommand, type Parsed} from '../../cli/machine-command.js'
import {requireMapper} from '../../cli/mapper.js'
import {ATTRS, type Attr} from '../../core/descriptor.js'
import {HvmemError} from '../../core/errors.js'
import type {Machine} from '../../core/machine.js'
import {type EditResult, PERMISSIONS, type Permission, type Protection} from '../../core/mapper.js'
import {formatSize, hex} from '../../core/u64.js'

export interface ProtectJson extends EditJson {
  mapper: MapperJson
}

const args = {
  ipa: u64Arg({description: 'First input address (4 KiB aligned).', required: true}),
  size: u64Arg({description: 'Bytes to change (a multiple of 4 KiB).', required: true}),
}
const flags = {
  attr: Flags.option({options: ATTRS, summary: 'New attributes.', exclusive: ['perm']})(),
  perm: Flags.option({options: PERMISSIONS, summary: 'New permissions, keeping the memory type.', exclusive: ['attr']})(),
  verbose: verboseFlag,
}
type Input = Parsed<typeof flags, typeof args>

/** What --attr or --perm asks for. */
function protectionOf({flags}: Input): Protection {
  return flags.attr === undefined ? {perm: flags.perm as Permission} : {attr: flags.attr as Attr}
}

export default class MapProtect extends MachineCommand<Input, Edited<EditResult>, ProtectJson> {
  static override summary = 'Change the attributes (--attr) or the permissions (--perm) of every mapping in [IPA, IPA+SIZE).'
  static override description = `--attr replaces all attribute bits with those of normal, device or readonly. --perm r|rw|rx|rwx changes only read/write and execute (stage 2: S2AP and XN; stage 1: AP[2] and XN) and keeps the memory type. A block that the range covers in part is split first, keeping the rest exactly as it was. The whole range must be mapped (exit 2 otherwise). All or nothing.`
  static override examples = [
    '<%= config.bin %> map protect 0x4000_0000 2M --perm r',
    '<%= config.bin %> map protect 0x4020_0000 4K --attr device',
    '<%= config.bin %> map protect 0x4000_0000 1G --perm rwx',
  ]

  static override args = args
  static override flags = flags
  protected readonly changes = true

  protected override check({flags}: Input): void {
    if (flags.attr === undefined && flags.perm === undefined) throw new HvmemError('input', 'say what to change: --attr normal|device|readonly or --perm r|rw|rx|rwx')
  }

  protected work(machine: Machine, input: Input): Edited<EditResult> {
    const mapper = requireMapper(machine)
    return edited(mapper, mapper.protect(input.args.ipa, input.args.size, protectionOf(input)))
  }

  protected report({result, mapper, geometry}: Edited<EditResult>, input: Input): ProtectJson {
    const {args, flags} = input
    const protection = protectionOf(input)
    const what = 'attr' in protection ? `--attr ${protection.attr}` : `--perm ${protection.perm}`
    this.log(
      `Protected ${hex(args.ipa)}-${hex(args.ipa + args.size)} (${formatSize(args.size)}) with ${what}: ${describeCounts(result.written, geometry)} descriptor(s) rewritten, ${describeCounts(result.unchanged, geometry)} already so`,
    )
    for (const line of editLines(result, geometry, flags.verbose)) this.log(line)
    return {...editJson(result, geometry, flags.verbose), mapper}
  }
}
