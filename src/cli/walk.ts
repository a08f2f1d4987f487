/**
 * The tables a reading command walks: the snapshot's mapper by default, or, with --root (--vttbr),
 * tables hvmem did not build (imported from a running hypervisor), with the regime and control
 * register given on the command line (--regime, --vtcr / --tcr, --vmid); or, with --regime el1
 * (--ttbr0 / --ttbr1), a guest kernel's EL1&0 tables (el1Target).
 */
import {Flags} from '@oclif/core'

import type {Regime, RegimeName, WalkRegimeName} from '../core/descriptor.js'
import {type El1Range, type El1Walk, LINUX_MAIR_EL1, el1Walk, walkEl1Range} from '../core/el1.js'
import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import type {PhysicalMemory} from '../core/memory.js'
import {type Geometry, MEMORY_PAGE, granuleName} from '../core/geometry.js'
import {foreignWalk} from '../core/regime-config.js'
import {type TableBase, describeTableBase} from '../core/table-base.js'
import {type LeafFilter, entryMatches} from '../core/leaf-filter.js'
import {hex} from '../core/u64.js'
import {type WalkEntry, walkEntries as entriesOf} from '../core/walker.js'
import {intFlag, u64Flag} from './flags.js'
import {requireMapper} from './mapper.js'
import {registersJson} from './json.js'

export const walkFlags = {
  root: u64Flag({
    summary: "Walk the tables at this root instead of the snapshot's mapper: a table address, or a whole VTTBR_EL2 / TTBR0_EL2 value (VMID or ASID and CnP are split off).",
    helpGroup: 'FOREIGN TABLES',
  }),
  vttbr: u64Flag({summary: 'Stage 2: VTTBR_EL2 as a debugger shows it (the same as --root).', helpGroup: 'FOREIGN TABLES'}),
  regime: Flags.option({
    options: ['stage2', 'stage1', 'el1'] as const,
    summary: 'With --root: stage2 (default) or stage1 (EL2); el1: the EL1&0 regime of --ttbr0/--ttbr1.',
    helpGroup: 'FOREIGN TABLES',
  })(),
  ttbr0: u64Flag({summary: 'EL1&0: TTBR0_EL1 (lower VA range) as a debugger shows it; ASID and CnP are split off.', helpGroup: 'FOREIGN TABLES'}),
  ttbr1: u64Flag({summary: 'EL1&0: TTBR1_EL1 (upper VA range) as a debugger shows it; ASID and CnP are split off.', helpGroup: 'FOREIGN TABLES'}),
  vtcr: u64Flag({summary: 'With --root, stage 2: VTCR_EL2 (T0SZ, SL0, TG0, PS give the walk; default 0x80023559).', helpGroup: 'FOREIGN TABLES'}),
  tcr: u64Flag({summary: 'With --root, stage 1: TCR_EL2 (default 0x80823519); EL1&0: TCR_EL1 (required).', helpGroup: 'FOREIGN TABLES'}),
  vmid: intFlag(0, 0xffff)({summary: 'With --root, stage 2: the VMID shown in VTTBR_EL2 (default 0, or the VMID in --root).', helpGroup: 'FOREIGN TABLES'}),
  mair: u64Flag({summary: "Stage 1: MAIR_EL2 (default 0x0004ff00); EL1&0: MAIR_EL1 (default Linux's 0xf0ff440400). AttrIndx selects from it.", helpGroup: 'FOREIGN TABLES'}),
}

interface WalkFlags {
  root?: bigint
  vttbr?: bigint
  regime?: WalkRegimeName
  ttbr0?: bigint
  ttbr1?: bigint
  vtcr?: bigint
  tcr?: bigint
  vmid?: number
  mair?: bigint
}

