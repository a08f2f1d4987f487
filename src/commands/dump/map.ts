import type {ChalkInstance} from 'chalk'

import {HvmemCommand} from '../../cli/base.js'
import {intFlag} from '../../cli/flags.js'
import {color} from '../../cli/style.js'
import {type WalkJson, rootPagesInRam, walkFlags, walkJson, walkTarget} from '../../cli/walk.js'
import {HEAP_CATEGORIES, type HeapCategory, IPA_CATEGORIES, type IpaCategory, type Segment, type Strip, heapScale, heapSegments, ipaCategory, ipaScale, strip} from '../../core/address-map.js'
import type {Access} from '../../core/descriptor.js'
import {formatSize, hex} from '../../core/u64.js'
import {FINAL_LEVEL} from '../../core/geometry.js'
import {RangeMerger, peekingAccess, scanTables} from '../../core/walker.js'
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

export interface DumpMapJson {
  /** the input-address space (null without tables): the strip over the mapped extent, and the merged ranges behind it */
  ipa: (StripJson<IpaCategory> & {regime: string; root: string; ranges: IpaRangeJson[]; walk?: WalkJson}) | null
  /** the heap: the strip, and its ranges by category */
  heap: StripJson<HeapCategory> & {ranges: Array<{start: string; end: string; size: number; category: HeapCategory}>; tablePages: string[]; orphanedTables: number}
  legend: {ipa: Array<{category: IpaCategory; char: string; meaning: string}>; heap: Array<{category: HeapCategory; char: string; meaning: string}>}
}

export default class DumpMap extends HvmemCommand {
  static override summary = 'Picture the address space and the heap: a strip of cells, one character per cell, by memory type and permission.'
  static override description = `The IPA strip covers the mapped extent (from the first mapped address to the end of the last mapping; the 39-bit space itself is 512 GiB) in at most --width cells of a power-of-two size, so the scale is printed with it. The heap strip covers the heap in --width equal cells and shows the tables reachable from the root (pages tables no longer reachable count as allocated; how many is shown), other allocations, and free space.

A cell shows what covers most of it among what is there (mapped memory; tables or allocations): a 4 KiB page in a 32 MiB cell still shows; a cell is unmapped or free only if nothing else is in it. Each category has its own character, so the picture reads without colour (when piped or with NO_COLOR); colour is added on a terminal. --json gives the cells, the scale and the ranges behind them. --root, --regime, --vtcr, --tcr, --vmid and --mair picture tables hvmem did not build, as for "dump tables".`

  static override examples = ['<%= config.bin %> dump map', '<%= config.bin %> dump map --width 100', '<%= config.bin %> dump map --json', '<%= config.bin %> dump map --root 0x4100_0000 --vtcr 0x80023590']

  static override flags = {
    width: intFlag(8, 1024)({summary: 'Cells per strip (8..1024).', default: 64}),
    ...walkFlags,
  }

