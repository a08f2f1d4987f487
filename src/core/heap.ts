import {BumpAllocator, PAGE_SIZE} from './allocator.js'
import {HvmemError} from './errors.js'
import {PhysicalMemory} from './memory.js'
import {PA_LIMIT} from './registers.js'
import {MiB, hex, isAligned} from './u64.js'

/** The plan's global heap: 16 MiB at 0x4100_0000, inside QEMU virt's RAM at 0x4000_0000 + 1 GiB. */
export const DEFAULT_HEAP_BASE = 0x4100_0000n
export const DEFAULT_HEAP_SIZE = 16n * MiB
export const DEFAULT_RAM_BASE = 0x4000_0000n
export const DEFAULT_RAM_SIZE = 1024n * MiB

export interface HeapStatus {
  start: bigint
  end: bigint
  size: bigint
  next: bigint
  allocated: bigint
  remaining: bigint
  padding: bigint
}

const fail = (what: string): never => {
  throw new HvmemError('input', what)
}

/** Checks RAM: page-aligned and below the 40-bit PA limit of VTCR_EL2.PS (tables in it must be walkable). */
export function checkRam(ramBase: bigint, ramSize: bigint): void {
  if (ramBase < 0n || ramSize <= 0n || !isAligned(ramBase, PAGE_SIZE) || !isAligned(ramSize, PAGE_SIZE))
    fail(`RAM base and size must be non-zero multiples of 4 KiB (got ${hex(ramBase)} + ${hex(ramSize)})`)
  if (ramBase + ramSize > PA_LIMIT) fail(`RAM ${hex(ramBase)}-${hex(ramBase + ramSize)} ends past the 40-bit physical address space (${hex(PA_LIMIT)}, VTCR_EL2.PS)`)
}

/** Checks a RAM/heap layout: RAM as checkRam does, the heap page-aligned and inside RAM. */
export function checkLayout(ramBase: bigint, ramSize: bigint, heapBase: bigint, heapSize: bigint): void {
  checkRam(ramBase, ramSize)
  if (heapSize <= 0n || !isAligned(heapBase, PAGE_SIZE) || !isAligned(heapSize, PAGE_SIZE)) fail(`heap base and size must be non-zero multiples of 4 KiB (got ${hex(heapBase)} + ${hex(heapSize)})`)
  if (heapBase < ramBase || heapBase + heapSize > ramBase + ramSize) fail(`heap ${hex(heapBase)}-${hex(heapBase + heapSize)} is not inside RAM ${hex(ramBase)}-${hex(ramBase + ramSize)}`)
}

/** The heap bound to a snapshot's memory. Unlike BumpAllocator, it throws 'heap-exhausted' instead of returning undefined. */
export class Heap {
  constructor(
    readonly memory: PhysicalMemory,
    readonly allocator: BumpAllocator,
  ) {
    // A heap of size 0 is no heap (an imported full RAM image): RAM is checked, allocations fail.
    if (allocator.size === 0n) checkRam(memory.base, memory.size)
    else checkLayout(memory.base, memory.size, allocator.start, allocator.size)
  }

  /** False for a snapshot without a heap (made from a RAM image with no free pages): nothing can be allocated. */
  get present(): boolean {
    return this.allocator.size > 0n
  }

  allocAligned(size: bigint, align: bigint): bigint {
    const at = this.allocator.allocAligned(size, align)
    if (at === undefined) throw heapExhausted(this.allocator, size, align)
    return at
  }

  allocPage(): bigint {
    return this.allocAligned(PAGE_SIZE, PAGE_SIZE)
  }

  alloc(size: bigint): bigint {
    return this.allocAligned(size, 4n)
  }

  /** `count` consecutive pages, all or none (page-aligned pages leave no padding between them): the first one's address. */
  allocRun(count: number): bigint {
    // One page (10,000 "alloc page" lines of a batch): no size to compute.
    if (count === 1) return this.allocPage()
    if (!Number.isSafeInteger(count) || count < 1) throw new HvmemError('input', `page count must be a positive integer (got ${count})`)
    return this.allocAligned(BigInt(count) * PAGE_SIZE, PAGE_SIZE)
  }

  /** `count` consecutive pages, all or none: their addresses. */
  allocPages(count: number): bigint[] {
    const first = this.allocRun(count)
    // A plain loop: Array.from with a mapping function is V8's slow generic path.
    const pages: bigint[] = []
    for (let i = 0, page = first; i < count; i++, page += PAGE_SIZE) pages.push(page)
    return pages
  }

  /** Pages for translation tables: allocated all or none, and zeroed. */
  allocZeroedPages(count: number): bigint[] {
    const pages = this.allocPages(count)
    for (const page of pages) this.memory.zero(page, PAGE_SIZE)
    return pages
  }

  contains(address: bigint): boolean {
    return address >= this.allocator.start && address < this.allocator.end
  }

  status(): HeapStatus {
    const a = this.allocator
    return {start: a.start, end: a.end, size: a.size, next: a.next, allocated: a.allocated(), remaining: a.remaining(), padding: a.padding()}
  }
}

/** The 'heap-exhausted' error for an allocation of `size` bytes (`align`) that `a` cannot make (a heap of size 0: no heap at all). */
export function heapExhausted(a: BumpAllocator, size: bigint, align: bigint): HvmemError {
  if (a.size === 0n) {
    return new HvmemError(
      'heap-exhausted',
      `the snapshot has no heap (its RAM is a whole memory image), so nothing can be allocated for ${size} bytes; reading its tables needs none, but to build tables import the image again with --ram-size (RAM above the image) or --heap-start and --heap-size (all-zero pages in it)`,
    )
  }
  return new HvmemError(
    'heap-exhausted',
    `heap exhausted: ${size} bytes (align ${align}) requested but ${a.remaining()} bytes remain at ${hex(a.next)} in heap ${hex(a.start)}-${hex(a.end)}; make a larger heap with "heap init --force --size"`,
  )
}
