/**
 * A software MMU walk of one input address, as `AT S12E1R/W` (stage 2, with HCR_EL2.DC making the
 * guest's stage 1 an identity map of Normal write-back memory) or `AT S1E2R/W` (stage 1, EL2) would do
 * it, reporting the fault an MMU would raise (Arm ARM DDI 0487, D8.11 "MMU fault types", and the
 * PAR_EL1 register description in D19.2; the fields hvmem sets are in docs/regimes.md, "PAR_EL1").
 */
import {type DescriptorKind, type LeafFields, type Regime, type Shareability, SHAREABILITY, kindOfLow} from './descriptor.js'
import {type El1Context, type El1Permissions, el1Permissions, tableAttrBits} from './el1-permissions.js'
import {DEFAULT_STAGE1, DEFAULT_STAGE2, type Geometry} from './geometry.js'
import type {PhysicalMemory} from './memory.js'
import {type TableAccess, TableWalker, memoryAccess} from './walker.js'

export type FaultKind = 'address-size' | 'translation' | 'access-flag' | 'permission' | 'external-abort'

/** Fault status codes: FSC = base | level (0-3). External abort is "synchronous external abort on a table walk". */
const FSC_BASE: Record<FaultKind, number> = {'address-size': 0b000000, translation: 0b000100, 'access-flag': 0b001000, permission: 0b001100, 'external-abort': 0b010100}
/** FEAT_LPA2's level -1 codes (no access flag or permission faults there: level -1 has no leaves). */
const FSC_LEVEL_MINUS_1: Partial<Record<FaultKind, number>> = {'address-size': 0b101001, translation: 0b101011, 'external-abort': 0b010011}

export function fscOf(kind: FaultKind, level: number): number {
  return level < 0 ? FSC_LEVEL_MINUS_1[kind]! : FSC_BASE[kind] | level
}

export interface Fault {
  kind: FaultKind
  level: number
  stage: 1 | 2
  /** the fault status code, as in ESR_ELx.ISS.xFSC and PAR_EL1.FST */
  fsc: number
  reason: string
  /** a stage-2 fault on a stage-1 table walk (ESR_EL2.ISS.S1PTW, PAR_EL1.PTW): `level` is the stage-2 walk's */
  s1ptw?: boolean
}

/**
 * Thrown by a TableAccess whose page() cannot give the table page a walk asks for (two-stage.ts: the
 * stage-2 translation of a stage-1 table fetch faulted): translate() ends the walk with this fault
 * and PAR_EL1, keeping the steps walked so far.
 */
export class TableFetchFault extends Error {
  constructor(
    readonly fault: Fault,
    readonly par: bigint,
  ) {
    super(fault.reason)
  }
}

export interface WalkStep {
  level: number
  table: bigint
  index: number
  descriptor: bigint
  kind: DescriptorKind
}

export interface Output {
  address: bigint
  level: number
  /** bytes the leaf maps */
  size: bigint
  leaf: LeafFields
  /** the final memory type, and its MAIR-format byte (what PAR_EL1.ATTR reports) */
  memType: string
  attr: number
  /** the final shareability as PAR_EL1.SH reports it: Device and Normal non-cacheable memory read as outer shareable */
  sh: number
  shareability: Shareability
  read: boolean
  write: boolean
  execute: boolean
  /** stage 1 of EL1&0: the effective AP, PXN and UXN after the table attributes */
  el1?: El1Permissions
}

export interface Translation {
  input: bigint
  write: boolean
  exec: boolean
  steps: WalkStep[]
  output?: Output
  fault?: Fault
  /** PAR_EL1 after the matching AT instruction */
  par: bigint
}

export interface AccessKind {
  write?: boolean
  exec?: boolean
}

/** PAR_EL1.PA and a table address: bits 51:12 (52 bits with FEAT_LPA2) */
export const PA_MASK = 0x000f_ffff_ffff_f000n
export const PAR_F = 1n

