/**
 * `snapshot show` and `snapshot verify` keep nothing per entry (docs/performance.md, "Streaming
 * dumps"): they walk the tables with one cursor (Machine.visitTables) and write as they go. Before,
 * both made every entry of the walk an object (Machine.walkTables) and ran out of memory on a 64 GiB
 * map in pages (16.8 million entries). Two checks that they do not go back to that:
 * - in-process, on a mid-size tree with every kind of entry and damage: neither command calls the
 *   copying walk (Machine.walkTables, WalkCursor.entry), and each prints what it printed from that
 *   walk's entries (the reference below renders them the old way);
 * - through the binary, on 1 GiB mapped as 4 KiB pages (262,657 entries) with V8's heap held to 48 MB:
 *   both end with exit 0 (the copying walk needed more than 96 MB there).
 */
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {PLAIN, pageDump, stateLines} from '../../src/cli/diff-text.js'
import {heapJson, mapperJson, rangeJson} from '../../src/cli/json.js'
import {rangeLine} from '../../src/cli/render.js'
import {storedTableCount} from '../../src/core/diff.js'
import {Machine} from '../../src/core/machine.js'
import {hex} from '../../src/core/u64.js'
import {entryJson} from '../../src/commands/snapshot/verify.js'
import {checkTables} from '../../src/core/verify.js'
import {WalkCursor, mergeRanges} from '../../src/core/walker.js'
import {openSnapshotFile} from '../../src/snapshot/store.js'
import {expectOkInProcess, runInProcess} from './inprocess.js'
import {hvmem, scratch} from './run.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
})
afterAll(async () => cleanup())

/** What show printed (text and --json) when it rendered Machine.walkTables' entries whole. */
async function showBefore(path: string): Promise<{text: string; json: string}> {
  const file = await openSnapshotFile(path)
  const machine = file.machine
  const pages = file.pages!
  const entries = machine.walkTables()
  const ranges = mergeRanges(entries)
  const tables = machine.tablePages(entries)
  const parts = [
    stateLines(machine).join('\n'),
    ['', `mappings (${ranges.length} range${ranges.length === 1 ? '' : 's'}):`, ...ranges.map((r) => rangeLine(r))].join('\n'),
    ['', `pages (${pages.count} stored, ${storedTableCount(pages, tables)} holding tables):`].join('\n'),
  ]
  const stored = []
  for (let i = 0; i < pages.count; i++) {
    const frame = pages.frame(i)
    const address = BigInt(frame) << 12n
    const level = tables.get(frame)
    parts.push([level === undefined ? `page ${hex(address)}` : `page ${hex(address)}  L${level} table`, ...pageDump(address, pages.read(i), PLAIN.dim)].join('\n'))
    stored.push({address: hex(address), table: level ?? null, bytes: Buffer.from(pages.read(i)).toString('hex')})
  }
  const ram = machine.memory
  const m = machine.mapper
  const json = {
    ram: {base: hex(ram.base), size: Number(ram.size), end: hex(ram.end)},
    heap: heapJson(machine.heap.status()),
    mapper: m === undefined ? null : mapperJson(m),
    ranges: ranges.map(rangeJson),
    pages: stored,
  }
  return {text: `${parts.join('\n')}\n`, json: `${JSON.stringify(json, null, 2)}\n`}
}

/** What verify --json said of the tables when it checked Machine.walkTables' entries whole. */
async function verifiedTablesBefore(path: string): Promise<unknown> {
  const machine = (await openSnapshotFile(path)).machine
  const mapper = machine.mapper!
  const check = checkTables(machine.walkTables(), mapper.geometry, {base: machine.memory.base, size: machine.memory.size})
  return {
    checked: check.tables,
    entries: check.entries,
    damaged: check.damage.map(entryJson),
  }
}

