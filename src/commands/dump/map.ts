import type {ChalkInstance} from 'chalk'

import {HvmemCommand} from '../../cli/base.js'
import {filterFlags, leafFilter} from '../../cli/filter-flags.js'
import {intFlag} from '../../cli/flags.js'
import {color, terminalColumns, wrapItems} from '../../cli/style.js'
import {type El1WalkJson, type WalkJson, el1Entries, el1Target, el1WalkJson, rootPagesInRam, walkFlags, walkJson, walkTarget, withRecordedRegisters} from '../../cli/walk.js'
import {HEAP_CATEGORIES, type HeapCategory, IPA_CATEGORIES, type IpaCategory, type Segment, type Strip, heapScale, heapSegments, ipaCategory, ipaScale, strip} from '../../core/address-map.js'
import type {Access} from '../../core/descriptor.js'
import type {El1HalfName, El1Range, El1Walk} from '../../core/el1.js'
import {type LeafFilter, WalkFilter, clipRange, describeFilter, entryMatches, filterActive} from '../../core/leaf-filter.js'
import type {Machine} from '../../core/machine.js'
import {describeTableBase} from '../../core/table-base.js'
import {formatSize, hex} from '../../core/u64.js'
import {FINAL_LEVEL} from '../../core/geometry.js'
import {type Range, RangeMerger, mergeRanges, peekingAccess, scanTables} from '../../core/walker.js'
import {loadSnapshot} from '../../snapshot/store.js'

interface Look {
  char: string
  paint: ChalkInstance
  meaning: string
}

/** Each category's character (distinct, so the picture reads without colour) and colour. */
const IPA_LOOK: Record<IpaCategory, Look> = {
  'normal-rwx': {char: '█', paint: color.green, meaning: 'Normal RWX'},
  'normal-rw': {char: '▓', paint: color.cyan, meaning: 'Normal RW, execute-never'},
  'normal-ro': {char: '▒', paint: color.blue, meaning: 'Normal read-only'},
  device: {char: '▚', paint: color.yellow, meaning: 'Device'},
  faulting: {char: '▄', paint: color.red, meaning: 'mapped, reads fault (no access or AF clear)'},
  unmapped: {char: '░', paint: color.dim, meaning: 'unmapped'},
}

const HEAP_LOOK: Record<HeapCategory, Look> = {
  table: {char: '█', paint: color.magenta, meaning: 'tables'},
  allocated: {char: '▓', paint: color.cyan, meaning: 'allocated'},
  free: {char: '░', paint: color.dim, meaning: 'free'},
}

export interface IpaRangeJson {
  start: string
  end: string
  size: number
  category: IpaCategory
  level: number
  outputStart: string
  memType: string
  access: Access
  executable: boolean
}

export interface StripJson<C extends string> {
  start: string
  end: string
  cellSize: number
  cells: C[]
}

/** One VA range of an EL1&0 walk: its strip over its mapped extent (empty without its TTBR, with its walks disabled, or nothing mapped). */
export interface El1HalfJson extends StripJson<IpaCategory> {
  ttbr: El1HalfName
  /** EPDn clear */
  enabled: boolean
  /** the table address (null when the TTBR was not given) */
  root: string | null
  ranges: IpaRangeJson[]
}

export interface DumpMapJson {
  /** the input-address space (null without tables, and with --regime el1): the strip over the mapped extent, and the merged ranges behind it */
  ipa: (StripJson<IpaCategory> & {regime: string; root: string; ranges: IpaRangeJson[]; walk?: WalkJson; filter?: string}) | null
  /** --regime el1 (or a captured kernel's registers): the lower (TTBR0_EL1) and upper (TTBR1_EL1) VA ranges, each its own strip */
  el1?: {walk: El1WalkJson; halves: [El1HalfJson, El1HalfJson]; filter?: string}
  /** the heap: the strip, and its ranges by category (no cells and no ranges when the snapshot has no heap: a captured memory image) */
  heap: StripJson<HeapCategory> & {ranges: Array<{start: string; end: string; size: number; category: HeapCategory}>; tablePages: string[]; orphanedTables: number}
  legend: {ipa: Array<{category: IpaCategory; char: string; meaning: string}>; heap: Array<{category: HeapCategory; char: string; meaning: string}>}
}

