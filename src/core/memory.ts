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
  storedPages?: Iterable<bigint>
  /**
   * The same as frame numbers (address >> 12), strictly ascending: the compact form for many pages
   * (8 bytes a page, no bigint each), kept as given (the caller must not change it).
   */
  storedFrames?: Float64Array
  /**
   * The 4096 bytes of a stored page (undefined: all zero). Called when the page is first used; a throw
   * leaves it unread. Memory copies the bytes to keep them (unless `givesPages`), and reads them in
   * place for a look that keeps nothing (peekFrame, pages), so they must stay as they are while
   * memory is in use.
   */
  pageSource: (pageAddress: bigint) => Uint8Array | undefined
  /**
   * The bytes pageSource returns are memory's to keep: no one else holds or changes them (a snapshot
   * reader's own reads). Memory then keeps a page as it is (when it is 8-byte aligned, see isZero)
   * and may change it in place, where it would otherwise keep a copy: a fresh page of memory each,
   * which on some hosts costs more than the read (a first touch of a page, about 15 us on the VMs
   * this project runs on; docs/performance.md).
   */
  givesPages?: boolean
}

/** An open undo record (PhysicalMemory.beginUndo). */
export interface UndoRecord {
  /** puts every page back as it was when the record was opened, and closes it */
  rollback(): void
  /** keeps the changes, and closes the record */
  release(): void
  /** the frames (address >> 12) changed since the record was opened, ascending */
  changedFrames(): number[]
  /** memory as it was when the record was opened (read-only, until memory changes again) */
  before(): PhysicalMemory
}

/**
 * `data` as a plain Uint8Array over the same bytes: memory's pages are never Buffers (a loader's read),
 * whose slice() is a view where Uint8Array's is a copy (undo records and readers copy a page with it).
 */