/** What to walk. */
export interface WalkTarget {
  regimeName: RegimeName
  regime: Regime
  root: bigint
  geometry: Geometry
  /** the registers that install these tables, by architectural name (the mapper's, or those of --root) */
  registers: Array<{name: string; value: bigint}>
  /** true for --root */
  foreign: boolean
  /** with --root: the register value it was, split (VMID or ASID, CnP) */
  table?: TableBase
}

/** A register value split into the table address, its ASID or VMID, and CnP, in --json. */
export interface TableBaseJson {
  register: string
  value: string
  table: string
  asid?: number
  vmid?: number
  cnp: boolean
}

export function tableBaseJson(t: TableBase): TableBaseJson {
  return {register: t.register, value: hex(t.value), table: hex(t.base), ...(t.tagName === 'ASID' ? {asid: t.tag} : {vmid: t.tag}), cnp: t.cnp}
}

/** The walk's description in --json (with --root): `{regime, root, startLevel, inputBits, paBits, registers, rootRegister}`. */
export interface WalkJson {
  regime: RegimeName
  root: string
  granule: number
  startLevel: number
  inputBits: number
  paBits: number
  registers: Record<string, string>
  /** the --root value as a register, when it held more than the table address: VMID or ASID, CnP */
  rootRegister?: TableBaseJson
}

export function walkJson(t: WalkTarget): WalkJson {
  return {
    regime: t.regimeName,
    root: hex(t.root),
    granule: t.geometry.granule,
    startLevel: t.geometry.startLevel,
    inputBits: t.geometry.inputBits,
    paBits: t.geometry.paBits,
    registers: registersJson(t.registers),
    ...(t.table === undefined || t.table.base === t.table.value ? {} : {rootRegister: tableBaseJson(t.table)}),
  }
}

/** One VA range of an EL1&0 walk in --json. */
export interface El1RangeJson {
  ttbr: string
  /** EPDn clear */
  enabled: boolean
  /** the first VA of the range (enabled ranges only) */
  start?: string
  granule?: number
  startLevel?: number
  inputBits?: number
  /** FEAT_LPA2 (TCR_EL1.DS, 4K and 16K ranges) */
  lpa2?: boolean
  tbi: boolean
  hpd: boolean
  /** the TTBR as given, split; absent when not given */
  register?: TableBaseJson
}

/** An EL1&0 walk in --json. */
export interface El1WalkJson {
  regime: 'el1'
  paBits: number
  registers: Record<string, string>
  ranges: El1RangeJson[]
}

export function el1RangeJson(r: El1Range): El1RangeJson {
  const g = r.geometry
  return {
    ttbr: r.ttbr,
    enabled: r.enabled,
    ...(g === undefined ? {} : {start: hex(r.base), granule: g.granule, startLevel: g.startLevel, inputBits: g.inputBits, lpa2: g.ds}),
    tbi: r.tbi,
    hpd: r.hpd,
    ...(r.table === undefined ? {} : {register: tableBaseJson(r.table)}),
  }
}

export function el1WalkJson(w: El1Walk): El1WalkJson {
  return {regime: 'el1', paBits: w.tcr.paBits, registers: registersJson(w.registers), ranges: [el1RangeJson(w.lower), el1RangeJson(w.upper)]}
}

/** `TTBR1_EL1 0x...(ASID 5): 4K granule, start level 1, 39-bit VA from 0xffffff8000000000` / `... walks disabled (EPD1)` */
export function describeEl1Range(r: El1Range): string {
  const register = r.table === undefined ? `${r.ttbr} not given` : `${r.ttbr} ${hex(r.table.value)}${describeTableBase(r.table) === '' ? '' : ` (${describeTableBase(r.table)})`}`
  const g = r.geometry
  if (g === undefined) return `${register}: walks disabled (EPD${r.ttbr === 'TTBR1_EL1' ? 1 : 0})`
  const extras = [...(g.ds ? ['FEAT_LPA2 (DS)'] : []), ...(r.tbi ? ['top byte ignored'] : []), ...(r.hpd ? ['table attributes disabled (HPD)'] : [])]
  return `${register}: ${granuleName(g.granule)} granule, start level ${g.startLevel}, ${g.inputBits}-bit VA from ${hex(r.base)}, ${g.paBits}-bit PA${extras.length > 0 ? `, ${extras.join(', ')}` : ''}`
}

