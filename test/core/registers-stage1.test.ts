/** Decoded register fields for both regimes: VTCR_EL2, TCR_EL2, and registersFor(). */
import {describe, expect, it} from 'vitest'

import {HCR_EL2_DC, HCR_EL2_STAGE1, HCR_EL2_STAGE2, type Register, SCTLR_EL2_MMU_ON, SCTLR_EL2_RES1, TCR_EL2, decodeTcrEl2, decodeVtcr, registersFor} from '../../src/core/registers.js'
import {expectHvmemError} from './helpers.js'

const ROOT = 0x4100_0000n

function byName(registers: Register[], name: string): Register {
  const r = registers.find((x) => x.name === name)
  expect(r).toBeDefined()
  return r!
}

describe('decodeVtcr()', () => {
  it('decodes 0x80023559 field by field', () => {
    expect(decodeVtcr(0x8002_3559n)).toEqual([
      {name: 'T0SZ', bits: '5:0', value: 25n, meaning: '39-bit input addresses'},
      {name: 'SL0', bits: '7:6', value: 1n, meaning: 'walks start at level 1'},
      {name: 'IRGN0', bits: '9:8', value: 1n, meaning: 'walks inner write-back RA WA'},
      {name: 'ORGN0', bits: '11:10', value: 1n, meaning: 'walks outer write-back RA WA'},
      {name: 'SH0', bits: '13:12', value: 3n, meaning: 'walks inner shareable'},
      {name: 'TG0', bits: '15:14', value: 0n, meaning: '4 KiB granule'},
      {name: 'PS', bits: '18:16', value: 2n, meaning: '40-bit physical addresses'},
      {name: 'VS', bits: '19', value: 0n, meaning: '8-bit VMID'},
      {name: 'HA', bits: '21', value: 0n, meaning: 'no hardware access flag: AF = 0 faults'},
      {name: 'RES1', bits: '31', value: 1n, meaning: 'reserved, one'},
    ])
  })

  it('decodes other values: VS, HA, SL0 2, PS 5, a clear RES1 bit, a reserved PS', () => {
    const f = (value: bigint) => Object.fromEntries(decodeVtcr(value).map((x) => [x.name, [x.value, x.meaning]]))
    expect(f(0x800a_3559n).VS).toEqual([1n, '16-bit VMID'])
    expect(f(0x8022_3559n).HA).toEqual([1n, 'hardware access flag'])
    expect(f(0x0005_0098n)).toMatchObject({
      T0SZ: [24n, '40-bit input addresses'],
      SL0: [2n, 'walks start at level 0'],
      IRGN0: [0n, 'walks inner non-cacheable'],
      SH0: [0n, 'walks non-shareable'],
      PS: [5n, '48-bit physical addresses'],
      RES1: [0n, 'RES1 bit clear: wrong'],
    })
    expect(f(0x8007_0000n).PS).toEqual([7n, 'reserved'])
  })
})

describe('decodeTcrEl2()', () => {
  it('TCR_EL2 is 0x80823519', () => {
    expect(TCR_EL2).toBe(0x8082_3519n)
  })

  it('decodes 0x80823519 field by field', () => {
    expect(decodeTcrEl2(0x8082_3519n)).toEqual([
      {name: 'T0SZ', bits: '5:0', value: 25n, meaning: '39-bit input addresses'},
      {name: 'IRGN0', bits: '9:8', value: 1n, meaning: 'walks inner write-back RA WA'},
      {name: 'ORGN0', bits: '11:10', value: 1n, meaning: 'walks outer write-back RA WA'},
      {name: 'SH0', bits: '13:12', value: 3n, meaning: 'walks inner shareable'},
      {name: 'TG0', bits: '15:14', value: 0n, meaning: '4 KiB granule'},
      {name: 'PS', bits: '18:16', value: 2n, meaning: '40-bit physical addresses'},
      {name: 'TBI', bits: '20', value: 0n, meaning: 'top byte used'},
      {name: 'HA', bits: '21', value: 0n, meaning: 'no hardware access flag: AF = 0 faults'},
      {name: 'RES1', bits: '23', value: 1n, meaning: 'reserved, one'},
      {name: 'RES1', bits: '31', value: 1n, meaning: 'reserved, one'},
    ])
  })
})