/** PAR_EL1 after a fault at `stage` with fault status code `fsc` (F set; PTW is the caller's to add). */
export function faultPar(stage: number, fsc: number): bigint {
  return PAR_BIT11 | (stage === 2 ? PAR_S : 0n) | (BigInt(fsc) << 1n) | PAR_F
}

/** PAR_EL1 after a translation to `address` with MAIR-format memory type `attr` and shareability `sh` (non-secure). */
export function outputPar(attr: number, address: bigint, sh: number): bigint {
  return (BigInt(attr) << 56n) | (address & PA_MASK) | PAR_BIT11 | PAR_NS | (BigInt(sh) << 7n)
}
/** on a fault: the fault was at stage 2 */
export const PAR_S = 1n << 9n
/** on a fault: a stage-2 fault on a stage-1 table walk */
export const PAR_PTW = 1n << 8n
/** on success: the output address is Non-secure (hvmem models Non-secure EL2) */
export const PAR_NS = 1n << 9n
/** IMPLEMENTATION DEFINED; QEMU (and hvmem) set it */
export const PAR_BIT11 = 1n << 11n

/**
 * `geometry` gives the granule, start level, input size and output size (from VTCR_EL2 / TCR_EL2, see
 * regime-config.ts, or the mapper's); by default hvmem's original: 4 KiB, level 1, 39-bit inputs, 40-bit PA.
 * The walk is one of walker.ts over the one address, following every table as the MMU does (an alias
 * is walked again: a single address cannot loop). `source` is where the walk reads its tables: the
 * memory by default; two-stage.ts passes one that sends each table fetch (an IPA) through stage 2,
 * whose page() may throw TableFetchFault.
 */
