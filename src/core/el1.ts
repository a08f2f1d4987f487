/**
 * Stage 1 of the EL1&0 translation regime (HCR_EL2.E2H = 0, TGE = 0): two VA ranges, the lower under
 * TTBR0_EL1 and the upper under TTBR1_EL1, controlled by TCR_EL1 and read through MAIR_EL1 (Arm ARM
 * DDI 0487, D8.2 "Translation process", the TCR_EL1 description, and the pseudocode AArch64.S1Walk /
 * AArch64.S1StartLevel; QEMU's aa64_va_parameters and get_phys_addr_lpae do the same).
 *
 * - VA bit 55 selects the range. The bits above the range's input size (up to bit 63, or bit 55 with
 *   TBIn, top byte ignored) must all equal bit 55; an address between the ranges is a level-0
 *   translation fault, as is any address of a range whose walks are disabled (EPDn).
 * - T0SZ/T1SZ give each range's input size, TG0 (0 4K, 1 64K, 2 16K) and TG1 (1 16K, 2 4K, 3 64K) its
 *   granule, and with them its start level; IPS the output size (52 acts as 48 without FEAT_LPA).
 * - HPD0/HPD1 disable the hierarchical table attributes of a range (el1-permissions.ts).
 * - HA: a leaf with the access flag clear translates (the walk sets the flag; hvmem's translate
 *   reports it and writes nothing); HD: a write to a DBM leaf clears AP[2] (as QEMU 7.2 does).
 * - DS (FEAT_LPA2) for the 4K and 16K granules: T0SZ/T1SZ down to 12 (52-bit VAs, a 4K level -1
 *   root), 52-bit outputs with IPS 6, address bits 51:50 in descriptor bits 9:8 (so SH comes from
 *   TCR_EL1.SH0/SH1), TTBR bits 51:48 in its bits 5:2, blocks at 4K level 0 and 16K level 1. A 64K
 *   range ignores DS (FEAT_LPA's 52-bit 64K format is not modelled: 48 bits).
 * Each range is its own Geometry, walked by the one walker at the offset of the range's VA.
 */
import {checkControlBits} from './control-bits.js'
import {type LeafFields, Regime} from './descriptor.js'
import type {El1Context} from './el1-permissions.js'
import {HvmemError} from './errors.js'
import {type Geometry, type Granule, LPA2_BITS, MAX_INPUT_BITS, MAX_PA_BITS, MIN_INPUT_BITS, PA_SIZES, granuleName, granuleOfTg0, stage1Geometry} from './geometry.js'
import type {PhysicalMemory} from './memory.js'
import {STAGE1_ATTR_BITS, stage1LeafFields} from './stage1.js'
import {type TableBase, tableBase, tableBaseIn} from './table-base.js'
import {type AccessKind, type Translation, translate} from './translate.js'
import {hex} from './u64.js'
import {type TableAccess, type WalkEntry, walkTables} from './walker.js'

export type El1HalfName = 'TTBR0_EL1' | 'TTBR1_EL1'

/** One VA range of TCR_EL1. */
export interface El1Half {
  ttbr: El1HalfName
  /** how the range's descriptors read (with DS, SH is TCR_EL1.SHn) */
  decoder: Regime
  /** EPDn clear: walks of this range are enabled */
  enabled: boolean
  /** enabled ranges only */
  geometry?: Geometry
  tbi: boolean
  hpd: boolean
}

export interface TcrEl1 {
  value: bigint
  lower: El1Half
  upper: El1Half
  paBits: number
  /** DS (bit 59): FEAT_LPA2 */
  ds: boolean
  /** HA (bit 39): hardware sets the access flag; HD (bit 40): hardware sets DBM leaves dirty */
  ha: boolean
  hd: boolean
}

function fieldOf(value: bigint, hi: number, lo: number): number {
  return Number((value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n))
}

/** TCR_EL1.TG1: 1 = 16 KiB, 2 = 4 KiB, 3 = 64 KiB (0 reserved). Not TG0's encoding. */
const TG1_GRANULE: ReadonlyArray<Granule | undefined> = [undefined, 16384, 4096, 65536]

