/**
 * snapshot import, and walking imported (foreign) tables with dump tables / translate --root, through
 * the real binary: round trips with snapshot export --raw in both regimes, --into, and bad input.
 */
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ErrorJson} from '../../src/cli/base.js'
import type {DumpTablesJson} from '../../src/commands/dump/tables.js'
import type {MemReadJson} from '../../src/commands/mem/read.js'
import type {ImportJson} from '../../src/commands/snapshot/import.js'
import type {TranslateJson} from '../../src/commands/translate.js'
import {expectOkInProcess, expectOkJsonInProcess, runInProcessAt} from './inprocess.js'
import {BIN, expectOk, expectOkJson, hvmem, hvmemEnv, scratch, snapshotBytes} from './run.js'

const ok = expectOk
const okJson = expectOkJson
// set-up steps and the original's readings run in this process; what is checked of the import runs the binary
const okIn = expectOkInProcess
const okJsonIn = expectOkJsonInProcess

/** Runs a command that must fail: exit code, the one-line message, and the snapshot(s) left byte-identical. */
async function fails(dir: string, snaps: string[], code: number, message: string, ...args: string[]): Promise<void> {
  const before = await Promise.all(snaps.map((s) => snapshotBytes(s)))
  const r = await hvmem(dir, args)
  expect(r.code, args.join(' ')).toBe(code)
  expect(r.stdout).toBe('')
  expect(r.stderr).toBe(`hvmem: ${message}\n`)
  // the same under --json, run in this process (the binary's own start and stderr are checked above)
  const json = await runInProcessAt(dir, [...args, '--json'])
  expect(json.code).toBe(code)
  expect((JSON.parse(json.stdout) as ErrorJson).error.message).toBe(message)
  const after = await Promise.all(snaps.map((s) => snapshotBytes(s)))
  for (let i = 0; i < snaps.length; i++) expect(after[i]!.equals(before[i]!), snaps[i]).toBe(true)
}

const PROBES = ['0x0', '0x4000_0000', '0x401f_fff8', '0x4020_0000', '0x4020_1abc', '0x403f_f000', '0x0900_0010', '0xc123_4567', '0xffff_fff0', '0x1_0000_0000', '0x80_0000_0000']

/** Builds tables with 4 KiB pages, 2 MiB blocks and a 1 GiB block in `regime`, exports the heap, imports it. */
async function roundTrip(dir: string, regime: 'stage2' | 'stage1'): Promise<{orig: string; imported: string; image: string}> {
  const orig = join(dir, `${regime}.snap`)
  const imported = join(dir, `${regime}-imported.snap`)
  const image = join(dir, `${regime}.bin`)
  await okIn(dir, 'heap', 'init', '-s', orig)
  await okIn(dir, 'map', 'region', '0x4000_0000', '1G', '--regime', regime, '-s', orig)
  await okIn(dir, 'map', 'region', '0x0900_0000', '2M', '--attr', 'device', '-s', orig)
  await okIn(dir, 'map', 'unmap', '0x4020_0000', '4K', '-s', orig) // the 1 GiB block -> 2 MiB blocks, one of them -> pages
  await okIn(dir, 'map', 'protect', '0x4030_0000', '8K', '--attr', 'readonly', '-s', orig)
  await okIn(dir, 'map', 'region', '0xc000_0000', '1G', '-s', orig) // stays a 1 GiB block
  await okIn(dir, 'mem', 'write', '0x41ff_fff8', '0x1122_3344_5566_7788', '-s', orig) // the heap's last bytes
  await okIn(dir, 'snapshot', 'export', '--raw', image, '-s', orig)
  return {orig, imported, image}
}

