/** JSON and text for the results of table edits (map region, unmap, protect). */
import type {Geometry} from '../core/geometry.js'
import type {EditResult, LeafCounts} from '../core/mapper.js'
import {formatSize, hex} from '../core/u64.js'

/** Leaf descriptors by size, largest first: {"1G": n, "2M": n, "4K": n} for the 4 KiB granule, {"32M": n, "16K": n} for 16 KiB. */
export type CountsJson = Record<string, number>

export interface EditJson {
  range: {ipa: string; end: string; size: number}
  written: CountsJson
  unchanged: CountsJson
  cleared: CountsJson
  splits: number
  newTables: string[]
  orphanedTables: number
}

/** The leaf sizes of a geometry, largest first, with their levels: [[1, '1G'], [2, '2M'], [3, '4K']]. */
const leafNames = (g: Geometry): Array<[number, string]> => g.leafSizes().map((l) => [l.level, formatSize(l.size)])
const countsJson = (c: LeafCounts, g: Geometry): CountsJson => Object.fromEntries(leafNames(g).map(([level, name]) => [name, c[level] ?? 0]))
export const total = (c: LeafCounts): number => Object.values(c).reduce((sum, n) => sum + n, 0)

export function editJson(r: EditResult, g: Geometry): EditJson {
  return {
    range: {ipa: hex(r.ipa), end: hex(r.ipa + r.size), size: Number(r.size)},
    written: countsJson(r.written, g),
    unchanged: countsJson(r.unchanged, g),
    cleared: countsJson(r.cleared, g),
    splits: r.splits,
    newTables: r.newTables.map((t) => hex(t)),
    orphanedTables: r.orphanedTables,
  }
}

/** "3 (1x 1G, 2x 4K)" */
export function describeCounts(c: LeafCounts, g: Geometry): string {
  const parts = leafNames(g).filter(([l]) => (c[l] ?? 0) > 0).map(([l, name]) => `${c[l]}x ${name}`)
  return parts.length === 0 ? '0' : `${total(c)} (${parts.join(', ')})`
}

/** The lines after a table edit: tables made, blocks split, tables orphaned. */
export function editLines(r: EditResult, g: Geometry): string[] {
  const lines: string[] = []
  if (r.splits > 0) lines.push(`Split ${r.splits} block(s) into next-level tables, keeping the rest of each as it was`)
  if (r.newTables.length > 0) lines.push(`New table(s): ${r.newTables.map((t) => hex(t)).join(', ')}`)
  if (r.orphanedTables > 0) lines.push(`${r.orphanedTables} table page(s) (${formatSize(BigInt(r.orphanedTables * g.granule))}) are now unreachable; the bump allocator cannot free them`)
  return lines
}
