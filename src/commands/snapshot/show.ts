import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {textArg} from '../../cli/flags.js'
import {PLAIN, type Paint, snapshotText} from '../../cli/diff-text.js'
import {type HeapJson, type MapperJson, type RangeJson, heapJson, mapperJson, rangeJson} from '../../cli/json.js'
import {color} from '../../cli/style.js'
import {memoryPages} from '../../core/page-list.js'
import {hex} from '../../core/u64.js'
import {mergeRanges} from '../../core/walker.js'
import {openSnapshotFile} from '../../snapshot/store.js'

export interface SnapshotShowJson {
  ram: {base: string; size: number; end: string}
  heap: HeapJson
  mapper: MapperJson | null
  ranges: RangeJson[]
  /** every stored (non-zero) page in address order; `table` is the level of the table it holds, or null */
  pages: Array<{address: string; table: number | null; bytes: string}>
}

export default class SnapshotShow extends HvmemCommand {
  static override summary = 'Show a whole snapshot as text: layout, heap, mapper, mapping ranges, and a hexdump of every non-zero page.'
  static override description = `--text is the stable, line-oriented rendering for git's textconv (see docs/diff.md): never coloured, in a fixed order, all-zero lines of a page folded into "*" as hexdump(1) does. Without --text the same rendering is coloured when stdout is a terminal. FILE defaults to --snapshot. Read-only: nothing is locked or written.`
  static override examples = ['<%= config.bin %> snapshot show', '<%= config.bin %> snapshot show --text vm.snap', 'git config diff.hvmem.textconv "hvmem snapshot show --text"']

  static override args = {
    file: textArg({description: 'Snapshot file (default: --snapshot).'}),
  }

  static override flags = {
    text: Flags.boolean({summary: 'Plain, stable text for git textconv: never coloured.'}),
  }

  /** The JSON document under --json; the text is streamed to stdout otherwise. */
  async run(): Promise<SnapshotShowJson | void> {
    const {args, flags} = await this.parse(SnapshotShow)
    const file = await openSnapshotFile(args.file ?? flags.snapshot)
    const machine = file.machine
    const pages = file.pages ?? memoryPages(machine.memory)
    if (!this.jsonEnabled()) {
      const paint: Paint = flags.text ? PLAIN : {heading: color.bold, dim: color.dim, table: color.cyan}
      for (const chunk of snapshotText(machine, pages, paint)) this.log(chunk)
      return
    }
    const m = machine.mapper
    const entries = machine.walkTables()
    const tables = machine.tablePages(entries)
    const ranges = mergeRanges(entries)
    const stored: SnapshotShowJson['pages'] = []
    for (let i = 0; i < pages.count; i++) {
      const frame = pages.frame(i)
      stored.push({address: hex(BigInt(frame) << 12n), table: tables.get(frame) ?? null, bytes: Buffer.from(pages.read(i)).toString('hex')})
    }
    const ram = machine.memory
    return {
      ram: {base: hex(ram.base), size: Number(ram.size), end: hex(ram.end)},
      heap: heapJson(machine.heap.status()),
      mapper: m === undefined ? null : mapperJson(m),
      ranges: ranges.map(rangeJson),
      pages: stored,
    }
  }
}
