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

export function parseU64(text: string, what: string): bigint {
  const trimmed = text.trim()
  if (trimmed.startsWith('-')) throw new HvmemError('input', `${what}: "${text}" is negative; ${what} takes a number >= 0`)
  const match = SYNTAX.exec(trimmed)
  if (match === null) throw new HvmemError('input', `${what}: "${text}" is not a number (${HELP})`)
  const value = BigInt(match[1]!.replaceAll('_', '')) << (match[2] === undefined ? 0n : SUFFIX[match[2]]!)
  if (value > U64_MAX) throw new HvmemError('input', `${what}: "${text}" does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)`)
  return value
}

/** A count or small setting (page count, VMID, budget) as a JS number, within [min, max]. */
export function parseInteger(text: string, what: string, min: number, max: number): number {
  const value = parseU64(text, what)
  if (value < BigInt(min) || value > BigInt(max)) throw new HvmemError('input', `${what}: "${text}" is out of range (${min}..${max})`)
  return Number(value)
}
