/**
 * Two-stage translation of the EL1&0 regime (HCR_EL2.VM = 1, E2H = TGE = 0), as `AT S12E1R/W` and
 * `AT S12E0R/W` do it from EL2: the stage-1 walk of the VA (el1.ts) reads its tables at IPAs, each
 * table fetch translated by stage 2 first, and the IPA stage 1 outputs is translated by stage 2 for
 * the access itself (Arm ARM DDI 0487, D8.2 "Translation process", the pseudocode AArch64.S1Walk /
 * AArch64.S2Translate and AArch64.CombineS1S2Desc; QEMU target/arm/ptw.c S1_ptw_translate,
 * get_phys_addr_twostage and combine_cacheattrs). One walker still: the stage-1 walk is walker.ts's,
 * over a TableAccess whose pages are found through stage 2.
 *
 * - A stage-2 fault on a table fetch (unmapped, no read permission, access flag clear, address size,
 *   and with HCR_EL2.PTW a table in stage-2 Device memory) ends the walk: a stage-2 fault at the
 *   stage-2 walk's level with S1PTW set (PAR_EL1.S and PAR_EL1.PTW).
 * - A stage-1 fault is reported as stage 1 alone would (PAR_EL1.S clear).
 * - A stage-2 fault on the output IPA: stage 2, its level, PTW clear.
 * - Otherwise the PA is stage 2's, permissions are both stages' (each must allow the access), and the
 *   memory type and shareability are combined with HCR_EL2.FWB clear (combineAttributes).
 */
import type {LeafFields, Regime} from './descriptor.js'
import {type El1Access, type El1Translation, type El1Walk, translateEl1} from './el1.js'
import type {Geometry} from './geometry.js'
import type {PhysicalMemory} from './memory.js'
import {mairTypeName} from './stage1.js'
import {PA_MASK, PAR_PTW, type Output, TableFetchFault, type Translation, combineAttributes, faultPar, fscOf, outputPar, translate} from './translate.js'
import {hex} from './u64.js'
import type {TableAccess} from './walker.js'

/** The stage-2 tables: VTTBR_EL2's root and VTCR_EL2's geometry (the snapshot's mapper, or --vttbr/--vtcr). */
export interface Stage2Tables {
  regime: Regime
  root: bigint
  geometry: Geometry
}

export interface TwoStageOptions {
  /** HCR_EL2.PTW: a stage-1 table walk to stage-2 Device memory is a stage-2 permission fault */
  ptw?: boolean
}

/** One stage-1 table fetch: the table page's IPA, the stage-1 level it holds, and its stage-2 walk. */
export interface TableFetch {
  level: number
  ipa: bigint
  stage2: Translation
}

export interface TwoStageTranslation extends Translation {
  /** the stage-1 walk: its output is the IPA, or its fault (a stage-2 one on a table fetch, with s1ptw) */
  stage1: El1Translation
  /** the stage-2 walks of the stage-1 table fetches, in walk order */
  fetches: TableFetch[]
  /** the stage-2 walk of the IPA stage 1 gave (none when stage 1 faulted) */
  stage2?: Translation
}

/**
 * Translates `va` through both stages. The result's `steps` are stage 1's, `output` the combined
 * translation (the PA, stage 1's leaf, the combined memory type, shareability and permissions), and
 * `par` what AT S12E1R/W (S12E0R/W with `el0`) leaves in PAR_EL1.
 */
