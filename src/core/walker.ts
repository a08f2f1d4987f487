/**
 * The one table walker: every operation on translation tables (map, unmap, protect, coalesce, the
 * budget count, translate, scan, dump, diff) is a visitor of it or a caller of one that is. Its
 * shape is KVM's kvm_pgtable_walk (arch/arm64/kvm/hyp/pgtable.c): the entries of an input-address
 * range, in order, each given to a table-pre, leaf or table-post callback, over any geometry.
 *
 * Arithmetic is on JS numbers, exact: inputs lie below 2^48, table and output addresses in bits
 * 47:12, and descriptors are read as two 32-bit halves (`lo`, bits 31:0, and `hi`, bits 63:32), so
 * a walk makes no bigint and no object per entry. Tables are granule-sized and stored in 4 KiB
 * memory pages: entry i of a table is in its page i >> 9, at i & 511 there.
 *
 * Code run per entry writes 511 (PAGE_ENTRIES - 1) as a literal: a module constant is a load from
 * the module's context on every use, of a type the JIT does not know (a number it must check, and
 * arithmetic on it that may overflow into a double).
 */
import {ADDRESS_MASK, type Decoded, type DescriptorKind, type Regime, kindOfLow} from './descriptor.js'
import {FINAL_LEVEL, FIRST_LEVEL, type Geometry, MEMORY_PAGE} from './geometry.js'
import type {PhysicalMemory} from './memory.js'
import {hex} from './u64.js'

const TWO_32 = 2 ** 32
const TWO_50 = 2 ** 50
/** Entries in one 4 KiB memory page. */
export const PAGE_ENTRIES = MEMORY_PAGE / 8

/** Where a walk reads table pages, and an edit writes them: memory, or a transaction over it. */
export interface TableAccess {
  /** the 4 KiB page at frame `frame` (address / 4096) as it is now; undefined when all zero */
  page(frame: number): Uint8Array | undefined
  /** the page as it is now, made writable (edits only); what is written there is the page from then on */
  writable?(frame: number): DataView
  /** whether [address, address + bytes) lies in RAM */
  inRam(address: number, bytes: number): boolean
}

/** Reading straight from memory. */
export function memoryAccess(memory: PhysicalMemory): TableAccess {
  const base = Number(memory.base)
  const end = base + Number(memory.size)
  const exact = memory.end <= 2n ** 53n
  return {
    page: (frame) => memory.pageOfFrame(frame),
    inRam: (address, bytes) => (exact ? address >= base && address + bytes <= end : memory.contains(BigInt(address), BigInt(bytes))),
  }
}

/** Reading from memory without keeping the pages it reads from a snapshot (PhysicalMemory.peekFrame): a read-only walk of a large tree. */
export function peekingAccess(memory: PhysicalMemory): TableAccess {
  return {...memoryAccess(memory), page: (frame) => memory.peekFrame(frame)}
}

/** Why a walk did not go down into a table an entry points at. */
export type Unfollowed = 'outside-ram' | 'aliased'

/**
 * A walk's callbacks. Each gets the walker, whose fields describe the current entry. An edit may
 * replace the entry (`TableWalker.set`): a table-pre callback that turns the table into a leaf or
 * clears it (or returns false) stops the walk from going down; a leaf callback that makes a table
 * (a new one, or a block split) sends the walk into it.
 */
export interface Visitor {
  /** a table entry, before the walk goes down into the table */
  tablePre?(w: TableWalker): boolean | void
  /** an entry that is not a table: invalid, block, page or reserved (invalid ones only when the walk asks for them) */
  leaf?(w: TableWalker): void
  /** a table entry, after the walk came back from its table */
  tablePost?(w: TableWalker): void
  /** a table entry the walk does not follow: its table is outside RAM, or the walk has been in it already (a loop or an alias) */
  unfollowed?(w: TableWalker, why: Unfollowed): void
}

export interface WalkOptions {
  /** skip invalid entries and absent (all-zero) table pages: reading walks */
  validOnly?: boolean
  /** go into each table at most once (default); false follows an alias again, as the MMU does for one address */
  once?: boolean
}

/**
 * A walk over one table tree. Fields are the current entry's, valid inside a callback: `level`,
 * `index` (in its table; the root's index spans all its concatenated tables), `table` (the table's
 * address), `addr` and `size` (the input range the entry translates), `start` and `end` (the part of
 * the walk's range inside it), and the descriptor's halves `lo` and `hi`.
 */
export class TableWalker {
  level = 0
  index = 0
  table = 0
  addr = 0
  size = 0
  lo = 0
  hi = 0
  /** the walk's range as the current table sees it */
  private rangeStart = 0
  private rangeStop = 0
  /** set when a callback wrote through the walker (set, writeRun): the loop's page view is stale */
  private wrote = false
  /** the last page made writable, and its frame: a run of sets in one page asks the access once */
  private writableFrame = -1
  private writableView: DataView | undefined
  /** entries past the current one that a callback wrote (writeRun): the walk goes on after them */
  private skip = 0
  /** set by filledBelow(): the walk does not go down into the table the current entry now points at */
  private filled = false
  private visitor: Visitor = NO_VISITOR
  private validOnly = false
  private once = true
  /** set by halt(): the walk returns as soon as the current callback does */
  private halted = false
  /** scan(): the first input address of the current table */
  private tableBase = 0
  /** each table walked into, and the descriptor's address that led there (-1: the root) */
  private readonly seen = new Map<number, number>()
  /** bits 47:32 (with DS, 49:32) of a table address */
  private readonly nextHi: number

