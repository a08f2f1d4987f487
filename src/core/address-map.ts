/**
 * Pictures of address spaces for people (`dump map`): the input-address space as the tables map it,
 * and the heap, each cut into a row of equal cells, each cell one category. No rendering here: the
 * CLI turns categories into characters and colours.
 *
 * Which category a cell shows: the category covering most of its bytes among those that are
 * something (mapped memory; tables or allocations), so a 4 KiB mapping in a 32 MiB cell still shows;
 * the empty category (unmapped, free) only when nothing else is in the cell. Ties go to the earlier
 * category in the list.
 */
import type {LeafFields} from './descriptor.js'
import {PAGE_BYTES} from './memory.js'

export type IpaCategory = 'normal-rwx' | 'normal-rw' | 'normal-ro' | 'device' | 'faulting' | 'unmapped'
export const IPA_CATEGORIES: readonly IpaCategory[] = ['normal-rwx', 'normal-rw', 'normal-ro', 'device', 'faulting', 'unmapped']

export type HeapCategory = 'table' | 'allocated' | 'free'
export const HEAP_CATEGORIES: readonly HeapCategory[] = ['table', 'allocated', 'free']

/**
 * What a leaf maps, for a picture: memory an access would fault on (no read permission, access flag
 * clear), Device memory, or Normal memory by permission (read-only includes read-only executable).
 */
export function ipaCategory(leaf: LeafFields): IpaCategory {
  if (!leaf.af || leaf.access === 'none' || leaf.access === 'WO') return 'faulting'
  if (leaf.memType.startsWith('Device')) return 'device'
  if (leaf.access === 'RO') return 'normal-ro'
  return leaf.executable ? 'normal-rwx' : 'normal-rw'
}

export interface Segment<C extends string> {
  start: bigint
  end: bigint
  category: C
}

export interface Strip<C extends string> {
  start: bigint
  end: bigint
  cellSize: bigint
  cells: C[]
}

/**
 * The IPA scale: cells of a power-of-two size (at least 4 KiB) starting at a multiple of it, the
 * smallest such that at most `width` cells cover [first mapped address, end of the last mapping).
 */
export function ipaScale(start: bigint, end: bigint, width: number): {start: bigint; cellSize: bigint; cells: number} {
  let cellSize = BigInt(PAGE_BYTES)
  for (;;) {
    const first = (start / cellSize) * cellSize
    const cells = (end - first + cellSize - 1n) / cellSize
    if (cells <= BigInt(width)) return {start: first, cellSize, cells: Number(cells)}
    cellSize *= 2n
  }
}

/** The heap scale: `width` cells of equal size, a multiple of 4 KiB, from the heap's start (the last may be short). */
export function heapScale(start: bigint, end: bigint, width: number): {start: bigint; cellSize: bigint; cells: number} {
  const page = BigInt(PAGE_BYTES)
  const perCell = (end - start + BigInt(width) - 1n) / BigInt(width)
  const cellSize = ((perCell + page - 1n) / page) * page
  return {start, cellSize, cells: Number((end - start + cellSize - 1n) / cellSize)}
}

/**
 * Cuts [scale.start, scale.start + cells * cellSize) into cells and gives each the category that covers
 * most of it among the non-empty ones (ordered by `categories`, the empty one last); segments must not
 * overlap. Runs in time proportional to the segments and the cells.
 */
export function strip<C extends string>(segments: ReadonlyArray<Segment<C>>, scale: {start: bigint; cellSize: bigint; cells: number}, categories: readonly C[], end: bigint): Strip<C> {
  const empty = categories[categories.length - 1]!
  const rank = new Map(categories.map((c, i) => [c, i]))
  const bytes: Array<Map<C, bigint>> = Array.from({length: scale.cells}, () => new Map<C, bigint>())
  for (const s of segments) {
    if (s.category === empty || s.end <= s.start) continue
    const from = s.start > scale.start ? s.start : scale.start
    const lastCell = Math.min(scale.cells - 1, Number((s.end - 1n - scale.start) / scale.cellSize))
    for (let cell = Number((from - scale.start) / scale.cellSize); cell <= lastCell; cell++) {
      const cellStart = scale.start + BigInt(cell) * scale.cellSize
      const cellEnd = cellStart + scale.cellSize
      const overlap = (s.end < cellEnd ? s.end : cellEnd) - (from > cellStart ? from : cellStart)
      if (overlap > 0n) bytes[cell]!.set(s.category, (bytes[cell]!.get(s.category) ?? 0n) + overlap)
    }
  }
  const cells = bytes.map((m) => {
    let best: C = empty
    let most = 0n
    for (const [c, n] of m) {
      if (n > most || (n === most && rank.get(c)! < rank.get(best)!)) {
        best = c
        most = n
      }
    }
    return best
  })
  return {start: scale.start, end, cellSize: scale.cellSize, cells}
}

/**
 * The heap as segments: its reachable table pages, the rest of [start, next) allocated (user
 * allocations, padding, and tables no longer reachable), and [next, end) free.
 */
export function heapSegments(heap: {start: bigint; next: bigint; end: bigint}, tablePages: readonly bigint[]): Array<Segment<HeapCategory>> {
  const page = BigInt(PAGE_BYTES)
  const tables = [...new Set(tablePages)].filter((t) => t >= heap.start && t < heap.end).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const out: Array<Segment<HeapCategory>> = []
  let at = heap.start
  const plain = (until: bigint): void => {
    // the bytes between tables: allocated below `next`, free from it
    if (at < until && at < heap.next) out.push({start: at, end: until < heap.next ? until : heap.next, category: 'allocated'})
    const freeFrom = at > heap.next ? at : heap.next
    if (freeFrom < until) out.push({start: freeFrom, end: until, category: 'free'})
  }
  for (const t of tables) {
    plain(t)
    out.push({start: t, end: t + page, category: 'table'})
    at = t + page
  }
  plain(heap.end)
  return out
}
