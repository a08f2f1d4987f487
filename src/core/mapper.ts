import {type AttributeBits, namedBits} from './attributes.js'
import {ADDRESS_MASK, type Attr, CONTIGUOUS, type Regime, type RegimeName, XN, isLeafLow} from './descriptor.js'
import {HvmemError} from './errors.js'
import {DEFAULT_GRANULE, DEFAULT_INPUT_BITS, FINAL_LEVEL, type Geometry, type Granule, MEMORY_PAGE, geometryFor, granuleName} from './geometry.js'
import type {Heap} from './heap.js'
import {type Register, checkVmid, registersFor} from './registers.js'
import {STAGE1} from './stage1.js'
import {STAGE2} from './stage2.js'
import {TableTransaction, slabWords} from './transaction.js'
import {GiB, MiB, formatSize, hex} from './u64.js'
import {LITTLE_ENDIAN, PAGE_ENTRIES, type ScanSink, type TableAccess, TableWalker, type Unfollowed, type Visitor, memoryAccess, pageWords, rawOf} from './walker.js'

export const DEFAULT_L2_BUDGET = 4
export const MAX_L2_BUDGET = 512

/** The "kvm" preset: the stage-2 geometry KVM gives a guest by default (4 KiB granule, 40-bit IPA). */
export const KVM_PRESET = {granule: 4096, inputBits: 40} as const satisfies Pick<MapperOptions, 'granule' | 'inputBits'>
/** The level whose tables the budget counts: the sprint plan's on-demand L2 tables. */
const BUDGET_LEVEL = 2
const TWO_32 = 2 ** 32

export const REGIMES: Record<RegimeName, Regime> = {stage2: STAGE2, stage1: STAGE1}

/** What a snapshot stores of the mapper; the tables themselves are found by walking the root. */
export interface MapperState {
  regime: RegimeName
  root: bigint
  vmid: number
  l2Budget: number
  /** table pages that coalesce or a replacing map left unreachable (a bump allocator cannot free them) */
  orphanedTables: number
  /** the geometry: the rest (start level, concatenation, PA size) follows from these and the regime */
  granule: Granule
  inputBits: number
}

export interface MapperOptions {
  regime?: RegimeName
  vmid?: number
  l2Budget?: number
  granule?: Granule
  /** IPA bits (stage 2) or VA bits (stage 1) */
  inputBits?: number
}

/** The mapper's geometry, from its state. */
export function mapperGeometry(state: Pick<MapperState, 'regime' | 'granule' | 'inputBits'>): Geometry {
  return geometryFor(state.regime === 'stage2' ? 2 : 1, {granule: state.granule, inputBits: state.inputBits})
}

/** The largest leaf a map may use, by name (the original three) or as a size in bytes. */
export type Granularity = 'page' | '2M' | '1G'
export const GRANULARITIES: readonly Granularity[] = ['page', '2M', '1G']

export interface MapOptions {
  /** output address of `ipa` (default: `ipa`, an identity map) */
  pa?: bigint
  /** the largest leaf to use: a size the geometry has a leaf for ('page' is the granule); default the largest */
  granularity?: Granularity | bigint
  /** overwrite existing mappings instead of refusing */
  replace?: boolean
  /** set the contiguous bit (52) on every aligned run of leaves wholly inside the range */
  contiguous?: boolean
}

/** Leaf descriptors written, left or cleared, by level: a key for each level the geometry has leaves at (4 KiB: 1, 2, 3). */
export type LeafCounts = Record<number, number>

export interface EditResult {
  ipa: bigint
  size: bigint
  /** leaf descriptors written */
  written: LeafCounts
  /** leaf descriptors already as wanted */
  unchanged: LeafCounts
  /** leaf descriptors cleared (unmap) */
  cleared: LeafCounts
  /** blocks split into next-level tables to keep the part outside the range as it was */
  splits: number
  newTables: bigint[]
  /** tables this operation left unreachable */
  orphanedTables: number
}

export interface MapResult extends EditResult {
  pa: bigint
  /** the preset's name, or the attribute fields spelled out (attributes.ts describeAttributes) */
  attr: string
  /** the leaf descriptor that now maps `ipa` */
  descriptor: bigint
  /** with `contiguous`: the runs inside the range whose entries carry the contiguous bit, by level */
  contiguousRuns?: LeafCounts
}

/** XN[1:0], bits 54:53: a permission change clears both and sets bit 54 for execute-never. */
export const XN_BITS = 3n << 53n

export type Permission = 'r' | 'rw' | 'rx' | 'rwx'
export const PERMISSIONS: readonly Permission[] = ['r', 'rw', 'rx', 'rwx']

/** A protect: new attributes, or new access permissions keeping the memory type. */
export type Protection = {attr: Attr} | {perm: Permission}

export interface CoalesceResult {
  /** the blocks that replaced a table, in IPA order */
  blocks: Array<{ipa: bigint; level: number; descriptor: bigint}>
  orphanedTables: number
}

interface Conflict {
  start: number
  end: number
  lo: number
  hi: number
  /** the existing output address at `start` */
  oa: number
}

