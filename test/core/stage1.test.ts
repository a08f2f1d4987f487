/** The stage-1 (EL2, TTBR0_EL2) regime: the plan's encodings, their decoding, MAIR names, and a stage-1 mapper. */
import {describe, expect, it} from 'vitest'

import {type LeafFields, tableDescriptor} from '../../src/core/descriptor.js'
import {IdentityMapper} from '../../src/core/mapper.js'
import {MAIR_EL2, STAGE1, STAGE1_ATTR_BITS, mairAttrAt, mairTypeName} from '../../src/core/stage1.js'
import {translate} from '../../src/core/translate.js'
import {decodeSnapshot, encodeSnapshot} from '../../src/snapshot/format.js'
import {BLOCK, GIB, PAGE, defaultMachine, expectHvmemError, mappedMachine} from './helpers.js'

const P = 0x4800_0000n
const ROOT = 0x4100_0000n

function leafOf(descriptor: bigint, level: number): LeafFields {
  const d = STAGE1.decode(descriptor, level)
  expect(d.leaf).toBeDefined()
  return d.leaf!
}

describe('STAGE1 encodings (the sprint plan numbers)', () => {
  it('is the stage-1 regime with attribute bits 0x704 / 0x0040_0000_0000_0708 / 0x784 (the plan numbers, inner shareable, device execute-never) and MAIR_EL2 0x0004ff00', () => {
    expect(STAGE1.name).toBe('stage1')
    expect(STAGE1.stage).toBe(1)
    expect(STAGE1_ATTR_BITS).toEqual({normal: 0x704n, device: 0x0040_0000_0000_0708n, readonly: 0x784n})
    expect(STAGE1.attrBits).toEqual(STAGE1_ATTR_BITS)
    expect(MAIR_EL2).toBe(0x4ff00n)
  })

  it('2 MiB blocks: normal P|0x705, device P|0x0040_0000_0000_0709, readonly P|0x785', () => {
    expect(STAGE1.leafDescriptor(2, P, 'normal')).toBe(P | 0x705n)
    expect(STAGE1.leafDescriptor(2, P, 'normal')).toBe(0x4800_0705n)
    expect(STAGE1.leafDescriptor(2, P, 'device')).toBe(P | 0x0040_0000_0000_0709n)
    expect(STAGE1.leafDescriptor(2, P, 'readonly')).toBe(P | 0x785n)
  })

  it('1 GiB blocks have bit 1 clear, 4 KiB pages have it set', () => {
    expect(STAGE1.leafDescriptor(1, 0x8000_0000n, 'normal')).toBe(0x8000_0705n)
    expect(STAGE1.leafDescriptor(1, 0x80_0000_0000n, 'device')).toBe(0x0040_0080_0000_0709n)
    expect(STAGE1.leafDescriptor(3, P + PAGE, 'normal')).toBe(0x4800_1707n)
    expect(STAGE1.leafDescriptor(3, P, 'device')).toBe(0x0040_0000_4800_070bn)
    expect(STAGE1.leafDescriptor(3, P, 'readonly')).toBe(0x4800_0787n)
  })

  it('refuses an output address not aligned to the level or above 48 bits', () => {
    expectHvmemError(() => STAGE1.leafDescriptor(2, P + PAGE, 'normal'), 'input', 'output address 0x48001000 is not a 2097152-byte aligned 48-bit address')
    expectHvmemError(() => STAGE1.leafDescriptor(1, P, 'normal'), 'input')
    expectHvmemError(() => STAGE1.leafDescriptor(3, P + 0x10n, 'normal'), 'input')
    expectHvmemError(() => STAGE1.leafDescriptor(2, 1n << 48n, 'normal'), 'input')
  })

  it('attrOf() names the attribute set a leaf carries, at any level, and nothing else', () => {
    expect(STAGE1.attrOf(0x4800_0705n)).toBe('normal')
    expect(STAGE1.attrOf(0x0040_0000_4800_0709n)).toBe('device')
    expect(STAGE1.attrOf(0x4800_0785n)).toBe('readonly')
    expect(STAGE1.attrOf(0x4800_1707n)).toBe('normal')
    expect(STAGE1.attrOf(0x4800_07fdn)).toBeUndefined() // the stage-2 normal encoding
    expect(STAGE1.attrOf(0x4800_0705n | (1n << 54n))).toBeUndefined()
    expect(STAGE1.attrOf(0x4100_1003n)).toBeUndefined()
  })
})

