/**
 * `snapshot show`: a whole snapshot as stable, line-oriented text, one fact per line where it can be,
 * so that a line-based diff (git's textconv) shows what changed: layout, heap, mapper and registers,
 * the mapping ranges as ptdump lines, then every stored page as a hexdump whose all-zero lines are
 * folded into `*` (as hexdump(1) does). Deterministic: the same content always gives the same text.
 * Written as it is made (src/cli/sink.ts), so a snapshot of any size streams out.
 */
import {storedTableCount, tableSummary} from '../core/diff.js'
import type {PageList} from '../core/page-list.js'
import type {Machine} from '../core/machine.js'
import {formatSize, hex} from '../core/u64.js'
import {hexdumpRow, rangeLine} from './render.js'
import {type OutputSink, keepUp} from './sink.js'
import {writeMachineRanges} from './table-dump.js'

export interface Paint {
  heading: (text: string) => string
  dim: (text: string) => string
  table: (text: string) => string
}

export const PLAIN: Paint = {heading: (s) => s, dim: (s) => s, table: (s) => s}

const LINE = 16

/** The page's hexdump lines, each run of all-zero lines folded into one `*`. */
export function pageDump(address: bigint, page: Uint8Array, dim: (text: string) => string): string[] {
  const out: string[] = []
  let folded = false
  for (let offset = 0; offset < page.length; offset += LINE) {
    const end = Math.min(offset + LINE, page.length)
    let zero = true
    for (let i = offset; i < end && zero; i++) zero = page[i] === 0
    if (zero) {
      if (!folded) out.push('*')
      folded = true
      continue
    }
    folded = false
    out.push(hexdumpRow(address + BigInt(offset), page, offset, dim))
  }
  return out
}

/** The header: layout, heap, mapper and registers, one fact a line. */
export function stateLines(machine: Machine): string[] {
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
 * The whole rendering, written to `sink` as it is made: the state; the mappings, counted in one walk
 * (which also finds the table pages) and written in a second; then each stored page. It keeps no
 * entry, range or page, only the table pages' levels (a number a table page, not an entry), and
 * stops making output while stdout's reader is behind. False if stdout failed on the way.
 */
export async function writeSnapshotText(machine: Machine, pages: PageList, sink: OutputSink, paint: Paint = PLAIN): Promise<boolean> {
  try {
    return await writeText(machine, pages, sink, paint)
  } catch (error) {
    // a page that cannot be read (damaged) ends the output there: what came before it is written, as it was when each part was logged at once
    sink.flush()
    throw error
  }
}

async function writeText(machine: Machine, pages: PageList, sink: OutputSink, paint: Paint): Promise<boolean> {
  sink.line(stateLines(machine).join('\n'))
  const summary = tableSummary(machine)
  const count = summary.ranges
  sink.line('')
  sink.line(paint.heading(`mappings (${count} range${count === 1 ? '' : 's'}):`))
  if (!(await writeMachineRanges(machine, sink, (r) => sink.line(rangeLine(r))))) return false
  const tables = summary.tables
  sink.line('')
  sink.line(paint.heading(`pages (${pages.count} stored, ${storedTableCount(pages, tables)} holding tables):`))
  for (let i = 0; i < pages.count; i++) {
    if (!(await keepUp(sink))) return false
    const frame = pages.frame(i)
    const address = BigInt(frame) << 12n
    const level = tables.get(frame)
    const title = level === undefined ? `page ${hex(address)}` : paint.table(`page ${hex(address)}  L${level} table`)
    sink.line([title, ...pageDump(address, pages.read(i), paint.dim)].join('\n'))
  }
  sink.flush()
  return !sink.failed
}