/** A zero count for each level a geometry has leaves at (each edit's result counts by them), by granule, start level and DS: copied, not built, per count. */
const ZERO_COUNTS = new Map<string, LeafCounts>()
const zeroCounts = (g: Geometry): Readonly<LeafCounts> => {
  const key = `${g.granule} ${g.startLevel} ${g.ds}`
  let counts = ZERO_COUNTS.get(key)
  if (counts === undefined) {
    counts = Object.fromEntries(g.leafSizes().map((l) => [l.level, 0])) as LeafCounts
    ZERO_COUNTS.set(key, counts)
  }
  return counts
}
const zero = (g: Geometry): LeafCounts => ({...zeroCounts(g)})
/** The attribute bits of a leaf, as halves: everything but the output address and bits 1:0. */
const ATTR_LO = Number(~ADDRESS_MASK & 0xffff_fffcn)
const ATTR_HI = Number((~ADDRESS_MASK >> 32n) & 0xffff_ffffn)
/** The contiguous bit (52) in a descriptor's high half. */
const CONT_HI = Number(CONTIGUOUS >> 32n)
/** The attribute bits of the high half that say what a leaf maps: all but the contiguous hint. */
const MAP_HI = ATTR_HI & ~CONT_HI
const hi32 = (value: number): number => Math.floor(value / TWO_32)
const lo32 = (value: number): number => value - hi32(value) * TWO_32

/**
 * Writes the descriptors words[j], words[j + 1] for j from `from` to `end` (by 2): low halves `lo` |
 * `attrLo`, `lo` on by `step` each (never reaching 2^32), high halves `hi`; returns the next `lo`.
 * fillLeaves' loop as a function of its own: V8 compiles it in well under a millisecond, where
 * fillLeaves with what it inlines took 12 ms, by when a whole-process `map region` of 262,144
 * entries had filled them all in baseline code (10-12 ms of it; warm, the anchor's map cases 10% faster).
 */
function fillWords(words: Uint32Array, from: number, end: number, lo: number, step: number, attrLo: number, hi: number): number {
  for (let j = from; j < end; j += 2, lo += step) {
    words[j] = (lo | attrLo) >>> 0
    words[j + 1] = hi
  }
  return lo
}

/**
 * Writes `count` leaves from entry `index` of the table at `table` through the transaction: output
 * `oa` on by `step` an entry, halves `lo` | `attrLo` and `hi` | `attrHi` (the type bits in `attrLo`).
 * One typed-array loop a 4 KiB page: a split's table, or a new table a map fills.
 */
function fillLeaves(tx: TableTransaction, table: number, index: number, count: number, oa: number, step: number, attrLo: number, attrHi: number): void {
  let hi = hi32(oa)
  let lo = oa - hi * TWO_32
  // (whether a low half written passes 2^32: the last is lo + step * (count - 1); the fast loop's
  // lo may reach 2^32 after it, never written)
  const carries = step >= TWO_32 || lo + step * (count - 1) >= TWO_32
  for (let k = index, end = index + count; k < end;) {
    const view = tx.writable(table / MEMORY_PAGE + (k >>> 9))
    const from = k & (PAGE_ENTRIES - 1)
    const to = Math.min(PAGE_ENTRIES, from + end - k)
    // descriptors are little-endian: on such a host a Uint32Array writes a page's halves as they are stored
    if (LITTLE_ENDIAN && !carries) {
      // the common case: the output's high half stays put
      const base = view.byteOffset >> 2
      lo = fillWords(slabWords(view), base + 2 * from, base + 2 * to, lo, step, attrLo, (hi | attrHi) >>> 0)
    } else {
      for (let j = from; j < to; j++) {
        view.setUint32(8 * j, (lo | attrLo) >>> 0, true)
        view.setUint32(8 * j + 4, (hi | attrHi) >>> 0, true)
        lo += step
        if (lo >= TWO_32) {
          const carry = Math.floor(lo / TWO_32)
          hi += carry
          lo -= carry * TWO_32
        }
      }
    }
    k += to - from
  }
}

/**
 * What every edit walk shares: the transaction it writes through, its result, and the moves that
 * change the tree's shape (a new table, a split, counting the tables a cleared entry drops).
 */
abstract class Edit implements Visitor {
  readonly result: EditResult
  /** whether the edit hung a new table at a level-1 entry: only then can the count of L2 tables have grown */
  madeBudgetTables = false
  constructor(
    protected readonly tx: TableTransaction,
    protected readonly geometry: Geometry,
    ipa: bigint,
    size: bigint,
  ) {
    const counts = zeroCounts(geometry)
    this.result = {ipa, size, written: {...counts}, unchanged: {...counts}, cleared: {...counts}, splits: 0, newTables: tx.newTables, orphanedTables: 0}
  }

  /** A new, empty next-level table hung at the current entry: the walk goes down into it. */
  protected newTable(w: TableWalker): number {
    const table = this.tx.allocTable(this.geometry.granule, this.geometry.granule)
    w.set(lo32(table) | 3, hi32(table))
    if (w.level === BUDGET_LEVEL - 1) this.madeBudgetTables = true
    return table
  }

  /** Replaces the block at the current entry by a next-level table of leaves that map exactly what it mapped. */
  protected split(w: TableWalker): void {
    const g = this.geometry
    const childLevel = w.level + 1
    const childSize = g.entryBytes(childLevel)
    const attrLo = (w.lo & ATTR_LO) | 1 | (childLevel === FINAL_LEVEL ? 2 : 0)
    // the children do not inherit the contiguous hint: a run of them is not known to stay whole
    const attrHi = w.hi & MAP_HI
    const oa = w.output
    const table = this.newTable(w)
    fillLeaves(this.tx, table, 0, g.entries, oa, childSize, attrLo, attrHi)
    this.result.splits++
  }

  /** How many tables hang at and below the current table entry (they become unreachable with it). */
  protected tablesUnder(w: TableWalker): number {
    let count = 1
    new TableWalker(this.tx, this.geometry).walkFrom(w.next, w.level + 1, w.addr, w.addr, w.addr + w.size, {tablePre: () => void count++}, {validOnly: true})
    return count
  }

