/**
 * `dump tables` in text, written as the walk goes (src/cli/sink.ts), with no object per entry: the
 * same text as rendering walkTables' entries (renderTable, tablesDot), for trees larger than memory
 * would hold as objects (64 GiB in pages is 16.8 million entries).
 *
 * The tree is drawn in two walks: the first measures the columns (renderTable pads each to its widest
 * cell) and counts, the second writes the rows, stopping when stdout's reader is behind (ScanCursor).
 */
import type {Regime} from '../core/descriptor.js'
import {FINAL_LEVEL, type Geometry} from '../core/geometry.js'
import type {Machine} from '../core/machine.js'
import type {PhysicalMemory} from '../core/memory.js'
import {formatSize} from '../core/u64.js'
import {type Range, RangeMerger, ScanCursor, peekingAccess, type TableWalker, type Unfollowed, describeUnfollowed, scanTables} from '../core/walker.js'
import {type DotOptions, DotWriter} from './dot.js'
import {attributeWords} from './render.js'
import {OutputSink, drive, keepUp} from './sink.js'
import {color} from './style.js'

export interface TreeTarget {
  regime: Regime
  root: bigint
  geometry: Geometry
}

const HEAD = ['entry', 'table', 'IPA', 'size', 'descriptor', 'type', 'output / next', 'attributes']

/** The fields of an entry a row reads: a walker's, or a table entry's kept (HeldEntry) while the walk says whether it follows it. */
type Row = Pick<TableWalker, 'level' | 'index' | 'table' | 'addr' | 'lo' | 'hi' | 'next' | 'output' | 'raw'>

/** What entries of one kind (level, type and attribute bits) share: their type and attribute words. */
interface Kind {
  kind: string
  /** attribute words (leaves), else '' */
  words: string
  /** a table or a leaf: it has an output / next column */
  target: boolean
}

const hexNumber = (n: number, digits = 0): string => `0x${n.toString(16).padStart(digits, '0')}`
const descriptorHex = (lo: number, hi: number): string => `0x${(hi >>> 0).toString(16).padStart(8, '0')}${(lo >>> 0).toString(16).padStart(8, '0')}`

class Kinds {
  private readonly kinds = new Map<number, Kind>()
  constructor(private readonly t: TreeTarget) {}
  of(w: Row): Kind {
    const key = w.level * 0x1000_0000 + (w.lo & 0xfff) * 0x1_0000 + (w.hi >>> 16)
    let k = this.kinds.get(key)
    if (k === undefined) {
      const d = this.t.regime.decode(w.raw, w.level, this.t.geometry)
      k = {kind: d.kind, words: d.leaf === undefined ? '' : attributeWords(d.leaf, d.kind), target: d.nextTable !== undefined || d.leaf !== undefined}
      this.kinds.set(key, k)
    }
    return k
  }
}

/** One row's cells, plain (no colour); `sizes`: the entry size of each level, from `startLevel` on. */
function cells(w: Row, k: Kind, startLevel: number, sizes: string[], problem: string | undefined): string[] {
  const target = !k.target ? '' : k.kind === 'table' ? hexNumber(w.next) : hexNumber(w.output)
  return [
    `${'  '.repeat(w.level - startLevel)}L${w.level}[${w.index}]`,
    hexNumber(w.table),
    hexNumber(w.addr, 10),
    sizes[w.level - startLevel]!,
    descriptorHex(w.lo, w.hi),
    k.kind,
    target,
    k.words === '' ? (problem ?? '') : k.words,
  ]
}

/**
 * Calls `row` for each entry with its problem (a table entry's waits for the walk's word on it), over
 * a scan in parts (the cursor); returns the visit to run the cursor with, and `end` for the last row.
 */
function rowsOf(row: (w: Row, problem: string | undefined) => void, stopIf: (w: TableWalker) => boolean): {visit: (w: TableWalker, unfollowed?: Unfollowed) => void; end: () => void} {
  // a table entry whose row waits for the walk's word, copied from the walker (a stand-in walker)
  let held: HeldEntry | undefined
  const release = (problem?: string): void => {
    if (held === undefined) return
    const h = held
    held = undefined
    row(h, problem)
  }
  return {
    visit: (w, unfollowed) => {
      if (unfollowed !== undefined) {
        release(describeUnfollowed(w.next, unfollowed))
        return
      }
      if (stopIf(w)) return
      release()
      if (w.level < FINAL_LEVEL && (w.lo & 3) === 3) held = new HeldEntry(w)
      else row(w, undefined)
    },
    end: () => release(),
  }
}

/** The fields of a walker's entry that a row reads, kept. */
class HeldEntry implements Row {
  readonly level: number
  readonly index: number
  readonly table: number
  readonly addr: number
  readonly lo: number
  readonly hi: number
  readonly next: number
  readonly output = 0
  readonly raw: bigint
  constructor(w: TableWalker) {
    this.level = w.level
    this.index = w.index
    this.table = w.table
    this.addr = w.addr
    this.lo = w.lo
    this.hi = w.hi
    this.next = w.next
    this.raw = w.raw
  }
}

