/**
 * --regime el1 from the command line (in-process: no process adds anything here): translate and
 * dump tables over hand-written EL1&0 tables, raw TTBR values (ASID, CnP), --el0/--pan, both ranges
 * labelled, the JSON shapes; raw VTTBR_EL2 values for --root/--vttbr; and the refusals: a TCR_EL1
 * given as TCR_EL2, missing or misplaced flags.
 */
import {dirname, join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {DumpMapJson} from '../../src/commands/dump/map.js'
import type {DumpTablesJson} from '../../src/commands/dump/tables.js'
import type {TranslateJson} from '../../src/commands/translate.js'
import {expectOkInProcess, expectOkJsonInProcess, runInProcess} from './inprocess.js'
import {scratch} from './run.js'

let snap = ''
let cleanup: () => Promise<void> = async () => undefined

const run = (...args: string[]) => runInProcess([...args, '-s', snap])
const ok = (...args: string[]): Promise<string> => expectOkInProcess(dirname(snap), ...args, '-s', snap)
const okJson = <T>(...args: string[]): Promise<T> => expectOkJsonInProcess<T>(dirname(snap), ...args, '-s', snap)

/** T0SZ/T1SZ 25, TG0 4K, TG1 4K, IPS 40-bit */
const TCR = '0x280190019'
const EL1 = ['--ttbr0', '0x2a000042000001', '--ttbr1', '0x42010000', '--tcr', TCR]

beforeAll(async () => {
  const s = await scratch()
  snap = join(s.dir, 'el1.snap')
  cleanup = s.cleanup
  await ok('heap', 'init')
  for (const [address, value] of [
    ['0x42000008', '0x42001003'], // lower L1[1] -> L2
    ['0x42001000', '0x42002003'], // L2[0] -> L3
    ['0x42002000', '0x4800074f'], // L3[0]: AP 01 (EL0 RW), AttrIndx 3 (Normal WB), IS, AF
    ['0x42002008', '0x0040000048001fcf'], // L3[1]: AP 11 (read-only), UXN, nG
    ['0x42010000', '0x1000000042011003'], // upper L1[0] -> L2, UXNTable
    ['0x42011000', '0x4000070d'], // L2[0]: a 2M block, AP 00
  ])
    await ok('mem', 'write', address, value)
})
afterAll(() => cleanup())

describe('translate --regime el1', () => {
  it('a lower-range page: the range, ASID and CnP, the walk, permissions', async () => {
    expect((await ok('translate', '0x4000_0010', '--regime', 'el1', ...EL1)).trimEnd().split('\n')).toEqual([
      'Stage-1 (EL1&0) walk of VA 0x40000010 for EL1 read, TTBR0_EL1 0x2a000042000001 (ASID 42, CnP): 4K granule, start level 1, 39-bit VA from 0x0, 40-bit PA',
      '  L1[1]     in 0x42000000: 0x0000000042001003  table',
      '  L2[0]     in 0x42001000: 0x0000000042002003  table',
      '  L3[0]     in 0x42002000: 0x000000004800074f  page',
      '-> 0x48000010  Normal-WB IS RW-  (4K page at L3)',
      '   AP[2:1] 01 (EL1 RW, EL0 RW), PXN 0, UXN 0; global',
      'PAR_EL1 0xff00000048000b80',
    ])
  })

  it.each([
    // [VA, flags, PAR, detail or fault]
    ['0x40001000', [], '0xff00000048001b80', 'nG: ASID 42'],
    ['0x40001000', ['--write'], '0x81f', 'the page is read-only (AP[2] 1)'],
    ['0x40001000', ['--el0', '--exec'], '0x81f', 'EL0 execution is not allowed (UXN)'],
    ['0x40001000', ['--exec'], '0xff00000048001b80', 'EL1 RO, EL0 RO'],
    ['0x40000000', ['--exec'], '0x81f', 'EL1 execution is not allowed (the page is EL0-writable)'],
    ['0x40000000', ['--pan'], '0x81f', 'PAN is set and EL0 can access the page'],
    ['0x40000000', ['--el0', '--write'], '0xff00000048000b80', 'EL1 RW, EL0 RW'],
    ['0xffffff8000001234', [], '0xff00000040001b80', 'PXN 0, UXN 1, with the table attributes'],
    ['0xffffff8000001234', ['--el0'], '0x81d', 'EL0 has no access (AP[1] 0)'],
    ['0x0000800000000000', [], '0x809', 'outside both 39-bit ranges'],
  ])('%s %j: PAR %s', async (va, flags, par, words) => {
    const out = await ok('translate', va, ...EL1, ...flags)
    expect(out).toContain(`PAR_EL1 ${par}\n`)
    expect(out).toContain(words)
  })

  it("--json: regime el1, the range, ASID, effective permissions, both ranges' registers", async () => {
    const j = await okJson<TranslateJson>('translate', '0x40001000', ...EL1, '--el0')
    expect(j).toMatchObject({
      regime: 'el1',
      input: '0x40001000',
      access: {write: false, exec: false, el0: true, pan: false},
      par: '0xff00000048001b80',
      el1: {range: 'TTBR0_EL1', asid: 42, ap: 3, pxn: false, uxn: true, restrictedByTables: false, ng: true},
      walk: {
        regime: 'el1',
        paBits: 40,
        registers: {TTBR0_EL1: '0x2a000042000001', TTBR1_EL1: '0x42010000', TCR_EL1: '0x280190019', MAIR_EL1: '0xf0ff440400'},
        ranges: [
          {
            ttbr: 'TTBR0_EL1',
            enabled: true,
            start: '0x0',
            granule: 4096,
            startLevel: 1,
            inputBits: 39,
            tbi: false,
            hpd: false,
            register: {register: 'TTBR0_EL1', table: '0x42000000', asid: 42, cnp: true},
          },
          {ttbr: 'TTBR1_EL1', enabled: true, start: '0xffffff8000000000', granule: 4096, startLevel: 1, inputBits: 39, register: {table: '0x42010000', asid: 0, cnp: false}},
        ],
      },
    })
  })

  it.each([
    [['--regime', 'el1', '--ttbr0', '0x42000000'], '--regime el1 needs --tcr'],
    [['--regime', 'el1', '--tcr', TCR], '--regime el1 needs --ttbr0 (TTBR0_EL1), --ttbr1 (TTBR1_EL1) or both'],
    [['--ttbr0', '0x42000000', '--tcr', TCR, '--regime', 'stage1'], '--ttbr0 and --ttbr1 are for --regime el1'],
    [['--ttbr0', '0x42000000', '--tcr', TCR, '--root', '0x42000000'], '--root is not for --regime el1'],
    [['--ttbr0', '0x42000000', '--tcr', '0x280190059'], 'TCR_EL1 0x280190059: bit 6 is RES0 but set'],
    [['--ttbr0', '0x42000000', '--tcr', TCR, '--el0', '--pan'], '--pan is an EL1 state'],
    [['--ttbr0', '0x42000000', '--tcr', '0x200190019'], 'TCR_EL1 0x200190019: TG1 0 is reserved'],
    [['--el0'], '--el0 is for --regime el1'],
    [['--ttbr0', '0x42000000', '--tcr', TCR, '0xffffff8000000000'], 'whose TTBR1_EL1 was not given'],
  ])('%j is refused: %s', async (flags, message) => {
    const args = flags.includes('0xffffff8000000000') ? flags : ['0x4000_0000', ...flags]
    const r = await run('translate', ...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(message)
  })
})

describe('dump tables --regime el1', () => {
  it('both ranges, labelled, with their VAs', async () => {
    const out = await ok('dump', 'tables', ...EL1, '--format', 'ranges')
    expect(out.trimEnd().split('\n')).toEqual([
      'Stage 1 (EL1&0), TTBR0_EL1 0x2a000042000001 (ASID 42, CnP): 4K granule, start level 1, 39-bit VA from 0x0, 40-bit PA',
      '0x0000000040000000-0x0000000040001000   4K  L3  RW/RW Normal-WB IS AF PG  -> 0x0048000000',
      '0x0000000040001000-0x0000000040002000   4K  L3  RO/RO UXN Normal-WB IS AF nG PG  -> 0x0048001000',
      '4 valid entries, 2 leaves, 2 range(s)',
      'Stage 1 (EL1&0), TTBR1_EL1 0x42010000: 4K granule, start level 1, 39-bit VA from 0xffffff8000000000, 40-bit PA',
      '0xffffff8000000000-0xffffff8000200000   2M  L2  RW/-- Normal-WB IS AF BLK  -> 0x0040000000',
      '2 valid entries, 1 leaves, 1 range(s)',
      'TCR_EL1 0x280190019  MAIR_EL1 0xf0ff440400; access EL1/EL0, PXN, UXN, nG as in the descriptors (table attributes: on the table entries)',
    ])
  })

  it('the tree shows table attributes; a disabled range says so', async () => {
    const tree = await ok('dump', 'tables', ...EL1)
    expect(tree).toMatch(/L1\[0\] .* 0xffffff8000000000 .* table .* UXNTable/)
    const epd1 = await ok('dump', 'tables', ...EL1.slice(0, 4), '--tcr', '0x280990019', '--format', 'ranges')
    expect(epd1).toContain('Stage 1 (EL1&0), TTBR1_EL1 0x42010000: walks disabled (EPD1)')
  })

  it('--json: the entries of both ranges, with VAs', async () => {
    const j = await okJson<DumpTablesJson>('dump', 'tables', ...EL1)
    expect(j.entries.map((e) => [e.level, e.ipa, e.kind])).toEqual([
      [1, '0x40000000', 'table'],
      [2, '0x40000000', 'table'],
      [3, '0x40000000', 'page'],
      [3, '0x40001000', 'page'],
      [1, '0xffffff8000000000', 'table'],
      [2, '0xffffff8000000000', 'block'],
    ])
    expect(j.entries[3]!.leaf).toMatchObject({access: 'RO', el0Access: 'RO', pxn: false, uxn: true, ng: true, memType: 'Normal-WB'})
    expect(j.walk).toMatchObject({regime: 'el1'})
  })

  it.each([[['dump', 'tables', ...EL1, '--format', 'dot'], '--format dot draws one table tree']])('%j is refused', async (args, message) => {
    const r = await run(...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(message)
  })
})

describe('dump map --regime el1', () => {
  it('a strip for each VA range, labelled with its TTBR, over what it maps; then the heap', async () => {
    const out = await ok('dump', 'map', ...EL1, '--width', '16')
    expect(out.split('\n')).toEqual([
      'Stage-1 (EL1&0) lower VA range 0x40000000-0x40002000 (TTBR0_EL1 0x2a000042000001: ASID 42, CnP), 2 cells of 4K:',
      // EL1's view: the EL0-writable page is execute-never at EL1; the read-only one
      '▓▒',
      'Stage-1 (EL1&0) upper VA range 0xffffff8000000000-0xffffff8000200000 (TTBR1_EL1 0x42010000), 16 cells of 128K:',
      '████████████████',
      '█ Normal RWX  ▓ Normal RW, execute-never  ▒ Normal read-only  ▚ Device  ▄ mapped, reads fault (no access or AF clear)  ░ unmapped',
      "TCR_EL1 0x280190019  MAIR_EL1 0xf0ff440400; EL1's access and PXN as in the leaf descriptors (table attributes not applied)",
      // the tables were written outside the heap
      'Heap 0x41000000-0x42000000, 16 cells of 1M:',
      '░░░░░░░░░░░░░░░░',
      '█ tables  ▓ allocated  ░ free  (0 table page(s))',
      '',
    ])
  })

  it("--json: both ranges' strips and the ranges behind them, the walk", async () => {
    const j = await okJson<DumpMapJson>('dump', 'map', ...EL1, '--width', '16')
    expect(j.ipa).toBe(null)
    expect(j.el1).toEqual({
      walk: {
        regime: 'el1',
        paBits: 40,
        registers: {TTBR0_EL1: '0x2a000042000001', TTBR1_EL1: '0x42010000', TCR_EL1: '0x280190019', MAIR_EL1: '0xf0ff440400'},
        ranges: [
          {
            ttbr: 'TTBR0_EL1',
            enabled: true,
            start: '0x0',
            granule: 4096,
            startLevel: 1,
            inputBits: 39,
            lpa2: false,
            tbi: false,
            hpd: false,
            register: {register: 'TTBR0_EL1', value: '0x2a000042000001', table: '0x42000000', asid: 42, cnp: true},
          },
          {
            ttbr: 'TTBR1_EL1',
            enabled: true,
            start: '0xffffff8000000000',
            granule: 4096,
            startLevel: 1,
            inputBits: 39,
            lpa2: false,
            tbi: false,
            hpd: false,
            register: {register: 'TTBR1_EL1', value: '0x42010000', table: '0x42010000', asid: 0, cnp: false},
          },
        ],
      },
      halves: [
        {
          ttbr: 'TTBR0_EL1',
          enabled: true,
          root: '0x42000000',
          start: '0x40000000',
          end: '0x40002000',
          cellSize: 4096,
          cells: ['normal-rw', 'normal-ro'],
          ranges: [
            {start: '0x40000000', end: '0x40001000', size: 4096, category: 'normal-rw', level: 3, outputStart: '0x48000000', memType: 'Normal-WB', access: 'RW', executable: false},
            {start: '0x40001000', end: '0x40002000', size: 4096, category: 'normal-ro', level: 3, outputStart: '0x48001000', memType: 'Normal-WB', access: 'RO', executable: true},
          ],
        },
        {
          ttbr: 'TTBR1_EL1',
          enabled: true,
          root: '0x42010000',
          start: '0xffffff8000000000',
          end: '0xffffff8000200000',
          cellSize: 128 * 1024,
          cells: Array<string>(16).fill('normal-rwx'),
          ranges: [
            {start: '0xffffff8000000000', end: '0xffffff8000200000', size: 2 << 20, category: 'normal-rwx', level: 2, outputStart: '0x40000000', memType: 'Normal-WB', access: 'RW', executable: true},
          ],
        },
      ],
    })
    expect(j.heap).toMatchObject({start: '0x41000000', end: '0x42000000', tablePages: []})
  })

  it('a range with walks disabled, one not given, and a filter say so', async () => {
    const epd1 = await ok('dump', 'map', ...EL1.slice(0, 4), '--tcr', '0x280990019', '--width', '16')
    expect(epd1.split('\n').slice(2, 3)).toEqual(['Stage-1 (EL1&0) upper VA range: walks disabled (TCR_EL1.EPD1)'])
    const lower = await ok('dump', 'map', '--ttbr0', '0x42000000', '--tcr', TCR, '--width', '16', '--perm', 'w')
    expect(lower.split('\n').slice(0, 3)).toEqual([
      'Stage-1 (EL1&0) lower VA range 0x40000000-0x40001000 (TTBR0_EL1 0x42000000), 1 cells of 4K, leaves allowing w:',
      '▓',
      'Stage-1 (EL1&0) upper VA range: TTBR1_EL1 not given',
    ])
    const none = await ok('dump', 'map', ...EL1, '--width', '16', '--mem', 'device')
    expect(none.split('\n')[0]).toBe('Stage-1 (EL1&0) lower VA range: nothing mapped (TTBR0_EL1 0x2a000042000001: ASID 42, CnP) (leaves Device)')
  })
})

describe('FEAT_LPA2 from the command line', () => {
  it('a 52-bit upper range (DS, T1SZ 12): level -1, a 512G level-0 block above 2^48', async () => {
    await ok('mem', 'write', '0x42030000', '0x42031003') // L-1[0] -> L0
    await ok('mem', 'write', '0x42031ff8', '0x8000000705') // L0[511]: OA 0xc008000000000 (bits 51:50 in 9:8), AttrIndx 1
    const args = ['--ttbr1', '0x42030000', '--tcr', '0x8000006b00c0019']
    const out = await ok('translate', '0xfff0ff8000001234', ...args)
    expect(out).toContain('TTBR1_EL1 0x42030000: 4K granule, start level -1, 52-bit VA from 0xfff0000000000000, 52-bit PA, FEAT_LPA2 (DS)')
    expect(out).toContain('  L-1[0]    in 0x42030000: 0x0000000042031003  table')
    expect(out).toContain('-> 0xc008000001234  Device-nGnRE OS RWX  (512G block at L0)') // Device: outer shareable, whatever TCR_EL1.SH1 says
    expect(await ok('translate', '0xfff1000000000000', ...args)).toContain('-> translation fault, level -1, stage 1 (FSC 0x2b): L-1[1] is not valid')
    const j = await okJson<DumpTablesJson>('dump', 'tables', ...args)
    expect(j.ranges.map((r) => [r.start, r.end, r.outputStart, r.level])).toEqual([['0xfff0ff8000000000', '0xfff1000000000000', '0xc008000000000', 0]])
    expect(j.walk).toMatchObject({ranges: [{ttbr: 'TTBR0_EL1'}, {ttbr: 'TTBR1_EL1', startLevel: -1, inputBits: 52, lpa2: true}]})
    // dump map: the 512G device block above 2^48, at its 52-bit VA
    expect((await ok('dump', 'map', ...args, '--width', '8')).split('\n').slice(0, 3)).toEqual([
      'Stage-1 (EL1&0) lower VA range: TTBR0_EL1 not given',
      'Stage-1 (EL1&0) upper VA range 0xfff0ff8000000000-0xfff1000000000000 (TTBR1_EL1 0x42030000), 8 cells of 64G:',
      '▚▚▚▚▚▚▚▚',
    ])
  })
})

describe('register values for the EL2 regimes', () => {
  it('--root with a VTTBR_EL2 value: VMID and CnP split off, shown in text and JSON', async () => {
    // the stage-2 view of the same memory: just a readable walk from the table at 0x42000000
    const out = await ok('translate', '0x4000_0000', '--root', '0x1000042000001')
    expect(out).toContain('root 0x42000000 (VTTBR_EL2 0x1000042000001: VMID 1, CnP)')
    const j = await okJson<TranslateJson>('translate', '0x4000_0000', '--vttbr', '0x1000042000001')
    expect(j.walk).toMatchObject({root: '0x42000000', registers: {VTTBR_EL2: '0x1000042000001'}, rootRegister: {register: 'VTTBR_EL2', table: '0x42000000', vmid: 1, cnp: true}})
  })

  it.each([
    [['--root', '0x42000000', '--regime', 'stage1', '--tcr', '0x75b5103510'], "TCR_EL2 0x75b5103510: bit 23 is RES1 but clear (bit 23 is TCR_EL1's EPD1: a TCR_EL1 value?)"],
    [['--root', '0x42000000', '--vtcr', '0x280023559'], 'VTCR_EL2 0x280023559: SL2 (bit 33) is for the 4K granule with DS (bit 32) set, for a level -1 start'],
    [['--vttbr', '0x42000000', '--root', '0x42000000'], '--vttbr and --root both give the stage-2 root'],
    [['--root', '0x1000042000000', '--vmid', '2'], 'holds VMID 1 (bits 63:48), not --vmid 2'],
  ])('%j is refused: %s', async (flags, message) => {
    const r = await run('translate', '0x4000_0000', ...flags)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(message)
  })
})
