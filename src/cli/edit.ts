/** JSON and text for the results of table edits (map region, unmap, protect). */
import type {EditResult, LeafCounts} from '../core/mapper.js'
import {formatSize, hex} from '../core/u64.js'

/** Leaf descriptors by size: {"1G": n, "2M": n, "4K": n}. */
export type CountsJson = Record<'1G' | '2M' | '4K', number>

export interface EditJson {
  range: {ipa: string; end: string; size: number}
  written: CountsJson
  unchanged: CountsJson
  cleared: CountsJson
  splits: number
  newTables: string[]
  orphanedTables: number
}

const countsJson = (c: LeafCounts): CountsJson => ({'1G': c[1], '2M': c[2], '4K': c[3]})
export const total = (c: LeafCounts): number => c[1] + c[2] + c[3]

export function editJson(r: EditResult): EditJson {
  return {
    range: {ipa: hex(r.ipa), end: hex(r.ipa + r.size), size: Number(r.size)},
    written: countsJson(r.written),
    unchanged: countsJson(r.unchanged),
    cleared: countsJson(r.cleared),
    splits: r.splits,
    newTables: r.newTables.map((t) => hex(t)),
    orphanedTables: r.orphanedTables,
  }
}

/** "3 (1x 1G, 2x 4K)" */
export function describeCounts(c: LeafCounts): string {
  const parts = ([[1, '1G'], [2, '2M'], [3, '4K']] as const).filter(([l]) => c[l] > 0).map(([l, name]) => `${c[l]}x ${name}`)
  return parts.length === 0 ? '0' : `${total(c)} (${parts.join(', ')})`
}

/** The lines after a table edit: tables made, blocks split, tables orphaned. */
export function editLines(r: EditResult): string[] {
  const lines: string[] = []
  if (r.splits > 0) lines.push(`Split ${r.splits} block(s) into next-level tables, keeping the rest of each as it was`)
  if (r.newTables.length > 0) lines.push(`New table(s): ${r.newTables.map((t) => hex(t)).join(', ')}`)
  if (r.orphanedTables > 0) lines.push(`${r.orphanedTables} table page(s) (${formatSize(BigInt(r.orphanedTables) * 4096n)}) are now unreachable; the bump allocator cannot free them`)
  return lines
}
