/**
 * A semantic diff of two machines (two snapshots): layout, heap state, mapper state, the mappings the
 * tables make (compared per input address), the table pages themselves, and every other byte of memory.
 *
 * Memory is compared page by page over the stored (non-zero) pages of each side, merged in address
 * order. A caller that has each page's CRC-32 (a version-2 snapshot index) passes it: a different CRC
 * proves a page changed, an equal one is only a hint, so those pages are still compared byte for byte
 * (one memcmp). Changed pages are scanned 32 bits at a time; addresses inside the scan are JS numbers,
 * exact because RAM lies below 2^40.
 */
import {ADDRESS_MASK, type Decoded, TABLE_OR_PAGE} from './descriptor.js'
import type {Checkpoint, Machine} from './machine.js'
import type {IdentityMapper} from './mapper.js'
import {PAGE_BYTES, type PhysicalMemory} from './memory.js'
import {type PageList, memoryPages, pageAt} from './page-list.js'
import {type Range, RangeMerger, TableWalker, memoryAccess, pageWords, walkRanges} from './walker.js'

/** One side of a diff: a machine, and (optionally) its stored pages with their CRCs. */
export interface DiffSide {
  machine: Machine
  /** default: the machine's non-zero pages (read from memory, no CRCs) */
  pages?: PageList
}

export interface DiffOptions {
  /** called now and then with the pages compared so far and the total */
  onProgress?: (done: number, total: number) => void
}

export interface Layout {
  ramBase: bigint
  ramSize: bigint
  heapStart: bigint
  heapSize: bigint
}

/** A value in both snapshots and how far it moved (new - old). */
export interface Moved {
  old: bigint
  new: bigint
  delta: bigint
}

export interface HeapDiff {
  next: Moved
  allocated: Moved
  remaining: Moved
  changed: boolean
}

export interface MapperSummary {
  regime: string
  /** Geometry.describe('input'): granule, input and PA size, start level, concatenation (the regime is its own field) */
  geometry: string
  root: bigint
  vmid: number
  l2Budget: number
  orphanedTables: number
  registers: Array<{name: string; value: bigint}>
}

export interface MapperDiff {
  change: 'added' | 'removed' | 'changed'
  old: IdentityMapper | undefined
  new: IdentityMapper | undefined
  /** the fields that differ (mapper state fields, then register names), for 'changed' */
  fields: string[]
}

/** A leaf mapping as one side sees a changed range: the output of its first address, and the leaf descriptor translating that address. */
export interface MappingSide {
  outputStart: bigint
  level: number
  decoded: Decoded
}

export interface MappingChange {
  change: 'added' | 'removed' | 'changed'
  start: bigint
  end: bigint
  old: MappingSide | undefined
  new: MappingSide | undefined
}

export interface TableChange {
  change: 'appeared' | 'disappeared' | 'changed'
  address: bigint
  /** the table's level (in the new snapshot, or the old one for a table that disappeared) */
  level: number
  /** 64-bit entries whose value differs between the two snapshots' bytes of this page */
  entriesChanged: number
}

/** A run of changed bytes: [address, address + length), of which `differing` bytes differ. */
export interface ByteRange {
  address: bigint
  length: number
  differing: number
}

export interface SnapshotDiff {
  same: boolean
  layout: {old: Layout; new: Layout; fields: Array<keyof Layout>} | undefined
  heap: HeapDiff
  mapper: MapperDiff | undefined
  mappings: MappingChange[]
  tables: TableChange[]
  memory: ByteRange[]
}

/**
 * Runs of differing bytes closer than this are one range: a changed 64-bit descriptor or value is one
 * range even where some of its bytes happen to be equal.
 */
export const MERGE_GAP = 8

const PAGE = PAGE_BYTES
const WORDS = PAGE_BYTES / 4
const ZERO_PAGE = new Uint8Array(PAGE_BYTES)

export function diffMachines(a: DiffSide, b: DiffSide, options: DiffOptions = {}): SnapshotDiff {
  const layout = diffLayout(layoutOf(a.machine), layoutOf(b.machine))
  const heap = diffHeap(a.machine, b.machine)
  const mapper = diffMapper(a.machine.mapper, b.machine.mapper)
  const pagesA = a.pages ?? memoryPages(a.machine.memory)
  const pagesB = b.pages ?? memoryPages(b.machine.memory)
  const mappings = diffMappings(mappingsOf(a.machine), mappingsOf(b.machine))
  const tablesA = a.machine.tablePages()
  const tablesB = b.machine.tablePages()
  const tables = diffTables(tablesA, tablesB, a.machine.memory, b.machine.memory)
  const skip = new Set([...tablesA.keys(), ...tablesB.keys()])
  const memory = diffMemory(pagesA, pagesB, skip, options.onProgress)
  const same = layout === undefined && !heap.changed && mapper === undefined && mappings.length === 0 && tables.length === 0 && memory.length === 0
  return {same, layout, heap, mapper, mappings, tables, memory}
}