describe.each(['stage2', 'stage1'] as const)('an exported image imported back (%s)', (regime) => {
  let dir: string
  let cleanup: () => Promise<void>
  let orig: string
  let imported: string
  let image: string
  let result: ImportJson
  const rootFlags = regime === 'stage2' ? ['--root', '0x4100_0000'] : ['--root', '0x4100_0000', '--regime', 'stage1']
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    ;({orig, imported, image} = await roundTrip(dir, regime))
    // the image's last page holds data, so RAM gets room above it for the heap
    result = await okJson<ImportJson>(dir, 'snapshot', 'import', image, '--base', '0x4100_0000', '--ram-size', '32M', '-s', imported)
  })
  afterAll(async () => cleanup())

  it('reports what it stored', () => {
    // tables: the root, the L2 tables of 0x0 and 0x4000_0000, the L3 table, and the page with the heap's last bytes
    expect(result).toEqual({
      snapshot: imported,
      file: image,
      created: true,
      base: '0x41000000',
      end: '0x42000000',
      bytes: 16 * 1024 * 1024,
      pages: 4096,
      pagesStored: 5,
      zeroPagesSkipped: 4091,
      ram: {base: '0x41000000', size: 32 * 1024 * 1024, end: '0x43000000'},
      heap: {start: '0x42000000', end: '0x43000000', size: 16 * 1024 * 1024, next: '0x42000000', allocated: 0, remaining: 16 * 1024 * 1024, padding: 0},
      heapPlacement: 'tail',
      tablesOverwritten: [],
      mapper: null,
    })
  })

  it('round-trips byte for byte through export', async () => {
    const again = join(dir, `${regime}-again.bin`)
    await ok(dir, 'snapshot', 'export', '--raw', again, '--from', '0x4100_0000', '--to', '0x4200_0000', '-s', imported)
    expect((await readFile(again)).equals(await readFile(image))).toBe(true)
    for (const [address, length] of [
      ['0x4100_0000', '64'],
      ['0x4100_1000', '4K'],
      ['0x41ff_ffc0', '64'],
      ['0x4180_0000', '16'],
    ] as const) {
      const a = await okJsonIn<MemReadJson>(dir, 'mem', 'read', address, length, '-s', orig)
      const b = await okJson<MemReadJson>(dir, 'mem', 'read', address, length, '-s', imported)
      expect(b).toEqual(a)
    }
  })

  it("dumps the imported tables with --root exactly as the original's", async () => {
    const a = await okJsonIn<DumpTablesJson>(dir, 'dump', 'tables', '-s', orig)
    const b = await okJson<DumpTablesJson>(dir, 'dump', 'tables', ...rootFlags, '-s', imported)
    expect(b.entries).toEqual(a.entries)
    expect(b.ranges).toEqual(a.ranges)
    expect(a.entries.map((e) => e.kind)).toEqual(expect.arrayContaining(['table', 'block', 'page']))
    expect(a.ranges.map((r) => [r.size, r.level])).toEqual(
      expect.arrayContaining([
        [1 << 30, 1],
        [2 << 20, 2],
        [8192, 3],
      ]),
    )
    expect(b.mapper).toBeNull()
    expect(b.walk).toEqual(
      regime === 'stage2'
        ? {regime, root: '0x41000000', granule: 4096, startLevel: 1, inputBits: 39, paBits: 40, registers: {VTTBR_EL2: '0x41000000', VTCR_EL2: '0x80023559'}}
        : {regime, root: '0x41000000', granule: 4096, startLevel: 1, inputBits: 39, paBits: 40, registers: {TTBR0_EL2: '0x41000000', TCR_EL2: '0x80823519', MAIR_EL2: '0x4ff00'}},
    )
    // the control register given explicitly is the same walk; human output matches line for line after the header
    const control = regime === 'stage2' ? ['--vtcr', '0x80023559'] : ['--tcr', '0x80823519']
    const c = await okJsonIn<DumpTablesJson>(dir, 'dump', 'tables', ...rootFlags, ...control, '-s', imported)
    expect(c.entries).toEqual(a.entries)
    const humanA = (await okIn(dir, 'dump', 'tables', '--format', 'ranges', '-s', orig)).split('\n')
    const humanB = (await ok(dir, 'dump', 'tables', '--format', 'ranges', ...rootFlags, '-s', imported)).split('\n')
    expect(humanB.slice(1)).toEqual(humanA.slice(1))
    expect(humanB[0]).toBe(`${humanA[0]} (4K granule, start level 1, 39-bit input, 40-bit PA)`)
    if (regime === 'stage1') {
      // another MAIR_EL2 (Attr1 Device-nGnRE): the same descriptors read as Device memory
      const d = await okJsonIn<DumpTablesJson>(dir, 'dump', 'tables', ...rootFlags, '--mair', '0x0404', '-s', imported)
      expect(d.walk?.registers.MAIR_EL2).toBe('0x404')
      expect(d.ranges.find((r) => r.start === '0xc0000000')?.leaf).toMatchObject({memType: 'Device-nGnRE', attrIndx: 1, mairAttr: 4})
    }
  })

  it("adopts the tables as the mapper when asked, so every command sees them as the original's", async () => {
    const adopted = join(dir, `${regime}-adopted.snap`)
    const r = await okJson<ImportJson>(dir, 'snapshot', 'import', image, '--base', '0x4100_0000', '--ram-size', '32M', '--adopt', '0x4100_0000', '--regime', regime, '-s', adopted)
    const a = await okJsonIn<DumpTablesJson>(dir, 'dump', 'tables', '-s', orig)
    const b = await okJson<DumpTablesJson>(dir, 'dump', 'tables', '-s', adopted)
    expect(b).toEqual(a)
    expect(r.mapper).toEqual(a.mapper)
    expect(await okJsonIn<unknown>(dir, 'regs', '-s', adopted)).toEqual(await okJsonIn<unknown>(dir, 'regs', '-s', orig))
    expect(await okJsonIn<TranslateJson>(dir, 'translate', '0x4020_1abc', '-s', adopted)).toEqual(await okJsonIn<TranslateJson>(dir, 'translate', '0x4020_1abc', '-s', orig))
    // and hvmem can go on mapping with them, from the new heap
    const out = await okIn(dir, 'map', 'region', '0x1_0000_0000', '4K', '-s', adopted)
    expect(out).toContain('New table(s): 0x42000000, 0x42001000')
  })

  // One case an address (the original's walk in this process, the import's in the binary), reads, writes and fetches in turn.
  it.each(PROBES.map((address, i) => [address, [[], ['--write'], ['--exec']][i % 3]!] as const))('translates %s %j with --root exactly as the original', async (address, access) => {
    const a = await okJsonIn<TranslateJson>(dir, 'translate', address, ...access, '-s', orig)
    const {walk, ...b} = await okJson<TranslateJson>(dir, 'translate', address, ...access, ...rootFlags, '-s', imported)
    expect(b, `${address} ${access.join(' ')}`).toEqual(a)
    expect(walk !== undefined && 'root' in walk ? walk.root : undefined).toBe('0x41000000')
  })
})

