import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {writeDumpJson} from '../../cli/dump-json.js'
import {type EntryJson, type MapperJson, type RangeJson, entryJson, mapperJson, rangeJson, registerLine} from '../../cli/json.js'
import {attributeWords, rangeLine} from '../../cli/render.js'
import {color, renderTable} from '../../cli/style.js'
import {formatSize, hex} from '../../core/u64.js'
import {mergeRanges, walkRanges, walkTables} from '../../core/walker.js'
import {loadSnapshot} from '../../snapshot/store.js'

export interface DumpTablesJson {
  mapper: MapperJson | null
  entries: EntryJson[]
  ranges: RangeJson[]
}

export default class DumpTables extends HvmemCommand {
  static override summary = 'Walk the translation tables in the snapshot and show every valid descriptor, decoded by its regime\'s rules.'
  static override description = `--format tree (default) lists each valid entry by level and index: the table it sits in, the IPA it covers, the raw descriptor and its decoded fields. --format ranges merges neighbouring entries with the same attributes and contiguous output addresses into one line per range, like Linux's ptdump. --json gives both.`
  static override examples = ['<%= config.bin %> dump tables', '<%= config.bin %> dump tables --format ranges', '<%= config.bin %> dump tables --json']

  static override flags = {
    format: Flags.option({options: ['tree', 'ranges'] as const, summary: 'Output layout.', default: 'tree' as const})(),
  }

  async run(): Promise<DumpTablesJson> {
    const {flags} = await this.parse(DumpTables)
    const machine = await loadSnapshot(flags.snapshot)
    const mapper = machine.mapper
    if (mapper === undefined) {
      this.log('No translation tables yet: "hvmem map region" creates them.')
      return {mapper: null, entries: [], ranges: []}
    }
    const header = `${mapper.regime.stage === 2 ? 'Stage 2' : 'Stage 1 (EL2)'}, root ${hex(mapper.root)}: ${registerLine(mapper)}`
    if (flags.format === 'ranges' && !this.jsonEnabled()) {
      // The ranges alone: no object per entry (walkRanges), for large trees.
      const walk = walkRanges(machine.memory, mapper.regime, mapper.root)
      this.log([header, ...walk.ranges.map((r) => rangeLine(r))].join('\n'))
      this.log(color.dim(`${walk.entries} valid entries, ${walk.leaves} leaves, ${walk.ranges.length} range(s)`))
      return {mapper: mapperJson(mapper), entries: [], ranges: walk.ranges.map(rangeJson)}
    }
    if (this.jsonEnabled()) {
      // Written as it is produced (writeDumpJson): the same text as the document below, stringified.
      writeDumpJson(mapper, machine.memory, (bytes) => {
        process.stdout.write(bytes)
        // written through already (stdout to a file or, on Linux, a pipe is synchronous): reusable
        return process.stdout.writableLength === 0
      })
      this.jsonWritten = true
      return {mapper: mapperJson(mapper), entries: [], ranges: []}
    }
    const entries = walkTables(machine.memory, mapper.regime, mapper.root)
    const ranges = mergeRanges(entries)
    if (!this.jsonEnabled()) {
      this.log(header)
      const rows: string[][] = []
      for (const e of entries) {
        const d = e.decoded
        const target = d.nextTable ?? d.leaf?.outputAddress
        const attributes = d.leaf ? attributeWords(d.leaf, d.kind) : (e.problem ?? '')
        rows.push([
          `${'  '.repeat(e.level - 1)}L${e.level}[${e.index}]`,
          hex(e.table),
          hex(e.ipa, 10),
          formatSize(e.size),
          hex(d.raw, 16),
          d.kind === 'reserved' ? color.red(d.kind) : d.kind,
          target === undefined ? '' : hex(target),
          e.problem ? color.red(attributes) : attributes,
        ])
      }
      this.log(renderTable(['entry', 'table', 'IPA', 'size', 'descriptor', 'type', 'output / next', 'attributes'], rows))
      const leaves = entries.filter((e) => e.decoded.leaf !== undefined)
      this.log(color.dim(`${entries.length} valid entries, ${leaves.length} leaves, ${ranges.length} range(s)`))
    }
    return {mapper: mapperJson(mapper), entries: entries.map(entryJson), ranges: ranges.map(rangeJson)}
  }
}
