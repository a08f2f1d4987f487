/**
 * VTCR_EL2 / TCR_EL2 -> walk configuration (start level, input size, PA size), the Arm ARM's
 * consistency rules for SL0 and T0SZ, and walks of hand-built tables with other start levels and
 * concatenated stage-2 roots.
 */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {tableDescriptor} from '../../src/core/descriptor.js'
import {foreignWalk, stage1Walk, stage1WithMair, stage2Walk} from '../../src/core/regime-config.js'
import {TCR_EL2, vtcrFor} from '../../src/core/registers.js'
import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'
import {translate} from '../../src/core/translate.js'
import {defaultMachine, expectHvmemError, walkEntries} from './helpers.js'
import {DEFAULT_STAGE2, type Geometry, stage2Geometry} from '../../src/core/geometry.js'

/** The walk a geometry describes, as the old WalkConfig did. */
const shape = (g: Geometry): {granule: number; startLevel: number; inputBits: number; paBits: number} => ({granule: g.granule, startLevel: g.startLevel, inputBits: g.inputBits, paBits: g.paBits})
const DEFAULT_WALK = shape(DEFAULT_STAGE2)

/** VTCR_EL2 with hvmem's attributes (IRGN0/ORGN0 WB, SH0 inner, 4K, PS 40-bit, RES1) and the given T0SZ and SL0. */
const vtcr = (t0sz: number, sl0: number): bigint => 0x8002_3500n | (BigInt(sl0) << 6n) | BigInt(t0sz)
/** TCR_EL2 like hvmem's with the given T0SZ. */
const tcr = (t0sz: number): bigint => 0x8082_3500n | BigInt(t0sz)