  constructor(
    readonly access: TableAccess,
    readonly geometry: Geometry,
  ) {
    this.nextHi = Number(geometry.addressMask >> 32n)
  }

  /** Walks the entries of the tree at `root` that translate [start, end), in input-address order. */
  walk(root: number, start: number, end: number, visitor: Visitor, options: WalkOptions = {}): void {
    this.seen.clear()
    this.seen.set(root, -1)
    this.walkFrom(root, this.geometry.startLevel, 0, start, end, visitor, options)
  }

  /** From a callback: end the walk when the callback returns (no table-post, no further entries). */
  halt(): void {
    this.halted = true
  }

  /** Whether a callback has called halt() in this walk. */
  get halting(): boolean {
    return this.halted
  }

  /** For a ScanSink's leafPage(): makes entry `i` of the current table, in `words` (its page's), the current entry. */
  at(i: number, words: Uint32Array): void {
    const k = (i & 511) * 2
    this.index = i
    this.addr = this.tableBase + i * this.size
    this.lo = words[k]!
    this.hi = words[k + 1]!
  }

  /** The same from the table at `table` and `level` that translates from `base`: a subtree. */
  walkFrom(table: number, level: number, base: number, start: number, end: number, visitor: Visitor, options: WalkOptions = {}): void {
    const saved = [this.visitor, this.validOnly, this.once] as const
    this.visitor = visitor
    this.validOnly = options.validOnly ?? false
    this.once = options.once ?? true
    this.halted = false
    try {
      this.visitTable(table, level, base, start, end)
    } finally {
      ;[this.visitor, this.validOnly, this.once] = saved
    }
  }

  /** The current descriptor as one 64-bit value. */
  get raw(): bigint {
    return rawOf(this.lo, this.hi)
  }

  /** A table entry's next-level table: bits 47:granule (with DS, 49:granule and 51:50 from bits 9:8). */
  get next(): number {
    return (this.hi & this.nextHi) * TWO_32 + ((this.lo & this.geometry.addressMaskLo) >>> 0) + (this.geometry.ds ? ((this.lo >>> 8) & 3) * TWO_50 : 0)
  }

  /** A leaf's output address: bits 47:shift(level) (with DS, 49:shift(level) and 51:50 from bits 9:8). */
  get output(): number {
    const i = this.level - FIRST_LEVEL
    const g = this.geometry
    return (this.hi & g.outputHi[i]!) * TWO_32 + ((this.lo & g.outputLo[i]!) >>> 0) + (g.ds ? ((this.lo >>> 8) & 3) * TWO_50 : 0)
  }

  /** The first input address of the walk's range inside the current entry. */
  get start(): number {
    return this.rangeStart > this.addr ? this.rangeStart : this.addr
  }

  /** The end of the walk's range inside the current entry. */
  get end(): number {
    const end = this.addr + this.size
    return this.rangeStop < end ? this.rangeStop : end
  }

  /** Whether the current entry covers the whole of its input range inside the walk's range. */
  get whole(): boolean {
    return this.rangeStart <= this.addr && this.rangeStop >= this.addr + this.size
  }

  /** The 4 KiB page holding the current entry, and the entry's offset in it. */
  private get frame(): number {
    return this.table / MEMORY_PAGE + (this.index >>> 9)
  }

  private get offset(): number {
    return (this.index & 511) * 8
  }

  /** Replaces the current entry (an edit walk: the access must be writable). */
  set(lo: number, hi: number): void {
    const view = this.writablePage(this.frame)
    const offset = this.offset
    view.setUint32(offset, lo >>> 0, true)
    view.setUint32(offset + 4, hi >>> 0, true)
    this.wrote = true
    this.lo = lo >>> 0
    this.hi = hi >>> 0
  }

  /**
   * Writes leaves into the current entry and the invalid entries after it in this table that lie
   * wholly inside the walk's range, output `output` and on by the entry size, with the attribute
   * halves `attrLo` | `attrHi`: one typed-array loop for a run of a map. Stops at the first valid
   * entry. Returns how many it wrote; the walk goes on after them.
   */
  writeRun(output: number, attrLo: number, attrHi: number): number {
    const size = this.size
    const inRange = Math.floor((this.rangeStop - this.addr) / size)
    const limit = Math.min(this.geometry.entriesAt(this.level) - this.index, inRange)
    const tableFrame = this.table / MEMORY_PAGE
    let hi = Math.floor(output / TWO_32)
    let lo = output - hi * TWO_32
    let n = 0
    while (n < limit) {
      const index = this.index + n
      const view = this.writablePage(tableFrame + (index >>> 9))
      const pageEnd = Math.min(limit, n + PAGE_ENTRIES - (index & (PAGE_ENTRIES - 1)))
      for (let offset = (index & (PAGE_ENTRIES - 1)) * 8; n < pageEnd; n++, offset += 8) {
        if ((view.getUint32(offset, true) & 1) === 1) return this.endRun(n)
        view.setUint32(offset, (lo | attrLo) >>> 0, true)
        view.setUint32(offset + 4, (hi | attrHi) >>> 0, true)
        lo += size
        if (lo >= TWO_32) {
          const carry = Math.floor(lo / TWO_32)
          hi += carry
          lo -= carry * TWO_32
        }
      }
    }
    return this.endRun(n)
  }