  /** Writes a leaf at the current entry for output `oa` with attribute halves. */
  protected writeLeaf(w: TableWalker, oa: number, attrLo: number, attrHi: number): void {
    w.set(lo32(oa) | attrLo | 1 | (w.level === FINAL_LEVEL ? 2 : 0), hi32(oa) | attrHi)
  }

  /**
   * Whether a whole entry at `level` ends the walk there (a leaf written, cleared or kept): only
   * entries the range covers in part then need a table below them. An edit that only splits
   * (unmap, protect) makes tables at the edges alone.
   */
  leafEnds(_level: number): boolean {
    return true
  }

  abstract leaf(w: TableWalker): void

  /** A table outside RAM or reached twice: hvmem never builds either, so the tables are damaged. */
  unfollowed(w: TableWalker, why: Unfollowed): void {
    const where = why === 'outside-ram' ? 'outside RAM' : 'a table the walk reached already (a loop or an alias)'
    throw new HvmemError('snapshot-invalid', `the L${w.level} entry at ${hex(BigInt(w.table + 8 * w.index))} (${hex(w.raw)}) points at ${hex(BigInt(w.next))}, ${where}: the tables are damaged`)
  }

  /** Whether the current non-table entry is a leaf (a block or a page) in this geometry. */
  protected isLeaf(w: TableWalker): boolean {
    return isLeafLow(w.lo, w.level, this.geometry)
  }
}

class MapEdit extends Edit {
  readonly conflicts: Conflict[] = []
  private readonly attrLo: number
  private readonly attrHi: number
  /** output minus input (may be negative) */
  private readonly delta: number
  /** per level: whether a leaf may be used there (its size is allowed and the output stays aligned) */
  private readonly leafOk: boolean[] = []

  constructor(
    tx: TableTransaction,
    geometry: Geometry,
    ipa: bigint,
    size: bigint,
    pa: bigint,
    attrBits: bigint,
    maxLeaf: bigint,
    private readonly replace: boolean,
  ) {
    super(tx, geometry, ipa, size)
    this.attrLo = Number(attrBits & 0xffff_ffffn)
    this.attrHi = Number(attrBits >> 32n)
    this.delta = Number(pa - ipa)
    for (let level = 0; level <= FINAL_LEVEL; level++) {
      const s = geometry.entrySize(level)
      this.leafOk.push(geometry.canLeaf(level) && s <= maxLeaf && (pa - ipa) % s === 0n)
    }
  }

  /**
   * A new table at the current entry. When the range's part inside the entry is whole entries of
   * the next level that may be leaves, they are written here at once (the table is new: nothing to
   * check) and the walk does not go down; otherwise the walk goes down into it.
   */
  private fillNewTable(w: TableWalker): void {
    const table = this.newTable(w)
    const child = w.level + 1
    const size = this.geometry.entryBytes(child)
    const start = w.start
    const end = w.end
    if (!this.leafOk[child]! || start % size !== 0 || end % size !== 0) return
    const count = (end - start) / size
    fillLeaves(this.tx, table, (start - w.addr) / size, count, start + this.delta, size, this.attrLo | 1 | (child === FINAL_LEVEL ? 2 : 0), this.attrHi)
    this.result.written[child]! += count
    w.filledBelow()
  }

  override leafEnds(level: number): boolean {
    return this.leafOk[level]!
  }

  tablePre(w: TableWalker): boolean {
    if (!(this.replace && w.whole && this.leafOk[w.level]!)) return true
    // replace the whole table with one leaf
    this.result.orphanedTables += this.tablesUnder(w)
    this.writeLeaf(w, w.addr + this.delta, this.attrLo, this.attrHi)
    this.result.written[w.level]!++
    return false
  }

  leaf(w: TableWalker): void {
    const fits = this.leafOk[w.level]! && w.whole
    if (!this.isLeaf(w)) {
      // invalid or reserved: nothing is mapped here
      if (!fits) this.fillNewTable(w)
      else if ((w.lo & 1) === 0) {
        // this and the invalid entries after it in the table, in one loop
        this.result.written[w.level]! += w.writeRun(w.addr + this.delta, this.attrLo | 1 | (w.level === FINAL_LEVEL ? 2 : 0), this.attrHi)
      } else {
        this.writeLeaf(w, w.addr + this.delta, this.attrLo, this.attrHi)
        this.result.written[w.level]!++
      }
      return
    }
    const existing = w.output + (w.start - w.addr)
    if ((w.lo & ATTR_LO) === this.attrLo && (w.hi & MAP_HI) === this.attrHi && existing === w.start + this.delta) {
      this.result.unchanged[w.level]!++ // this part is mapped exactly as asked already
      return
    }
    if (!this.replace) {
      this.conflicts.push({start: w.start, end: w.end, lo: w.lo, hi: w.hi, oa: existing})
      return
    }
    if (fits) {
      this.writeLeaf(w, w.addr + this.delta, this.attrLo, this.attrHi)
      this.result.written[w.level]!++
    } else this.split(w)
  }
}

class UnmapEdit extends Edit {
  tablePre(w: TableWalker): boolean {
    if (!w.whole) return true
    this.result.orphanedTables += this.tablesUnder(w)
    w.set(0, 0)
    return false
  }

  leaf(w: TableWalker): void {
    if ((w.lo & 1) === 0) return
    if (!this.isLeaf(w))
      w.set(0, 0) // a reserved encoding maps nothing; clear it with the rest of the range
    else if (w.whole) {
      this.result.cleared[w.level]!++
      w.set(0, 0)
    } else this.split(w)
  }
}

class ProtectEdit extends Edit {
  readonly holes: Array<[number, number]> = []

