/**
 * Numbers on the command line: decimal, 0x hex, `_` between digits (0x4100_0000), and a binary size
 * suffix K/M/G/T or KiB/MiB/GiB/TiB (16M = 16MiB = 16 * 2^20). Results are exact bigints below 2^64;
 * anything else is an 'input' error naming the flag or argument and the text.
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
  if (text.length <= MAX_QUOTED) return JSON.stringify(text)
  return `${JSON.stringify(text.slice(0, MAX_QUOTED))}... (${text.length} characters)`
}

export function parseU64(text: string, what: string): bigint {
  const trimmed = text.trim()
  if (trimmed.startsWith('-')) throw new HvmemError('input', `${what}: ${quote(text)} is negative; ${what} takes a number >= 0`)
  const match = SYNTAX.exec(trimmed)
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