function plain(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.length)
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
  private readonly pending: FrameSet = new FrameSet()
  private readonly source: PageSourceOptions['pageSource'] | undefined
  /** the source's bytes may be kept as they are (PageSourceOptions.givesPages) */
  private readonly givesPages: boolean = false
  /** the open undo records (beginUndo), innermost last: each changed page's contents before its first change since the record opened (undefined: it did not exist) */
  private readonly undoLogs: Array<Map<number, Uint8Array | undefined>> = []
  /** an opaque number a loader attached to a page (a snapshot's checksum of it), dropped when the page changes */
  private readonly tags = new Map<number, number>()
  /** frame numbers of the pages changed (written, zeroed, or loaded without a tag) since the memory was made: what a snapshot's appended record holds */
  private readonly changed = new Set<number>()
  /** RAM as frame numbers [firstFrame, endFrame) */
  private readonly firstFrame: number
  private readonly endFrame: number

  constructor(
    readonly base: bigint,
    readonly size: bigint,
    options?: PageSourceOptions,
  ) {
    if (base < 0n || !isAligned(base, 4096n) || !isAligned(size, 4096n) || size <= 0n || base + size > U64_MAX + 1n) {
      throw new HvmemError('input', `RAM must be a non-empty, 4 KiB-aligned range of the 64-bit address space (got base ${hex(base)}, size ${hex(size)})`)
    }
    this.firstFrame = Number(base >> PAGE_SHIFT)
    this.endFrame = Number((base + size) >> PAGE_SHIFT)
    if (options !== undefined) {
      this.source = options.pageSource
      this.givesPages = options.givesPages === true
      const outside = (address: bigint): HvmemError => new HvmemError('input', `stored page ${hex(address)} is not a 4 KiB page inside RAM ${hex(base)}-${hex(this.end)}`)
      for (const address of options.storedPages ?? []) {
        if (!isAligned(address, 4096n) || !this.contains(address, 4096n)) throw outside(address)
        this.pending.add(Number(address >> PAGE_SHIFT))
      }
      const frames = options.storedFrames
      if (frames !== undefined && frames.length > 0) {
        // ascending whole numbers from the first RAM frame to the last: checking the ends checks all
        for (let i = 0; i < frames.length; i++) {
          const f = frames[i]!
          if (!Number.isInteger(f) || f < this.firstFrame || f >= this.endFrame) throw outside(BigInt(Math.max(0, Math.trunc(f))) << PAGE_SHIFT)
          if (i > 0 && f <= frames[i - 1]!) throw new HvmemError('input', `stored frames must be strictly ascending (frame ${f} at ${i})`)
        }
        this.pending.addSorted(frames)
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
      this.remember(pfn)
      this.tags.delete(pfn)
      this.changed.add(pfn)
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

  /**
   * Installs a whole page, as a snapshot load does; `tag`, if given, is kept with the page until it
   * changes (see pageTag).
   */
  loadPage(pageAddress: bigint, data: Uint8Array, tag?: number, options: {adopt?: boolean} = {}): void {
    if (!isAligned(pageAddress, 4096n) || data.length !== PAGE_BYTES) throw new HvmemError('input', `a page must be 4096 bytes at a 4 KiB-aligned address (got ${data.length} at ${hex(pageAddress)})`)
    this.checkRange(pageAddress, 4096n)
    // A copy with its own buffer, so every page starts 8-byte aligned (see isZero); with `adopt`, the
    // caller hands `data` over (no copy) if it is so aligned: a loader's pages sliced from one big read.
    this.install(Number(pageAddress >> PAGE_SHIFT), options.adopt === true && data.byteOffset % 8 === 0 ? plain(data) : new Uint8Array(data), tag)
  }

  /** Makes `data` the page at frame `pfn` (kept in an open undo record first); with `tag`, unchanged since a load, else changed. */
  private install(pfn: number, data: Uint8Array, tag?: number): void {
    this.remember(pfn)
    this.pages.set(pfn, data)
    this.pending.delete(pfn)
    if (tag === undefined) {
      this.tags.delete(pfn)
      this.changed.add(pfn)
    } else this.tags.set(pfn, tag)
  }

  /**
   * loadPage for an edit's page, by frame number and without a tag: memory takes `data` over (no
   * copy; it must be 4096 bytes, 8-byte aligned in its buffer, and no longer changed by the caller).
   * A transaction's commit: numbers only, no bigint a page.
   */
  adoptFrame(pfn: number, data: Uint8Array): void {
    if (!Number.isInteger(pfn) || pfn < this.firstFrame || pfn >= this.endFrame || data.length !== PAGE_BYTES || data.byteOffset % 8 !== 0) {
      this.loadPage(BigInt(pfn) << PAGE_SHIFT, data) // its checks, its error
      return
    }
    this.install(pfn, plain(data))
  }

  /**
   * The frame numbers (address >> 12) of the pages changed since the memory was made, ascending: every
   * page written, zeroed or loaded without a tag (it may hold what it held before, or only zeros). A
   * snapshot loaded on demand saves just these (an appended record).
   */
  changedFrames(): number[] {
    return [...this.changed].sort((a, b) => a - b)
  }

  /** The tag loadPage attached to the page at `pageAddress`, if the page has not changed since. */
  pageTag(pageAddress: bigint): number | undefined {
    return this.tags.get(Number(pageAddress >> PAGE_SHIFT))
  }

  /** True if the page at `pageAddress` is held in memory (loaded, written or read already), not only in the page source. */
  isResident(pageAddress: bigint): boolean {
    return this.pages.has(Number(pageAddress >> PAGE_SHIFT))
  }

  /** The pages holding any non-zero byte, in address order (reading every stored page not read yet). */
  nonZeroPages(): Array<[bigint, Uint8Array]> {
    for (const pfn of [...this.pending.values()]) this.page(pfn)
    return [...this.readNonZeroPages()]
  }

  /**
   * The pages holding any non-zero byte, in address order, one at a time: a stored page not read yet
   * is read from the page source and not kept, so a whole large memory can be streamed out.
   */
  *readNonZeroPages(): Generator<[bigint, Uint8Array]> {
    // Held pages (sorted) merged with the pending ones (ascending already).
    const held = [...this.pages.keys()].sort((a, b) => a - b)
    const pending = this.pending.values()
    const pfns = held.length === 0 ? pending : pending.length === 0 ? held : mergeSorted(held, pending)
    for (const pfn of pfns) {
      const page = this.pages.get(pfn) ?? (this.pending.has(pfn) ? this.fetch(pfn, false) : undefined)
      if (page !== undefined && !isZeroPage(page)) yield [BigInt(pfn) << PAGE_SHIFT, page]
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

  /**
   * pageOfFrame without keeping what it reads: a page not yet read is read from the page source
   * again at each call and not held, so a read-only pass over many pages (dump tables of a large
   * tree) holds none of them. The caller must not change the bytes.
   */
  peekFrame(pfn: number): Uint8Array | undefined {
    return this.pages.get(pfn) ?? (this.pending.has(pfn) ? this.fetch(pfn, false) : undefined)
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
    if (!keep) return data === undefined ? undefined : plain(data) // a look: the source's bytes, read in place
    // The source's bytes if they are memory's to keep and 8-byte aligned (see isZero), else a copy with its own buffer.
    const page = data === undefined ? undefined : this.givesPages && data.byteOffset % 8 === 0 ? plain(data) : new Uint8Array(data)
    this.pending.delete(pfn)
    if (page !== undefined) this.pages.set(pfn, page)
    return page
  }

  /**
   * Opens an undo record: from now on, the contents each page had before its first change are kept,
   * so that `rollback` puts memory back exactly as it was (`release` keeps the changes and closes the
   * record). Records nest (the innermost is closed first): hvmem batch --keep-going takes one around
   * each line, so a line that fails half-way leaves memory as it found it, and a line may take its
   * own inside (map apply diffs its change against it).
   */
  beginUndo(): UndoRecord {
    const log = new Map<number, Uint8Array | undefined>()
    this.undoLogs.push(log)
    const close = (): void => {
      if (this.undoLogs.at(-1) !== log) throw new Error('an undo record closed while one opened after it is open')
      this.undoLogs.pop()
    }
    return {
      rollback: () => {
        close()
        for (const [pfn, page] of log) {
          if (page === undefined) this.pages.delete(pfn)
          // a copy: an outer record may hold the same bytes as its own, which later writes must not change
          else this.pages.set(pfn, this.undoLogs.length > 0 ? page.slice() : page)
        }
      },
      release: close,
      changedFrames: () => [...log.keys()].sort((a, b) => a - b),
      before: () => this.viewBefore(log),
    }
  }

  /**
   * This memory as it was when the record holding `log` was opened, read-only and read on demand: a
   * logged page as it was, any other as it is now (unchanged since). Valid until memory changes again.
   */
  private viewBefore(log: ReadonlyMap<number, Uint8Array | undefined>): PhysicalMemory {
    const held = [...this.pages.keys()].sort((a, b) => a - b)
    const existed = [...log].filter(([, page]) => page !== undefined).map(([pfn]) => pfn)
    const frames = mergeSorted(
      mergeSorted(held, this.pending.values()),
      existed.sort((a, b) => a - b),
    )
    return new PhysicalMemory(this.base, this.size, {
      storedFrames: Float64Array.from(frames),
      pageSource: (address) => {
        const pfn = Number(address >> PAGE_SHIFT)
        return log.has(pfn) ? log.get(pfn) : this.peekFrame(pfn)
      },
    })
  }

  /** Keeps page `pfn` as it is now in each open undo record that has not kept it yet, before its change. */
  private remember(pfn: number): void {
    const logs = this.undoLogs
    if (logs.length === 0 || logs.at(-1)!.has(pfn)) return
    const page = this.page(pfn)?.slice()
    for (const log of logs) if (!log.has(pfn)) log.set(pfn, page)
  }

  private pageForWrite(pfn: number): Uint8Array {
    this.remember(pfn)
    this.tags.delete(pfn)
    this.changed.add(pfn)
    let page = this.page(pfn)
    if (page === undefined) {
      page = new Uint8Array(PAGE_BYTES)
      this.pages.set(pfn, page)
    }
    return page
  }
}

/** Whether a 4096-byte page holds only zero bytes (read as 32-bit words where it is 4-byte aligned, as memory's own pages are). */
export function isZeroPage(page: Uint8Array): boolean {
  if (page.byteOffset % 4 !== 0) return page.every((b) => b === 0)
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_BYTES / 4)
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false
  return true
}

/** Two ascending lists of distinct numbers as one. */
function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!)
    else if (i >= a.length || b[j]! < a[i]!) out.push(b[j++]!)
    else {
      out.push(a[i++]!)
      j++
    }
  }
  return out
}

