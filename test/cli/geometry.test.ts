/**
 * Every geometry from the command line: map region's --granule, --ipa-bits, --va-bits, --preset and
 * --granularity sizes; regs, snapshot info and snapshot diff naming the geometry; --root with a 16K
 * VTCR_EL2 walking the same tables; and a version-2 snapshot written by the hvmem before geometries
 * (test/fixtures/main-v2.snap) loading unchanged.
 */
import {copyFile, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {expectOkInProcess} from './inprocess.js'
import {hvmem, hvmemJson, scratch} from './run.js'

const FIXTURE = new URL('../fixtures/main-v2.snap', import.meta.url).pathname
let dir = ''
let cleanup: () => Promise<void> = async () => undefined

// every test starts from a copy of one new snapshot (`heap init`, made once, in this process)
let template: {dir: string; cleanup: () => Promise<void>}
beforeAll(async () => {
  template = await scratch()
  await expectOkInProcess(template.dir, 'heap', 'init')
})
afterAll(async () => template.cleanup())
beforeEach(async () => {
  const s = await scratch()
  dir = s.dir
  cleanup = s.cleanup
  await copyFile(join(template.dir, 'hvmem.snap'), join(dir, 'hvmem.snap'))
})
afterEach(() => cleanup())

const ok = async (args: string[]): Promise<string> => {
  const r = await hvmem(dir, args)
  expect(r.code, r.stderr).toBe(0)
  return r.stdout
}

describe('map region creates the mapper in the geometry asked for', () => {
  it.each([
    [['--preset', 'kvm'], '4K granule, 40-bit IPA, 40-bit PA, level-1 root of 2 concatenated tables', '0x80023558'],
    [['--granule', '4K', '--ipa-bits', '48'], '4K granule, 48-bit IPA, 48-bit PA, level-0 root', '0x80053590'],
    [['--granule', '16K', '--ipa-bits', '40'], '16K granule, 40-bit IPA, 40-bit PA, level-2 root of 16 concatenated tables', '0x8002b558'],
    [['--granule', '16K', '--ipa-bits', '47'], '16K granule, 47-bit IPA, 48-bit PA, level-1 root', '0x8005b591'],
    [['--granule', '64K', '--ipa-bits', '42'], '64K granule, 42-bit IPA, 42-bit PA, level-2 root', '0x80037556'],
    [['--granule', '64K', '--ipa-bits', '48'], '64K granule, 48-bit IPA, 48-bit PA, level-1 root', '0x80057590'],
  ])('%j: %s, VTCR_EL2 %s', async (flags, described, vtcr) => {
    const out = await ok(['map', 'region', '0x4000_0000', '1G', ...flags])
    expect(out).toContain(`Created the stage2 mapper (${described}): root at 0x41000000`)
    const regs = await hvmemJson<{registers: Array<{name: string; value: string}>}>(dir, ['regs', '--json'])
    expect(regs.json.registers.find((r) => r.name === 'VTCR_EL2')?.value).toBe(vtcr)
    expect(await ok(['snapshot', 'info'])).toContain(described)
  })

  it('stage 1 takes --va-bits: TCR_EL2 follows', async () => {
    expect(await ok(['map', 'region', '0x4000_0000', '1G', '--regime', 'stage1', '--granule', '64K', '--va-bits', '48'])).toContain(
      'Created the stage1 mapper (64K granule, 48-bit VA, 48-bit PA, level-1 root)',
    )
    const regs = await hvmemJson<{registers: Array<{name: string; value: string}>}>(dir, ['regs', '--json'])
    expect(regs.json.registers.find((r) => r.name === 'TCR_EL2')?.value).toBe('0x80857510')
  })

  it("--granularity takes the geometry's leaf sizes, and counts leaves by size in the JSON", async () => {
    const r = await hvmemJson<{leaves: {written: Record<string, number>}; newTables: {count: number; start: string | null; end: string | null}}>(dir, [
      'map',
      'region',
      '0x4000_0000',
      '64M',
      '--granule',
      '16K',
      '--granularity',
      '16K',
      '--json',
    ])
    expect(r.json.leaves.written).toEqual({'32M': 0, '16K': 4096})
    // the default 39-bit IPA at 16K starts at level 2 with 8 concatenated tables (128 KiB)
    expect(r.json.newTables).toEqual({count: 2, start: '0x41020000', end: '0x41028000'})
    const t = await ok(['translate', '0x4200_3fff'])
    expect(t).toContain('-> 0x42003fff  Normal-WB IS RWX  (16K page at L3)')
  })

  it.each([
    [['--granule', '16K', '--granularity', '2M'], 'hvmem: the 16K granule has no 2M leaf; its leaves are 32M (L2), 16K (L3)'],
    [['--granule', '64K', '--ipa-bits', '42', '--granularity', '1G'], 'hvmem: the 64K granule has no 1G leaf; its leaves are 512M (L2), 64K (L3)'],
    [['--regime', 'stage1', '--ipa-bits', '40'], 'hvmem: --ipa-bits is for stage 2; a --regime stage1 mapper takes --va-bits'],
    [['--va-bits', '40'], 'hvmem: --va-bits is for --regime stage1; a stage-2 mapper takes --ipa-bits'],
    [['--ipa-bits', '31'], 'hvmem: --ipa-bits: "31" is out of range (32..48)'],
    [['--granule', '64K', '--granularity', 'huge'], '--granularity'],
  ])('%j is refused (exit 2) and nothing is written', async (flags, message) => {
    const before = await readFile(join(dir, 'hvmem.snap'))
    const r = await hvmem(dir, ['map', 'region', '0x4000_0000', '1G', ...flags])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(message)
    expect((await readFile(join(dir, 'hvmem.snap'))).equals(before)).toBe(true)
  })

  it('an unaligned range names the granule; an existing mapper keeps its geometry', async () => {
    await ok(['map', 'region', '0x4000_0000', '64K', '--granule', '64K', '--ipa-bits', '42'])
    const unaligned = await hvmem(dir, ['map', 'region', '0x4000_1000', '4K'])
    expect([unaligned.code, unaligned.stderr.trim()]).toEqual([2, 'hvmem: IPA 0x40001000 is not aligned to the 64 KiB granule'])
    const other = await hvmem(dir, ['map', 'region', '0x5000_0000', '64K', '--granule', '4K'])
    expect(other.code).toBe(2)
    expect(other.stderr).toContain('the mapper already exists with --granule 64K; --granule applies only when the mapper is created')
  })
})

describe('walking other geometries with --root', () => {
  it('translate and dump tables with --root and a 16K VTCR_EL2 see what the mapper built', async () => {
    await ok(['map', 'region', '0x4000_0000', '33M', '--granule', '16K', '--ipa-bits', '40'])
    for (const address of ['0x4000_0010', '0x4200_3ff8', '0x4210_0000']) {
      const own = await hvmemJson<{output?: unknown; fault?: unknown; par: string}>(dir, ['translate', address, '--json'])
      const foreign = await hvmemJson<{output?: unknown; fault?: unknown; par: string}>(dir, ['translate', address, '--root', '0x4100_0000', '--vtcr', '0x8002b558', '--json'])
      expect(foreign.json.par).toBe(own.json.par)
    }
    const dump = await ok(['dump', 'tables', '--format', 'ranges', '--root', '0x4100_0000', '--vtcr', '0x8002b558'])
    expect(dump).toContain('VTCR_EL2 0x8002b558 (16K granule, start level 2, 40-bit input, 40-bit PA)')
    expect(dump).toContain('0x0000000040000000-0x0000000042000000  32M  L2  RW X Normal-WB IS AF BLK')
    expect(dump).toContain('0x0000000042000000-0x0000000042100000   1M  L3  RW X Normal-WB IS AF PG')
  })
})

describe('snapshots across geometries and format versions', () => {
  it('snapshot diff of two geometries names the change and still compares the mappings', async () => {
    await copyFile(join(dir, 'hvmem.snap'), join(dir, 'b.snap'))
    await ok(['map', 'region', '0x4000_0000', '1G'])
    await ok(['map', 'region', '0x4000_0000', '1G', '--granule', '64K', '--ipa-bits', '42', '-s', 'b.snap'])
    const r = await hvmem(dir, ['snapshot', 'diff', 'hvmem.snap', 'b.snap'])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('Mapper (geometry, VTCR_EL2):')
    expect(r.stdout).toContain('- geometry 4K granule, 39-bit input, 40-bit PA, level-1 root')
    expect(r.stdout).toContain('+ geometry 64K granule, 42-bit input, 42-bit PA, level-2 root')
    // the same 1 GiB identity map, in 1 GiB and in 512 MiB blocks: no mapping changed
    expect(r.stdout).not.toContain('Mappings:')
  })

  it('a version-2 snapshot written before geometries loads unchanged, and a change rewrites it as version 3', async () => {
    await copyFile(FIXTURE, join(dir, 'v2.snap'))
    const info = await ok(['snapshot', 'info', 'v2.snap'])
    expect(info).toContain('version 2')
    expect(info).toContain('4K granule, 39-bit IPA, 40-bit PA, level-1 root')
    expect(await ok(['dump', 'tables', '--format', 'ranges', '-s', 'v2.snap'])).toBe(
      [
        'Stage 2, root 0x41000000: VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559',
        '0x0000000009000000-0x0000000009200000   2M  L2  RW NX Device-nGnRE IS AF BLK',
        '0x0000000040000000-0x0000000040200000   2M  L2  RW X Normal-WB IS AF BLK',
        '0x0000000040201000-0x0000000040400000 2044K  L3  RW X Normal-WB IS AF PG',
        '0x0000000040400000-0x0000000080000000 1020M  L2  RW X Normal-WB IS AF BLK',
        '1026 valid entries, 1023 leaves, 4 range(s)',
        '',
      ].join('\n'),
    )
    // reading leaves the file as it was
    expect((await readFile(join(dir, 'v2.snap'))).equals(await readFile(FIXTURE))).toBe(true)
    await ok(['mem', 'write', '0x4110_0008', '0x1', '-s', 'v2.snap'])
    expect((await readFile(join(dir, 'v2.snap'))).readUInt32LE(8)).toBe(3)
    const diff = await hvmem(dir, ['snapshot', 'diff', FIXTURE, 'v2.snap'])
    expect(diff.stdout).toContain('1 byte differs')
    expect(diff.stdout).not.toContain('Mapper')
  })
})