/** Writes the tree listing: `title`, the table of entries (as renderTable draws it), and the counts line. */
export async function writeTree(sink: OutputSink, memory: PhysicalMemory, t: TreeTarget, title: string): Promise<void> {
  const g = t.geometry
  const startLevel = g.startLevel
  // by level from the start level (-1 with FEAT_LPA2)
  const sizes = Array.from({length: FINAL_LEVEL - startLevel + 1}, (_, i) => formatSize(g.entrySize(startLevel + i)))
  const kinds = new Kinds(t)
  // walk 1: column widths and counts
  const widths = HEAD.map((h) => h.length)
  const merger = new RangeMerger(t.regime, g, 0)
  const measure = rowsOf(
    (w, problem) => {
      const c = cells(w, kinds.of(w), startLevel, sizes, problem)
      for (let i = 0; i < c.length; i++) if (c[i]!.length > widths[i]!) widths[i] = c[i]!.length
    },
    () => false,
  )
  scanTables(
    memory,
    t.root,
    g,
    (w, unfollowed) => {
      if (unfollowed === undefined) merger.add(w)
      measure.visit(w, unfollowed)
    },
    peekingAccess(memory),
  )
  measure.end()
  const counts = merger.finish()

  sink.line(title)
  const rule = (left: string, middle: string, right: string): string => left + widths.map((w) => '─'.repeat(w + 2)).join(middle) + right
  const pad = (text: string, c: number): string => ' '.repeat(widths[c]! - text.length)
  sink.line(rule('┌', '┬', '┐'))
  sink.line(`│${HEAD.map((h, c) => ` ${color.bold(h)}${pad(h, c)} `).join('│')}│`)
  if (counts.entries > 0) sink.line(rule('├', '┼', '┤'))
  // walk 2: the rows, in parts
  const cursor = new ScanCursor(memory, t.root, g, peekingAccess(memory))
  const rows = rowsOf(
    (w, problem) => {
      const k = kinds.of(w)
      const c = cells(w, k, startLevel, sizes, problem)
      let line = '│'
      for (let i = 0; i < c.length; i++) {
        const text = c[i]!
        const shown = (i === 5 && text === 'reserved') || (i === 7 && problem !== undefined && k.words === '') ? color.red(text) : text
        line += ` ${shown}${pad(text, i)} │`
      }
      sink.line(line)
    },
    (w) => {
      if (!sink.behind) return false
      cursor.stop(w)
      return true
    },
  )
  if (!(await drive(sink, () => cursor.run(rows.visit)))) return
  rows.end()
  sink.line(rule('└', '┴', '┘'))
  sink.line(color.dim(`${counts.entries} valid entries, ${counts.leaves} leaves, ${merger.rangeCount} range(s)`))
  sink.flush()
}

/**
 * The ranges of the tree (walkRanges'), each handed to `emit` once the walk has completed it: a walk
 * in parts that stops while stdout's reader is behind (ScanCursor), keeping no entry and no range.
 * False if stdout failed on the way.
 */
export async function writeRanges(sink: OutputSink, memory: PhysicalMemory, t: TreeTarget, emit: (range: Range) => void): Promise<boolean> {
  const merger = new RangeMerger(t.regime, t.geometry, 0, emit)
  const cursor = new ScanCursor(memory, t.root, t.geometry, peekingAccess(memory))
  const visit = (w: TableWalker, unfollowed?: Unfollowed): void => {
    if (unfollowed !== undefined) return
    if (sink.behind) return cursor.stop(w)
    merger.add(w)
  }
  if (!(await drive(sink, () => cursor.run(visit)))) return false
  merger.finish()
  return true
}

/** The mapper's ranges (none without a mapper), each to `emit` as the walk completes it (writeRanges). */
export function writeMachineRanges(machine: Machine, sink: OutputSink, emit: (range: Range) => void): Promise<boolean> {
  const m = machine.mapper
  if (m === undefined) return Promise.resolve(!sink.failed)
  return writeRanges(sink, machine.memory, m, emit)
}

/** Graphviz source of the tree (tablesDot's text): two scans, nothing kept per entry (DotWriter); lines go to `emit`. */
export async function writeDotLines(sink: OutputSink, memory: PhysicalMemory, t: TreeTarget, options: DotOptions, emit: (line: string) => void): Promise<boolean> {
  const dot = new DotWriter(t.regime, t.geometry, options)
  scanTables(memory, t.root, t.geometry, (w, unfollowed) => dot.interior(w, unfollowed), peekingAccess(memory))
  dot.interiorDone()
  dot.start(emit)
  const cursor = new ScanCursor(memory, t.root, t.geometry, peekingAccess(memory))
  const visit = (w: TableWalker, unfollowed?: Unfollowed): void => {
    if (unfollowed !== undefined) return
    if (sink.behind) return cursor.stop(w)
    dot.entry(w, emit)
  }
  if (!(await drive(sink, () => cursor.run(visit)))) return false
  for (const _ of dot.end(emit)) if (!(await keepUp(sink))) return false
  return true
}

/** `dump tables --format dot`. */
export async function writeDot(sink: OutputSink, memory: PhysicalMemory, t: TreeTarget, options: DotOptions): Promise<void> {
  if (await writeDotLines(sink, memory, t, options, (line) => sink.line(line))) sink.flush()
}

/** The whole dot source as one string (a batch's --json document). */
export async function dotText(memory: PhysicalMemory, t: TreeTarget, options: DotOptions): Promise<string> {
  const lines: string[] = []
  await writeDotLines(new OutputSink({bytes: () => true}), memory, t, options, (line) => lines.push(line))
  return lines.join('\n')
}
