import {HvmemError} from './errors.js'
import {U64_MAX, hex, isAligned} from './u64.js'

export const PAGE_SHIFT = 12n
export const PAGE_BYTES = 4096

export type Width = 1 | 2 | 4 | 8
export const WIDTHS: readonly Width[] = [1, 2, 4, 8]

/**
 * Where pages not yet in memory come from: a snapshot read on demand. hvmem's core does no I/O; the
 * snapshot layer implements `pageSource` (synchronously, with fs.readSync) and checks each page's
 * integrity as it reads it, throwing if it cannot be trusted.
 */
export interface PageSourceOptions {
  /** The pages the source holds (4 KiB-aligned addresses inside RAM, any order); every other page reads as zero. */
  storedPages: Iterable<bigint>
  /** The 4096 bytes of a stored page (undefined: all zero). Called when the page is first used; a throw leaves it unread. */
  pageSource: (pageAddress: bigint) => Uint8Array | undefined
}

/**
 * Sparse emulated physical memory: RAM at [base, base + size), kept as 4 KiB pages that exist only once
 * written. Untouched pages read as zero and cost nothing. Accesses are little-endian, may be unaligned
 * and may cross pages, and are bounds-checked against RAM.
 *
 * Pages are keyed by page-frame number (address >> 12) as a JS number: exact, since addresses are
 * below 2^64 and so frame numbers below 2^52.
 *
 * With a page source (see PageSourceOptions), stored pages are read only when first used, so memory
 * stays proportional to the pages a caller touches; every method behaves as if all were loaded.
 */
export class PhysicalMemory {
  private readonly pages = new Map<number, Uint8Array>()
  /** frame numbers the page source holds that have not been read yet */
  private readonly pending = new Set<number>()
  private readonly source: PageSourceOptions['pageSource'] | undefined

  constructor(
    readonly base: bigint,
    readonly size: bigint,
    options?: PageSourceOptions,
  ) {
    if (base < 0n || !isAligned(base, 4096n) || !isAligned(size, 4096n) || size <= 0n || base + size > U64_MAX + 1n) {
      throw new HvmemError('input', `RAM must be a non-empty, 4 KiB-aligned range of the 64-bit address space (got base ${hex(base)}, size ${hex(size)})`)
    }
    if (options !== undefined) {
      this.source = options.pageSource
      for (const address of options.storedPages) {
        if (!isAligned(address, 4096n) || !this.contains(address, 4096n)) throw new HvmemError('input', `stored page ${hex(address)} is not a 4 KiB page inside RAM ${hex(base)}-${hex(this.end)}`)
        this.pending.add(Number(address >> PAGE_SHIFT))
      }
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
    const page = this.page(Number(address >> PAGE_SHIFT))
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
      const page = this.page(Number(at >> PAGE_SHIFT))
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
      if (offset === 0 && stop === pageEnd) {
        this.pages.delete(pfn)
        this.pending.delete(pfn)
      } else this.page(pfn)?.fill(0, offset, offset + Number(stop - at))
      at = stop
    }
  }

  /** True if the page holding `address` was ever written (it may still hold only zeros). */
  hasPage(address: bigint): boolean {
    const pfn = Number(address >> PAGE_SHIFT)
    return this.pages.has(pfn) || this.pending.has(pfn)
  }

  /** Installs a whole page, as a snapshot load does. */
  loadPage(pageAddress: bigint, data: Uint8Array): void {
    if (!isAligned(pageAddress, 4096n) || data.length !== PAGE_BYTES) throw new HvmemError('input', `a page must be 4096 bytes at a 4 KiB-aligned address (got ${data.length} at ${hex(pageAddress)})`)
    this.checkRange(pageAddress, 4096n)
    // A copy with its own buffer, so every page starts 8-byte aligned (see isZero).
    const pfn = Number(pageAddress >> PAGE_SHIFT)
    this.pages.set(pfn, new Uint8Array(data))
    this.pending.delete(pfn)
  }

  /** The pages holding any non-zero byte, in address order (reading every stored page not read yet). */
  nonZeroPages(): Array<[bigint, Uint8Array]> {
    for (const pfn of [...this.pending]) this.page(pfn)
    return [...this.readNonZeroPages()]
  }

  /**
   * The pages holding any non-zero byte, in address order, one at a time: a stored page not read yet
   * is read from the page source and not kept, so a whole large memory can be streamed out.
   */
  *readNonZeroPages(): Generator<[bigint, Uint8Array]> {
    const pfns = [...this.pages.keys(), ...this.pending].sort((a, b) => a - b)
    for (const pfn of pfns) {
      const page = this.pages.get(pfn) ?? (this.pending.has(pfn) ? this.fetch(pfn, false) : undefined)
      if (page !== undefined && !isZero(page)) yield [BigInt(pfn) << PAGE_SHIFT, page]
    }
  }

  /**
   * The bytes of the page at frame number `pfn` (address >> 12), read from the page source on first
   * use, or undefined if it was never written: for scans that read many descriptors (the walker)
   * without a bigint address per read. The caller must not change the bytes.
   */
  pageOfFrame(pfn: number): Uint8Array | undefined {
    return this.page(pfn)
  }

  /** How many pages are held in memory (written, loaded, or read from the page source so far). */
  get residentPages(): number {
    return this.pages.size
  }

  /** The page at frame `pfn`, read from the page source on first use; undefined if it was never written. */
  private page(pfn: number): Uint8Array | undefined {
    return this.pages.get(pfn) ?? (this.pending.has(pfn) ? this.fetch(pfn, true) : undefined)
  }

  /** Reads a stored page; with `keep`, holds it from now on (the source is not asked again). */
  private fetch(pfn: number, keep: boolean): Uint8Array | undefined {
    const address = BigInt(pfn) << PAGE_SHIFT
    const data = this.source!(address)
    if (data !== undefined && data.length !== PAGE_BYTES) throw new HvmemError('input', `the page source gave ${data.length} bytes for page ${hex(address)}, not 4096`)
    // A copy with its own buffer, so every page starts 8-byte aligned (see isZero).
    const page = data === undefined ? undefined : new Uint8Array(data)
    if (keep) {
      this.pending.delete(pfn)
      if (page !== undefined) this.pages.set(pfn, page)
    }
    return page
  }

  private pageForWrite(pfn: number): Uint8Array {
    let page = this.page(pfn)
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