export function translateTwoStage(memory: PhysicalMemory, walk: El1Walk, s2: Stage2Tables, va: bigint, access: El1Access = {}, options: TwoStageOptions = {}): TwoStageTranslation {
  const fetches: TableFetch[] = []
  const write = access.write ?? false
  const el0 = access.el0 ?? false
  const range = ((va >> 55n) & 1n) === 1n ? walk.upper : walk.lower
  const startLevel = range.geometry?.startLevel ?? 0
  const tables: TableAccess = {
    // the stage-1 walk reads one table page a level, from its start level down
    page(frame) {
      const level = startLevel + fetches.length
      const ipa = BigInt(frame) * 4096n
      const t = translate(memory, s2.regime, s2.root, ipa, {}, s2.geometry)
      fetches.push({level, ipa, stage2: t})
      const where = `the stage-1 level-${level} table at IPA ${hex(ipa)}`
      if (t.fault !== undefined) throw new TableFetchFault({...t.fault, reason: `${where}: ${t.fault.reason}`, s1ptw: true}, t.par | PAR_PTW)
      const o = t.output!
      if (options.ptw === true && (o.attr & 0xf0) === 0) {
        const fsc = fscOf('permission', o.level)
        throw new TableFetchFault({kind: 'permission', level: o.level, stage: 2, fsc, reason: `${where} is ${o.memType} memory at stage 2 (HCR_EL2.PTW)`, s1ptw: true}, faultPar(2, fsc) | PAR_PTW)
      }
      const pa = o.address & PA_MASK
      if (!memory.contains(pa, 8n)) {
        const fsc = fscOf('external-abort', level)
        throw new TableFetchFault({kind: 'external-abort', level, stage: 1, fsc, reason: `${where} is at PA ${hex(pa)}, outside RAM`}, faultPar(1, fsc))
      }
      return memory.pageOfFrame(Number(pa / 4096n))
    },
    // where a table lies is known only once stage 2 has translated it: page() checks
    inRam: () => true,
  }
  const stage1 = translateEl1(memory, walk, va, access, tables)
  const base = {stage1, fetches, input: va, write: stage1.write, exec: stage1.exec, steps: stage1.steps}
  if (stage1.output === undefined) return {...base, fault: stage1.fault!, par: stage1.par}
  const s1 = stage1.output
  const stage2 = translate(memory, s2.regime, s2.root, s1.address, {write}, s2.geometry)
  if (stage2.output === undefined) return {...base, stage2, fault: {...stage2.fault!, reason: `the IPA ${hex(s1.address)}: ${stage2.fault!.reason}`}, par: stage2.par}
  const o2 = stage2.output
  const combined = combineAttributes(s1.leaf, o2.leaf)
  const address = o2.address
  const s2Exec = stage2Executable(o2.leaf, el0)
  const output: Output = {
    address,
    level: s1.level,
    size: s1.size < o2.size ? s1.size : o2.size,
    leaf: s1.leaf,
    memType: mairTypeName(combined.attr),
    attr: combined.attr,
    sh: combined.sh,
    shareability: combined.shareability,
    read: s1.read && o2.read,
    write: s1.write && o2.write,
    execute: s1.execute && s2Exec,
    ...(s1.el1 === undefined ? {} : {el1: s1.el1}),
  }
  if (stage1.exec && !s2Exec) {
    const fsc = fscOf('permission', o2.level)
    return {
      ...base,
      stage2,
      fault: {kind: 'permission', level: o2.level, stage: 2, fsc, reason: `the IPA ${hex(s1.address)}: execution is not allowed at stage 2 (XN ${o2.leaf.xn ?? 0})`},
      par: faultPar(2, fsc),
    }
  }
  const par = outputPar(combined.attr, address, combined.sh)
  return {...base, stage2, output, par}
}

/** Stage 2's XN[1:0] (FEAT_XNX): 0 executable at EL1 and EL0, 1 not at EL1, 2 at neither, 3 not at EL0. */
export function stage2Executable(leaf: LeafFields, el0: boolean): boolean {
  const xn = leaf.xn ?? 0
  return el0 ? xn === 0 || xn === 1 : xn === 0 || xn === 3
}

// (the attribute combining is translate.ts's, which a stage-2 walk under HCR_EL2.DC uses too)
export {type CombinedAttributes, combineAttributes, stage2Mair} from './translate.js'
