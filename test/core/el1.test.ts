/**
 * Stage 1 of EL1&0 (core/el1.ts, el1-permissions.ts): range selection by bit 55, TBI, EPD, TCR_EL1
 * decoding (TG1's own encoding), and every AP[2:1] / PXN / UXN / table attribute / PAN combination
 * with exact descriptors and PAR_EL1 values. test/conformance/el1.test.ts checks the same kinds of
 * tables against QEMU.
 */
import {describe, expect, it} from 'vitest'

import {type El1Access, el1Walk, tcrEl1, translateEl1} from '../../src/core/el1.js'
import {tableBase} from '../../src/core/table-base.js'
import {defaultMachine, expectHvmemError} from './helpers.js'

/** T0SZ 25, T1SZ 25 (39-bit ranges), TG0 0 (4K), TG1 2 (4K), IPS 2 (40-bit). */
const TCR = 0x2_8019_0019n
const MAIR = 0x0004_ff00n
const LOWER_ROOT = 0x4200_0000n
const UPPER_ROOT = 0x4201_0000n
const UPPER_BASE = 0xffff_ff80_0000_0000n
const PXN = 1n << 53n
const UXN = 1n << 54n
/** a page: AttrIndx 1 (Normal WB), AF, valid; AP added per case */
const PAGE = 0x407n
const AP = [0n, 0x40n, 0x80n, 0xc0n]

/**
 * Lower range: L1[1] -> L2 0x4200_1000, L2[0] -> L3 0x4200_2000, L3[i] a page at 0x4800_0000 + i*4K
 * with the case's descriptor (VA 0x4000_0000 + i*4K). Upper range: L1[0] -> L2 0x4201_1000 carrying
 * `tableAttrs` (bits 62:59), L2[0] -> L3 0x4201_2000, the same pages (VA UPPER_BASE + i*4K).
 */
function machineWith(pages: bigint[], tableAttrs = 0n) {
  const machine = defaultMachine()
  const m = machine.memory
  m.writeU64(LOWER_ROOT + 8n, 0x4200_1003n)
  m.writeU64(0x4200_1000n, 0x4200_2003n)
  m.writeU64(UPPER_ROOT, 0x4201_1003n | (tableAttrs << 59n))
  m.writeU64(0x4201_1000n, 0x4201_2003n)
  pages.forEach((d, i) => {
    m.writeU64(0x4200_2000n + 8n * BigInt(i), 0x4800_0000n + 0x1000n * BigInt(i) + d)
    m.writeU64(0x4201_2000n + 8n * BigInt(i), 0x4800_0000n + 0x1000n * BigInt(i) + d)
  })
  return machine
}

const ok = (pa: bigint) => 0xff00_0000_0000_0a00n | pa
const PERMISSION_L3 = 0x81fn
const TRANSLATION_L0 = 0x809n

