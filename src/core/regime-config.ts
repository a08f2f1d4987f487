/**
 * Walk geometries from translation-control registers: the granule, where a table walk starts, how
 * many input-address bits it translates, and the output-address size above which it faults.
 * hvmem's own tables have the geometry their mapper was made with; tables built by someone else (a
 * running hypervisor, an imported memory image) are walked with the control register they were built for.
 *
 * The rules are the Arm ARM's (DDI 0487, D8.2 "Translation process", the VTCR_EL2 and TCR_EL2
 * descriptions, and the pseudocode AArch64.S1StartLevel, AArch64.S2InconsistentSL and
 * AArch64.S2InvalidSL), for the 4, 16 and 64 KiB granules, with FEAT_LPA2 (DS = 1: 4 and 16 KiB,
 * 52-bit inputs and outputs, the 4 KiB level -1 start by VTCR_EL2.SL2) and without FEAT_LPA or FEAT_TTST.
 */
import {checkControlBits} from './control-bits.js'
import type {Regime} from './descriptor.js'
import {HvmemError} from './errors.js'
import {
  type Geometry,
  type Granule,
  LPA2_BITS,
  MAX_INPUT_BITS,
  MAX_PA_BITS,
  MIN_INPUT_BITS,
  PA_SIZES,
  granuleName,
  granuleOfTg0,
  rootBitsProblem,
  stage1Geometry,
  stage2Geometry,
  startLevelOfSl0,
} from './geometry.js'
import {STAGE2, stage2Regime} from './stage2.js'
import {MAIR_EL2, STAGE1, stage1Regime} from './stage1.js'
import {TCR_EL2, checkVmid, vtcrFor} from './registers.js'
import {type TableBase, tableBase, tableBaseIn} from './table-base.js'
import {hex} from './u64.js'

function fieldOf(value: bigint, hi: number, lo: number): number {
  return Number((value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n))
}

function granuleOf(tg0: number, register: string, value: bigint): Granule {
  const granule = granuleOfTg0(tg0)
  if (granule === undefined) throw new HvmemError('input', `${register} ${hex(value)}: TG0 ${tg0} is reserved; TG0 must be 0 (4 KiB), 1 (64 KiB) or 2 (16 KiB)`)
  return granule
}

function inputBitsOf(t0sz: number, register: string, value: bigint, ds: boolean): number {
  const bits = 64 - t0sz
  const max = ds ? LPA2_BITS : MAX_INPUT_BITS
  if (bits < MIN_INPUT_BITS || bits > max) {
    throw new HvmemError(
      'input',
      `${register} ${hex(value)}: T0SZ ${t0sz} (${bits}-bit inputs) is out of range; T0SZ must be ${64 - max}..${64 - MIN_INPUT_BITS} (${max}- to ${MIN_INPUT_BITS}-bit inputs) ${ds ? 'without FEAT_TTST' : 'without FEAT_LPA2 (DS) or FEAT_TTST'}`,
    )
  }
  return bits
}

function paBitsOf(ps: number, register: string, value: bigint, ds: boolean): number {
  const bits = PA_SIZES[ps]
  if (bits === undefined) throw new HvmemError('input', `${register} ${hex(value)}: PS ${ps} is reserved; PS must be 0..6 (32..52-bit physical addresses)`)
  // Without FEAT_LPA2's DS (or FEAT_LPA's 64K format, not modelled) a PS of 52 bits acts as 48 (Arm ARM, "PS ... greater than the implemented size").
  return ds ? bits : Math.min(bits, MAX_PA_BITS)
}

/** DS (bit 32 of VTCR_EL2 and TCR_EL2): FEAT_LPA2, for the 4K and 16K granules (a 64K walk ignores it and stays at 48 bits, as TCR_EL1's does). */
function dsOf(value: bigint, granule: Granule): boolean {
  return fieldOf(value, 32, 32) === 1 && granule !== 65536
}

/**
 * The stage-2 walk VTCR_EL2 describes. TG0 gives the granule; T0SZ the IPA size; SL0 the start
 * level (4 KiB: 0 = level 2, 1 = level 1, 2 = level 0, 3 reserved without FEAT_TTST; 16 and 64 KiB:
 * 0 = level 3, 1 = level 2, 2 = level 1, 3 = level 0 for 16 KiB with DS, else reserved), which must
 * be consistent with T0SZ: the root table must resolve at least one and at most a table's bits plus
 * 4 (up to 16 concatenated tables), as in AArch64.S2InconsistentSL. PS gives the output size.
 * DS (bit 32, FEAT_LPA2; 4 and 16 KiB): T0SZ down to 12 (52-bit IPAs), PS 6 gives 52-bit PAs, output
 * and table address bits 51:50 in descriptor bits 9:8 (the shareability is then SH0's), blocks at
 * 4K level 0 and 16K level 1; SL2 (bit 33) with SL0 0 starts a 4 KiB walk at level -1. Anything
 * else is refused (hardware would fault every access at level 0).
 */