  /**
   * From a leaf callback that hung a new table at the current entry (set) and wrote all it needs
   * into it: the walk goes on with the next entry instead of going down into the table.
   */
  filledBelow(): void {
    this.filled = true
  }

  private endRun(n: number): number {
    this.skip = n > 0 ? n - 1 : 0
    this.wrote = true
    const view = this.writablePage(this.frame)
    this.lo = view.getUint32(this.offset, true)
    this.hi = view.getUint32(this.offset + 4, true)
    return n
  }

  private writablePage(frame: number): DataView {
    if (frame !== this.writableFrame) {
      this.writableView = this.access.writable!(frame)
      this.writableFrame = frame
    }
    return this.writableView!
  }

  // scanTable repeats this loop's read side for speed (see scan): a rule changed here changes there too
  private visitTable(table: number, level: number, base: number, start: number, end: number): void {
    const g = this.geometry
    const access = this.access
    const visitor = this.visitor
    const size = g.entryBytes(level)
    const count = g.entriesAt(level)
    const first = start > base ? Math.floor((start - base) / size) : 0
    const last = Math.min(count - 1, Math.floor((end - 1 - base) / size))
    const tableFrame = table / MEMORY_PAGE
    let frame = -1
    let view: DataView | undefined
    for (let i = first; i <= last; i++) {
      const f = tableFrame + (i >>> 9)
      if (f !== frame) {
        frame = f
        const bytes = access.page(f)
        view = bytes === undefined ? undefined : new DataView(bytes.buffer, bytes.byteOffset, MEMORY_PAGE)
        if (view === undefined && this.validOnly) {
          i = ((i >>> 9) + 1) * PAGE_ENTRIES - 1 // the rest of this page: all invalid
          continue
        }
      }
      const offset = (i & 511) * 8
      const lo = view === undefined ? 0 : view.getUint32(offset, true)
      if ((lo & 1) === 0 && this.validOnly) continue
      this.level = level
      this.index = i
      this.table = table
      this.addr = base + i * size
      this.size = size
      this.rangeStart = start
      this.rangeStop = end
      this.lo = lo
      this.hi = view === undefined ? 0 : view.getUint32(offset + 4, true)
      if (level < FINAL_LEVEL && (lo & 3) === 3) {
        const go = visitor.tablePre === undefined || visitor.tablePre(this) !== false
        if (this.halted) return
        if (this.wrote) {
          view = this.writablePage(f)
          this.wrote = false
        }
        if (!go || (this.lo & 3) !== 3) continue // stopped, or the callback replaced the table
      } else {
        if (visitor.leaf !== undefined) visitor.leaf(this)
        if (this.halted) return
        if (this.wrote) {
          view = this.writablePage(f)
          this.wrote = false
        }
        if (this.skip > 0) {
          i += this.skip
          this.skip = 0
          frame = -1 // the run may have ended in another page
          continue
        }
        if (level === FINAL_LEVEL || (this.lo & 3) !== 3) continue
        if (this.filled) {
          this.filled = false
          continue
        }
      }
      this.descend()
      if (this.halted) return
      if (this.wrote) {
        // table-post replaced the entry
        view = this.writablePage(f)
        this.wrote = false
      }
    }
  }

  /**
   * A read-only walk of the valid entries of the tree at `root` that translate [start, end), for
   * scanTables and ScanCursor: what walk() with validOnly does with `sink.entry` as table-pre, leaf and
   * unfollowed (a table entry's call returning false keeps the walk out of its table), and going into
   * each table once. `fresh` false remembers the tables earlier scans went into (a scan in parts goes on
   * through a table that spans both parts; reached through another descriptor, it is still an alias).
   *
   * Its loop (scanTable) is visitTable's read side alone, kept apart for speed (issue 13): no edit to
   * look for after a callback, each table page read once into a typed array, the table's own fields
   * written once per table and only the entry's (index, addr, lo, hi) per entry. Any rule of the walk
   * it shares with visitTable (the entries in range, the absent pages, descend's checks) must change
   * in both.
   */
  scan(root: number, start: number, end: number, sink: ScanSink, fresh = true): void {
    if (fresh) this.seen.clear()
    if (!this.seen.has(root)) this.seen.set(root, -1)
    this.halted = false
    this.scanTable(root, this.geometry.startLevel, 0, start, end, sink)
  }