export function tg1Of(granule: Granule): number {
  return TG1_GRANULE.indexOf(granule)
}

function half(tcr: bigint, upper: boolean, ips: number, mair: bigint): El1Half {
  const ttbr: El1HalfName = upper ? 'TTBR1_EL1' : 'TTBR0_EL1'
  const n = upper ? 1 : 0
  const enabled = fieldOf(tcr, upper ? 23 : 7, upper ? 23 : 7) === 0
  const tbi = fieldOf(tcr, 37 + n, 37 + n) === 1
  const hpd = fieldOf(tcr, 41 + n, 41 + n) === 1
  if (!enabled) return {ttbr, decoder: el1Regime(mair), enabled, tbi, hpd}
  const tgName = `TG${n}`
  const tg = upper ? fieldOf(tcr, 31, 30) : fieldOf(tcr, 15, 14)
  const granule = upper ? TG1_GRANULE[tg] : granuleOfTg0(tg)
  if (granule === undefined) {
    const valid = upper ? '1 (16 KiB), 2 (4 KiB) or 3 (64 KiB)' : '0 (4 KiB), 1 (64 KiB) or 2 (16 KiB)'
    throw new HvmemError('input', `TCR_EL1 ${hex(tcr)}: ${tgName} ${tg} is reserved; ${tgName} must be ${valid}`)
  }
  const ds = fieldOf(tcr, 59, 59) === 1 && granule !== 65536
  const szName = `T${n}SZ`
  const tsz = upper ? fieldOf(tcr, 21, 16) : fieldOf(tcr, 5, 0)
  const inputBits = 64 - tsz
  const maxBits = ds ? LPA2_BITS : MAX_INPUT_BITS
  if (inputBits < MIN_INPUT_BITS || inputBits > maxBits) {
    const without = ds ? 'without FEAT_TTST' : 'without FEAT_LPA2 (DS) or FEAT_TTST'
    throw new HvmemError('input', `TCR_EL1 ${hex(tcr)}: ${szName} ${tsz} (${inputBits}-bit VAs) is out of range; ${szName} must be ${64 - maxBits}..${64 - MIN_INPUT_BITS} ${without}`)
  }
  // Without DS (and with 64K, which DS does not change here) a PS above 48 bits acts as 48.
  const paBits = ds ? ips : Math.min(ips, MAX_PA_BITS)
  // With DS descriptor bits 9:8 are address bits 51:50: the shareability is TCR_EL1.SH0/SH1's
  const sh = ds ? fieldOf(tcr, upper ? 29 : 13, upper ? 28 : 12) : undefined
  return {ttbr, decoder: el1Regime(mair, sh), enabled, tbi, hpd, geometry: stage1Geometry({granule, inputBits, paBits, ds})}
}

/** Reads TCR_EL1: each range's geometry (enabled ranges only), TBI, HPD, and the output size; `mair` (MAIR_EL1) gives the memory types. */
export function tcrEl1(tcr: bigint, mair: bigint = LINUX_MAIR_EL1): TcrEl1 {
  if (tcr < 0n || tcr >= 1n << 64n) throw new HvmemError('input', `TCR_EL1 ${hex(tcr)} does not fit in 64 bits`)
  checkControlBits('TCR_EL1', tcr)
  const ips = fieldOf(tcr, 34, 32)
  const bits = PA_SIZES[ips]
  if (bits === undefined) throw new HvmemError('input', `TCR_EL1 ${hex(tcr)}: IPS ${ips} is reserved; IPS must be 0..6 (32..52-bit physical addresses)`)
  const ds = fieldOf(tcr, 59, 59) === 1
  return {
    value: tcr,
    lower: half(tcr, false, bits, mair),
    upper: half(tcr, true, bits, mair),
    paBits: ds ? bits : Math.min(bits, MAX_PA_BITS),
    ds,
    ha: fieldOf(tcr, 39, 39) === 1,
    hd: fieldOf(tcr, 40, 40) === 1,
  }
}

/** MAIR_EL1 as Linux sets it (arch/arm64/include/asm/memory.h, 6.x): Device-nGnRnE, Device-nGnRE, Normal-NC, Normal-WB, Normal-Tagged. */
export const LINUX_MAIR_EL1 = 0x0000_00f0_ff44_0400n

