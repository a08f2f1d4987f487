/** translate, regs, snapshot export and map region --regime stage1, through the real binary. */
import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ErrorJson} from '../../src/cli/base.js'
import type {DumpTablesJson} from '../../src/commands/dump/tables.js'
import type {MapRegionJson} from '../../src/commands/map/region.js'
import type {MemReadJson} from '../../src/commands/mem/read.js'
import type {RegsJson} from '../../src/commands/regs.js'
import type {ExportJson} from '../../src/commands/snapshot/export.js'
import type {TranslateJson} from '../../src/commands/translate.js'
import {expectOkInProcess} from './inprocess.js'
import {expectOk, expectOkJson, hvmem, hvmemJson, scratch, snapshotBytes} from './run.js'

const ok = expectOk
// set-up steps run in this process; what a test checks runs the binary
const okIn = expectOkInProcess
const okJson = expectOkJson

const lines = (out: string): string[] => out.trimEnd().split('\n')

describe('translate and regs, stage 2', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await okIn(dir, 'heap', 'init')
    await okIn(dir, 'map', 'region', '0x4800_0000', '2M')
    await okIn(dir, 'map', 'region', '0x4860_0000', '2M', '--attr', 'readonly')
    await okIn(dir, 'map', 'region', '0x0900_0000', '2M', '--attr', 'device')
    // L2[80] of the table at 0x4100_1000 (IPA 0x4a00_0000): a normal block with AF clear, by hand
    await okIn(dir, 'mem', 'write', '0x41001280', '0x4a0003fd')
  })
  afterAll(async () => cleanup())

  it('prints each level, the output and PAR_EL1 for a normal block read', async () => {
    expect(lines(await ok(dir, 'translate', '0x4800_1234'))).toEqual([
      'Stage-2 walk of IPA 0x48001234 for read, root 0x41000000',
      '  L1[1]     in 0x41000000: 0x0000000041001003  table',
      '  L2[64]    in 0x41001000: 0x00000000480007fd  block',
      '-> 0x48001234  Normal-WB IS RWX  (2M block at L2)',
      'PAR_EL1 0xff00000048001b80',
    ])
  })

  it('prints the device block as outer shareable, execute-never', async () => {
    expect(lines(await ok(dir, 'translate', '0x0900_0018', '--write'))).toEqual([
      'Stage-2 walk of IPA 0x9000018 for write, root 0x41000000',
      '  L1[0]     in 0x41000000: 0x0000000041002003  table',
      '  L2[72]    in 0x41002000: 0x00400000090007c5  block',
      '-> 0x9000018  Device-nGnRE OS RW-  (2M block at L2)',
      'PAR_EL1 0x400000009000b00',
    ])
  })

  it('reports a fault as a result: exit 0, kind, level, stage, FSC and PAR_EL1', async () => {
    expect(lines(await ok(dir, 'translate', '0x4860_0abc', '--write'))).toEqual([
      'Stage-2 walk of IPA 0x48600abc for write, root 0x41000000',
      '  L1[1]     in 0x41000000: 0x0000000041001003  table',
      '  L2[67]    in 0x41001000: 0x000000004860077d  block',
      '-> permission fault, level 2, stage 2 (FSC 0x0e): write is not allowed (RO)',
      'PAR_EL1 0xa1d',
    ])
    expect(lines(await ok(dir, 'translate', '0x80_0000_0000'))).toEqual([
      'Stage-2 walk of IPA 0x8000000000 for read, root 0x41000000',
      '-> translation fault, level 0, stage 2 (FSC 0x04): the address is outside the 39-bit input address space (T0SZ 25)',
      'PAR_EL1 0xa09',
    ])
    expect(lines(await ok(dir, 'translate', '0x1_0000_0000'))).toEqual([
      'Stage-2 walk of IPA 0x100000000 for read, root 0x41000000',
      '  L1[4]     in 0x41000000: 0x0000000000000000  invalid',
      '-> translation fault, level 1, stage 2 (FSC 0x05): L1[4] is not valid',
      'PAR_EL1 0xa0b',
    ])
  })

  it('--json: a successful read', async () => {
    expect(await okJson<TranslateJson>(dir, 'translate', '0x4800_1234')).toEqual({
      regime: 'stage2',
      input: '0x48001234',
      access: {write: false, exec: false},
      steps: [
        {level: 1, table: '0x41000000', index: 1, descriptor: '0x41001003', kind: 'table'},
        {level: 2, table: '0x41001000', index: 64, descriptor: '0x480007fd', kind: 'block'},
      ],
      output: {address: '0x48001234', level: 2, size: 0x20_0000, memType: 'Normal-WB', attr: '0xff', sh: 3, shareability: 'IS', read: true, write: true, execute: true, contiguous: false},
      fault: null,
      par: '0xff00000048001b80',
    })
    const ro = await okJson<TranslateJson>(dir, 'translate', '0x4860_0abc')
    expect(ro.par).toBe('0xff00000048600b80')
    expect(ro.output).toMatchObject({read: true, write: false, execute: true})
    const device = await okJson<TranslateJson>(dir, 'translate', '0x0900_0018')
    expect(device.par).toBe('0x400000009000b00')
    expect(device.output).toMatchObject({attr: '0x04', sh: 2, shareability: 'OS', execute: false})
  })

  it('--json: faults, with the FSC as two hex digits', async () => {
    expect(await okJson<TranslateJson>(dir, 'translate', '0x4860_0abc', '--write')).toEqual({
      regime: 'stage2',
      input: '0x48600abc',
      access: {write: true, exec: false},
      steps: [
        {level: 1, table: '0x41000000', index: 1, descriptor: '0x41001003', kind: 'table'},
        {level: 2, table: '0x41001000', index: 67, descriptor: '0x4860077d', kind: 'block'},
      ],
      output: null,
      fault: {kind: 'permission', level: 2, stage: 2, fsc: '0x0e', reason: 'write is not allowed (RO)'},
      par: '0xa1d',
    })
    const exec = await okJson<TranslateJson>(dir, 'translate', '0x0900_0018', '--exec')
    expect(exec.access).toEqual({write: false, exec: true})
    expect(exec.fault).toEqual({kind: 'permission', level: 2, stage: 2, fsc: '0x0e', reason: 'execution is not allowed (XN)'})
    expect(exec.par).toBe('0xa1d')
    const af = await okJson<TranslateJson>(dir, 'translate', '0x4a00_0000', '--write')
    expect(af.fault).toMatchObject({kind: 'access-flag', level: 2, stage: 2, fsc: '0x0a'})
    expect(af.par).toBe('0xa15')
    expect((await okJson<TranslateJson>(dir, 'translate', '0x4000_0000')).fault).toMatchObject({kind: 'translation', level: 2, fsc: '0x06'})
    expect((await okJson<TranslateJson>(dir, 'translate', '0x4000_0000')).par).toBe('0xa0d')
  })

  it('regs: each register and field, decoded', async () => {
    const out = await ok(dir, 'regs')
    expect(out).toContain('VTTBR_EL2 = 0x41000000  stage-2 root table and VMID')
    expect(out).toContain('VTCR_EL2 = 0x80023559  stage-2 translation control')
    expect(out).toContain('HCR_EL2 = 0x80000001  the bits stage 2 needs (OR them into the rest of your configuration)')
    for (const row of [
      '│ VMID  │ 55:48 │        0x0 │ VMID 0                        │',
      '│ BADDR │  47:1 │ 0x20800000 │ root (L1) table at 0x41000000 │',
      '│ CnP   │     0 │        0x0 │ private to this PE            │',
      '│ T0SZ  │   5:0 │  0x19 │ 39-bit input addresses                 │',
      '│ SL0   │   7:6 │   0x1 │ walks start at level 1                 │',
      '│ IRGN0 │   9:8 │   0x1 │ walks inner write-back RA WA           │',
      '│ ORGN0 │ 11:10 │   0x1 │ walks outer write-back RA WA           │',
      '│ SH0   │ 13:12 │   0x3 │ walks inner shareable                  │',
      '│ TG0   │ 15:14 │   0x0 │ 4 KiB granule                          │',
      '│ PS    │ 18:16 │   0x2 │ 40-bit physical addresses              │',
      '│ VS    │    19 │   0x0 │ 8-bit VMID                             │',
      '│ HA    │    21 │   0x0 │ no hardware access flag: AF = 0 faults │',
      '│ RES1  │    31 │   0x1 │ reserved, one                          │',
      '│ VM    │    0 │   0x1 │ stage-2 translation on                                  │',
      '│ DC    │   12 │   0x0 │ set it to run a guest with its MMU off as Normal memory │',
      '│ RW    │   31 │   0x1 │ EL1 is AArch64                                          │',
    ]) {
      expect(out).toContain(row)
    }
  })

  it('regs --json for stage 2', async () => {
    expect(await okJson<RegsJson>(dir, 'regs')).toEqual({
      regime: 'stage2',
      registers: [
        {
          name: 'VTTBR_EL2',
          value: '0x41000000',
          purpose: 'stage-2 root table and VMID',
          fields: [
            {name: 'VMID', bits: '55:48', value: '0x0', meaning: 'VMID 0'},
            {name: 'BADDR', bits: '47:1', value: '0x20800000', meaning: 'root (L1) table at 0x41000000'},
            {name: 'CnP', bits: '0', value: '0x0', meaning: 'private to this PE'},
          ],
        },
        {
          name: 'VTCR_EL2',
          value: '0x80023559',
          purpose: 'stage-2 translation control',
          fields: [
            {name: 'T0SZ', bits: '5:0', value: '0x19', meaning: '39-bit input addresses'},
            {name: 'SL0', bits: '7:6', value: '0x1', meaning: 'walks start at level 1'},
            {name: 'IRGN0', bits: '9:8', value: '0x1', meaning: 'walks inner write-back RA WA'},
            {name: 'ORGN0', bits: '11:10', value: '0x1', meaning: 'walks outer write-back RA WA'},
            {name: 'SH0', bits: '13:12', value: '0x3', meaning: 'walks inner shareable'},
            {name: 'TG0', bits: '15:14', value: '0x0', meaning: '4 KiB granule'},
            {name: 'PS', bits: '18:16', value: '0x2', meaning: '40-bit physical addresses'},
            {name: 'VS', bits: '19', value: '0x0', meaning: '8-bit VMID'},
            {name: 'HA', bits: '21', value: '0x0', meaning: 'no hardware access flag: AF = 0 faults'},
            {name: 'RES1', bits: '31', value: '0x1', meaning: 'reserved, one'},
          ],
        },
        {
          name: 'HCR_EL2',
          value: '0x80000001',
          purpose: 'the bits stage 2 needs (OR them into the rest of your configuration)',
          fields: [
            {name: 'VM', bits: '0', value: '0x1', meaning: 'stage-2 translation on'},
            {name: 'DC', bits: '12', value: '0x0', meaning: 'set it to run a guest with its MMU off as Normal memory'},
            {name: 'RW', bits: '31', value: '0x1', meaning: 'EL1 is AArch64'},
          ],
        },
      ],
    })
  })
})

