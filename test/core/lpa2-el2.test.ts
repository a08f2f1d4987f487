/**
 * FEAT_LPA2 at stage 2 (VTCR_EL2.DS, SL2) and in the EL2 stage-1 regime (TCR_EL2.DS): the geometries
 * the registers give, the refusals, and walks with exact descriptors and PAR_EL1 values: 52-bit
 * outputs (bits 51:50 in descriptor bits 9:8, shareability from SH0), level -1 roots and their fault
 * codes, level-0 blocks, address-size faults above the PS, and TTBR bits 5:2 as table address bits
 * 51:48. test/conformance/lpa2-stage2.test.ts runs stage-2 walks of these kinds on QEMU.
 */
import {describe, expect, it} from 'vitest'

import {foreignWalk, stage1Walk, stage2Walk} from '../../src/core/regime-config.js'
import {translate} from '../../src/core/translate.js'
import {defaultMachine, expectHvmemError} from './helpers.js'

const DS = 1n << 32n
const SL2 = 1n << 33n
/** 4K, T0SZ 12 (52-bit IPA), SL0 0, PS 52, SH0 inner, RES1 31, with DS and SL2: a level -1 root */
const VTCR_52 = 0x8006_350cn | DS | SL2
/** with DS, a leaf's address field: bits 49:12 in place, 51:50 in bits 9:8 */
const ds = (oa: bigint): bigint => (oa & 0x0003_ffff_ffff_f000n) | (((oa >> 50n) & 3n) << 8n)
const S2_RW = 0x4ffn & ~0x300n // MemAttr WB, S2AP RW, AF, page (no SH: address bits)

describe('VTCR_EL2.DS and SL2', () => {
  it.each([
    ['4K, 52-bit, SL2: level -1, 16 root entries', VTCR_52, {granule: 4096, inputBits: 52, paBits: 52, startLevel: -1, rootEntries: 16, ds: true}],
    ['4K, 52-bit from level 0 (SL0 2): 16 concatenated tables', 0x8006_358cn | DS, {granule: 4096, inputBits: 52, paBits: 52, startLevel: 0, rootEntries: 8192, ds: true}],
    ['16K, 52-bit, SL0 3: level 0, 32 root entries', 0x8006_b5ccn | DS, {granule: 16384, inputBits: 52, paBits: 52, startLevel: 0, rootEntries: 32, ds: true}],
    ['4K, 39-bit, DS: 52-bit outputs for an ordinary walk', 0x8006_3559n | DS, {granule: 4096, inputBits: 39, paBits: 52, startLevel: 1, rootEntries: 512, ds: true}],
    ['64K ignores DS: 48 bits', 0x8006_7590n | DS, {granule: 65536, inputBits: 48, paBits: 48, startLevel: 1, rootEntries: 64, ds: false}],
  ])('%s', (_what, vtcr, expected) => {
    const g = stage2Walk(vtcr)
    expect({granule: g.granule, inputBits: g.inputBits, paBits: g.paBits, startLevel: g.startLevel, rootEntries: g.rootEntries, ds: g.ds}).toEqual(expected)
  })

  it.each([
    ['SL2 without DS', 0x8002_3559n | SL2, 'VTCR_EL2 0x280023559: SL2 (bit 33) is for the 4K granule with DS (bit 32) set, for a level -1 start'],
    ['SL2 with the 16K granule', 0x8006_b5ccn | DS | SL2, 'VTCR_EL2 0x38006b5cc: SL2 (bit 33) is for the 4K granule with DS (bit 32) set, for a level -1 start'],
    ['SL2 with SL0 1', 0x8006_354cn | DS | SL2, 'VTCR_EL2 0x38006354c: SL2 1 with SL0 1 is reserved; a level -1 start is SL2 1 with SL0 0'],
    ['a 16K level-0 start without DS', 0x8005_b5d1n, 'VTCR_EL2 0x8005b5d1: SL0 3 is reserved for the 16K granule (a level-0 start needs FEAT_LPA2 (DS, bit 32)); use SL0 0..2'],
    ['52-bit inputs without DS', 0x8006_350cn, 'VTCR_EL2 0x8006350c: T0SZ 12 (52-bit inputs) is out of range; T0SZ must be 16..39 (48- to 25-bit inputs) without FEAT_LPA2 (DS) or FEAT_TTST'],
    [
      'a level -1 start for a 48-bit IPA',
      0x8006_3510n | DS | SL2,
      'VTCR_EL2 0x380063510: SL2 1, SL0 0 (start at level -1) is inconsistent with T0SZ 16 (48-bit IPA): a level--1 start with the 4K granule needs a 49- to 52-bit input',
    ],
  ])('refuses %s', (_what, vtcr, message) => {
    expectHvmemError(() => stage2Walk(vtcr), 'input', message)
  })
})