/** The EL1&0 regime's reading of a descriptor through `mair` (MAIR_EL1); `sh` (with DS: TCR_EL1.SHn) replaces descriptor bits 9:8 as the shareability. */
export function el1Regime(mair: bigint, sh?: number): Regime {
  return new Regime({
    name: 'el1',
    stage: 1,
    attrBits: STAGE1_ATTR_BITS,
    decodeLeaf(descriptor: bigint, outputAddress: bigint): LeafFields {
      const fields = stage1LeafFields(descriptor, outputAddress, mair, sh)
      const ap = Number((descriptor >> 6n) & 3n)
      const pxn = ((descriptor >> 53n) & 1n) === 1n
      const uxn = ((descriptor >> 54n) & 1n) === 1n
      const el0Access = (ap & 1) === 0 ? 'none' : (ap & 2) !== 0 ? 'RO' : 'RW'
      return {
        ...fields,
        executable: !pxn && el0Access !== 'RW',
        el0Access,
        el0Executable: !uxn,
        pxn,
        uxn,
        ng: ((descriptor >> 11n) & 1n) === 1n,
      }
    },
  })
}

/** One range of a walk: its TTBR (when given) and its settings. */
export interface El1Range extends El1Half {
  table?: TableBase
  /** the first VA of the range: 0, or 2^64 - 2^inputBits */
  base: bigint
}

/** Foreign EL1&0 tables: TCR_EL1, MAIR_EL1 and the TTBRs given. */
export interface El1Walk {
  tcr: TcrEl1
  mair: bigint
  lower: El1Range
  upper: El1Range
  /** the registers, by architectural name, as given */
  registers: Array<{name: string; value: bigint}>
  /**
   * The current ASID, which nG leaves are specific to: TTBR0_EL1's or (TCR_EL1.A1) TTBR1_EL1's bits
   * 63:48, or only 55:48 with 8-bit ASIDs (TCR_EL1.AS 0). Undefined when that TTBR was not given.
   */
  asid?: number
}

const TWO_64 = 1n << 64n

/**
 * Checks the registers of an EL1&0 walk. At least one TTBR; each given TTBR's range must be enabled
 * (EPDn clear) and its table address granule-aligned and below 2^IPS. The ASID (bits 63:48) and CnP
 * (bit 0) are split off.
 */
export function el1Walk(tcrValue: bigint, mair: bigint, ttbr0?: bigint, ttbr1?: bigint): El1Walk {
  const tcr = tcrEl1(tcrValue, mair)
  if (ttbr0 === undefined && ttbr1 === undefined) throw new HvmemError('input', 'an EL1&0 walk needs TTBR0_EL1, TTBR1_EL1 or both')
  const range = (h: El1Half, value: bigint | undefined): El1Range => {
    const base = h.ttbr === 'TTBR1_EL1' && h.geometry !== undefined ? TWO_64 - h.geometry.inputLimit : 0n
    if (value === undefined) return {...h, base}
    const split = tableBase(h.ttbr, value)
    const g = h.geometry
    const table = tableBaseIn(split, g)
    if (g !== undefined && (table.base >= g.paLimit || (table.base & (BigInt(g.granule) - 1n)) !== 0n)) {
      throw new HvmemError('input', `${h.ttbr} ${hex(value)}: the table address ${hex(table.base)} must be ${granuleName(g.granule)}-aligned and below the ${g.paBits}-bit physical address space`)
    }
    return {...h, base, table}
  }
  const registers = [
    ...(ttbr0 === undefined ? [] : [{name: 'TTBR0_EL1', value: ttbr0}]),
    ...(ttbr1 === undefined ? [] : [{name: 'TTBR1_EL1', value: ttbr1}]),
    {name: 'TCR_EL1', value: tcrValue},
    {name: 'MAIR_EL1', value: mair},
  ]
  const asidTtbr = fieldOf(tcrValue, 22, 22) === 1 ? ttbr1 : ttbr0
  const asid = asidTtbr === undefined ? undefined : Number((asidTtbr >> 48n) & (fieldOf(tcrValue, 36, 36) === 1 ? 0xffffn : 0xffn))
  return {tcr, mair, lower: range(tcr.lower, ttbr0), upper: range(tcr.upper, ttbr1), registers, ...(asid === undefined ? {} : {asid})}
}