/**
 * For listings (dump tables, dump map): an EL1&0 range's valid entries with the range's VAs (none
 * without its TTBR, or with its walks disabled), its root table inside RAM; with `filter`, only the
 * leaves that pass it.
 */
export function el1Entries(machine: Machine, range: El1Range, filter?: LeafFilter): WalkEntry[] {
  const g = range.geometry
  if (range.table !== undefined && g !== undefined && !machine.memory.contains(range.table.base, BigInt(g.tableBytes(g.startLevel)))) {
    throw new HvmemError('input', `${range.ttbr} ${hex(range.table.value)}: the root table must lie inside RAM ${hex(machine.memory.base)}-${hex(machine.memory.end)}`)
  }
  const entries = walkEl1Range(machine.memory, range)
  return filter === undefined ? entries : entries.filter((e) => entryMatches(e, filter))
}

const EL1_FLAGS = ['ttbr0', 'ttbr1'] as const
const FOREIGN_FLAGS = ['regime', 'vtcr', 'tcr', 'vmid', 'mair', 'vttbr', ...EL1_FLAGS] as const

/** Whether any flag names tables other than the snapshot's mapper, or describes them (--root, --regime, --vtcr, ...). */
export function namesTables(flags: WalkFlags): boolean {
  return flags.root !== undefined || FOREIGN_FLAGS.some((name) => flags[name] !== undefined)
}

/** Whether the flags ask for an EL1&0 walk: --regime el1, or --ttbr0/--ttbr1. */
function isEl1(flags: WalkFlags): boolean {
  return flags.regime === 'el1' || EL1_FLAGS.some((name) => flags[name] !== undefined)
}

/**
 * The EL1&0 walk the flags describe (--regime el1, --ttbr0, --ttbr1, --tcr, --mair), or undefined
 * when they describe another. --tcr (TCR_EL1) is required; --mair defaults to Linux's MAIR_EL1.
 */
export function el1Target(flags: WalkFlags, stage2 = false): El1Walk | undefined {
  if (!isEl1(flags)) return undefined
  if (flags.regime !== undefined && flags.regime !== 'el1') throw new HvmemError('input', `--ttbr0 and --ttbr1 are for --regime el1 (TTBR0_EL1, TTBR1_EL1), not ${flags.regime}`)
  // with --stage2, --vttbr, --vtcr and --vmid give the stage-2 tables (stage2Target)
  for (const name of stage2 ? (['root'] as const) : (['root', 'vttbr', 'vtcr', 'vmid'] as const)) {
    if (flags[name] !== undefined) throw new HvmemError('input', `--${name} is not for --regime el1, whose tables are at --ttbr0 and --ttbr1${stage2 ? ' (the stage-2 tables: --vttbr, --vtcr)' : ''}`)
  }
  if (flags.ttbr0 === undefined && flags.ttbr1 === undefined) throw new HvmemError('input', '--regime el1 needs --ttbr0 (TTBR0_EL1), --ttbr1 (TTBR1_EL1) or both')
  if (flags.tcr === undefined) throw new HvmemError('input', "--regime el1 needs --tcr (the TCR_EL1 value): it gives both VA ranges' sizes and granules")
  return el1Walk(flags.tcr, flags.mair ?? LINUX_MAIR_EL1, flags.ttbr0, flags.ttbr1)
}