  constructor(
    tx: TableTransaction,
    geometry: Geometry,
    ipa: bigint,
    size: bigint,
    private readonly change: (descriptor: bigint) => bigint,
  ) {
    super(tx, geometry, ipa, size)
  }

  leaf(w: TableWalker): void {
    if (!this.isLeaf(w)) {
      this.holes.push([w.start, w.end])
      return
    }
    const raw = w.raw
    const changed = this.change(raw)
    if (changed === raw) this.result.unchanged[w.level]!++
    else if (w.whole) {
      w.set(Number(changed & 0xffff_ffffn), Number(changed >> 32n))
      this.result.written[w.level]!++
    } else this.split(w)
  }
}

/**
 * Folds each table whose entries are all valid leaves with identical attributes and contiguous
 * output, aligned to the block it becomes, into that block: after the walk comes back from the
 * table (table-post), so the lowest tables fold first and their parents can fold in turn.
 */
class CoalesceEdit implements Visitor {
  readonly blocks: CoalesceResult['blocks'] = []

  constructor(
    private readonly tx: TableTransaction,
    private readonly geometry: Geometry,
  ) {}

  tablePost(w: TableWalker): void {
    const g = this.geometry
    if (!g.canBlock(w.level) || !w.whole) return
    // the table's entries, read by a walk of it: all leaves, one set of attributes, contiguous output from an aligned start
    let uniform = true
    let attrLo = -1
    let attrHi = 0
    let blockOa = 0
    new TableWalker(this.tx, g).walkFrom(w.next, w.level + 1, w.addr, w.addr, w.addr + w.size, {
      tablePre: () => {
        uniform = false
        return false
      },
      leaf: (c) => {
        if (!uniform) return
        if (!isLeafLow(c.lo, c.level, g)) uniform = false
        else if (attrLo === -1) {
          attrLo = c.lo & ATTR_LO
          attrHi = c.hi & MAP_HI
          blockOa = c.output
          uniform = blockOa % w.size === 0
        } else uniform = (c.lo & ATTR_LO) === attrLo && (c.hi & MAP_HI) === attrHi && c.output === blockOa + (c.addr - w.addr)
      },
    })
    if (!uniform || attrLo === -1) return
    w.set(lo32(blockOa) | attrLo | 1, hi32(blockOa) | attrHi)
    this.blocks.push({ipa: BigInt(w.addr), level: w.level, descriptor: w.raw})
  }
}

/** An aligned run of the contiguous bit: `count` entries from `index` of the table at `table`, at `level`, translating [addr, end). */
interface Run {
  table: number
  index: number
  count: number
  level: number
  addr: number
  end: number
}

/** The aligned run of the contiguous bit that the walker's current leaf belongs to, or undefined where its level has none. */
function runAt(w: TableWalker): Run | undefined {
  const count = w.geometry.contiguousEntries(w.level)
  if (count === 0) return undefined
  const offset = w.index % count
  const addr = w.addr - offset * w.size
  return {table: w.table, index: w.index - offset, count, level: w.level, addr, end: addr + count * w.size}
}

/** The entries of a run as [lo, hi] halves (a run of at most 128 entries is aligned to its size: it lies in one 4 KiB page). */
function runEntries(access: TableAccess, run: Run): Array<[number, number]> {
  const bytes = access.page(run.table / MEMORY_PAGE + (run.index >>> 9))
  const view = bytes === undefined ? undefined : new DataView(bytes.buffer, bytes.byteOffset, MEMORY_PAGE)
  const out: Array<[number, number]> = []
  for (let k = 0; k < run.count; k++) {
    const offset = ((run.index + k) & (MEMORY_PAGE / 8 - 1)) * 8
    out.push(view === undefined ? [0, 0] : [view.getUint32(offset, true), view.getUint32(offset + 4, true)])
  }
  return out
}

/** Sets (or clears) the contiguous bit on every leaf of `run` that lacks (or has) it; returns how many entries changed. */
function markRun(tx: TableTransaction, geometry: Geometry, run: Run, on: boolean): number {
  const entries = runEntries(tx, run)
  let changed = 0
  entries.forEach(([lo, hi], k) => {
    if (!isLeafLow(lo, run.level, geometry) || ((hi & CONT_HI) !== 0) === on) return
    const view = tx.writable(run.table / MEMORY_PAGE + ((run.index + k) >>> 9))
    view.setUint32(((run.index + k) & (MEMORY_PAGE / 8 - 1)) * 8 + 4, (on ? hi | CONT_HI : hi & ~CONT_HI) >>> 0, true)
    changed++
  })
  return changed
}

/**
 * Whether a run may carry the contiguous bit (Arm ARM D8.6.1): all its entries valid leaves with the
 * same attributes, their output contiguous from an address aligned to the run's size.
 */
function runQualifies(access: TableAccess, geometry: Geometry, run: Run): boolean {
  const size = geometry.entryBytes(run.level)
  const maskHi = Number(geometry.addressMask >> 32n)
  const output = ([lo, hi]: [number, number]): number => {
    const address = (hi & maskHi) * TWO_32 + ((lo & geometry.addressMaskLo) >>> 0)
    return address - (address % size)
  }
  const entries = runEntries(access, run)
  const [lo0, hi0] = entries[0]!
  const first = output(entries[0]!)
  if (first % (run.count * size) !== 0) return false
  return entries.every(([lo, hi], k) => isLeafLow(lo, run.level, geometry) && (lo & ATTR_LO) === (lo0 & ATTR_LO) && (hi & MAP_HI) === (hi0 & MAP_HI) && output([lo, hi]) === first + k * size)
}

