import {HvmemError} from './errors.js'
import {U64_MAX, alignUp, hex, isPowerOfTwo} from './u64.js'

export const PAGE_SIZE = 4096n
const PAGE_MASK = PAGE_SIZE - 1n

/** What a snapshot stores of an allocator. Padding is derived: next - start - allocated. */
export interface AllocatorState {
  start: bigint
  size: bigint
  next: bigint
  allocated: bigint
}

/**
 * The sprint plan's forward-only bump allocator over [start, start + size).
 *
 * Fixed against the plan:
 * - allocations that do not fit return undefined (the plan's None); bigint arithmetic cannot wrap, and
 *   the constructor refuses a range that would end past 2^64, so no input reaches an overflow;
 * - `align` must be a power of two and `size` positive (the plan checked neither);
 * - `reset()` returns to the start (the plan's `end - remaining - allocated` forgot alignment padding).
 */
export class BumpAllocator {
  readonly start: bigint
  readonly end: bigint
  private nextFree: bigint
  private allocatedBytes = 0n

  /** `size` 0 only with `empty`: no heap at all (a snapshot of a full RAM image), where every allocation fails. */
  constructor(start: bigint, size: bigint, empty = false) {
    if (start < 0n || size < 0n || (size === 0n && !empty)) throw new HvmemError('input', `allocator range needs start >= 0 and size > 0 (got start ${hex(start)}, size ${size})`)
    if (start + size - 1n > U64_MAX) throw new HvmemError('input', `allocator range ${hex(start)} + ${hex(size)} ends past the 64-bit address space`)
    this.start = start
    this.end = start + size
    this.nextFree = start
  }

  static fromState(state: AllocatorState): BumpAllocator {
    const a = new BumpAllocator(state.start, state.size, true)
    if (state.next < a.start || state.next > a.end || state.allocated < 0n || state.allocated > state.next - a.start) {
      throw new HvmemError('snapshot-invalid', `allocator state is inconsistent (next ${hex(state.next)}, allocated ${state.allocated} in ${hex(a.start)}-${hex(a.end)})`)
    }
    a.nextFree = state.next
    a.allocatedBytes = state.allocated
    return a
  }

  get size(): bigint {
    return this.end - this.start
  }

  get next(): bigint {
    return this.nextFree
  }

  allocPage(): bigint | undefined {
    return this.allocAligned(PAGE_SIZE, PAGE_SIZE)
  }

  allocAligned(size: bigint, align: bigint): bigint | undefined {
    if (size <= 0n) throw new HvmemError('input', `allocation size must be > 0 (got ${size})`)
    // Every bigint operation makes a new bigint: the common cases (page alignment, a position already
    // aligned) take the fewest (10,000 `alloc page` lines of a batch each come here).
    let mask: bigint
    if (align === PAGE_SIZE) mask = PAGE_MASK
    else if (isPowerOfTwo(align)) mask = align - 1n
    else throw new HvmemError('input', `alignment must be a power of two (got ${align})`)
    const next = this.nextFree
    const aligned = (next & mask) === 0n ? next : alignUp(next, align)
    const end = aligned + size
    if (end > this.end) return undefined
    this.nextFree = end
    this.allocatedBytes += size
    return aligned
  }

  /** The plan's `alloc`: 4-byte aligned. */
  alloc(size: bigint): bigint | undefined {
    return this.allocAligned(size, 4n)
  }

  remaining(): bigint {
    return this.end - this.nextFree
  }

  allocated(): bigint {
    return this.allocatedBytes
  }

  /** Bytes skipped to satisfy alignment: neither allocated nor available any more. */
  padding(): bigint {
    return this.nextFree - this.start - this.allocatedBytes
  }

  reset(): void {
    this.nextFree = this.start
    this.allocatedBytes = 0n
  }

  state(): AllocatorState {
    return {start: this.start, size: this.size, next: this.nextFree, allocated: this.allocatedBytes}
  }

  clone(): BumpAllocator {
    return BumpAllocator.fromState(this.state())
  }

  /** Moves on to `next` having allocated `bytes` more since the current position (a transaction's allocations, on commit). */
  advance(next: bigint, bytes: bigint): void {
    if (next < this.nextFree || next > this.end || bytes < 0n || bytes > next - this.nextFree)
      throw new Error(`advance: ${hex(next)} (${bytes} bytes) is not a later position in ${hex(this.start)}-${hex(this.end)}`)
    this.nextFree = next
    this.allocatedBytes += bytes
  }

  /** Takes over another allocator's position over the same range (a transaction's clone, on commit). */
  adopt(other: BumpAllocator): void {
    if (other.start !== this.start || other.end !== this.end) throw new Error('adopt: allocators cover different ranges')
    this.nextFree = other.nextFree
    this.allocatedBytes = other.allocatedBytes
  }
}
