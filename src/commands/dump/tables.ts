import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {streamDumpJson} from '../../cli/dump-json.js'
import {type EntryJson, type MapperJson, type RangeJson, entryJson, mapperJson, rangeJson, registerLine} from '../../cli/json.js'
import {OutputSink} from '../../cli/sink.js'
import {filterFlags, leafFilter} from '../../cli/filter-flags.js'
import {dotText, writeDot, writeTree} from '../../cli/table-dump.js'
import {attributeWords, rangeLine} from '../../cli/render.js'
import {color, renderTable} from '../../cli/style.js'
import {
  type El1WalkJson,
  type WalkJson,
  describeEl1Range,
  describeWalk,
  el1Entries,
  el1Target,
  el1WalkJson,
  rootPagesInRam,
  walkEntries,
  walkFlags,
  walkJson,
  walkTarget,
  withRecordedRegisters,
} from '../../cli/walk.js'
import type {El1Walk} from '../../core/el1.js'
import {tableAttrBits} from '../../core/el1-permissions.js'
import {HvmemError} from '../../core/errors.js'
import {type LeafFilter, clipRange, describeFilter, filterActive, walkFilteredRanges} from '../../core/leaf-filter.js'
import type {Machine} from '../../core/machine.js'
import {describeTableBase} from '../../core/table-base.js'
import {formatSize, hex} from '../../core/u64.js'
import {type WalkEntry, mergeRanges, peekingAccess, walkRanges} from '../../core/walker.js'
import {loadSnapshot} from '../../snapshot/store.js'

export interface DumpTablesJson {
  mapper: MapperJson | null
  entries: EntryJson[]
  ranges: RangeJson[]
  /** with --root only: the walk's regime, root, start level, input and PA sizes, and registers; with --regime el1, both VA ranges */
  walk?: WalkJson | El1WalkJson
  /** with --format dot only: the Graphviz source */
  dot?: string
  /** with a filter (--perm, --exec, --mem, --range, --level): it in words; entries is then empty and ranges holds the matching ranges */
  filter?: string
}

export default class DumpTables extends HvmemCommand {
  static override summary = "Walk the translation tables in the snapshot and show every valid descriptor, decoded by its regime's rules."
  static override description = `--format tree (default) lists each valid entry by level and index: the table it sits in, the IPA it covers, the raw descriptor and its decoded fields. --format ranges merges neighbouring entries with the same attributes and contiguous output addresses into one line per range, like Linux's ptdump. --format dot writes Graphviz source: one node per table page (level and address, its leaves merged into ranges), an edge per table descriptor (render with "dot -Tsvg"). --json gives entries and ranges (and the dot source with --format dot).

--root walks tables hvmem did not build (e.g. imported with "snapshot import"), whether or not the snapshot has a mapper: --regime says whose they are, and --vtcr (stage 2) or --tcr (stage 1, TCR_EL2) gives the start level, input size (T0SZ) and PA size (PS) as the MMU would take them; the defaults are hvmem's own 0x80023559 and 0x80823519. --root (and --vttbr) take a whole register value: the VMID or ASID and CnP are split off and shown.

--regime el1 (or --ttbr0/--ttbr1) reads a guest kernel's EL1&0 tables: TTBR0_EL1 and TTBR1_EL1 for the lower and upper VA range, TCR_EL1 (--tcr, required) and MAIR_EL1 (--mair, default Linux's 0xf0ff440400).

With --format ranges, --perm, --exec, --mem, --range and --level show only the leaves that pass all of them, like gdb-pt-dump's -filter and -range (docs/filters.md in the source tree).`
  static override examples = [
    '<%= config.bin %> dump tables',
    '<%= config.bin %> dump tables --format ranges',
    '<%= config.bin %> dump tables --json',
    '<%= config.bin %> dump tables --format dot | dot -Tsvg > tables.svg',
    '<%= config.bin %> dump tables --root 0x4100_0000 --vtcr 0x800235a0 --format ranges',
    '<%= config.bin %> dump tables --ttbr0 0x4200_0000 --ttbr1 0x4201_0000 --tcr 0x2_8019_0019 --format ranges',
    '<%= config.bin %> dump tables --format ranges --perm w --exec',
    '<%= config.bin %> dump tables --format ranges --mem device --range 0x0..0x4000_0000',
  ]

  static override flags = {
    format: Flags.option({options: ['tree', 'ranges', 'dot'] as const, summary: 'Output layout.', default: 'tree' as const})(),
    ...walkFlags,
    ...filterFlags,
  }