  private scanTable(table: number, level: number, base: number, start: number, end: number, sink: ScanSink): void {
    const g = this.geometry
    const access = this.access
    const size = g.entryBytes(level)
    const first = start > base ? Math.floor((start - base) / size) : 0
    const last = Math.min(g.entriesAt(level) - 1, Math.floor((end - 1 - base) / size))
    const tableFrame = table / MEMORY_PAGE
    const final = level === FINAL_LEVEL
    const batch = sink.leafPage !== undefined
    this.level = level
    this.table = table
    this.tableBase = base
    this.size = size
    this.rangeStart = start
    this.rangeStop = end
    let i = first
    while (i <= last) {
      const pageLast = Math.min(last, i | (PAGE_ENTRIES - 1))
      const bytes = access.page(tableFrame + (i >>> 9))
      if (bytes === undefined) {
        i = pageLast + 1 // an absent page: all invalid
        continue
      }
      const words = pageWords(bytes)
      if (batch && final) {
        // a final-level page: entries only, no table to go into
        sink.leafPage!(this, words, i, pageLast)
        if (this.halted) return
        i = pageLast + 1
        continue
      }
      for (; i <= pageLast; i++) {
        const at = (i & 511) * 2
        const lo = words[at]!
        if ((lo & 1) === 0) continue
        if (batch && (lo & 2) === 0) {
          // a block: it and the entries after it up to the next table entry, in one call (their
          // type bits read as bytes, which are small integers even to code not yet compiled: a
          // word of 2^31 or more read there would be a new heap number)
          const j = nextTableEntry(bytes, i + 1, pageLast)
          sink.leafPage!(this, words, i, j - 1)
          if (this.halted) return
          i = j - 1
          continue
        }
        this.index = i
        this.addr = base + i * size
        this.lo = lo
        this.hi = words[at + 1]!
        if (final || (lo & 2) === 0) {
          sink.entry(this, undefined)
          if (this.halted) return
          continue
        }
        const go = sink.entry(this, undefined) !== false
        if (this.halted) return
        if (!go) continue
        this.scanDown(sink)
        if (this.halted) return
        // the fields again, as the table below left them
        this.level = level
        this.table = table
        this.tableBase = base
        this.size = size
        this.rangeStart = start
        this.rangeStop = end
      }
    }
  }

  /**
   * Whether the walk may go into the table at `next` from the current entry, which it then records:
   * a table not walked into yet, or one reached before through this same descriptor (going on, as a
   * scan in parts does); false for an alias or a loop. (A table not seen counts as reached through
   * this descriptor: one comparison, made every time, so the compiled code has seen it before a walk
   * first reaches a table again, which would discard it.)
   */
  private enter(next: number): boolean {
    const by = this.table + this.index * 8
    if ((this.seen.get(next) ?? by) !== by) return false
    this.seen.set(next, by)
    return true
  }

  /** descend() for scan(): the same checks (in RAM, not walked into already), no table-post. */
  private scanDown(sink: ScanSink): void {
    const next = this.next
    if (!this.access.inRam(next, this.geometry.granule)) {
      sink.entry(this, 'outside-ram')
      return
    }
    if (!this.enter(next)) {
      sink.entry(this, 'aliased')
      return
    }
    this.scanTable(next, this.level + 1, this.addr, this.start, this.end, sink)
  }

  /** Goes down into the table the current entry points at, then calls table-post with the entry restored. */
  private descend(): void {
    const next = this.next
    const visitor = this.visitor
    if (!this.access.inRam(next, this.geometry.granule)) {
      visitor.unfollowed?.(this, 'outside-ram')
      return
    }
    if (this.once && !this.enter(next)) {
      visitor.unfollowed?.(this, 'aliased')
      return
    }
    const {level, index, table, addr, size, rangeStart, rangeStop, lo, hi} = this
    this.visitTable(next, level + 1, addr, this.start, this.end)
    if (visitor.tablePost === undefined || this.halted) return
    this.level = level
    this.index = index
    this.table = table
    this.addr = addr
    this.size = size
    this.rangeStart = rangeStart
    this.rangeStop = rangeStop
    // the entry as it was: nothing below it writes it (a table is entered once)
    this.lo = lo
    this.hi = hi
    visitor.tablePost(this)
  }
}

const NO_VISITOR: Visitor = {}

/**
 * What scan() reports to: `entry` is called with each valid entry (returning false on a table entry
 * keeps the scan out of its table), and with a table entry the scan does not follow, and why.
 *
 * An object with a method rather than a function, for speed: V8 inlines a method call at one call
 * site for up to four classes of receiver, while functions passed in through one parameter make the
 * call megamorphic (a real call per entry, a third of a scan's time) as soon as a second kind is
 * used. So the scan's own kinds of consumer are classes of their own: RangeMerger (walkRanges),
 * WalkTablesSink (walkTables), ScanCursor, and VisitSink for a scanTables callback.
 */
export interface ScanSink {
  entry(w: TableWalker, unfollowed?: Unfollowed): boolean | void
  /**
   * Optional, for speed: the entries `first` to `last` of the current table, all in one memory page
   * (`words`, its 32-bit words) and none of them a table descriptor (a page of a final-level table,
   * or the blocks between two table entries of a table above), in one call instead of entry() for
   * each valid one (a call per page or run, the loop in the sink's own code, so inlined there
   * whatever other sinks exist). It must do what entry() would, in order, skipping invalid entries
   * (bit 0 clear), and look at `w.level` for what a valid one is; an entry is on `w`
   * (its fields, and what reads them) only once `w.at(i, words)` has made it current, so a sink that
   * reads the words itself need not (bench/anchor.js's census counts a page in local variables);
   * after a halt it stops.
   */
  leafPage?(w: TableWalker, words: Uint32Array, first: number, last: number): void
}

/** Whether this machine stores a Uint32Array's words little-endian, as descriptors are: then a page is read as words, without a DataView. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * A table page as 32-bit words, the descriptors' halves (entry i: words 2i, low, and 2i + 1, high):
 * the page's own bytes when the machine is little-endian and they are 4-byte aligned, else a copy.
 */