  async run(): Promise<DumpMapJson> {
    const {flags} = await this.parse(DumpMap)
    const machine = await loadSnapshot(flags.snapshot)
    const target = walkTarget(machine, flags, false)
    const width = flags.width

    let ipa: DumpMapJson['ipa'] = null
    let ipaStrip: Strip<IpaCategory> | undefined
    const tablePages: bigint[] = []
    if (target !== undefined) {
      const pages = rootPagesInRam(machine, target)
      for (let i = 0; i < pages; i++) tablePages.push(target.root + 4096n * BigInt(i))
      // one scan, no object per entry: the merged ranges, and the tables it goes into
      const merger = new RangeMerger(target.regime, target.geometry)
      scanTables(machine.memory, target.root, target.geometry, (w, unfollowed) => {
        if (unfollowed !== undefined) {
          tablePages.pop() // the table this entry points at was not walked (it comes right after the entry)
          return
        }
        merger.add(w)
        if (w.level < FINAL_LEVEL && (w.lo & 3) === 3) tablePages.push(BigInt(w.next))
      }, peekingAccess(machine.memory))
      const ranges = merger.finish().ranges
      const segments: Array<Segment<IpaCategory>> = ranges.map((r) => ({start: r.start, end: r.end, category: ipaCategory(r.decoded.leaf!)}))
      if (ranges.length > 0) {
        const start = ranges[0]!.start
        const end = ranges[ranges.length - 1]!.end
        ipaStrip = strip(segments, ipaScale(start, end, width), IPA_CATEGORIES, end)
      }
      ipa = {
        regime: target.regimeName,
        root: hex(target.root),
        start: hex(ipaStrip?.start ?? 0n),
        end: hex(ipaStrip?.end ?? 0n),
        cellSize: Number(ipaStrip?.cellSize ?? 0n),
        cells: ipaStrip?.cells ?? [],
        ranges: ranges.map((r, i) => {
          const leaf = r.decoded.leaf!
          return {start: hex(r.start), end: hex(r.end), size: Number(r.end - r.start), category: segments[i]!.category, level: r.level, outputStart: hex(r.outputStart), memType: leaf.memType, access: leaf.access, executable: leaf.executable}
        }),
        ...(target.foreign ? {walk: walkJson(target)} : {}),
      }
    }

    const status = machine.heap.status()
    const heapSegs = heapSegments(status, tablePages)
    const heapStrip = strip(heapSegs, heapScale(status.start, status.end, width), HEAP_CATEGORIES, status.end)
    const inHeap = heapSegs.filter((s) => s.category === 'table').map((s) => s.start)
    const orphanedTables = target?.foreign ? 0 : (machine.mapper?.state.orphanedTables ?? 0)
    const heap: DumpMapJson['heap'] = {
      start: hex(status.start),
      end: hex(status.end),
      cellSize: Number(heapStrip.cellSize),
      cells: heapStrip.cells,
      ranges: mergeSegments(heapSegs).map((s) => ({start: hex(s.start), end: hex(s.end), size: Number(s.end - s.start), category: s.category})),
      tablePages: inHeap.map((t) => hex(t)),
      orphanedTables,
    }

    if (target === undefined) this.log('IPA space: no translation tables yet ("hvmem map region" creates them)')
    else if (ipaStrip === undefined) this.log(`${stageName(target.regime.stage)} space (root ${hex(target.root)}): nothing mapped`)
    else {
      this.log(`${stageName(target.regime.stage)} space ${hex(ipaStrip.start)}-${hex(ipaStrip.end)} (root ${hex(target.root)}), ${ipaStrip.cells.length} cells of ${formatSize(ipaStrip.cellSize)}:`)
      this.log(paint(ipaStrip.cells, IPA_LOOK))
      this.log(legend(IPA_CATEGORIES, IPA_LOOK))
    }
    this.log(`Heap ${hex(status.start)}-${hex(status.end)}, ${heapStrip.cells.length} cells of ${formatSize(heapStrip.cellSize)}:`)
    this.log(paint(heapStrip.cells, HEAP_LOOK))
    const notes = [`${inHeap.length} table page(s)`, ...(orphanedTables > 0 ? [`${orphanedTables} unreachable table page(s) count as allocated`] : [])]
    this.log(`${legend(HEAP_CATEGORIES, HEAP_LOOK)}  (${notes.join('; ')})`)

    return {
      ipa,
      heap,
      legend: {
        ipa: IPA_CATEGORIES.map((c) => ({category: c, char: IPA_LOOK[c].char, meaning: IPA_LOOK[c].meaning})),
        heap: HEAP_CATEGORIES.map((c) => ({category: c, char: HEAP_LOOK[c].char, meaning: HEAP_LOOK[c].meaning})),
      },
    }
  }
}

function stageName(stage: 1 | 2): string {
  return stage === 2 ? 'Stage-2 IPA' : 'Stage-1 (EL2) VA'
}

/** The cells as characters, each run of one category painted once. */
function paint<C extends string>(cells: readonly C[], looks: Record<C, Look>): string {
  let out = ''
  for (let i = 0; i < cells.length; ) {
    let j = i
    while (j < cells.length && cells[j] === cells[i]) j++
    const look = looks[cells[i]!]
    out += look.paint(look.char.repeat(j - i))
    i = j
  }
  return out
}

function legend<C extends string>(categories: readonly C[], looks: Record<C, Look>): string {
  return categories.map((c) => `${looks[c].paint(looks[c].char)} ${looks[c].meaning}`).join('  ')
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