describe('stage2Walk (VTCR_EL2)', () => {
  it("decodes hvmem's own VTCR_EL2 as the default walk: level 1, 39-bit IPA, 40-bit PA", () => {
    expect(shape(stage2Walk(0x8002_3559n))).toEqual({granule: 4096, startLevel: 1, inputBits: 39, paBits: 40})
    expect(shape(stage2Walk(0x8002_3559n))).toEqual(DEFAULT_WALK)
    expect(shape(stage2Walk(vtcrFor(300)))).toEqual(DEFAULT_WALK)
  })

  it('takes the start level from SL0 and the input size from T0SZ', () => {
    expect(shape(stage2Walk(0x8002_3590n))).toEqual({granule: 4096, startLevel: 0, inputBits: 48, paBits: 40}) // T0SZ 16, SL0 2
    expect(shape(stage2Walk(vtcr(24, 2)))).toEqual({granule: 4096, startLevel: 0, inputBits: 40, paBits: 40})
    expect(shape(stage2Walk(vtcr(24, 1)))).toEqual({granule: 4096, startLevel: 1, inputBits: 40, paBits: 40}) // 2 concatenated L1 tables
    expect(shape(stage2Walk(vtcr(21, 1)))).toEqual({granule: 4096, startLevel: 1, inputBits: 43, paBits: 40}) // 16 concatenated
    expect(shape(stage2Walk(vtcr(33, 1)))).toEqual({granule: 4096, startLevel: 1, inputBits: 31, paBits: 40})
    expect(shape(stage2Walk(vtcr(30, 0)))).toEqual({granule: 4096, startLevel: 2, inputBits: 34, paBits: 40})
    expect(shape(stage2Walk(vtcr(39, 0)))).toEqual({granule: 4096, startLevel: 2, inputBits: 25, paBits: 40})
  })

  it('takes the output size from PS, 52 bits acting as 48 without FEAT_LPA', () => {
    const ps = (v: number): bigint => (0x8002_3559n & ~(7n << 16n)) | (BigInt(v) << 16n)
    expect([0, 1, 2, 3, 4, 5, 6].map((v) => stage2Walk(ps(v)).paBits)).toEqual([32, 36, 40, 42, 44, 48, 48])
  })

  it('counts the concatenated root tables', () => {
    expect([vtcr(25, 1), vtcr(24, 1), vtcr(21, 1), vtcr(30, 0), vtcr(32, 0), vtcr(39, 0), vtcr(16, 2)].map((v) => stage2Walk(v).rootTables)).toEqual([1, 2, 16, 16, 4, 1, 1])
    expect(stage2Walk(vtcr(39, 0)).rootEntries).toBe(16)
  })

  it('refuses SL0 inconsistent with T0SZ, per AArch64.S2InconsistentSL', () => {
    expectHvmemError(
      () => stage2Walk(vtcr(25, 2)),
      'input',
      'VTCR_EL2 0x80023599: SL0 2 (start at level 0) is inconsistent with T0SZ 25 (39-bit IPA): a level-0 start with the 4K granule needs a 40- to 48-bit input',
    )
    expectHvmemError(() => stage2Walk(vtcr(25, 0)), 'input', 'SL0 0 (start at level 2) is inconsistent with T0SZ 25 (39-bit IPA): a level-2 start with the 4K granule needs a 25- to 34-bit input')
    expectHvmemError(() => stage2Walk(vtcr(20, 1)), 'input', 'SL0 1 (start at level 1) is inconsistent with T0SZ 20 (44-bit IPA): a level-1 start with the 4K granule needs a 31- to 43-bit input')
    expectHvmemError(() => stage2Walk(vtcr(34, 1)), 'input', 'a level-1 start with the 4K granule needs a 31- to 43-bit input')
  })

  it('refuses a reserved SL0, a reserved granule, T0SZ out of range and a reserved PS', () => {
    expectHvmemError(() => stage2Walk(vtcr(25, 3)), 'input', 'VTCR_EL2 0x800235d9: SL0 3 is reserved for the 4K granule (a level-3 start needs FEAT_TTST); use SL0 0..2')
    expectHvmemError(() => stage2Walk(0x8002_f559n), 'input', 'VTCR_EL2 0x8002f559: TG0 3 is reserved; TG0 must be 0 (4 KiB), 1 (64 KiB) or 2 (16 KiB)')
    expectHvmemError(
      () => stage2Walk(vtcr(15, 2)),
      'input',
      'VTCR_EL2 0x8002358f: T0SZ 15 (49-bit inputs) is out of range; T0SZ must be 16..39 (48- to 25-bit inputs) without FEAT_LPA2 (DS) or FEAT_TTST',
    )
    expectHvmemError(() => stage2Walk(vtcr(40, 0)), 'input', 'T0SZ 40 (24-bit inputs) is out of range')
    expectHvmemError(() => stage2Walk(0x8007_3559n), 'input', 'VTCR_EL2 0x80073559: PS 7 is reserved; PS must be 0..6 (32..52-bit physical addresses)')
  })

  it('accepts exactly the T0SZ/SL0 pairs whose root resolves 1 to 13 bits (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({min: 0, max: 63}), fc.integer({min: 0, max: 3}), (t0sz, sl0) => {
        const start = 2 - sl0
        const rootBits = 64 - t0sz - (12 + 9 * (3 - start))
        const valid = t0sz >= 16 && t0sz <= 39 && sl0 !== 3 && rootBits >= 1 && rootBits <= 13
        let got: boolean
        try {
          const w = stage2Walk(vtcr(t0sz, sl0))
          expect(shape(w)).toEqual({granule: 4096, startLevel: start, inputBits: 64 - t0sz, paBits: 40})
          got = true
        } catch {
          got = false
        }
        expect(got).toBe(valid)
      }),
    )
  })
})

describe('stage1Walk (TCR_EL2)', () => {
  it('derives the start level from T0SZ (AArch64.S1StartLevel)', () => {
    expect(shape(stage1Walk(TCR_EL2))).toEqual({granule: 4096, startLevel: 1, inputBits: 39, paBits: 40})
    expect(shape(stage1Walk(tcr(16)))).toEqual({granule: 4096, startLevel: 0, inputBits: 48, paBits: 40})
    expect(shape(stage1Walk(tcr(24)))).toEqual({granule: 4096, startLevel: 0, inputBits: 40, paBits: 40})
    expect(shape(stage1Walk(tcr(25)))).toEqual({granule: 4096, startLevel: 1, inputBits: 39, paBits: 40})
    expect(shape(stage1Walk(tcr(33)))).toEqual({granule: 4096, startLevel: 1, inputBits: 31, paBits: 40})
    expect(shape(stage1Walk(tcr(34)))).toEqual({granule: 4096, startLevel: 2, inputBits: 30, paBits: 40})
    expect(shape(stage1Walk(tcr(39)))).toEqual({granule: 4096, startLevel: 2, inputBits: 25, paBits: 40})
    expect(stage1Walk(tcr(33)).rootTables).toBe(1)
  })

  it('refuses a reserved granule and T0SZ out of range', () => {
    expectHvmemError(() => stage1Walk(0x8082_f519n), 'input', 'TCR_EL2 0x8082f519: TG0 3 is reserved; TG0 must be 0 (4 KiB), 1 (64 KiB) or 2 (16 KiB)')
    expectHvmemError(() => stage1Walk(tcr(12)), 'input', 'TCR_EL2 0x8082350c: T0SZ 12 (52-bit inputs) is out of range; T0SZ must be 16..39 (48- to 25-bit inputs) without FEAT_LPA2 (DS) or FEAT_TTST')
  })
})

