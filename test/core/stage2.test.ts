import {describe, expect, it} from 'vitest'

import {ADDRESS_MASK, type LeafFields, kindOf, tableDescriptor} from '../../src/core/descriptor.js'
import {STAGE2, STAGE2_ATTR_BITS as ATTR_BITS, memTypeName} from '../../src/core/stage2.js'
import {expectHvmemError} from './helpers.js'

const P = 0x4000_0000n

/** The leaf fields of a descriptor decoded at `level`; fails the test if it is not a leaf. */
function leafOf(descriptor: bigint, level: number): LeafFields {
  const d = STAGE2.decode(descriptor, level)
  expect(d.leaf).toBeDefined()
  return d.leaf!
}

describe('stage-2 encodings (KVM-compatible)', () => {
  it('the masks and attribute bits are the documented ones', () => {
    expect(ADDRESS_MASK).toBe(0x0000_ffff_ffff_f000n)
    expect(ATTR_BITS).toEqual({normal: 0x7fcn, device: 0x0040_0000_0000_07c4n, readonly: 0x77cn})
  })

  it('2 MiB blocks: normal P|0x7fd, device P|0x0040_0000_0000_07c5, readonly P|0x77d', () => {
    expect(STAGE2.leafDescriptor(2, P, 'normal')).toBe(0x4000_07fdn)
    expect(STAGE2.leafDescriptor(2, P + 0x20_0000n, 'normal')).toBe(0x4020_07fdn)
    expect(STAGE2.leafDescriptor(2, P, 'device')).toBe(0x0040_0000_4000_07c5n)
    expect(STAGE2.leafDescriptor(2, 0x0900_0000n, 'device')).toBe(0x0040_0000_0900_07c5n)
    expect(STAGE2.leafDescriptor(2, P, 'readonly')).toBe(0x4000_077dn)
  })

  it('1 GiB blocks have bit 1 clear, 4 KiB pages have it set', () => {
    expect(STAGE2.leafDescriptor(1, P, 'normal')).toBe(0x4000_07fdn)
    expect(STAGE2.leafDescriptor(1, 0x80_0000_0000n, 'device')).toBe(0x0040_0080_0000_07c5n)
    expect(STAGE2.leafDescriptor(3, P + 0x1000n, 'normal')).toBe(0x4000_17ffn)
    expect(STAGE2.leafDescriptor(3, P, 'readonly')).toBe(0x4000_077fn)
  })

  it('STAGE2.leafDescriptor() refuses an output address not aligned to the level or above 48 bits', () => {
    expectHvmemError(() => STAGE2.leafDescriptor(2, P + 0x1000n, 'normal'), 'input', 'output address 0x40001000 is not a 2097152-byte aligned 48-bit address')
    expectHvmemError(() => STAGE2.leafDescriptor(1, P + 0x20_0000n, 'normal'), 'input')
    expectHvmemError(() => STAGE2.leafDescriptor(3, P + 0x800n, 'normal'), 'input')
    expectHvmemError(() => STAGE2.leafDescriptor(2, 1n << 48n, 'normal'), 'input')
  })

  it('tableDescriptor() is the address | 0b11 with no attributes, masked to bits 47:12', () => {
    expect(tableDescriptor(0x4100_1000n)).toBe(0x4100_1003n)
    expect(tableDescriptor(0xf000_0000_4100_1fffn)).toBe(0x4100_1003n)
  })

  it('STAGE2.attrOf() names the attribute a leaf carries, and nothing else', () => {
    expect(STAGE2.attrOf(0x4000_07fdn)).toBe('normal')
    expect(STAGE2.attrOf(0x0040_0000_0900_07c5n)).toBe('device')
    expect(STAGE2.attrOf(0x4000_077dn)).toBe('readonly')
    expect(STAGE2.attrOf(0x4000_17ffn)).toBe('normal') // a page: bits 1:0 are ignored
    expect(STAGE2.attrOf(0x4000_0405n)).toBeUndefined()
    expect(STAGE2.attrOf(0x4000_07fdn | (1n << 52n))).toBeUndefined()
    expect(STAGE2.attrOf(0x4100_1003n)).toBeUndefined()
  })

  it('decodes every field of a normal RW block', () => {
    const d = STAGE2.decode(0x4000_07fdn, 2)
    expect(d).toMatchObject({raw: 0x4000_07fdn, level: 2, kind: 'block'})
    expect(d.nextTable).toBeUndefined()
    expect(d.leaf).toEqual({
      outputAddress: 0x4000_0000n,
      memAttr: 0b1111,
      memType: 'Normal-WB',
      s2ap: 0b11,
      access: 'RW',
      sh: 0b11,
      shareability: 'IS',
      af: true,
      xn: 0,
      executable: true,
      contiguous: false,
      software: 0,
    })
  })

  it('decodes every field of a device block', () => {
    expect(leafOf(0x0040_0000_0900_07c5n, 2)).toEqual({
      outputAddress: 0x0900_0000n,
      memAttr: 0b0001,
      memType: 'Device-nGnRE',
      s2ap: 0b11,
      access: 'RW',
      sh: 0b11,
      shareability: 'IS',
      af: true,
      xn: 0b10,
      executable: false,
      contiguous: false,
      software: 0,
    })
  })

  it('decodes every field of a readonly block', () => {
    expect(leafOf(0x4800_077dn, 2)).toEqual({
      outputAddress: 0x4800_0000n,
      memAttr: 0b1111,
      memType: 'Normal-WB',
      s2ap: 0b01,
      access: 'RO',
      sh: 0b11,
      shareability: 'IS',
      af: true,
      xn: 0,
      executable: true,
      contiguous: false,
      software: 0,
    })
  })

  it("the plan's 0x405 is Device-nGnRE with no access under stage 2", () => {
    const leaf = leafOf(P | 0x405n, 2)
    expect(leaf).toMatchObject({memAttr: 0b0001, memType: 'Device-nGnRE', s2ap: 0, access: 'none', sh: 0, shareability: 'NS', af: true, executable: true})
    expect(leaf.outputAddress).toBe(P)
  })

  it("the plan's 0x485 is write-only and 0x409 is Device-nGRE with no access", () => {
    expect(leafOf(P | 0x485n, 2)).toMatchObject({memAttr: 0b0001, memType: 'Device-nGnRE', s2ap: 0b10, access: 'WO', af: true})
    expect(leafOf(P | 0x409n, 2)).toMatchObject({memAttr: 0b0010, memType: 'Device-nGRE', access: 'none', af: true})
  })

  it('reads the contiguous hint, software bits and AF', () => {
    const leaf = leafOf(0x4000_03fdn | (1n << 52n) | (0xan << 55n), 2)
    expect(leaf).toMatchObject({af: false, contiguous: true, software: 0xa, executable: true, xn: 0})
    expect(leafOf(0x4000_07fdn | (1n << 53n), 2)).toMatchObject({xn: 1, executable: true})
  })

  it('masks the output address to the level size', () => {
    expect(leafOf(0x4000_07fdn | 0x1000n, 1).outputAddress).toBe(0x4000_0000n)
    expect(leafOf(0x4020_07fdn | 0x1_f000n, 2).outputAddress).toBe(0x4020_0000n)
    expect(leafOf(0x4000_37ffn | (1n << 63n), 3).outputAddress).toBe(0x4000_3000n)
  })

  it('level 3: 0b11 is a page, 0b01 is reserved', () => {
    expect(STAGE2.decode(0x4000_37ffn, 3)).toMatchObject({kind: 'page', leaf: {outputAddress: 0x4000_3000n, access: 'RW'}})
    const reserved = STAGE2.decode(0x4000_37fdn, 3)
    expect(reserved).toEqual({raw: 0x4000_37fdn, level: 3, kind: 'reserved'})
    expect(kindOf(0x4000_37fdn, 3)).toBe('reserved')
  })

  it('a level-0 block is reserved, a level-0 table is a table', () => {
    expect(STAGE2.decode(0x4000_07fdn, 0)).toEqual({raw: 0x4000_07fdn, level: 0, kind: 'reserved'})
    expect(STAGE2.decode(0x4100_1003n, 0)).toEqual({raw: 0x4100_1003n, level: 0, kind: 'table', nextTable: 0x4100_1000n})
  })

  it('tables at levels 0-2, invalid when bit 0 is clear', () => {
    expect(kindOf(0x4100_1003n, 1)).toBe('table')
    expect(kindOf(0x4100_1003n, 2)).toBe('table')
    expect(kindOf(0x4000_07fdn, 1)).toBe('block')
    expect(kindOf(0x4000_07fcn, 2)).toBe('invalid')
    expect(kindOf(0n, 3)).toBe('invalid')
    expect(STAGE2.decode(0x4000_07fen, 2)).toEqual({raw: 0x4000_07fen, level: 2, kind: 'invalid'})
  })

  it('a table descriptor with high attribute bits set still points at bits 47:12', () => {
    const raw = 0x4100_1003n | (1n << 63n) | (0xfn << 59n) | 0xffcn
    expect(STAGE2.decode(raw, 1).nextTable).toBe(0x4100_1000n)
  })

  it('memTypeName() names every MemAttr', () => {
    expect([0, 1, 2, 3].map(memTypeName)).toEqual(['Device-nGnRnE', 'Device-nGnRE', 'Device-nGRE', 'Device-GRE'])
    expect(memTypeName(0b0101)).toBe('Normal-NC')
    expect(memTypeName(0b1010)).toBe('Normal-WT')
    expect(memTypeName(0b1111)).toBe('Normal-WB')
    expect(memTypeName(0b1101)).toBe('Normal-oWB-iNC')
    expect(memTypeName(0b0111)).toBe('Normal-oNC-iWB')
    expect(memTypeName(0b0100)).toBe('Normal-oNC-i(reserved)')
  })
})
