/** dump tables --format dot and dump map, through the real binary (piped, so plain). */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {DumpTablesJson} from '../../src/commands/dump/tables.js'
import type {DumpMapJson} from '../../src/commands/dump/map.js'
import {expectOkInProcess} from './inprocess.js'
import {expectOk, expectOkJson, scratch} from './run.js'

const ok = expectOk
// set-up steps run in this process; what a test checks runs the binary
const okIn = expectOkInProcess
const okJson = expectOkJson

/**
 * A parser-free check of dot syntax as hvmem writes it: braces balanced outside quoted strings, every
 * quoted string closed, one statement a line ending in ";" inside the graph, and every edge's nodes declared.
 */
function checkDot(dot: string): {nodes: Set<string>; edges: Array<[string, string]>} {
  let depth = 0
  let inString = false
  for (let i = 0; i < dot.length; i++) {
    const c = dot[i]!
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
      continue
    }
    if (c === '"') inString = true
    else if (c === '{') depth++
    else if (c === '}') depth--
    expect(depth).toBeGreaterThanOrEqual(0)
  }
  expect(inString).toBe(false)
  expect(depth).toBe(0)
  const lines = dot.trimEnd().split('\n')
  expect(lines[0]).toMatch(/^digraph "([^"\\]|\\.)*" \{$/)
  expect(lines[lines.length - 1]).toBe('}')
  const nodes = new Set<string>()
  const edges: Array<[string, string]> = []
  for (const line of lines.slice(1, -1)) {
    if (line.trimStart().startsWith('//')) continue
    expect(line).toMatch(/;$/)
    const edge = /^ {2}"(0x[0-9a-f]+)" -> "(0x[0-9a-f]+)" \[label="[^"]*"\];$/.exec(line)
    const node = /^ {2}"(0x[0-9a-f]+)" \[label="([^"\\]|\\.)*"(, style=dashed)?\];$/.exec(line)
    if (edge) edges.push([edge[1]!, edge[2]!])
    else if (node) nodes.add(node[1]!)
    else expect(line).toMatch(/^ {2}(rankdir=LR|node \[shape=box, fontname="monospace"\]);$/)
  }
  for (const [from, to] of edges) {
    expect(nodes.has(from), from).toBe(true)
    expect(nodes.has(to), to).toBe(true)
  }
  return {nodes, edges}
}

describe('dump tables --format dot and dump map on a small tree', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await okIn(dir, 'heap', 'init', '--size', '64K')
    await okIn(dir, 'map', 'region', '0x4000_0000', '2M') // L1 0x4100_0000, L2 0x4100_1000
    await okIn(dir, 'map', 'region', '0x4020_0000', '4K', '--attr', 'readonly') // L3 0x4100_2000
    await okIn(dir, 'map', 'region', '0x0900_0000', '4K', '--attr', 'device') // L2 0x4100_3000, L3 0x4100_4000
    await okIn(dir, 'alloc', 'bytes', '100') // 0x4100_5000
  })
  afterAll(async () => cleanup())

  it('writes the table tree as dot: a node per table with its leaves merged, an edge per table descriptor', async () => {
    const out = await ok(dir, 'dump', 'tables', '--format', 'dot')
    expect(out).toBe(
      [
        'digraph "Stage 2, root 0x41000000: VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559" {',
        '  rankdir=LR;',
        '  node [shape=box, fontname="monospace"];',
        '  "0x41000000" [label="L1 table 0x41000000 (root)\\l"];',
        '  "0x41003000" [label="L2 table 0x41003000\\l"];',
        '  "0x41004000" [label="L3 table 0x41004000\\l0x9000000-0x9001000 4K RW NX Device-nGnRE IS AF PG\\l"];',
        '  "0x41001000" [label="L2 table 0x41001000\\l0x40000000-0x40200000 2M RW X Normal-WB IS AF BLK\\l"];',
        '  "0x41002000" [label="L3 table 0x41002000\\l0x40200000-0x40201000 4K RO X Normal-WB IS AF PG\\l"];',
        '  "0x41000000" -> "0x41003000" [label="[0] 0x0"];',
        '  "0x41003000" -> "0x41004000" [label="[72] 0x9000000"];',
        '  "0x41000000" -> "0x41001000" [label="[1] 0x40000000"];',
        '  "0x41001000" -> "0x41002000" [label="[1] 0x40200000"];',
        '}',
        '',
      ].join('\n'),
    )
    const {nodes, edges} = checkDot(out)
    expect(nodes.size).toBe(5)
    expect(edges).toHaveLength(4)
    const json = await okJson<DumpTablesJson>(dir, 'dump', 'tables', '--format', 'dot')
    expect(`${json.dot}\n`).toBe(out)
    expect(json.entries).toHaveLength(7)
  })

  it('draws the IPA space and the heap as plain strips with a legend when piped', async () => {
    const out = await ok(dir, 'dump', 'map', '--width', '16')
    expect(out).toBe(
      [
        'Stage-2 IPA space 0x8000000-0x40201000 (root 0x41000000), 15 cells of 64M:',
        '▚░░░░░░░░░░░░░█',
        '█ Normal RWX  ▓ Normal RW, execute-never  ▒ Normal read-only  ▚ Device  ▄ mapped, reads fault (no access or AF clear)  ░ unmapped',
        'Heap 0x41000000-0x41010000, 16 cells of 4K:',
        '█████▓░░░░░░░░░░',
        '█ tables  ▓ allocated  ░ free  (5 table page(s))',
        '',
      ].join('\n'),
    )
    expect(out).not.toMatch(/\u001b/)
    // the 4 KiB read-only page shows once its cell is small enough
    const wide = await ok(dir, 'dump', 'map', '--width', '1024')
    expect(wide.split('\n')[0]).toBe('Stage-2 IPA space 0x9000000-0x40201000 (root 0x41000000), 883 cells of 1M:')
    expect(wide.split('\n')[1]).toBe(`▚${'░'.repeat(879)}██▒`)
  })

  it('gives the cells, the scale and the ranges behind them in --json', async () => {
    const json = await okJson<DumpMapJson>(dir, 'dump', 'map', '--width', '16')
    expect(json.ipa).toEqual({
      regime: 'stage2',
      root: '0x41000000',
      start: '0x8000000',
      end: '0x40201000',
      cellSize: 64 * 1024 * 1024,
      cells: ['device', ...Array<string>(13).fill('unmapped'), 'normal-rwx'],
      ranges: [
        {start: '0x9000000', end: '0x9001000', size: 4096, category: 'device', level: 3, outputStart: '0x9000000', memType: 'Device-nGnRE', access: 'RW', executable: false},
        {start: '0x40000000', end: '0x40200000', size: 2097152, category: 'normal-rwx', level: 2, outputStart: '0x40000000', memType: 'Normal-WB', access: 'RW', executable: true},
        {start: '0x40200000', end: '0x40201000', size: 4096, category: 'normal-ro', level: 3, outputStart: '0x40200000', memType: 'Normal-WB', access: 'RO', executable: true},
      ],
    })
    expect(json.heap).toEqual({
      start: '0x41000000',
      end: '0x41010000',
      cellSize: 4096,
      cells: ['table', 'table', 'table', 'table', 'table', 'allocated', ...Array<string>(10).fill('free')],
      ranges: [
        {start: '0x41000000', end: '0x41005000', size: 20480, category: 'table'},
        {start: '0x41005000', end: '0x41005064', size: 100, category: 'allocated'},
        {start: '0x41005064', end: '0x41010000', size: 44956, category: 'free'},
      ],
      tablePages: ['0x41000000', '0x41001000', '0x41002000', '0x41003000', '0x41004000'],
      orphanedTables: 0,
    })
    expect(json.legend.ipa.map((l) => l.char).join('')).toBe('█▓▒▚▄░')
    expect(json.legend.heap.map((l) => l.char).join('')).toBe('█▓░')
  })

  it('counts unreachable tables as allocated, and says how many', async () => {
    await ok(dir, 'map', 'unmap', '0x0900_0000', '2M') // drops the L3 table 0x4100_4000 whole
    const json = await okJson<DumpMapJson>(dir, 'dump', 'map', '--width', '16')
    expect(json.heap.orphanedTables).toBe(1)
    expect(json.heap.tablePages).toEqual(['0x41000000', '0x41001000', '0x41002000', '0x41003000'])
    expect(json.heap.cells.slice(0, 6)).toEqual(['table', 'table', 'table', 'table', 'allocated', 'allocated'])
    const out = await ok(dir, 'dump', 'map', '--width', '16')
    expect(out.split('\n')[out.split('\n').length - 2]).toBe(
      `█ tables  ▓ allocated  ░ free  (${json.heap.tablePages.length} table page(s); ${json.heap.orphanedTables} unreachable table page(s) count as allocated)`,
    )
    expect(json.heap.cells.filter((c) => c === 'table')).toHaveLength(json.heap.tablePages.length)
  })
})

