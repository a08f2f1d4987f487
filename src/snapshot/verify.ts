/** Checking every stored page of a snapshot against its index's CRC-32, collecting every damaged page (snapshot verify). */
import {HvmemError} from '../core/errors.js'
import {PAGE_BYTES} from '../core/memory.js'
import type {PageList} from '../core/page-list.js'
import {crc32} from './checksum.js'
import type {StoredPages} from './format.js'

/** Pages read and checked per run (1 MiB): one CRC of the run, page by page only when it fails. */
const RUN_PAGES = 256

export interface PageDamage {
  address: bigint
  /** 'checksum': the bytes do not match the index's CRC-32; 'zero': stored but all zero (only non-zero pages are stored) */
  reason: 'checksum' | 'zero'
  /** the CRC-32 the index stores, and the one of the bytes in the file */
  stored: number
  computed: number
}

/**
 * Every damaged page of a version-2 file's page index, in address order: each page is read once and
 * checked as any read checks it (StoredPages.checkRun, then `check` page by page in a run that
 * fails), and a damaged one is collected, not thrown. Other errors (a failed read) are thrown.
 * `onProgress` gets the pages checked so far.
 */
export function damagedPages(pages: StoredPages, onProgress?: (done: number) => void): PageDamage[] {
  const damage: PageDamage[] = []
  const buffer = new Uint8Array(RUN_PAGES * PAGE_BYTES)
  for (let first = 0; first < pages.count; first += RUN_PAGES) {
    const count = Math.min(RUN_PAGES, pages.count - first)
    const run = pages.readRun(first, count, buffer, true)
    if (!damaged(() => pages.checkRun(first, count, run))) {
      onProgress?.(first + count)
      continue
    }
    for (let k = 0; k < count; k++) {
      const i = first + k
      const page = run.subarray(k * PAGE_BYTES, (k + 1) * PAGE_BYTES)
      if (!damaged(() => pages.check(i, page))) continue
      const stored = pages.crc(i)
      const computed = crc32(page)
      damage.push({address: BigInt(pages.frame(i)) << 12n, reason: stored === computed ? 'zero' : 'checksum', stored, computed})
    }
    onProgress?.(first + count)
  }
  return damage
}

/**
 * Reads and checks every stored page, a run at a time, as a read of each would (the first damaged
 * page, in address order, is the 'snapshot-invalid' error its read gives): a command that writes a
 * page's bytes as it goes checks them all first, so that a damaged file gives the error alone. A list
 * without checks of its own (a version-1 file's, checked whole when read) has nothing to check.
 */
export function checkEveryPage(pages: PageList): void {
  if (pages.readRun === undefined || pages.checkRun === undefined) return
  const buffer = new Uint8Array(RUN_PAGES * PAGE_BYTES)
  for (let first = 0; first < pages.count; first += RUN_PAGES) {
    const count = Math.min(RUN_PAGES, pages.count - first)
    pages.checkRun(first, count, pages.readRun(first, count, buffer, true))
  }
}

/** Whether `check` finds damage (a 'snapshot-invalid' error); any other error is thrown. */
function damaged(check: () => void): boolean {
  try {
    check()
    return false
  } catch (error) {
    if (error instanceof HvmemError && error.kind === 'snapshot-invalid') return true
    throw error
  }
}
