/**
 * Two-stage translation (core/two-stage.ts): the stage-1 and stage-2 attribute combining rules of the
 * Arm ARM (HCR_EL2.FWB clear) with exact MAIR bytes and shareabilities, and whole walks with exact
 * descriptors and PAR_EL1 values: success, a stage-1 fault, stage-2 faults on the output IPA and on
 * stage-1 table fetches (S1PTW), HCR_EL2.PTW and stage-2 XN. test/conformance/two-stage.test.ts runs
 * the same kinds of tables on QEMU.
 */
import {describe, expect, it} from 'vitest'

import type {LeafFields} from '../../src/core/descriptor.js'
import {el1Walk} from '../../src/core/el1.js'
import {foreignWalk} from '../../src/core/regime-config.js'
import {STAGE2} from '../../src/core/stage2.js'
import {combineAttributes, stage2Executable, stage2Mair, translateTwoStage} from '../../src/core/two-stage.js'
import {defaultMachine} from './helpers.js'

const s1Leaf = (mairAttr: number, sh: number): LeafFields => ({
  outputAddress: 0n,
  memType: '',
  access: 'RW',
  sh,
  shareability: 'NS',
  af: true,
  executable: true,
  contiguous: false,
  software: 0,
  mairAttr,
})
const s2Leaf = (memAttr: number, sh: number): LeafFields => STAGE2.decode(BigInt(0x403 | (memAttr << 2) | (3 << 6) | (sh << 8)), 3).leaf!

describe('stage-1 and stage-2 attribute combining (FWB clear)', () => {
  it('reads stage-2 MemAttr as a MAIR byte, WT and WB with read and write allocate', () => {
    expect([0x0, 0x1, 0x2, 0x3, 0x5, 0xa, 0xf, 0xd, 0x7, 0xc].map(stage2Mair)).toEqual([0x00, 0x04, 0x08, 0x0c, 0x44, 0xbb, 0xff, 0xf4, 0x4f, 0xf3])
  })

  // [what, stage-1 MAIR byte, stage-1 SH, stage-2 MemAttr, stage-2 SH, combined MAIR byte, PAR SH]
  const cases: Array<[string, number, number, number, number, number, number]> = [
    ['WB and WB, inner shareable', 0xff, 3, 0xf, 3, 0xff, 3],
    ['WB and WB, non-shareable at both', 0xff, 0, 0xf, 0, 0xff, 0],
    ['inner at stage 1, outer at stage 2: outer', 0xff, 3, 0xf, 2, 0xff, 2],
    ['non-shareable at stage 1, inner at stage 2: inner', 0xff, 0, 0xf, 3, 0xff, 3],
    ["stage-2 write-through wins over WB, the allocation hints stage 1's", 0xff, 3, 0xa, 3, 0xbb, 3],
    ["WB transient at stage 1 and stage-2 write-through: WT with stage 1's hints", 0x77, 3, 0xa, 3, 0xbb, 3],
    ["stage-1 write-through over stage-2 WB stays stage 1's", 0xaa, 3, 0xf, 3, 0xaa, 3],
    ['stage-2 Non-cacheable wins, and NC is outer shareable', 0xff, 0, 0x5, 0, 0x44, 2],
    ['stage-1 Non-cacheable wins', 0x44, 3, 0xf, 3, 0x44, 2],
    ['inner and outer combine apart: outer NC inner WB with stage-2 WT', 0x4f, 3, 0xa, 3, 0x4b, 3],
    ['stage-2 outer WB inner NC', 0xff, 3, 0xd, 3, 0xf4, 3],
    ["a reserved stage-2 inner 00 leaves stage 1's inner", 0xff, 3, 0xc, 3, 0xff, 3],
    ['Tagged stays Tagged over WB', 0xf0, 3, 0xf, 3, 0xf0, 3],
    ['Tagged over NC is NC', 0xf0, 3, 0x5, 3, 0x44, 2],
    ["stage-1 Device over Normal: stage 1's type, outer shareable", 0x00, 0, 0xf, 3, 0x00, 2],
    ["stage-2 Device over Normal NC: stage 2's type", 0x44, 3, 0x3, 3, 0x0c, 2],
    ['stage-2 Device nGRE over Normal WB', 0xff, 3, 0x2, 0, 0x08, 2],
    ['Device at both: the stricter, nGnRE over GRE', 0x0c, 3, 0x1, 3, 0x04, 2],
    ['Device at both: nGnRnE over nGRE', 0x08, 3, 0x0, 3, 0x00, 2],
  ]
  it.each(cases)('%s', (_what, a1, sh1, m2, sh2, attr, sh) => {
    const c = combineAttributes(s1Leaf(a1, sh1), s2Leaf(m2, sh2))
    expect({attr: c.attr, sh: c.sh}).toEqual({attr, sh})
  })

  it('reads stage-2 XN[1:0] per exception level (FEAT_XNX)', () => {
    const leaf = (xn: number): LeafFields => STAGE2.decode(0x7ffn | (BigInt(xn) << 53n), 3).leaf!
    expect([0, 1, 2, 3].map((xn) => [stage2Executable(leaf(xn), false), stage2Executable(leaf(xn), true)])).toEqual([
      [true, true],
      [false, true],
      [false, false],
      [true, false],
    ])
  })
})

