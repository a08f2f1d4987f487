import {PAGE_SIZE} from './allocator.js'
import {Heap} from './heap.js'
import {PAGE_BYTES, PAGE_SHIFT} from './memory.js'

/**
 * An all-or-nothing edit of translation tables: reads see the edit so far, writes go to private
 * copies of the pages they touch, and new tables come from a copy of the heap's allocator. Nothing
 * reaches memory or the heap until `commit`, so an operation that fails halfway (a conflict, the
 * table budget, the heap) leaves both exactly as they were: the same guarantee as Hafnium's
 * "plan every table, then write", by construction.
 */
export class TableTransaction {
  private readonly pages = new Map<number, DataView>()
  private readonly trial: Heap
  /** tables this transaction allocated, in order */
  readonly newTables: bigint[] = []

  constructor(private readonly heap: Heap) {
    this.trial = new Heap(heap.memory, heap.allocator.clone())
  }

  read(address: bigint): bigint {
    const page = this.pages.get(Number(address >> PAGE_SHIFT))
    if (page !== undefined) return page.getBigUint64(Number(address & 0xfffn), true)
    return this.heap.memory.readU64(address)
  }

  write(address: bigint, value: bigint): void {
    this.pageView(address).setBigUint64(Number(address & 0xfffn), value, true)
  }

  /**
   * The transaction's own copy of the page holding `address` (made on first use), for an edit that
   * writes many entries of one table as 32-bit halves: what it writes there is committed like write's.
   */
  pageView(address: bigint): DataView {
    this.heap.memory.checkRange(address, 8n)
    const pfn = Number(address >> PAGE_SHIFT)
    let page = this.pages.get(pfn)
    if (page === undefined) {
      page = new DataView(this.heap.memory.readBytes(address & ~0xfffn, PAGE_BYTES).buffer)
      this.pages.set(pfn, page)
    }
    return page
  }

  /** A zeroed table page from the heap (throws 'heap-exhausted'; nothing is taken from the real heap until commit). */
  allocTable(): bigint {
    const table = this.trial.allocPage()
    this.pages.set(Number(table >> PAGE_SHIFT), new DataView(new ArrayBuffer(PAGE_BYTES)))
    this.newTables.push(table)
    return table
  }

  /** Puts the edit into memory and the allocation into the heap. The transaction is done with: use it no more. */
  commit(): void {
    // Each page here is a whole copy (or a new zeroed table): memory takes it over, no copy made.
    for (const [pfn, page] of this.pages) this.heap.memory.loadPage(BigInt(pfn) * PAGE_SIZE, new Uint8Array(page.buffer), undefined, {adopt: true})
    this.heap.allocator.adopt(this.trial.allocator)
  }
}