export function pageWords(bytes: Uint8Array): Uint32Array {
  if (LITTLE_ENDIAN && (bytes.byteOffset & 3) === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, MEMORY_PAGE / 4)
  const view = new DataView(bytes.buffer, bytes.byteOffset, MEMORY_PAGE)
  const words = new Uint32Array(MEMORY_PAGE / 4)
  for (let k = 0; k < words.length; k++) words[k] = view.getUint32(k * 4, true)
  return words
}

/** The descriptor as one exact 64-bit value. */
export const rawOf = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)

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
  /** set when the walk cannot follow a table descriptor (its target is outside RAM, or was reached already) */
  problem?: string
}

/**
 * Called for each valid descriptor, in input-address order, before the walk descends into the table
 * it points at (walker fields: see TableWalker). `unfollowed` is set on a table entry the walk does
 * not go down into.
 */
export type Visit = (w: TableWalker, unfollowed?: Unfollowed) => void

/** A page or run of leaves, as ScanSink.leafPage has them, for a ScanCursor's caller. */
export type PageVisit = (w: TableWalker, words: Uint32Array, first: number, last: number) => void

/**
 * Memory read as a walk sees it (through `access`: memoryAccess by default), with the pages at
 * `unreadable` frames read as all zero (invalid entries): a walk over a snapshot whose damaged pages
 * cannot be read (snapshot verify).
 */
export function skippingAccess(memory: PhysicalMemory, unreadable: ReadonlySet<number>, access: TableAccess = memoryAccess(memory)): TableAccess {
  return {page: (frame) => (unreadable.has(frame) ? undefined : access.page(frame)), inRam: (address, bytes) => access.inRam(address, bytes)}
}

/**
 * Every valid entry of the tree at `root`, over numbers: reads each table page once, skips invalid
 * entries on bit 0 and untouched (all-zero) pages, goes into each table at most once (a loop or an
 * alias is reported, not followed) and never outside RAM.
 */
export function scanTables(memory: PhysicalMemory, root: bigint, geometry: Geometry, visit: Visit | ScanSink, access: TableAccess = memoryAccess(memory)): void {
  const walker = new TableWalker(access, geometry)
  const rootTable = Number(root & geometry.addressMask)
  if (!walker.access.inRam(rootTable, geometry.tableBytes(geometry.startLevel))) return
  walker.scan(rootTable, 0, 2 ** geometry.inputBits, typeof visit === 'function' ? new VisitSink(visit) : visit)
}

/** A scanTables callback as a ScanSink. */
class VisitSink implements ScanSink {
  constructor(private readonly visit: Visit) {}

  entry(w: TableWalker, unfollowed?: Unfollowed): boolean | void {
    return this.visit(w, unfollowed)
  }

  leafPage(w: TableWalker, words: Uint32Array, first: number, last: number): void {
    const visit = this.visit
    for (let i = first; i <= last; i++) {
      if ((words[(i & 511) * 2]! & 1) === 0) continue
      w.at(i, words)
      visit(w, undefined)
      if (w.halting) return
    }
  }
}

/**
 * The first entry from `from` to `last` of the table page `bytes` whose type bits say table (3), or
 * last + 1. A function of its own, not a loop in scanTable: scanTable's optimized code inlines its
 * sink's calls and takes V8 tens of milliseconds to make, so a whole-process walk of 512 GiB in 2 MiB
 * blocks ran this loop, once an entry, in baseline code to its end; on its own the loop is compiled
 * within the first few tables (dump tables --json 20 ms faster, --format ranges 13 ms).
 */
function nextTableEntry(bytes: Uint8Array, from: number, last: number): number {
  let j = from
  while (j <= last && (bytes[(j & 511) * 8]! & 3) !== 3) j++
  return j
}

/**
 * scanTables in parts: `run` scans on until a visit calls `stop` (before doing anything with its
 * entry) or the tree ends; the next `run` starts with that entry. The entries, and the words on
 * tables not followed, are exactly scanTables' and in its order, with nothing kept per entry: a
 * writer stops when its reader is behind and goes on once it has caught up.
 *
 * A walk visits entries in the order of (input address, level); going on from an entry re-walks the
 * range from its address, and the entries before it there (the tables above it) are passed over.
 */
export class ScanCursor implements ScanSink {
  private readonly walker: TableWalker
  private readonly rootTable: number
  private readonly end: number
  /** where the next run starts: the entry stopped at (none passed over before the first: a level -1 root's entry at 0 is visited) */
  private addr = 0
  private level = -Infinity
  private started = false
  private stopped = false
  private visit: Visit = () => {}
  private page: PageVisit | undefined

  constructor(memory: PhysicalMemory, root: bigint, geometry: Geometry, access: TableAccess = memoryAccess(memory)) {
    this.walker = new TableWalker(access, geometry)
    this.rootTable = Number(root & geometry.addressMask)
    this.end = 2 ** geometry.inputBits
  }

