/**
 * The software MMU walk, for both regimes: every fault kind at every level it can occur, and exact
 * PAR_EL1 values. The PAR values here were read from QEMU 7.2's MMU model (cortex-a57) with the same
 * descriptors: `at s12e1r/w` for stage 2 (HCR_EL2 VM|DC|RW, VTCR_EL2 0x80023559) and `at s1e2r/w` for
 * stage 1 (TTBR0_EL2 = root, TCR_EL2 0x80823519, MAIR_EL2 0x0004ff00). External aborts are checked by
 * kind, level and FSC only: QEMU takes them as a Data Abort (ESR DFSC 0b0101LL) and leaves PAR_EL1 alone.
 */
import {describe, expect, it} from 'vitest'

import {type RegimeName, tableDescriptor} from '../../src/core/descriptor.js'
import type {Machine} from '../../src/core/machine.js'
import type {IdentityMapper} from '../../src/core/mapper.js'
import {type FaultKind, type Translation, type WalkStep, outerShared, translate} from '../../src/core/translate.js'
import {GIB, mappedMachine} from './helpers.js'

const ROOT = 0x4100_0000n
/** The first table the mapper allocates after the root: the L2 table under L1[1] (0x4000_0000-0x7fff_ffff). */
const L2_TABLE = 0x4100_1000n
/** A zeroed RAM page outside the heap, used as a hand-written L3 table. */
const L3_TABLE = 0x4200_0000n
const TB = 1n << 40n
const AF_BIT = 0x400n

interface Fixture {
  machine: Machine
  mapper: IdentityMapper
  run: (input: bigint, access?: {write?: boolean; exec?: boolean}) => Translation
  /** writes entry `index` of the table at `table` */
  poke: (table: bigint, index: number, descriptor: bigint) => void
}

/** A default machine whose mapper (root 0x4100_0000) maps 0x4800_0000 + 2 MiB normal, so L1[1] -> 0x4100_1000. */
function fixture(regime: RegimeName): Fixture {
  const {machine, mapper} = mappedMachine({regime})
  mapper.mapRegion(0x4800_0000n, 0x20_0000n, 'normal')
  expect(machine.memory.readU64(ROOT + 8n)).toBe(0x4100_1003n)
  return {
    machine,
    mapper,
    run: (input, access = {}) => translate(machine.memory, mapper.regime, mapper.root, input, access),
    poke: (table, index, descriptor) => machine.memory.writeU64(table + 8n * BigInt(index), descriptor),
  }
}

const step = (level: number, table: bigint, index: number, descriptor: bigint, kind: WalkStep['kind']): WalkStep => ({level, table, index, descriptor, kind})
const L1_STEP = step(1, ROOT, 1, 0x4100_1003n, 'table')

/** `par` undefined: not asserted (external aborts, which AT reports as a Data Abort exception, not in PAR_EL1). */
function expectFault(t: Translation, kind: FaultKind, level: number, stage: 1 | 2, fsc: number, par: bigint | undefined): void {
  expect(t.output).toBeUndefined()
  expect(t.fault).toMatchObject({kind, level, stage, fsc})
  expect(t.fault!.reason).not.toBe('')
  if (par !== undefined) expect(t.par).toBe(par)
}

/** Per regime: the normal block encoding hvmem writes, and the PAR_EL1 of every fault (S bit 9 only at stage 2). */
const REGIMES = [
  {
    regime: 'stage2' as const,
    stage: 2 as const,
    normalBlock: 0x7fdn,
    normalPage: 0x7ffn,
    par: {
      translation: [0xa09n, 0xa0bn, 0xa0dn, 0xa0fn],
      'access-flag': [0n, 0xa13n, 0xa15n, 0xa17n],
      permission: [0n, 0xa1bn, 0xa1dn, 0xa1fn],
      'address-size': [0n, 0xa03n, 0xa05n, 0xa07n],
    },
  },
  {
    regime: 'stage1' as const,
    stage: 1 as const,
    normalBlock: 0x405n,
    normalPage: 0x407n,
    par: {
      translation: [0x809n, 0x80bn, 0x80dn, 0x80fn],
      'access-flag': [0n, 0x813n, 0x815n, 0x817n],
      permission: [0n, 0x81bn, 0x81dn, 0x81fn],
      'address-size': [0n, 0x803n, 0x805n, 0x807n],
    },
  },
]

