import {Flags} from '@oclif/core'

import {type Edited, LISTED_TABLES, edited} from '../../cli/edit.js'
import type {MapperJson} from '../../cli/json.js'
import {MachineCommand, type Parsed} from '../../cli/machine-command.js'
import {requireMapper} from '../../cli/mapper.js'
import type {Machine} from '../../core/machine.js'
import type {CoalesceResult} from '../../core/mapper.js'
import {formatSize, hex} from '../../core/u64.js'

export interface CoalesceJson {
  /** how many tables were folded into blocks, and the input range [start, end) those blocks span (null when none) */
  folded: {count: number; start: string | null; end: string | null}
  /** with --verbose: each block that replaced a table, in input-address order */
  blocks?: Array<{ipa: string; end: string; level: number; size: number; descriptor: string}>
  orphanedTables: number
  orphanedBytes: number
  mapper: MapperJson
}

const flags = {
  verbose: Flags.boolean({char: 'v', default: false, summary: 'List every block a table was folded into (text and --json); by default they are counted and their range given.'}),
}
type Input = Parsed<typeof flags>

export default class MapCoalesce extends MachineCommand<Input, Edited<CoalesceResult>, CoalesceJson> {
  static override summary = "Fold every table whose entries are uniform, contiguous leaves back into one block (Hafnium's defrag)."
  static override description = `A table qualifies when all 512 entries are valid leaves with identical attributes and physically contiguous output, aligned to the block it becomes: an L3 table of pages becomes a 2 MiB block, then an L2 table of blocks a 1 GiB block. The bump allocator cannot free the folded tables: their bytes are reported here and in "heap status".`
  static override examples = ['<%= config.bin %> map coalesce', '<%= config.bin %> map coalesce --json']

  static override flags = flags
  protected readonly changes = true

  protected work(machine: Machine): Edited<CoalesceResult> {
    const mapper = requireMapper(machine)
    return edited(mapper, mapper.coalesce())
  }

  protected report({result, mapper, geometry}: Edited<CoalesceResult>, {flags}: Input): CoalesceJson {
    const blockEnd = (b: {ipa: bigint; level: number}): bigint => b.ipa + geometry.entrySize(b.level)
    let start: bigint | undefined
    let end: bigint | undefined
    for (const b of result.blocks) {
      if (start === undefined || b.ipa < start) start = b.ipa
      if (end === undefined || blockEnd(b) > end) end = blockEnd(b)
    }
    if (flags.verbose || result.blocks.length <= LISTED_TABLES) {
      for (const b of result.blocks) this.log(`Folded ${hex(b.ipa)}-${hex(blockEnd(b))} into one ${formatSize(geometry.entrySize(b.level))} L${b.level} block ${hex(b.descriptor)}`)
    } else {
      const levels = [...new Set(result.blocks.map((b) => b.level))].sort((a, b) => b - a)
      const byLevel = levels.map((level) => `${result.blocks.filter((b) => b.level === level).length}x ${formatSize(geometry.entrySize(level))} L${level}`).join(', ')
      this.log(`Folded ${result.blocks.length} table(s) into blocks (${byLevel}) in ${hex(start!)}-${hex(end!)} (--verbose lists them)`)
    }
    const bytes = result.orphanedTables * geometry.granule
    this.log(result.blocks.length === 0 ? 'Nothing to coalesce.' : `${result.orphanedTables} table page(s) (${formatSize(BigInt(bytes))}) are now unreachable; the bump allocator cannot free them`)
    return {
      folded: {count: result.blocks.length, start: start === undefined ? null : hex(start), end: end === undefined ? null : hex(end)},
      ...(flags.verbose
        ? {
            blocks: result.blocks.map((b) => ({
              ipa: hex(b.ipa),
              end: hex(b.ipa + geometry.entrySize(b.level)),
              level: b.level,
              size: Number(geometry.entrySize(b.level)),
              descriptor: hex(b.descriptor),
            })),
          }
        : {}),
      orphanedTables: result.orphanedTables,
      orphanedBytes: bytes,
      mapper,
    }
  }
}