/**
 * What `machine` changed since `checkpoint` (taken before the change, still open): diffMachines of
 * the machine then and now, reading only the pages changed since (and the tables both walk), so a
 * small change to a large snapshot costs what it touched.
 */
export function diffSinceCheckpoint(machine: Machine, checkpoint: Checkpoint, options: DiffOptions = {}): SnapshotDiff {
  const frames = checkpoint.changedFrames()
  const before = checkpoint.before()
  // the changed pages of each side (every other page is the same on both)
  const changed = (memory: PhysicalMemory): PageList => ({count: frames.length, frame: (i) => frames[i]!, read: (i) => memory.peekFrame(frames[i]!) ?? ZERO_PAGE})
  return diffMachines({machine: before, pages: changed(before.memory)}, {machine, pages: changed(machine.memory)}, options)
}

function layoutOf(machine: Machine): Layout {
  const heap = machine.heap.allocator
  return {ramBase: machine.memory.base, ramSize: machine.memory.size, heapStart: heap.start, heapSize: heap.end - heap.start}
}

function diffLayout(old: Layout, now: Layout): SnapshotDiff['layout'] {
  const fields = (['ramBase', 'ramSize', 'heapStart', 'heapSize'] as const).filter((f) => old[f] !== now[f])
  return fields.length === 0 ? undefined : {old, new: now, fields}
}

function moved(old: bigint, now: bigint): Moved {
  return {old, new: now, delta: now - old}
}

function diffHeap(a: Machine, b: Machine): HeapDiff {
  const old = a.heap.status()
  const now = b.heap.status()
  const next = moved(old.next, now.next)
  const allocated = moved(old.allocated, now.allocated)
  const remaining = moved(old.remaining, now.remaining)
  return {next, allocated, remaining, changed: next.delta !== 0n || allocated.delta !== 0n || remaining.delta !== 0n}
}

export function mapperSummary(m: IdentityMapper): MapperSummary {
  const s = m.state
  return {
    regime: s.regime,
    geometry: m.geometry.describe('input'),
    root: m.root,
    vmid: s.vmid,
    l2Budget: s.l2Budget,
    orphanedTables: s.orphanedTables,
    registers: m.registers().map((r) => ({name: r.name, value: r.value})),
  }
}

function diffMapper(old: IdentityMapper | undefined, now: IdentityMapper | undefined): MapperDiff | undefined {
  if (old === undefined && now === undefined) return undefined
  if (old === undefined) return {change: 'added', old, new: now, fields: []}
  if (now === undefined) return {change: 'removed', old, new: now, fields: []}
  const o = mapperSummary(old)
  const n = mapperSummary(now)
  const fields: string[] = (['regime', 'geometry', 'root', 'vmid', 'l2Budget', 'orphanedTables'] as const).filter((f) => o[f] !== n[f])
  const names = [...new Set([...o.registers, ...n.registers].map((r) => r.name))]
  for (const name of names) {
    if (o.registers.find((r) => r.name === name)?.value !== n.registers.find((r) => r.name === name)?.value) fields.push(name)
  }
  return fields.length === 0 ? undefined : {change: 'changed', old, new: now, fields}
}

/** Everything a leaf says apart from its output address and whether it is a block or a page. */
const ATTRIBUTES = ~ADDRESS_MASK & ~TABLE_OR_PAGE & ((1n << 64n) - 1n)

/**
 * The mappings of one side: the ptdump ranges of its tables (walkRanges: no object per entry), and
 * the decoded leaf translating an address a range covers, looked up when a diff needs it (a walk of
 * that one address, which goes the way the whole walk went there).
 */
export interface Mappings {
  ranges: Range[]
  leafAt(at: bigint): Decoded
}

