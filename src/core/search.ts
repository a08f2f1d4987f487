/**
 * Finding a byte pattern in physical memory (`mem search`), page by page over the stored pages only
 * (PhysicalMemory.readNonZeroPages: nothing is kept), with the bytes before each page carried over,
 * so a hit across a page boundary, or running into untouched (zero) memory, is found once. A pattern
 * of zeros alone would match all untouched memory and is refused. And the other way from the
 * tables: which input addresses map a physical address (OutputIndex).
 */
import {HvmemError} from './errors.js'
import type {PhysicalMemory} from './memory.js'
import {PAGE_BYTES} from './memory.js'

/** The longest pattern: a few descriptors or a string, not a page. */
export const MAX_PATTERN = 256

/** A 64-bit value as it lies in memory: 8 bytes, little-endian. */
export function u64Bytes(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, value, true)
  return bytes
}

export function checkPattern(pattern: Uint8Array): void {
  if (pattern.length === 0) throw new HvmemError('input', 'PATTERN is empty; pass the bytes to find')
  if (pattern.length > MAX_PATTERN) throw new HvmemError('input', `PATTERN is ${pattern.length} bytes; at most ${MAX_PATTERN}`)
  if (pattern.every((b) => b === 0)) throw new HvmemError('input', 'PATTERN is all zero bytes, which all untouched memory matches; search for something else')
}

/**
 * The addresses where `pattern` starts, in ascending order, of the hits lying wholly inside [from, to);
 * a caller that wants the first few stops asking.
 */
export function* searchMemory(memory: PhysicalMemory, pattern: Uint8Array, from: bigint, to: bigint): Generator<bigint> {
  checkPattern(pattern)
  const n = pattern.length
  const carry = n - 1
  const needle = Buffer.from(pattern)
  const page = BigInt(PAGE_BYTES)
  const window = Buffer.alloc(carry + PAGE_BYTES)
  const inside = (at: bigint): boolean => at >= from && at + BigInt(n) <= to
  // the last page read: its address and its last `carry` bytes (the page itself is not held)
  let previous: {address: bigint; tail: Uint8Array} | undefined
  /** hits in `buffer`, whose first byte is at `base` */
  function* hits(buffer: Buffer, base: bigint): Generator<bigint> {
    for (let i = buffer.indexOf(needle); i !== -1; i = buffer.indexOf(needle, i + 1)) {
      const at = base + BigInt(i)
      if (inside(at)) yield at
    }
  }
  /** after a page that no stored page follows: hits starting in its last bytes and running into zeros */
  function* tail(p: {address: bigint; tail: Uint8Array}): Generator<bigint> {
    if (carry === 0) return
    const buffer = Buffer.alloc(2 * carry)
    buffer.set(p.tail, 0)
    yield* hits(buffer, p.address + page - BigInt(carry))
  }
  for (const [address, bytes] of memory.readNonZeroPages()) {
    if (address + page + BigInt(carry) <= from) continue
    if (address >= to + BigInt(carry)) break
    const adjacent = previous !== undefined && previous.address + page === address
    if (previous !== undefined && !adjacent) yield* tail(previous)
    // the bytes before this page: the previous page's last bytes, or zeros
    if (adjacent) window.set(previous!.tail, 0)
    else window.fill(0, 0, carry)
    window.set(bytes, carry)
    yield* hits(window, address - BigInt(carry))
    previous = {address, tail: bytes.slice(PAGE_BYTES - carry)}
  }
  if (previous !== undefined) yield* tail(previous)
}

/** A mapping range: input [start, end) to output [outputStart, outputStart + end - start). */
export interface MappedRange {
  start: bigint
  end: bigint
  outputStart: bigint
}

/** The input addresses that map a physical address, from a tree's ranges (aliases all found). */
export class OutputIndex {
  private readonly ranges: MappedRange[]
  /** the largest output end among ranges[0..i] */
  private readonly reach: bigint[] = []

  constructor(ranges: readonly MappedRange[]) {
    this.ranges = [...ranges].sort((a, b) => (a.outputStart < b.outputStart ? -1 : a.outputStart > b.outputStart ? 1 : 0))
    let reach = 0n
    for (const r of this.ranges) {
      const end = r.outputStart + (r.end - r.start)
      if (end > reach) reach = end
      this.reach.push(reach)
    }
  }

  /** Every input address that translates to `pa`, ascending. */
  inputsOf(pa: bigint): bigint[] {
    let low = 0
    let high = this.ranges.length - 1
    let last = -1
    while (low <= high) {
      const mid = (low + high) >>> 1
      if (this.ranges[mid]!.outputStart <= pa) {
        last = mid
        low = mid + 1
      } else high = mid - 1
    }
    const found: bigint[] = []
    for (let i = last; i >= 0 && this.reach[i]! > pa; i--) {
      const r = this.ranges[i]!
      if (pa < r.outputStart + (r.end - r.start)) found.push(r.start + (pa - r.outputStart))
    }
    return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  }
}