/**
 * A set of page frame numbers: a Set for pages added one by one, and for many pages given at once in
 * ascending order a typed array searched by bisection (8 bytes and one flag byte a page).
 */
class FrameSet {
  private readonly loose = new Set<number>()
  private sorted: Float64Array = new Float64Array(0)
  private removed = new Uint8Array(0)
  private sortedCount = 0

  add(frame: number): void {
    if (!this.has(frame)) this.loose.add(frame)
  }

  /** Adds many frames, ascending (only once, on an empty set). */
  addSorted(frames: Float64Array): void {
    if (this.sorted.length > 0 || this.loose.size > 0) {
      for (const f of frames) this.add(f)
      return
    }
    this.sorted = frames
    this.removed = new Uint8Array(frames.length)
    this.sortedCount = frames.length
  }

  has(frame: number): boolean {
    if (this.loose.has(frame)) return true
    const i = this.find(frame)
    return i >= 0 && this.removed[i] === 0
  }

  delete(frame: number): void {
    if (this.loose.delete(frame)) return
    const i = this.find(frame)
    if (i >= 0 && this.removed[i] === 0) {
      this.removed[i] = 1
      this.sortedCount--
    }
  }

  get size(): number {
    return this.loose.size + this.sortedCount
  }

  /** The frames, ascending. */
  values(): number[] {
    const out: number[] = []
    if (this.sortedCount > 0) for (let i = 0; i < this.sorted.length; i++) if (this.removed[i] === 0) out.push(this.sorted[i]!)
    if (this.loose.size === 0) return out
    return mergeSorted(
      [...this.loose].sort((a, b) => a - b),
      out,
    )
  }

  private find(frame: number): number {
    let low = 0
    let high = this.sorted.length - 1
    while (low <= high) {
      const mid = (low + high) >>> 1
      const at = this.sorted[mid]!
      if (at === frame) return mid
      if (at < frame) low = mid + 1
      else high = mid - 1
    }
    return -1
  }
}