export default class DumpMap extends HvmemCommand {
  static override summary = 'Picture the address space and the heap: a strip of cells, one character per cell, by memory type and permission.'
  static override description = `The IPA strip covers the mapped extent (from the first mapped address to the end of the last mapping; the 39-bit space itself is 512 GiB) in at most --width cells of a power-of-two size, so the scale is printed with it. The heap strip covers the heap in --width equal cells and shows the tables reachable from the root (pages tables no longer reachable count as allocated; how many is shown), other allocations, and free space.

A cell shows what covers most of it among what is there (mapped memory; tables or allocations): a 4 KiB page in a 32 MiB cell still shows; a cell is unmapped or free only if nothing else is in it. Each category has its own character, so the picture reads without colour (when piped or with NO_COLOR); colour is added on a terminal. --json gives the cells, the scale and the ranges behind them. --root, --regime, --vtcr, --tcr, --vmid and --mair picture tables hvmem did not build, as for "dump tables". --regime el1 (--ttbr0, --ttbr1, --tcr, --mair) pictures a guest kernel's EL1&0 tables: a strip for the lower VA range (TTBR0_EL1) and one for the upper (TTBR1_EL1), each over what it maps, by EL1's access and PXN; on a captured snapshot the recorded registers give them without flags. A snapshot with no heap (a captured memory image) has no heap strip.

--perm, --exec, --mem, --range and --level picture only the leaves that pass all of them (the rest shows as unmapped), as for "dump tables --format ranges"; the heap strip is unchanged.`

  static override examples = [
    '<%= config.bin %> dump map',
    '<%= config.bin %> dump map --width 100',
    '<%= config.bin %> dump map --json',
    '<%= config.bin %> dump map --root 0x4100_0000 --vtcr 0x80023590',
    '<%= config.bin %> dump map --perm w --exec',
    '<%= config.bin %> dump map --ttbr0 0x4200_0000 --ttbr1 0x4201_0000 --tcr 0x2_8019_0019',
  ]

  static override flags = {
    width: intFlag(8, 1024)({summary: "Cells per strip (8..1024; default: the terminal's width, or 64 when not a terminal or with --json)."}),
    ...walkFlags,
    ...filterFlags,
  }

  async run(): Promise<DumpMapJson> {
    const {flags: given} = await this.parse(DumpMap)
    const filter = leafFilter(given)
    const filtered = filterActive(filter)
    const machine = await loadSnapshot(given.snapshot)
    // a captured snapshot's registers fill in what the flags leave out
    const flags = withRecordedRegisters(machine, given)
    // as wide as the terminal, else 64; --json is the same everywhere
    const columns = this.jsonEnabled() ? undefined : terminalColumns()
    const width = flags.width ?? Math.min(1024, Math.max(8, columns ?? 64))
    const el1 = el1Target(flags)
    if (el1 !== undefined) {
      const {json, tablePages} = this.el1(machine, el1, width, columns, filtered ? filter : undefined)
      return {ipa: null, el1: json, heap: this.heap(machine, tablePages, 0, width, columns), legend: legendJson()}
    }
    const target = walkTarget(machine, flags, false)

    let ipa: DumpMapJson['ipa'] = null
    let ipaStrip: Strip<IpaCategory> | undefined
    const tablePages: bigint[] = []
    if (target !== undefined) {
      const pages = rootPagesInRam(machine, target)
      for (let i = 0; i < pages; i++) tablePages.push(target.root + 4096n * BigInt(i))
      // one scan, no object per entry: the merged ranges, and the tables it goes into
      const merger = new RangeMerger(target.regime, target.geometry)
      const only = filtered ? new WalkFilter(target.regime, target.geometry, filter) : undefined
      scanTables(
        machine.memory,
        target.root,
        target.geometry,
        (w, unfollowed) => {
          if (unfollowed !== undefined) {
            tablePages.pop() // the table this entry points at was not walked (it comes right after the entry)
            return
          }
          if (only === undefined || only.matches(w)) merger.add(w)
          if (w.level < FINAL_LEVEL && (w.lo & 3) === 3) tablePages.push(BigInt(w.next))
        },
        peekingAccess(machine.memory),
      )
      const drawn = ipaStripOf(
        merger.finish().ranges.map((r) => clipRange(r, filter)),
        width,
      )
      ipaStrip = drawn.strip
      ipa = {
        regime: target.regimeName,
        root: hex(target.root),
        ...drawn.json,
        ...(target.foreign ? {walk: walkJson(target)} : {}),
        ...(filtered ? {filter: describeFilter(filter)} : {}),
      }
    }

    if (target === undefined) this.log('IPA space: no translation tables yet ("hvmem map region" creates them)')
    else if (ipaStrip === undefined) this.log(`${stageName(target.regime.stage)} space (root ${hex(target.root)}): nothing mapped${filtered ? ` (leaves ${describeFilter(filter)})` : ''}`)
    else {
      this.log(
        `${stageName(target.regime.stage)} space ${hex(ipaStrip.start)}-${hex(ipaStrip.end)} (root ${hex(target.root)}), ${ipaStrip.cells.length} cells of ${formatSize(ipaStrip.cellSize)}${filtered ? `, leaves ${describeFilter(filter)}` : ''}:`,
      )
      this.log(paint(ipaStrip.cells, IPA_LOOK))
      this.log(wrapItems(legend(IPA_CATEGORIES, IPA_LOOK), columns))
    }
    const orphanedTables = target?.foreign ? 0 : (machine.mapper?.state.orphanedTables ?? 0)
    return {ipa, heap: this.heap(machine, tablePages, orphanedTables, width, columns), legend: legendJson()}
  }