export function stage2Walk(vtcr: bigint): Geometry {
  const name = 'VTCR_EL2'
  if (vtcr < 0n || vtcr >= 1n << 64n) throw new HvmemError('input', `${name} ${hex(vtcr)} does not fit in 64 bits`)
  checkControlBits(name, vtcr)
  const granule = granuleOf(fieldOf(vtcr, 15, 14), name, vtcr)
  const ds = dsOf(vtcr, granule)
  const t0sz = fieldOf(vtcr, 5, 0)
  const inputBits = inputBitsOf(t0sz, name, vtcr, ds)
  const sl0 = fieldOf(vtcr, 7, 6)
  const sl2 = fieldOf(vtcr, 33, 33)
  let startLevel: number
  if (sl2 === 1) {
    if (!ds || granule !== 4096) throw new HvmemError('input', `${name} ${hex(vtcr)}: SL2 (bit 33) is for the 4K granule with DS (bit 32) set, for a level -1 start`)
    if (sl0 !== 0) throw new HvmemError('input', `${name} ${hex(vtcr)}: SL2 1 with SL0 ${sl0} is reserved; a level -1 start is SL2 1 with SL0 0`)
    startLevel = -1
  } else if (sl0 === 3 && granule === 16384 && ds) startLevel = 0
  else if (sl0 === 3) {
    const needs = {4096: 'a level-3 start needs FEAT_TTST', 16384: 'a level-0 start needs FEAT_LPA2 (DS, bit 32)', 65536: 'it is reserved'}[granule]
    throw new HvmemError('input', `${name} ${hex(vtcr)}: SL0 3 is reserved for the ${granuleName(granule)} granule (${needs}); use SL0 0..2`)
  } else startLevel = startLevelOfSl0(granule, sl0)
  const problem = rootBitsProblem(granule, inputBits, startLevel, ds)
  if (problem !== undefined) {
    const sl = sl2 === 1 ? 'SL2 1, SL0 0' : `SL0 ${sl0}`
    throw new HvmemError('input', `${name} ${hex(vtcr)}: ${sl} (start at level ${startLevel}) is inconsistent with T0SZ ${t0sz} (${inputBits}-bit IPA): ${problem}`)
  }
  return stage2Geometry({granule, inputBits, paBits: paBitsOf(fieldOf(vtcr, 18, 16), name, vtcr, ds), startLevel, ds})
}

/**
 * The stage-1 EL2 walk (HCR_EL2.E2H = 0, TTBR0_EL2) TCR_EL2 describes. TG0 gives the granule, T0SZ
 * the VA size and with it the start level (AArch64.S1StartLevel; with DS a 4 KiB VA above 48 bits
 * starts at level -1), PS the output size; DS (bit 32) as for VTCR_EL2.
 */
export function stage1Walk(tcr: bigint): Geometry {
  const name = 'TCR_EL2'
  if (tcr < 0n || tcr >= 1n << 64n) throw new HvmemError('input', `${name} ${hex(tcr)} does not fit in 64 bits`)
  checkControlBits(name, tcr)
  const granule = granuleOf(fieldOf(tcr, 15, 14), name, tcr)
  const ds = dsOf(tcr, granule)
  const inputBits = inputBitsOf(fieldOf(tcr, 5, 0), name, tcr, ds)
  return stage1Geometry({granule, inputBits, paBits: paBitsOf(fieldOf(tcr, 18, 16), name, tcr, ds), ds})
}

/** A regime's walk and the control-register value it came from. */
export interface ForeignWalk {
  regime: 'stage2' | 'stage1'
  /** how to read the descriptors: stage 2, or stage 1 with the given MAIR_EL2 */
  decoder: Regime
  /** the root table's address (bits 47:1 of the register value given) */
  root: bigint
  /** the register value given, split: VMID (stage 2) or ASID, and CnP */
  table: TableBase
  /** VTCR_EL2 (stage 2) or TCR_EL2 (stage 1) */
  control: bigint
  /** stage 2 only: the VMID in VTTBR_EL2 */
  vmid: number
  geometry: Geometry
  /** the registers that install this walk, by architectural name */
  registers: Array<{name: string; value: bigint}>
}