/**
 * Before an edit of [start, end): clears the contiguous bit on the runs that the range cuts, the ones
 * holding its first or last address but reaching outside it. Their entries would otherwise disagree
 * once the edit changes part of them, which the Arm ARM makes CONSTRAINED UNPREDICTABLE (a TLB may
 * hold either translation, or report a TLB conflict abort).
 */
function breakEdgeRuns(tx: TableTransaction, walker: TableWalker, root: number, start: number, end: number): void {
  const geometry = walker.geometry
  const runs: Run[] = []
  for (const at of end - start > geometry.granule ? [start, end - 1] : [start]) {
    walker.walk(
      root,
      at,
      at + 1,
      {
        leaf: (w) => {
          if ((w.hi & CONT_HI) === 0 || !isLeafLow(w.lo, w.level, geometry)) return
          const run = runAt(w)
          if (run !== undefined && (run.addr < start || run.end > end)) runs.push(run)
        },
      },
      {validOnly: true},
    )
  }
  for (const run of runs) markRun(tx, geometry, run, false)
}

/**
 * After a map of [start, end) (`contiguous`, or a replacing one): every aligned run wholly inside the
 * range that qualifies gets the contiguous bit with `contiguous`, or keeps it when all its entries
 * have it already; any other run there loses it, so no run is left with entries that disagree.
 * Returns the runs that carry the bit afterwards, by level.
 */
function settleRuns(tx: TableTransaction, walker: TableWalker, root: number, start: number, end: number, contiguous: boolean): LeafCounts {
  const geometry = walker.geometry
  const runs: Run[] = []
  let lastKey = -1
  walker.walk(
    root,
    start,
    end,
    {
      leaf: (w) => {
        if (!contiguous && (w.hi & CONT_HI) === 0) return
        const run = runAt(w)
        if (run === undefined || run.addr < start || run.end > end) return
        const key = run.table + run.index * 8
        if (key === lastKey) return
        lastKey = key
        runs.push(run)
      },
    },
    {validOnly: true},
  )
  const marked = zero(geometry)
  for (const run of runs) {
    const qualifies = runQualifies(tx, geometry, run)
    const all = runEntries(tx, run).every(([, hi]) => (hi & CONT_HI) !== 0)
    if (qualifies && (contiguous || all)) {
      markRun(tx, geometry, run, true)
      marked[run.level] = (marked[run.level] ?? 0) + 1
    } else markRun(tx, geometry, run, false)
  }
  return marked
}

/**
 * At most how many tables an edit of [start, end) makes (for TableTransaction.expectTables): at each
 * level above the last, every entry the range touches while no level down to this one lets a whole
 * entry end the walk (`edit.leafEnds`), and past such a level only the entries the range covers in
 * part, its first and last.
 */
function tablesBound(g: Geometry, start: number, end: number, edit: Edit): number {
  let bound = 0
  let ends = false
  for (let level = g.startLevel; level < FINAL_LEVEL; level++) {
    const size = g.entryBytes(level)
    const touched = Math.floor((end - 1) / size) - Math.floor(start / size) + 1
    ends ||= edit.leafEnds(level)
    bound += ends ? Math.min(touched, (start % size === 0 ? 0 : 1) + (end % size === 0 ? 0 : 1)) : touched
  }
  return bound
}

/**
 * budgetTables(...).length: with the root at level 1, its table entries counted in one loop over its
 * pages (as the walk counts them: every entry whose bits 1:0 are 0b11).
 */
function countBudgetTables(walker: TableWalker, root: number): number {
  const g = walker.geometry
  if (g.startLevel !== BUDGET_LEVEL - 1) return budgetTables(walker, root).length
  const entries = g.entriesAt(g.startLevel)
  let count = 0
  for (let first = 0; first < entries; first += PAGE_ENTRIES) {
    const bytes = walker.access.page(root / MEMORY_PAGE + first / PAGE_ENTRIES)
    if (bytes === undefined) continue
    const words = pageWords(bytes)
    const last = Math.min(PAGE_ENTRIES, entries - first)
    for (let j = 0; j < 2 * last; j += 2) if ((words[j]! & 3) === 3) count++
  }
  return count
}

/** Counts table entries at the budget's level - 1 (one per entry, as the sprint plan's L1 table holds them). */
function budgetTables(walker: TableWalker, root: number): bigint[] {
  const g = walker.geometry
  const out: bigint[] = []
  if (g.startLevel >= BUDGET_LEVEL) return out
  walker.walk(
    root,
    0,
    2 ** g.inputBits,
    {
      tablePre: (w) => {
        if (w.level < BUDGET_LEVEL - 1) return true
        out.push(BigInt(w.next))
        return false
      },
    },
    {validOnly: true},
  )
  return out
}

/**
 * The plan's DynamicIdentityMapper grown up: a root table in any geometry (granule, input size,
 * start level and concatenation from geometry.ts) and tables below it allocated from the heap on
 * demand (level-2 tables within a budget, the others as the heap allows). Maps use the largest leaf
 * that the alignment of input and output allows, identity by default. Unmap and protect split a
 * block that the range covers only in part, keeping the rest exactly as it was; coalesce folds a
 * table of uniform, contiguous leaves back into one block. The contiguous bit (52) is set on whole
 * aligned runs only (the contiguous option), and every edit that cuts a run clears it on all of the
 * run first (breakEdgeRuns, settleRuns). The regime is stage 2 (VTTBR_EL2, the
 * default) or the hypervisor's own stage 1 (TTBR0_EL2), fixed at creation with the geometry.
 *
 * Every operation is an edit walk (walker.ts) in a TableTransaction, committed only once conflicts,
 * the level-2 table budget and the heap have all allowed it: all or nothing.
 */