export function translate(
  memory: PhysicalMemory,
  regime: Regime,
  root: bigint,
  input: bigint,
  access: AccessKind = {},
  geometry: Geometry = regime.stage === 2 ? DEFAULT_STAGE2 : DEFAULT_STAGE1,
  el1?: El1Context,
  source?: TableAccess,
): Translation {
  const write = access.write ?? false
  const exec = access.exec ?? false
  const steps: WalkStep[] = []
  const stage = regime.stage
  const fail = (kind: FaultKind, level: number, reason: string): Translation => {
    const fsc = fscOf(kind, level)
    const par = faultPar(stage, fsc)
    return {input, write, exec, steps, fault: {kind, level, stage, fsc, reason}, par}
  }

  // A table outside RAM: the walk's read is an external abort. Hardware may report it in PAR_EL1 or take it
  // as a Data Abort (QEMU does the latter, with the same fault status code); hvmem reports it in `par`.
  if (input < 0n || input >= geometry.inputLimit) return fail('translation', 0, `the address is outside the ${geometry.inputBits}-bit input address space (T0SZ ${64 - geometry.inputBits})`)
  const rootTable = root & PA_MASK
  const start = geometry.startLevel
  const reader = source ?? memoryAccess(memory)
  if (!reader.inRam(Number(rootTable) + 8 * geometry.index(input, start), 8)) return fail('external-abort', start, `the level-${start} table at 0x${rootTable.toString(16)} is outside RAM`)
  const paLimit = geometry.paLimit
  let result: Translation | undefined
  /** the hierarchical attributes of the table descriptors walked (EL1&0: tableAttrBits, ORed) */
  let tables = 0
  const step = (w: TableWalker, kind: DescriptorKind): void => void steps.push({level: w.level, table: BigInt(w.table), index: w.index, descriptor: w.raw, kind})
  const at = Number(input)
  try {
    walkOne()
  } catch (error) {
    if (!(error instanceof TableFetchFault)) throw error
    return {input, write, exec, steps, fault: error.fault, par: error.par}
  }
  return result!

  function walkOne(): void {
    new TableWalker(reader, geometry).walk(
      Number(rootTable),
      at,
      at + 1,
      {
        tablePre: (w) => {
          step(w, 'table')
          tables |= tableAttrBits(w.hi)
          if (BigInt(w.next) < paLimit) return true
          result = fail('address-size', w.level, `L${w.level}[${w.index}] points at a table above the ${geometry.paBits}-bit PA limit`)
          return false
        },
        unfollowed: (w) => void (result = fail('external-abort', w.level + 1, `the level-${w.level + 1} table at 0x${w.next.toString(16)} is outside RAM`)),
        leaf: (w) => {
          const kind = kindOfLow(w.lo, w.level, geometry)
          step(w, kind)
          result = kind === 'invalid' || kind === 'reserved' ? fail('translation', w.level, `L${w.level}[${w.index}] is ${kind === 'invalid' ? 'not valid' : 'a reserved encoding'}`) : leafResult(w)
        },
      },
      {once: false},
    )
  }

  function leafResult(w: TableWalker): Translation {
    const level = w.level
    const leaf = regime.decode(w.raw, level, geometry).leaf!
    if (leaf.outputAddress >= paLimit) return fail('address-size', level, `the output address 0x${leaf.outputAddress.toString(16)} is above the ${geometry.paBits}-bit PA limit`)
    if (!leaf.af && el1?.ha !== true) return fail('access-flag', level, 'the access flag is clear (no hardware AF management)')
    const size = geometry.entrySize(level)
    if (el1 !== undefined) {
      const p = el1Permissions(w.raw, tables, el1, write)
      if (!(write ? p.write : p.read)) return fail('permission', level, `${write ? 'write' : 'read'} is not allowed: ${(write ? p.denied.write : p.denied.read) ?? ''}`)
      if (exec && !p.execute) return fail('permission', level, p.denied.execute ?? '')
      return success(level, leaf, size, {read: p.read, write: p.write, execute: p.execute, el1: p})
    }
    const perms = permissions(regime, leaf)
    if (!(write ? perms.write : perms.read)) return fail('permission', level, `${write ? 'write' : 'read'} is not allowed (${leaf.access})`)
    if (exec && !perms.execute) return fail('permission', level, 'execution is not allowed (XN)')
    return success(level, leaf, size, perms)
  }

  function success(level: number, leaf: LeafFields, size: bigint, perms: {read: boolean; write: boolean; execute: boolean; el1?: El1Permissions}): Translation {
    const effective = regime.stage === 2 ? stage2Effective(leaf) : stage1Effective(leaf)
    const address = leaf.outputAddress | (input & (size - 1n))
    const par = outputPar(effective.attr, address, effective.sh)
    return {input, write, exec, steps, output: {address, level, size, leaf, ...effective, shareability: SHAREABILITY[effective.sh]!, ...perms}, par}
  }
}

function permissions(regime: Regime, leaf: LeafFields): {read: boolean; write: boolean; execute: boolean} {
  if (regime.stage === 2) return {read: (leaf.s2ap! & 1) !== 0, write: (leaf.s2ap! & 2) !== 0, execute: leaf.executable}
  // EL2 stage 1: one privilege level, AP[2] read-only; SCTLR_EL2.WXN is 0.
  return {read: true, write: leaf.access === 'RW', execute: leaf.executable}
}

/** Stage 1 under HCR_EL2.DC: Normal inner and outer write-back (MAIR 0xff), non-shareable. */
const DC_STAGE1 = {mairAttr: 0xff, sh: 0b00}

/**
 * Stage 2 combined with the guest's stage 1 under HCR_EL2.DC (Normal write-back, non-shareable), as
 * Arm ARM D8.5.5 combines them (combineAttributes).
 */
function stage2Effective(leaf: LeafFields): {memType: string; attr: number; sh: number} {
  const {attr, sh} = combineAttributes(DC_STAGE1, leaf)
  return {memType: leaf.memType, attr, sh}
}

/**
 * Stage 1 alone (EL2, or EL1&0 without stage 2): the MAIR byte AttrIndx selects, and the descriptor's
 * shareability, except for the memory types that are outer shareable whatever it says (outerShared).
 */
function stage1Effective(leaf: LeafFields): {memType: string; attr: number; sh: number} {
  const attr = leaf.mairAttr!
  return {memType: leaf.memType, attr, sh: outerShared(attr) ? 0b10 : leaf.sh}
}

