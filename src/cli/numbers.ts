/**
 * Numbers on the command line: decimal, 0x hex, `_` between digits (0x4100_0000), and a binary size
 * suffix K/M/G/T or KiB/MiB/GiB/TiB (16M = 16MiB = 16 * 2^20). Results are exact bigints below 2^64;
 * anything else (whitespace anywhere, a backslash, a sign) is an 'input' error naming the flag or
 * argument and the text.
 */
import {HvmemError} from '../core/errors.js'
import {U64_MAX} from '../core/u64.js'

const SUFFIX: Record<string, bigint> = {K: 10n, M: 20n, G: 30n, T: 40n, KiB: 10n, MiB: 20n, GiB: 30n, TiB: 40n}
const SYNTAX = /^(0x[0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|[0-9]+(?:_[0-9]+)*)(K|M|G|T|KiB|MiB|GiB|TiB)?$/
const HELP = 'use decimal, 0x hex, _ between digits, and optionally K/M/G/T or KiB/MiB/GiB/TiB'

/** Digits beyond which a number cannot fit in 64 bits whatever its suffix (leading zeros aside). */
const MAX_DIGITS = {hex: 16, decimal: 20}
/** Longest text quoted whole in an error. */
const MAX_QUOTED = 40

/** The text as it appears in an error: in double quotes, escaped like a JSON string, long text cut short. */
export function quote(text: string): string {
  const [kept, cut] = clip(text)
  return `${visible(JSON.stringify(kept))}${cut}`
}

/** A word (no whitespace in it) longer than twice MAX_QUOTED. */
const LONG_WORD = new RegExp(`\\S{${2 * MAX_QUOTED + 1},}`, 'g')

/**
 * `text` with each LONG_WORD cut as quote() cuts text: for a message made by another (oclif's parse
 * errors repeat what was typed: "Expected --format=VALUE to be one of: ..."), which can be a file's
 * worth of text on one line.
 */
export function shortWords(text: string): string {
  return text.replace(LONG_WORD, (word) => clip(word).join(''))
}

/** `text`'s first MAX_QUOTED characters, and what says the rest was cut ('' if nothing was). */
function clip(text: string): [string, string] {
  return text.length <= MAX_QUOTED ? [text, ''] : [text.slice(0, MAX_QUOTED), `... (${text.length} characters)`]
}

/** Characters that print as nothing or as a plain space (no-break spaces, BOM, zero-width ones): shown escaped, \u00a0. */
const INVISIBLE = /[\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]/g

function visible(json: string): string {
  return json.replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** Whitespace of any kind (space, tab, newline, CR, NBSP, BOM, ...): never part of a number, nor around one. */
const WHITESPACE = /[\s\u0085\u180e\u200b-\u200d\u2060\ufeff]/

export function parseU64(text: string, what: string): bigint {
  if (WHITESPACE.test(text)) throw new HvmemError('input', `${what}: ${quote(text)} has whitespace in it (a space, tab, newline, CR, no-break space or BOM); write the number alone, as 0x4100_0000`)
  if (text.startsWith('-')) throw new HvmemError('input', `${what}: ${quote(text)} is negative; ${what} takes a number >= 0`)
  const match = SYNTAX.exec(text)
  if (match === null) throw new HvmemError('input', `${what}: ${quote(text)} is not a number (${HELP})`)
  const tooLarge = (): never => {
    throw new HvmemError('input', `${what}: ${quote(text)} does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)`)
  }
  const literal = match[1]!.replaceAll('_', '')
  const isHex = literal.startsWith('0x')
  // Bound the digits before BigInt sees them: a huge argument is refused at once, not parsed.
  if ((isHex ? literal.slice(2) : literal).replace(/^0+/, '').length > (isHex ? MAX_DIGITS.hex : MAX_DIGITS.decimal)) tooLarge()
  const value = BigInt(literal) << (match[2] === undefined ? 0n : SUFFIX[match[2]]!)
  if (value > U64_MAX) tooLarge()
  return value
}

/** A count or small setting (page count, VMID, budget) as a JS number, within [min, max]. */
export function parseInteger(text: string, what: string, min: number, max: number): number {
  const value = parseU64(text, what)
  if (value < BigInt(min) || value > BigInt(max)) throw new HvmemError('input', `${what}: ${quote(text)} is out of range (${min}..${max})`)
  return Number(value)
}

/** Parses hex bytes in memory order: "deadbeef", "de ad be ef", "de:ad:be:ef" (an optional 0x is not a number: byte order is as written). */
export function parseHexBytes(text: string): Uint8Array {
  const digits = text.replace(/^0x/i, '').replace(/[\s:_-]/g, '')
  if (digits.length === 0 || !/^[0-9a-fA-F]+$/.test(digits) || digits.length % 2 !== 0) {
    throw new HvmemError('input', `PATTERN: "${text}" is not hex bytes (pairs of hex digits, e.g. "deadbeef" or "de ad be ef"; --string for text, --u64 for a 64-bit value)`)
  }
  return Uint8Array.from(Buffer.from(digits, 'hex'))
}