describe('snapshot show and snapshot verify keep no entry of the walk', () => {
  it('never make the walk entries as objects, and print what they printed from them (text and --json)', async () => {
    const path = `${dir}/mid.snap`
    for (const args of [
      ['heap', 'init'],
      ['map', 'region', '0x4000_0000', '8M', '--granularity', 'page', '--l2-budget', '8'],
      ['map', 'region', '0x0900_0000', '4K', '--attr', 'device'],
      ['map', 'region', '0x8000_0000', '1G'],
      ['map', 'region', '0xc000_0000', '64M', '--granularity', '2M', '--attr', 'readonly', '--contiguous'],
      ['map', 'region', '0x1_4000_0000', '256K', '--contiguous'],
      ['map', 'protect', '0x4010_0000', '1M', '--perm', 'r'],
      ['mem', 'write', '0x4100_0020', '0x4100_0003'], // a root entry pointing at the root: a loop
      ['mem', 'write', '0x4100_1ff0', '0x99_0000_0003'], // an L2 table outside RAM
      ['mem', 'write', '0x4100_2008', '0x1'], // an L3 "block": reserved
      ['mem', 'write', '0x4200_0000', '0x1122_3344'], // a page of data
    ]) {
      await expectOkInProcess(dir, ...args, '-s', path)
    }
    // a contiguous run broken by hand: one entry of the 64 KiB runs of 0x1_4000_0000 without bit 52
    const machine = (await openSnapshotFile(path)).machine
    const broken = machine.walkTables().find((e) => e.ipa === 0x1_4000_5000n)!
    await expectOkInProcess(dir, 'mem', 'write', hex(broken.table + 8n * BigInt(broken.index)), hex(broken.decoded.raw & ~(1n << 52n)), '-s', path)

    const show = await showBefore(path)
    const tables = await verifiedTablesBefore(path)
    expect(tables).toMatchObject({damaged: expect.arrayContaining([expect.objectContaining({kind: 'contiguous'}), expect.objectContaining({kind: 'aliased'})])})
    const copyingWalk = vi.spyOn(Machine.prototype, 'walkTables')
    const entryCopy = vi.spyOn(WalkCursor.prototype, 'entry')
    try {
      expect(await runInProcess(['snapshot', 'show', '--text', path])).toEqual({code: 0, stdout: show.text, stderr: ''})
      expect(await runInProcess(['snapshot', 'show', '--json', path])).toEqual({code: 0, stdout: show.json, stderr: ''})
      const verify = await runInProcess(['snapshot', 'verify', '--json', path])
      expect(verify.code).toBe(4)
      expect((JSON.parse(verify.stdout) as {tables: unknown}).tables).toEqual(tables)
      expect((await runInProcess(['snapshot', 'verify', path])).code).toBe(4)
      expect(copyingWalk).not.toHaveBeenCalled()
      expect(entryCopy).not.toHaveBeenCalled()
    } finally {
      copyingWalk.mockRestore()
      entryCopy.mockRestore()
    }
  })

  it('run on 262,144 pages in a 48 MB heap, where making every entry an object ran out of memory', async () => {
    await expectOkInProcess(dir, 'heap', 'init', '-s', snap)
    await expectOkInProcess(dir, 'map', 'region', '0', '1G', '--granularity', 'page', '-s', snap)
    const small = {NODE_OPTIONS: '--max-old-space-size=48'}
    const verify = await hvmem(dir, ['snapshot', 'verify', snap], small)
    expect(verify.code, verify.stderr.slice(0, 400)).toBe(0)
    expect(verify.stdout).toContain('514 tables, 262657 valid entries: none damaged')
    const verifyJson = await hvmem(dir, ['snapshot', 'verify', '--json', snap], small)
    expect(verifyJson.code, verifyJson.stderr.slice(0, 400)).toBe(0)
    expect((JSON.parse(verifyJson.stdout) as {tables: unknown}).tables).toEqual({checked: 514, entries: 262657, damaged: []})
    const text = await hvmem(dir, ['snapshot', 'show', '--text', snap], small)
    expect(text.code, text.stderr.slice(0, 400)).toBe(0)
    expect(text.stdout).toContain('\nmappings (1 range):\n0x0000000000000000-0x0000000040000000   1G  L3  ')
    expect(text.stdout).toContain('\npages (514 stored, 514 holding tables):\n')
    const json = await hvmem(dir, ['snapshot', 'show', '--json', snap], small)
    expect(json.code, json.stderr.slice(0, 400)).toBe(0)
    const document = JSON.parse(json.stdout) as {ranges: Array<{entries: number}>; pages: unknown[]}
    expect(document.ranges.map((r) => r.entries)).toEqual([262144])
    expect(document.pages).toHaveLength(514)
  })
})