/**
 * Whether memory of MAIR-format type `attr` is outer shareable whatever a descriptor's SH says:
 * Device, and Normal inner and outer Non-cacheable (Arm ARM: PAREncodeShareability gives PAR_EL1.SH
 * 0b10 for them; the SH field of their descriptors has no effect).
 */
export function outerShared(attr: number): boolean {
  return attr >> 4 === 0 || attr === 0x44
}

export interface CombinedAttributes {
  /** MAIR-format memory type */
  attr: number
  /** PAR_EL1.SH: Device and Normal inner and outer Non-cacheable read as outer shareable */
  sh: number
  shareability: Shareability
}

/**
 * Stage 2's MemAttr as a MAIR byte (QEMU's convert_stage2_attrs): Device 0b00dd keeps its type; a
 * Normal cacheability (01 NC, 10 WT, 11 WB) becomes the MAIR nibble with read and write allocate
 * for WT and WB. The reserved inner 00 reads as 0b0011, which the combining leaves to stage 1.
 */
export function stage2Mair(memAttr: number): number {
  const outer = (memAttr >> 2) & 3
  const inner = memAttr & 3
  if (outer === 0) return inner << 2
  const nibble = (c: number): number => (c << 2) | (c === 1 ? 0 : 3)
  return (nibble(outer) << 4) | nibble(inner)
}

/** One cacheability nibble (inner or outer) of both stages: Non-cacheable wins, then write-through (allocation hints from stage 1), else stage 1's. */
function combineNibble(s1: number, s2: number): number {
  if (s1 === 0b0100 || s2 === 0b0100) return 0b0100
  if (s1 >> 2 === 0 || s1 >> 2 === 2) return s1 // stage 1 write-through
  if (s2 >> 2 === 2) return 0b1000 | (s1 & 3) // stage 2 write-through
  return s1
}

/**
 * Stage 1's memory type and shareability combined with stage 2's, HCR_EL2.FWB clear (Arm ARM D8.5.5
 * "Combining the stage 1 and stage 2 attributes", CombineS1S2Desc; QEMU's combine_cacheattrs and
 * combined_attrs_nofwb):
 * - Device at either stage gives Device, the stricter type winning (nGnRnE, then nGnRE, then nGRE, GRE).
 * - Normal at both: inner and outer cacheability each the weaker (NC, then WT, then WB), the
 *   allocation hints stage 1's. Stage 1's Tagged Normal (0xf0) stays Tagged when the result is write-back.
 * - Shareability: outer if either is outer, else inner if either is inner, else non-shareable; any
 *   Device, and Normal inner and outer Non-cacheable, is outer shareable.
 */
export function combineAttributes(s1: Pick<LeafFields, 'mairAttr' | 'sh'>, s2: Pick<LeafFields, 'memAttr' | 'sh'>): CombinedAttributes {
  const tagged = s1.mairAttr === 0xf0
  const a1 = tagged ? 0xff : s1.mairAttr!
  const a2 = stage2Mair(s2.memAttr!)
  let attr: number
  if (a1 >> 4 === 0 || a2 >> 4 === 0) {
    const lo1 = a1 >> 4 === 0 ? a1 & 0xf : 0xc
    const lo2 = a2 >> 4 === 0 ? a2 & 0xf : 0xc
    attr = Math.min(lo1, lo2) // 0 nGnRnE, 4 nGnRE, 8 nGRE, 0xc GRE: the smaller the stricter
  } else attr = (combineNibble(a1 >> 4, a2 >> 4) << 4) | combineNibble(a1 & 0xf, a2 & 0xf)
  let sh = s1.sh === 0b10 || s2.sh === 0b10 ? 0b10 : s1.sh === 0b11 || s2.sh === 0b11 ? 0b11 : 0b00
  if (outerShared(attr)) sh = 0b10
  if (tagged && attr === 0xff) attr = 0xf0
  return {attr, sh, shareability: SHAREABILITY[sh]!}
}
