/** JSON and text for the results of table edits (map region, unmap, protect). */
import {Flags} from '@oclif/core'

import type {Geometry} from '../core/geometry.js'
import type {RegimeName} from '../core/descriptor.js'
import type {EditResult, IdentityMapper, LeafCounts} from '../core/mapper.js'
import {formatSize, hex} from '../core/u64.js'
import {type MapperJson, mapperJson} from './json.js'

/** Leaf descriptors by size, largest first: {"1G": n, "2M": n, "4K": n} for the 4 KiB granule, {"32M": n, "16K": n} for 16 KiB. */
export type CountsJson = Record<string, number>

/** An edit of the tables as a command reports it: the mapper's result, the mapper after it (as JSON) and its geometry. */
export interface Edited<T> {
  result: T
  mapper: MapperJson
  geometry: Geometry
}

/** `result` of an edit by `mapper`, with the mapper as it is now. */
export function edited<T>(mapper: IdentityMapper, result: T): Edited<T> {
  return {result, mapper: mapperJson(mapper), geometry: mapper.geometry}
}

export interface EditJson {
  range: {ipa: string; end: string; size: number}
  written: CountsJson
  unchanged: CountsJson
  cleared: CountsJson
  splits: number
  newTables: TableListJson
  orphanedTables: number
}

/**
 * Tables an edit made, summarised: how many, and the heap range [start, end) they lie in (null when
 * none); `tables`, every address in the order they were made, only when asked (--verbose). Mapping
 * 64 GiB as pages makes 32,832 tables.
 */
export interface TableListJson {
  count: number
  start: string | null
  end: string | null
  tables?: string[]
}

/** --verbose on the edit commands: list every new table (text and JSON) rather than count them. */
export const verboseFlag = Flags.boolean({char: 'v', summary: "List every new table's address (text and --json); by default they are counted and their range given.", default: false})

/** Up to this many new tables are listed in text even without --verbose: the list is as short as a summary. */
export const LISTED_TABLES = 4

/** The lowest table and the end of the highest (tables are granule-sized). */
function tableRange(tables: readonly bigint[], granule: number): {start: bigint; end: bigint} | undefined {
  if (tables.length === 0) return undefined
  let low = tables[0]!
  let high = low
  for (const t of tables) {
    if (t < low) low = t
    if (t > high) high = t
  }
  return {start: low, end: high + BigInt(granule)}
}

export function tableListJson(tables: readonly bigint[], granule: number, verbose: boolean): TableListJson {
  const range = tableRange(tables, granule)
  return {count: tables.length, start: range === undefined ? null : hex(range.start), end: range === undefined ? null : hex(range.end), ...(verbose ? {tables: tables.map((t) => hex(t))} : {})}
}

/** "New table(s): 0x41001000, 0x41002000", or past LISTED_TABLES: "New table(s): 32832 (131328K) in 0x41001000-0x49041000 (--verbose lists them)". */
export function newTablesLine(tables: readonly bigint[], granule: number, verbose: boolean): string | undefined {
  if (tables.length === 0) return undefined
  if (verbose || tables.length <= LISTED_TABLES) return `New table(s): ${tables.map((t) => hex(t)).join(', ')}`
  const range = tableRange(tables, granule)!
  return `New table(s): ${tables.length} (${formatSize(BigInt(tables.length * granule))}) in ${hex(range.start)}-${hex(range.end)} (--verbose lists them)`
}

/** The leaf sizes of a geometry, largest first, with their levels: [[1, '1G'], [2, '2M'], [3, '4K']]. */
const leafNames = (g: Geometry): Array<[number, string]> => g.leafSizes().map((l) => [l.level, formatSize(l.size)])
export const countsJson = (c: LeafCounts, g: Geometry): CountsJson => Object.fromEntries(leafNames(g).map(([level, name]) => [name, c[level] ?? 0]))
export const total = (c: LeafCounts): number => Object.values(c).reduce((sum, n) => sum + n, 0)

export function editJson(r: EditResult, g: Geometry, verbose = false): EditJson {
  return {
    range: {ipa: hex(r.ipa), end: hex(r.ipa + r.size), size: Number(r.size)},
    written: countsJson(r.written, g),
    unchanged: countsJson(r.unchanged, g),
    cleared: countsJson(r.cleared, g),
    splits: r.splits,
    newTables: tableListJson(r.newTables, g.granule, verbose),
    orphanedTables: r.orphanedTables,
  }
}

/** "3 (1x 1G, 2x 4K)" */
export function describeCounts(c: LeafCounts, g: Geometry): string {
  const parts = leafNames(g)
    .filter(([l]) => (c[l] ?? 0) > 0)
    .map(([l, name]) => `${c[l]}x ${name}`)
  return parts.length === 0 ? '0' : `${total(c)} (${parts.join(', ')})`
}

/** "Contiguous bit (52): 3 run(s) (2x 16x 4K = 64K at L3, 1x 16x 2M = 32M at L2)", or why there is none. */
export function contiguousLine(runs: LeafCounts, g: Geometry): string {
  const sizes = g.leafSizes().filter((l) => g.contiguousEntries(l.level) > 0)
  const run = (level: number, size: bigint): string => `${g.contiguousEntries(level)}x ${formatSize(size)} = ${formatSize(size * BigInt(g.contiguousEntries(level)))} at L${level}`
  const made = sizes.filter((l) => (runs[l.level] ?? 0) > 0)
  if (made.length === 0) return `Contiguous bit (52): no run; a run (${sizes.map((l) => run(l.level, l.size)).join(', ')}) must lie wholly inside the range, its output aligned to its size`
  return `Contiguous bit (52): ${total(runs)} run(s) (${made.map((l) => `${runs[l.level]}x ${run(l.level, l.size)}`).join(', ')})`
}

/** The lines after a table edit: tables made, blocks split, tables orphaned. */
export function editLines(r: EditResult, g: Geometry, verbose = false): string[] {
  const lines: string[] = []
  if (r.splits > 0) lines.push(`Split ${r.splits} block(s) into next-level tables, keeping the rest of each as it was`)
  const made = newTablesLine(r.newTables, g.granule, verbose)
  if (made !== undefined) lines.push(made)
  if (r.orphanedTables > 0) lines.push(`${r.orphanedTables} table page(s) (${formatSize(BigInt(r.orphanedTables * g.granule))}) are now unreachable; the bump allocator cannot free them`)
  return lines
}

/** The warning for a mapping over the mapper's own tables: the guest (or EL2 code) can rewrite them. */
export function tablesWarning(regime: RegimeName, ipa: bigint, size: bigint, tables: readonly bigint[], granule: number): string {
  const who = regime === 'stage2' ? 'the guest can read and rewrite its own stage-2 tables' : 'EL2 code there can rewrite the tables that translate it'
  const first = tables[0]!
  const last = tables.at(-1)!
  return `${hex(ipa)}-${hex(ipa + size)} maps ${tables.length} of the mapper's own table page(s) (${hex(first)}-${hex(last + BigInt(granule))}): ${who}; keep the heap out of the region (docs/layout.md)`
}