describe('dot and map without tables, and on a larger tree', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await okIn(dir, 'heap', 'init')
  })
  afterAll(async () => cleanup())

  it('writes an empty graph and an empty IPA line before any tables', async () => {
    const dot = await ok(dir, 'dump', 'tables', '--format', 'dot')
    expect(dot).toBe('digraph "hvmem" {\n  // no translation tables yet: "hvmem map region" creates them\n}\n')
    checkDot(dot)
    const map = await ok(dir, 'dump', 'map', '--width', '8')
    expect(map).toBe(
      ['IPA space: no translation tables yet ("hvmem map region" creates them)', 'Heap 0x41000000-0x42000000, 8 cells of 2M:', '░░░░░░░░', '█ tables  ▓ allocated  ░ free  (0 table page(s))', ''].join(
        '\n',
      ),
    )
    expect((await okJson<DumpMapJson>(dir, 'dump', 'map')).ipa).toBeNull()
  })

  it('keeps a table of many pages to one node, its 18 ranges capped at 16 lines', async () => {
    await ok(dir, 'map', 'region', '0x4000_0000', '1G')
    await ok(dir, 'map', 'region', '0x0900_0000', '2M', '--attr', 'device', '--granularity', 'page')
    // every other page of the first 17 read-only: 18 ranges in one L3 table, 16 shown
    for (let i = 0; i < 9; i++) await ok(dir, 'map', 'protect', `0x${(0x0900_0000 + 2 * i * 4096).toString(16)}`, '4K', '--perm', 'r')
    await ok(dir, 'map', 'unmap', '0x4000_0000', '4K')
    const dot = await ok(dir, 'dump', 'tables', '--format', 'dot')
    const {nodes, edges} = checkDot(dot)
    expect(nodes.size).toBe(5) // L1, the L2 and L3 of the device range, the L2 and L3 of the split 1 GiB block
    expect(edges).toHaveLength(4)
    expect(dot).toContain('0x9000000-0x9001000 4K RO NX Device-nGnRE IS AF PG\\l0x9001000-0x9002000 4K RW NX Device-nGnRE IS AF PG\\l')
    expect(dot).toContain('0x900f000-0x9010000 4K RW NX Device-nGnRE IS AF PG\\l... 2 more range(s)\\l"];')
    const map = await ok(dir, 'dump', 'map', '--width', '8')
    expect(map.split('\n').slice(0, 2)).toEqual(['Stage-2 IPA space 0x0-0x80000000 (root 0x41000000), 8 cells of 256M:', '▚░░░████'])
  })
})