/** A machine's mappings (none without a mapper). */
export function mappingsOf(machine: Machine): Mappings {
  const m = machine.mapper
  if (m === undefined)
    return {
      ranges: [],
      leafAt: (at) => {
        throw new Error(`no leaf at ${at}: no tables`)
      },
    }
  const {ranges} = walkRanges(machine.memory, m.regime, m.root, m.geometry)
  const walker = new TableWalker(memoryAccess(machine.memory), m.geometry)
  const root = Number(m.root & m.geometry.addressMask)
  let raw = 0n
  let level = 0
  const leaf = {
    leaf: (w: TableWalker): void => {
      raw = w.raw
      level = w.level
    },
  }
  return {
    ranges,
    leafAt: (at) => {
      walker.walk(root, Number(at), Number(at) + 1, leaf, {validOnly: true})
      return m.regime.decode(raw, level, m.geometry)
    },
  }
}

function sideAt(side: Mappings, r: Range | undefined, at: bigint): MappingSide | undefined {
  return r === undefined ? undefined : {outputStart: r.outputStart + (at - r.start), level: r.level, decoded: side.leafAt(at)}
}

function sameMapping(x: MappingSide, y: MappingSide): boolean {
  return x.outputStart === y.outputStart && (x.decoded.raw & ATTRIBUTES) === (y.decoded.raw & ATTRIBUTES)
}

/** `next` continues `prev` (which ends at `at`): the same level and attributes (as ptdump merges), contiguous output. */
function continues(prev: MappingSide | undefined, prevStart: bigint, at: bigint, next: MappingSide | undefined): boolean {
  if (prev === undefined || next === undefined) return prev === next
  return prev.level === next.level && (prev.decoded.raw & ~ADDRESS_MASK) === (next.decoded.raw & ~ADDRESS_MASK) && prev.outputStart + (at - prevStart) === next.outputStart
}

/**
 * Compares two sets of ranges per input address: a 2 MiB block split into 512 pages with the same
 * output and attributes maps the same. Changed stretches are merged like ptdump merges ranges.
 */
export function diffMappings(leavesA: Mappings, leavesB: Mappings): MappingChange[] {
  const old = leavesA.ranges
  const now = leavesB.ranges
  const out: MappingChange[] = []
  let i = 0
  let j = 0
  let at = 0n
  for (;;) {
    while (i < old.length && old[i]!.end <= at) i++
    while (j < now.length && now[j]!.end <= at) j++
    if (i >= old.length && j >= now.length) break
    const ra = i < old.length && old[i]!.start <= at ? old[i] : undefined
    const rb = j < now.length && now[j]!.start <= at ? now[j] : undefined
    if (ra === undefined && rb === undefined) {
      const starts = [old[i]?.start, now[j]?.start].filter((s): s is bigint => s !== undefined)
      at = starts.reduce((x, y) => (x < y ? x : y))
      continue
    }
    const ends = [ra ? ra.end : old[i]?.start, rb ? rb.end : now[j]?.start].filter((s): s is bigint => s !== undefined)
    const end = ends.reduce((x, y) => (x < y ? x : y))
    const sa = sideAt(leavesA, ra, at)
    const sb = sideAt(leavesB, rb, at)
    if (sa === undefined || sb === undefined || !sameMapping(sa, sb)) {
      const change = sa === undefined ? 'added' : sb === undefined ? 'removed' : 'changed'
      const last = out.at(-1)
      if (last !== undefined && last.change === change && last.end === at && continues(last.old, last.start, at, sa) && continues(last.new, last.start, at, sb)) last.end = end
      else out.push({change, start: at, end, old: sa, new: sb})
    }
    at = end
  }
  return out
}

/**
 * The table pages of either side (frame to level) compared entry by entry. Their bytes come from each
 * machine's memory, which holds them already (the walks of mappingsOf and tablePages read them), not
 * from the side's page list: for a snapshot that is a second read of every table page from the file.
 */
function diffTables(a: Map<number, number>, b: Map<number, number>, memoryA: PhysicalMemory, memoryB: PhysicalMemory): TableChange[] {
  const frames = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y)
  const out: TableChange[] = []
  for (const frame of frames) {
    const entriesChanged = changedEntries(memoryA.peekFrame(frame) ?? ZERO_PAGE, memoryB.peekFrame(frame) ?? ZERO_PAGE)
    const levelA = a.get(frame)
    const levelB = b.get(frame)
    const address = BigInt(frame) << 12n
    if (levelA === undefined) out.push({change: 'appeared', address, level: levelB!, entriesChanged})
    else if (levelB === undefined) out.push({change: 'disappeared', address, level: levelA, entriesChanged})
    else if (entriesChanged > 0) out.push({change: 'changed', address, level: levelB, entriesChanged})
  }
  return out
}