  /** --regime el1: a strip for each VA range (TTBR0_EL1's, TTBR1_EL1's), labelled, over what it maps; and the table pages both walks went through. */
  private el1(machine: Machine, walk: El1Walk, width: number, columns: number | undefined, filter?: LeafFilter): {json: NonNullable<DumpMapJson['el1']>; tablePages: bigint[]} {
    const tablePages: bigint[] = []
    const halves = [walk.lower, walk.upper].map((range): El1HalfJson => {
      const entries = el1Entries(machine, range)
      if (range.table !== undefined && range.geometry !== undefined) tablePages.push(range.table.base & ~0xfffn)
      for (const e of entries) if (e.decoded.nextTable !== undefined) tablePages.push(e.decoded.nextTable)
      const ranges: Range[] = mergeRanges(filter === undefined ? entries : entries.filter((e) => entryMatches(e, filter))).map((r) => (filter === undefined ? r : clipRange(r, filter)))
      const {strip: s, json} = ipaStripOf(ranges, width)
      this.log(
        `${el1Label(range)}${s === undefined ? `: ${el1Empty(range, filter)}` : ` ${hex(s.start)}-${hex(s.end)}${el1Register(range)}, ${s.cells.length} cells of ${formatSize(s.cellSize)}${filter === undefined ? '' : `, leaves ${describeFilter(filter)}`}:`}`,
      )
      if (s !== undefined) this.log(paint(s.cells, IPA_LOOK))
      return {
        ttbr: range.ttbr,
        enabled: range.enabled,
        root: range.table === undefined ? null : hex(range.table.base),
        ...json,
      }
    })
    this.log(wrapItems(legend(IPA_CATEGORIES, IPA_LOOK), columns))
    this.log(color.dim(`TCR_EL1 ${hex(walk.tcr.value)}  MAIR_EL1 ${hex(walk.mair)}; EL1's access and PXN as in the leaf descriptors (table attributes not applied)`))
    return {json: {walk: el1WalkJson(walk), halves: [halves[0]!, halves[1]!], ...(filter === undefined ? {} : {filter: describeFilter(filter)})}, tablePages}
  }

  /** The heap strip (none in a snapshot without a heap: a captured memory image); `tablePages` are the tables walked, wherever they are. */
  private heap(machine: Machine, tablePages: bigint[], orphanedTables: number, width: number, columns: number | undefined): DumpMapJson['heap'] {
    const status = machine.heap.status()
    if (status.size === 0n) {
      this.log("Heap: none (the snapshot's RAM is a whole memory image)")
      return {start: hex(status.start), end: hex(status.end), cellSize: 0, cells: [], ranges: [], tablePages: [], orphanedTables: 0}
    }
    const heapSegs = heapSegments(status, tablePages)
    const heapStrip = strip(heapSegs, heapScale(status.start, status.end, width), HEAP_CATEGORIES, status.end)
    const inHeap = heapSegs.filter((s) => s.category === 'table').map((s) => s.start)
    this.log(`Heap ${hex(status.start)}-${hex(status.end)}, ${heapStrip.cells.length} cells of ${formatSize(heapStrip.cellSize)}:`)
    this.log(paint(heapStrip.cells, HEAP_LOOK))
    const notes = [`${inHeap.length} table page(s)`, ...(orphanedTables > 0 ? [`${orphanedTables} unreachable table page(s) count as allocated`] : [])]
    this.log(wrapItems([...legend(HEAP_CATEGORIES, HEAP_LOOK), `(${notes.join('; ')})`], columns))
    return {
      start: hex(status.start),
      end: hex(status.end),
      cellSize: Number(heapStrip.cellSize),
      cells: heapStrip.cells,
      ranges: mergeSegments(heapSegs).map((s) => ({start: hex(s.start), end: hex(s.end), size: Number(s.end - s.start), category: s.category})),
      tablePages: inHeap.map((t) => hex(t)),
      orphanedTables,
    }
  }
}

