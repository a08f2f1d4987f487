/**
 * The EL2 registers that install hvmem's tables (Arm ARM DDI 0487, D19.2: VTCR_EL2, VTTBR_EL2,
 * HCR_EL2, TCR_EL2, TTBR0_EL2, MAIR_EL2, SCTLR_EL2; hvmem's values field by field in docs/regimes.md,
 * "Registers").
 */
import type {RegimeName} from './descriptor.js'
import {HvmemError} from './errors.js'
import {DEFAULT_STAGE1, DEFAULT_STAGE2, type Geometry, PA_SIZES, sl0Of, tg0Of} from './geometry.js'
import {MAIR_EL2, mairAttrAt, mairTypeName} from './stage1.js'
import {hex} from './u64.js'

/** hvmem's RAM lies in the 40-bit physical address space (the smallest PS a mapper uses): PS = 0b010. */
export const PA_BITS = 40n
export const PA_LIMIT = 1n << PA_BITS

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

/** Walks inner and outer write-back, inner shareable (as KVM sets them). */
const WALK_ATTRS = {irgn0: 1, orgn0: 1, sh0: 3} as const

/** PS / IPS encoding of an output size. */
export function psOf(paBits: number): number {
  return PA_SIZES.indexOf(paBits as (typeof PA_SIZES)[number])
}

/** The VTCR_EL2 fields of a stage-2 geometry. */
function vtcrFields(geometry: Geometry, vmid: number): VtcrFields {
  return {t0sz: 64 - geometry.inputBits, sl0: sl0Of(geometry.granule, geometry.startLevel), ...WALK_ATTRS, tg0: tg0Of(geometry.granule), ps: psOf(geometry.paBits), vs: vmid > 0xff ? 1 : 0}
}

export const VTCR_FIELDS: VtcrFields = vtcrFields(DEFAULT_STAGE2, 0)

const RES1_31 = 1n << 31n

