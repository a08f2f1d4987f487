/**
 * A table tree as Graphviz `dot`: one node per table page (its level and address), an edge for each
 * table descriptor (labelled with its index and the input address it covers), and each table's leaf
 * entries summarised in its node as merged ranges (ptdump-style), so a table of 512 pages is one node
 * with a line or a few, not 512 nodes.
 */
import {type Regime, isLeafLow} from '../core/descriptor.js'
import {FINAL_LEVEL, type Geometry} from '../core/geometry.js'
import {formatSize, hex} from '../core/u64.js'
import {RangeMerger, type TableWalker, type Unfollowed, describeUnfollowed} from '../core/walker.js'
import {attributeWords} from './render.js'

/** Most range lines shown in one table's node; the rest are counted. */
const DOT_MAX_RANGES = 16

export interface DotOptions {
  root: bigint
  startLevel: number
  /** 4 KiB pages the root table spans (stage-2 concatenated tables) */
  rootPages: number
  title: string
}

/** A string as a dot quoted ID or label (backslash and double quote escaped, no newlines). */
function quoteId(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ')}"`
}

/** The table a scan is in at one level: its leaves are merged as they come. */
interface OpenTable {
  address: number
  level: number
  ranges: RangeMerger
  reserved: number
}

/**
 * tablesDot's text, made from two scans of the tree with nothing kept per entry, nor a label per
 * table: the nodes are written in the order the walk meets them (the root's first) and a node's label
 * sums up its table's leaves, which for a table with tables below it are known only once the walk
 * has left it. So the first scan (`interiorScan`) keeps the labels of those tables (a table of leaves,
 * the bulk, has none below it) and the words on tables not followed; the second (`writeScan`) writes
 * each node as soon as its label is known, and keeps each edge as four numbers to write after them.
 */
export class DotWriter {
  /** labels of the tables above the last level, by address (the first scan) */
  private readonly bodies = new Map<number, string[]>()
  /** why a table was not followed (its node is drawn dashed), by address (the first scan) */
  private readonly problems = new Map<number, string>()
  private readonly open: Array<OpenTable | undefined> = []
  /** the table the last table entry points at (an unfollowed word is about it) */
  private child = -1
  // the second scan: the nodes written, the table of leaves being walked, the edges (table, next, index, addr)
  private readonly written = new Set<number>()
  private pending: OpenTable | undefined
  private readonly edges: number[] = []
  private readonly root: number

  constructor(
    private readonly regime: Regime,
    private readonly geometry: Geometry,
    private readonly options: DotOptions,
  ) {
    this.root = Number(options.root)
  }

  private openTable(address: number, level: number): OpenTable {
    return {address, level, ranges: new RangeMerger(this.regime, this.geometry, DOT_MAX_RANGES), reserved: 0}
  }

  /** The first scan's visit: the labels of tables with tables below them, and the words on tables not followed. */
  interior(w: TableWalker, unfollowed?: Unfollowed): void {
    if (unfollowed !== undefined) {
      this.problems.set(this.child, describeUnfollowed(w.next, unfollowed))
      return
    }
    const level = w.level
    for (let l = this.open.length - 1; l > level; l--) this.closeInterior(l)
    let open = this.open[level]
    if (open !== undefined && open.address !== w.table) {
      this.closeInterior(level)
      open = undefined
    }
    if (open === undefined) {
      open = this.openTable(w.table, level)
      this.open[level] = open
    }
    if (isLeafLow(w.lo, level, this.geometry)) open.ranges.add(w)
    else if (level < FINAL_LEVEL && (w.lo & 3) === 3) this.child = w.next
    else open.reserved++
  }

  /** After the first scan. */
  interiorDone(): void {
    for (let l = this.open.length - 1; l >= 0; l--) this.closeInterior(l)
  }

  private closeInterior(level: number): void {
    const open = this.open[level]
    if (open === undefined) return
    this.open[level] = undefined
    if (level < FINAL_LEVEL) this.bodies.set(open.address, body(open))
  }

