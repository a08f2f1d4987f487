import {Flags} from '@oclif/core'

import {intFlag, textArg, u64Flag} from '../../cli/flags.js'
import {type Parsed, ReadCommand} from '../../cli/machine-command.js'
import {parseHexBytes, parseU64} from '../../cli/numbers.js'
import {el1Target, namesTables, walkFlags, walkTarget, withRecordedRegisters} from '../../cli/walk.js'
import {walkEl1Range} from '../../core/el1.js'
import {HvmemError} from '../../core/errors.js'
import type {Machine} from '../../core/machine.js'
import {type MappedRange, OutputIndex, checkPattern, searchMemory, u64Bytes} from '../../core/search.js'
import {hex} from '../../core/u64.js'
import {mergeRanges, peekingAccess, walkRanges} from '../../core/walker.js'

export interface MemSearchHitJson {
  address: string
  /** with --through-tables: the input addresses (IPA or VA) that map the hit's first byte, ascending */
  inputs?: string[]
}

export interface MemSearchJson {
  /** the bytes searched for, as lowercase hex in memory order */
  pattern: string
  from: string
  to: string
  hits: MemSearchHitJson[]
  /** true when --limit stopped the search: there may be more hits */
  truncated: boolean
  /** with --through-tables: the regime whose input addresses are given */
  regime?: string
}

const args = {
  pattern: textArg({description: 'The bytes to find: hex (default), text (--string) or a 64-bit value (--u64).', required: true}),
}

const flags = {
  string: Flags.boolean({summary: 'PATTERN is text, searched for as UTF-8 bytes.', exclusive: ['u64']}),
  u64: Flags.boolean({summary: 'PATTERN is a 64-bit number, searched for as 8 little-endian bytes.'}),
  from: u64Flag({summary: 'First physical address to search (default: RAM start).'}),
  to: u64Flag({summary: 'End of the search, exclusive (default: RAM end).'}),
  limit: intFlag(1, 1_000_000)({summary: 'Most hits to report.', default: 1000}),
  'through-tables': Flags.boolean({summary: 'Give the input addresses that map each hit, through the tables.'}),
  ...walkFlags,
}
type Input = Parsed<typeof flags, typeof args>

/** The bytes PATTERN names (hex, --string or --u64). */
function patternOf({args, flags}: Input): Uint8Array {
  return flags.string ? new TextEncoder().encode(args.pattern) : flags.u64 ? u64Bytes(parseU64(args.pattern, 'PATTERN')) : parseHexBytes(args.pattern)
}

export default class MemSearch extends ReadCommand<Input, MemSearchJson> {
  static override summary = 'Find a byte pattern in emulated physical memory and, with --through-tables, the input addresses that map each hit.'
  static override description = `PATTERN is hex bytes in memory order ("deadbeef", "de ad be ef"), or with --string UTF-8 text, or with --u64 a 64-bit value as it lies in memory (little-endian: a descriptor, a pointer). Only memory that was written is read, page by page, so a search of all RAM takes as long as the snapshot's stored pages; a hit across a page boundary is found. A pattern of zero bytes alone is refused (all untouched memory matches it).

--through-tables also walks the tables (the mapper's, or those --root, --regime, --vtcr, --tcr or --regime el1 with --ttbr0/--ttbr1 and --tcr describe, or a captured snapshot's recorded registers, as for "dump map" and "dump tables") and gives, for each hit, every input address whose translation is the hit's first byte: IPAs for stage 2, VAs for stage 1 (aliases all listed; none: not mapped).`
  static override examples = [
    '<%= config.bin %> mem search deadbeef',
    '<%= config.bin %> mem search --u64 0x400000409007c7 --through-tables',
    '<%= config.bin %> mem search --string "Linux version" --through-tables --ttbr1 0x4200_0000 --tcr 0x2_8019_0019',
  ]

  static override args = args
  static override flags = flags

  protected override check(input: Input): void {
    checkPattern(patternOf(input))
  }

  protected report(machine: Machine, given: Input): MemSearchJson {
    const {flags} = given
    const pattern = patternOf(given)
    const memory = machine.memory
    const from = flags.from ?? memory.base
    const to = flags.to ?? memory.end
    if (to <= from) throw new HvmemError('input', `--to ${hex(to)} must be above --from ${hex(from)}`)
    if (from < memory.base || to > memory.end) throw new HvmemError('input', `${hex(from)}-${hex(to)} is not inside RAM ${hex(memory.base)}-${hex(memory.end)}`)
    if (namesTables(flags) && !flags['through-tables'])
      throw new HvmemError('input', 'the table options (--root, --regime, --ttbr0, ...) say which tables --through-tables walks; pass --through-tables too')

    let index: OutputIndex | undefined
    let regime: string | undefined
    if (flags['through-tables']) {
      // a captured snapshot's recorded registers name its tables, as for dump map and translate
      const walk = withRecordedRegisters(machine, flags)
      const el1 = el1Target(walk)
      let ranges: MappedRange[]
      if (el1 !== undefined) {
        regime = 'el1'
        ranges = mergeRanges([...walkEl1Range(memory, el1.lower), ...walkEl1Range(memory, el1.upper)])
      } else {
        const target = walkTarget(machine, walk, true)
        regime = target.regimeName
        ranges = walkRanges(memory, target.regime, target.root, target.geometry, peekingAccess(memory)).ranges
      }
      index = new OutputIndex(ranges)
    }
    const input = regime === 'stage2' ? 'IPA' : 'VA'

    const hits: MemSearchHitJson[] = []
    let truncated = false
    for (const at of searchMemory(memory, pattern, from, to)) {
      if (hits.length === flags.limit) {
        truncated = true
        break
      }
      const inputs = index?.inputsOf(at)
      hits.push({address: hex(at), ...(inputs === undefined ? {} : {inputs: inputs.map((i) => hex(i))})})
      if (inputs === undefined) this.log(hex(at))
      else this.log(`${hex(at)}  ${inputs.length === 0 ? 'not mapped' : `${input} ${inputs.map((i) => hex(i)).join(', ')}`}`)
    }
    const bytes = Buffer.from(pattern).toString('hex')
    this.log(`${hits.length} hit(s) of ${pattern.length} byte(s) ${bytes} in ${hex(from)}-${hex(to)}${truncated ? ` (stopped at --limit ${flags.limit}; there are more)` : ''}`)
    return {pattern: bytes, from: hex(from), to: hex(to), hits, truncated, ...(regime === undefined ? {} : {regime})}
  }
}
