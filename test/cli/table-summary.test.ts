/** New tables and folded blocks are counted, with their range; --verbose lists them (text and --json). */
import {writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {runInProcess} from './inprocess.js'
import {hvmem, scratch, withoutTableWarning} from './run.js'

let snap: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  ;({snap, cleanup} = await scratch())
  expect((await runInProcess(['heap', 'init', '-s', snap])).code).toBe(0)
})
afterEach(async () => cleanup())

async function run(...args: string[]): Promise<string> {
  const r = await runInProcess([...args, '-s', snap])
  expect(withoutTableWarning(r.stderr)).toBe('')
  expect(r.code).toBe(0)
  return r.stdout
}

// 16 MiB as pages: one L2 table and 8 L3 tables (the root comes with the mapper)
const MAP = ['map', 'region', '0x4000_0000', '16M', '--granularity', 'page']
const TABLES = Array.from({length: 9}, (_, i) => `0x${(0x4100_1000 + i * 0x1000).toString(16)}`)

describe('new tables', () => {
  it.each([
    [[], 'New table(s): 9 (36K) in 0x41001000-0x4100a000 (--verbose lists them)'],
    [['--verbose'], `New table(s): ${TABLES.join(', ')}`],
  ])('map region %j: %s', async (flags, line) => {
    expect((await run(...MAP, ...flags)).split('\n')[2]).toBe(line)
  })

  it('lists up to 4 tables as they are', async () => {
    expect((await run('map', 'region', '0x4000_0000', '4M', '--granularity', 'page')).split('\n')[2]).toBe('New table(s): 0x41001000, 0x41002000, 0x41003000')
  })

  it.each([
    [[], {count: 9, start: '0x41001000', end: '0x4100a000'}],
    [['--verbose'], {count: 9, start: '0x41001000', end: '0x4100a000', tables: TABLES}],
  ])('map region --json %j: newTables %j', async (flags, newTables) => {
    expect((JSON.parse(await run(...MAP, '--json', ...flags)) as {newTables: unknown}).newTables).toEqual(newTables)
  })

  it.each([
    [['map', 'unmap', '0x4000_1000', '4K'], {count: 2, start: '0x41001000', end: '0x41003000'}],
    [['map', 'protect', '0x4000_1000', '4K', '--perm', 'r'], {count: 2, start: '0x41001000', end: '0x41003000'}],
    [['map', 'unmap', '0x4000_1000', '4K', '--verbose'], {count: 2, start: '0x41001000', end: '0x41003000', tables: ['0x41001000', '0x41002000']}],
  ])('%j splits a 1 GiB block: newTables %j', async (args, newTables) => {
    await run('map', 'region', '0x4000_0000', '1G')
    expect((JSON.parse(await run(...args, '--json')) as {newTables: unknown}).newTables).toEqual(newTables)
  })

  it('map unmap of a whole table says no leaf was cleared and the table page it unlinked', async () => {
    await run(...MAP)
    expect((await run('map', 'unmap', '0x4000_0000', '2M')).split('\n')).toEqual([
      'Unmapped 0x40000000-0x40200000 (2M): 0 leaf descriptor(s) cleared',
      '1 table page(s) (4K) are now unreachable; the bump allocator cannot free them',
      '',
    ])
  })

  it('in a batch, each line gives its own summary', async () => {
    const script = join(dirname(snap), 'script.hvmem')
    await writeFile(script, `${MAP.join(' ')}\n${MAP.join(' ').replace('0x4000_0000', '0x8000_0000')} --verbose\n`)
    // (a batch finds its lines' commands through the built binary's discovery: a process)
    const out = await hvmem(dirname(snap), ['batch', script, '--json', '-s', snap])
    expect(out.code, out.stderr).toBe(0)
    const [first, second] = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as {result: {newTables: unknown}})
    expect(first!.result.newTables).toEqual({count: 9, start: '0x41001000', end: '0x4100a000'})
    expect(second!.result.newTables).toEqual({count: 9, start: '0x4100a000', end: '0x41013000', tables: TABLES.map((t) => `0x${(Number(t) + 0x9000).toString(16)}`)})
  })
})

describe('map coalesce', () => {
  const blocks = Array.from({length: 8}, (_, i) => 0x4000_0000 + i * 0x20_0000)
  it.each([
    [[], ['Folded 8 table(s) into blocks (8x 2M L2) in 0x40000000-0x41000000 (--verbose lists them)']],
    [['--verbose'], blocks.map((b) => `Folded 0x${b.toString(16)}-0x${(b + 0x20_0000).toString(16)} into one 2M L2 block 0x${(b + 0x7fd).toString(16)}`)],
  ])('%j: %j', async (flags, lines) => {
    await run(...MAP)
    expect((await run('map', 'coalesce', ...flags)).split('\n').slice(0, -2)).toEqual(lines)
  })

  it.each([
    [[], undefined],
    [['--verbose'], blocks.map((b) => ({ipa: `0x${b.toString(16)}`, end: `0x${(b + 0x20_0000).toString(16)}`, level: 2, size: 0x20_0000, descriptor: `0x${(b + 0x7fd).toString(16)}`}))],
  ])('--json %j: folded, and blocks only with --verbose', async (flags, list) => {
    await run(...MAP)
    const json = JSON.parse(await run('map', 'coalesce', '--json', ...flags)) as {folded: unknown; blocks?: unknown}
    expect(json.folded).toEqual({count: 8, start: '0x40000000', end: '0x41000000'})
    expect(json.blocks).toEqual(list)
  })
})