describe('snapshot import', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
  })
  afterAll(async () => cleanup())

  it('stores a short image sparsely, with the heap in the free tail, and says so', async () => {
    // 3 pages and 100 bytes: page 1 non-zero, the short last page non-zero
    const bytes = Buffer.alloc(3 * 4096 + 100)
    bytes.writeUInt32LE(0xdeadbeef, 4096 + 8)
    bytes[3 * 4096 + 99] = 0x5a
    await writeFile(join(dir, 'small.bin'), bytes)
    const out = await ok(dir, 'snapshot', 'import', 'small.bin', '--base', '0x8000_0000', '--ram-size', '1M', '-s', 'small.snap')
    expect(out.split('\n')).toEqual([
      'Imported 12388 bytes at 0x80000000-0x80003064 from small.bin into new snapshot small.snap: 2 page(s) stored, 2 all-zero page(s) skipped',
      'RAM 0x80000000-0x80100000 (1M); heap 0x80004000-0x80100000 (1008K) (the free tail of RAM)',
      'Tables in the image are not adopted as hvmem\'s mapper: walk them with "hvmem dump tables --root ADDR" (and --vtcr or --tcr), or import with --adopt ROOT',
      '',
    ])
    const read = await okJson<MemReadJson>(dir, 'mem', 'read', '0x8000_1008', '4', '-s', 'small.snap')
    expect(read.bytes).toBe('efbeadde')
    expect((await okJson<MemReadJson>(dir, 'mem', 'read', '0x8000_3060', '8', '-s', 'small.snap')).bytes).toBe('0000005a00000000')
    // 128-byte header, 2 pages of 16 + 4096 bytes: only the non-zero pages are stored
    expect((await snapshotBytes(join(dir, 'small.snap'))).length).toBe(128 + 2 * 4112)
    const j = await okJson<ImportJson>(dir, 'snapshot', 'import', 'small.bin', '--base', '0x8000_0000', '--heap-start', '0x8000_0000', '--heap-size', '4K', '-s', 'small2.snap')
    expect(j).toMatchObject({
      pages: 4,
      pagesStored: 2,
      zeroPagesSkipped: 2,
      heapPlacement: 'given',
      ram: {base: '0x80000000', size: 16384, end: '0x80004000'},
      heap: {start: '0x80000000', end: '0x80001000', size: 4096},
    })
  })

  it("draws a progress bar on a terminal's stderr for a large image, never when piped or with --json", async () => {
    const big = Buffer.alloc(16 * 1024 * 1024)
    big[5 * 4096] = 1
    await writeFile(join(dir, 'big.bin'), big)
    const piped = await hvmem(dir, ['snapshot', 'import', 'big.bin', '--base', '0x4000_0000', '-s', 'big-piped.snap'])
    expect(piped.code).toBe(0)
    expect(piped.stderr).toBe('')
    // util-linux script(1) gives the command a terminal; its output is what the terminal showed
    if (!existsSync('/usr/bin/script')) return
    const onTerminal = (args: string): string => {
      const r = spawnSync('/usr/bin/script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} ${args}`, '/dev/null'], {
        cwd: dir,
        encoding: 'utf8',
        env: hvmemEnv({NO_COLOR: '1'}),
      })
      expect(r.status).toBe(0)
      return r.stdout
    }
    const shown = onTerminal('snapshot import big.bin --base 0x40000000 -s big-tty.snap')
    expect(shown).toMatch(/\rImporting big\.bin \[[█░]{30}\] +\d+%/)
    expect(shown).toContain('\r\u001b[2K') // erased when done
    expect(shown).toContain('Imported 16777216 bytes at 0x40000000-0x41000000 from big.bin into new snapshot big-tty.snap: 1 page(s) stored')
    const json = onTerminal('snapshot import big.bin --base 0x40000000 -s big-json.snap --json')
    expect(json).not.toContain('Importing')
    expect(JSON.parse(json.replaceAll('\r\n', '\n')) as ImportJson).toMatchObject({pagesStored: 1, zeroPagesSkipped: 4095})
  })

  it('writes an image --into an existing snapshot, keeping its heap and mapper, and names overwritten tables', async () => {
    await okIn(dir, 'heap', 'init', '-s', 'into.snap')
    await okIn(dir, 'map', 'region', '0x4000_0000', '2M', '-s', 'into.snap')
    await okIn(dir, 'mem', 'write', '0x4800_0ff8', '0xffff', '-s', 'into.snap')
    await okIn(dir, 'mem', 'write', '0x4800_2000', '0x77', '-s', 'into.snap')
    const before = await okJson<{heap: unknown; mapper: unknown}>(dir, 'heap', 'status', '-s', 'into.snap')
    // 2 pages + 8 bytes at 0x4800_0000: page 0 zero (clears the 0xffff), page 1 data, a short page of 8 bytes
    const patch = Buffer.alloc(2 * 4096 + 8)
    patch.writeUInt32LE(0x1234, 4096)
    patch[8192] = 0x01
    await writeFile(join(dir, 'patch.bin'), patch)
    const r = await okJson<ImportJson>(dir, 'snapshot', 'import', 'patch.bin', '--base', '0x4800_0000', '--into', '-s', 'into.snap')
    expect(r).toMatchObject({created: false, base: '0x48000000', end: '0x48002008', bytes: 8200, pages: 3, pagesStored: 2, zeroPagesSkipped: 1, heapPlacement: 'kept', tablesOverwritten: []})
    expect((await okJson<MemReadJson>(dir, 'mem', 'read', '0x4800_0ff8', '8', '-s', 'into.snap')).bytes).toBe('0000000000000000')
    expect((await okJson<MemReadJson>(dir, 'mem', 'read', '0x4800_1000', '4', '-s', 'into.snap')).bytes).toBe('34120000')
    // the short page: its 8 bytes written, the rest of that page kept
    expect((await okJson<MemReadJson>(dir, 'mem', 'read', '0x4800_2000', '9', '-s', 'into.snap')).bytes).toBe('010000000000000000')
    expect(await okJson<{heap: unknown; mapper: unknown}>(dir, 'heap', 'status', '-s', 'into.snap')).toEqual(before)
    // an image over the root table: allowed, as mem write is, and reported
    await writeFile(join(dir, 'zero.bin'), Buffer.alloc(8192))
    const out = await ok(dir, 'snapshot', 'import', 'zero.bin', '--base', '0x4100_0000', '--into', '-s', 'into.snap')
    expect(out.split('\n')).toEqual([
      'Imported 8192 bytes at 0x41000000-0x41002000 from zero.bin into into.snap: 0 page(s) stored, 2 all-zero page(s) cleared',
      'RAM 0x40000000-0x80000000 (1G); heap 0x41000000-0x42000000 (16M) (kept)',
      'The image overwrote 2 of the mapper\'s table page(s): 0x41000000, 0x41001000; check them with "hvmem dump tables"',
      '',
    ])
    expect((await okJson<DumpTablesJson>(dir, 'dump', 'tables', '-s', 'into.snap')).entries).toEqual([])
  })

  it('refuses bad input with one line and its exit code, leaving snapshots byte-identical', async () => {
    await okIn(dir, 'heap', 'init', '-s', 'keep.snap')
    await writeFile(join(dir, 'img.bin'), Buffer.alloc(8192, 1))
    await writeFile(join(dir, 'empty.bin'), Buffer.alloc(0))
    await mkdir(join(dir, 'adir'))
    const keep = [join(dir, 'keep.snap')]
    await fails(
      dir,
      keep,
      2,
      '--base 0x40000800 is not 4 KiB aligned; an image is imported in whole 4 KiB pages, so its first byte must start a page',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0800',
      '--into',
      '-s',
      'keep.snap',
    )
    await fails(dir, keep, 2, 'RAW empty.bin is empty: there is nothing to import', 'snapshot', 'import', 'empty.bin', '--base', '0x4000_0000', '--into', '-s', 'keep.snap')
    await fails(dir, keep, 2, 'RAW: adir is a directory; pass a raw memory image file', 'snapshot', 'import', 'adir', '--base', '0x4000_0000', '--into', '-s', 'keep.snap')
    await fails(
      dir,
      keep,
      2,
      'RAW: /dev/zero is not a regular file (a device, FIFO or socket); pass a raw memory image file',
      'snapshot',
      'import',
      '/dev/zero',
      '--base',
      '0x4000_0000',
      '--into',
      '-s',
      'keep.snap',
    )
    await fails(dir, keep, 2, 'RAW: no file at nosuch.bin; pass the raw memory image to import', 'snapshot', 'import', 'nosuch.bin', '--base', '0x4000_0000', '--into', '-s', 'keep.snap')
    await fails(
      dir,
      keep,
      2,
      "RAW img.bin (8192 bytes at 0x7ffff000-0x80001000) does not lie inside the snapshot's RAM 0x40000000-0x80000000; check --base, or import into a new snapshot (leave out --into)",
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x7fff_f000',
      '--into',
      '-s',
      'keep.snap',
    )
    await fails(dir, keep, 2, 'RAW keep.snap is the snapshot itself; import a raw image from another file', 'snapshot', 'import', 'keep.snap', '--base', '0x4000_0000', '--into', '-s', 'keep.snap')
  })

  it('refuses a layout that does not fit, leaving the snapshot byte-identical', async () => {
    const keep = [join(dir, 'keep.snap')]
    await fails(
      dir,
      keep,
      8,
      'keep.snap already exists; pass --force to replace it, --into to write the image into it, or choose another --snapshot',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      'RAW img.bin (8192 bytes, 0x40000000-0x40002000) goes past RAM 0x40000000-0x40001000; pass a --ram-size of at least 0x2000',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--ram-size',
      '4K',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      // (without --heap-size an image with no free tail makes a snapshot without a heap: test/cli/import-full.test.ts)
      'RAW img.bin leaves no all-zero page at the top of RAM 0x40000000-0x40002000 for a --heap-size heap; pass --ram-size larger than 0x2000 to add RAM above the image, or --heap-start',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--heap-size',
      '4K',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      "the heap 0x40001000-0x40003000 would overlap imported data (page 0x40001000), which hvmem's allocations (tables are zeroed when allocated) would overwrite; place it over all-zero pages, or leave out --heap-start to use the free tail",
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--ram-size',
      '16K',
      '--heap-start',
      '0x4000_1000',
      '--heap-size',
      '8K',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      "--heap-size 16M does not fit in the free tail of RAM (0x40002000-0x40100000, 1016K of all-zero pages above the image's data); pass a larger --ram-size, a smaller --heap-size, or --heap-start",
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--ram-size',
      '1M',
      '--heap-size',
      '16M',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      "RAW img.bin (8192 bytes at --base 0xfffffff000) would end at 0x10000001000, past the 40-bit physical address space (0x10000000000) hvmem's RAM must lie in",
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0xff_ffff_f000',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      '--force applies to a new snapshot; with --into the image goes into the existing one, whose RAM, heap and mapper are kept',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--into',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      '--adopt 0x40003000 must be a 4 KiB-aligned table inside RAM 0x40000000-0x40003000',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--ram-size',
      '12K',
      '--adopt',
      '0x4000_3000',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(
      dir,
      keep,
      2,
      "--vmid describes the mapper --adopt makes of the image's tables; pass --adopt ROOT too",
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--vmid',
      '3',
      '--force',
      '-s',
      'keep.snap',
    )
    await fails(dir, keep, 2, 'the snapshot path is empty; pass --snapshot FILE or set HVMEM_SNAPSHOT to a file name', 'snapshot', 'import', 'img.bin', '--base', '0x4000_0000', '-s', '')
    await fails(
      dir,
      [],
      3,
      'no snapshot at missing.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT',
      'snapshot',
      'import',
      'img.bin',
      '--base',
      '0x4000_0000',
      '--into',
      '-s',
      'missing.snap',
    )
  })
})

