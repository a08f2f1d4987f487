/**
 * Walk configurations from translation-control registers: where a table walk starts, how many
 * input-address bits it translates, and the output-address size above which it faults. hvmem's own
 * tables use one fixed setup (VTCR_EL2 0x80023559 / TCR_EL2 0x80823519: 39-bit inputs, start at
 * level 1, 40-bit PA); tables built by someone else (a running hypervisor, an imported memory image)
 * are walked with the control register they were built for.
 *
 * The rules are the Arm ARM's (DDI 0487, D8.2 "Translation process", the VTCR_EL2 and TCR_EL2
 * descriptions, and the pseudocode AArch64.S1StartLevel, AArch64.S2InconsistentSL and
 * AArch64.S2InvalidSL), for the 4 KiB granule without FEAT_LPA2 or FEAT_TTST.
 */
import type {Regime} from './descriptor.js'
import {HvmemError} from './errors.js'
import {STAGE2} from './stage2.js'
import {MAIR_EL2, STAGE1, stage1Regime} from './stage1.js'
import {IPA_BITS, PA_BITS, START_LEVEL, TCR_EL2, checkVmid, vtcrFor} from './registers.js'
import {hex} from './u64.js'

export interface WalkConfig {
  /** the level of the root table: 0, 1 or 2 */
  startLevel: number
  /** input-address bits the tables translate (64 - T0SZ); inputs at or above 2^inputBits fault at level 0 */
  inputBits: bigint
  /** output-address bits (the PS field, at most 48): a table or output address at or above 2^paBits is an address-size fault */
  paBits: bigint
}

/** What hvmem's own tables use (and what a walk assumes when no control register is given). */
export const DEFAULT_WALK: WalkConfig = {startLevel: START_LEVEL, inputBits: IPA_BITS, paBits: PA_BITS}

/** PS / IPS encodings: 0..6 = 32, 36, 40, 42, 44, 48, 52 bits. */
const PS_BITS = [32n, 36n, 40n, 42n, 44n, 48n, 52n] as const
/** Without FEAT_LPA the largest output size is 48 bits: a PS of 52 bits acts as 48 (Arm ARM, "PS ... greater than the implemented size"). */
const MAX_PA_BITS = 48n
/** 4 KiB granule, without FEAT_TTST (T0SZ at most 39) or 52-bit inputs (T0SZ at least 16). */
const MIN_T0SZ = 16
const MAX_T0SZ = 39
const GRANULE_BITS = 12
const STRIDE = 9
const FINAL_LEVEL = 3

/** Bits of the root table's index at a start level: the rest of the input above that level's shift. */
export function rootIndexBits(config: WalkConfig): number {
  return Number(config.inputBits) - (GRANULE_BITS + STRIDE * (FINAL_LEVEL - config.startLevel))
}

/** How many 4 KiB tables the root is made of (stage 2 may concatenate up to 16 at the start level). */
export function rootTables(config: WalkConfig): number {
  return Math.max(1, 2 ** (rootIndexBits(config) - STRIDE))
}

function fieldOf(value: bigint, hi: number, lo: number): number {
  return Number((value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n))
}

function checkT0sz(t0sz: number, register: string, value: bigint): void {
  if (t0sz < MIN_T0SZ || t0sz > MAX_T0SZ) {
    throw new HvmemError(
      'input',
      `${register} ${hex(value)}: T0SZ ${t0sz} (${64 - t0sz}-bit inputs) is out of range for the 4 KiB granule; T0SZ must be ${MIN_T0SZ}..${MAX_T0SZ} (48- to 25-bit inputs)`,
    )
  }
}

function checkGranule(tg0: number, register: string, value: bigint): void {
  if (tg0 !== 0) {
    const name = ['4 KiB', '64 KiB', '16 KiB', 'a reserved'][tg0]!
    throw new HvmemError('input', `${register} ${hex(value)}: TG0 ${tg0} selects ${name} granule; hvmem walks 4 KiB-granule tables only (TG0 = 0)`)
  }
}

function paBitsOf(ps: number, register: string, value: bigint): bigint {
  const bits = PS_BITS[ps]
  if (bits === undefined) throw new HvmemError('input', `${register} ${hex(value)}: PS ${ps} is reserved; PS must be 0..6 (32..52-bit physical addresses)`)
  return bits > MAX_PA_BITS ? MAX_PA_BITS : bits
}

/**
 * The stage-2 walk VTCR_EL2 describes. T0SZ gives the IPA size; SL0 the start level (4 KiB granule:
 * 0 = level 2, 1 = level 1, 2 = level 0; 3 is reserved without FEAT_TTST), which must be consistent
 * with T0SZ: the root table must resolve at least one and at most 9 + 4 input bits (up to 16
 * concatenated tables), as in AArch64.S2InconsistentSL. TG0 must be 0 (4 KiB); PS gives the
 * output size. Anything else is refused (hardware would fault every access at level 0).
 */