export class IdentityMapper {
  readonly geometry: Geometry

  private constructor(
    private readonly heap: Heap,
    readonly state: MapperState,
  ) {
    this.geometry = mapperGeometry(state)
  }

  /** Allocates and zeroes the root table (all its concatenated tables, aligned to their size). */
  static create(heap: Heap, options: MapperOptions = {}): IdentityMapper {
    const regime = options.regime ?? 'stage2'
    const vmid = options.vmid ?? 0
    const l2Budget = options.l2Budget ?? DEFAULT_L2_BUDGET
    checkVmid(vmid)
    if (regime === 'stage1' && vmid !== 0) throw new HvmemError('input', 'a VMID applies to stage-2 tables only; the stage-1 (EL2) regime has none')
    checkBudget(l2Budget)
    const granule = options.granule ?? DEFAULT_GRANULE
    const inputBits = options.inputBits ?? DEFAULT_INPUT_BITS
    const geometry = mapperGeometry({regime, granule, inputBits})
    const bytes = geometry.tableBytes(geometry.startLevel)
    const root = heap.allocAligned(BigInt(bytes), geometry.rootAlign)
    heap.memory.zero(root, BigInt(bytes))
    return new IdentityMapper(heap, {regime, root, vmid, l2Budget, orphanedTables: 0, granule, inputBits})
  }

  /** Re-binds a mapper loaded from a snapshot, checking that its root table is readable. */
  static attach(heap: Heap, state: MapperState): IdentityMapper {
    checkVmid(state.vmid)
    checkBudget(state.l2Budget)
    if (state.regime === 'stage1' && state.vmid !== 0) throw new HvmemError('snapshot-invalid', `a stage-1 mapper has VMID ${state.vmid}`)
    let geometry: Geometry
    try {
      geometry = mapperGeometry(state)
    } catch (error) {
      if (error instanceof HvmemError) throw new HvmemError('snapshot-invalid', `the mapper's geometry is not valid: ${error.message}`)
      throw error
    }
    const bytes = BigInt(geometry.tableBytes(geometry.startLevel))
    if (state.root % geometry.rootAlign !== 0n || !heap.memory.contains(state.root, bytes)) {
      throw new HvmemError('snapshot-invalid', `mapper root table ${hex(state.root)} is not a ${formatSize(geometry.rootAlign)}-aligned table inside RAM`)
    }
    return new IdentityMapper(heap, {...state})
  }

  get root(): bigint {
    return this.state.root
  }

  get regime(): Regime {
    return REGIMES[this.state.regime]
  }

  /** The plan's vttbr(), with the VMID: for stage-2 tables only. */
  vttbr(): bigint {
    return this.stage2Register('VTTBR_EL2')
  }

  vtcr(): bigint {
    return this.stage2Register('VTCR_EL2')
  }

  /** The registers that install these tables, decoded (VTTBR/VTCR/HCR for stage 2; TTBR0/TCR/MAIR/SCTLR/HCR for stage 1). */
  registers(): Register[] {
    return registersFor(this.state.regime, this.state.root, this.state.vmid, this.geometry)
  }

  /** The level-2 tables, one per table entry at level 1, in input-address order: what counts against the budget. */
  l2Tables(): bigint[] {
    return budgetTables(new TableWalker(memoryAccess(this.heap.memory), this.geometry), Number(this.state.root))
  }

  /** The largest leaf size a map may use for `granularity`, checked against the geometry. */
  maxLeaf(granularity: Granularity | bigint | undefined): bigint {
    const g = this.geometry
    const sizes = g.leafSizes()
    if (granularity === undefined) return sizes[0]!.size
    const size = granularity === 'page' ? BigInt(g.granule) : granularity === '2M' ? 2n * MiB : granularity === '1G' ? GiB : granularity
    if (!sizes.some((s) => s.size === size)) {
      throw new HvmemError('input', `the ${granuleName(g.granule)} granule has no ${formatSize(size)} leaf; its leaves are ${sizes.map((s) => `${formatSize(s.size)} (L${s.level})`).join(', ')}`)
    }
    return size
  }

  /**
   * Maps [ipa, ipa + size) to [pa, pa + size) with `attr`: a preset, or attribute bits resolved by
   * attributes.ts. Refuses to change an existing mapping unless `replace`.
   */
  mapRegion(ipa: bigint, size: bigint, attributes: Attr | AttributeBits, options: MapOptions = {}): MapResult {
    const g = this.geometry
    const pa = options.pa ?? ipa
    const maxLeaf = this.maxLeaf(options.granularity)
    this.checkRange(ipa, size)
    if (pa % BigInt(g.granule) !== 0n || pa < 0n) throw new HvmemError('input', `PA ${hex(pa)} is not aligned to the ${g.granule / 1024} KiB granule`)
    if (pa + size > g.paLimit) throw new HvmemError('input', `output ${hex(pa)}-${hex(pa + size)} ends past the ${g.paBits}-bit physical address space (${hex(g.paLimit)})`)
    const {bits: attrBits, name: attr} = typeof attributes === 'string' ? {bits: this.regime.attrBits[attributes], name: attributes} : attributes
    if ((attrBits & (ADDRESS_MASK | 3n)) !== 0n) throw new HvmemError('input', `attribute bits ${hex(attrBits)} overlap the output address or the descriptor type`)
    if ((attrBits & CONTIGUOUS) !== 0n) throw new HvmemError('input', `attribute bits ${hex(attrBits)} hold the contiguous bit (52), which is set per aligned run, not per leaf`)
    const replace = options.replace ?? false
    const contiguous = options.contiguous ?? false
    const root = Number(this.state.root)
    let contiguousRuns: LeafCounts | undefined
    const {result} = this.run(
      ipa,
      size,
      (tx) => new MapEdit(tx, g, ipa, size, pa, attrBits, maxLeaf, replace),
      (edit) => {
        const c = mergeConflicts(edit.conflicts)[0]
        if (c !== undefined) {
          throw new HvmemError(
            'mapping-conflict',
            `cannot map ${hex(ipa)}-${hex(ipa + size)} as ${attr}: ${hex(BigInt(c.start))}-${hex(BigInt(c.end))} is already mapped ${this.describeExisting(c)}; unmap it first, or pass --replace`,
          )
        }
      },
      {
        // only a replacing map changes what was mapped: the runs it cuts lose the contiguous bit first
        before: replace ? (tx, walker) => breakEdgeRuns(tx, walker, root, Number(ipa), Number(ipa + size)) : undefined,
        after: replace || contiguous ? (tx, walker) => (contiguousRuns = settleRuns(tx, walker, root, Number(ipa), Number(ipa + size), contiguous)) : undefined,
      },
    )
    return {...result, pa, attr, descriptor: this.leafAt(ipa), ...(contiguous ? {contiguousRuns} : {})}
  }

