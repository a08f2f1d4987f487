import {DEFAULT_STAGE2} from '../../src/core/geometry.js'
import {describe, expect, it} from 'vitest'

import {MAX_VMID, PA_LIMIT, VTCR_FIELDS, checkVmid, encodeVtcr, vtcrFor, vttbrFor} from '../../src/core/registers.js'
import {expectHvmemError} from './helpers.js'

describe('VTCR_EL2', () => {
  it('encodes 39-bit IPA, start at L1, 4 KiB granule, IS WB walks, 40-bit PA as 0x80023559', () => {
    expect(VTCR_FIELDS).toEqual({t0sz: 25, sl0: 1, irgn0: 1, orgn0: 1, sh0: 3, tg0: 0, ps: 2, vs: 0})
    expect(encodeVtcr(VTCR_FIELDS)).toBe(0x8002_3559n)
    expect(DEFAULT_STAGE2.inputLimit).toBe(1n << 39n)
    expect(PA_LIMIT).toBe(1n << 40n)
    expect(DEFAULT_STAGE2.startLevel).toBe(1)
  })

  it('places each field at its bit position (RES1 bit 31 always set)', () => {
    const zero = {t0sz: 0, sl0: 0, irgn0: 0, orgn0: 0, sh0: 0, tg0: 0, ps: 0, vs: 0}
    expect(encodeVtcr(zero)).toBe(0x8000_0000n)
    expect(encodeVtcr({...zero, t0sz: 0x3f})).toBe(0x8000_003fn)
    expect(encodeVtcr({...zero, sl0: 2})).toBe(0x8000_0080n)
    expect(encodeVtcr({...zero, irgn0: 3, orgn0: 2})).toBe(0x8000_0b00n)
    expect(encodeVtcr({...zero, sh0: 3, tg0: 2})).toBe(0x8000_b000n)
    expect(encodeVtcr({...zero, ps: 7})).toBe(0x8007_0000n)
    expect(encodeVtcr({...zero, vs: 1})).toBe(0x8008_0000n)
  })

  it('is 0x80023559 for VMIDs 0 and 255 and sets VS (bit 19) above 255', () => {
    expect(vtcrFor(0)).toBe(0x8002_3559n)
    expect(vtcrFor(255)).toBe(0x8002_3559n)
    expect(vtcrFor(256)).toBe(0x800a_3559n)
    expect(vtcrFor(MAX_VMID)).toBe(0x800a_3559n)
  })
})

describe('VTTBR_EL2', () => {
  it('is (vmid << 48) | root', () => {
    expect(vttbrFor(0x4100_0000n, 0)).toBe(0x4100_0000n)
    expect(vttbrFor(0x4100_0000n, 5)).toBe(0x0005_0000_4100_0000n)
    expect(vttbrFor(0x4100_0000n, 256)).toBe(0x0100_0000_4100_0000n)
    expect(vttbrFor(0xff_ffff_f000n, 0xffff)).toBe(0xffff_00ff_ffff_f000n)
  })

  it('refuses VMIDs outside 0..65535', () => {
    expect(MAX_VMID).toBe(65535)
    for (const vmid of [-1, 65536, 1.5, Number.NaN]) {
      expectHvmemError(() => vttbrFor(0x4100_0000n, vmid), 'input', `VMID must be 0..65535 (got ${vmid})`)
      expectHvmemError(() => vtcrFor(vmid), 'input')
      expectHvmemError(() => checkVmid(vmid), 'input')
    }
    expect(() => checkVmid(0)).not.toThrow()
  })
})