describe('translate and regs without tables, and a VMID above 255', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => ({dir, cleanup} = await scratch()))
  afterAll(async () => cleanup())

  it('exit 2 when the snapshot has no mapper yet', async () => {
    await ok(dir, 'heap', 'init')
    for (const command of [['translate', '0x4800_0000'], ['regs']]) {
      const r = await hvmem(dir, command)
      expect(r.code).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toBe('hvmem: the snapshot has no translation tables yet; create them with "hvmem map region"\n')
      const j = await hvmemJson<ErrorJson>(dir, command)
      expect(j.code).toBe(2)
      expect(j.json).toEqual({error: {kind: 'input', message: 'the snapshot has no translation tables yet; create them with "hvmem map region"', exitCode: 2}})
    }
  })

  it('regs shows VMID 300 in VTTBR_EL2 bits 63:48 and VS set in VTCR_EL2', async () => {
    await ok(dir, 'map', 'region', '0x4000_0000', '2M', '--vmid', '300')
    const regs = await okJson<RegsJson>(dir, 'regs')
    expect(regs.registers.map((r) => [r.name, r.value])).toEqual([
      ['VTTBR_EL2', '0x12c000041000000'],
      ['VTCR_EL2', '0x800a3559'],
      ['HCR_EL2', '0x80000001'],
    ])
    expect(regs.registers[0]!.fields[0]).toEqual({name: 'VMID', bits: '63:48', value: '0x12c', meaning: 'VMID 300'})
    expect(regs.registers[1]!.fields.find((f) => f.name === 'VS')).toEqual({name: 'VS', bits: '19', value: '0x1', meaning: '16-bit VMID'})
  })
})

