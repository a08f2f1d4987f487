/**
 * dump tables is written as the walk goes (src/cli/table-dump.ts, dot.ts, dump-json.ts): the same text
 * as before, when it rendered walkTables' entries whole, on a mid-size tree with every kind of entry
 * (pages, blocks, device, read-only, reserved, a loop, a table outside RAM).
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {entryJson, mapperJson, rangeJson, registerLine} from '../../src/cli/json.js'
import {attributeWords, rangeLine} from '../../src/cli/render.js'
import {renderTable} from '../../src/cli/style.js'
import {formatSize, hex} from '../../src/core/u64.js'
import {type WalkEntry, mergeRanges} from '../../src/core/walker.js'
import {loadSnapshot} from '../../src/snapshot/store.js'
import {runInProcess} from './inprocess.js'
import {scratch} from './run.js'
import {walkEntries} from '../core/helpers.js'

let snap: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({snap, cleanup} = await scratch())
  for (const args of [
    ['heap', 'init'],
    ['map', 'region', '0x4000_0000', '8M', '--granularity', 'page', '--l2-budget', '8'],
    ['map', 'region', '0x0900_0000', '4K', '--attr', 'device'],
    ['map', 'region', '0x8000_0000', '1G'],
    ['map', 'region', '0xc000_0000', '64M', '--granularity', '2M', '--attr', 'readonly'],
    ['map', 'protect', '0x4010_0000', '1M', '--perm', 'r'],
    ['mem', 'write', '0x4100_0020', '0x4100_0003'], // a root entry pointing at the root: a loop
    ['mem', 'write', '0x4100_1ff0', '0x99_0000_0003'], // an L2 table outside RAM
    ['mem', 'write', '0x4100_2008', '0x1'], // an L3 "block": reserved
  ]) {
    const r = await runInProcess([...args, '-s', snap])
    expect(r.code, r.stderr).toBe(0)
  }
})
afterAll(async () => cleanup())

/** What dump tables printed before, from walkTables' entries. */
async function before(format: 'tree' | 'ranges' | 'dot' | 'json'): Promise<string> {
  const machine = await loadSnapshot(snap)
  const mapper = machine.mapper!
  const entries = walkEntries(machine.memory, mapper.regime, mapper.root, mapper.geometry)
  const ranges = mergeRanges(entries)
  const title = `Stage 2, root ${hex(mapper.root)}: ${registerLine(mapper)}`
  const counts = `${entries.length} valid entries, ${entries.filter((e) => e.decoded.leaf !== undefined).length} leaves, ${ranges.length} range(s)`
  if (format === 'json') return `${JSON.stringify({mapper: mapperJson(mapper), entries: entries.map(entryJson), ranges: ranges.map(rangeJson)}, null, 2)}\n`
  if (format === 'dot') return `${referenceDot(entries, mapper.root, mapper.geometry.startLevel, title)}\n`
  if (format === 'ranges') return `${[title, ...ranges.map(rangeLine), counts].join('\n')}\n`
  const rows = entries.map((e) => {
    const d = e.decoded
    const target = d.nextTable ?? d.leaf?.outputAddress
    return [
      `${'  '.repeat(e.level - mapper.geometry.startLevel)}L${e.level}[${e.index}]`,
      hex(e.table),
      hex(e.ipa, 10),
      formatSize(e.size),
      hex(d.raw, 16),
      d.kind,
      target === undefined ? '' : hex(target),
      d.leaf ? attributeWords(d.leaf, d.kind) : (e.problem ?? ''),
    ]
  })
  return `${[title, renderTable(['entry', 'table', 'IPA', 'size', 'descriptor', 'type', 'output / next', 'attributes'], rows), counts].join('\n')}\n`
}

/** tablesDot as it was (src/cli/dot.ts before it was made from a scan). */
function referenceDot(entries: readonly WalkEntry[], root: bigint, startLevel: number, title: string): string {
  const quote = (text: string): string => `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ')}"`
  const labelled = (id: string, lines: string[], extra = ''): string => `${quote(id)} [label="${lines.map((l) => quote(l).slice(1, -1)).join('\\l')}\\l"${extra}]`
  type Node = {address: bigint; level: number; leaves: WalkEntry[]; reserved: number; unreadable?: string}
  const nodes = new Map<bigint, Node>()
  const node = (address: bigint, level: number): Node => {
    if (!nodes.has(address)) nodes.set(address, {address, level, leaves: [], reserved: 0})
    return nodes.get(address)!
  }
  node(root, startLevel)
  const edges: string[] = []
  for (const e of entries) {
    const n = node(e.table, e.level)
    if (e.decoded.leaf !== undefined) n.leaves.push(e)
    else if (e.decoded.kind === 'reserved') n.reserved++
    else {
      const child = node(e.decoded.nextTable!, e.level + 1)
      if (e.problem !== undefined) child.unreadable = e.problem
      edges.push(`  ${quote(hex(e.table))} -> ${quote(hex(e.decoded.nextTable!))} [label=${quote(`[${e.index}] ${hex(e.ipa)}`)}];`)
    }
  }
  const lines = [`digraph ${quote(title)} {`, '  rankdir=LR;', '  node [shape=box, fontname="monospace"];']
  for (const n of nodes.values()) {
    const head = `L${n.level} table ${hex(n.address)}${n.address === root ? ' (root)' : ''}`
    if (n.unreadable !== undefined) {
      lines.push(`  ${labelled(hex(n.address), [head, n.unreadable], ', style=dashed')};`)
      continue
    }
    const ranges = mergeRanges(n.leaves)
    const body = ranges
      .slice(0, 16)
      .map((r) => `${hex(r.start)}-${hex(r.end)} ${formatSize(r.end - r.start)} ${attributeWords(r.decoded.leaf!, r.decoded.kind)}${r.outputStart === r.start ? '' : ` -> ${hex(r.outputStart)}`}`)
    if (ranges.length > 16) body.push(`... ${ranges.length - 16} more range(s)`)
    if (n.reserved > 0) body.push(`${n.reserved} reserved entr${n.reserved === 1 ? 'y' : 'ies'}`)
    lines.push(`  ${labelled(hex(n.address), [head, ...body])};`)
  }
  lines.push(...edges, '}')
  return lines.join('\n')
}

describe('dump tables, written as the walk goes', () => {
  it.each([
    ['tree', []],
    ['ranges', ['--format', 'ranges']],
    ['dot', ['--format', 'dot']],
    ['json', ['--json']],
  ] as const)('%s: the same text as rendering walkTables whole', async (format, flags) => {
    const r = await runInProcess(['dump', 'tables', ...flags, '-s', snap])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(await before(format))
  })

  it('--format dot --json: the document with the dot source, as JSON.stringify writes it', async () => {
    const r = await runInProcess(['dump', 'tables', '--format', 'dot', '--json', '-s', snap])
    const doc = JSON.parse(await before('json')) as Record<string, unknown>
    expect(r.stdout).toBe(`${JSON.stringify({...doc, dot: (await before('dot')).slice(0, -1)}, null, 2)}\n`)
  })
})
