import {BumpAllocator} from './allocator.js'
import {MEMORY_PAGE} from './geometry.js'
import {type Heap, heapExhausted} from './heap.js'
import type {TableAccess} from './walker.js'
import {memoryAccess} from './walker.js'

/** The most 4 KiB pages one slab holds (4 MiB). */
const MAX_SLAB_PAGES = 1024
/** The pages of a slab for small edits: under glibc's threshold for serving an allocation by mmap (128 KiB). */
const SLAB_PAGES = 31
/** The copies of changed pages an edit expects beside its new tables (a root page, another table's). */
const COPIES = 2

/**
 * The slab pages come from, shared by every transaction (a page is given out once: each is zero
 * until then), its size in pages and the next page to give out. What a transaction takes is memory's
 * on commit; what a failed one took is dropped with it.
 */
let slab = new ArrayBuffer(0)
let slabPages = 0
let slabNext = 0
/** The last slab slabWords was asked about, and its words. */
let wordsSlab: ArrayBufferLike | undefined
let wordsOfSlab: Uint32Array = new Uint32Array(0)

/**
 * The slab a page view a transaction gave out lies in, as 32-bit words (the page's first word at
 * `view.byteOffset / 4`): one view a slab for a writer of whole pages (a new table's leaves), where
 * a view a page was an object a table. Made once a slab (the last one asked about is kept).
 */
export function slabWords(view: DataView): Uint32Array {
  if (view.buffer !== wordsSlab) {
    wordsSlab = view.buffer
    wordsOfSlab = new Uint32Array(wordsSlab)
  }
  return wordsOfSlab
}

/**
 * An all-or-nothing edit of translation tables: reads see the edit so far, writes go to private
 * copies of the 4 KiB pages they touch, and new tables come from a trial of the heap's allocator.
 * Nothing reaches memory or the heap until `commit`, so an operation that fails halfway (a conflict,
 * the table budget, the heap) leaves both exactly as they were: the same guarantee as Hafnium's
 * "plan every table, then write", by construction. It is the TableAccess an edit walk runs on.
 *
 * New tables, and the copies of changed pages, are carved out of slabs: zeroed ArrayBuffers of many
 * pages, each page a view of one (V8 makes one 2 MiB buffer in the time it makes a dozen 4 KiB
 * ones, and the garbage collector follows one buffer more easily than many). The slab is shared by
 * the transactions one after another, a small one for small edits, and one as large as a large edit
 * expects (`expectTables`, at most 1024 pages); memory adopts the pages on commit.
 */
export class TableTransaction implements TableAccess {
  private readonly pages = new Map<number, DataView>()
  private readonly memoryPages: TableAccess
  /**
   * The trial allocation, in numbers (exact: the heap lies in RAM, below 2^52): the heap allocator's
   * position as this transaction moved it, its end, and the bytes allocated so far.
   */
  private next: number
  private readonly end: number
  private allocated = 0
  /** tables this transaction allocated, in order */
  readonly newTables: bigint[] = []
  /** pages the edit expects to take still (expectTables), or 0 */
  private expected = 0

  constructor(private readonly heap: Heap) {
    this.next = Number(heap.allocator.next)
    this.end = Number(heap.allocator.end)
    this.memoryPages = memoryAccess(heap.memory)
  }

  /**
   * A hint: the edit makes at most about `tables` tables of `bytes` each (an estimate; more or fewer
   * are fine), and copies a page or two of the tables it changes.
   */
  expectTables(tables: number, bytes: number): void {
    this.expected = Math.max(0, Math.ceil(tables) * (bytes / MEMORY_PAGE)) + COPIES
  }

  page(frame: number): Uint8Array | undefined {
    const copy = this.pages.get(frame)
    return copy === undefined ? this.memoryPages.page(frame) : new Uint8Array(copy.buffer, copy.byteOffset, MEMORY_PAGE)
  }

  writable(frame: number): DataView {
    let copy = this.pages.get(frame)
    if (copy === undefined) {
      const bytes = this.memoryPages.page(frame)
      copy = this.slabPage(1)
      if (bytes !== undefined) new Uint8Array(copy.buffer, copy.byteOffset, MEMORY_PAGE).set(bytes)
      this.pages.set(frame, copy)
    }
    return copy
  }

  inRam(address: number, bytes: number): boolean {
    return this.memoryPages.inRam(address, bytes)
  }

  /**
   * The address of a zeroed table of `bytes` (a granule, or a concatenated root) aligned to `align`, from the heap
   * (throws 'heap-exhausted'; nothing is taken from the real heap until commit).
   */
  allocTable(bytes: number, align: number): number {
    const at = this.next % align === 0 ? this.next : this.next - (this.next % align) + align
    if (at + bytes > this.end) this.exhausted(bytes, align)
    this.next = at + bytes
    this.allocated += bytes
    const first = at / MEMORY_PAGE
    const count = bytes / MEMORY_PAGE
    for (let i = 0; i < count; i++) this.pages.set(first + i, this.slabPage(count - i))
    this.newTables.push(BigInt(at))
    return at
  }

  /** Puts the edit into memory and the allocation into the heap. The transaction is done with: use it no more. */
  commit(): void {
    // Each page here is a whole copy (or a new zeroed table): memory takes it over, no copy made.
    const memory = this.heap.memory
    for (const [frame, page] of this.pages) memory.adoptFrame(frame, new Uint8Array(page.buffer, page.byteOffset, MEMORY_PAGE))
    if (this.allocated > 0) this.heap.allocator.advance(BigInt(this.next), BigInt(this.allocated))
  }

  /** Throws the heap's own 'heap-exhausted' error for an allocation that does not fit after this transaction's. */
  private exhausted(bytes: number, align: number): never {
    const state = this.heap.allocator.state()
    throw heapExhausted(BumpAllocator.fromState({...state, next: BigInt(this.next), allocated: state.allocated + BigInt(this.allocated)}), BigInt(bytes), BigInt(align))
  }

  /** A zeroed 4 KiB page for a new table or a copy; `need`: the pages wanted from this one on (a table's). */
  private slabPage(need: number): DataView {
    if (slabNext + need > slabPages) {
      // a new slab: room for what the edit expects (a large map's tables in one), or for several small edits
      slabPages = Math.max(need, Math.min(MAX_SLAB_PAGES, Math.max(SLAB_PAGES, this.expected)))
      slab = new ArrayBuffer(slabPages * MEMORY_PAGE)
      slabNext = 0
    }
    if (this.expected > 0) this.expected--
    return new DataView(slab, slabNext++ * MEMORY_PAGE, MEMORY_PAGE)
  }
}
