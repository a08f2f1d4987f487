/**
 * The EL2 registers that install a stage-2 table (Arm ARM DDI 0487, D19.2: VTCR_EL2, VTTBR_EL2;
 * field layout summarised in shared/reference/architecture-notes.md).
 */
import {HvmemError} from './errors.js'

/** The IPA space the tables translate: VTCR_EL2.T0SZ = 64 - 39 = 25, walks start at level 1. */
export const IPA_BITS = 39n
export const IPA_LIMIT = 1n << IPA_BITS
/** VTCR_EL2.PS = 0b010: 40-bit physical addresses. Tables and output addresses must lie below this. */
export const PA_BITS = 40n
export const PA_LIMIT = 1n << PA_BITS
export const START_LEVEL = 1

export interface VtcrFields {
  t0sz: number // [5:0]   64 - IPA bits
  sl0: number // [7:6]   4K granule: 0 = start L2, 1 = start L1, 2 = start L0
  irgn0: number // [9:8]   inner cacheability of walks: 1 = WB RA WA
  orgn0: number // [11:10] outer cacheability of walks: 1 = WB RA WA
  sh0: number // [13:12] shareability of walks: 3 = inner
  tg0: number // [15:14] granule: 0 = 4 KiB
  ps: number // [18:16] physical address size: 0..6 = 32/36/40/42/44/48/52 bits
  vs: number // [19]    VMID size: 0 = 8 bits, 1 = 16 bits (FEAT_VMID16)
}

export const VTCR_FIELDS: VtcrFields = {t0sz: 25, sl0: 1, irgn0: 1, orgn0: 1, sh0: 3, tg0: 0, ps: 2, vs: 0}

const VTCR_RES1 = 1n << 31n

export function encodeVtcr(f: VtcrFields): bigint {
  return (
    VTCR_RES1 |
    BigInt(f.t0sz & 0x3f) |
    (BigInt(f.sl0 & 3) << 6n) |
    (BigInt(f.irgn0 & 3) << 8n) |
    (BigInt(f.orgn0 & 3) << 10n) |
    (BigInt(f.sh0 & 3) << 12n) |
    (BigInt(f.tg0 & 3) << 14n) |
    (BigInt(f.ps & 7) << 16n) |
    (BigInt(f.vs & 1) << 19n)
  )
}

export const MAX_VMID = 0xffff

export function checkVmid(vmid: number): void {
  if (!Number.isInteger(vmid) || vmid < 0 || vmid > MAX_VMID) throw new HvmemError('input', `VMID must be 0..65535 (got ${vmid})`)
}

/**
 * VTCR_EL2 for hvmem's tables: 0x80023559 (39-bit IPA, start at L1, 4 KiB granule, inner-shareable
 * write-back walks, 40-bit PA). A VMID above 255 needs 16-bit VMIDs, so VS (bit 19) is set for it.
 */
export function vtcrFor(vmid: number): bigint {
  checkVmid(vmid)
  return encodeVtcr({...VTCR_FIELDS, vs: vmid > 0xff ? 1 : 0})
}

/** VTTBR_EL2: BADDR (the root table, bits 47:1) with the VMID in bits 63:48; CnP (bit 0) clear. */
export function vttbrFor(root: bigint, vmid: number): bigint {
  checkVmid(vmid)
  return (BigInt(vmid) << 48n) | root
}
