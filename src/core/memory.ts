import {HvmemError} from './errors.js'
import {U64_MAX, hex, isAligned} from './u64.js'

export const PAGE_SHIFT = 12n
export const PAGE_BYTES = 4096

export type Width = 1 | 2 | 4 | 8
export const WIDTHS: readonly Width[] = [1, 2, 4, 8]

/**
 * Sparse emulated physical memory: RAM at [base, base + size), kept as 4 KiB pages that exist only once
 * written. Untouched pages read as zero and cost nothing. Accesses are little-endian, may be unaligned
 * and may cross pages, and are bounds-checked against RAM.
 *
 * Pages are keyed by page-frame number (address >> 12) as a JS number: exact, since addresses are
 * below 2^64 and so frame numbers below 2^52.
 */
export class PhysicalMemory {
  private readonly pages = new Map<number, Uint8Array>()

  constructor(
    readonly base: bigint,
    readonly size: bigint,
  ) {
    if (base < 0n || !isAligned(base, 4096n) || !isAligned(size, 4096n) || size <= 0n || base + size > U64_MAX + 1n) {
      throw new HvmemError('input', `RAM must be a non-empty, 4 KiB-aligned range of the 64-bit address space (got base ${hex(base)}, size ${hex(size)})`)
    }
  }

  get end(): bigint {
    return this.base + this.size
  }

  contains(address: bigint, length = 1n): boolean {
    return address >= this.base && length >= 0n && address + length <= this.end
  }

  checkRange(address: bigint, length: bigint): void {
    if (!this.contains(address, length)) {
      throw new HvmemError('input', `${hex(address)}-${hex(address + length)} is outside RAM ${hex(this.base)}-${hex(this.end)}`)
    }
  }

  /** Reads `width` bytes little-endian. */
  read(address: bigint, width: Width): bigint {
    if (width === 8 && (address & 7n) === 0n) return this.readU64(address)
    const bytes = this.readBytes(address, width)
    let value = 0n
    for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!)
    return value
  }

  /** Writes `width` bytes little-endian; the value must fit in them. */
  write(address: bigint, width: Width, value: bigint): void {
    const max = (1n << BigInt(8 * width)) - 1n
    if (value < 0n || value > max) throw new HvmemError('input', `${hex(value)} does not fit in ${width} byte${width === 1 ? '' : 's'}`)
    if (width === 8 && (address & 7n) === 0n) {
      this.writeU64(address, value)
      return
    }
    const bytes = new Uint8Array(width)
    for (let i = 0; i < width; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn)
    this.writeBytes(address, bytes)
  }

  /** An aligned 64-bit read: the walker's and mapper's path for descriptors. */
  readU64(address: bigint): bigint {
    this.checkRange(address, 8n)
    const page = this.pages.get(Number(address >> PAGE_SHIFT))
    if (page === undefined) return 0n
    return new DataView(page.buffer, page.byteOffset, PAGE_BYTES).getBigUint64(Number(address & 0xfffn), true)
  }

  writeU64(address: bigint, value: bigint): void {
    if (value < 0n || value > U64_MAX) throw new HvmemError('input', `${value} does not fit in 8 bytes`)
    this.checkRange(address, 8n)
    const page = this.pageForWrite(Number(address >> PAGE_SHIFT))
    new DataView(page.buffer, page.byteOffset, PAGE_BYTES).setBigUint64(Number(address & 0xfffn), value, true)
  }

  readBytes(address: bigint, length: number): Uint8Array {
    this.checkRange(address, BigInt(length))
    const out = new Uint8Array(length)
    let done = 0
    while (done < length) {
      const at = address + BigInt(done)
      const offset = Number(at & 0xfffn)
      const chunk = Math.min(PAGE_BYTES - offset, length - done)
      const page = this.pages.get(Number(at >> PAGE_SHIFT))
      if (page !== undefined) out.set(page.subarray(offset, offset + chunk), done)
      done += chunk
    }
    return out
  }

  writeBytes(address: bigint, bytes: Uint8Array): void {
    this.checkRange(address, BigInt(bytes.length))
    let done = 0
    while (done < bytes.length) {
      const at = address + BigInt(done)
      const offset = Number(at & 0xfffn)
      const chunk = Math.min(PAGE_BYTES - offset, bytes.length - done)
      this.pageForWrite(Number(at >> PAGE_SHIFT)).set(bytes.subarray(done, done + chunk), offset)
      done += chunk
    }
  }

  /** Zeroes [address, address + length): whole pages are dropped, partial pages cleared. */
  zero(address: bigint, length: bigint): void {
    this.checkRange(address, length)
    let at = address
    const end = address + length
    while (at < end) {
      const pfn = Number(at >> PAGE_SHIFT)
      const offset = Number(at & 0xfffn)
      const pageEnd = (at | 0xfffn) + 1n
      const stop = end < pageEnd ? end : pageEnd
      if (offset === 0 && stop === pageEnd) this.pages.delete(pfn)
      else this.pages.get(pfn)?.fill(0, offset, offset + Number(stop - at))
      at = stop
    }
  }

  /** True if the page holding `address` was ever written (it may still hold only zeros). */
  hasPage(address: bigint): boolean {
    return this.pages.has(Number(address >> PAGE_SHIFT))
  }

  /** Installs a whole page, as a snapshot load does. */
  loadPage(pageAddress: bigint, data: Uint8Array): void {
    if (!isAligned(pageAddress, 4096n) || data.length !== PAGE_BYTES) throw new HvmemError('input', `a page must be 4096 bytes at a 4 KiB-aligned address (got ${data.length} at ${hex(pageAddress)})`)
    this.checkRange(pageAddress, 4096n)
    // A copy with its own buffer, so every page starts 8-byte aligned (see isZero).
    this.pages.set(Number(pageAddress >> PAGE_SHIFT), new Uint8Array(data))
  }

  /** The pages holding any non-zero byte, in address order. */
  nonZeroPages(): Array<[bigint, Uint8Array]> {
    const out: Array<[bigint, Uint8Array]> = []
    for (const pfn of [...this.pages.keys()].sort((a, b) => a - b)) {
      const page = this.pages.get(pfn)!
      if (!isZero(page)) out.push([BigInt(pfn) << PAGE_SHIFT, page])
    }
    return out
  }

  private pageForWrite(pfn: number): Uint8Array {
    let page = this.pages.get(pfn)
    if (page === undefined) {
      page = new Uint8Array(PAGE_BYTES)
      this.pages.set(pfn, page)
    }
    return page
  }
}

function isZero(page: Uint8Array): boolean {
  const words = new BigUint64Array(page.buffer, page.byteOffset, PAGE_BYTES / 8)
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false
  return true
}