describe('registersFor(stage2)', () => {
  it('root 0x4100_0000, VMID 0: VTTBR_EL2, VTCR_EL2 0x80023559, HCR_EL2 VM|RW', () => {
    const regs = registersFor('stage2', ROOT, 0)
    expect(regs.map((r) => r.name)).toEqual(['VTTBR_EL2', 'VTCR_EL2', 'HCR_EL2'])
    expect(regs[0]).toEqual({
      name: 'VTTBR_EL2',
      value: ROOT,
      purpose: 'stage-2 root table and VMID',
      fields: [
        {name: 'VMID', bits: '55:48', value: 0n, meaning: 'VMID 0'},
        {name: 'BADDR', bits: '47:1', value: 0x2080_0000n, meaning: 'root (L1) table at 0x41000000'},
        {name: 'CnP', bits: '0', value: 0n, meaning: 'private to this PE'},
      ],
    })
    expect(regs[1]).toEqual({name: 'VTCR_EL2', value: 0x8002_3559n, purpose: 'stage-2 translation control', fields: decodeVtcr(0x8002_3559n)})
    expect(HCR_EL2_STAGE2).toBe(0x8000_0001n)
    expect(HCR_EL2_DC).toBe(0x1000n)
    expect(regs[2]!.value).toBe(0x8000_0001n)
    expect(regs[2]!.fields).toEqual([
      {name: 'VM', bits: '0', value: 1n, meaning: 'stage-2 translation on'},
      {name: 'DC', bits: '12', value: 0n, meaning: 'set it to run a guest with its MMU off as Normal memory'},
      {name: 'RW', bits: '31', value: 1n, meaning: 'EL1 is AArch64'},
    ])
  })

  it('VMID 300: VTTBR_EL2 carries it in bits 63:48 and VTCR_EL2 sets VS (0x800a3559)', () => {
    const regs = registersFor('stage2', ROOT, 300)
    const vttbr = byName(regs, 'VTTBR_EL2')
    expect(vttbr.value).toBe(0x012c_0000_4100_0000n)
    expect(vttbr.fields[0]).toEqual({name: 'VMID', bits: '63:48', value: 300n, meaning: 'VMID 300'})
    expect(vttbr.fields[1]).toEqual({name: 'BADDR', bits: '47:1', value: 0x2080_0000n, meaning: 'root (L1) table at 0x41000000'})
    const vtcr = byName(regs, 'VTCR_EL2')
    expect(vtcr.value).toBe(0x800a_3559n)
    expect(vtcr.fields.find((f) => f.name === 'VS')).toEqual({name: 'VS', bits: '19', value: 1n, meaning: '16-bit VMID'})
  })

  it('VMID 255 still fits 8 bits: field 55:48, VTCR 0x80023559', () => {
    const regs = registersFor('stage2', ROOT, 255)
    expect(byName(regs, 'VTTBR_EL2').value).toBe(0x00ff_0000_4100_0000n)
    expect(byName(regs, 'VTTBR_EL2').fields[0]).toEqual({name: 'VMID', bits: '55:48', value: 255n, meaning: 'VMID 255'})
    expect(byName(regs, 'VTCR_EL2').value).toBe(0x8002_3559n)
  })

  it('refuses a VMID outside 0..65535', () => {
    expectHvmemError(() => registersFor('stage2', ROOT, 65536), 'input', 'VMID must be 0..65535 (got 65536)')
  })
})

describe('registersFor(stage1)', () => {
  it('TTBR0_EL2 = root, TCR_EL2, MAIR_EL2, SCTLR_EL2 with the MMU on, HCR_EL2 with E2H clear', () => {
    const regs = registersFor('stage1', ROOT, 0)
    expect(regs.map((r) => [r.name, r.value])).toEqual([
      ['TTBR0_EL2', ROOT],
      ['TCR_EL2', 0x8082_3519n],
      ['MAIR_EL2', 0x4ff00n],
      ['SCTLR_EL2', 0x30c5_1835n],
      ['HCR_EL2', 0x8000_0000n],
    ])
    expect(regs[0]).toEqual({
      name: 'TTBR0_EL2',
      value: ROOT,
      purpose: 'stage-1 root table of the EL2 regime',
      fields: [
        {name: 'BADDR', bits: '47:1', value: 0x2080_0000n, meaning: 'root (L1) table at 0x41000000'},
        {name: 'CnP', bits: '0', value: 0n, meaning: 'private to this PE'},
      ],
    })
    expect(regs[1]).toEqual({name: 'TCR_EL2', value: 0x8082_3519n, purpose: 'stage-1 translation control (E2H = 0)', fields: decodeTcrEl2(0x8082_3519n)})
    expect(regs[2]!.fields).toEqual([
      {name: 'Attr0', bits: '7:0', value: 0x00n, meaning: 'Device-nGnRnE'},
      {name: 'Attr1', bits: '15:8', value: 0xffn, meaning: 'Normal-WB'},
      {name: 'Attr2', bits: '23:16', value: 0x04n, meaning: 'Device-nGnRE'},
    ])
    expect(SCTLR_EL2_RES1).toBe(0x30c5_0830n)
    expect(SCTLR_EL2_MMU_ON).toBe(0x30c5_1835n)
    expect(regs[3]!.fields).toEqual([
      {name: 'M', bits: '0', value: 1n, meaning: 'MMU on'},
      {name: 'C', bits: '2', value: 1n, meaning: 'data cacheable'},
      {name: 'I', bits: '12', value: 1n, meaning: 'instructions cacheable'},
      {name: 'WXN', bits: '19', value: 0n, meaning: 'writable memory may execute'},
      {name: 'EE', bits: '25', value: 0n, meaning: 'little-endian'},
    ])
    expect(HCR_EL2_STAGE1).toBe(0x8000_0000n)
    expect(regs[4]!.fields).toEqual([
      {name: 'RW', bits: '31', value: 1n, meaning: 'EL1 is AArch64'},
      {name: 'E2H', bits: '34', value: 0n, meaning: 'non-VHE EL2 regime'},
    ])
  })

  it('TTBR0_EL2 follows the root', () => {
    expect(byName(registersFor('stage1', 0x4100_5000n, 0), 'TTBR0_EL2').value).toBe(0x4100_5000n)
  })
})
