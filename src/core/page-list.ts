/** Stored pages as a list in address order: what a snapshot's page index or a memory's non-zero pages give. */
import type {PhysicalMemory} from './memory.js'

/** The pages a side holds, in ascending address order; every page not listed reads as zero. */
export interface PageList {
  readonly count: number
  /** the i-th page's frame number (address >> 12) */
  frame(i: number): number
  /** the i-th page's CRC-32, when known (a snapshot's index): pages whose CRCs differ are known to differ */
  crc?(i: number): number
  /** the i-th page's 4096 bytes */
  read(i: number): Uint8Array
  /**
   * pages first..first+count-1 in one go (4096 * count bytes; in `into` if given and large enough), when
   * that is cheaper than one at a time; with `unchecked` (asked only of a list with `check`), its pages
   * are not checked here: the diff checks each page it uses, or proves it equal to a checked one
   */
  readRun?(first: number, count: number, into?: Uint8Array, unchecked?: boolean): Uint8Array
  /** checks the i-th page's bytes as an unchecked readRun gave them (throws if they are damaged) */
  check?(i: number, page: Uint8Array): void
  /** checks pages first..first+count-1 as an unchecked readRun gave them, `run` their 4096 * count bytes (as `check` on each, in one go) */
  checkRun?(first: number, count: number, run: Uint8Array): void
}

/** The index of the page at `frame` in a list of frames in ascending order (binary search), or -1 when it is not there. */
export function pageIndex(pages: Pick<PageList, 'count' | 'frame'>, frame: number): number {
  let low = 0
  let high = pages.count - 1
  while (low <= high) {
    const mid = (low + high) >>> 1
    const f = pages.frame(mid)
    if (f === frame) return mid
    if (f < frame) low = mid + 1
    else high = mid - 1
  }
  return -1
}

/** The page at `frame` in a page list, or undefined when it is not stored (all zero). */
export function pageAt(pages: PageList, frame: number): Uint8Array | undefined {
  const i = pageIndex(pages, frame)
  return i === -1 ? undefined : pages.read(i)
}

/** A machine's non-zero pages as a page list (no CRCs). */
export function memoryPages(memory: PhysicalMemory): PageList {
  const pages = memory.nonZeroPages()
  return {count: pages.length, frame: (i) => Number(pages[i]![0] >> 12n), read: (i) => pages[i]![1]}
}