describe.each(REGIMES)('translate(), $regime: every fault kind at every level', ({regime, stage, normalBlock, normalPage, par}) => {
  const noAfBlock = normalBlock & ~AF_BIT
  const noAfPage = normalPage & ~AF_BIT

  describe('translation faults', () => {
    it('level 0: an input address at or above 2^39 (T0SZ 25), with no table read', () => {
      const {run} = fixture(regime)
      for (const input of [1n << 39n, (1n << 39n) + 0x4800_0000n, (1n << 64n) - 1n]) {
        const t = run(input)
        expectFault(t, 'translation', 0, stage, 0b000100, par.translation[0]!) // QEMU: 0xa09 / 0x809
        expect(t.steps).toEqual([])
        expect(t.input).toBe(input)
      }
    })

    it('level 1: an empty L1 entry (also the last one below 2^39)', () => {
      const {run} = fixture(regime)
      const t = run(0x1_0000_0000n)
      expectFault(t, 'translation', 1, stage, 0b000101, par.translation[1]!) // QEMU: 0xa0b / 0x80b
      expect(t.steps).toEqual([step(1, ROOT, 4, 0n, 'invalid')])
      const last = run((1n << 39n) - 1n)
      expectFault(last, 'translation', 1, stage, 0b000101, par.translation[1]!)
      expect(last.steps).toEqual([step(1, ROOT, 511, 0n, 'invalid')])
    })

    it('level 2: an empty L2 entry under a table', () => {
      const {run} = fixture(regime)
      const t = run(0x4000_0000n)
      expectFault(t, 'translation', 2, stage, 0b000110, par.translation[2]!) // QEMU: 0xa0d / 0x80d
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 0, 0n, 'invalid')])
    })

    it('level 3: an empty entry in a hand-written L3 table', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 1, tableDescriptor(L3_TABLE))
      const t = run(0x4020_5abcn)
      expectFault(t, 'translation', 3, stage, 0b000111, par.translation[3]!) // QEMU (stage 2): 0xa0f
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 1, 0x4200_0003n, 'table'), step(3, L3_TABLE, 5, 0n, 'invalid')])
    })

    it('level 3: the reserved L3 encoding 0b01 (a block descriptor at level 3)', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 1, tableDescriptor(L3_TABLE))
      poke(L3_TABLE, 6, 0x4020_6000n | normalBlock)
      const t = run(0x4020_6000n)
      expectFault(t, 'translation', 3, stage, 0b000111, par.translation[3]!)
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 1, 0x4200_0003n, 'table'), step(3, L3_TABLE, 6, 0x4020_6000n | normalBlock, 'reserved')])
    })
  })

  describe('access-flag faults (no hardware AF management), for reads and writes', () => {
    it('level 1: a hand-written 1 GiB block with AF clear', () => {
      const {run, poke} = fixture(regime)
      poke(ROOT, 2, 0x8000_0000n | noAfBlock)
      for (const write of [false, true]) {
        const t = run(0x8123_4567n, {write})
        expectFault(t, 'access-flag', 1, stage, 0b001001, par['access-flag'][1]!)
        expect(t.steps).toEqual([step(1, ROOT, 2, 0x8000_0000n | noAfBlock, 'block')])
      }
    })

    it('level 2: a 2 MiB block with AF clear', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 2, 0x4040_0000n | noAfBlock)
      for (const write of [false, true]) {
        const t = run(0x4040_0010n, {write})
        expectFault(t, 'access-flag', 2, stage, 0b001010, par['access-flag'][2]!) // QEMU: 0xa15 / 0x815
        expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 2, 0x4040_0000n | noAfBlock, 'block')])
      }
    })

    it('level 3: a hand-written page (bits 1:0 = 0b11) with AF clear', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 1, tableDescriptor(L3_TABLE))
      poke(L3_TABLE, 7, 0x4020_7000n | noAfPage)
      for (const write of [false, true]) {
        const t = run(0x4020_7ff8n, {write})
        expectFault(t, 'access-flag', 3, stage, 0b001011, par['access-flag'][3]!)
        expect(t.steps.at(-1)).toEqual(step(3, L3_TABLE, 7, 0x4020_7000n | noAfPage, 'page'))
      }
    })

    it('the access flag is checked before permissions: a read-only leaf with AF clear written is an access-flag fault', () => {
      const {run, poke, mapper} = fixture(regime)
      const readonly = mapper.regime.leafDescriptor(2, 0x4040_0000n, 'readonly')
      poke(L2_TABLE, 2, readonly & ~AF_BIT)
      expectFault(run(0x4040_0000n, {write: true}), 'access-flag', 2, stage, 0b001010, par['access-flag'][2]!)
    })
  })

  describe('permission faults', () => {
    it('level 1: a write to a read-only 1 GiB block (reads succeed)', () => {
      const {run, mapper} = fixture(regime)
      mapper.mapRegion(0x8000_0000n, GIB, 'readonly')
      const t = run(0x8000_1000n, {write: true})
      expectFault(t, 'permission', 1, stage, 0b001101, par.permission[1]!)
      expect(t.steps).toEqual([step(1, ROOT, 2, mapper.regime.leafDescriptor(1, 0x8000_0000n, 'readonly'), 'block')])
      expect(run(0x8000_1000n).output?.address).toBe(0x8000_1000n)
    })

    it('level 2: a write to a read-only 2 MiB block (reads succeed)', () => {
      const {run, mapper} = fixture(regime)
      mapper.mapRegion(0x4860_0000n, 0x20_0000n, 'readonly')
      const t = run(0x4860_0abcn, {write: true})
      expectFault(t, 'permission', 2, stage, 0b001110, par.permission[2]!) // QEMU: 0xa1d / 0x81d
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 0x43, mapper.regime.leafDescriptor(2, 0x4860_0000n, 'readonly'), 'block')])
      expect(t).toMatchObject({input: 0x4860_0abcn, write: true, exec: false})
      expect(run(0x4860_0abcn).output?.address).toBe(0x4860_0abcn)
    })

    it('level 3: a write to a read-only 4 KiB page (reads succeed)', () => {
      const {run, mapper} = fixture(regime)
      mapper.mapRegion(0x4880_1000n, 0x1000n, 'readonly')
      const t = run(0x4880_1008n, {write: true})
      expectFault(t, 'permission', 3, stage, 0b001111, par.permission[3]!)
      expect(t.steps).toHaveLength(3)
      expect(t.steps[2]).toMatchObject({level: 3, index: 1, descriptor: mapper.regime.leafDescriptor(3, 0x4880_1000n, 'readonly'), kind: 'page'})
      expect(run(0x4880_1008n).output?.address).toBe(0x4880_1008n)
    })

    it('--exec on an execute-never (XN, bit 54) leaf, while the same read succeeds', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 2, 0x4040_0000n | normalBlock | (1n << 54n))
      expectFault(run(0x4040_0000n, {exec: true}), 'permission', 2, stage, 0b001110, par.permission[2]!)
      expect(run(0x4040_0000n).output?.execute).toBe(false)
      expect(run(0x4800_0000n, {exec: true}).output?.execute).toBe(true)
    })
  })

  describe('address-size faults (PS = 40 bits)', () => {
    it('level 1: an L1 table descriptor pointing at or above 2^40', () => {
      const {run, poke} = fixture(regime)
      poke(ROOT, 3, tableDescriptor(TB))
      const t = run(0xc000_0000n)
      expectFault(t, 'address-size', 1, stage, 0b000001, par['address-size'][1]!) // QEMU (stage 2): 0xa03
      expect(t.steps).toEqual([step(1, ROOT, 3, TB | 3n, 'table')])
    })

    it('level 1: a 1 GiB block whose output is at or above 2^40', () => {
      const {run, poke} = fixture(regime)
      poke(ROOT, 3, TB | normalBlock)
      expectFault(run(0xc000_0000n), 'address-size', 1, stage, 0b000001, par['address-size'][1]!)
    })

    it('level 2: a 2 MiB block whose output is at or above 2^40, checked before the access flag', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 3, TB | normalBlock)
      const t = run(0x4060_1234n)
      expectFault(t, 'address-size', 2, stage, 0b000010, par['address-size'][2]!) // QEMU (stage 2): 0xa05
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 3, TB | normalBlock, 'block')])
      poke(L2_TABLE, 3, (TB + 0x20_0000n) | noAfBlock)
      expectFault(run(0x4060_1234n), 'address-size', 2, stage, 0b000010, par['address-size'][2]!)
    })

    it('level 2: an L2 table descriptor pointing at or above 2^40', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 4, tableDescriptor(TB + 0x1000n))
      const t = run(0x4080_0000n)
      expectFault(t, 'address-size', 2, stage, 0b000010, par['address-size'][2]!)
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 4, TB + 0x1003n, 'table')])
    })

    it('level 3: a page whose output is at or above 2^40', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 1, tableDescriptor(L3_TABLE))
      poke(L3_TABLE, 8, (TB + 0x8000n) | normalPage)
      const t = run(0x4020_8000n)
      expectFault(t, 'address-size', 3, stage, 0b000011, par['address-size'][3]!)
      expect(t.steps.at(-1)).toEqual(step(3, L3_TABLE, 8, (TB + 0x8000n) | normalPage, 'page'))
    })

    it('an output just below 2^40 translates (it need not be RAM)', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 3, (TB - 0x20_0000n) | normalBlock)
      const t = run(0x4060_1234n)
      expect(t.fault).toBeUndefined()
      expect(t.output?.address).toBe(0xff_ffe0_1234n)
    })
  })

  describe('external aborts: a table outside RAM (FSC 0b0101LL)', () => {
    it('level 1: a root table outside RAM', () => {
      const {machine, mapper} = fixture(regime)
      const t = translate(machine.memory, mapper.regime, 0x1000_0000n, 0x4800_0000n)
      expectFault(t, 'external-abort', 1, stage, 0b010101, undefined)
      expect(t.steps).toEqual([])
    })

    it('level 2: an L1 table descriptor pointing below RAM', () => {
      const {run, poke} = fixture(regime)
      poke(ROOT, 3, tableDescriptor(0x1000_0000n))
      const t = run(0xc000_0000n)
      expectFault(t, 'external-abort', 2, stage, 0b010110, undefined)
      expect(t.steps).toEqual([step(1, ROOT, 3, 0x1000_0003n, 'table')])
    })

    it('level 3: an L2 table descriptor pointing just past the end of RAM (0x8000_0000)', () => {
      const {run, poke} = fixture(regime)
      poke(L2_TABLE, 5, tableDescriptor(0x8000_0000n))
      const t = run(0x40a0_0000n)
      expectFault(t, 'external-abort', 3, stage, 0b010111, undefined)
      expect(t.steps).toEqual([L1_STEP, step(2, L2_TABLE, 5, 0x8000_0003n, 'table')])
    })

    // hvmem knows only the snapshot's RAM: on QEMU's virt board these addresses are MMIO that reads as all ones.
    it('a table below 2^40 but outside RAM is an external abort, not an address-size fault', () => {
      const {run, poke} = fixture(regime)
      poke(ROOT, 3, tableDescriptor(TB - 0x1000n))
      expectFault(run(0xc000_0000n), 'external-abort', 2, stage, 0b010110, undefined)
    })
  })
})