export interface El1Access extends AccessKind {
  el0?: boolean
  pan?: boolean
}

export interface El1Translation extends Translation {
  /** the range bit 55 selected, and its TTBR (the ASID is the TTBR's) */
  range: El1Range
  /** the leaf's nG (bit 11): the translation is specific to the ASID */
  ng?: boolean
  /** HA: the leaf's access flag is clear and the access would set it */
  setsAccessFlag?: boolean
}

/** The range of `va` (bit 55). */
export function rangeOf(walk: El1Walk, va: bigint): El1Range {
  return ((va >> 55n) & 1n) === 1n ? walk.upper : walk.lower
}

/**
 * Translates an EL1&0 VA as AT S1E1R/W (or S1E0R/W with `el0`) would, from EL2 with HCR_EL2.E2H and
 * TGE clear and stage 2 off: PAR_EL1 holds the PA or the fault. Throws when the range's TTBR was not
 * given (there is nothing to walk). `tables`: where the walk reads its tables (translate()'s; two-stage.ts
 * reads them through stage 2).
 */
export function translateEl1(memory: PhysicalMemory, walk: El1Walk, va: bigint, access: El1Access = {}, tables?: TableAccess): El1Translation {
  if (va < 0n || va >= TWO_64) throw new HvmemError('input', `VA ${hex(va)} does not fit in 64 bits`)
  const range = rangeOf(walk, va)
  const upper = range.ttbr === 'TTBR1_EL1'
  const g = range.geometry
  const kind = {write: access.write ?? false, exec: access.exec ?? false}
  const context: El1Context = {el0: access.el0 ?? false, pan: access.pan ?? false, hpd: range.hpd, ha: walk.tcr.ha, hd: walk.tcr.hd}
  const fault = (reason: string): El1Translation => {
    // the same level-0 translation fault translate() reports for an input outside the range
    const t = translate(memory, range.decoder, 0n, -1n, kind, g ?? walk.lower.geometry ?? walk.upper.geometry, context)
    return {...t, input: va, fault: {...t.fault!, reason}, range}
  }
  if (!range.enabled) return fault(`walks of the ${upper ? 'upper' : 'lower'} range are disabled (TCR_EL1.EPD${upper ? 1 : 0} 1)`)
  const geometry = g!
  const inputBits = geometry.inputBits
  const addrBits = range.tbi ? 56 : 64
  const top = (va & ((1n << BigInt(addrBits)) - 1n)) >> BigInt(inputBits)
  const ones = (1n << BigInt(addrBits - inputBits)) - 1n
  if (top !== (upper ? ones : 0n)) {
    return fault(`the address is outside both ${inputBits}-bit ranges: bits ${addrBits - 1}:${inputBits} are neither all 0 (TTBR0_EL1) nor all 1 (TTBR1_EL1)${range.tbi ? ' (top byte ignored)' : ''}`)
  }
  if (range.table === undefined) throw new HvmemError('input', `VA ${hex(va)} is in the ${upper ? 'upper' : 'lower'} range, whose ${range.ttbr} was not given`)
  const t = translate(memory, range.decoder, range.table.base, va & (geometry.inputLimit - 1n), kind, geometry, context, tables)
  return {...t, input: va, range, ...(t.output === undefined ? {} : {ng: t.output.leaf.ng ?? false, setsAccessFlag: !t.output.leaf.af})}
}

/** Every valid entry of a range's tables, with the VAs of the range (empty without its TTBR, or when disabled). */
export function walkEl1Range(memory: PhysicalMemory, range: El1Range): WalkEntry[] {
  if (range.table === undefined || range.geometry === undefined) return []
  const entries: WalkEntry[] = []
  const base = range.base
  walkTables(memory, range.decoder, range.table.base, range.geometry, (c) => {
    const e = c.entry()
    e.ipa += base
    entries.push(e)
  })
  return entries
}