/** The strip of `ranges` in `width` cells (undefined when nothing is mapped), and the JSON fields the IPA map and each EL1 half give it. */
function ipaStripOf(
  ranges: readonly Range[],
  width: number,
): {strip: Strip<IpaCategory> | undefined; json: {start: string; end: string; cellSize: number; cells: IpaCategory[]; ranges: IpaRangeJson[]}} {
  const segments: Array<Segment<IpaCategory>> = ranges.map((r) => ({start: r.start, end: r.end, category: ipaCategory(r.decoded.leaf!)}))
  const last = ranges.at(-1)
  const s = last === undefined ? undefined : strip(segments, ipaScale(ranges[0]!.start, last.end, width), IPA_CATEGORIES, last.end)
  return {
    strip: s,
    json: {start: hex(s?.start ?? 0n), end: hex(s?.end ?? 0n), cellSize: Number(s?.cellSize ?? 0n), cells: s?.cells ?? [], ranges: ranges.map((r, i) => ipaRangeJson(r, segments[i]!.category))},
  }
}

function legendJson(): DumpMapJson['legend'] {
  return {
    ipa: IPA_CATEGORIES.map((c) => ({category: c, char: IPA_LOOK[c].char, meaning: IPA_LOOK[c].meaning})),
    heap: HEAP_CATEGORIES.map((c) => ({category: c, char: HEAP_LOOK[c].char, meaning: HEAP_LOOK[c].meaning})),
  }
}

function ipaRangeJson(r: Range, category: IpaCategory): IpaRangeJson {
  const leaf = r.decoded.leaf!
  return {
    start: hex(r.start),
    end: hex(r.end),
    size: Number(r.end - r.start),
    category,
    level: r.level,
    outputStart: hex(r.outputStart),
    memType: leaf.memType,
    access: leaf.access,
    executable: leaf.executable,
  }
}

/** `Stage-1 (EL1&0) lower VA range` */
function el1Label(range: El1Range): string {
  return `Stage-1 (EL1&0) ${range.ttbr === 'TTBR0_EL1' ? 'lower' : 'upper'} VA range`
}

/** ` (TTBR1_EL1 0x41858001: CnP)` */
function el1Register(range: El1Range): string {
  if (range.table === undefined) return ''
  const split = describeTableBase(range.table)
  return ` (${range.ttbr} ${hex(range.table.value)}${split === '' ? '' : `: ${split}`})`
}

/** Why a range has no strip. */
function el1Empty(range: El1Range, filter?: LeafFilter): string {
  if (range.geometry === undefined) return `walks disabled (TCR_EL1.EPD${range.ttbr === 'TTBR1_EL1' ? 1 : 0})`
  if (range.table === undefined) return `${range.ttbr} not given`
  return `nothing mapped${el1Register(range)}${filter === undefined ? '' : ` (leaves ${describeFilter(filter)})`}`
}

function stageName(stage: 1 | 2): string {
  return stage === 2 ? 'Stage-2 IPA' : 'Stage-1 (EL2) VA'
}

/** The cells as characters, each run of one category painted once. */
function paint<C extends string>(cells: readonly C[], looks: Record<C, Look>): string {
  let out = ''
  for (let i = 0; i < cells.length;) {
    let j = i
    while (j < cells.length && cells[j] === cells[i]) j++
    const look = looks[cells[i]!]
    out += look.paint(look.char.repeat(j - i))
    i = j
  }
  return out
}

function legend<C extends string>(categories: readonly C[], looks: Record<C, Look>): string[] {
  return categories.map((c) => `${looks[c].paint(looks[c].char)} ${looks[c].meaning}`)
}

/** Neighbouring segments of one category as one. */
function mergeSegments<C extends string>(segments: ReadonlyArray<Segment<C>>): Array<Segment<C>> {
  const out: Array<Segment<C>> = []
  for (const s of segments) {
    const last = out[out.length - 1]
    if (last !== undefined && last.category === s.category && last.end === s.start) last.end = s.end
    else out.push({...s})
  }
  return out
}