  /**
   * Scans on, calling `visit` as scanTables does, or `page` with a page or run of leaves as a
   * ScanSink's leafPage has them (the entries passed over left out); returns true when the tree has
   * been scanned to its end.
   */
  run(visit: Visit, page?: PageVisit): boolean {
    const w = this.walker
    if (!this.started) {
      this.started = true
      if (!w.access.inRam(this.rootTable, w.geometry.tableBytes(w.geometry.startLevel))) return true
    }
    this.visit = visit
    this.page = page
    this.stopped = false
    w.scan(this.rootTable, this.addr, this.end, this, false)
    return !this.stopped
  }

  /** The scan's calls (ScanSink), not the caller's. */
  entry(w: TableWalker, unfollowed?: Unfollowed): boolean | void {
    if (unfollowed !== undefined) {
      this.visit(w, unfollowed)
      return
    }
    if (this.passedOver(w)) return true
    this.visit(w)
    return !this.stopped
  }

  /** The scan's calls (ScanSink), not the caller's: to `page`, or entry by entry to `visit`. */
  leafPage(w: TableWalker, words: Uint32Array, first: number, last: number): void {
    const page = this.page
    for (let i = first; i <= last; i++) {
      if ((words[(i & 511) * 2]! & 1) === 0) continue
      w.at(i, words)
      if (this.passedOver(w)) continue
      if (page !== undefined) {
        page(w, words, i, last)
        return
      }
      this.visit(w)
      if (this.stopped) return
    }
  }

  /** An entry before the one the last part stopped at (a table above it, or a leaf). */
  private passedOver(w: TableWalker): boolean {
    return w.addr < this.addr || (w.addr === this.addr && w.level < this.level)
  }

  /** From a visit (not an unfollowed one), before using its entry: stop there; the next run starts with it. */
  stop(w: TableWalker): void {
    this.addr = w.addr
    this.level = w.level
    this.stopped = true
    w.halt()
  }
}

/** The table pages a scan's walker reports on (unfollowed), in words. */
export function describeUnfollowed(next: number, why: Unfollowed): string {
  return why === 'outside-ram' ? `next-level table ${hex(BigInt(next))} is outside RAM` : `next-level table ${hex(BigInt(next))} was reached already (a loop or an alias): not walked again`
}

/** The fields that describe a walk's entry (TableWalker's, and a WalkCursor's). */
type EntryFields = Pick<TableWalker, 'level' | 'index' | 'table' | 'addr' | 'size' | 'lo' | 'hi'>

/**
 * The current entry of a walkTables walk: one object for the whole walk, describing each entry in
 * turn (walkTables' sink sets its fields before each visit), so a walk makes nothing per entry.
 * Numbers as TableWalker has them: `level`, `index` (in its table), `table` (the table's address),
 * `addr` and `size` (the input range the entry translates), the descriptor's halves `lo` and `hi`;
 * `problem` is set on a table entry the walk does not follow. The bigint and decoded forms are made
 * on demand; a visit that keeps an entry copies it (entry()). Fields of its own, not getters over
 * the walker's or a held entry's: a visit reads one kind of object. In a page of leaves (most of a
 * walk) the cursor moves by one number, the entry's word in the page: `index`, `lo` and `hi` are
 * read from the page's words (three stores an entry were 7% of walkTables' time under the anchor's
 * visit); an entry copied from elsewhere is two words of the cursor's own.
 */
export class WalkCursor {
  problem: string | undefined = undefined
  level = 0
  table = 0
  size = 0
  /** the first input address of the entry's table */
  private base = 0
  /** the descriptor is words[k] and words[k + 1], its index first + k / 2: a page's words, or `own` */
  private words: Uint32Array = new Uint32Array(2)
  private k = 0
  private first = 0
  /** the halves of an entry copied in (copy()) */
  private readonly own = this.words

  get index(): number {
    return this.first + (this.k >> 1)
  }

  get lo(): number {
    return this.words[this.k]!
  }

  get hi(): number {
    return this.words[this.k + 1]!
  }

  /** walkTables' own: shows entries of the table page `words`, whose entry 0 has index `first` (then at()). */
  page(words: Uint32Array, first: number): void {
    this.words = words
    this.first = first
  }

  /** walkTables' own: shows the page's entry at word k (page()). */
  at(k: number): void {
    this.k = k
  }

  constructor(
    readonly regime: Regime,
    readonly geometry: Geometry,
  ) {}

  get addr(): number {
    return this.base + this.index * this.size
  }

  /** walkTables' own: shows the walker's current entry, or another cursor's. */
  copy(w: EntryFields): void {
    this.level = w.level
    this.table = w.table
    this.size = w.size
    this.base = w.addr - w.index * w.size
    const own = this.own
    own[0] = w.lo
    own[1] = w.hi
    this.words = own
    this.k = 0
    this.first = w.index
  }

  /** The descriptor as one 64-bit value. */
  get raw(): bigint {
    return rawOf(this.lo, this.hi)
  }

  /** What the descriptor is (never invalid: a walk lists valid entries only). */
  get kind(): DescriptorKind {
    return kindOfLow(this.lo, this.level, this.geometry)
  }

  /** The descriptor read by the regime's rules (a new object). */
  get decoded(): Decoded {
    return this.regime.decode(this.raw, this.level, this.geometry)
  }

  /** The first input address the entry translates, as a bigint. */
  get ipa(): bigint {
    return BigInt(this.addr)
  }