describe('EL1&0 permissions of a page (AP[2:1], PXN, UXN, PAN)', () => {
  // [what, bits added to PAGE (-0x400: AF cleared), access, expected PAR]
  const cases: Array<[string, bigint, El1Access, bigint]> = [
    ['AP 00, EL1 read', AP[0]!, {}, ok(0x4800_0000n)],
    ['AP 00, EL1 write', AP[0]!, {write: true}, ok(0x4800_0000n)],
    ['AP 00, EL1 execute', AP[0]!, {exec: true}, ok(0x4800_0000n)],
    ['AP 00, EL0 read', AP[0]!, {el0: true}, PERMISSION_L3],
    ['AP 00, EL1 read with PAN (EL0 has no access)', AP[0]!, {pan: true}, ok(0x4800_0000n)],
    ['AP 01, EL0 read', AP[1]!, {el0: true}, ok(0x4800_0000n)],
    ['AP 01, EL0 write', AP[1]!, {el0: true, write: true}, ok(0x4800_0000n)],
    ['AP 01, EL0 execute', AP[1]!, {el0: true, exec: true}, ok(0x4800_0000n)],
    ['AP 01, EL1 execute (EL0-writable)', AP[1]!, {exec: true}, PERMISSION_L3],
    ['AP 01, EL1 read with PAN', AP[1]!, {pan: true}, PERMISSION_L3],
    ['AP 10, EL1 read', AP[2]!, {}, ok(0x4800_0000n)],
    ['AP 10, EL1 write', AP[2]!, {write: true}, PERMISSION_L3],
    ['AP 10, EL0 read', AP[2]!, {el0: true}, PERMISSION_L3],
    ['AP 11, EL1 execute (EL0 read-only)', AP[3]!, {exec: true}, ok(0x4800_0000n)],
    ['AP 11, EL0 read', AP[3]!, {el0: true}, ok(0x4800_0000n)],
    ['AP 11, EL0 write', AP[3]!, {el0: true, write: true}, PERMISSION_L3],
    ['AP 11, EL1 read with PAN', AP[3]!, {pan: true}, PERMISSION_L3],
    ['AP 00 PXN, EL1 execute', AP[0]! | PXN, {exec: true}, PERMISSION_L3],
    ['AP 01 PXN, EL0 execute', AP[1]! | PXN, {el0: true, exec: true}, ok(0x4800_0000n)],
    ['AP 01 UXN, EL0 execute', AP[1]! | UXN, {el0: true, exec: true}, PERMISSION_L3],
    ['AP 01 UXN, EL0 read', AP[1]! | UXN, {el0: true}, ok(0x4800_0000n)],
    ["AP 00 UXN, EL1 execute (UXN is not EL1's)", AP[0]! | UXN, {exec: true}, ok(0x4800_0000n)],
    ['AF clear', -0x400n, {}, 0x817n],
  ]
  it.each(cases)('%s (lower and upper range)', (_what, bits, access, par) => {
    const leaf = bits < 0n ? PAGE + bits : PAGE | bits
    const machine = machineWith([leaf])
    const walk = el1Walk(TCR, MAIR, LOWER_ROOT, UPPER_ROOT)
    const lower = translateEl1(machine.memory, walk, 0x4000_0000n, access)
    expect(lower.par).toBe(par)
    expect(lower.range.ttbr).toBe('TTBR0_EL1')
    expect(lower.steps.map((s) => s.descriptor)).toEqual([0x4200_1003n, 0x4200_2003n, 0x4800_0000n | leaf])
    const upper = translateEl1(machine.memory, walk, UPPER_BASE, access)
    expect(upper.par).toBe(par)
    expect(upper.range.ttbr).toBe('TTBR1_EL1')
    expect(upper.input).toBe(UPPER_BASE)
  })
})

describe('hierarchical table attributes (APTable, PXNTable, UXNTable; HPD1)', () => {
  const HPD1 = 1n << 42n
  // [what, table bits 62:59, leaf AP, access, PAR, PAR with HPD1]
  const cases: Array<[string, bigint, bigint, El1Access, bigint, bigint]> = [
    ['APTable 01: no EL0 access', 0b0100n, AP[1]!, {el0: true}, PERMISSION_L3, ok(0x4800_0000n)],
    ['APTable 01: EL1 executes what EL0 could have written', 0b0100n, AP[1]!, {exec: true}, ok(0x4800_0000n), PERMISSION_L3],
    ['APTable 10: read-only', 0b1000n, AP[0]!, {write: true}, PERMISSION_L3, ok(0x4800_0000n)],
    ['APTable 10: EL0 read stays', 0b1000n, AP[1]!, {el0: true}, ok(0x4800_0000n), ok(0x4800_0000n)],
    ['PXNTable', 0b0001n, AP[0]!, {exec: true}, PERMISSION_L3, ok(0x4800_0000n)],
    ['UXNTable', 0b0010n, AP[1]!, {el0: true, exec: true}, PERMISSION_L3, ok(0x4800_0000n)],
    ['UXNTable leaves EL1 alone', 0b0010n, AP[0]!, {exec: true}, ok(0x4800_0000n), ok(0x4800_0000n)],
  ]
  it.each(cases)('%s', (_what, table, ap, access, par, parHpd) => {
    const machine = machineWith([PAGE | ap], table)
    expect(translateEl1(machine.memory, el1Walk(TCR, MAIR, LOWER_ROOT, UPPER_ROOT), UPPER_BASE, access).par).toBe(par)
    expect(translateEl1(machine.memory, el1Walk(TCR | HPD1, MAIR, LOWER_ROOT, UPPER_ROOT), UPPER_BASE, access).par).toBe(parHpd)
    // the lower range's tables carry no attributes
    expect(translateEl1(machine.memory, el1Walk(TCR, MAIR, LOWER_ROOT, UPPER_ROOT), 0x4000_0000n, access).par).toBe(parHpd)
  })
})