describe('--root, --regime, --vtcr and --tcr', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await okIn(dir, 'heap', 'init')
    // a hand-built 48-bit stage-2 tree starting at level 0 (VTCR_EL2 T0SZ 16, SL0 2): IPA 0x100_4000_0000 -> 1 GiB at 0x4000_0000
    await okIn(dir, 'mem', 'write', '0x4200_0010', '0x4200_1003')
    await okIn(dir, 'mem', 'write', '0x4200_1008', '0x4000_07fd')
  })
  afterAll(async () => cleanup())

  it('walks from the start level VTCR_EL2 gives, without a mapper in the snapshot', async () => {
    const out = await ok(dir, 'dump', 'tables', '--root', '0x4200_0000', '--vtcr', '0x80023590', '--format', 'ranges')
    expect(out.split('\n')).toEqual([
      'Stage 2, root 0x42000000: VTTBR_EL2 0x42000000  VTCR_EL2 0x80023590 (4K granule, start level 0, 48-bit input, 40-bit PA)',
      '0x0000010040000000-0x0000010080000000   1G  L1  RW X Normal-WB IS AF BLK  -> 0x0040000000',
      '2 valid entries, 1 leaves, 1 range(s)',
      '',
    ])
    const tree = await ok(dir, 'dump', 'tables', '--root', '0x4200_0000', '--vtcr', '0x80023590', '--vmid', '7')
    expect(tree.split('\n')[0]).toBe('Stage 2, root 0x42000000: VTTBR_EL2 0x7000042000000  VTCR_EL2 0x80023590 (4K granule, start level 0, 48-bit input, 40-bit PA)')
    expect(tree).toContain('│ L0[2]   │ 0x42000000 │')
    expect(tree).toContain('│   L1[1] │ 0x42001000 │')
    const t = await okJson<TranslateJson>(dir, 'translate', '0x100_4000_1234', '--root', '0x4200_0000', '--vtcr', '0x80023590')
    expect(t.steps).toEqual([
      {level: 0, table: '0x42000000', index: 2, descriptor: '0x42001003', kind: 'table'},
      {level: 1, table: '0x42001000', index: 1, descriptor: '0x400007fd', kind: 'block'},
    ])
    expect(t.par).toBe('0xff00000040001b80')
    const human = await ok(dir, 'translate', '0x100_4000_1234', '--root', '0x4200_0000', '--vtcr', '0x80023590')
    expect(human.split('\n')[0]).toBe('Stage-2 walk of IPA 0x10040001234 for read, root 0x42000000 (VTCR_EL2 0x80023590: 4K granule, start level 0, 48-bit input, 40-bit PA)')
  })

  it('walks a level -1 root (FEAT_LPA2, 52-bit IPA) in every format: its entry at index 0 listed, the tree drawn', async () => {
    // L-1[0] -> L0 table 0x4200_9000, whose entry 0 is a 512 GiB block at 0xc_0000_0000_0000 (DS: bits 9:8 are OA[51:50])
    await okIn(dir, 'mem', 'write', '0x4200_8000', '0x4200_9003')
    await okIn(dir, 'mem', 'write', '0x4200_9000', '0x4000_07fd')
    const root = ['--root', '0x4200_8000', '--vtcr', '0x38006350c']
    const tree = await ok(dir, 'dump', 'tables', ...root)
    expect(tree.split('\n').slice(4, 6)).toEqual([
      '│ L-1[0]  │ 0x42008000 │ 0x0000000000 │ 256T │ 0x0000000042009003 │ table │ 0x42009000      │                          │',
      '│   L0[0] │ 0x42009000 │ 0x0000000000 │ 512G │ 0x00000000400007fd │ block │ 0xc000000000000 │ RW X Normal-WB IS AF BLK │',
    ])
    const json = await okJson<DumpTablesJson>(dir, 'dump', 'tables', ...root)
    expect(json.entries.map((e) => [e.level, e.index, e.kind])).toEqual([
      [-1, 0, 'table'],
      [0, 0, 'block'],
    ])
    const dot = await ok(dir, 'dump', 'tables', ...root, '--format', 'dot')
    expect(dot).toContain('"0x42008000" -> "0x42009000" [label="[0] 0x0"];')
    expect(dot).toContain('0x0-0x8000000000 512G RW X Normal-WB IS AF BLK -> 0xc000000000000')
  })

  it('walks a concatenated root (VTCR_EL2 T0SZ 24, SL0 1: two level-1 pages), its first page never written', async () => {
    // L1[513], in the root's second page: IPA 0x80_4000_0000 -> 1 GiB at 0x4000_0000
    await okIn(dir, 'mem', 'write', '0x4200_5008', '0x4000_07fd')
    const out = await ok(dir, 'dump', 'tables', '--root', '0x4200_4000', '--vtcr', '0x80023558', '--format', 'ranges')
    expect(out.split('\n')).toEqual([
      'Stage 2, root 0x42004000: VTTBR_EL2 0x42004000  VTCR_EL2 0x80023558 (4K granule, start level 1, 40-bit input, 40-bit PA)',
      '0x0000008040000000-0x0000008080000000   1G  L1  RW X Normal-WB IS AF BLK  -> 0x0040000000',
      '1 valid entries, 1 leaves, 1 range(s)',
      '',
    ])
    const json = await okJson<DumpTablesJson>(dir, 'dump', 'tables', '--root', '0x4200_4000', '--vtcr', '0x80023558')
    expect(json.entries.map((e) => [e.level, e.index, e.table, e.ipa])).toEqual([[1, 513, '0x42004000', '0x8040000000']])
    const t = await okJson<TranslateJson>(dir, 'translate', '0x80_4000_0010', '--root', '0x4200_4000', '--vtcr', '0x80023558')
    expect(t.output?.address).toBe('0x40000010')
    expect(t.steps[0]).toEqual({level: 1, table: '0x42004000', index: 513, descriptor: '0x400007fd', kind: 'block'})
    const dot = await ok(dir, 'dump', 'tables', '--root', '0x4200_4000', '--vtcr', '0x80023558', '--format', 'dot')
    expect(dot).toContain('  "0x42004000" [label="L1 table 0x42004000 (root, 2 pages)\\l0x8040000000-0x8080000000 1G RW X Normal-WB IS AF BLK -> 0x40000000\\l"];')
  })

  it('refuses bad combinations and registers (exit 2)', async () => {
    const snap = [join(dir, 'hvmem.snap')]
    await fails(
      dir,
      snap,
      2,
      "--vtcr describes the tables at --root; pass --root ADDR too (without --root the snapshot's own tables are walked, with their own settings)",
      'dump',
      'tables',
      '--vtcr',
      '0x80023559',
    )
    await fails(dir, snap, 2, '--tcr is for --regime stage1 (TCR_EL2); a stage-2 walk takes --vtcr (VTCR_EL2)', 'translate', '0x0', '--root', '0x4200_0000', '--tcr', '0x80823519')
    await fails(dir, snap, 2, '--vtcr is for stage 2 (VTCR_EL2); a --regime stage1 walk takes --tcr (TCR_EL2)', 'dump', 'tables', '--root', '0x4200_0000', '--regime', 'stage1', '--vtcr', '0x80023559')
    await fails(
      dir,
      snap,
      2,
      'VTCR_EL2 0x80023599: SL0 2 (start at level 0) is inconsistent with T0SZ 25 (39-bit IPA): a level-0 start with the 4K granule needs a 40- to 48-bit input',
      'translate',
      '0x0',
      '--root',
      '0x4200_0000',
      '--vtcr',
      '0x80023599',
    )
    await fails(dir, snap, 2, 'VTCR_EL2 0x8002f559: TG0 3 is reserved; TG0 must be 0 (4 KiB), 1 (64 KiB) or 2 (16 KiB)', 'dump', 'tables', '--root', '0x4200_0000', '--vtcr', '0x8002f559')
    await fails(dir, snap, 2, '--root 0x42000800 is not a valid root: it must be a 4K-aligned table, below the 40-bit physical address space', 'dump', 'tables', '--root', '0x4200_0800')
    await fails(dir, snap, 2, '--root 0x1000: the root table must lie inside RAM 0x40000000-0x80000000', 'dump', 'tables', '--root', '0x1000')
    await fails(dir, snap, 2, '--mair applies to stage 1 only: stage-2 descriptors carry their memory type in MemAttr', 'translate', '0x0', '--root', '0x4200_0000', '--mair', '0xff')
    await fails(dir, snap, 2, '--vmid applies to stage 2 only: the EL2 stage-1 regime has no VMID', 'dump', 'tables', '--root', '0x4200_0000', '--regime', 'stage1', '--vmid', '1')
    await fails(dir, snap, 2, 'the snapshot has no translation tables yet; create them with "hvmem map region"', 'translate', '0x0')
  })

  it("reports a root outside RAM as an external abort in translate, as for hvmem's own tables", async () => {
    const t = await okJson<TranslateJson>(dir, 'translate', '0x10', '--root', '0x1000')
    expect(t.fault).toEqual({kind: 'external-abort', level: 1, stage: 2, fsc: '0x15', reason: 'the level-1 table at 0x1000 is outside RAM'})
  })
})