describe('foreignWalk', () => {
  it("defaults to hvmem's registers and reports VTTBR_EL2 with the VMID", () => {
    const w = foreignWalk('stage2', 0x4100_0000n, undefined, 5)
    expect(shape(w.geometry)).toEqual(DEFAULT_WALK)
    expect(w.registers).toEqual([
      {name: 'VTTBR_EL2', value: 0x0005_0000_4100_0000n},
      {name: 'VTCR_EL2', value: 0x8002_3559n},
    ])
    expect(foreignWalk('stage1', 0x4100_0000n).registers).toEqual([
      {name: 'TTBR0_EL2', value: 0x4100_0000n},
      {name: 'TCR_EL2', value: 0x8082_3519n},
      {name: 'MAIR_EL2', value: 0x0004_ff00n},
    ])
    expect(foreignWalk('stage1', 0x4100_0000n).decoder).toBe(STAGE1)
    expect(foreignWalk('stage2', 0x4100_0000n).decoder).toBe(STAGE2)
  })

  it('reads stage-1 AttrIndx through the MAIR_EL2 given', () => {
    // AttrIndx 1: hvmem's MAIR says Normal WB (0xff); this one says Device-nGnRE (0x04), and AttrIndx 2 Normal NC (0x44)
    const w = foreignWalk('stage1', 0x4100_0000n, undefined, undefined, 0x0044_0400n)
    expect(w.registers[2]).toEqual({name: 'MAIR_EL2', value: 0x0044_0400n})
    expect(w.decoder.decode(0x4000_0405n, 1).leaf).toMatchObject({memType: 'Device-nGnRE', attrIndx: 1, mairAttr: 0x04, access: 'RW'})
    expect(w.decoder.decode(0x4000_0489n, 1).leaf).toMatchObject({memType: 'Normal-NC', attrIndx: 2, mairAttr: 0x44, access: 'RO'})
    expect(STAGE1.decode(0x4000_0405n, 1).leaf).toMatchObject({memType: 'Normal-WB', mairAttr: 0xff})
    expect(stage1WithMair(0x0004_ff00n)).toBe(STAGE1)
    expectHvmemError(() => foreignWalk('stage2', 0x4100_0000n, undefined, undefined, 0xffn), 'input', '--mair applies to stage 1 only: stage-2 descriptors carry their memory type in MemAttr')
  })

  it('refuses a misaligned root, a root past the PA size, a 16-bit VMID without VS, and --vmid for stage 1', () => {
    expectHvmemError(() => foreignWalk('stage2', 0x4100_0800n), 'input', '--root 0x41000800 is not a valid root: it must be a 4K-aligned table, below the 40-bit physical address space')
    expectHvmemError(
      () => foreignWalk('stage2', 0x4100_1000n, vtcr(24, 1)),
      'input',
      '--root 0x41001000 is not a valid root: it must be 2 concatenated 4K tables, so aligned to 0x2000, below the 40-bit physical address space',
    )
    expectHvmemError(() => foreignWalk('stage2', 1n << 40n), 'input', 'below the 40-bit physical address space')
    expectHvmemError(
      () => foreignWalk('stage2', 0x4100_0000n, 0x8002_3559n, 300),
      'input',
      '--vmid 300 needs 16-bit VMIDs, but VTCR_EL2 0x80023559 has VS (bit 19) clear; pass a VMID up to 255 or set VS',
    )
    expect(foreignWalk('stage2', 0x4100_0000n, 0x800a_3559n, 300).registers[0]!.value).toBe(0x012c_0000_4100_0000n)
    expectHvmemError(() => foreignWalk('stage1', 0x4100_0000n, undefined, 1), 'input', '--vmid applies to stage 2 only')
  })
})

