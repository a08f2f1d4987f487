/**
 * A table tree as Graphviz `dot`: one node per table page (its level and address), an edge for each
 * table descriptor (labelled with its index and the input address it covers), and each table's leaf
 * entries summarised in its node as merged ranges (ptdump-style), so a table of 512 pages is one node
 * with a line or a few, not 512 nodes.
 */
import {formatSize, hex} from '../core/u64.js'
import {type WalkEntry, mergeRanges} from '../core/walker.js'
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
  address: bigint
  level: number
  leaves: WalkEntry[]
  reserved: number
  /** a table some descriptor points at that the walk could not read (outside RAM) */
  unreadable?: string
}

export function tablesDot(entries: readonly WalkEntry[], options: DotOptions): string {
  const nodes = new Map<bigint, TableNode>()
  const node = (address: bigint, level: number): TableNode => {
    let n = nodes.get(address)
    if (n === undefined) {
      n = {address, level, leaves: [], reserved: 0}
      nodes.set(address, n)
    }
    return n
  }
  node(options.root, options.startLevel)
  const edges: string[] = []
  for (const e of entries) {
    const n = node(e.table, e.level)
    const d = e.decoded
    if (d.leaf !== undefined) n.leaves.push(e)
    else if (d.kind === 'reserved') n.reserved++
    else if (d.kind === 'table') {
      const child = node(d.nextTable!, e.level + 1)
      if (e.problem !== undefined) child.unreadable = e.problem
      edges.push(`  ${quoteId(hex(e.table))} -> ${quoteId(hex(d.nextTable!))} [label=${quoteId(`[${e.index}] ${hex(e.ipa)}`)}];`)
    }
  }
  const lines = [`digraph ${quoteId(options.title)} {`, '  rankdir=LR;', '  node [shape=box, fontname="monospace"];']
  for (const n of nodes.values()) {
    const head = `L${n.level} table ${hex(n.address)}${n.address === options.root ? ` (root${options.rootPages > 1 ? `, ${options.rootPages} pages` : ''})` : ''}`
    if (n.unreadable !== undefined) {
      lines.push(`  ${labelled(hex(n.address), [head, n.unreadable], ', style=dashed')};`)
      continue
    }
    const ranges = mergeRanges(n.leaves)
    const body = ranges.slice(0, DOT_MAX_RANGES).map((r) => {
      const out = r.outputStart === r.start ? '' : ` -> ${hex(r.outputStart)}`
      return `${hex(r.start)}-${hex(r.end)} ${formatSize(r.end - r.start)} ${attributeWords(r.decoded.leaf!, r.decoded.kind)}${out}`
    })
    if (ranges.length > DOT_MAX_RANGES) body.push(`... ${ranges.length - DOT_MAX_RANGES} more range(s)`)
    if (n.reserved > 0) body.push(`${n.reserved} reserved entr${n.reserved === 1 ? 'y' : 'ies'}`)
    lines.push(`  ${labelled(hex(n.address), [head, ...body])};`)
  }
  lines.push(...edges, '}')
  return lines.join('\n')
}

/** `"id" [label="line\lline\l"]`: left-justified lines (dot's `\l`), each escaped. */
function labelled(id: string, labelLines: string[], extra = ''): string {
  const escaped = labelLines.map((l) => quoteId(l).slice(1, -1)).join('\\l')
  return `${quoteId(id)} [label="${escaped}\\l"${extra}]`
}