describe('STAGE1.decode()', () => {
  it('normal: AttrIndx 1 -> 0xff Normal-WB, RW, non-shareable, AF, executable', () => {
    const d = STAGE1.decode(0x4800_0405n, 2)
    expect(d).toMatchObject({raw: 0x4800_0405n, level: 2, kind: 'block'})
    expect(d.nextTable).toBeUndefined()
    expect(d.leaf).toEqual({
      outputAddress: P,
      attrIndx: 1,
      mairAttr: 0xff,
      memType: 'Normal-WB',
      ap: 0,
      access: 'RW',
      sh: 0,
      shareability: 'NS',
      af: true,
      executable: true,
      contiguous: false,
      software: 0,
    })
    expect(d.leaf!.memAttr).toBeUndefined()
    expect(d.leaf!.s2ap).toBeUndefined()
  })

  it('device: AttrIndx 2 -> 0x04 Device-nGnRE, RW', () => {
    expect(leafOf(0x4800_0409n, 2)).toEqual({
      outputAddress: P,
      attrIndx: 2,
      mairAttr: 0x04,
      memType: 'Device-nGnRE',
      ap: 0,
      access: 'RW',
      sh: 0,
      shareability: 'NS',
      af: true,
      executable: true,
      contiguous: false,
      software: 0,
    })
  })

  it('readonly: AP[2] (bit 7) set -> RO, still Normal-WB', () => {
    expect(leafOf(0x4800_0485n, 2)).toMatchObject({attrIndx: 1, mairAttr: 0xff, memType: 'Normal-WB', ap: 2, access: 'RO', af: true, executable: true})
  })

  it('AttrIndx 0 and the unused indexes 3..7 select 0x00 (Device-nGnRnE)', () => {
    expect(leafOf(P | 0x401n, 2)).toMatchObject({attrIndx: 0, mairAttr: 0x00, memType: 'Device-nGnRnE'})
    for (let i = 3; i < 8; i++) expect(leafOf(P | 0x401n | BigInt(i << 2), 2)).toMatchObject({attrIndx: i, mairAttr: 0x00, memType: 'Device-nGnRnE'})
  })

  it('SH, AF, XN, contiguous and software bits', () => {
    expect(leafOf(P | 0x705n, 2)).toMatchObject({sh: 3, shareability: 'IS'})
    expect(leafOf(P | 0x605n, 2)).toMatchObject({sh: 2, shareability: 'OS'})
    expect(leafOf(P | 0x505n, 2)).toMatchObject({sh: 1, shareability: 'reserved'})
    expect(leafOf(P | 0x005n, 2)).toMatchObject({af: false})
    expect(leafOf(P | 0x405n | (1n << 54n), 2)).toMatchObject({executable: false})
    expect(leafOf(P | 0x405n | (1n << 52n), 2)).toMatchObject({contiguous: true})
    expect(leafOf(P | 0x405n | (0xfn << 55n), 2)).toMatchObject({software: 15})
  })

  it('kinds: a 1 GiB block, a page, a table, the reserved L3 encoding, invalid', () => {
    expect(STAGE1.decode(0x8000_0405n, 1)).toMatchObject({kind: 'block', leaf: {outputAddress: 0x8000_0000n}})
    expect(STAGE1.decode(0x4800_1407n, 3)).toMatchObject({kind: 'page', leaf: {outputAddress: 0x4800_1000n}})
    expect(STAGE1.decode(tableDescriptor(0x4100_1000n), 1)).toEqual({raw: 0x4100_1003n, level: 1, kind: 'table', nextTable: 0x4100_1000n})
    expect(STAGE1.decode(0x4800_1405n, 3)).toEqual({raw: 0x4800_1405n, level: 3, kind: 'reserved'})
    expect(STAGE1.decode(0x4800_0404n, 2)).toEqual({raw: 0x4800_0404n, level: 2, kind: 'invalid'})
  })
})

describe('mairTypeName() and mairAttrAt()', () => {
  it('names Device and Normal MAIR bytes', () => {
    expect(mairTypeName(0x00)).toBe('Device-nGnRnE')
    expect(mairTypeName(0x04)).toBe('Device-nGnRE')
    expect(mairTypeName(0x08)).toBe('Device-nGRE')
    expect(mairTypeName(0x0c)).toBe('Device-GRE')
    expect(mairTypeName(0x44)).toBe('Normal-NC')
    expect(mairTypeName(0xff)).toBe('Normal-WB')
    expect(mairTypeName(0xbb)).toBe('Normal-WT')
    expect(mairTypeName(0xf4)).toBe('Normal-oWB-iNC')
    expect(mairTypeName(0x4f)).toBe('Normal-oNC-iWB')
  })

  it('reads MAIR_EL2 bytes 0..2 as 0x00, 0xff, 0x04', () => {
    expect([0, 1, 2, 3].map((i) => mairAttrAt(MAIR_EL2, i))).toEqual([0x00, 0xff, 0x04, 0x00])
    expect(mairAttrAt(0xaabb_ccdd_eeff_0011n, 7)).toBe(0xaa)
  })
})

