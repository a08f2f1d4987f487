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

interface TableNode {
  address: number
  level: number
  /** the label's lines after the head: its leaves merged into ranges, its reserved entries */
  body: string[]
  /** a table some descriptor points at that the walk could not read (outside RAM) */
  unreadable?: string
}

/** The table a scan is in at one level: its leaves are merged as they come. */
interface OpenTable {
  node: TableNode
  ranges: RangeMerger
  reserved: number
}

/**
 * tablesDot's text, made from the entries of a scan as they come (add), with nothing kept per entry:
 * a node per table page and an edge per table descriptor are kept until the end, when the nodes are
 * written in the order they were met (the root's first, which is complete only then).
 */
export class DotBuilder {
  private readonly nodes = new Map<number, TableNode>()
  private readonly edges: string[] = []
  private readonly open: Array<OpenTable | undefined> = []
  /** the node the last table entry points at (an unfollowed word is about it) */
  private child: TableNode | undefined

  constructor(
    private readonly regime: Regime,
    private readonly geometry: Geometry,
    private readonly options: DotOptions,
  ) {
    this.node(Number(options.root), options.startLevel)
  }

  private node(address: number, level: number): TableNode {
    let n = this.nodes.get(address)
    if (n === undefined) {
      n = {address, level, body: []}
      this.nodes.set(address, n)
    }
    return n
  }

  /** The next entry of the scan (scanTables' visit). */
  add(w: TableWalker, unfollowed?: Unfollowed): void {
    if (unfollowed !== undefined) {
      this.child!.unreadable = describeUnfollowed(w.next, unfollowed)
      return
    }
    const level = w.level
    // the tables deeper than this entry are done, and the one at its level if it is another
    for (let l = this.open.length - 1; l > level; l--) this.close(l)
    let open = this.open[level]
    if (open !== undefined && open.node.address !== w.table) {
      this.close(level)
      open = undefined
    }
    if (open === undefined) {
      open = {node: this.node(w.table, level), ranges: new RangeMerger(this.regime, this.geometry, DOT_MAX_RANGES), reserved: 0}
      this.open[level] = open
    }
    const lo = w.lo
    if (isLeafLow(lo, level, this.geometry)) open.ranges.add(w)
    else if (level < FINAL_LEVEL && (lo & 3) === 3) {
      const next = w.next
      this.child = this.node(next, level + 1)
      this.edges.push(`  ${quoteId(hex(BigInt(w.table)))} -> ${quoteId(hex(BigInt(next)))} [label=${quoteId(`[${w.index}] ${hex(BigInt(w.addr))}`)}];`)
    } else open.reserved++
  }

  /** After the scan. */
  finish(): void {
    for (let l = this.open.length - 1; l >= 0; l--) this.close(l)
  }

  private close(level: number): void {
    const open = this.open[level]
    if (open === undefined) return
    this.open[level] = undefined
    const {ranges} = open.ranges.finish()
    const count = open.ranges.rangeCount
    const body = ranges.map((r) => {
      const out = r.outputStart === r.start ? '' : ` -> ${hex(r.outputStart)}`
      return `${hex(r.start)}-${hex(r.end)} ${formatSize(r.end - r.start)} ${attributeWords(r.decoded.leaf!, r.decoded.kind)}${out}`
    })
    if (count > DOT_MAX_RANGES) body.push(`... ${count - DOT_MAX_RANGES} more range(s)`)
    if (open.reserved > 0) body.push(`${open.reserved} reserved entr${open.reserved === 1 ? 'y' : 'ies'}`)
    open.node.body = body
  }

  /** The source, line by line. */
  *lines(): Generator<string> {
    const o = this.options
    yield `digraph ${quoteId(o.title)} {`
    yield '  rankdir=LR;'
    yield '  node [shape=box, fontname="monospace"];'
    const root = Number(o.root)
    for (const n of this.nodes.values()) {
      const address = hex(BigInt(n.address))
      const head = `L${n.level} table ${address}${n.address === root ? ` (root${o.rootPages > 1 ? `, ${o.rootPages} pages` : ''})` : ''}`
      if (n.unreadable !== undefined) yield `  ${labelled(address, [head, n.unreadable], ', style=dashed')};`
      else yield `  ${labelled(address, [head, ...n.body])};`
    }
    yield* this.edges
    yield '}'
  }
}

/** `"id" [label="line\lline\l"]`: left-justified lines (dot's `\l`), each escaped. */
function labelled(id: string, labelLines: string[], extra = ''): string {
  const escaped = labelLines.map((l) => quoteId(l).slice(1, -1)).join('\\l')
  return `${quoteId(id)} [label="${escaped}\\l"${extra}]`
}
