/** Reserved bits of TCR_EL1, TCR_EL2 and VTCR_EL2, a TCR_EL1 value given as TCR_EL2, and register values as roots. */
import {describe, expect, it} from 'vitest'

import {type ControlRegister, checkControlBits} from '../../src/core/control-bits.js'
import {foreignWalk, stage1Walk} from '../../src/core/regime-config.js'
import {expectHvmemError} from './helpers.js'

describe('checkControlBits', () => {
  it.each([
    // Linux's TCR_EL1 (T0SZ/T1SZ 16, TG1 4K, IPS 48-bit, AS, TBI1): EPD1 clear where TCR_EL2 has RES1 bit 23
    ['TCR_EL2', 0x75_b510_3510n, "TCR_EL2 0x75b5103510: bit 23 is RES1 but clear (bit 23 is TCR_EL1's EPD1: a TCR_EL1 value?)"],
    // U-Boot's TCR_EL1: EPD1 set, TG1 0
    ['TCR_EL2', 0x2_0080_3519n, "TCR_EL2 0x200803519: bit 31 is RES1 but clear (bit 31 is TCR_EL1's TG1: a TCR_EL1 value?)"],
    ['TCR_EL2', 0x8088_3519n, "TCR_EL2 0x80883519: bit 19 is RES0 but set (bit 19 is TCR_EL1's T1SZ: a TCR_EL1 value?)"],
    ['TCR_EL2', 0x8082_3599n, "TCR_EL2 0x80823599: bits 7:6 are RES0 but bit 7 is set (bit 7 is TCR_EL1's EPD0: a TCR_EL1 value?)"],
    ['TCR_EL2', 0x4_8082_3519n, "TCR_EL2 0x480823519: bits 63:34 are RES0 but bit 34 is set (bit 34 is TCR_EL1's IPS: a TCR_EL1 value?)"],
    ['VTCR_EL2', 0x0002_3559n, 'VTCR_EL2 0x23559: bit 31 is RES1 but clear'],
    ['VTCR_EL2', 0x8012_3559n, 'VTCR_EL2 0x80123559: bit 20 is RES0 but set'],
    ['VTCR_EL2', 0x10_8002_3559n, 'VTCR_EL2 0x1080023559: bits 45:34 are set: AssuredOnly, TL1, S2PIE'],
    ['TCR_EL1', 0x2_8019_0019n | (1n << 35n), 'TCR_EL1 0xa80190019: bit 35 is RES0 but set'],
  ] as Array<[ControlRegister, bigint, string]>)('%s %s', (register, value, message) => {
    expectHvmemError(() => checkControlBits(register, value), 'input', message)
  })

  it.each([
    ['TCR_EL2', 0x8082_3519n],
    ['TCR_EL2', 0x2_8085_3510n], // MTX (bit 33) is TCR_EL2's own
    ['VTCR_EL2', 0x800a_3559n],
    ['VTCR_EL2', 0x8062_3559n], // HA, HD
    ['TCR_EL2', 0x1_8082_3519n], // DS (FEAT_LPA2)
    ['VTCR_EL2', 0x3_8006_350cn], // DS and SL2 (FEAT_LPA2)
    ['TCR_EL1', 0x75_b510_3510n],
  ] as Array<[ControlRegister, bigint]>)('%s %s is accepted', (register, value) => {
    expect(() => checkControlBits(register, value)).not.toThrow()
  })

  it('the EL2 stage-1 walk refuses a TCR_EL1 (it used to read its T1SZ as PS)', () => {
    expectHvmemError(() => stage1Walk(0x75_b510_3510n), 'input', "bit 23 is TCR_EL1's EPD1")
  })
})

describe('register values as roots', () => {
  it('a VTTBR_EL2 with VMID 1: the VMID split off and shown', () => {
    const w = foreignWalk('stage2', 0x1_0000_7ffe_2000n)
    expect(w.root).toBe(0x7ffe_2000n)
    expect(w.vmid).toBe(1)
    expect(w.table).toMatchObject({tag: 1, tagName: 'VMID', cnp: false})
    expect(w.registers[0]).toEqual({name: 'VTTBR_EL2', value: 0x1_0000_7ffe_2000n})
  })

  it('CnP and a 16-bit VMID (the default VTCR_EL2 then has VS)', () => {
    const w = foreignWalk('stage2', 0x012c_0000_4100_0001n)
    expect([w.root, w.vmid, w.table.cnp, w.control]).toEqual([0x4100_0000n, 300, true, 0x800a_3559n])
  })

  it('a TTBR0_EL2 with an ASID and CnP', () => {
    const w = foreignWalk('stage1', 0x0005_0000_4100_0001n)
    expect([w.root, w.table.tag, w.table.tagName, w.table.cnp]).toEqual([0x4100_0000n, 5, 'ASID', true])
  })

  it.each([
    [0x1_0000_7ffe_2000n, 2, undefined, '--root 0x100007ffe2000 holds VMID 1 (bits 63:48), not --vmid 2'],
    [0x0100_0000_4100_0000n, undefined, 0x8002_3559n, 'VTTBR_EL2 0x100000041000000: bits 63:56 are RES0 with 8-bit VMIDs'],
    [0x1_0000_4100_0800n, undefined, undefined, '--root 0x1000041000800 is not a valid root: its table address 0x41000800 must be a 4K-aligned table'],
  ])('%s is refused', (root, vmid, vtcr, message) => {
    expectHvmemError(() => foreignWalk('stage2', root, vtcr, vmid), 'input', message)
  })
})