  async run(): Promise<DumpTablesJson> {
    const {flags: given} = await this.parse(DumpTables)
    const filter = leafFilter(given)
    const filtered = filterActive(filter)
    if (filtered && given.format !== 'ranges') throw new HvmemError('input', `--perm, --exec, --mem, --range and --level select ranges: pass --format ranges (not ${given.format})`)
    const machine = await loadSnapshot(given.snapshot)
    // a captured snapshot's registers fill in what the flags leave out
    const flags = withRecordedRegisters(machine, given)
    const el1 = el1Target(flags)
    if (el1 !== undefined) return this.el1(machine, el1, flags.format, filtered ? filter : undefined)
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
    const split = target.table === undefined ? '' : describeTableBase(target.table)
    const registers = target.foreign
      ? `${target.registers.map((r) => `${r.name} ${hex(r.value)}`).join('  ')} (${split === '' ? '' : `${split}; `}${describeWalk(target.geometry)})`
      : registerLine(mapper!)
    const title = `${stage}, root ${hex(target.root)}: ${registers}`
    const dotOptions = {root: target.root, startLevel: target.geometry.startLevel, rootPages: pages, title}
    // Written as the walk goes, with nothing kept per entry (src/cli/table-dump.ts, dump-json.ts): the
    // same text as the document below. Inside a batch, which takes the document this method returns,
    // only the text is.
    const sink = new OutputSink(this.batch === undefined ? undefined : {lines: (text) => this.log(text)})
    if (filtered) {
      // the matching ranges only, from one walk over --range (or the whole space)
      const walk = walkFilteredRanges(machine.memory, target.regime, target.root, target.geometry, filter, peekingAccess(machine.memory))
      const words = describeFilter(filter)
      if (!this.jsonEnabled()) {
        sink.line(title)
        sink.line(color.dim(`Leaves ${words}:`))
        for (const r of walk.ranges) sink.line(rangeLine(r))
        sink.line(color.dim(`${walk.leaves} matching leaves, ${walk.ranges.length} range(s)`))
        sink.flush()
      }
      return {mapper: mapper === undefined ? null : mapperJson(mapper), entries: [], ranges: walk.ranges.map(rangeJson), ...(target.foreign ? {walk: walkJson(target)} : {}), filter: words}
    }
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

  /** --regime el1: each VA range that has a TTBR, labelled, its VAs as the MMU sees them. */
  private el1(machine: Machine, walk: El1Walk, format: 'tree' | 'ranges' | 'dot', filter?: LeafFilter): DumpTablesJson {
    if (format === 'dot') throw new HvmemError('input', '--format dot draws one table tree; an EL1&0 walk has two: use --format tree or ranges')
    const all: WalkEntry[] = []
    for (const range of [walk.lower, walk.upper]) {
      const g = range.geometry
      const entries = el1Entries(machine, range, filter)
      all.push(...entries)
      if (this.jsonEnabled()) continue
      this.log(`Stage 1 (EL1&0), ${describeEl1Range(range)}`)
      if (filter !== undefined) this.log(color.dim(`Leaves ${describeFilter(filter)}:`))
      if (range.table !== undefined && g !== undefined) this.logEntries(entries, g.startLevel, format, 'VA', filter)
    }
    if (!this.jsonEnabled())
      this.log(color.dim(`TCR_EL1 ${hex(walk.tcr.value)}  MAIR_EL1 ${hex(walk.mair)}; access EL1/EL0, PXN, UXN, nG as in the descriptors (table attributes: on the table entries)`))
    const ranges = mergeRanges(all).map((r) => (filter === undefined ? r : clipRange(r, filter)))
    return {
      mapper: machine.mapper === undefined ? null : mapperJson(machine.mapper),
      entries: filter === undefined ? all.map(entryJson) : [],
      ranges: ranges.map(rangeJson),
      walk: el1WalkJson(walk),
      ...(filter === undefined ? {} : {filter: describeFilter(filter)}),
    }
  }

  private logEntries(entries: WalkEntry[], startLevel: number, format: 'tree' | 'ranges', input: 'IPA' | 'VA', filter?: LeafFilter): void {
    const ranges = mergeRanges(entries).map((r) => (filter === undefined ? r : clipRange(r, filter)))
    if (filter !== undefined) {
      for (const r of ranges) this.log(rangeLine(r))
      this.log(color.dim(`${entries.length} matching leaves, ${ranges.length} range(s)`))
      return
    }
    if (format === 'ranges') {
      for (const r of ranges) this.log(rangeLine(r))
    } else {
      const rows: string[][] = []
      for (const e of entries) {
        const d = e.decoded
        const target = d.nextTable ?? d.leaf?.outputAddress
        const attributes = d.leaf ? attributeWords(d.leaf, d.kind) : (e.problem ?? (d.kind === 'table' && input === 'VA' ? tableAttributeWords(d.raw) : ''))
        rows.push([
          `${'  '.repeat(e.level - startLevel)}L${e.level}[${e.index}]`,
          hex(e.table),
          hex(e.ipa, input === 'VA' ? 16 : 10),
          formatSize(e.size),
          hex(d.raw, 16),
          d.kind === 'reserved' ? color.red(d.kind) : d.kind,
          target === undefined ? '' : hex(target),
          e.problem ? color.red(attributes) : attributes,
        ])
      }
      this.log(renderTable(['entry', 'table', input, 'size', 'descriptor', 'type', 'output / next', 'attributes'], rows))
    }
    const leaves = entries.filter((e) => e.decoded.leaf !== undefined)
    this.log(color.dim(`${entries.length} valid entries, ${leaves.length} leaves, ${ranges.length} range(s)`))
  }
}

/** A stage-1 table descriptor's hierarchical attributes (bits 62:59): `APTable 01 PXNTable UXNTable`. */
function tableAttributeWords(descriptor: bigint): string {
  const bits = tableAttrBits(Number(descriptor >> 32n))
  return [...((bits & 12) !== 0 ? [`APTable ${(bits >> 2).toString(2).padStart(2, '0')}`] : []), ...((bits & 1) !== 0 ? ['PXNTable'] : []), ...((bits & 2) !== 0 ? ['UXNTable'] : [])].join(' ')
}