describe('map region --regime stage1, translate and regs for stage 1', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await okIn(dir, 'heap', 'init')
  })
  afterAll(async () => cleanup())

  it("writes the safe stage-1 presets 0x705 / 0x0040_0000_0000_0709 / 0x785 (the plan's AttrIndx and AP, inner shareable, device execute-never)", async () => {
    const normal = await okJson<MapRegionJson>(dir, 'map', 'region', '0x4800_0000', '2M', '--regime', 'stage1')
    expect(normal.mapped.descriptor).toBe('0x48000705')
    expect(normal.mapperCreated).toBe(true)
    expect(normal.mapper).toEqual({
      regime: 'stage1',
      root: '0x41000000',
      geometry: {granule: 4096, inputBits: 39, paBits: 40, startLevel: 1, rootTables: 1},
      vmid: 0,
      l2Budget: 4,
      l2Tables: ['0x41001000'],
      orphanedTables: 0,
      registers: {TTBR0_EL2: '0x41000000', TCR_EL2: '0x80823519', MAIR_EL2: '0x4ff00', SCTLR_EL2: '0x30c51835', HCR_EL2: '0x80000000'},
    })
    expect((await okJson<MapRegionJson>(dir, 'map', 'region', '0x4860_0000', '2M', '--attr', 'device')).mapped.descriptor).toBe('0x40000048600709')
    expect((await okJson<MapRegionJson>(dir, 'map', 'region', '0x4880_0000', '2M', '--attr', 'readonly', '--regime', 'stage1')).mapped.descriptor).toBe('0x48800785')

    const dump = await okJson<DumpTablesJson>(dir, 'dump', 'tables')
    expect(dump.mapper?.regime).toBe('stage1')
    expect(dump.entries.map((e) => [e.level, e.index, e.table, e.descriptor, e.kind])).toEqual([
      [1, 1, '0x41000000', '0x41001003', 'table'],
      [2, 64, '0x41001000', '0x48000705', 'block'],
      [2, 67, '0x41001000', '0x40000048600709', 'block'],
      [2, 68, '0x41001000', '0x48800785', 'block'],
    ])
    expect(dump.entries[1]!.leaf).toEqual({
      outputAddress: '0x48000000',
      memType: 'Normal-WB',
      access: 'RW',
      sh: 3,
      shareability: 'IS',
      af: true,
      executable: true,
      contiguous: false,
      software: 0,
      attrIndx: 1,
      mairAttr: 255,
      ap: 0,
    })
    expect(dump.entries[2]!.leaf).toMatchObject({memType: 'Device-nGnRE', access: 'RW', attrIndx: 2, mairAttr: 4, ap: 0})
    expect(dump.entries[3]!.leaf).toMatchObject({memType: 'Normal-WB', access: 'RO', attrIndx: 1, mairAttr: 255, ap: 2})

    expect(lines(await ok(dir, 'dump', 'tables', '--format', 'ranges'))).toEqual([
      'Stage 1 (EL2), root 0x41000000: TTBR0_EL2 0x41000000  TCR_EL2 0x80823519  MAIR_EL2 0x4ff00',
      '0x0000000048000000-0x0000000048200000   2M  L2  RW X Normal-WB IS AF BLK',
      '0x0000000048600000-0x0000000048800000   2M  L2  RW NX Device-nGnRE IS AF BLK',
      '0x0000000048800000-0x0000000048a00000   2M  L2  RO X Normal-WB IS AF BLK',
      '4 valid entries, 3 leaves, 3 range(s)',
    ])
  })

  it('refuses --regime stage2 (and --vmid) for the existing stage-1 mapper: exit 2, snapshot unchanged', async () => {
    const before = await snapshotBytes(join(dir, 'hvmem.snap'))
    const r = await hvmem(dir, ['map', 'region', '0x4000_0000', '2M', '--regime', 'stage2'])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe('hvmem: the mapper already exists with --regime stage1; --regime applies only when the mapper is created (start over with "heap reset --discard-mapper")\n')
    const j = await hvmemJson<ErrorJson>(dir, ['map', 'region', '0x4000_0000', '2M', '--regime', 'stage2'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({kind: 'input', exitCode: 2})
    expect((await hvmem(dir, ['map', 'region', '0x4000_0000', '2M', '--vmid', '3'])).code).toBe(2)
    expect((await snapshotBytes(join(dir, 'hvmem.snap'))).equals(before)).toBe(true)
  })

  it('translate walks the EL2 VA and reports stage-1 faults (no S bit)', async () => {
    expect(lines(await ok(dir, 'translate', '0x4800_1234'))).toEqual([
      'Stage-1 (EL2) walk of VA 0x48001234 for read, root 0x41000000',
      '  L1[1]     in 0x41000000: 0x0000000041001003  table',
      '  L2[64]    in 0x41001000: 0x0000000048000705  block',
      '-> 0x48001234  Normal-WB IS RWX  (2M block at L2)',
      'PAR_EL1 0xff00000048001b80',
    ])
    expect(lines(await ok(dir, 'translate', '0x4880_0000', '--write'))).toEqual([
      'Stage-1 (EL2) walk of VA 0x48800000 for write, root 0x41000000',
      '  L1[1]     in 0x41000000: 0x0000000041001003  table',
      '  L2[68]    in 0x41001000: 0x0000000048800785  block',
      '-> permission fault, level 2, stage 1 (FSC 0x0e): write is not allowed (RO)',
      'PAR_EL1 0x81d',
    ])
    // Device memory is outer shareable, whatever its descriptor's SH (0b11 here) says
    const device = await okJson<TranslateJson>(dir, 'translate', '0x4860_0000')
    expect(device).toMatchObject({regime: 'stage1', par: '0x400000048600b00', fault: null})
    expect(device.output).toEqual({
      address: '0x48600000',
      level: 2,
      size: 0x20_0000,
      memType: 'Device-nGnRE',
      attr: '0x04',
      sh: 2,
      shareability: 'OS',
      read: true,
      write: true,
      execute: false,
      contiguous: false,
    })
    const empty = await okJson<TranslateJson>(dir, 'translate', '0x4000_0000')
    expect(empty.fault).toEqual({kind: 'translation', level: 2, stage: 1, fsc: '0x06', reason: 'L2[0] is not valid'})
    expect(empty.par).toBe('0x80d')
    expect((await okJson<TranslateJson>(dir, 'translate', '0x1_0000_0000')).par).toBe('0x80b')
    expect((await okJson<TranslateJson>(dir, 'translate', '0x80_0000_0000')).par).toBe('0x809')
  })

  it('regs: TTBR0_EL2, TCR_EL2, MAIR_EL2, SCTLR_EL2, HCR_EL2', async () => {
    const out = await ok(dir, 'regs')
    for (const line of [
      'TTBR0_EL2 = 0x41000000  stage-1 root table of the EL2 regime',
      'TCR_EL2 = 0x80823519  stage-1 translation control (E2H = 0)',
      'MAIR_EL2 = 0x4ff00  memory attributes that AttrIndx selects',
      'SCTLR_EL2 = 0x30c51835  MMU and caches on',
      'HCR_EL2 = 0x80000000  E2H must be clear for the non-VHE EL2 regime these tables use',
      '│ TBI   │    20 │   0x0 │ top byte used                          │',
      '│ RES1  │    23 │   0x1 │ reserved, one                          │',
      '│ Attr0 │   7:0 │   0x0 │ Device-nGnRnE │',
      '│ Attr1 │  15:8 │  0xff │ Normal-WB     │',
      '│ Attr2 │ 23:16 │   0x4 │ Device-nGnRE  │',
      '│ M     │    0 │   0x1 │ MMU on                      │',
      '│ WXN   │   19 │   0x0 │ writable memory may execute │',
      '│ EE    │   25 │   0x0 │ little-endian               │',
      '│ E2H   │   34 │   0x0 │ non-VHE EL2 regime │',
    ]) {
      expect(out).toContain(line)
    }
    expect(out).not.toContain('VTTBR_EL2')
  })

  it('regs --json for stage 1', async () => {
    expect(await okJson<RegsJson>(dir, 'regs')).toEqual({
      regime: 'stage1',
      registers: [
        {
          name: 'TTBR0_EL2',
          value: '0x41000000',
          purpose: 'stage-1 root table of the EL2 regime',
          fields: [
            {name: 'BADDR', bits: '47:1', value: '0x20800000', meaning: 'root (L1) table at 0x41000000'},
            {name: 'CnP', bits: '0', value: '0x0', meaning: 'private to this PE'},
          ],
        },
        {
          name: 'TCR_EL2',
          value: '0x80823519',
          purpose: 'stage-1 translation control (E2H = 0)',
          fields: [
            {name: 'T0SZ', bits: '5:0', value: '0x19', meaning: '39-bit input addresses'},
            {name: 'IRGN0', bits: '9:8', value: '0x1', meaning: 'walks inner write-back RA WA'},
            {name: 'ORGN0', bits: '11:10', value: '0x1', meaning: 'walks outer write-back RA WA'},
            {name: 'SH0', bits: '13:12', value: '0x3', meaning: 'walks inner shareable'},
            {name: 'TG0', bits: '15:14', value: '0x0', meaning: '4 KiB granule'},
            {name: 'PS', bits: '18:16', value: '0x2', meaning: '40-bit physical addresses'},
            {name: 'TBI', bits: '20', value: '0x0', meaning: 'top byte used'},
            {name: 'HA', bits: '21', value: '0x0', meaning: 'no hardware access flag: AF = 0 faults'},
            {name: 'RES1', bits: '23', value: '0x1', meaning: 'reserved, one'},
            {name: 'RES1', bits: '31', value: '0x1', meaning: 'reserved, one'},
          ],
        },
        {
          name: 'MAIR_EL2',
          value: '0x4ff00',
          purpose: 'memory attributes that AttrIndx selects',
          fields: [
            {name: 'Attr0', bits: '7:0', value: '0x0', meaning: 'Device-nGnRnE'},
            {name: 'Attr1', bits: '15:8', value: '0xff', meaning: 'Normal-WB'},
            {name: 'Attr2', bits: '23:16', value: '0x4', meaning: 'Device-nGnRE'},
          ],
        },
        {
          name: 'SCTLR_EL2',
          value: '0x30c51835',
          purpose: 'MMU and caches on',
          fields: [
            {name: 'M', bits: '0', value: '0x1', meaning: 'MMU on'},
            {name: 'C', bits: '2', value: '0x1', meaning: 'data cacheable'},
            {name: 'I', bits: '12', value: '0x1', meaning: 'instructions cacheable'},
            {name: 'WXN', bits: '19', value: '0x0', meaning: 'writable memory may execute'},
            {name: 'EE', bits: '25', value: '0x0', meaning: 'little-endian'},
          ],
        },
        {
          name: 'HCR_EL2',
          value: '0x80000000',
          purpose: 'E2H must be clear for the non-VHE EL2 regime these tables use',
          fields: [
            {name: 'RW', bits: '31', value: '0x1', meaning: 'EL1 is AArch64'},
            {name: 'E2H', bits: '34', value: '0x0', meaning: 'non-VHE EL2 regime'},
          ],
        },
      ],
    })
  })
})

