/**
 * `snapshot show`: a whole snapshot as stable, line-oriented text, one fact per line where it can be,
 * so that a line-based diff (git's textconv) shows what changed: layout, heap, mapper and registers,
 * the mapping ranges as ptdump lines, then every stored page as a hexdump whose all-zero lines are
 * folded into `*` (as hexdump(1) does). Deterministic: the same content always gives the same text.
 */
import {storedTableCount} from '../core/diff.js'
import type {PageList} from '../core/page-list.js'
import type {Machine} from '../core/machine.js'
import {formatSize, hex} from '../core/u64.js'
import {mergeRanges} from '../core/walker.js'
import {hexdump, rangeLine} from './render.js'

export interface Paint {
  heading: (text: string) => string
  dim: (text: string) => string
  table: (text: string) => string
}

export const PLAIN: Paint = {heading: (s) => s, dim: (s) => s, table: (s) => s}

const LINE = 16

/** The page's hexdump lines, each run of all-zero lines folded into one `*`. */
function pageDump(address: bigint, page: Uint8Array, dim: (text: string) => string): string[] {
  const out: string[] = []
  let folded = false
  for (let offset = 0; offset < page.length; offset += LINE) {
    const row = page.subarray(offset, offset + LINE)
    if (row.every((b) => b === 0)) {
      if (!folded) out.push('*')
      folded = true
      continue
    }
    folded = false
    out.push(hexdump(address + BigInt(offset), row, dim))
  }
  return out
}

/** The header: layout, heap, mapper and registers, one fact a line. */
function stateLines(machine: Machine): string[] {
  const ram = machine.memory
  const h = machine.heap.status()
  const out = [
    `ram ${hex(ram.base)}-${hex(ram.end)} (${formatSize(ram.size)})`,
    `heap ${hex(h.start)}-${hex(h.end)} (${formatSize(h.size)})`,
    `heap.next ${hex(h.next)}`,
    `heap.allocated ${h.allocated}`,
    `heap.padding ${h.padding}`,
    `heap.remaining ${h.remaining}`,
  ]
  const m = machine.mapper
  if (m === undefined) out.push('mapper none')
  else {
    const s = m.state
    out.push(`mapper ${s.regime}, root ${hex(m.root)}, vmid ${s.vmid}, l2Budget ${s.l2Budget}`, `mapper.orphanedTables ${s.orphanedTables}`)
    for (const r of m.registers()) out.push(`${r.name} ${hex(r.value)}`)
  }
  return out
}

/**
 * The whole rendering, a section or a page at a time (each chunk is one or more whole lines, without
 * the final newline), so a large snapshot streams out.
 */
export function* snapshotText(machine: Machine, pages: PageList, paint: Paint = PLAIN): Generator<string> {
  yield stateLines(machine).join('\n')
  const entries = machine.walkTables()
  const ranges = mergeRanges(entries)
  yield ['', paint.heading(`mappings (${ranges.length} range${ranges.length === 1 ? '' : 's'}):`), ...ranges.map((r) => rangeLine(r))].join('\n')
  const tables = machine.tablePages(entries)
  const tableCount = storedTableCount(pages, tables)
  yield ['', paint.heading(`pages (${pages.count} stored, ${tableCount} holding tables):`)].join('\n')
  for (let i = 0; i < pages.count; i++) {
    const frame = pages.frame(i)
    const address = BigInt(frame) << 12n
    const level = tables.get(frame)
    const title = level === undefined ? `page ${hex(address)}` : paint.table(`page ${hex(address)}  L${level} table`)
    yield [title, ...pageDump(address, pages.read(i), paint.dim)].join('\n')
  }
}