/**
 * Stage 1 (4K, 39-bit, TTBR0_EL1 at IPA 0x8000_0000, Linux's MAIR_EL1): L1[0] -> IPA 0x8000_1000 (L2),
 * L2[0] -> IPA 0x8000_2000 (L3), L3[i] a page for VA i * 4K at IPA 0x1_0000_0000 + i * 4K.
 * Stage 2 (4K, 39-bit IPA, level-1 root at PA 0x4100_0000): the stage-1 tables at IPA 0x8000_x000
 * -> PA 0x4200_x000, the pages' IPAs -> PA 0x4800_0000 + i * 4K, each with the case's attributes.
 */
const VTCR = 0x8002_3559n
const TCR = 0x2_8019_0019n
const MAIR = 0x0000_00f0_ff44_0400n
const S2_NORMAL = 0x7ffn
/** stage-1 page: AttrIndx 3 (Normal WB), SH inner, AF, AP 01 (EL1 and EL0 RW) */
const S1_PAGE = 0x74fn

function build(pages: Array<{s1?: bigint; s2?: bigint}>, tablePages: {l2?: bigint; l3?: bigint} = {}) {
  const machine = defaultMachine()
  const m = machine.memory
  // stage 2: L1 at 0x4100_0000; L1[2] (IPA 0x8000_0000) -> L2 0x4100_1000 -> L3 0x4100_2000; L1[4] (IPA 0x1_0000_0000) -> L2 0x4100_3000 -> L3 0x4100_4000
  m.writeU64(0x4100_0000n + 8n * 2n, 0x4100_1003n)
  m.writeU64(0x4100_1000n, 0x4100_2003n)
  m.writeU64(0x4100_0000n + 8n * 4n, 0x4100_3003n)
  m.writeU64(0x4100_3000n, 0x4100_4003n)
  const s2Tables = [S2_NORMAL, tablePages.l2 ?? S2_NORMAL, tablePages.l3 ?? S2_NORMAL]
  s2Tables.forEach((attrs, i) => {
    if (attrs !== 0n) m.writeU64(0x4100_2000n + 8n * BigInt(i), 0x4200_0000n + 0x1000n * BigInt(i) + attrs)
  })
  // stage 1, at PA 0x4200_0000.. (IPA 0x8000_0000..)
  m.writeU64(0x4200_0000n, 0x8000_1003n)
  m.writeU64(0x4200_1000n, 0x8000_2003n)
  pages.forEach((p, i) => {
    const s1 = p.s1 ?? S1_PAGE
    if (s1 !== 0n) m.writeU64(0x4200_2000n + 8n * BigInt(i), 0x1_0000_0000n + 0x1000n * BigInt(i) + s1)
    const s2 = p.s2 ?? S2_NORMAL
    if (s2 !== 0n) m.writeU64(0x4100_4000n + 8n * BigInt(i), 0x4800_0000n + 0x1000n * BigInt(i) + s2)
  })
  const walk = el1Walk(TCR, MAIR, 0x8000_0000n)
  const s2 = foreignWalk('stage2', 0x4100_0000n, VTCR)
  return {machine, walk, s2: {regime: s2.decoder, root: s2.root, geometry: s2.geometry}}
}