  /** Removes every mapping in [ipa, ipa + size); a block the range covers in part is split first. */
  unmap(ipa: bigint, size: bigint): EditResult {
    this.checkRange(ipa, size)
    return this.run(ipa, size, (tx) => new UnmapEdit(tx, this.geometry, ipa, size), undefined, {
      before: (tx, walker) => breakEdgeRuns(tx, walker, Number(this.state.root), Number(ipa), Number(ipa + size)),
    }).result
  }

  /** Changes the attributes or permissions of every mapping in [ipa, ipa + size), which must be mapped throughout. */
  protect(ipa: bigint, size: bigint, protection: Protection): EditResult {
    this.checkRange(ipa, size)
    const change = 'attr' in protection ? this.withAttr(protection.attr) : this.withPermission(protection.perm)
    return this.run(
      ipa,
      size,
      (tx) => new ProtectEdit(tx, this.geometry, ipa, size, change),
      (edit) => {
        const hole = mergeHoles(edit.holes)[0]
        if (hole !== undefined) throw new HvmemError('input', `cannot protect ${hex(ipa)}-${hex(ipa + size)}: ${hex(BigInt(hole[0]))}-${hex(BigInt(hole[1]))} is not mapped`)
      },
      {before: (tx, walker) => breakEdgeRuns(tx, walker, Number(this.state.root), Number(ipa), Number(ipa + size))},
    ).result
  }

  /**
   * Folds every table whose entries are valid leaves with identical attributes and physically
   * contiguous, block-aligned output into one block of the level above (the lowest tables first).
   * The folded tables become unreachable: the bump allocator cannot free them.
   */
  coalesce(): CoalesceResult {
    const tx = new TableTransaction(this.heap)
    const edit = new CoalesceEdit(tx, this.geometry)
    new TableWalker(tx, this.geometry).walk(Number(this.state.root), 0, 2 ** this.geometry.inputBits, edit, {validOnly: true})
    tx.commit()
    const orphaned = edit.blocks.length
    this.state.orphanedTables += orphaned
    // every fold, in input-address order (a parent's after its children's, which it took in)
    const blocks = [...edit.blocks]
    blocks.sort((a, b) => (a.ipa < b.ipa ? -1 : a.ipa > b.ipa ? 1 : 0))
    return {blocks, orphanedTables: orphaned}
  }

  /** The granule-sized table pages of these tables (the root's included) that lie in [pa, pa + size), in address order. */
  tablePagesIn(pa: bigint, size: bigint): bigint[] {
    const g = this.geometry
    const granule = BigInt(g.granule)
    const pages: bigint[] = []
    const rootBytes = BigInt(g.tableBytes(g.startLevel))
    for (let t = this.state.root; t < this.state.root + rootBytes; t += granule) pages.push(t)
    // A scan of the table entries: pages of leaves (262,144 of them for 1 GiB in pages) are passed
    // over a page at a time, where a walk with a table-pre visitor visited every leaf.
    new TableWalker(memoryAccess(this.heap.memory), g).scan(Number(this.state.root), 0, 2 ** g.inputBits, new TableEntries(pages))
    return pages.filter((t) => t >= pa && t < pa + size).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  }

  /** The leaf descriptor that maps `ipa`, or 0 if none does. */
  leafAt(ipa: bigint): bigint {
    let found = 0n
    const g = this.geometry
    const at = Number(ipa)
    new TableWalker(memoryAccess(this.heap.memory), g).walk(
      Number(this.state.root),
      at,
      at + 1,
      {
        leaf: (w) => {
          if (isLeafLow(w.lo, w.level, g)) found = w.raw
        },
      },
      {validOnly: true},
    )
    return found
  }

  private stage2Register(name: string): bigint {
    if (this.state.regime !== 'stage2') throw new HvmemError('input', `${name} applies to stage-2 tables; these are stage-1 tables under TTBR0_EL2`)
    return this.registers().find((r) => r.name === name)!.value
  }