describe('snapshot export --raw', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await okIn(dir, 'heap', 'init')
    await okIn(dir, 'map', 'region', '0x4000_0000', '4M')
    await okIn(dir, 'map', 'region', '0x0900_0000', '2M', '--attr', 'device')
    await okIn(dir, 'mem', 'write', '0x41ff_fff8', '0x1122334455667788')
    await okIn(dir, 'mem', 'write', '0x4200_0000', '0xabcdef') // just past the heap: not exported by default
  })
  afterAll(async () => cleanup())

  async function memRead(address: string, length: number): Promise<Buffer> {
    const j = await okJson<MemReadJson>(dir, 'mem', 'read', address, String(length))
    return Buffer.from(j.bytes, 'hex')
  }

  it('writes exactly the heap bytes by default (16 MiB, the L1 table at offset 0)', async () => {
    const out = await ok(dir, 'snapshot', 'export', '--raw', 'tables.bin')
    expect(lines(out)).toEqual([
      `Wrote 16777216 bytes of 0x41000000-0x42000000 to tables.bin`,
      'QEMU: -device loader,file=tables.bin,addr=0x41000000,force-raw=on',
      'Registers: VTTBR_EL2=0x41000000 VTCR_EL2=0x80023559 HCR_EL2=0x80000001',
    ])
    const image = await readFile(join(dir, 'tables.bin'))
    expect(image.length).toBe(16 * 1024 * 1024)
    // L1[0] -> 0x4100_2000 (device), L1[1] -> 0x4100_1000
    expect(image.readBigUInt64LE(0)).toBe(0x4100_2003n)
    expect(image.readBigUInt64LE(8)).toBe(0x4100_1003n)
    expect(image.readBigUInt64LE(0x1000)).toBe(0x4000_07fdn)
    expect(image.readBigUInt64LE(0x1008)).toBe(0x4020_07fdn)
    expect(image.readBigUInt64LE(0x2000 + 8 * 72)).toBe(0x0040_0000_0900_07c5n)
    expect(image.readBigUInt64LE(0xff_fff8)).toBe(0x1122_3344_5566_7788n)
    for (const [offset, length] of [
      [0, 0x1000],
      [0x1000, 0x1000],
      [0x2000, 0x1000],
      [0x3000, 0x100],
      [0x80_0000, 0x40],
      [0xff_ff00, 0x100],
    ] as const) {
      expect(image.subarray(offset, offset + length).equals(await memRead(`0x${(0x4100_0000 + offset).toString(16)}`, length)), `offset ${offset}`).toBe(true)
    }
    expect(image.subarray(0x3000, 0xff_fff8).equals(Buffer.alloc(0xff_fff8 - 0x3000))).toBe(true) // untouched memory exports as zeros
  })

  it('--json gives the file, range, size, QEMU option and registers', async () => {
    expect(await okJson<ExportJson>(dir, 'snapshot', 'export', '--raw', 'j.bin')).toEqual({
      file: 'j.bin',
      format: 'bin',
      base: '0x41000000',
      tables: null,
      from: '0x41000000',
      to: '0x42000000',
      size: 16777216,
      qemuLoader: '-device loader,file=j.bin,addr=0x41000000,force-raw=on',
      registers: {VTTBR_EL2: '0x41000000', VTCR_EL2: '0x80023559', HCR_EL2: '0x80000001'},
    })
    expect((await stat(join(dir, 'j.bin'))).size).toBe(16777216)
  })

  it('--from/--to export any RAM range, unaligned and past the heap', async () => {
    const json = await okJson<ExportJson>(dir, 'snapshot', 'export', '--raw', 'part.bin', '--from', '0x4100_1004', '--to', '0x4100_1014')
    expect(json).toMatchObject({from: '0x41001004', to: '0x41001014', size: 16, qemuLoader: '-device loader,file=part.bin,addr=0x41001004,force-raw=on'})
    const part = await readFile(join(dir, 'part.bin'))
    // the high half of L2[0] (0x400007fd), L2[1] (0x402007fd), the low half of L2[2] (empty)
    expect(part.toString('hex')).toBe('00000000fd0720400000000000000000')
    expect(part.equals(await memRead('0x41001004', 16))).toBe(true)
    await ok(dir, 'snapshot', 'export', '--raw', 'past.bin', '--from', '0x4200_0000', '--to', '0x4200_0008')
    expect((await readFile(join(dir, 'past.bin'))).toString('hex')).toBe('efcdab0000000000')
  })

  it('errors: --to not above --from, or a range outside RAM, is exit 2 and writes no file', async () => {
    const cases: Array<[string[], string]> = [
      [['--from', '0x4100_1000', '--to', '0x4100_1000'], 'hvmem: --to 0x41001000 must be above --from 0x41001000\n'],
      [['--from', '0x4100_2000', '--to', '0x4100_1000'], 'hvmem: --to 0x41001000 must be above --from 0x41002000\n'],
      [['--from', '0x7fff_f000', '--to', '0x8000_1000'], 'hvmem: 0x7ffff000-0x80001000 is outside RAM 0x40000000-0x80000000\n'],
      [['--from', '0x3fff_f000', '--to', '0x4000_1000'], 'hvmem: 0x3ffff000-0x40001000 is outside RAM 0x40000000-0x80000000\n'],
    ]
    for (const [flags, stderr] of cases) {
      const r = await hvmem(dir, ['snapshot', 'export', '--raw', 'bad.bin', ...flags])
      expect(r.code, flags.join(' ')).toBe(2)
      expect(r.stderr).toBe(stderr)
      await expect(stat(join(dir, 'bad.bin'))).rejects.toThrow()
    }
    const j = await hvmemJson<ErrorJson>(dir, ['snapshot', 'export', '--raw', 'bad.bin', '--from', '0x4100_1000', '--to', '0x4100_0000'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({kind: 'input', exitCode: 2})
  })
})

describe('snapshot export without tables', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => ({dir, cleanup} = await scratch()))
  afterAll(async () => cleanup())

  it('exports the zeroed heap and gives registers null', async () => {
    await ok(dir, 'heap', 'init')
    const json = await okJson<ExportJson>(dir, 'snapshot', 'export', '--raw', 'empty.bin')
    expect(json).toEqual({
      file: 'empty.bin',
      format: 'bin',
      base: '0x41000000',
      tables: null,
      from: '0x41000000',
      to: '0x42000000',
      size: 16777216,
      qemuLoader: '-device loader,file=empty.bin,addr=0x41000000,force-raw=on',
      registers: null,
    })
    const image = await readFile(join(dir, 'empty.bin'))
    expect(image.equals(Buffer.alloc(16 * 1024 * 1024))).toBe(true)
    // a second export over the same file needs --force (exit 8 without it)
    expect(lines(await ok(dir, 'snapshot', 'export', '--raw', 'empty.bin', '--force'))).toEqual([
      'Wrote 16777216 bytes of 0x41000000-0x42000000 to empty.bin',
      'QEMU: -device loader,file=empty.bin,addr=0x41000000,force-raw=on',
    ])
  })
})
