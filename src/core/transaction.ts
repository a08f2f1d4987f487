import {MEMORY_PAGE} from './geometry.js'
import {Heap} from './heap.js'
import {PAGE_BYTES} from './memory.js'
import type {TableAccess} from './walker.js'
import {memoryAccess} from './walker.js'

/**
 * An all-or-nothing edit of translation tables: reads see the edit so far, writes go to private
 * copies of the 4 KiB pages they touch, and new tables come from a copy of the heap's allocator.
 * Nothing reaches memory or the heap until `commit`, so an operation that fails halfway (a conflict,
 * the table budget, the heap) leaves both exactly as they were: the same guarantee as Hafnium's
 * "plan every table, then write", by construction. It is the TableAccess an edit walk runs on.
 */
export class TableTransaction implements TableAccess {
  private readonly pages = new Map<number, DataView>()
  private readonly trial: Heap
  private readonly memoryPages: TableAccess
  /** tables this transaction allocated, in order */
  readonly newTables: bigint[] = []

  constructor(private readonly heap: Heap) {
    this.trial = new Heap(heap.memory, heap.allocator.clone())
    this.memoryPages = memoryAccess(heap.memory)
  }

  page(frame: number): Uint8Array | undefined {
    const copy = this.pages.get(frame)
    return copy === undefined ? this.memoryPages.page(frame) : new Uint8Array(copy.buffer)
  }

  writable(frame: number): DataView {
    let copy = this.pages.get(frame)
    if (copy === undefined) {
      const bytes = this.memoryPages.page(frame)
      // new Uint8Array copies (a Buffer's slice would not)
      copy = new DataView(bytes === undefined ? new ArrayBuffer(PAGE_BYTES) : new Uint8Array(bytes).buffer)
      this.pages.set(frame, copy)
    }
    return copy
  }

  inRam(address: number, bytes: number): boolean {
    return this.memoryPages.inRam(address, bytes)
  }

  /**
   * A zeroed table of `bytes` (a granule, or a concatenated root) aligned to `align`, from the heap
   * (throws 'heap-exhausted'; nothing is taken from the real heap until commit).
   */
  allocTable(bytes: number, align: bigint): bigint {
    const table = this.trial.allocAligned(BigInt(bytes), align)
    const first = Number(table / BigInt(MEMORY_PAGE))
    for (let i = 0; i < bytes / MEMORY_PAGE; i++) this.pages.set(first + i, new DataView(new ArrayBuffer(PAGE_BYTES)))
    this.newTables.push(table)
    return table
  }

  /** Puts the edit into memory and the allocation into the heap. The transaction is done with: use it no more. */
  commit(): void {
    // Each page here is a whole copy (or a new zeroed table): memory takes it over, no copy made.
    for (const [frame, page] of this.pages) this.heap.memory.loadPage(BigInt(frame) * BigInt(MEMORY_PAGE), new Uint8Array(page.buffer), undefined, {adopt: true})
    this.heap.allocator.adopt(this.trial.allocator)
  }
}