/** Refuses --regime/--vtcr/--tcr/--vmid without --root, and the other regime's register. */
function checkCombination(flags: WalkFlags): void {
  if (isEl1(flags)) throw new HvmemError('input', '--regime el1 (--ttbr0, --ttbr1) is read by translate, dump tables and dump map only')
  if (flags.vttbr !== undefined) {
    if (flags.root !== undefined) throw new HvmemError('input', '--vttbr and --root both give the stage-2 root: pass one')
    if (flags.regime === 'stage1') throw new HvmemError('input', '--vttbr is for stage 2 (VTTBR_EL2); a --regime stage1 walk takes --root (TTBR0_EL2)')
  }
  if (flags.root === undefined && flags.vttbr === undefined) {
    for (const name of FOREIGN_FLAGS) {
      if (flags[name] !== undefined)
        throw new HvmemError('input', `--${name} describes the tables at --root; pass --root ADDR too (without --root the snapshot's own tables are walked, with their own settings)`)
    }
    return
  }
  const regime = flags.regime ?? 'stage2'
  if (regime === 'stage2' && flags.tcr !== undefined) throw new HvmemError('input', '--tcr is for --regime stage1 (TCR_EL2); a stage-2 walk takes --vtcr (VTCR_EL2)')
  if (regime === 'stage1' && flags.vtcr !== undefined) throw new HvmemError('input', '--vtcr is for stage 2 (VTCR_EL2); a --regime stage1 walk takes --tcr (TCR_EL2)')
}

/**
 * The tables to walk: --root's with its settings, or the snapshot's mapper (undefined if it has none
 * and `required` is false). A --root need not lie in the heap; tables outside RAM show up as the
 * walk meets them (a problem in dump tables, an external abort in translate).
 */
export function walkTarget(machine: Machine, flags: WalkFlags, required: true): WalkTarget
export function walkTarget(machine: Machine, flags: WalkFlags, required: boolean): WalkTarget | undefined
export function walkTarget(machine: Machine, flags: WalkFlags, required: boolean): WalkTarget | undefined {
  checkCombination(flags)
  const root = flags.root ?? flags.vttbr
  if (root !== undefined) {
    const regimeName = flags.regime === 'stage1' ? 'stage1' : 'stage2'
    const w = foreignWalk(regimeName, root, regimeName === 'stage2' ? flags.vtcr : flags.tcr, flags.vmid, flags.mair)
    return {regimeName, regime: w.decoder, root: w.root, geometry: w.geometry, registers: w.registers, foreign: true, table: w.table}
  }
  const mapper = required ? requireMapper(machine) : machine.mapper
  if (mapper === undefined) return undefined
  return {
    regimeName: mapper.state.regime,
    regime: mapper.regime,
    root: mapper.root,
    geometry: mapper.geometry,
    registers: mapper.registers().map((r) => ({name: r.name, value: r.value})),
    foreign: false,
  }
}

/**
 * The stage-2 tables of a two-stage EL1&0 walk (translate --stage2): --vttbr with --vtcr (default
 * hvmem's 0x80023559) and --vmid, or the snapshot's stage-2 mapper.
 */
export function stage2Target(machine: Machine, flags: WalkFlags): WalkTarget {
  if (flags.vttbr !== undefined) {
    const w = foreignWalk('stage2', flags.vttbr, flags.vtcr, flags.vmid)
    return {regimeName: 'stage2', regime: w.decoder, root: w.root, geometry: w.geometry, registers: w.registers, foreign: true, table: w.table}
  }
  for (const name of ['vtcr', 'vmid'] as const) {
    if (flags[name] !== undefined)
      throw new HvmemError('input', `--${name} describes the stage-2 tables at --vttbr; pass --vttbr too (without it the snapshot's stage-2 mapper is used, with its own settings)`)
  }
  const mapper = machine.mapper
  if (mapper === undefined) throw new HvmemError('input', '--stage2 needs stage-2 tables: the snapshot has none yet; create them with "hvmem map region" or pass --vttbr (and --vtcr)')
  if (mapper.state.regime !== 'stage2') throw new HvmemError('input', "--stage2 needs stage-2 tables: the snapshot's mapper is a stage-1 (EL2) one; pass --vttbr (and --vtcr)")
  return {regimeName: 'stage2', regime: mapper.regime, root: mapper.root, geometry: mapper.geometry, registers: mapper.registers().map((r) => ({name: r.name, value: r.value})), foreign: false}
}

