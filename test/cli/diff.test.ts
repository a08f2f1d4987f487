/** `snapshot diff` through the real binary: every category, exact text and JSON, exit codes 0/1/2, standard input. */
import {copyFile, readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {SnapshotDiffJson} from '../../src/cli/diff-render.js'
import {decodeSnapshot} from '../../src/snapshot/format.js'
import {encodeV1} from '../snapshot/fixtures.js'
import {expectOkInProcess} from './inprocess.js'
import {expectOk, hvmem, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>

const ok = (...args: string[]): Promise<string> => expectOk(dir, ...args)
// set-up in this process; what a test checks runs the binary
const okIn = (...args: string[]): Promise<string> => expectOkInProcess(dir, ...args)

/** Runs `snapshot diff`, checking the exit code and that neither file changed nor a lock or temp file appeared. */
async function diff(a: string, b: string, extra: string[], code: number, input?: Uint8Array): Promise<{stdout: string; stderr: string}> {
  const files = [a, b].filter((f) => f !== '-')
  const before = await Promise.all(files.map(async (f) => readFile(join(dir, f)).catch(() => undefined)))
  const names = (await readdir(dir)).sort()
  const r = await hvmem(dir, ['snapshot', 'diff', a, b, ...extra], {}, input)
  expect(r.code).toBe(code)
  expect(await Promise.all(files.map(async (f) => readFile(join(dir, f)).catch(() => undefined)))).toEqual(before)
  expect((await readdir(dir)).sort()).toEqual(names)
  return {stdout: r.stdout, stderr: r.stderr}
}

async function diffJson(a: string, b: string, code: number, extra: string[] = []): Promise<SnapshotDiffJson> {
  const r = await diff(a, b, ['--json', ...extra], code)
  expect(r.stderr).toBe('')
  return JSON.parse(r.stdout) as SnapshotDiffJson
}

/** a.snap: the default heap, RAM mapped as one 1 GiB block, the UART as a 2 MiB device block, a value at 0x4110_0000. */
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
  await okIn('heap', 'init', '-s', 'a.snap')
  await okIn('map', 'region', '0x4000_0000', '1G', '-s', 'a.snap')
  await okIn('map', 'region', '0x0900_0000', '2M', '--attr', 'device', '-s', 'a.snap')
  await okIn('mem', 'write', '0x4110_0000', '0x1122334455667788', '-s', 'a.snap')
  // b.snap: a block split by an unmap, 2 MiB made read-only, one byte written, one page allocated
  await copyFile(join(dir, 'a.snap'), join(dir, 'b.snap'))
  await okIn('map', 'unmap', '0x4020_0000', '4K', '-s', 'b.snap')
  await okIn('map', 'protect', '0x4000_0000', '2M', '--perm', 'r', '-s', 'b.snap')
  await okIn('mem', 'write', '0x4110_0004', '0xff', '--width', '1', '-s', 'b.snap')
  await okIn('alloc', 'page', '-s', 'b.snap')
  await copyFile(join(dir, 'a.snap'), join(dir, 'same.snap'))
})
afterAll(async () => cleanup())

const B_TEXT = [
  '--- a.snap',
  '+++ b.snap',
  'Heap:',
  '~ next       0x41002000 -> 0x41005000 (+12288)',
  '~ allocated  8192 -> 20480 (+12288)',
  '~ remaining  16769024 -> 16756736 (-12288)',
  'Mappings: 0 added, 1 removed, 1 changed',
  '- 0x0000000040000000-0x0000000040200000   2M  L1  RW X Normal-WB IS AF BLK',
  '+ 0x0000000040000000-0x0000000040200000   2M  L2  RO NX Normal-WB IS AF BLK',
  '- 0x0000000040200000-0x0000000040201000   4K  L1  RW X Normal-WB IS AF BLK',
  'Page tables: 2 appeared, 0 disappeared, 1 changed',
  '~ 0x41000000  L1 table changed, 1 entry changed',
  '+ 0x41002000  L2 table appeared, 512 entries changed',
  '+ 0x41003000  L3 table appeared, 511 entries changed',
  'Memory outside the tables: 1 range, 1 byte differs',
  '~ 0x41100004-0x41100005  1 byte, 1 differs',
]