  /**
   * Runs an edit walk in a transaction; `check` may refuse it before the budget check and the commit.
   * `before` and `after` run in the same transaction before and after the walk (the contiguous bit's runs).
   */
  private run<E extends Edit>(
    ipa: bigint,
    size: bigint,
    make: (tx: TableTransaction) => E,
    check?: (edit: E) => void,
    around: {before?: (tx: TableTransaction, walker: TableWalker) => void; after?: (tx: TableTransaction, walker: TableWalker) => void} = {},
  ): {result: EditResult; edit: E} {
    const tx = new TableTransaction(this.heap)
    // one walker for the walks of the edit (each walk starts afresh)
    const walker = new TableWalker(tx, this.geometry)
    around.before?.(tx, walker)
    const edit = make(tx)
    tx.expectTables(tablesBound(this.geometry, Number(ipa), Number(ipa + size), edit), this.geometry.granule)
    walker.walk(Number(this.state.root), Number(ipa), Number(ipa + size), edit)
    check?.(edit)
    around.after?.(tx, walker)
    if (edit.madeBudgetTables && this.geometry.startLevel < BUDGET_LEVEL) {
      // only an edit that hung new tables at level 1 can have grown the count
      const tables = countBudgetTables(walker, Number(this.state.root))
      if (tables > this.state.l2Budget) {
        const before = this.l2Tables().length
        const verb = edit instanceof MapEdit ? 'mapping' : edit instanceof UnmapEdit ? 'unmapping' : 'protecting'
        throw new HvmemError(
          'mapping-limit',
          `${verb} ${hex(ipa)}-${hex(ipa + size)} needs ${tables - before} new L2 table(s) but ${before} of the budget of ${this.state.l2Budget} are in use; the budget is set when the mapper is created (--l2-budget)`,
        )
      }
    }
    tx.commit()
    this.state.orphanedTables += edit.result.orphanedTables
    return {result: edit.result, edit}
  }

  private checkRange(ipa: bigint, size: bigint): void {
    const g = this.geometry
    const granule = BigInt(g.granule)
    const name = `${g.granule / 1024} KiB`
    if (size <= 0n) throw new HvmemError('input', `size must be > 0 (got ${size})`)
    if (ipa < 0n || ipa % granule !== 0n) throw new HvmemError('input', `IPA ${hex(ipa)} is not aligned to the ${name} granule`)
    if (size % granule !== 0n) throw new HvmemError('input', `size ${hex(size)} is not a multiple of the ${name} granule`)
    if (ipa + size > g.inputLimit)
      throw new HvmemError('input', `${hex(ipa)}-${hex(ipa + size)} ends past the ${g.inputBits}-bit input address space (${hex(g.inputLimit)}, T0SZ = ${64 - g.inputBits})`)
  }

  private describeExisting(c: Conflict): string {
    const existing = rawOf(c.lo, c.hi)
    const attr = namedBits(this.state.regime, existing & ~ADDRESS_MASK & ~3n & ~CONTIGUOUS).name
    return `${attr} to ${hex(BigInt(c.oa))} (${formatSize(BigInt(c.end - c.start))}, descriptor ${hex(existing)})`
  }

  private withAttr(attr: Attr): (descriptor: bigint) => bigint {
    const bits = this.regime.attrBits[attr]
    // the contiguous hint stays: a run the range covers whole changes alike (a run it covers in part lost the hint first)
    return (descriptor) => (descriptor & ADDRESS_MASK) | bits | (descriptor & (3n | CONTIGUOUS))
  }

  /** Access and execute bits only: S2AP and XN at stage 2, AP[2] and XN at stage 1; the memory type stays. */
  private withPermission(perm: Permission): (descriptor: bigint) => bigint {
    const write = perm.includes('w')
    const exec = perm.includes('x')
    if (this.regime.stage === 2) {
      const s2ap = (write ? 3n : 1n) << 6n
      return (d) => (d & ~(3n << 6n) & ~XN_BITS) | s2ap | (exec ? 0n : XN)
    }
    const ap2 = 1n << 7n
    return (d) => (d & ~ap2 & ~XN_BITS) | (write ? 0n : ap2) | (exec ? 0n : XN)
  }
}

function checkBudget(budget: number): void {
  if (!Number.isInteger(budget) || budget < 1 || budget > MAX_L2_BUDGET) {
    throw new HvmemError('input', `L2 table budget must be 1..${MAX_L2_BUDGET} (got ${budget})`)
  }
}

/** Joins neighbouring conflicts where one existing mapping continues, so the message names it whole. */
function mergeConflicts(conflicts: Conflict[]): Conflict[] {
  const out: Conflict[] = []
  for (const c of conflicts) {
    const last = out.at(-1)
    if (last !== undefined && last.end === c.start && (last.lo & ATTR_LO) === (c.lo & ATTR_LO) && (last.hi & MAP_HI) === (c.hi & MAP_HI) && last.oa + (last.end - last.start) === c.oa) last.end = c.end
    else out.push({...c})
  }
  return out
}

/** Joins neighbouring holes, so the message names each unmapped stretch whole. */
function mergeHoles(holes: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const [start, end] of holes) {
    const last = out.at(-1)
    if (last !== undefined && last[1] === start) last[1] = end
    else out.push([start, end])
  }
  return out
}

/** The level-2 tables the tree at `root` holds, one per table entry at level 1: what counts against a mapper's L2 budget. */
export function l2TablesAt(memory: Heap['memory'], geometry: Geometry, root: bigint): bigint[] {
  return budgetTables(new TableWalker(memoryAccess(memory), geometry), Number(root))
}

/** tablePagesIn's ScanSink: the address of the table each table entry points at (each time one does), as a walk's table-pre sees them. */
class TableEntries implements ScanSink {
  constructor(private readonly pages: bigint[]) {}

  entry(w: TableWalker, unfollowed?: Unfollowed): void {
    if (unfollowed === undefined && w.level < FINAL_LEVEL && (w.lo & 3) === 3) this.pages.push(BigInt(w.next))
  }

  leafPage(): void {
    // leaves: no table entry among them
  }
}