describe('a stage-2 walk with DS', () => {
  /** root (level -1) at 0x4100_0000: [13] -> L0 0x4100_1000; L0[0] -> L1 0x4100_2000; L1[0] -> L2 0x4100_3000; L2[0] -> L3 0x4100_4000 */
  function machine() {
    const m = defaultMachine()
    const mem = m.memory
    mem.writeU64(0x4100_0000n + 8n * 13n, 0x4100_1003n)
    mem.writeU64(0x4100_1000n, 0x4100_2003n)
    mem.writeU64(0x4100_2000n, 0x4100_3003n)
    mem.writeU64(0x4100_3000n, 0x4100_4003n)
    mem.writeU64(0x4100_4000n, ds(0xd_1234_5678_9000n) | S2_RW | 3n) // a page at PA 0xd_1234_5678_9000
    mem.writeU64(0x4100_1008n, ds(0xe_0080_0000_0000n) | (S2_RW & ~2n) | 1n) // L0[1]: a 512G block
    mem.writeU64(0x4100_0000n + 8n * 14n, ds(0x1_0000_0000_0000n) | 1n) // root[14]: a block at level -1, reserved
    return m
  }
  const w = foreignWalk('stage2', 0x4100_0000n, VTCR_52)
  const at = (ipa: bigint, write = false) => translate(machine().memory, w.decoder, w.root, ipa, {write}, w.geometry)

  it('walks from level -1 to a page above 2^50: bits 51:50 from descriptor bits 9:8, SH from VTCR_EL2.SH0', () => {
    const t = at(0xd_0000_0000_0abcn)
    expect(t.steps.map((s) => [s.level, s.index])).toEqual([
      [-1, 13],
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 0],
    ])
    expect(t.output).toMatchObject({address: 0xd_1234_5678_9abcn, level: 3, sh: 3, shareability: 'IS'})
    expect(t.par).toBe(0xff0d_1234_5678_9b80n)
  })

  it('takes a 512G block at level 0', () => {
    const t = at(0xd_0080_1234_5678n)
    expect(t.output).toMatchObject({address: 0xe_0080_1234_5678n, level: 0, size: 1n << 39n})
    expect(t.par).toBe(0xff0e_0080_1234_5b80n)
  })

  it("reports level -1's own fault codes: translation 0x2b (PAR_EL1 0xa57), a block there reserved", () => {
    const invalid = at(0x3_0000_0000_0000n)
    expect(invalid.fault).toMatchObject({kind: 'translation', level: -1, stage: 2, fsc: 0x2b})
    expect(invalid.par).toBe(0xa57n)
    expect(at(0xe_0000_0000_0000n).par).toBe(0xa57n)
  })

  it('faults an output or table address above the PS with an address-size fault at its level', () => {
    const m = defaultMachine()
    const mem = m.memory
    // 4K, 39-bit IPA from level 1, PS 48, DS
    const w48 = foreignWalk('stage2', 0x4100_0000n, 0x8005_3559n | DS)
    mem.writeU64(0x4100_0000n, ds(0x1_0000_4000_0000n) | (S2_RW & ~2n) | 1n) // L1[0]: a 1G block at 2^48 + 1G
    mem.writeU64(0x4100_0008n, ds(0x4_0000_4100_1000n) | 3n) // L1[1]: a table above 2^48
    expect(translate(mem, w48.decoder, w48.root, 0x10n, {}, w48.geometry).par).toBe(0xa03n) // address size, level 1 (the block)
    expect(translate(mem, w48.decoder, w48.root, 0x4000_0010n, {}, w48.geometry).par).toBe(0xa03n) // address size, level 1 (the table descriptor)
  })

  it('reads VTTBR_EL2 bits 5:2 as table address bits 51:48 with a 52-bit PA', () => {
    expect(foreignWalk('stage2', 0x4100_0000n | (0x3n << 2n), VTCR_52).root).toBe(0x3_0000_4100_0000n)
    // with a 48-bit PA they are not address bits (and must be 0 by alignment)
    expectHvmemError(() => foreignWalk('stage2', 0x4100_0004n, 0x8005_3559n | DS), 'input', 'is not a valid root')
  })
})

describe('TCR_EL2.DS: the EL2 stage-1 regime', () => {
  // 4K, T0SZ 12, PS 52, SH0 outer, RES1 23 and 31, DS: a level -1 root of 16 entries
  const TCR = 0x8086_250cn | DS

  it('walks 52-bit VAs from level -1, outputs above 2^50, SH from TCR_EL2.SH0', () => {
    expect(stage1Walk(TCR)).toMatchObject({granule: 4096, inputBits: 52, paBits: 52, startLevel: -1, ds: true})
    const m = defaultMachine()
    const mem = m.memory
    mem.writeU64(0x4100_0000n + 8n * 15n, 0x4100_1003n) // root[15] -> L0
    mem.writeU64(0x4100_1000n + 8n * 511n, ds(0x8_0000_0000_0000n) | 0x405n) // L0[511]: a 512G block, AttrIndx 1 (Normal WB), AF
    const w = foreignWalk('stage1', 0x4100_0000n, TCR)
    const t = translate(mem, w.decoder, w.root, 0xf_ff80_0000_1234n, {}, w.geometry)
    expect(t.output).toMatchObject({address: 0x8_0000_0000_1234n, level: 0, sh: 2, shareability: 'OS', memType: 'Normal-WB'})
    expect(t.par).toBe(0xff08_0000_0000_1b00n)
    // an invalid level -1 entry: a stage-1 translation fault at level -1
    expect(translate(mem, w.decoder, w.root, 0x1234n, {}, w.geometry).par).toBe(0x857n)
  })

  it('keeps the 48-bit limits without DS', () => {
    expectHvmemError(() => stage1Walk(0x8086_250cn), 'input', 'T0SZ 12 (52-bit inputs) is out of range')
  })
})