describe('translate(), stage 2: successful walks and PAR_EL1 (QEMU values)', () => {
  const normal = {memAttr: 0b1111, memType: 'Normal-WB', s2ap: 3, access: 'RW', sh: 3, shareability: 'IS', af: true, xn: 0, executable: true, contiguous: false, software: 0}

  it('normal 2 MiB block, read at 0x4800_1234: 0xff00000048001b80', () => {
    const {run} = fixture('stage2')
    const t = run(0x4800_1234n)
    expect(t).toEqual({
      input: 0x4800_1234n,
      write: false,
      exec: false,
      steps: [L1_STEP, step(2, L2_TABLE, 64, 0x4800_07fdn, 'block')],
      output: {
        address: 0x4800_1234n,
        level: 2,
        size: 0x20_0000n,
        leaf: {outputAddress: 0x4800_0000n, ...normal},
        memType: 'Normal-WB',
        attr: 0xff,
        sh: 3,
        shareability: 'IS',
        read: true,
        write: true,
        execute: true,
      },
      par: 0xff00_0000_4800_1b80n,
    })
    const w = run(0x4800_1234n, {write: true, exec: true})
    expect(w).toMatchObject({write: true, exec: true, par: 0xff00_0000_4800_1b80n})
    expect(w.fault).toBeUndefined()
  })

  it('device block at 0x0900_0000, read 0x0900_0018: 0x0400000009000b00 (Device reads outer shareable)', () => {
    const {run, mapper} = fixture('stage2')
    mapper.mapRegion(0x0900_0000n, 0x20_0000n, 'device')
    const t = run(0x0900_0018n)
    expect(t.par).toBe(0x0400_0000_0900_0b00n)
    expect(t.steps).toEqual([step(1, ROOT, 0, 0x4100_2003n, 'table'), step(2, 0x4100_2000n, 0x48, 0x0040_0000_0900_07c5n, 'block')])
    expect(t.output).toEqual({
      address: 0x0900_0018n,
      level: 2,
      size: 0x20_0000n,
      leaf: {
        outputAddress: 0x0900_0000n,
        memAttr: 0b0001,
        memType: 'Device-nGnRE',
        s2ap: 3,
        access: 'RW',
        sh: 3,
        shareability: 'IS',
        af: true,
        xn: 2,
        executable: false,
        contiguous: false,
        software: 0,
      },
      memType: 'Device-nGnRE',
      attr: 0x04,
      sh: 2,
      shareability: 'OS',
      read: true,
      write: true,
      execute: false,
    })
    expect(run(0x0900_0018n, {write: true}).par).toBe(0x0400_0000_0900_0b00n)
    expectFault(run(0x0900_0018n, {exec: true}), 'permission', 2, 2, 0b001110, 0xa1dn)
  })

  it('read-only block: a read at 0x4860_0abc gives 0xff00000048600b80, a write 0xa1d', () => {
    const {run, mapper} = fixture('stage2')
    mapper.mapRegion(0x4860_0000n, 0x20_0000n, 'readonly')
    const r = run(0x4860_0abcn)
    expect(r.par).toBe(0xff00_0000_4860_0b80n)
    expect(r.output).toMatchObject({address: 0x4860_0abcn, read: true, write: false, execute: true, memType: 'Normal-WB', attr: 0xff, sh: 3})
    expect(r.output!.leaf).toMatchObject({s2ap: 1, access: 'RO'})
    const w = run(0x4860_0abcn, {write: true})
    expectFault(w, 'permission', 2, 2, 0b001110, 0xa1dn)
  })

  it('hand-written faults with QEMU values: empty L1 0xa0b, empty L2 0xa0d, IPA 2^39 0xa09, AF=0 0xa15, empty L3 0xa0f', () => {
    const {run, poke} = fixture('stage2')
    expect(run(0x1_0000_0000n).par).toBe(0xa0bn)
    expect(run(0x4000_0000n).par).toBe(0xa0dn)
    expect(run(1n << 39n).par).toBe(0xa09n)
    poke(L2_TABLE, 80, 0x4a00_0000n | 0x3fdn)
    expect(run(0x4a00_0000n).par).toBe(0xa15n)
    expect(run(0x4a00_0000n, {write: true}).par).toBe(0xa15n)
    poke(L2_TABLE, 1, tableDescriptor(L3_TABLE))
    expect(run(0x4020_0000n).par).toBe(0xa0fn)
  })

  it('block output >= 2^40 gives 0xa05, an L1 table descriptor >= 2^40 gives 0xa03', () => {
    const {run, poke} = fixture('stage2')
    poke(L2_TABLE, 80, TB | 0x7fdn)
    expect(run(0x4a00_0000n).par).toBe(0xa05n)
    poke(ROOT, 2, tableDescriptor(TB))
    expect(run(0x8000_0000n).par).toBe(0xa03n)
  })

  it("the plan's stage-1 encodings under stage 2: 0x405 faults reads (0xa1d); 0x485 faults reads but writes succeed as Device", () => {
    const {run, poke} = fixture('stage2')
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x405n)
    expectFault(run(0x4a60_0000n), 'permission', 2, 2, 0b001110, 0xa1dn)
    expect(run(0x4a60_0000n, {write: true}).par).toBe(0xa1dn)
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x485n)
    expect(run(0x4a60_0000n).par).toBe(0xa1dn)
    const w = run(0x4a60_0000n, {write: true})
    expect(w.par).toBe(0x0400_0000_4a60_0b00n)
    expect(w.output).toMatchObject({address: 0x4a60_0000n, memType: 'Device-nGnRE', attr: 0x04, sh: 2, shareability: 'OS', read: false, write: true, execute: true})
    expect(w.output!.leaf).toMatchObject({memAttr: 1, s2ap: 2, access: 'WO', sh: 0, shareability: 'NS'})
  })

  it('MemAttr 0b1101 (outer WB, inner NC) reads as attr 0xf4 and keeps SH 0b11', () => {
    const {run, poke} = fixture('stage2')
    poke(L2_TABLE, 0x53, 0x4a60_0000n | (0b1101n << 2n) | 0x7c1n)
    const t = run(0x4a60_0000n)
    expect(t.par).toBe(0xf400_0000_4a60_0b80n)
    expect(t.output).toMatchObject({memType: 'Normal-oWB-iNC', attr: 0xf4, sh: 3, shareability: 'IS'})
  })

  it('reserved encodings combine with stage 1 as on QEMU: inner MemAttr 00 keeps stage 1 WB, SH 01 becomes non-shareable', () => {
    const {run, poke} = fixture('stage2')
    poke(L2_TABLE, 0x5b, 0x4b60_0000n | (0b0100n << 2n) | 0x7c1n)
    expect(run(0x4b60_1238n).par).toBe(0x4f00_0000_4b60_1b80n) // QEMU 7.2: 0x4f...b80
    poke(L2_TABLE, 0x5e, 0x4bc0_0000n | 0x5fdn)
    const t = run(0x4bc0_1238n)
    expect(t.par).toBe(0xff00_0000_4bc0_1a00n) // QEMU 7.2: SH 00
    expect(t.output).toMatchObject({sh: 0, shareability: 'NS'})
  })

  it('MemAttr 0b0000 (Device-nGnRnE) reads as attr 0x00 with SH 0b10', () => {
    const {run, poke} = fixture('stage2')
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x7c1n)
    const t = run(0x4a60_0000n)
    expect(t.par).toBe(0x0000_0000_4a60_0b00n)
    expect(t.output).toMatchObject({memType: 'Device-nGnRnE', attr: 0x00, sh: 2, shareability: 'OS'})
  })

  it('Normal WB with SH 0b00 reports 0xa00 in the low bits, with SH 0b10 0xb00', () => {
    const {run, poke} = fixture('stage2')
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x4fdn)
    const ns = run(0x4a60_0000n)
    expect(ns.par).toBe(0xff00_0000_4a60_0a00n)
    expect(ns.output).toMatchObject({sh: 0, shareability: 'NS', attr: 0xff})
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x6fdn)
    const os = run(0x4a60_0000n)
    expect(os.par).toBe(0xff00_0000_4a60_0b00n)
    expect(os.output).toMatchObject({sh: 2, shareability: 'OS', attr: 0xff})
  })

  it('other MemAttr values: 0b0111 -> 0x4f, 0b1010 -> 0xbb (SH kept), 0b0101 -> 0x44 (outer shareable)', () => {
    const {run, poke} = fixture('stage2')
    const cases: Array<[bigint, bigint, string]> = [
      [0b0111n, 0x4f00_0000_4a60_0b80n, 'Normal-oNC-iWB'],
      [0b1010n, 0xbb00_0000_4a60_0b80n, 'Normal-WT'],
      [0b0101n, 0x4400_0000_4a60_0b00n, 'Normal-NC'],
    ]
    for (const [memAttr, par, memType] of cases) {
      poke(L2_TABLE, 0x53, 0x4a60_0000n | (memAttr << 2n) | 0x7c1n)
      const t = run(0x4a60_0238n)
      expect(t.par).toBe(par)
      expect(t.output?.memType).toBe(memType)
    }
  })

  it('a 1 GiB L1 block at 0x8000_0000: 0x9234_5678 -> 0xff00000092345b80', () => {
    const {run, mapper, machine} = fixture('stage2')
    mapper.mapRegion(0x8000_0000n, GIB, 'normal')
    expect(machine.memory.readU64(ROOT + 16n)).toBe(0x8000_07fdn)
    const t = run(0x9234_5678n)
    expect(t.par).toBe(0xff00_0000_9234_5b80n)
    expect(t.steps).toEqual([step(1, ROOT, 2, 0x8000_07fdn, 'block')])
    expect(t.output).toMatchObject({address: 0x9234_5678n, level: 1, size: GIB, memType: 'Normal-WB', attr: 0xff, sh: 3})
  })

  it('a 4 KiB page keeps the page offset, and maps to --pa', () => {
    const {run, mapper} = fixture('stage2')
    mapper.mapRegion(0x4880_3000n, 0x1000n, 'normal', {pa: 0x5555_5000n})
    const t = run(0x4880_3ff8n)
    expect(t.par).toBe(0xff00_0000_5555_5b80n)
    expect(t.output).toMatchObject({address: 0x5555_5ff8n, level: 3, size: 0x1000n})
    expect(t.steps).toHaveLength(3)
    expect(t.steps[1]).toMatchObject({level: 2, table: L2_TABLE, index: 0x44, kind: 'table'})
    expect(t.steps[2]).toMatchObject({level: 3, index: 3, descriptor: 0x5555_57ffn, kind: 'page'})
  })
})