describe('range selection, TBI and EPD', () => {
  const TBI0 = 1n << 37n
  const TBI1 = 1n << 38n
  const EPD0 = 1n << 7n
  const EPD1 = 1n << 23n
  // [what, TCR bits added, VA, PAR]
  const cases: Array<[string, bigint, bigint, bigint]> = [
    ['lower range', 0n, 0x4000_1234n, ok(0x4800_1000n)],
    ['upper range, offset kept', 0n, UPPER_BASE + 0x1234n, ok(0x4800_1000n)],
    ['between the ranges (bit 55 clear)', 0n, 0x0000_0080_0000_0000n, TRANSLATION_L0],
    ['between the ranges (bit 55 set)', 0n, 0xff7f_ff80_0000_0000n, TRANSLATION_L0],
    ['a tag without TBI0', 0n, 0x2a00_0000_4000_0000n, TRANSLATION_L0],
    ['a tag with TBI0', TBI0, 0x2a00_0000_4000_0000n, ok(0x4800_0000n)],
    ['an upper tag with TBI1', TBI1, 0x2aff_ff80_0000_1000n, ok(0x4800_1000n)],
    ['an upper tag with TBI0 only', TBI0, 0x2aff_ff80_0000_1000n, TRANSLATION_L0],
    ['EPD0', EPD0, 0x4000_0000n, TRANSLATION_L0],
    ['EPD1', EPD1, UPPER_BASE, TRANSLATION_L0],
    ['EPD1 leaves the lower range', EPD1, 0x4000_0000n, ok(0x4800_0000n)],
  ]
  it.each(cases)('%s', (_what, bits, va, par) => {
    const machine = machineWith([PAGE, PAGE])
    const t = translateEl1(machine.memory, el1Walk(TCR | bits, MAIR, LOWER_ROOT, UPPER_ROOT), va)
    expect(t.par).toBe(par)
  })

  it('an upper range of 48 bits (T1SZ 16, level-0 root) next to a 39-bit lower range', () => {
    const machine = defaultMachine()
    const tcr = 0x2_8010_0019n
    machine.memory.writeU64(UPPER_ROOT + 8n * 511n, 0x4201_1003n) // L0[511]
    machine.memory.writeU64(0x4201_1000n + 8n * 511n, 0x4000_0000n | 0x405n) // L1[511]: a 1 GiB block
    const t = translateEl1(machine.memory, el1Walk(tcr, MAIR, LOWER_ROOT, UPPER_ROOT), 0xffff_ffff_c000_5678n)
    expect(t.steps.map((s) => [s.level, s.index])).toEqual([
      [0, 511],
      [1, 511],
    ])
    expect(t.par).toBe(ok(0x4000_5000n))
  })

  it.each([
    // [TCR bits, ASID]: A1 (bit 22) takes TTBR1_EL1's; AS (bit 36) 0 keeps 8 bits
    [0n, 0x34],
    [1n << 36n, 0x1234],
    [1n << 22n, 0x56],
    [(1n << 22n) | (1n << 36n), 0x3456],
  ])('the current ASID: TCR_EL1 %s gives %s', (bits, asid) => {
    expect(el1Walk(TCR | bits, MAIR, 0x1234_0000_4200_0000n, 0x3456_0000_4201_0000n).asid).toBe(asid)
  })

  it("a nG leaf is reported, with the TTBR's ASID", () => {
    const machine = machineWith([PAGE | 0x800n])
    const t = translateEl1(machine.memory, el1Walk(TCR, MAIR, 0x002a_0000_4200_0001n, UPPER_ROOT), 0x4000_0000n)
    expect(t.ng).toBe(true)
    expect(t.range.table).toMatchObject({base: LOWER_ROOT, tag: 42, tagName: 'ASID', cnp: true})
    expect(t.par).toBe(ok(0x4800_0000n))
  })
})

describe('HA and HD (hardware access flag and dirty state, as Linux sets them)', () => {
  const HA = 1n << 39n
  const HD = 1n << 40n
  const DBM = 1n << 51n
  // [what, TCR bits, leaf bits (-0x400: AF cleared), access, PAR]
  const cases: Array<[string, bigint, bigint, El1Access, bigint]> = [
    ['AF clear without HA', 0n, -0x400n, {}, 0x817n],
    ['AF clear with HA', HA, -0x400n, {}, ok(0x4800_0000n)],
    ['AF clear with HA, still a permission fault', HA, -0x400n, {el0: true}, PERMISSION_L3],
    ['DBM read-only page written without HD', 0n, DBM | AP[2]!, {write: true}, PERMISSION_L3],
    ['DBM read-only page written with HD', HD, DBM | AP[2]!, {write: true}, ok(0x4800_0000n)],
    ['DBM EL0 read-only page written by EL0 with HD', HD, DBM | AP[3]!, {write: true, el0: true}, ok(0x4800_0000n)],
    ['no DBM: HD leaves a read-only page alone', HD, AP[2]!, {write: true}, PERMISSION_L3],
  ]
  it.each(cases)('%s', (_what, tcrBits, bits, access, par) => {
    const machine = machineWith([bits < 0n ? PAGE + bits : PAGE | bits])
    const t = translateEl1(machine.memory, el1Walk(TCR | tcrBits, MAIR, LOWER_ROOT, UPPER_ROOT), 0x4000_0000n, access)
    expect(t.par).toBe(par)
    if (t.output !== undefined) expect([t.setsAccessFlag, t.output.el1!.dirty]).toEqual([bits < 0n, (tcrBits & HD) !== 0n && access.write === true])
  })

  it('APTable read-only wins over HD', () => {
    const machine = machineWith([PAGE | DBM | AP[2]!], 0b1000n)
    expect(translateEl1(machine.memory, el1Walk(TCR | HD, MAIR, LOWER_ROOT, UPPER_ROOT), UPPER_BASE, {write: true}).par).toBe(PERMISSION_L3)
  })
})