export function stage2Walk(vtcr: bigint): WalkConfig {
  const name = 'VTCR_EL2'
  if (vtcr < 0n || vtcr >= 1n << 64n) throw new HvmemError('input', `${name} ${hex(vtcr)} does not fit in 64 bits`)
  const t0sz = fieldOf(vtcr, 5, 0)
  const sl0 = fieldOf(vtcr, 7, 6)
  checkGranule(fieldOf(vtcr, 15, 14), name, vtcr)
  checkT0sz(t0sz, name, vtcr)
  if (sl0 === 3) throw new HvmemError('input', `${name} ${hex(vtcr)}: SL0 3 is reserved for the 4 KiB granule (a level-3 start needs FEAT_TTST); use SL0 0 (level 2), 1 (level 1) or 2 (level 0)`)
  const startLevel = 2 - sl0
  const inputBits = 64 - t0sz
  // AArch64.S2InconsistentSL: at least one bit for the start level, at most a full level plus 16 concatenated tables
  const minBits = STRIDE * (FINAL_LEVEL - startLevel) + GRANULE_BITS + 1
  const maxBits = minBits + (STRIDE - 1) + 4
  if (inputBits < minBits || inputBits > maxBits) {
    throw new HvmemError(
      'input',
      `${name} ${hex(vtcr)}: SL0 ${sl0} (start at level ${startLevel}) is inconsistent with T0SZ ${t0sz} (${inputBits}-bit IPA); a level-${startLevel} start needs a ${Math.max(minBits, 64 - MAX_T0SZ)}- to ${Math.min(maxBits, 64 - MIN_T0SZ)}-bit IPA (T0SZ ${Math.max(MIN_T0SZ, 64 - maxBits)}..${Math.min(MAX_T0SZ, 64 - minBits)})`,
    )
  }
  return {startLevel, inputBits: BigInt(inputBits), paBits: paBitsOf(fieldOf(vtcr, 18, 16), name, vtcr)}
}

/**
 * The stage-1 EL2 walk (HCR_EL2.E2H = 0, TTBR0_EL2) TCR_EL2 describes. T0SZ gives the VA size and
 * with it the start level (AArch64.S1StartLevel: 3 - floor((inputBits - 1 - 12) / 9): 40..48 bits
 * start at level 0, 31..39 at level 1, 25..30 at level 2); TG0 must be 0 (4 KiB); PS gives the output size.
 */
export function stage1Walk(tcr: bigint): WalkConfig {
  const name = 'TCR_EL2'
  if (tcr < 0n || tcr >= 1n << 64n) throw new HvmemError('input', `${name} ${hex(tcr)} does not fit in 64 bits`)
  const t0sz = fieldOf(tcr, 5, 0)
  checkGranule(fieldOf(tcr, 15, 14), name, tcr)
  checkT0sz(t0sz, name, tcr)
  const inputBits = 64 - t0sz
  const startLevel = FINAL_LEVEL - Math.floor((inputBits - 1 - GRANULE_BITS) / STRIDE)
  return {startLevel, inputBits: BigInt(inputBits), paBits: paBitsOf(fieldOf(tcr, 18, 16), name, tcr)}
}

/** A regime's walk and the control-register value it came from. */
export interface ForeignWalk {
  regime: 'stage2' | 'stage1'
  /** how to read the descriptors: stage 2, or stage 1 with the given MAIR_EL2 */
  decoder: Regime
  root: bigint
  /** VTCR_EL2 (stage 2) or TCR_EL2 (stage 1) */
  control: bigint
  /** stage 2 only: the VMID in VTTBR_EL2 */
  vmid: number
  config: WalkConfig
  /** the registers that install this walk, by architectural name */
  registers: Array<{name: string; value: bigint}>
}

/**
 * Checks a root table address and a control register for a walk of tables hvmem did not build.
 * Defaults: hvmem's own VTCR_EL2 (0x80023559) or TCR_EL2 (0x80823519). The root must be 4 KiB
 * aligned, inside the 48-bit output space and below 2^PS, and aligned to its concatenated size.
 */
export function foreignWalk(regime: 'stage2' | 'stage1', root: bigint, control?: bigint, vmid?: number, mair?: bigint): ForeignWalk {
  if (regime === 'stage1' && vmid !== undefined) throw new HvmemError('input', '--vmid applies to stage 2 only: the EL2 stage-1 regime has no VMID')
  if (regime === 'stage2' && mair !== undefined) throw new HvmemError('input', '--mair applies to stage 1 only: stage-2 descriptors carry their memory type in MemAttr')
  const value = control ?? (regime === 'stage2' ? vtcrFor(vmid ?? 0) : TCR_EL2)
  const config = regime === 'stage2' ? stage2Walk(value) : stage1Walk(value)
  const tables = rootTables(config)
  const align = 4096n * BigInt(tables)
  if (root < 0n || root >= 1n << config.paBits || (root & (align - 1n)) !== 0n) {
    const what = tables > 1 ? `${tables} concatenated 4 KiB tables, so aligned to ${hex(align)}` : 'a 4 KiB-aligned table'
    throw new HvmemError('input', `--root ${hex(root)} is not a valid root: it must be ${what}, below the ${config.paBits}-bit physical address space`)
  }
  if (regime === 'stage2') {
    const v = vmid ?? 0
    checkVmid(v)
    const vs = fieldOf(value, 19, 19)
    if (v > 0xff && vs === 0) throw new HvmemError('input', `--vmid ${v} needs 16-bit VMIDs, but VTCR_EL2 ${hex(value)} has VS (bit 19) clear; pass a VMID up to 255 or set VS`)
    return {regime, decoder: STAGE2, root, control: value, vmid: v, config, registers: [{name: 'VTTBR_EL2', value: (BigInt(v) << 48n) | root}, {name: 'VTCR_EL2', value}]}
  }
  const m = mair ?? MAIR_EL2
  return {regime, decoder: stage1WithMair(m), root, control: value, vmid: 0, config, registers: [{name: 'TTBR0_EL2', value: root}, {name: 'TCR_EL2', value}, {name: 'MAIR_EL2', value: m}]}
}

/**
 * The EL2 stage-1 regime reading AttrIndx through another MAIR_EL2 (a foreign hypervisor's): the
 * same descriptor rules as hvmem's STAGE1, whose own MAIR_EL2 is 0x0004ff00.
 */
export function stage1WithMair(mair: bigint): Regime {
  return mair === MAIR_EL2 ? STAGE1 : stage1Regime(mair)
}