describe('translateTwoStage', () => {
  it('translates through both stages: the PA, both walks, the combined type and permissions', () => {
    const {machine, walk, s2} = build([{}, {s2: (0x7ffn & ~0x3cn) | (0x5n << 2n)}])
    const t = translateTwoStage(machine.memory, walk, s2, 0x234n)
    expect(t.fault).toBeUndefined()
    expect(t.steps.map((s) => [s.level, s.table, s.descriptor])).toEqual([
      [1, 0x8000_0000n, 0x8000_1003n],
      [2, 0x8000_1000n, 0x8000_2003n],
      [3, 0x8000_2000n, 0x1_0000_074fn],
    ])
    expect(t.fetches.map((f) => [f.level, f.ipa, f.stage2.output?.address])).toEqual([
      [1, 0x8000_0000n, 0x4200_0000n],
      [2, 0x8000_1000n, 0x4200_1000n],
      [3, 0x8000_2000n, 0x4200_2000n],
    ])
    expect(t.stage1.output?.address).toBe(0x1_0000_0234n)
    expect(t.stage2?.steps.map((s) => s.descriptor)).toEqual([0x4100_3003n, 0x4100_4003n, 0x4800_07ffn])
    expect(t.output).toMatchObject({address: 0x4800_0234n, attr: 0xff, sh: 3, memType: 'Normal-WB', read: true, write: true, execute: false})
    expect(t.par).toBe(0xff00_0000_4800_0b80n)
    // the second page: stage-2 Normal NC, so NC and outer shareable
    expect(translateTwoStage(machine.memory, walk, s2, 0x1010n, {write: true, el0: true}).par).toBe(0x4400_0000_4800_1b00n)
  })

  it('reports a stage-1 fault as stage 1 alone would', () => {
    const {machine, walk, s2} = build([{s1: 0n}, {s1: S1_PAGE & ~0x40n}])
    expect(translateTwoStage(machine.memory, walk, s2, 0x0n).par).toBe(0x80fn) // translation, level 3
    const t = translateTwoStage(machine.memory, walk, s2, 0x1000n, {el0: true})
    expect(t.fault).toMatchObject({kind: 'permission', stage: 1, level: 3})
    expect(t.par).toBe(0x81fn)
  })

  it('reports a stage-2 fault on the output IPA: stage 2, its level, PTW clear', () => {
    const {machine, walk, s2} = build([{s2: 0n}, {s2: (S2_NORMAL & ~0xc0n) | 0x80n}, {s2: S2_NORMAL & ~0x400n}, {s2: (S2_NORMAL & ~0xc0n) | 0x40n}])
    const unmapped = translateTwoStage(machine.memory, walk, s2, 0x0n)
    expect(unmapped.fault).toMatchObject({kind: 'translation', stage: 2, level: 3})
    expect(unmapped.fault?.s1ptw).toBeUndefined()
    expect(unmapped.par).toBe(0xa0fn)
    expect(translateTwoStage(machine.memory, walk, s2, 0x1000n).par).toBe(0xa1fn) // write-only at stage 2: a read faults
    expect(translateTwoStage(machine.memory, walk, s2, 0x1000n, {write: true}).par & 1n).toBe(0n)
    expect(translateTwoStage(machine.memory, walk, s2, 0x2000n).par).toBe(0xa17n) // access flag, level 3
    expect(translateTwoStage(machine.memory, walk, s2, 0x3000n, {write: true}).par).toBe(0xa1fn) // read-only at stage 2
  })

  it('reports a stage-2 fault on a stage-1 table fetch with S1PTW: the stage-2 level, PAR_EL1.S and PTW', () => {
    const unmapped = build([{}], {l3: 0n})
    const t = translateTwoStage(unmapped.machine.memory, unmapped.walk, unmapped.s2, 0x10n)
    expect(t.fault).toMatchObject({kind: 'translation', stage: 2, level: 3, s1ptw: true})
    expect(t.fault?.reason).toMatch(/^the stage-1 level-3 table at IPA 0x80002000: /)
    expect(t.steps.length).toBe(2)
    expect(t.fetches.map((f) => f.level)).toEqual([1, 2, 3])
    expect(t.par).toBe(0xb0fn)
    const noRead = build([{}], {l2: (S2_NORMAL & ~0xc0n) | 0x80n})
    expect(translateTwoStage(noRead.machine.memory, noRead.walk, noRead.s2, 0x10n).par).toBe(0xb1fn)
    const noAf = build([{}], {l2: S2_NORMAL & ~0x400n})
    expect(translateTwoStage(noAf.machine.memory, noAf.walk, noAf.s2, 0x10n).par).toBe(0xb17n)
    // read-only at stage 2 is enough for a walk, also for a write access
    const readOnly = build([{}], {l3: (S2_NORMAL & ~0xc0n) | 0x40n})
    expect(translateTwoStage(readOnly.machine.memory, readOnly.walk, readOnly.s2, 0x10n, {write: true}).par & 1n).toBe(0n)
  })

  it('with HCR_EL2.PTW, a stage-1 table in stage-2 Device memory is a stage-2 permission fault on the walk', () => {
    const {machine, walk, s2} = build([{}], {l3: 0x4c7n}) // Device-nGnRE, RW, AF, page
    expect(translateTwoStage(machine.memory, walk, s2, 0x10n).par & 1n).toBe(0n)
    const t = translateTwoStage(machine.memory, walk, s2, 0x10n, {}, {ptw: true})
    expect(t.fault).toMatchObject({kind: 'permission', stage: 2, level: 3, s1ptw: true})
    expect(t.par).toBe(0xb1fn)
  })

  it('checks execution at both stages: stage-2 XN is a stage-2 permission fault', () => {
    const {machine, walk, s2} = build([{s1: 0x70fn}, {s1: 0x70fn, s2: S2_NORMAL | (2n << 53n)}, {s1: 0x70fn, s2: S2_NORMAL | (1n << 53n)}])
    // AP 00: EL1 RW, EL0 none, so EL1-executable
    expect(translateTwoStage(machine.memory, walk, s2, 0x0n, {exec: true}).output?.execute).toBe(true)
    const xn = translateTwoStage(machine.memory, walk, s2, 0x1000n, {exec: true})
    expect(xn.fault).toMatchObject({kind: 'permission', stage: 2, level: 3})
    expect(xn.par).toBe(0xa1fn)
    expect(translateTwoStage(machine.memory, walk, s2, 0x2000n, {exec: true}).fault?.stage).toBe(2) // XN 01: not at EL1
  })
})