describe('TCR_EL1 decoding', () => {
  it.each([
    // [TCR_EL1, lower granule/bits/start, upper granule/bits/start]
    [0x2_8019_0019n, [4096, 39, 1], [4096, 39, 1]],
    [0x2_4019_4019n, [65536, 39, 2], [16384, 39, 1]], // TG0 1 (64K), TG1 1 (16K)
    [0x5_c010_8010n, [16384, 48, 0], [65536, 48, 1]], // TG0 2 (16K), TG1 3 (64K), IPS 5 (48-bit)
  ] as const)('%s', (tcr, lower, upper) => {
    const t = tcrEl1(tcr)
    expect([t.lower.geometry!.granule, t.lower.geometry!.inputBits, t.lower.geometry!.startLevel]).toEqual(lower)
    expect([t.upper.geometry!.granule, t.upper.geometry!.inputBits, t.upper.geometry!.startLevel]).toEqual(upper)
  })

  it('a disabled range is not decoded (U-Boot: EPD1 with TG1 and T1SZ 0)', () => {
    const t = tcrEl1(0x2_0080_3519n)
    expect(t.upper.enabled).toBe(false)
    expect(t.lower.geometry!.inputBits).toBe(39)
  })

  it.each([
    [0x2_0019_0019n, 'TG1 0 is reserved'],
    [0x2_8019_c019n, 'TG0 3 is reserved'],
    [0x2_800a_0019n, 'T1SZ 10 (54-bit VAs) is out of range'],
    [0x2_800c_0019n, 'T1SZ 12 (52-bit VAs) is out of range; T1SZ must be 16..39 without FEAT_LPA2 (DS)'],
    [0x0800_0006_8000_000bn, 'T0SZ 11 (53-bit VAs) is out of range; T0SZ must be 12..39 without FEAT_TTST'],
    [0x2_8019_0059n, 'bit 6 is RES0 but set'],
    [0x7_8019_0019n, 'IPS 7 is reserved'],
    [0x2_8019_0019n | (1n << 63n), 'bits 63:62 are RES0 but bit 63 is set'],
  ])('%s is refused: %s', (tcr, message) => {
    expectHvmemError(() => tcrEl1(tcr), 'input', message)
  })

  it('needs a TTBR, aligned', () => {
    expectHvmemError(() => el1Walk(TCR, MAIR), 'input', 'needs TTBR0_EL1, TTBR1_EL1 or both')
    expectHvmemError(() => el1Walk(TCR, MAIR, 0x4200_0800n), 'input', 'TTBR0_EL1 0x42000800: the table address 0x42000800 must be 4K-aligned')
  })

  it('a VA in a range without its TTBR is an error, not a fault', () => {
    expectHvmemError(() => translateEl1(defaultMachine().memory, el1Walk(TCR, MAIR, LOWER_ROOT), UPPER_BASE), 'input', 'whose TTBR1_EL1 was not given')
  })
})

