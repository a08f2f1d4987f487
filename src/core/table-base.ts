/**
 * Translation table base registers as a debugger shows them (Arm ARM DDI 0487, D19.2: TTBR0_EL1,
 * TTBR1_EL1, TTBR0_EL2, VTTBR_EL2): BADDR in bits 47:1 (the table address; its low bits are zero by
 * alignment), CnP in bit 0, and the ASID (TTBRn_EL1, and TTBR0_EL2 with E2H = 1, where hvmem ignores
 * it) or VMID (VTTBR_EL2) in bits 63:48. The tag and CnP are split off and reported; neither changes
 * the walk.
 */
import {HvmemError} from './errors.js'
import {type Geometry, MAX_PA_BITS} from './geometry.js'
import {hex} from './u64.js'

export type TableBaseRegister = 'TTBR0_EL1' | 'TTBR1_EL1' | 'TTBR0_EL2' | 'VTTBR_EL2'

export interface TableBase {
  register: TableBaseRegister
  /** the value as given */
  value: bigint
  /** the table address: bits 47:1 */
  base: bigint
  /** ASID or VMID: bits 63:48 (VTTBR_EL2 with 8-bit VMIDs: 55:48) */
  tag: number
  tagName: 'ASID' | 'VMID'
  /** bit 0, Common not Private */
  cnp: boolean
}

const BADDR = 0x0000_ffff_ffff_fffen

/**
 * Splits a table base register value. `vmid16` (VTTBR_EL2 only) is VTCR_EL2.VS: with 8-bit VMIDs
 * bits 63:56 are RES0, and a value with any of them set is refused.
 */
export function tableBase(register: TableBaseRegister, value: bigint, vmid16 = true): TableBase {
  if (value < 0n || value >= 1n << 64n) throw new HvmemError('input', `${register} ${hex(value)} does not fit in 64 bits`)
  const tagName = register === 'VTTBR_EL2' ? 'VMID' : 'ASID'
  if (register === 'VTTBR_EL2' && !vmid16 && value >> 56n !== 0n) {
    throw new HvmemError('input', `VTTBR_EL2 ${hex(value)}: bits 63:56 are RES0 with 8-bit VMIDs (VTCR_EL2.VS 0)`)
  }
  return {register, value, base: value & BADDR, tag: Number(value >> 48n), tagName, cnp: (value & 1n) === 1n}
}

/**
 * The table a split register value names in a walk of `geometry`: with FEAT_LPA2 (DS = 1) and a
 * 52-bit output size, the TTBR's bits 5:2 hold the table address's bits 51:48 (Arm ARM,
 * TTBRn_ELx.BADDR); otherwise the base as split.
 */
export function tableBaseIn(t: TableBase, geometry: Pick<Geometry, 'ds' | 'paBits'> | undefined): TableBase {
  if (geometry?.ds !== true || geometry.paBits <= MAX_PA_BITS) return t
  return {...t, base: (t.base & ~0x3cn) | (((t.base >> 2n) & 0xfn) << 48n)}
}

/** `VMID 1, CnP` / `ASID 0x2a` / `` (nothing to report) */
export function describeTableBase(t: TableBase): string {
  const parts = [...(t.tag !== 0 ? [`${t.tagName} ${t.tag}`] : []), ...(t.cnp ? ['CnP'] : [])]
  return parts.join(', ')
}
