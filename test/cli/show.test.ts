/** `snapshot show`, `snapshot info`, and `show --text` as git's textconv driver, through the real binary. */
import {execFile} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {crc32} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {SnapshotInfoJson} from '../../src/commands/snapshot/info.js'
import type {SnapshotShowJson} from '../../src/commands/snapshot/show.js'
import {Machine} from '../../src/core/machine.js'
import {decodeSnapshot} from '../../src/snapshot/format.js'
import {dataStart, encodeV1} from '../snapshot/fixtures.js'
import {expectOkInProcess} from './inprocess.js'
import {BIN, expectOk, hvmem, hvmemJson, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>

const ok = (...args: string[]): Promise<string> => expectOk(dir, ...args)
// set-up in this process; what a test checks runs the binary
const okIn = (...args: string[]): Promise<string> => expectOkInProcess(dir, ...args)

/** hvmem.snap: the default heap, the UART mapped as a 2 MiB device block, a value and a string at 0x4110_0000. */
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
  await okIn('heap', 'init')
  await okIn('map', 'region', '0x0900_0000', '2M', '--attr', 'device')
  await okIn('mem', 'write', '0x4110_0000', '0x1122334455667788')
  await okIn('mem', 'write', '0x4110_0ff8', '0x6f6c6c6568')
})
afterAll(async () => cleanup())

const TEXT = `ram 0x40000000-0x80000000 (1G)
heap 0x41000000-0x42000000 (16M)
heap.next 0x41002000
heap.allocated 8192
heap.padding 0
heap.remaining 16769024
mapper stage2, root 0x41000000, vmid 0, l2Budget 4
mapper.orphanedTables 0
VTTBR_EL2 0x41000000
VTCR_EL2 0x80023559
HCR_EL2 0x80000001

mappings (1 range):
0x0000000009000000-0x0000000009200000   2M  L2  RW NX Device-nGnRE IS AF BLK

pages (3 stored, 2 holding tables):
page 0x41000000  L1 table
0x0041000000  03 10 00 41 00 00 00 00  00 00 00 00 00 00 00 00  |...A............|
*
page 0x41001000  L2 table
*
0x0041001240  c5 07 00 09 00 00 40 00  00 00 00 00 00 00 00 00  |......@.........|
*
page 0x41100000
0x0041100000  88 77 66 55 44 33 22 11  00 00 00 00 00 00 00 00  |.wfUD3".........|
*
0x0041100ff0  00 00 00 00 00 00 00 00  68 65 6c 6c 6f 00 00 00  |........hello...|
`

describe('snapshot show', () => {
  it('--text FILE renders the whole snapshot: state one fact a line, ptdump ranges, pages with zero lines folded', async () => {
    expect(await ok('snapshot', 'show', '--text', 'hvmem.snap')).toBe(TEXT)
  })

  it('takes the file from --snapshot by default, and without --text prints the same when piped (never colour)', async () => {
    expect(await ok('snapshot', 'show')).toBe(TEXT)
    expect(await ok('snapshot', 'show', '--text', '-s', 'hvmem.snap')).toBe(TEXT)
    // FORCE_COLOR does not colour --text (nor anything hvmem prints to a pipe)
    expect((await hvmem(dir, ['snapshot', 'show', '--text'], {FORCE_COLOR: '3'})).stdout).toBe(TEXT)
  })

  it('renders a snapshot without a mapper, and without pages', async () => {
    await ok('heap', 'init', '-s', 'empty.snap')
    expect(await ok('snapshot', 'show', '--text', 'empty.snap')).toBe(
      [
        'ram 0x40000000-0x80000000 (1G)',
        'heap 0x41000000-0x42000000 (16M)',
        'heap.next 0x41000000',
        'heap.allocated 0',
        'heap.padding 0',
        'heap.remaining 16777216',
        'mapper none',
        '',
        'mappings (0 ranges):',
        '',
        'pages (0 stored, 0 holding tables):',
        '',
      ].join('\n'),
    )
  })

  it('--json holds the state, the ranges and every stored page as hex digits', async () => {
    const {code, json} = await hvmemJson<SnapshotShowJson>(dir, ['snapshot', 'show'])
    expect(code).toBe(0)
    expect(json.ram).toEqual({base: '0x40000000', size: 0x4000_0000, end: '0x80000000'})
    expect(json.heap).toEqual({start: '0x41000000', end: '0x42000000', size: 0x100_0000, next: '0x41002000', allocated: 8192, remaining: 16769024, padding: 0})
    expect(json.mapper).toMatchObject({regime: 'stage2', root: '0x41000000', l2Tables: ['0x41001000']})
    expect(json.ranges).toMatchObject([{start: '0x9000000', end: '0x9200000', size: 0x20_0000, level: 2, descriptor: '0x400000090007c5'}])
    expect(json.pages.map((p) => [p.address, p.table, p.bytes.length])).toEqual([
      ['0x41000000', 1, 8192],
      ['0x41001000', 2, 8192],
      ['0x41100000', null, 8192],
    ])
    expect(json.pages[2]!.bytes.slice(0, 16)).toBe('8877665544332211')
    expect(json.pages[2]!.bytes.slice(-16)).toBe('68656c6c6f000000')
  })

  it('fails with the usual exit codes: 3 for a missing file, 4 for a damaged page', async () => {
    expect(await hvmem(dir, ['snapshot', 'show', '--text', 'missing.snap'])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'hvmem: no snapshot at missing.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT\n',
    })
  })
})

