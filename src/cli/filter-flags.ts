/**
 * The leaf filters of `dump tables --format ranges` and `dump map` (src/core/leaf-filter.ts): --perm,
 * --exec, --mem, --range, --level, combined with AND.
 */
import {Flags} from '@oclif/core'

import {HvmemError} from '../core/errors.js'
import {type LeafFilter, parsePerm} from '../core/leaf-filter.js'
import {hex} from '../core/u64.js'
import {intFlag} from './flags.js'
import {parseU64, quote} from './numbers.js'

/** A range of input addresses, START..END (END exclusive). */
export const rangeFlag = Flags.custom<{start: bigint; end: bigint}>({
  parse: async (input, _context, options) => parseRange(input, `--${options.name}`),
})

export function parseRange(text: string, what: string): {start: bigint; end: bigint} {
  const parts = text.split('..')
  if (parts.length !== 2) throw new HvmemError('input', `${what}: ${quote(text)} is not a range START..END (e.g. 0x4000_0000..0x8000_0000, END exclusive)`)
  const start = parseU64(parts[0]!, `${what} start`)
  const end = parseU64(parts[1]!, `${what} end`)
  if (end <= start) throw new HvmemError('input', `${what}: the end ${hex(end)} must be above the start ${hex(start)}`)
  return {start, end}
}

export const filterFlags = {
  perm: Flags.string({summary: "Only leaves that allow these accesses: one or more of r, w, x (at the regime's EL; EL1 for --regime el1).", helpGroup: 'FILTERS'}),
  exec: Flags.boolean({summary: 'Only executable leaves (--no-exec: only execute-never ones).', allowNo: true, helpGroup: 'FILTERS'}),
  mem: Flags.option({options: ['device', 'normal'] as const, summary: 'Only Device or only Normal memory.', helpGroup: 'FILTERS'})(),
  range: rangeFlag({summary: 'Only input addresses in START..END (END exclusive); ranges are cut to it.', helpGroup: 'FILTERS'}),
  level: intFlag(0, 3)({summary: 'Only leaves at this level (0..3).', helpGroup: 'FILTERS'}),
}

export function leafFilter(flags: {perm?: string; exec?: boolean; mem?: 'device' | 'normal'; range?: {start: bigint; end: bigint}; level?: number}): LeafFilter {
  return {
    ...(flags.perm === undefined ? {} : {perm: parsePerm(flags.perm)}),
    ...(flags.exec === undefined ? {} : {exec: flags.exec}),
    ...(flags.mem === undefined ? {} : {mem: flags.mem}),
    ...(flags.range === undefined ? {} : {range: flags.range}),
    ...(flags.level === undefined ? {} : {level: flags.level}),
  }
}