/**
 * For listings (dump tables, dump map): a foreign root must lie inside RAM, all its pages (a
 * concatenated stage-2 root has up to 16). Returns how many pages the root has.
 */
export function rootPagesInRam(machine: Machine, target: WalkTarget): number {
  const g = target.geometry
  const bytes = g.tableBytes(g.startLevel)
  if (target.foreign && !machine.memory.contains(target.root, BigInt(bytes))) {
    throw new HvmemError(
      'input',
      `--root ${hex(target.root)}: the root table${g.rootTables > 1 ? `s (${g.rootTables} tables of ${g.granule / 1024} KiB)` : ''} must lie inside RAM ${hex(machine.memory.base)}-${hex(machine.memory.end)}`,
    )
  }
  return bytes / MEMORY_PAGE
}

/** "4K granule, start level 1, 39-bit input, 40-bit PA" */
export function describeWalk(g: Geometry): string {
  return `${granuleName(g.granule)} granule, start level ${g.startLevel}, ${g.inputBits}-bit input, ${g.paBits}-bit PA`
}

/** Every valid entry of the target's tables, in input-address order (a concatenated stage-2 root as one table). */
export function walkEntries(memory: PhysicalMemory, target: WalkTarget): WalkEntry[] {
  return entriesOf(memory, target.regime, target.root, target.geometry)
}

/**
 * The walk flags with what a captured snapshot recorded (snapshot capture) filled in: with no tables
 * named and no mapper, the regime the guest was running (Machine.runningRegime); with --regime el1, stage1 or stage2 and no table given,
 * that regime's recorded TTBRs, control register and MAIR; with `stage2` (translate --stage2) and no
 * stage-2 mapper, VTTBR_EL2 and VTCR_EL2 as well. Flags given always win.
 */
export function withRecordedRegisters<F extends WalkFlags>(machine: Machine, flags: F, stage2 = false): F {
  if (machine.registers.length === 0) return flags
  const r = (name: string): bigint | undefined => machine.register(name)
  const named = flags.root !== undefined || flags.vttbr !== undefined || flags.ttbr0 !== undefined || flags.ttbr1 !== undefined
  let regime = flags.regime
  if (regime === undefined && !named) {
    if (machine.mapper !== undefined) return flags
    regime = machine.runningRegime()
    if (regime === undefined) return flags
  }
  if (regime === 'el1' || (regime === undefined && (flags.ttbr0 !== undefined || flags.ttbr1 !== undefined))) {
    const tables = flags.ttbr0 === undefined && flags.ttbr1 === undefined ? {ttbr0: r('TTBR0_EL1'), ttbr1: r('TTBR1_EL1')} : {}
    // a two-stage walk takes the recorded stage-2 tables unless a stage-2 mapper or --vttbr gives them
    const s2 = stage2 && flags.vttbr === undefined && machine.mapper === undefined && r('VTTBR_EL2') !== undefined ? {vttbr: r('VTTBR_EL2'), vtcr: flags.vtcr ?? r('VTCR_EL2')} : {}
    return {...flags, regime: 'el1', ...tables, ...s2, tcr: flags.tcr ?? r('TCR_EL1'), mair: flags.mair ?? r('MAIR_EL1')}
  }
  if (regime === 'stage1' && flags.root === undefined) return {...flags, regime, root: r('TTBR0_EL2'), tcr: flags.tcr ?? r('TCR_EL2'), mair: flags.mair ?? r('MAIR_EL2')}
  if (regime === 'stage2' && flags.root === undefined && flags.vttbr === undefined) return {...flags, regime, vttbr: r('VTTBR_EL2'), vtcr: flags.vtcr ?? r('VTCR_EL2')}
  return flags
}
