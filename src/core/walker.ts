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
 * Called for each valid descriptor, in input-address order, before the walk descends into the table
 * it points at. Addresses are JS numbers, exact: input addresses lie below 2^48 and table and output
 * addresses are bits 47:12. The 64-bit descriptor is given as two 32-bit halves, `lo` (bits 31:0)
 * and `hi` (bits 63:32), so a scan of many entries makes no bigint until it needs one.
 */
export type Visit = (level: number, index: number, table: number, ipa: number, lo: number, hi: number, tableOutsideRam: boolean) => void

const TWO_32 = 2 ** 32
const PAGE = 4096
/** Bytes one entry at each level maps, as numbers (LEVEL_SIZE). */
const ENTRY_BYTES = [0, 1, 2, 3].map((level) => 2 ** Number(LEVEL_SHIFT[level]!))

/** Bits 47:12 of a descriptor given as halves: a table or output address. */
export const addressOf = (lo: number, hi: number): number => (hi & 0xffff) * TWO_32 + ((lo & 0xfffff000) >>> 0)
/** The descriptor as one exact 64-bit value. */
export const rawOf = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)

/**
 * The walk itself, over numbers (what walkTables and walkRanges are made of, for callers that need
 * no object per entry): reads each table page once, skips invalid entries on bit 0, and descends
 * into next-level tables inside RAM. Untouched (all-zero) table pages are not read. A root of more
 * than 512 entries (a concatenated stage-2 root: up to 16 pages) is one table at `root`, its pages
 * read one by one, so an unwritten first page hides nothing after it.
 */
export function scanTables(memory: PhysicalMemory, root: bigint, options: WalkOptions, visit: Visit): void {
  const startLevel = options.startLevel ?? START_LEVEL
  const ipaBits = options.ipaBits ?? IPA_BITS
  const rootEntries = 1 << Number(ipaBits - LEVEL_SHIFT[startLevel]!)
  const ramBase = Number(memory.base)
  const ramEnd = ramBase + Number(memory.size)
  const exactRam = memory.base + memory.size <= 2n ** 53n

  const insideRam = (table: number): boolean => (exactRam ? table >= ramBase && table + PAGE <= ramEnd : memory.contains(BigInt(table), BigInt(PAGE)))

  /** Walks `count` entries of the page at `page`: entries `first`... of the table at `table`, from input address `base`. */
  const walk = (table: number, level: number, base: number, count: number, page = table, first = 0): void => {
    const bytes = memory.pageOfFrame(page / PAGE)
    if (bytes === undefined) return
    const view = new DataView(bytes.buffer, bytes.byteOffset, PAGE)
    const size = ENTRY_BYTES[level]!
    for (let i = 0; i < count; i++) {
      const lo = view.getUint32(8 * i, true)
      if ((lo & 1) === 0) continue
      const hi = view.getUint32(8 * i + 4, true)
      const ipa = base + i * size
      if (level < 3 && (lo & 2) !== 0) {
        const next = addressOf(lo, hi)
        const inside = insideRam(next)
        visit(level, first + i, table, ipa, lo, hi, !inside)
        if (inside) walk(next, level + 1, ipa, 512)
      } else visit(level, first + i, table, ipa, lo, hi, false)
    }
  }

  const rootTable = Number(root & ADDRESS_MASK)
  for (let first = 0; first < rootEntries; first += 512) {
    walk(rootTable, startLevel, first * ENTRY_BYTES[startLevel]!, Math.min(512, rootEntries - first), rootTable + (first / 512) * PAGE, first)
  }
}

/**
 * Reads a table tree back out of memory, in input-address order, decoding by the regime's rules and listing every valid entry
 * (tables, blocks, pages and reserved encodings). Untouched (all-zero) table pages are skipped
 * without reading them.
 */
export function walkTables(memory: PhysicalMemory, regime: Regime, root: bigint, options: WalkOptions = {}): WalkEntry[] {
  const entries: WalkEntry[] = []
  const sizes = [0, 1, 2, 3].map((level) => LEVEL_SIZE[level]!)
  let tableNumber = -1
  let tableBig = 0n
  scanTables(memory, root, options, (level, index, table, ipa, lo, hi, tableOutsideRam) => {
    if (table !== tableNumber) {
      tableNumber = table
      tableBig = BigInt(table)
    }
    const decoded = regime.decode(rawOf(lo, hi), level)
    const entry: WalkEntry = {level, index, table: tableBig, ipa: BigInt(ipa), size: sizes[level]!, decoded}
    if (tableOutsideRam) entry.problem = `next-level table ${hex(decoded.nextTable!)} is outside RAM`
    entries.push(entry)
  })
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

export interface RangeWalk {
  /** the same as mergeRanges(walkTables(...)) */
  ranges: Range[]
  /** valid entries the walk found (walkTables(...).length) */
  entries: number
  /** of which leaves (blocks and pages) */
  leaves: number
}

/**
 * The ranges of the table tree at `root` (what `mergeRanges(walkTables(...))` gives) without making
 * an object per entry: for large trees (512 GiB in 2 MiB blocks is 262,656 entries) this is what
 * `dump tables --format ranges` uses.
 */
export function walkRanges(memory: PhysicalMemory, regime: Regime, root: bigint, options: WalkOptions = {}): RangeWalk {
  const merger = new RangeMerger(regime)
  scanTables(memory, root, options, (level, _index, _table, ipa, lo, hi) => merger.add(level, ipa, lo, hi))
  return merger.finish()
}

/**
 * mergeRanges over the entries of a scan (scanTables), as they come: for a caller that walks once
 * and wants the ranges too (`walkRanges`, `dump tables --json`).
 */
export class RangeMerger {
  private readonly ranges: Range[] = []
  private entries = 0
  private leaves = 0
  // the open range, in numbers
  private level = -1
  private end = -1
  private outputEnd = -1
  private attrLo = 0
  private attrHi = 0
  private count = 0
  private open: Range | undefined

  constructor(private readonly regime: Regime) {}

  /** The next valid entry of the walk (Visit's arguments). */
  add(level: number, ipa: number, lo: number, hi: number): void {
    this.entries++
    // a leaf: a block at levels 1-2 or a page at level 3 (kindOf in descriptor.ts)
    const isLeaf = level === 3 ? (lo & 2) !== 0 : level > 0 && (lo & 2) === 0
    if (!isLeaf) return
    this.leaves++
    const size = ENTRY_BYTES[level]!
    const address = addressOf(lo, hi)
    const output = address - (address % size)
    const aLo = lo & 0xfff
    const aHi = hi >>> 16
    if (this.open !== undefined && level === this.level && ipa === this.end && aLo === this.attrLo && aHi === this.attrHi && output === this.outputEnd) {
      this.end += size
      this.outputEnd += size
      this.count++
      return
    }
    this.close()
    const decoded = this.regime.decode(rawOf(lo, hi), level)
    this.open = {start: BigInt(ipa), end: 0n, level, outputStart: decoded.leaf!.outputAddress, decoded, entries: 0}
    this.ranges.push(this.open)
    this.level = level
    this.end = ipa + size
    this.outputEnd = output + size
    this.attrLo = aLo
    this.attrHi = aHi
    this.count = 1
  }

  /** The ranges and counts of everything added. */
  finish(): RangeWalk {
    this.close()
    this.open = undefined
    return {ranges: this.ranges, entries: this.entries, leaves: this.leaves}
  }

  private close(): void {
    if (this.open === undefined) return
    this.open.end = BigInt(this.end)
    this.open.entries = this.count
  }
}