function changedEntries(x: Uint8Array, y: Uint8Array): number {
  const wx = pageWords(x)
  const wy = pageWords(y)
  let n = 0
  for (let w = 0; w < WORDS; w += 2) if (wx[w] !== wy[w] || wx[w + 1] !== wy[w + 1]) n++
  return n
}

/** `length` bytes at `address` as a side's pages hold them (zero where no page is stored). */
export function bytesAt(pages: PageList, address: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let done = 0
  while (done < length) {
    const at = address + BigInt(done)
    const offset = Number(at & 0xfffn)
    const chunk = Math.min(PAGE - offset, length - done)
    const page = pageAt(pages, Number(at >> 12n))
    if (page !== undefined) out.set(page.subarray(offset, offset + chunk), done)
    done += chunk
  }
  return out
}

/** Pages a reader fetches at once where the list can read runs: 64 KiB, one buffer reused throughout. */
const RUN_PAGES = 16

/**
 * Reads a page list in ascending order, RUN_PAGES at a time into one reused buffer where the list can
 * (few, large reads, and no fresh memory to fault in), and exposes the current page as 32-bit words.
 * Where the list can check pages itself, runs are read unchecked and `check` checks the current page.
 */
class PageReader {
  /** the current page: its words are words[at .. at + 1024), its bytes bytes[4 * at ..] */
  words: Uint32Array = ZERO_WORDS
  bytes: Buffer = Buffer.from(ZERO_PAGE.buffer)
  at = 0
  private first = 0
  private count = 0
  private readonly buffer: Uint8Array | undefined
  private readonly unchecked: boolean

  constructor(private readonly pages: PageList) {
    if (pages.readRun !== undefined) this.buffer = new Uint8Array(RUN_PAGES * PAGE)
    this.unchecked = pages.readRun !== undefined && pages.check !== undefined
  }

  load(i: number): void {
    const pages = this.pages
    if (pages.readRun === undefined) {
      this.view(pages.read(i))
      this.at = 0
      return
    }
    if (this.count === 0 || i < this.first || i >= this.first + this.count) {
      this.first = i
      this.count = Math.min(RUN_PAGES, pages.count - i)
      this.view(pages.readRun(i, this.count, this.buffer, this.unchecked))
    }
    this.at = (i - this.first) * WORDS
  }

  /** Checks page i, the current one, if its run was read unchecked. */
  check(i: number): void {
    if (this.unchecked) this.pages.check!(i, new Uint8Array(this.words.buffer, this.words.byteOffset + this.at * 4, PAGE))
  }

  /** Pages i (the current one) and on that the current run holds (1 for a list read a page at a time). */
  left(i: number): number {
    return this.pages.readRun === undefined ? 1 : this.first + this.count - i
  }

  /** Checks pages i (the current one) .. i+count-1 of the current run, if it was read unchecked. */
  checkRun(i: number, count: number): void {
    if (!this.unchecked) return
    const pages = this.pages
    if (pages.checkRun !== undefined) pages.checkRun(i, count, new Uint8Array(this.words.buffer, this.words.byteOffset + this.at * 4, count * PAGE))
    else for (let k = 0; k < count; k++) pages.check!(i + k, new Uint8Array(this.words.buffer, this.words.byteOffset + (this.at + k * WORDS) * 4, PAGE))
  }

  private view(data: Uint8Array): void {
    const bytes = data.byteOffset % 4 === 0 ? data : new Uint8Array(data)
    this.words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
    this.bytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  }
}

const ZERO_WORDS = new Uint32Array(WORDS)