  /** The entry as a WalkEntry of its own, to keep. */
  entry(): WalkEntry {
    const e: WalkEntry = {level: this.level, index: this.index, table: BigInt(this.table), ipa: BigInt(this.addr), size: this.geometry.entrySize(this.level), decoded: this.decoded}
    if (this.problem !== undefined) e.problem = this.problem
    return e
  }
}

/**
 * Reads a table tree back out of memory, in input-address order, decoding by the regime's rules:
 * calls `visit` with the cursor on every valid entry (tables, blocks, pages and reserved encodings).
 * A table entry the walk does not follow is visited once, with its problem set. Nothing is made per
 * entry: a visit copies what it keeps (cursor.entry() for a WalkEntry).
 *
 * A table entry is visited once the walk knows whether it goes into the table (its problem): on the
 * next entry of the scan, or at its end; the order is scanTables'.
 */
export function walkTables(memory: PhysicalMemory, regime: Regime, root: bigint, geometry: Geometry, visit: (cursor: WalkCursor) => void, access: TableAccess = memoryAccess(memory)): void {
  const walker = new TableWalker(access, geometry)
  const rootTable = Number(root & geometry.addressMask)
  if (!access.inRam(rootTable, geometry.tableBytes(geometry.startLevel))) return
  const sink = new WalkTablesSink(new WalkCursor(regime, geometry), visit)
  walker.scan(rootTable, 0, 2 ** geometry.inputBits, sink)
  sink.finish()
}

/** Every valid entry walkTables visits, each copied (cursor.entry()), in walk order: for callers that keep them all. */
export function walkEntries(memory: PhysicalMemory, regime: Regime, root: bigint, geometry: Geometry, access?: TableAccess): WalkEntry[] {
  const entries: WalkEntry[] = []
  walkTables(memory, regime, root, geometry, (c) => void entries.push(c.entry()), access)
  return entries
}

/**
 * walkTables' ScanSink: visits each entry through the cursor, a table entry once its problem is
 * known. The walker's current entry is copied into the cursor; a table entry waits in a cursor of
 * its own (held) for the next entry or the walk's end to show whether it is followed.
 */
class WalkTablesSink implements ScanSink {
  /** a table entry not visited yet: `held` holds it */
  private pending = false
  private readonly held: WalkCursor

  constructor(
    private readonly c: WalkCursor,
    private readonly visit: (cursor: WalkCursor) => void,
  ) {
    this.held = new WalkCursor(c.regime, c.geometry)
  }

  entry(w: TableWalker, unfollowed: Unfollowed | undefined): void {
    const c = this.c
    if (unfollowed !== undefined) {
      // the entry held is the walker's current one still
      this.pending = false
      c.copy(w)
      c.problem = describeUnfollowed(w.next, unfollowed)
      this.visit(c)
      c.problem = undefined
      return
    }
    if (this.pending) this.flush()
    if (w.level < FINAL_LEVEL && (w.lo & 3) === 3) {
      this.held.copy(w)
      this.pending = true
    } else {
      c.copy(w)
      this.visit(c)
    }
  }

  leafPage(w: TableWalker, words: Uint32Array, first: number, last: number): void {
    if (this.pending) this.flush()
    const c = this.c
    const visit = this.visit
    w.at(first, words)
    c.copy(w)
    // one induction variable, the word's index k (the entry's index is the page's first plus k / 2),
    // bounded by literals: with PAGE_ENTRIES the bound may be a double, and so k (10% slower)
    c.page(words, first & ~511)
    for (let k = (first & 511) * 2, end = (last & 511) * 2; k <= end; k += 2) {
      if ((words[k]! & 1) === 0) continue
      c.at(k)
      visit(c)
    }
  }

  /** The last entry, when it is a table entry. */
  finish(): void {
    if (this.pending) this.flush()
  }

