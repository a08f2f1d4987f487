import {Args, Flags} from '@oclif/core'

import {hex} from '../core/u64.js'
import {DEFAULT_SNAPSHOT} from '../snapshot/store.js'
import {parseInteger, parseU64} from './numbers.js'
import {COLOR_MODES} from './style.js'

/** A 64-bit number flag (address or size); see numbers.ts for the accepted syntax. */
export const u64Flag = Flags.custom<bigint>({
  parse: async (input, _context, options) => parseU64(input, `--${options.name}`),
  defaultHelp: async ({options}) => helpFor(options.default),
})

/** A small integer flag within [min, max]. */
export function intFlag(min: number, max: number) {
  return Flags.custom<number>({
    parse: async (input, _context, options) => parseInteger(input, `--${options.name}`, min, max),
  })
}

/**
 * A 64-bit number argument, named in errors by its upper-case name (IPA, SIZE, ADDR). Like every
 * hvmem argument it is never read from standard input when missing (oclif would try, for 10 ms,
 * whenever stdin is a pipe: a script's loop input would be taken as the argument).
 */
export const u64Arg = Args.custom<bigint>({
  parse: async (input, _context, options) => parseU64(input, options.name.toUpperCase()),
  defaultHelp: async ({options}) => helpFor(options.default),
  ignoreStdin: true,
})

/** A text argument (a file name); never read from standard input (see u64Arg). */
export const textArg = Args.custom<string>({parse: async (input) => input, ignoreStdin: true})

/** Help (and the oclif manifest, which cannot hold a bigint) shows a 64-bit default as hex. */
function helpFor(value: unknown): string | undefined {
  return typeof value === 'bigint' ? hex(value) : undefined
}

export const snapshotFlag = Flags.string({
  char: 's',
  env: 'HVMEM_SNAPSHOT',
  // oclif takes the variable only when it is non-empty: an empty HVMEM_SNAPSHOT names no file (exit 2,
  // as an empty --snapshot), never a fallback to ./hvmem.snap (which `heap init --force` would overwrite).
  default: async () => (process.env.HVMEM_SNAPSHOT === '' ? '' : DEFAULT_SNAPSHOT),
  defaultHelp: async () => DEFAULT_SNAPSHOT,
  summary: 'Snapshot file to operate on (or set HVMEM_SNAPSHOT).',
  helpGroup: 'GLOBAL',
})

/** --color auto|always|never, on every command (src/cli/style.ts says what auto follows). */
export const colorFlag = Flags.option({
  options: COLOR_MODES,
  default: 'auto' as const,
  summary: 'Colour the output: auto (a terminal, unless NO_COLOR or TERM=dumb; FORCE_COLOR forces), always or never.',
  helpGroup: 'GLOBAL',
})()