describe('IdentityMapper with regime stage1', () => {
  it('writes 0x705 / 0x0040_0000_0000_0709 / 0x785 blocks and 0x707 pages under table descriptors', () => {
    const {machine, mapper} = mappedMachine({regime: 'stage1'})
    expect(mapper.state).toMatchObject({regime: 'stage1', root: ROOT, vmid: 0})
    expect(mapper.regime).toBe(STAGE1)
    expect(mapper.mapRegion(P, BLOCK, 'normal').descriptor).toBe(0x4800_0705n)
    expect(mapper.mapRegion(P + BLOCK, BLOCK, 'device').descriptor).toBe(0x0040_0000_4820_0709n)
    expect(mapper.mapRegion(P + 2n * BLOCK, BLOCK, 'readonly').descriptor).toBe(0x4840_0785n)
    expect(mapper.mapRegion(0x8000_0000n, GIB, 'normal').descriptor).toBe(0x8000_0705n)
    expect(mapper.mapRegion(P + 3n * BLOCK, PAGE, 'normal').descriptor).toBe(0x4860_0707n)
    expect(machine.memory.readU64(ROOT + 8n)).toBe(0x4100_1003n)
    expect(machine.memory.readU64(ROOT + 16n)).toBe(0x8000_0705n)
    expect(machine.memory.readU64(0x4100_1000n + 8n * 64n)).toBe(0x4800_0705n)
    expect(machine.memory.readU64(0x4100_1000n + 8n * 65n)).toBe(0x0040_0000_4820_0709n)
    expect(machine.memory.readU64(0x4100_1000n + 8n * 66n)).toBe(0x4840_0785n)
    expect(machine.memory.readU64(0x4100_1000n + 8n * 67n)).toBe(0x4100_2003n)
    expect(machine.memory.readU64(0x4100_2000n)).toBe(0x4860_0707n)
    expect(mapper.leafAt(P + 0x1234n)).toBe(0x4800_0705n)
  })

  it('registers(): TTBR0_EL2 = root, TCR_EL2, MAIR_EL2, SCTLR_EL2, HCR_EL2', () => {
    const {mapper} = mappedMachine({regime: 'stage1'})
    expect(mapper.registers().map((r) => [r.name, r.value])).toEqual([
      ['TTBR0_EL2', ROOT],
      ['TCR_EL2', 0x8082_3519n],
      ['MAIR_EL2', 0x4ff00n],
      ['SCTLR_EL2', 0x30c5_1835n],
      ['HCR_EL2', 0x8000_0000n],
    ])
  })

  it('vttbr() and vtcr() are stage-2 registers: an input error', () => {
    const {mapper} = mappedMachine({regime: 'stage1'})
    expectHvmemError(() => mapper.vttbr(), 'input', 'VTTBR_EL2 applies to stage-2 tables')
    expectHvmemError(() => mapper.vtcr(), 'input', 'VTCR_EL2 applies to stage-2 tables')
  })

  it('a VMID other than 0 with stage1 is an input error, at creation and on an existing mapper', () => {
    const machine = defaultMachine()
    expectHvmemError(() => machine.ensureMapper({regime: 'stage1', vmid: 5}), 'input', 'VMID applies to stage-2 tables only')
    expectHvmemError(() => IdentityMapper.create(machine.heap, {regime: 'stage1', vmid: 1}), 'input')
    expect(machine.mapper).toBeUndefined()
    machine.ensureMapper({regime: 'stage1', vmid: 0})
    expectHvmemError(() => machine.ensureMapper({vmid: 5}), 'input', '--vmid')
    expectHvmemError(() => machine.ensureMapper({regime: 'stage2'}), 'input', 'the mapper already exists with --regime stage1')
    expect(machine.ensureMapper({regime: 'stage1'}).created).toBe(false)
  })

  it('survives a snapshot round trip with its regime, tables and translations', () => {
    const {machine, mapper} = mappedMachine({regime: 'stage1', l2Budget: 6})
    mapper.mapRegion(P, BLOCK, 'normal')
    mapper.mapRegion(0x0900_0000n, BLOCK, 'device')
    const bytes = encodeSnapshot(machine)
    expect(bytes.readUInt8(64)).toBe(1)
    expect(bytes.readUInt8(65)).toBe(2) // regime code 2 = stage 1
    const restored = decodeSnapshot(bytes, 'round-trip.snap')
    const m = restored.mapper!
    expect(m.state).toMatchObject({regime: 'stage1', root: ROOT, vmid: 0, l2Budget: 6})
    expect(m.regime).toBe(STAGE1)
    expect(m.registers()).toEqual(mapper.registers())
    expect(m.leafAt(P)).toBe(0x4800_0705n)
    expect(m.leafAt(0x0900_0000n)).toBe(0x0040_0000_0900_0709n)
    expect(translate(restored.memory, m.regime, m.root, 0x0900_0018n).par).toBe(0x0400_0000_0900_0b00n) // Device: outer shareable
    expect(encodeSnapshot(restored).equals(bytes)).toBe(true)
    expectHvmemError(() => restored.ensureMapper({regime: 'stage2'}), 'input')
  })
})