describe('snapshot diff', () => {
  it('exits 0 for the same content, saying so', async () => {
    const r = await diff('a.snap', 'same.snap', [], 0)
    expect(r).toEqual({stdout: 'a.snap and same.snap are the same\n', stderr: ''})
    const json = await diffJson('a.snap', 'same.snap', 0)
    expect(json).toEqual({
      same: true,
      a: 'a.snap',
      b: 'same.snap',
      layout: null,
      heap: {
        next: {old: '0x41002000', new: '0x41002000', delta: 0},
        allocated: {old: 8192, new: 8192, delta: 0},
        remaining: {old: 16769024, new: 16769024, delta: 0},
        changed: false,
      },
      mapper: null,
      mappings: [],
      tables: [],
      memory: [],
    })
  })

  it('exits 1 and shows heap, mappings (per IPA), page tables and memory, exactly', async () => {
    const r = await diff('a.snap', 'b.snap', [], 1)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(B_TEXT.join('\n') + '\n')
  })

  it('gives the same under --json, with both sides of each mapping decoded', async () => {
    const json = await diffJson('a.snap', 'b.snap', 1)
    expect(json.same).toBe(false)
    expect(json.layout).toBeNull()
    expect(json.mapper).toBeNull()
    expect(json.heap).toEqual({
      next: {old: '0x41002000', new: '0x41005000', delta: 12288},
      allocated: {old: 8192, new: 20480, delta: 12288},
      remaining: {old: 16769024, new: 16756736, delta: -12288},
      changed: true,
    })
    const leaf = {memType: 'Normal-WB', sh: 3, shareability: 'IS', af: true, contiguous: false, software: 0, memAttr: 15}
    expect(json.mappings).toEqual([
      {
        change: 'changed',
        start: '0x40000000',
        end: '0x40200000',
        size: 0x20_0000,
        old: {
          outputStart: '0x40000000',
          level: 1,
          attributes: 'RW X Normal-WB IS AF BLK',
          descriptor: '0x400007fd',
          kind: 'block',
          leaf: {...leaf, outputAddress: '0x40000000', access: 'RW', s2ap: 3, xn: 0, executable: true},
        },
        new: {
          outputStart: '0x40000000',
          level: 2,
          attributes: 'RO NX Normal-WB IS AF BLK',
          descriptor: '0x4000004000077d',
          kind: 'block',
          leaf: {...leaf, outputAddress: '0x40000000', access: 'RO', s2ap: 1, xn: 2, executable: false},
        },
      },
      {
        change: 'removed',
        start: '0x40200000',
        end: '0x40201000',
        size: 0x1000,
        old: {
          outputStart: '0x40200000',
          level: 1,
          attributes: 'RW X Normal-WB IS AF BLK',
          descriptor: '0x400007fd',
          kind: 'block',
          leaf: {...leaf, outputAddress: '0x40000000', access: 'RW', s2ap: 3, xn: 0, executable: true},
        },
        new: null,
      },
    ])
    expect(json.tables).toEqual([
      {change: 'changed', address: '0x41000000', level: 1, entriesChanged: 1},
      {change: 'appeared', address: '0x41002000', level: 2, entriesChanged: 512},
      {change: 'appeared', address: '0x41003000', level: 3, entriesChanged: 511},
    ])
    expect(json.memory).toEqual([{address: '0x41100004', end: '0x41100005', length: 1, differing: 1}])
  })

  it('--bytes adds a hexdump of the old and new bytes of each memory range (hex digits under --json)', async () => {
    const r = await diff('a.snap', 'b.snap', ['--bytes'], 1)
    expect(r.stdout).toBe(
      [...B_TEXT, '- 0x0041100004  44                                                |D|', '+ 0x0041100004  ff                                                |.|'].join('\n') + '\n',
    )
    const json = await diffJson('a.snap', 'b.snap', 1, ['--bytes'])
    expect(json.memory).toEqual([{address: '0x41100004', end: '0x41100005', length: 1, differing: 1, old: '44', new: 'ff'}])
  })

  it('merges bytes fewer than 8 apart into one range, and dumps it whole', async () => {
    await copyFile(join(dir, 'a.snap'), join(dir, 'w.snap'))
    await ok('mem', 'write', '0x4110_0000', '0x1122334400667700', '-s', 'w.snap')
    await ok('mem', 'write', '0x4180_0ffe', '0xabcd', '--width', '4', '-s', 'w.snap')
    const r = await diff('a.snap', 'w.snap', ['--bytes'], 1)
    expect(r.stdout).toBe(
      [
        '--- a.snap',
        '+++ w.snap',
        'Memory outside the tables: 2 ranges, 4 bytes differ',
        '~ 0x41100000-0x41100004  4 bytes, 2 differ',
        '- 0x0041100000  88 77 66 55                                       |.wfU|',
        '+ 0x0041100000  00 77 66 00                                       |.wf.|',
        '~ 0x41800ffe-0x41801000  2 bytes, 2 differ',
        '- 0x0041800ffe  00 00                                             |..|',
        '+ 0x0041800ffe  cd ab                                             |..|',
      ].join('\n') + '\n',
    )
  })

  it('reports a layout change and a mapper added, with its root table', async () => {
    await ok('heap', 'init', '-s', 'empty.snap')
    await ok('heap', 'init', '-s', 'big.snap', '--ram-size', '2G', '--size', '32M')
    await ok('map', 'region', '0x0900_0000', '4K', '--attr', 'device', '--vmid', '7', '-s', 'big.snap')
    const r = await diff('empty.snap', 'big.snap', [], 1)
    expect(r.stdout).toBe(
      [
        '--- empty.snap',
        '+++ big.snap',
        'Layout (ramSize, heapSize):',
        '- RAM 0x40000000-0x80000000 (1G), heap 0x41000000-0x42000000 (16M)',
        '+ RAM 0x40000000-0xc0000000 (2G), heap 0x41000000-0x43000000 (32M)',
        'Heap:',
        '~ next       0x41000000 -> 0x41003000 (+12288)',
        '~ allocated  0 -> 12288 (+12288)',
        '~ remaining  16777216 -> 33542144 (+16764928)',
        'Mapper (added):',
        '+ stage2 (4K granule, 39-bit input, 40-bit PA, level-1 root), root 0x41000000, vmid 7, l2Budget 4, orphanedTables 0; VTTBR_EL2 0x7000041000000  VTCR_EL2 0x80023559  HCR_EL2 0x80000001',
        'Mappings: 1 added, 0 removed, 0 changed',
        '+ 0x0000000009000000-0x0000000009001000   4K  L3  RW NX Device-nGnRE IS AF PG',
        'Page tables: 3 appeared, 0 disappeared, 0 changed',
        '+ 0x41000000  L1 table appeared, 1 entry changed',
        '+ 0x41001000  L2 table appeared, 1 entry changed',
        '+ 0x41002000  L3 table appeared, 1 entry changed',
      ].join('\n') + '\n',
    )
    const json = await diffJson('big.snap', 'empty.snap', 1)
    expect(json.layout).toEqual({
      old: {ramBase: '0x40000000', ramSize: 0x8000_0000, heapStart: '0x41000000', heapSize: 0x200_0000},
      new: {ramBase: '0x40000000', ramSize: 0x4000_0000, heapStart: '0x41000000', heapSize: 0x100_0000},
      fields: ['ramSize', 'heapSize'],
    })
    expect(json.mapper).toEqual({
      change: 'removed',
      old: {
        regime: 'stage2',
        root: '0x41000000',
        geometry: {granule: 4096, inputBits: 39, paBits: 40, startLevel: 1, rootTables: 1},
        vmid: 7,
        l2Budget: 4,
        l2Tables: ['0x41001000'],
        orphanedTables: 0,
        registers: {VTTBR_EL2: '0x7000041000000', VTCR_EL2: '0x80023559', HCR_EL2: '0x80000001'},
      },
      new: null,
      fields: [],
    })
    expect(json.mappings).toEqual([
      {
        change: 'removed',
        start: '0x9000000',
        end: '0x9001000',
        size: 4096,
        old: {
          outputStart: '0x9000000',
          level: 3,
          attributes: 'RW NX Device-nGnRE IS AF PG',
          descriptor: '0x400000090007c7',
          kind: 'page',
          leaf: {outputAddress: '0x9000000', memType: 'Device-nGnRE', access: 'RW', sh: 3, shareability: 'IS', af: true, executable: false, contiguous: false, software: 0, memAttr: 1, s2ap: 3, xn: 2},
        },
        new: null,
      },
    ])
  })

  it('shows mapper fields that changed, and a table that disappeared: coalesce is no mapping change', async () => {
    await ok('heap', 'init', '-s', 'pages.snap')
    await ok('map', 'region', '0x4000_0000', '2M', '--granularity', 'page', '-s', 'pages.snap')
    await copyFile(join(dir, 'pages.snap'), join(dir, 'folded.snap'))
    await ok('map', 'coalesce', '-s', 'folded.snap')
    const r = await diff('pages.snap', 'folded.snap', [], 1)
    expect(r.stdout).toBe(
      [
        '--- pages.snap',
        '+++ folded.snap',
        'Mapper (orphanedTables):',
        '- orphanedTables 0',
        '+ orphanedTables 1',
        'Page tables: 0 appeared, 1 disappeared, 1 changed',
        '~ 0x41001000  L2 table changed, 1 entry changed',
        '- 0x41002000  L3 table disappeared, 0 entries changed',
      ].join('\n') + '\n',
    )
  })

  it('compares content, not format versions: a version-1 file and its version-2 rewrite are the same', async () => {
    const v1 = encodeV1(decodeSnapshot(await readFile(join(dir, 'a.snap')), 'a.snap'))
    await writeFile(join(dir, 'old.snap'), v1)
    expect((await diff('old.snap', 'a.snap', [], 0)).stdout).toBe('old.snap and a.snap are the same\n')
    expect((await diff('old.snap', 'b.snap', [], 1)).stdout).toBe(['--- old.snap', '+++ b.snap', ...B_TEXT.slice(2)].join('\n') + '\n')
  })

  it('reads - from standard input, for either side, and never both', async () => {
    const a = await readFile(join(dir, 'a.snap'))
    const b = await readFile(join(dir, 'b.snap'))
    expect((await diff('-', 'b.snap', [], 1, a)).stdout).toBe(['--- -', '+++ b.snap', ...B_TEXT.slice(2)].join('\n') + '\n')
    expect((await diff('a.snap', '-', [], 1, b)).stdout).toBe(['--- a.snap', '+++ -', ...B_TEXT.slice(2)].join('\n') + '\n')
    expect((await diff('-', 'a.snap', [], 0, a)).stdout).toBe('- and a.snap are the same\n')
    const both = await diff('-', '-', [], 2, a)
    expect(both).toEqual({stdout: '', stderr: 'hvmem: A and B cannot both be "-": standard input holds one snapshot; name the other file\n'})
    const junk = await diff('-', 'a.snap', [], 2, Buffer.from('not a snapshot'))
    expect(junk).toEqual({stdout: '', stderr: 'hvmem: standard input is not a valid hvmem snapshot: wrong magic (not a snapshot, or damaged)\n'})
  })

  it('exits 2 on any trouble: a missing file, a damaged one, a bad flag or argument (one line, files unchanged)', async () => {
    expect(await diff('a.snap', 'missing.snap', [], 2)).toEqual({
      stdout: '',
      stderr: 'hvmem: no snapshot at missing.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT\n',
    })
    const data = await readFile(join(dir, 'a.snap'))
    const damaged = Buffer.from(data)
    damaged[damaged.length - 1] ^= 0xff // the last page's last byte: its CRC no longer matches
    await writeFile(join(dir, 'damaged.snap'), damaged)
    expect(await diff('damaged.snap', 'a.snap', [], 2)).toEqual({
      stdout: '',
      stderr: 'hvmem: damaged.snap is not a valid hvmem snapshot: page 0x41100000 checksum mismatch (stored 0xe5cd9e35, computed 0xc8cf71b8): the file is damaged\n',
    })
    // as B too (its page then differs from A's, whose check does not vouch for it)
    expect(await diff('a.snap', 'damaged.snap', [], 2)).toEqual({
      stdout: '',
      stderr: 'hvmem: damaged.snap is not a valid hvmem snapshot: page 0x41100000 checksum mismatch (stored 0xe5cd9e35, computed 0xc8cf71b8): the file is damaged\n',
    })
    expect((await diff('a.snap', '.', [], 2)).stderr).toBe('hvmem: . is not a regular file; name a snapshot file\n')
    expect((await diff('a.snap', 'b.snap', ['--bogus'], 2)).stderr).toBe('hvmem: Nonexistent flag: --bogus (see --help)\n')
    expect((await diff('', 'b.snap', [], 2)).stderr).toBe('hvmem: a snapshot file name is empty; name two snapshot files (or - for standard input)\n')
    const missingArg = await hvmem(dir, ['snapshot', 'diff', 'a.snap'])
    expect(missingArg).toEqual({code: 2, stdout: '', stderr: 'hvmem: Missing 1 required arg: B (see --help)\n'})
    // under --json the error is the document, with exit code 2
    const json = await diff('a.snap', 'missing.snap', ['--json'], 2)
    expect(JSON.parse(json.stdout)).toEqual({
      error: {kind: 'snapshot-missing', message: 'no snapshot at missing.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT', exitCode: 2},
    })
  })
})