describe('snapshot info', () => {
  it('shows version, size, layout, heap, mapper, pages and the stored header+index CRC', async () => {
    const data = await readFile(join(dir, 'hvmem.snap'))
    const crc = data.readUInt32LE(124)
    // the stored CRC is the one over bytes 0-123 and the index
    expect(crc32(data.subarray(128, dataStart(data)), crc32(data.subarray(0, 124)))).toBe(crc)
    const hexCrc = `0x${crc.toString(16).padStart(8, '0')}`
    expect(await ok('snapshot', 'info', 'hvmem.snap')).toBe(
      [
        '┌───────────┬────────────────────────────────────────────────────────────┐',
        '│ snapshot  │ hvmem.snap                                                 │',
        '├───────────┼────────────────────────────────────────────────────────────┤',
        '│ format    │ version 3                                                  │',
        '│ size      │ 12464 bytes                                                │',
        '│ RAM       │ 0x40000000-0x80000000 (1G)                                 │',
        '│ heap      │ 0x41000000-0x42000000 (16M)                                │',
        '│ heap next │ 0x41002000: 8192 allocated, 0 padding, 16769024 remaining  │',
        '│ mapper    │ stage2, root 0x41000000, VMID 0, 1/4 L2 tables, 0 orphaned │',
        '│ geometry  │ 4K granule, 39-bit IPA, 40-bit PA, level-1 root            │',
        '│ registers │ VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559                  │',
        '│ pages     │ 3 stored (2 holding tables)                                │',
        `│ checksum  │ ${hexCrc} (CRC-32 of the header and page index)           │`,
        '└───────────┴────────────────────────────────────────────────────────────┘',
        '',
      ].join('\n'),
    )
    const {code, json} = await hvmemJson<SnapshotInfoJson>(dir, ['snapshot', 'info'])
    expect(code).toBe(0)
    expect(json).toEqual({
      file: './hvmem.snap',
      version: 3,
      size: 12464,
      ram: {base: '0x40000000', size: 0x4000_0000, end: '0x80000000'},
      heap: {start: '0x41000000', end: '0x42000000', size: 0x100_0000, next: '0x41002000', allocated: 8192, remaining: 16769024, padding: 0},
      mapper: {
        regime: 'stage2',
        root: '0x41000000',
        geometry: {granule: 4096, inputBits: 39, paBits: 40, startLevel: 1, rootTables: 1},
        vmid: 0,
        l2Budget: 4,
        l2Tables: ['0x41001000'],
        orphanedTables: 0,
        registers: {VTTBR_EL2: '0x41000000', VTCR_EL2: '0x80023559', HCR_EL2: '0x80000001'},
      },
      pages: {stored: 3, tables: 2},
      checksum: {crc32: hexCrc, covers: 'header+index'},
    })
  })

  it('is lazy: a damaged data page (index intact) does not stop it, while show, which reads every page, refuses it', async () => {
    const data = await readFile(join(dir, 'hvmem.snap'))
    // flip a byte of the third page (0x4110_0000, not a table) and leave its indexed CRC as it was
    const damaged = Buffer.from(data)
    damaged[dataStart(data) + 2 * 4096 + 100] ^= 0x01
    await writeFile(join(dir, 'damaged.snap'), damaged)
    const info = await hvmemJson<SnapshotInfoJson>(dir, ['snapshot', 'info', 'damaged.snap'])
    expect(info.code).toBe(0)
    expect(info.json.pages).toEqual({stored: 3, tables: 2})
    const show = await hvmem(dir, ['snapshot', 'show', '--text', 'damaged.snap'])
    expect(show.code).toBe(4)
    expect(show.stderr).toMatch(/^hvmem: damaged\.snap is not a valid hvmem snapshot: page 0x41100000 checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged\n$/)
    expect(await readFile(join(dir, 'damaged.snap'))).toEqual(damaged)
  })

  it('reads a version-1 file, whose checksum covers the whole file', async () => {
    const machine: Machine = decodeSnapshot(await readFile(join(dir, 'hvmem.snap')), 'hvmem.snap')
    const v1 = encodeV1(machine)
    await writeFile(join(dir, 'old.snap'), v1)
    const {json} = await hvmemJson<SnapshotInfoJson>(dir, ['snapshot', 'info', 'old.snap'])
    expect(json).toMatchObject({
      version: 1,
      size: v1.length,
      pages: {stored: 3, tables: 2},
      checksum: {
        crc32: `0x${v1
          .readUInt32LE(v1.length - 4)
          .toString(16)
          .padStart(8, '0')}`,
        covers: 'file',
      },
    })
    // the same content renders the same text, whatever the format version
    expect(await ok('snapshot', 'show', '--text', 'old.snap')).toBe(TEXT)
  })
})

