import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {textArg} from '../../cli/flags.js'
import {PLAIN, type Paint, writeSnapshotText} from '../../cli/diff-text.js'
import type {HeapJson, MapperJson, RangeJson} from '../../cli/json.js'
import {writeSnapshotJson} from '../../cli/show-json.js'
import {OutputSink} from '../../cli/sink.js'
import {color} from '../../cli/style.js'
import {memoryPages} from '../../core/page-list.js'
import {openSnapshotFile} from '../../snapshot/store.js'

/** The --json document (written as it is made: src/cli/show-json.ts). */
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

  /** Writes the text, or under --json the document (SnapshotShowJson), as it is made: nothing kept per entry or page. */
  async run(): Promise<void> {
    const {args, flags} = await this.parse(SnapshotShow)
    const file = await openSnapshotFile(args.file ?? flags.snapshot)
    const machine = file.machine
    const pages = file.pages ?? memoryPages(machine.memory)
    const sink = new OutputSink()
    if (this.jsonEnabled()) {
      await writeSnapshotJson(machine, pages, sink)
      this.jsonWritten = true
      return
    }
    const paint: Paint = flags.text ? PLAIN : {heading: color.bold, dim: color.dim, table: color.cyan}
    await writeSnapshotText(machine, pages, sink, paint)
  }
}