export function encodeVtcr(f: VtcrFields): bigint {
  return (
    RES1_31 |
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
 * VTCR_EL2 for hvmem's stage-2 tables in `geometry` (by default 0x80023559: 39-bit IPA, start at L1,
 * 4 KiB granule, inner-shareable write-back walks, 40-bit PA). A VMID above 255 needs 16-bit VMIDs:
 * VS (bit 19) is set.
 */
export function vtcrFor(vmid: number, geometry: Geometry = DEFAULT_STAGE2): bigint {
  checkVmid(vmid)
  return encodeVtcr(vtcrFields(geometry, vmid))
}

/** VTTBR_EL2: BADDR (the root table, bits 47:1) with the VMID in bits 63:48; CnP (bit 0) clear. */
export function vttbrFor(root: bigint, vmid: number): bigint {
  checkVmid(vmid)
  return (BigInt(vmid) << 48n) | root
}

/** HCR_EL2 for a guest on stage-2 tables: VM (bit 0) enables stage 2, RW (bit 31) makes EL1 AArch64. */
export const HCR_EL2_STAGE2 = (1n << 0n) | (1n << 31n)
/** HCR_EL2.DC (bit 12): with the guest's MMU off, treat its stage 1 as Normal write-back (not Device). */
export const HCR_EL2_DC = 1n << 12n
/** HCR_EL2 for the hypervisor's own stage-1 tables: E2H (bit 34) clear, the non-VHE EL2 regime; RW for EL1. */
export const HCR_EL2_STAGE1 = 1n << 31n

/**
 * TCR_EL2 (E2H = 0) for hvmem's stage-1 tables in `geometry`: T0SZ, TG0 and PS from it; IRGN0/ORGN0
 * 01 write-back walks; SH0 11 inner shareable; RES1 bits 23 and 31. The default geometry's is
 * 0x80823519 (T0SZ 25: 39-bit VA, start at L1; 4 KiB; 40-bit PA).
 */
export function tcrEl2For(geometry: Geometry): bigint {
  const f = WALK_ATTRS
  return (
    RES1_31 |
    (1n << 23n) |
    (BigInt(psOf(geometry.paBits)) << 16n) |
    (BigInt(tg0Of(geometry.granule)) << 14n) |
    (BigInt(f.sh0) << 12n) |
    (BigInt(f.orgn0) << 10n) |
    (BigInt(f.irgn0) << 8n) |
    BigInt(64 - geometry.inputBits)
  )
}

export const TCR_EL2 = tcrEl2For(DEFAULT_STAGE1)

/** SCTLR_EL2 with the MMU on: its RES1 bits (0x30c50830) | M (bit 0) | C (bit 2) | I (bit 12); EE 0, WXN 0. */
export const SCTLR_EL2_RES1 = 0x30c5_0830n
export const SCTLR_EL2_MMU_ON = SCTLR_EL2_RES1 | (1n << 0n) | (1n << 2n) | (1n << 12n)

export interface RegisterField {
  name: string
  bits: string
  value: bigint
  meaning: string
}

export interface Register {
  name: string
  value: bigint
  purpose: string
  fields: RegisterField[]
}

interface FieldSpec {
  name: string
  hi: number
  lo: number
  meaning(value: bigint): string
}

function field(name: string, hi: number, lo: number, meaning: (value: bigint) => string): FieldSpec {
  return {name, hi, lo, meaning}
}

function decodeFields(value: bigint, specs: FieldSpec[]): RegisterField[] {
  return specs.map((s) => {
    const v = (value >> BigInt(s.lo)) & ((1n << BigInt(s.hi - s.lo + 1)) - 1n)
    return {name: s.name, bits: s.hi === s.lo ? `${s.hi}` : `${s.hi}:${s.lo}`, value: v, meaning: s.meaning(v)}
  })
}

const CACHE = ['non-cacheable', 'write-back RA WA', 'write-through RA', 'write-back RA'] as const
const SHARE = ['non-shareable', 'reserved', 'outer shareable', 'inner shareable'] as const
const PS_BITS = [32, 36, 40, 42, 44, 48, 52] as const
const bit = (on: string, off: string) => (v: bigint) => (v === 1n ? on : off)

const WALK_FIELDS: FieldSpec[] = [
  field('T0SZ', 5, 0, (v) => `${64n - v}-bit input addresses`),
  field('IRGN0', 9, 8, (v) => `walks inner ${CACHE[Number(v)]}`),
  field('ORGN0', 11, 10, (v) => `walks outer ${CACHE[Number(v)]}`),
  field('SH0', 13, 12, (v) => `walks ${SHARE[Number(v)]}`),
  field('TG0', 15, 14, (v) => ['4 KiB granule', '64 KiB granule', '16 KiB granule', 'reserved'][Number(v)]!),
  field('PS', 18, 16, (v) => (Number(v) < PS_BITS.length ? `${PS_BITS[Number(v)]}-bit physical addresses` : 'reserved')),
]

export function decodeVtcr(value: bigint): RegisterField[] {
  // SL0's levels depend on the granule (TG0): 4 KiB 2 - SL0; 16 and 64 KiB 3 - SL0 (SL0 3 reserved for these without FEAT_LPA2)
  const fourK = ((value >> 14n) & 3n) === 0n
  const startLevels = fourK ? ['level 2', 'level 1', 'level 0', 'level 3 (FEAT_TTST)'] : ['level 3', 'level 2', 'level 1', 'level 0 (16 KiB with FEAT_LPA2 only)']
  return decodeFields(value, [
    ...WALK_FIELDS.slice(0, 1),
    field('SL0', 7, 6, (v) => `walks start at ${startLevels[Number(v)]}`),
    ...WALK_FIELDS.slice(1),
    field('VS', 19, 19, bit('16-bit VMID', '8-bit VMID')),
    field('HA', 21, 21, bit('hardware access flag', 'no hardware access flag: AF = 0 faults')),
    field('RES1', 31, 31, bit('reserved, one', 'RES1 bit clear: wrong')),
  ])
}

export function decodeTcrEl2(value: bigint): RegisterField[] {
  return decodeFields(value, [
    ...WALK_FIELDS,
    field('TBI', 20, 20, bit('top byte ignored', 'top byte used')),
    field('HA', 21, 21, bit('hardware access flag', 'no hardware access flag: AF = 0 faults')),
    field('RES1', 23, 23, bit('reserved, one', 'RES1 bit clear: wrong')),
    field('RES1', 31, 31, bit('reserved, one', 'RES1 bit clear: wrong')),
  ])
}

/** The registers a hypervisor loads to use hvmem's tables, each decoded field by field. */
export function registersFor(regime: RegimeName, root: bigint, vmid: number, geometry: Geometry = regime === 'stage2' ? DEFAULT_STAGE2 : DEFAULT_STAGE1): Register[] {
  const rootName = geometry.rootTables > 1 ? `root: ${geometry.rootTables} concatenated L${geometry.startLevel} tables` : `root (L${geometry.startLevel}) table`
  if (regime === 'stage2') {
    const vttbr = vttbrFor(root, vmid)
    const vtcr = vtcrFor(vmid, geometry)
    return [
      {
        name: 'VTTBR_EL2',
        value: vttbr,
        purpose: 'stage-2 root table and VMID',
        fields: decodeFields(vttbr, [
          field('VMID', vmid > 0xff ? 63 : 55, 48, (v) => `VMID ${v}`),
          field('BADDR', 47, 1, (v) => `${rootName} at ${hex(v << 1n)}`),
          field('CnP', 0, 0, bit('common not private', 'private to this PE')),
        ]),
      },
      {name: 'VTCR_EL2', value: vtcr, purpose: 'stage-2 translation control', fields: decodeVtcr(vtcr)},
      {
        name: 'HCR_EL2',
        value: HCR_EL2_STAGE2,
        purpose: 'the bits stage 2 needs (OR them into the rest of your configuration)',
        fields: decodeFields(HCR_EL2_STAGE2, [
          field('VM', 0, 0, bit('stage-2 translation on', 'stage-2 translation off')),
          field('DC', 12, 12, bit('guest stage 1 treated as Normal WB while its MMU is off', 'set it to run a guest with its MMU off as Normal memory')),
          field('RW', 31, 31, bit('EL1 is AArch64', 'EL1 is AArch32')),
        ]),
      },
    ]
  }
  return [
    {
      name: 'TTBR0_EL2',
      value: root,
      purpose: 'stage-1 root table of the EL2 regime',
      fields: decodeFields(root, [field('BADDR', 47, 1, (v) => `${rootName} at ${hex(v << 1n)}`), field('CnP', 0, 0, bit('common not private', 'private to this PE'))]),
    },
    {name: 'TCR_EL2', value: tcrEl2For(geometry), purpose: 'stage-1 translation control (E2H = 0)', fields: decodeTcrEl2(tcrEl2For(geometry))},
    {
      name: 'MAIR_EL2',
      value: MAIR_EL2,
      purpose: 'memory attributes that AttrIndx selects',
      fields: [0, 1, 2].map((i) => ({name: `Attr${i}`, bits: `${8 * i + 7}:${8 * i}`, value: BigInt(mairAttrAt(MAIR_EL2, i)), meaning: mairTypeName(mairAttrAt(MAIR_EL2, i))})),
    },
    {
      name: 'SCTLR_EL2',
      value: SCTLR_EL2_MMU_ON,
      purpose: 'MMU and caches on',
      fields: decodeFields(SCTLR_EL2_MMU_ON, [
        field('M', 0, 0, bit('MMU on', 'MMU off')),
        field('C', 2, 2, bit('data cacheable', 'data non-cacheable')),
        field('I', 12, 12, bit('instructions cacheable', 'instructions non-cacheable')),
        field('WXN', 19, 19, bit('writable implies execute-never', 'writable memory may execute')),
        field('EE', 25, 25, bit('big-endian', 'little-endian')),
      ]),
    },
    {
      name: 'HCR_EL2',
      value: HCR_EL2_STAGE1,
      purpose: 'E2H must be clear for the non-VHE EL2 regime these tables use',
      fields: decodeFields(HCR_EL2_STAGE1, [field('RW', 31, 31, bit('EL1 is AArch64', 'EL1 is AArch32')), field('E2H', 34, 34, bit('VHE: wrong regime for these tables', 'non-VHE EL2 regime'))]),
    },
  ]
}