describe('git textconv', () => {
  const git = promisify(execFile)

  it('makes git diff show what changed in a snapshot, line by line', async () => {
    const repo = join(dir, 'repo')
    // a repository isolated from the user's and the system's git configuration
    const env: NodeJS.ProcessEnv = {...process.env, HOME: dir, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: join(dir, 'no-gitconfig')}
    delete env.HVMEM_SNAPSHOT
    const run = async (...args: string[]): Promise<string> => (await git('git', args, {cwd: repo, env})).stdout
    await git('git', ['init', '-q', repo], {env})
    await run('config', 'user.email', 'test@example.com')
    await run('config', 'user.name', 'hvmem test')
    await writeFile(join(repo, '.gitattributes'), '*.snap diff=hvmem\n')
    await run('config', 'diff.hvmem.textconv', `"${process.execPath}" "${BIN}" snapshot show --text`)
    const inRepo = async (...args: string[]): Promise<void> => {
      const r = await hvmem(repo, [...args, '-s', 'vm.snap'])
      expect(r.code).toBe(0)
    }
    await inRepo('heap', 'init')
    await inRepo('map', 'region', '0x4000_0000', '1G')
    await run('add', '.gitattributes', 'vm.snap')
    await run('commit', '-q', '-m', 'guest RAM mapped')
    await inRepo('map', 'protect', '0x4000_0000', '1G', '--perm', 'r')
    await inRepo('alloc', 'page')
    await inRepo('mem', 'write', '0x4100_1000', '0x6f6c6c6568')
    const changed = (await run('diff')).split('\n').filter((line) => /^[-+][^-+]/.test(line))
    expect(changed).toEqual([
      '-heap.next 0x41001000',
      '-heap.allocated 4096',
      '+heap.next 0x41002000',
      '+heap.allocated 8192',
      '-heap.remaining 16773120',
      '+heap.remaining 16769024',
      '-0x0000000040000000-0x0000000080000000   1G  L1  RW X Normal-WB IS AF BLK',
      '+0x0000000040000000-0x0000000080000000   1G  L1  RO NX Normal-WB IS AF BLK',
      '-pages (1 stored, 1 holding tables):',
      '+pages (2 stored, 1 holding tables):',
      // L1[1], the 1 GiB block: 0x400007fd became 0x004000004000077d (S2AP RO, XN)
      '-0x0041000000  00 00 00 00 00 00 00 00  fd 07 00 40 00 00 00 00  |...........@....|',
      '+0x0041000000  00 00 00 00 00 00 00 00  7d 07 00 40 00 00 40 00  |........}..@..@.|',
      // (git pairs the root page's "*" with the new page's)
      '+*',
      '+page 0x41001000',
      '+0x0041001000  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|',
    ])
    // without the driver, git sees a binary file
    expect(await run('diff', '--no-textconv', '--stat')).toContain('vm.snap | Bin')
  })
})
