/**
 * `snapshot show --json` written as it is made: the same text as JSON.stringify(document, null, 2)
 * (docs/scripting.md, "JSON output"), without the whole document in memory. Its `ranges` and `pages`
 * grow with the tables (a 64 GiB map in pages: 32,833 table pages, 270 MB of hex digits), so each
 * range and page is written as the walk or the page loop reaches it, and only it is made as an object.
 */
import {tableSummary} from '../core/diff.js'
import type {Machine} from '../core/machine.js'
import type {PageList} from '../core/page-list.js'
import {hex} from '../core/u64.js'
import {checkEveryPage} from '../snapshot/verify.js'
import {nested} from './dump-json.js'
import {heapJson, mapperJson, rangeJson} from './json.js'
import {type OutputSink, keepUp} from './sink.js'
import {writeMachineRanges} from './table-dump.js'

/**
 * Writes the document for `machine` and its stored `pages` through `sink`. A damaged page or table is
 * found before anything is written (the command's error is then the whole output, as before). False if
 * stdout failed on the way.
 */
export async function writeSnapshotJson(machine: Machine, pages: PageList, sink: OutputSink): Promise<boolean> {
  // the reads that can fail, first: the tables' walk (table pages), then every page
  const {tables} = tableSummary(machine)
  checkEveryPage(pages)
  const ram = machine.memory
  const m = machine.mapper
  sink.text('{\n')
  sink.text(`  "ram": ${nested({base: hex(ram.base), size: Number(ram.size), end: hex(ram.end)}, 1)},\n`)
  sink.text(`  "heap": ${nested(heapJson(machine.heap.status()), 1)},\n`)
  sink.text(`  "mapper": ${nested(m === undefined ? null : mapperJson(m), 1)},\n`)
  // an array as JSON.stringify writes it one level down: "[]", or each item on a line of its own
  let first = true
  const item = (value: unknown): void => {
    sink.text(`${first ? '\n    ' : ',\n    '}${nested(value, 2)}`)
    first = false
  }
  const end = (): string => (first ? ']' : '\n  ]')
  sink.text('  "ranges": [')
  if (!(await writeMachineRanges(machine, sink, (r) => item(rangeJson(r))))) return false
  sink.text(`${end()},\n  "pages": [`)
  first = true
  for (let i = 0; i < pages.count; i++) {
    if (!(await keepUp(sink))) return false
    const frame = pages.frame(i)
    item({address: hex(BigInt(frame) << 12n), table: tables.get(frame) ?? null, bytes: Buffer.from(pages.read(i)).toString('hex')})
  }
  sink.text(`${end()}\n}\n`)
  sink.flush()
  return !sink.failed
}