describe('FEAT_LPA2 (TCR_EL1.DS): 52-bit VAs and PAs, level -1, OA bits 51:50 in descriptor bits 9:8', () => {
  const DS = 1n << 59n
  // 4K upper range: T1SZ 12 (a level -1 root of 16 entries), TG1 4K, SH1 inner; IPS 6 (52-bit); T0SZ 25
  const TCR_4K = DS | 0x6_b00c_0019n
  // 16K lower range: T0SZ 12 (a level-0 root of 32 entries), TG0 16K, SH0 outer; EPD1; IPS 6
  const TCR_16K = DS | 0x6_0080_a00cn

  it('4K: a level-0 block (512G) above 2^48 through a level -1 root; SH from TCR_EL1.SH1', () => {
    const machine = defaultMachine()
    machine.memory.writeU64(UPPER_ROOT + 8n * 15n, 0x4201_1003n) // L-1[15]
    machine.memory.writeU64(0x4201_1000n + 8n * 511n, 0x80_0000_0705n) // L0[511]: OA 0xc_0080_0000_0000 (bits 51:50 = 0b11 in 9:8)
    const walk = el1Walk(TCR_4K, MAIR, undefined, UPPER_ROOT)
    expect([walk.upper.geometry!.startLevel, walk.upper.geometry!.rootEntries, walk.upper.base]).toEqual([-1, 16, 0xfff0_0000_0000_0000n])
    const t = translateEl1(machine.memory, walk, 0xffff_ff80_0000_1234n)
    expect(t.steps.map((s) => [s.level, s.index, s.kind])).toEqual([
      [-1, 15, 'table'],
      [0, 511, 'block'],
    ])
    expect(t.output!.address).toBe(0xc_0080_0000_1234n)
    expect(t.par).toBe(0xff0c_0080_0000_1b80n)
  })

  it('4K: a level -1 entry that is not a table is a level -1 translation fault (FSC 0x2b)', () => {
    const machine = defaultMachine()
    machine.memory.writeU64(UPPER_ROOT + 8n * 15n, 0x4000_0401n) // a "block" at level -1: reserved
    const t = translateEl1(machine.memory, el1Walk(TCR_4K, MAIR, undefined, UPPER_ROOT), 0xffff_ff80_0000_1234n)
    expect(t.fault).toMatchObject({kind: 'translation', level: -1, fsc: 0x2b})
    expect(t.par).toBe(0x857n)
  })

  it('16K: a level-1 block (64G) above 2^50; SH from TCR_EL1.SH0', () => {
    const machine = defaultMachine()
    const root = 0x4202_0000n
    machine.memory.writeU64(root + 8n * 17n, 0x4202_4003n) // L0[17] -> L1
    machine.memory.writeU64(0x4202_4000n + 8n * 5n, 0x10_0000_0505n) // L1[5]: OA 0x4_0010_0000_0000 (bits 51:50 = 0b01)
    const walk = el1Walk(TCR_16K, MAIR, root)
    expect([walk.lower.geometry!.startLevel, walk.lower.geometry!.rootEntries]).toEqual([0, 32])
    const t = translateEl1(machine.memory, walk, 0x8_8050_0000_5678n)
    expect(t.output!.address).toBe(0x4_0010_0000_5678n)
    expect(t.par).toBe(0xff04_0010_0000_5b00n)
  })

  it("a table address above 2^50 (bits 9:8), and TTBR bits 5:2 as the root's bits 51:48", () => {
    const walk = el1Walk(TCR_4K, MAIR, undefined, 0x4201_0000n | (0x5n << 2n))
    expect(walk.upper.table!.base).toBe(0x5_0000_4201_0000n)
    const g = walk.upper.geometry!
    expect(g.tableAddress(0x0003_0000_4201_1303n)).toBe(0xf_0000_4201_1000n)
  })

  it('blocks: 4K level 0 and 16K level 1 with DS only', () => {
    expect(el1Walk(TCR_4K, MAIR, undefined, UPPER_ROOT).upper.geometry!.canBlock(0)).toBe(true)
    expect(el1Walk(TCR, MAIR, undefined, UPPER_ROOT).upper.geometry!.canBlock(0)).toBe(false)
    expect(el1Walk(TCR_16K, MAIR, 0x4202_0000n).lower.geometry!.canBlock(1)).toBe(true)
  })
})

describe('table base registers', () => {
  it.each([
    ['TTBR1_EL1', 0x0001_0000_4201_0001n, true, {base: 0x4201_0000n, tag: 1, tagName: 'ASID', cnp: true}],
    ['VTTBR_EL2', 0x0001_0000_7ffe_2000n, true, {base: 0x7ffe_2000n, tag: 1, tagName: 'VMID', cnp: false}],
    ['VTTBR_EL2', 0x00ff_0000_7ffe_2000n, false, {base: 0x7ffe_2000n, tag: 255, tagName: 'VMID', cnp: false}],
  ] as const)('%s %s', (register, value, vmid16, fields) => {
    expect(tableBase(register, value, vmid16)).toMatchObject(fields)
  })

  it('an 8-bit VMID leaves bits 63:56 RES0', () => {
    expectHvmemError(() => tableBase('VTTBR_EL2', 0x0100_0000_7ffe_2000n, false), 'input', 'bits 63:56 are RES0 with 8-bit VMIDs')
  })
})