/**
 * Checks a root and a control register for a walk of tables hvmem did not build. The root is a
 * table address or a whole VTTBR_EL2 / TTBR0_EL2 value: its VMID or ASID (bits 63:48; VTTBR_EL2 with
 * VS clear, 55:48) and CnP (bit 0) are split off. Defaults: hvmem's own VTCR_EL2 (0x80023559) or
 * TCR_EL2 (0x80823519). The table must be 4 KiB aligned, inside the 48-bit output space and below
 * 2^PS, and aligned to its concatenated size.
 */
export function foreignWalk(regime: 'stage2' | 'stage1', rootValue: bigint, control?: bigint, vmid0?: number, mair?: bigint): ForeignWalk {
  if (regime === 'stage1' && vmid0 !== undefined) throw new HvmemError('input', '--vmid applies to stage 2 only: the EL2 stage-1 regime has no VMID')
  if (regime === 'stage2' && mair !== undefined) throw new HvmemError('input', '--mair applies to stage 1 only: stage-2 descriptors carry their memory type in MemAttr')
  // hvmem's own VTCR_EL2 by default, with VS for a 16-bit VMID (given, or in the VTTBR_EL2 value)
  const impliedVmid = vmid0 ?? Number((rootValue >> 48n) & 0xffffn)
  const value = control ?? (regime === 'stage2' ? vtcrFor(impliedVmid > 0xff ? impliedVmid : 0) : TCR_EL2)
  const geometry = regime === 'stage2' ? stage2Walk(value) : stage1Walk(value)
  const split = tableBase(regime === 'stage2' ? 'VTTBR_EL2' : 'TTBR0_EL2', rootValue, regime === 'stage2' && fieldOf(value, 19, 19) === 1)
  const table = tableBaseIn(split, geometry)
  const root = table.base
  // with DS, descriptor bits 9:8 are address bits: the shareability is SH0's (bits 13:12)
  const sh = geometry.ds ? fieldOf(value, 13, 12) : undefined
  if (regime === 'stage2' && table.tag !== 0 && vmid0 !== undefined && vmid0 !== table.tag) {
    throw new HvmemError('input', `--root ${hex(rootValue)} holds VMID ${table.tag} (bits 63:48), not --vmid ${vmid0}`)
  }
  const vmid = regime === 'stage2' && table.tag !== 0 ? table.tag : vmid0
  const tables = geometry.rootTables
  const align = geometry.rootAlign
  const granule = granuleName(geometry.granule)
  // a root smaller than a granule (few index bits) still lies in a granule-aligned table
  if (root < 0n || root >= geometry.paLimit || (root & (align - 1n)) !== 0n) {
    const what = tables > 1 ? `${tables} concatenated ${granule} tables, so aligned to ${hex(align)}` : `a ${granule}-aligned table`
    throw new HvmemError(
      'input',
      `--root ${hex(rootValue)} is not a valid root: ${root === rootValue ? 'it' : `its table address ${hex(root)}`} must be ${what}, below the ${geometry.paBits}-bit physical address space`,
    )
  }
  if (regime === 'stage2') {
    const v = vmid ?? 0
    checkVmid(v)
    const vs = fieldOf(value, 19, 19)
    if (v > 0xff && vs === 0) throw new HvmemError('input', `--vmid ${v} needs 16-bit VMIDs, but VTCR_EL2 ${hex(value)} has VS (bit 19) clear; pass a VMID up to 255 or set VS`)
    return {
      regime,
      decoder: sh === undefined ? STAGE2 : stage2Regime(sh),
      root,
      table,
      control: value,
      vmid: v,
      geometry,
      registers: [
        {name: 'VTTBR_EL2', value: (BigInt(v) << 48n) | rootValue},
        {name: 'VTCR_EL2', value},
      ],
    }
  }
  const m = mair ?? MAIR_EL2
  return {
    regime,
    decoder: stage1WithMair(m, sh),
    root,
    table,
    control: value,
    vmid: 0,
    geometry,
    registers: [
      {name: 'TTBR0_EL2', value: rootValue},
      {name: 'TCR_EL2', value},
      {name: 'MAIR_EL2', value: m},
    ],
  }
}

/**
 * The EL2 stage-1 regime reading AttrIndx through another MAIR_EL2 (a foreign hypervisor's): the
 * same descriptor rules as hvmem's STAGE1, whose own MAIR_EL2 is 0x0004ff00.
 */
export function stage1WithMair(mair: bigint, sh?: number): Regime {
  return mair === MAIR_EL2 && sh === undefined ? STAGE1 : stage1Regime(mair, sh)
}
