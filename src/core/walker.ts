import {ADDRESS_MASK, type Decoded, LEVEL_SHIFT, LEVEL_SIZE, type Regime} from './descriptor.js'
import type {PhysicalMemory} from './memory.js'
import {IPA_BITS, START_LEVEL} from './registers.js'
import {hex} from './u64.js'

/** One valid descriptor found by a walk. */
export interface WalkEntry {
  level: number
  index: number
  /** the table holding the entry */
  table: bigint
  /** the first input address the entry translates, and how many bytes it spans */
  ipa: bigint
  size: bigint
  decoded: Decoded
  /** set when the walk cannot follow a table descriptor (its target is outside RAM) */
  problem?: string
}

export interface WalkOptions {
  startLevel?: number
  ipaBits?: bigint
}

/**
 * Reads a table tree back out of memory, in input-address order, decoding by the regime's rules and listing every valid entry
 * (tables, blocks, pages and reserved encodings). Untouched (all-zero) table pages are skipped
 * without reading them.
 */
export function walkTables(memory: PhysicalMemory, regime: Regime, root: bigint, options: WalkOptions = {}): WalkEntry[] {
  const startLevel = options.startLevel ?? START_LEVEL
  const ipaBits = options.ipaBits ?? IPA_BITS
  const entries: WalkEntry[] = []
  const rootEntries = 1 << Number(ipaBits - LEVEL_SHIFT[startLevel]!)

  const visit = (table: bigint, level: number, base: bigint, count: number): void => {
    if (!memory.hasPage(table)) return
    const size = LEVEL_SIZE[level]!
    for (let index = 0; index < count; index++) {
      const raw = memory.readU64(table + BigInt(8 * index))
      const decoded = regime.decode(raw, level)
      if (decoded.kind === 'invalid') continue
      const ipa = base + BigInt(index) * size
      const entry: WalkEntry = {level, index, table, ipa, size, decoded}
      entries.push(entry)
      if (decoded.kind === 'table') {
        const next = decoded.nextTable!
        if (memory.contains(next, 4096n)) visit(next, level + 1, ipa, 512)
        else entry.problem = `next-level table ${hex(next)} is outside RAM`
      }
    }
  }

  visit(root & ADDRESS_MASK, startLevel, 0n, rootEntries)
  return entries
}

/** A run of leaf entries at one level with the same attributes and contiguous input and output addresses. */
export interface Range {
  start: bigint
  end: bigint
  level: number
  outputStart: bigint
  /** the first entry's decoded descriptor; every entry in the range shares its attributes */
  decoded: Decoded
  entries: number
}

/** Merges neighbouring leaf entries, like Linux's ptdump. */
export function mergeRanges(entries: readonly WalkEntry[]): Range[] {
  const ranges: Range[] = []
  let last: Range | undefined
  for (const e of entries) {
    const leaf = e.decoded.leaf
    if (leaf === undefined) continue
    const attributes = e.decoded.raw & ~ADDRESS_MASK
    if (
      last !== undefined &&
      last.level === e.level &&
      last.end === e.ipa &&
      (last.decoded.raw & ~ADDRESS_MASK) === attributes &&
      last.outputStart + (last.end - last.start) === leaf.outputAddress
    ) {
      last.end += e.size
      last.entries++
      continue
    }
    last = {start: e.ipa, end: e.ipa + e.size, level: e.level, outputStart: leaf.outputAddress, decoded: e.decoded, entries: 1}
    ranges.push(last)
  }
  return ranges
}