  /** The source's first lines, and the root's node if its label is known (call before the second scan). */
  start(emit: (line: string) => void): void {
    const o = this.options
    emit(`digraph ${quoteId(o.title)} {`)
    emit('  rankdir=LR;')
    emit('  node [shape=box, fontname="monospace"];')
    this.meet(this.root, o.startLevel, emit)
  }

  /** A node met: written now if its label is known, else (a table of leaves) once the walk has left it. */
  private meet(address: number, level: number, emit: (line: string) => void): void {
    if (this.written.has(address)) return
    this.written.add(address)
    if (level < FINAL_LEVEL) emit(this.nodeLine(address, level, this.bodies.get(address) ?? []))
    else this.pending = this.openTable(address, level)
  }

  /** The second scan's visit (not called with unfollowed words: the first scan has them). */
  entry(w: TableWalker, emit: (line: string) => void): void {
    const level = w.level
    const pending = this.pending
    if (pending !== undefined && (level < FINAL_LEVEL || w.table !== pending.address)) this.flush(emit)
    if (level === FINAL_LEVEL) {
      if (this.pending === undefined) this.pending = this.openTable(w.table, level)
      if (isLeafLow(w.lo, level, this.geometry)) this.pending.ranges.add(w)
      else this.pending.reserved++
      return
    }
    if (isLeafLow(w.lo, level, this.geometry) || (w.lo & 3) !== 3) return
    const next = w.next
    this.edges.push(w.table, next, w.index, w.addr)
    this.meet(next, level + 1, emit)
  }

  /** After the second scan: the last node, the edges and the closing brace. */
  *end(emit: (line: string) => void): Generator<void> {
    this.flush(emit)
    const e = this.edges
    for (let i = 0; i < e.length; i += 4) {
      emit(`  ${quoteId(hex(BigInt(e[i]!)))} -> ${quoteId(hex(BigInt(e[i + 1]!)))} [label=${quoteId(`[${e[i + 2]}] ${hex(BigInt(e[i + 3]!))}`)}];`)
      if ((i & 0xfff) === 0) yield
    }
    emit('}')
  }

  private flush(emit: (line: string) => void): void {
    const p = this.pending
    if (p === undefined) return
    this.pending = undefined
    emit(this.nodeLine(p.address, p.level, body(p)))
  }

  private nodeLine(address: number, level: number, lines: string[]): string {
    const o = this.options
    const id = hex(BigInt(address))
    const head = `L${level} table ${id}${address === this.root ? ` (root${o.rootPages > 1 ? `, ${o.rootPages} pages` : ''})` : ''}`
    const problem = this.problems.get(address)
    return problem !== undefined ? `  ${labelled(id, [head, problem], ', style=dashed')};` : `  ${labelled(id, [head, ...lines])};`
  }
}

/** A table's label lines after its head: its leaves merged into ranges (the first few), its reserved entries. */
function body(open: OpenTable): string[] {
  const {ranges} = open.ranges.finish()
  const count = open.ranges.rangeCount
  const lines = ranges.map((r) => {
    const out = r.outputStart === r.start ? '' : ` -> ${hex(r.outputStart)}`
    return `${hex(r.start)}-${hex(r.end)} ${formatSize(r.end - r.start)} ${attributeWords(r.decoded.leaf!, r.decoded.kind)}${out}`
  })
  if (count > DOT_MAX_RANGES) lines.push(`... ${count - DOT_MAX_RANGES} more range(s)`)
  if (open.reserved > 0) lines.push(`${open.reserved} reserved entr${open.reserved === 1 ? 'y' : 'ies'}`)
  return lines
}

/** `"id" [label="line\lline\l"]`: left-justified lines (dot's `\l`), each escaped. */
function labelled(id: string, labelLines: string[], extra = ''): string {
  const escaped = labelLines.map((l) => quoteId(l).slice(1, -1)).join('\\l')
  return `${quoteId(id)} [label="${escaped}\\l"${extra}]`
}
