import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {streamDumpJson} from '../../cli/dump-json.js'
import {type EntryJson, type MapperJson, type RangeJson, entryJson, mapperJson, rangeJson, registerLine} from '../../cli/json.js'
import {OutputSink} from '../../cli/sink.js'
import {dotText, writeDot, writeTree} from '../../cli/table-dump.js'
import {rangeLine} from '../../cli/render.js'
import {color} from '../../cli/style.js'
import {type WalkJson, describeWalk, rootPagesInRam, walkEntries, walkFlags, walkJson, walkTarget} from '../../cli/walk.js'
import {hex} from '../../core/u64.js'
import {mergeRanges, peekingAccess, walkRanges} from '../../core/walker.js'
import {loadSnapshot} from '../../snapshot/store.js'

export interface DumpTablesJson {
  mapper: MapperJson | null
  entries: EntryJson[]
  ranges: RangeJson[]
  /** with --root only: the walk's regime, root, start level, input and PA sizes, and registers */
  walk?: WalkJson
  /** with --format dot only: the Graphviz source */
  dot?: string
}

export default class DumpTables extends HvmemCommand {
  static override summary = 'Walk the translation tables in the snapshot and show every valid descriptor, decoded by its regime\'s rules.'
  static override description = `--format tree (default) lists each valid entry by level and index: the table it sits in, the IPA it covers, the raw descriptor and its decoded fields. --format ranges merges neighbouring entries with the same attributes and contiguous output addresses into one line per range, like Linux's ptdump. --format dot writes Graphviz source: one node per table page (level and address, its leaves merged into ranges), an edge per table descriptor (render with "dot -Tsvg"). --json gives entries and ranges (and the dot source with --format dot).

--root walks tables hvmem did not build (e.g. imported with "snapshot import"), whether or not the snapshot has a mapper: --regime says whose they are, and --vtcr (stage 2) or --tcr (stage 1, TCR_EL2) gives the start level, input size (T0SZ) and PA size (PS) as the MMU would take them; the defaults are hvmem's own 0x80023559 and 0x80823519.`
  static override examples = [
    '<%= config.bin %> dump tables',
    '<%= config.bin %> dump tables --format ranges',
    '<%= config.bin %> dump tables --json',
    '<%= config.bin %> dump tables --format dot | dot -Tsvg > tables.svg',
    '<%= config.bin %> dump tables --root 0x4100_0000 --vtcr 0x800235a0 --format ranges',
  ]

  static override flags = {
    format: Flags.option({options: ['tree', 'ranges', 'dot'] as const, summary: 'Output layout.', default: 'tree' as const})(),
    ...walkFlags,
  }

  async run(): Promise<DumpTablesJson> {
    const {flags} = await this.parse(DumpTables)
    const machine = await loadSnapshot(flags.snapshot)
    const mapper = machine.mapper
    const target = walkTarget(machine, flags, false)
    if (target === undefined) {
      if (flags.format === 'dot') {
        const dot = 'digraph "hvmem" {\n  // no translation tables yet: "hvmem map region" creates them\n}'
        this.log(dot)
        return {mapper: null, entries: [], ranges: [], dot}
      }
      this.log('No translation tables yet: "hvmem map region" creates them.')
      return {mapper: null, entries: [], ranges: []}
    }
    const pages = rootPagesInRam(machine, target)
    const stage = target.regime.stage === 2 ? 'Stage 2' : 'Stage 1 (EL2)'
    const registers = target.foreign ? `${target.registers.map((r) => `${r.name} ${hex(r.value)}`).join('  ')} (${describeWalk(target.geometry)})` : registerLine(mapper!)
    const title = `${stage}, root ${hex(target.root)}: ${registers}`
    const dotOptions = {root: target.root, startLevel: target.geometry.startLevel, rootPages: pages, title}
    // Written as the walk goes, with nothing kept per entry (src/cli/table-dump.ts, dump-json.ts): the
    // same text as the document below. Inside a batch, which takes the document this method returns,
    // only the text is.
    const sink = new OutputSink(this.batch === undefined ? undefined : {lines: (text) => this.log(text)})
    if (this.jsonEnabled()) {
      if (this.batch === undefined) {
        await streamDumpJson(mapper === undefined ? null : mapperJson(mapper), target, machine.memory, sink, {
          ...(target.foreign ? {walk: walkJson(target)} : {}),
          ...(flags.format === 'dot' ? {dot: dotOptions} : {}),
        })
        this.jsonWritten = true
        return {mapper: mapper === undefined ? null : mapperJson(mapper), entries: [], ranges: []}
      }
    } else if (flags.format === 'ranges') {
      // The ranges alone: no object per entry (walkRanges), for large trees.
      const walk = walkRanges(machine.memory, target.regime, target.root, target.geometry, peekingAccess(machine.memory))
      sink.line(title)
      for (const r of walk.ranges) sink.line(rangeLine(r))
      sink.line(color.dim(`${walk.entries} valid entries, ${walk.leaves} leaves, ${walk.ranges.length} range(s)`))
      sink.flush()
      return {mapper: mapper === undefined ? null : mapperJson(mapper), entries: [], ranges: walk.ranges.map(rangeJson), ...(target.foreign ? {walk: walkJson(target)} : {})}
    } else if (flags.format === 'dot') {
      await writeDot(sink, machine.memory, target, dotOptions)
      return {mapper: mapper === undefined ? null : mapperJson(mapper), entries: [], ranges: []}
    } else {
      await writeTree(sink, machine.memory, target, title)
      return {mapper: mapper === undefined ? null : mapperJson(mapper), entries: [], ranges: []}
    }
    // --json inside a batch: the document as objects
    const entries = walkEntries(machine.memory, target)
    const ranges = mergeRanges(entries)
    const dot = flags.format === 'dot' ? await dotText(machine.memory, target, dotOptions) : undefined
    return {
      mapper: mapper === undefined ? null : mapperJson(mapper),
      entries: entries.map(entryJson),
      ranges: ranges.map(rangeJson),
      ...(target.foreign ? {walk: walkJson(target)} : {}),
      ...(dot === undefined ? {} : {dot}),
    }
  }
}