/** The byte ranges in which two page lists differ, leaving out the pages in `skip` (frame numbers). */
export function diffMemory(a: PageList, b: PageList, skip: ReadonlySet<number>, onProgress?: (done: number, total: number) => void): ByteRange[] {
  const out: ByteRange[] = []
  // the run being built, [start, end) with `differing` bytes, as numbers (exact: RAM lies below 2^40)
  let start = -1
  let end = -1
  let differing = 0
  const flush = (): void => {
    if (start >= 0) out.push({address: BigInt(start), length: end - start, differing})
  }
  const scan = (frame: number, wx: Uint32Array, ox: number, wy: Uint32Array, oy: number): void => {
    const base = frame * PAGE
    for (let w = 0; w < WORDS; w++) {
      const d = wx[ox + w]! ^ wy[oy + w]!
      if (d === 0) continue
      const at = base + w * 4
      // little-endian: byte k of the word is bits 8k+7..8k; the differing bytes, counted without a branch
      let t = d | (d >>> 4)
      t |= t >>> 2
      t |= t >>> 1
      const count = Math.imul(t & 0x01010101, 0x01010101) >>> 24
      const last = at + 4 - (Math.clz32(d) >> 3)
      // (a run ending at most 4 bytes before this word is less than 8 equal bytes from its first differing byte)
      if (start >= 0 && (at - end <= 4 || at + ((31 - Math.clz32(d & -d)) >> 3) - end < MERGE_GAP)) {
        end = last
        differing += count
      } else {
        flush()
        start = at + ((31 - Math.clz32(d & -d)) >> 3)
        end = last
        differing = count
      }
    }
  }
  const ra = new PageReader(a)
  const rb = new PageReader(b)
  const total = a.count + b.count
  const crcs = a.crc !== undefined && b.crc !== undefined
  let i = 0
  let j = 0
  let steps = 0
  /** pages of A before this index are not tried as a run again (a run compare found a difference) */
  let singleUntil = 0
  const progress = (pages: number): void => {
    const before = steps
    steps += pages
    if (onProgress !== undefined && steps >>> 8 !== before >>> 8) onProgress(i + j, total)
  }
  while (i < a.count || j < b.count) {
    const fa = i < a.count ? a.frame(i) : Infinity
    const fb = j < b.count ? b.frame(j) : Infinity
    const frame = Math.min(fa, fb)
    if (!skip.has(frame)) {
      if (fa === fb) {
        ra.load(i)
        rb.load(j)
        // different CRCs prove a change; equal ones do not prove equality, so compare the bytes
        const sameCrc = crcs && a.crc!(i) === b.crc!(j)
        if (sameCrc && i >= singleUntil) {
          // A run of pages in both readers' current runs, at the same frames with the same CRCs (none
          // skipped): one compare, and where equal one check of A's run, which proves B's pages too.
          const most = Math.min(ra.left(i), rb.left(j))
          let k = 1
          while (k < most && a.frame(i + k) === b.frame(j + k) && a.crc!(i + k) === b.crc!(j + k) && !skip.has(a.frame(i + k))) k++
          if (k > 1) {
            if (ra.bytes.compare(rb.bytes, rb.at * 4, rb.at * 4 + k * PAGE, ra.at * 4, ra.at * 4 + k * PAGE) === 0) {
              ra.checkRun(i, k)
              i += k
              j += k
              progress(k)
              continue
            }
            singleUntil = i + k
          }
        }
        ra.check(i)
        if (sameCrc && ra.bytes.compare(rb.bytes, rb.at * 4, rb.at * 4 + PAGE, ra.at * 4, ra.at * 4 + PAGE) === 0) {
          // equal bytes under equal stored CRCs: B's page checks exactly when A's does (checked just now)
        } else {
          rb.check(j)
          if (crcs || ra.bytes.compare(rb.bytes, rb.at * 4, rb.at * 4 + PAGE, ra.at * 4, ra.at * 4 + PAGE) !== 0) scan(frame, ra.words, ra.at, rb.words, rb.at)
        }
      } else if (fa < fb) {
        ra.load(i)
        ra.check(i)
        scan(frame, ra.words, ra.at, ZERO_WORDS, 0)
      } else {
        rb.load(j)
        rb.check(j)
        scan(frame, ZERO_WORDS, 0, rb.words, rb.at)
      }
    }
    if (fa === frame) i++
    if (fb === frame) j++
    progress(1)
  }
  flush()
  onProgress?.(total, total)
  return out
}

/**
 * What `snapshot show` says ahead of its ranges and pages, from one walk of the mapper's tables that
 * keeps nothing per entry (Machine.visitTables): how many ranges they make (walkRanges' count), and
 * their table pages with levels (Machine.tablePages of that walk). None without a mapper.
 */
export function tableSummary(machine: Machine): {ranges: number; tables: Map<number, number>} {
  const m = machine.mapper
  const tables = machine.tablePageSink()
  if (m === undefined) return {ranges: 0, tables: tables.pages}
  const ranges = new RangeMerger(m.regime, m.geometry, 0)
  machine.visitTables((c) => {
    ranges.add(c)
    tables.visit(c)
  })
  ranges.finish()
  return {ranges: ranges.rangeCount, tables: tables.pages}
}

/** How many of the stored pages hold tables (`tables`: Machine.tablePages). */
export function storedTableCount(pages: PageList, tables: ReadonlyMap<number, number>): number {
  let count = 0
  for (let i = 0; i < pages.count; i++) if (tables.has(pages.frame(i))) count++
  return count
}