  private flush(): void {
    this.pending = false
    const {c, held} = this
    c.copy(held)
    this.visit(c)
  }
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
    if (last !== undefined && last.level === e.level && last.end === e.ipa && (last.decoded.raw & ~ADDRESS_MASK) === attributes && last.outputStart + (last.end - last.start) === leaf.outputAddress) {
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
export function walkRanges(memory: PhysicalMemory, regime: Regime, root: bigint, geometry: Geometry, access?: TableAccess): RangeWalk {
  const merger = new RangeMerger(regime, geometry)
  scanTables(memory, root, geometry, merger, access)
  return merger.finish()
}

/** The open range of a RangeMerger past its `keep`: merged on its numbers, not kept. */
const PAST_KEEP: Range = {start: 0n, end: 0n, level: -1, outputStart: 0n, decoded: {raw: 0n, level: -1, kind: 'reserved'}, entries: 0}

/** What RangeMerger.add reads of an entry: a scan's walker, or a walkTables cursor. */
export type RangeEntry = Pick<TableWalker, 'level' | 'addr' | 'size' | 'lo' | 'hi' | 'raw'>

/**
 * mergeRanges over the entries of a scan (scanTables), as they come: for a caller that walks once
 * and wants the ranges too (`walkRanges`, `dump tables --json`). With `emit`, each range is handed
 * to it once it is complete (the next one begun, or finish()) and not kept: the ranges of a tree of
 * any size, in constant memory (`snapshot show`).
 */
export class RangeMerger implements ScanSink {
  private readonly ranges: Range[] = []
  /** ranges made, kept or not */
  private made = 0
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

  /**
   * `keep`: the most ranges kept (the rest are counted only, and decoded once each), for a listing
   * that shows the first few or none; `emit`: takes every range instead, none kept
   */
  constructor(
    private readonly regime: Regime,
    private readonly geometry: Geometry,
    private readonly keep = Infinity,
    private readonly emit?: (range: Range) => void,
  ) {}

  /** As a scan's sink (scanTables): adds each entry, not the words on a table not followed. */
  entry(w: TableWalker, unfollowed?: Unfollowed): void {
    if (unfollowed === undefined) this.add(w)
  }

  /**
   * add() for a page or run of leaves (ScanSink). The entries after a leaf that continue its range
   * are found by their words alone, in a loop of their own (no field written per entry: a store and
   * a load the next entry waits on): the same high word, and the low word one entry size more each
   * (the same attributes, the next output address) up to a carry into the high word; the leaf and
   * they go to addRun() at once, and the first that differs starts again.
   */
  leafPage(w: TableWalker, words: Uint32Array, first: number, last: number): void {
    w.at(first, words)
    const leafBits = this.geometry.leafBits[w.level - FIRST_LEVEL]!
    const size = w.size
    // the size as an int32, for the words' arithmetic: congruent to it modulo 2^32 (a block of 4 GiB
    // or more adds nothing to the low word, and then `limit` allows no run)
    const step = size | 0
    // the words as int32, so that the run's comparisons below are small-integer ones (and code not
    // yet compiled makes no heap number of a word of 2^31 or more)
    const ints = new Int32Array(words.buffer, words.byteOffset, words.length)
    for (let i = first; i <= last; i++) {
      const k = (i & 511) * 2
      const lo = ints[k]!
      if ((lo & 1) === 0) continue
      w.at(i, words)
      if ((lo & 3) !== leafBits) {
        this.add(w)
        continue
      }
      // the run after it: up to the entry where the low word would carry
      const hi = ints[k + 1]!
      const limit = Math.min(last, i + Math.floor((0xffff_ffff - (lo >>> 0)) / size))
      let j = i + 1
      let next = (lo + step) | 0
      while (j <= limit) {
        const kj = (j & 511) * 2
        if (ints[kj]! !== next || ints[kj + 1]! !== hi) break
        j++
        next = (next + step) | 0
      }
      this.addRun(w, j - i - 1)
      i = j - 1
    }
  }

  /** The next valid entry of the walk (a walkTables cursor's too). */
  add(w: RangeEntry): void {
    this.entries++
    const level = w.level
    const lo = w.lo
    const g = this.geometry
    const l = level - FIRST_LEVEL
    // isLeafLow and w.output, inline: a call per entry returning a double costs a heap number
    if ((lo & 3) !== g.leafBits[l]) return
    this.leaves++
    const hi = w.hi
    const size = w.size
    const output = (hi & g.outputHi[l]!) * TWO_32 + ((lo & g.outputLo[l]!) >>> 0) + (g.ds ? ((lo >>> 8) & 3) * TWO_50 : 0)
    const ipa = w.addr
    const aLo = lo & 0xfff
    const aHi = hi >>> 16
    if (this.open !== undefined && level === this.level && ipa === this.end && aLo === this.attrLo && aHi === this.attrHi && output === this.outputEnd) {
      this.end += size
      this.outputEnd += size
      this.count++
      return
    }
    this.begin(w, output, aLo, aHi)
  }

  /**
   * add() for the current entry and the `more` entries after it that go on from it (each descriptor
   * one entry size more, and no carry into its high word: the same attributes, the next input and
   * output addresses), as add() of each would: for a caller that has found the run already.
   */
  addRun(w: RangeEntry, more: number): void {
    this.add(w)
    this.entries += more
    if ((w.lo & 3) !== this.geometry.leafBits[w.level - FIRST_LEVEL]) return
    this.leaves += more
    this.count += more
    this.end += more * w.size
    this.outputEnd += more * w.size
  }

  /** A new range from the current entry (apart from add, which stays small enough to inline into a scan's loop). */
  private begin(w: RangeEntry, output: number, aLo: number, aHi: number): void {
    const level = w.level
    const ipa = w.addr
    const size = w.size
    this.close()
    this.made++
    if (this.emit !== undefined || this.ranges.length < this.keep) {
      const decoded = this.regime.decode(w.raw, level, this.geometry)
      this.open = {start: BigInt(ipa), end: 0n, level, outputStart: decoded.leaf!.outputAddress, decoded, entries: 0}
      if (this.emit === undefined) this.ranges.push(this.open)
    } else this.open = PAST_KEEP
    this.level = level
    this.end = ipa + size
    this.outputEnd = output + size
    this.attrLo = aLo
    this.attrHi = aHi
    this.count = 1
  }

  /** The ranges and counts of everything added (with `emit`, no ranges: each has gone to it). */
  finish(): RangeWalk {
    this.close()
    this.open = undefined
    return {ranges: this.ranges, entries: this.entries, leaves: this.leaves}
  }

  /** How many ranges were made (finish().ranges holds the first `keep` of them). */
  get rangeCount(): number {
    return this.made
  }

  private close(): void {
    if (this.open === undefined || this.open === PAST_KEEP) return
    this.open.end = BigInt(this.end)
    this.open.entries = this.count
    this.emit?.(this.open)
  }
}