describe('outerShared: the memory types PAREncodeShareability makes outer shareable', () => {
  it.each([
    [0x00, true], // Device-nGnRnE
    [0x04, true], // Device-nGnRE
    [0x08, true], // Device-nGRE
    [0x0c, true], // Device-GRE
    [0x44, true], // Normal, inner and outer Non-cacheable
    [0x4f, false], // outer Non-cacheable, inner write-back
    [0xf4, false], // outer write-back, inner Non-cacheable
    [0xbb, false], // write-through
    [0xff, false], // write-back
    [0xf0, false], // Tagged Normal (FEAT_MTE): write-back
  ])('MAIR byte %i: %s', (attr, expected) => {
    expect(outerShared(attr)).toBe(expected)
  })
})

describe('translate(), stage 1 (EL2): successful walks and PAR_EL1 (QEMU 7.2 values, but SH for Device as the Arm ARM gives it)', () => {
  it('normal block P|0x705 (the safe preset: inner shareable), read at 0x4800_1234: 0xff00000048001b80 (SH 0b11)', () => {
    const {run} = fixture('stage1')
    const t = run(0x4800_1234n)
    expect(t).toEqual({
      input: 0x4800_1234n,
      write: false,
      exec: false,
      steps: [L1_STEP, step(2, L2_TABLE, 64, 0x4800_0705n, 'block')],
      output: {
        address: 0x4800_1234n,
        level: 2,
        size: 0x20_0000n,
        leaf: {
          outputAddress: 0x4800_0000n,
          attrIndx: 1,
          mairAttr: 0xff,
          memType: 'Normal-WB',
          ap: 0,
          access: 'RW',
          sh: 3,
          shareability: 'IS',
          af: true,
          executable: true,
          contiguous: false,
          software: 0,
        },
        memType: 'Normal-WB',
        attr: 0xff,
        sh: 3,
        shareability: 'IS',
        read: true,
        write: true,
        execute: true,
      },
      par: 0xff00_0000_4800_1b80n,
    })
    expect(run(0x4800_1234n, {write: true}).par).toBe(0xff00_0000_4800_1b80n)
  })

  // Device memory is outer shareable whatever its descriptor's SH says (PAREncodeShareability), at
  // stage 1 as at stage 2; QEMU 7.2 reports the descriptor's SH here (0x0400000048600b80).
  it('device block P|0x0040_0000_0000_0709 (execute-never, SH 0b11): 0x0400000048600b00, outer shareable', () => {
    const {run, mapper} = fixture('stage1')
    mapper.mapRegion(0x4860_0000n, 0x20_0000n, 'device')
    const t = run(0x4860_0000n)
    expect(t.par).toBe(0x0400_0000_4860_0b00n)
    expect(t.steps[1]).toEqual(step(2, L2_TABLE, 0x43, 0x0040_0000_4860_0709n, 'block'))
    expect(t.output).toMatchObject({address: 0x4860_0000n, memType: 'Device-nGnRE', attr: 0x04, sh: 2, shareability: 'OS', read: true, write: true, execute: false})
    expect(t.output!.leaf).toMatchObject({attrIndx: 2, mairAttr: 0x04, sh: 3})
  })

  it('readonly block P|0x785: reads succeed, a write is 0x81d', () => {
    const {run, mapper} = fixture('stage1')
    mapper.mapRegion(0x4880_0000n, 0x20_0000n, 'readonly')
    const r = run(0x4880_0abcn)
    expect(r.par).toBe(0xff00_0000_4880_0b80n)
    expect(r.output).toMatchObject({read: true, write: false, execute: true, attr: 0xff})
    expect(r.output!.leaf).toMatchObject({ap: 2, access: 'RO'})
    expectFault(run(0x4880_0abcn, {write: true}), 'permission', 2, 1, 0b001110, 0x81dn)
  })

  it('hand-written faults with QEMU values: AF=0 0x815, empty L1 0x80b, empty L2 0x80d, VA 2^39 0x809', () => {
    const {run, poke} = fixture('stage1')
    poke(L2_TABLE, 80, 0x4a00_0000n | 0x005n)
    expect(run(0x4a00_0000n).par).toBe(0x815n)
    expect(run(0x4a00_0000n, {write: true}).par).toBe(0x815n)
    expect(run(0x1_0000_0000n).par).toBe(0x80bn)
    expect(run(0x4000_0000n).par).toBe(0x80dn)
    expect(run(1n << 39n).par).toBe(0x809n)
  })

  it('the MAIR_EL2 byte AttrIndx selects is the reported attr; the descriptor SH is kept for Normal cacheable memory, Device is outer shareable', () => {
    const {run, poke} = fixture('stage1')
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x401n) // AttrIndx 0: 0x00 Device-nGnRnE, SH 0b00 (QEMU 7.2: 0x4a600a00)
    expect(run(0x4a60_0000n).par).toBe(0x0000_0000_4a60_0b00n)
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x705n) // AttrIndx 1, SH 0b11
    expect(run(0x4a60_0000n).par).toBe(0xff00_0000_4a60_0b80n)
    poke(L2_TABLE, 0x53, 0x4a60_0000n | 0x609n) // AttrIndx 2 (Device), SH 0b10
    expect(run(0x4a60_0000n).par).toBe(0x0400_0000_4a60_0b00n)
  })

  it('a 1 GiB block and a 4 KiB page keep their offsets', () => {
    const {run, mapper} = fixture('stage1')
    mapper.mapRegion(0x8000_0000n, GIB, 'normal')
    expect(run(0x9234_5678n)).toMatchObject({par: 0xff00_0000_9234_5b80n, steps: [step(1, ROOT, 2, 0x8000_0705n, 'block')]})
    expect(run(0x9234_5678n).output).toMatchObject({address: 0x9234_5678n, level: 1, size: GIB})
    mapper.mapRegion(0x4880_3000n, 0x1000n, 'device', {pa: 0x0900_0000n})
    const t = run(0x4880_3018n)
    expect(t.par).toBe(0x0400_0000_0900_0b00n) // Device: outer shareable (QEMU 7.2: the descriptor's 0b11, 0x...b80)
    expect(t.output).toMatchObject({address: 0x0900_0018n, level: 3, size: 0x1000n})
    expect(t.steps[2]).toMatchObject({level: 3, index: 3, descriptor: 0x0040_0000_0900_070bn, kind: 'page'})
  })
})