describe('walks with other start levels', () => {
  const L0 = 0x4200_0000n
  const L1 = 0x4200_1000n
  const L2 = 0x4200_2000n
  const NORMAL_BLOCK = 0x7fdn

  it('walks a 48-bit stage-2 IPA from level 0 (T0SZ 16, SL0 2)', () => {
    const machine = defaultMachine()
    const m = machine.memory
    // IPA 0x100_4000_0000 (L0[2], L1[1]) -> 1 GiB block at 0x4000_0000
    m.writeU64(L0 + 8n * 2n, tableDescriptor(L1))
    m.writeU64(L1 + 8n * 1n, 0x4000_0000n | NORMAL_BLOCK)
    const walk = stage2Walk(0x8002_3590n)
    const t = translate(m, STAGE2, L0, 0x100_4000_1234n, {}, walk)
    expect(t.steps.map((s) => [s.level, s.table, s.index, s.kind])).toEqual([
      [0, L0, 2, 'table'],
      [1, L1, 1, 'block'],
    ])
    expect(t.output?.address).toBe(0x4000_1234n)
    expect(t.par).toBe(0xff00_0000_4000_1b80n)
    // with hvmem's default walk the same IPA is out of range
    expect(translate(m, STAGE2, L0, 0x100_4000_1234n).fault?.reason).toBe('the address is outside the 39-bit input address space (T0SZ 25)')
    // and the walker lists the same tree from level 0
    const entries = walkEntries(m, STAGE2, L0, stage2Geometry({granule: 4096, inputBits: Number(walk.inputBits), startLevel: walk.startLevel}))
    expect(entries.map((e) => [e.level, e.index, e.ipa, e.size])).toEqual([
      [0, 2, 0x100_0000_0000n, 1n << 39n],
      [1, 1, 0x100_4000_0000n, 1n << 30n],
    ])
    const out = translate(m, STAGE2, L0, 1n << 48n, {}, walk)
    expect(out.fault).toMatchObject({kind: 'translation', level: 0, reason: 'the address is outside the 48-bit input address space (T0SZ 16)'})
  })

  it('indexes two concatenated level-1 tables for a 40-bit IPA (T0SZ 24, SL0 1)', () => {
    const machine = defaultMachine()
    const m = machine.memory
    const root = 0x4200_2000n // 8 KiB aligned
    m.writeU64(root + 8n * 513n, 0x4000_0000n | NORMAL_BLOCK) // IPA 0x80_4000_0000 -> the second page, entry 1
    const t = translate(m, STAGE2, root, 0x80_4000_0010n, {write: true}, stage2Walk(vtcr(24, 1)))
    expect(t.steps).toEqual([{level: 1, table: root, index: 513, descriptor: 0x4000_07fdn, kind: 'block'}])
    expect(t.output?.address).toBe(0x4000_0010n)
  })

  it('starts a stage-1 walk at level 2 for a 30-bit VA (TCR_EL2 T0SZ 34)', () => {
    const machine = defaultMachine()
    const m = machine.memory
    m.writeU64(L2 + 8n * 3n, 0x4060_0000n | 0x405n) // VA 0x60_0000 -> 2 MiB at 0x4060_0000, Normal WB RW
    const t = translate(m, STAGE1, L2, 0x60_0abcn, {}, stage1Walk(tcr(34)))
    expect(t.steps.map((s) => [s.level, s.index])).toEqual([[2, 3]])
    expect(t.output?.address).toBe(0x4060_0abcn)
    expect(translate(m, STAGE1, L2, 0x4000_0000n, {}, stage1Walk(tcr(34))).fault?.reason).toBe('the address is outside the 30-bit input address space (T0SZ 34)')
  })

  it('applies PS: an output address at or above 2^32 is an address-size fault with PS 0', () => {
    const machine = defaultMachine()
    const m = machine.memory
    m.writeU64(L1 + 8n * 0n, 0x1_0000_0000n | NORMAL_BLOCK)
    const t = translate(m, STAGE2, L1, 0x10n, {}, stage2Walk(0x8000_3559n))
    expect(t.fault).toMatchObject({kind: 'address-size', level: 1, reason: 'the output address 0x100000000 is above the 32-bit PA limit'})
    expect(translate(m, STAGE2, L1, 0x10n).output?.address).toBe(0x1_0000_0010n)
  })

  it("gives exactly the default walk's result for hvmem's own VTCR (fast-check)", () => {
    const machine = defaultMachine()
    const mapper = machine.ensureMapper().mapper
    mapper.mapRegion(0x4000_0000n, 0x4000_0000n, 'normal')
    mapper.mapRegion(0x0900_0000n, 0x20_0000n, 'device')
    mapper.mapRegion(0x8000_1000n, 0x3000n, 'readonly')
    const explicit = stage2Walk(0x8002_3559n)
    fc.assert(
      fc.property(fc.bigInt({min: 0n, max: (1n << 40n) - 1n}), fc.boolean(), (input, write) => {
        expect(translate(machine.memory, mapper.regime, mapper.root, input, {write}, explicit)).toEqual(translate(machine.memory, mapper.regime, mapper.root, input, {write}))
      }),
    )
  })
})
