import {Flags} from '@oclif/core'

import {u64Arg} from '../cli/flags.js'
import {type Parsed, ReadCommand} from '../cli/machine-command.js'
import {color} from '../cli/style.js'
import {
  type El1WalkJson,
  type WalkJson,
  type WalkTarget,
  describeEl1Range,
  describeWalk,
  el1Target,
  el1WalkJson,
  stage2Target,
  walkFlags,
  walkJson,
  walkTarget,
  withRecordedRegisters,
} from '../cli/walk.js'
import {HvmemError} from '../core/errors.js'
import type {WalkRegimeName} from '../core/descriptor.js'
import {type El1Walk, translateEl1} from '../core/el1.js'
import type {Machine} from '../core/machine.js'
import {describeTableBase} from '../core/table-base.js'
import {type Fault, type Translation, translate} from '../core/translate.js'
import {type TwoStageTranslation, translateTwoStage} from '../core/two-stage.js'
import {formatSize, hex} from '../core/u64.js'

export interface TranslateJson {
  regime: WalkRegimeName
  input: string
  /** el0 and pan: --regime el1 only */
  access: {write: boolean; exec: boolean; el0?: boolean; pan?: boolean}
  steps: Array<{level: number; table: string; index: number; descriptor: string; kind: string}>
  output: {address: string; level: number; size: number; memType: string; attr: string; sh: number; shareability: string; read: boolean; write: boolean; execute: boolean; contiguous: boolean} | null
  fault: (Omit<Fault, 'fsc'> & {fsc: string}) | null
  par: string
  /** with --root only: the walk's regime, root, start level, input and PA sizes, and registers */
  walk?: WalkJson | El1WalkJson
  /**
   * --regime el1 only: the VA range (TTBR0_EL1 or TTBR1_EL1) and the current ASID (TCR_EL1.A1 and AS
   * choose it; null when its TTBR was not given); for a translation, the
   * effective AP[2:1], PXN and UXN (after the table attributes, unless HPD) and nG
   */
  el1?: {range: string; asid: number | null; ap?: number; pxn?: boolean; uxn?: boolean; restrictedByTables?: boolean; ng?: boolean; setsAccessFlag?: boolean; setsDirty?: boolean}
  /**
   * --stage2 only: both walks. `steps`, `output`, `fault` and `par` above are the whole translation's
   * (stage 1's steps; the PA with the combined memory type and permissions; the fault, stage 1's or
   * stage 2's, with s1ptw for a stage-2 fault on a stage-1 table fetch).
   */
  twoStage?: TwoStageJson
}

/** A walk in --json: its steps, output or fault, and PAR_EL1. */
export type WalkResultJson = Pick<TranslateJson, 'input' | 'steps' | 'output' | 'fault' | 'par'>

export interface TwoStageJson {
  /** the stage-2 tables: VTTBR_EL2, VTCR_EL2 and the walk they describe */
  stage2Walk: WalkJson
  /** stage 1: its output is the IPA */
  stage1: WalkResultJson
  /** each stage-1 table page read, at its IPA, through its stage-2 walk (the last one faulted on an S1PTW fault) */
  tableFetches: Array<{level: number; ipa: string; pa: string | null; stage2: WalkResultJson}>
  /** the stage-2 walk of the IPA stage 1 gave; null when stage 1 faulted */
  stage2: WalkResultJson | null
  /** HCR_EL2.PTW as modelled */
  ptw: boolean
}

const args = {
  address: u64Arg({description: 'Input address: an IPA (stage 2), an EL2 VA (stage 1) or an EL1&0 VA (el1).', required: true}),
}

const flags = {
  write: Flags.boolean({summary: 'Translate for a write (default: a read).', default: false}),
  exec: Flags.boolean({summary: 'Also require execute permission.', default: false}),
  el0: Flags.boolean({summary: "--regime el1: an EL0 access (AT S1E0R/W) instead of EL1's.", default: false}),
  pan: Flags.boolean({summary: '--regime el1: PSTATE.PAN set (AT S1E1RP/WP): EL1 has no data access to EL0-accessible pages.', default: false}),
  stage2: Flags.boolean({
    summary: "--regime el1: both stages (HCR_EL2.VM set): the stage-1 tables and output are IPAs, translated by the snapshot's stage-2 tables or --vttbr/--vtcr.",
    default: false,
  }),
  ptw: Flags.boolean({summary: '--stage2: HCR_EL2.PTW set: a stage-1 table walk to stage-2 Device memory is a stage-2 permission fault.', default: false}),
  ...walkFlags,
}
type Input = Parsed<typeof flags, typeof args>

export default class Translate extends ReadCommand<Input, TranslateJson> {
  static override summary = 'Walk the tables for one input address, as the MMU would: each level visited, then the output address or the fault.'
  static override description = `Stage 2 walks an IPA as AT S12E1R/W does with HCR_EL2.DC set (the guest's stage 1 an identity map of Normal write-back memory); stage 1 walks an EL2 virtual address as AT S1E2R/W does. A fault is reported with its kind (translation, access flag, permission, address size; external abort when a table lies outside the snapshot's RAM), level, stage and fault status code, and PAR_EL1 is what the AT instruction would leave. A fault is a result, not an error: the exit code is 0. --exec also checks execute permission (which AT does not).

--root walks tables hvmem did not build (e.g. imported with "snapshot import"), whether or not the snapshot has a mapper: --regime says whose they are, and --vtcr (stage 2) or --tcr (stage 1, TCR_EL2) gives the start level, input size (T0SZ) and PA size (PS) as the MMU would take them; the defaults are hvmem's own 0x80023559 and 0x80823519. --root (and --vttbr) take a whole register value: the VMID or ASID and CnP are split off and shown.

--regime el1 (or --ttbr0/--ttbr1) reads a guest kernel's EL1&0 tables: TTBR0_EL1 and TTBR1_EL1 for the lower and upper VA range, TCR_EL1 (--tcr, required) and MAIR_EL1 (--mair, default Linux's 0xf0ff440400).

--stage2 (with --regime el1) translates as AT S12E1R/W (S12E0R/W with --el0) does with HCR_EL2.VM set: the guest's TTBRs and table descriptors hold IPAs, so every stage-1 table fetch goes through stage 2 first, and so does the IPA stage 1 gives. The stage-2 tables are the snapshot's mapper, or --vttbr (with --vtcr and --vmid). Both walks are shown, then the PA with the memory type and shareability of both stages combined (HCR_EL2.FWB clear) and both stages' permissions; a stage-2 fault on a stage-1 table fetch is reported with S1PTW (PAR_EL1.S and PTW set). --ptw models HCR_EL2.PTW: a stage-1 table in stage-2 Device memory is then a stage-2 permission fault.`
  static override examples = [
    '<%= config.bin %> translate 0x4020_1234',
    '<%= config.bin %> translate 0x1000_0000 --write',
    '<%= config.bin %> translate 0x0900_0000 --exec --json',
    '<%= config.bin %> translate 0x4000_1000 --root 0x4100_0000 --vtcr 0x80023558',
    '<%= config.bin %> translate 0xffff_ff80_0000_1000 --ttbr1 0x4201_0000 --tcr 0x2_8019_0019 --el0',
    '<%= config.bin %> translate 0x40_1000 --ttbr0 0x8000_0000 --tcr 0x2_8019_0019 --stage2',
  ]

  static override args = args
  static override flags = flags

  protected report(machine: Machine, {args, flags: given}: Input): TranslateJson {
    // a captured snapshot's registers fill in what the flags leave out (with --stage2, VTTBR_EL2 and VTCR_EL2 too)
    const flags = withRecordedRegisters(machine, given, given.stage2)
    const el1 = el1Target(flags, flags.stage2)
    if (flags.ptw && !flags.stage2) throw new HvmemError('input', '--ptw (HCR_EL2.PTW) is for a two-stage walk: pass --stage2 too')
    if (el1 !== undefined) return flags.stage2 ? this.twoStage(machine, el1, stage2Target(machine, flags), args.address, flags) : this.el1(machine, el1, args.address, flags)
    for (const name of ['el0', 'pan', 'stage2'] as const) if (flags[name]) throw new HvmemError('input', `--${name} is for --regime el1 (an EL1&0 walk)`)
    const target = walkTarget(machine, flags, true)
    const t = translate(machine.memory, target.regime, target.root, args.address, {write: flags.write, exec: flags.exec}, target.geometry)
    const what = [t.write ? 'write' : 'read', ...(t.exec ? ['execute'] : [])].join(' + ')
    const split = target.table === undefined ? '' : describeTableBase(target.table)
    const control = target.foreign
      ? `${split === '' ? '' : ` (${target.registers[0]!.name} ${hex(target.registers[0]!.value)}: ${split})`} (${target.registers[1]!.name} ${hex(target.registers[1]!.value)}: ${describeWalk(target.geometry)})`
      : ''
    this.log(`${target.regime.stage === 2 ? 'Stage-2 walk of IPA' : 'Stage-1 (EL2) walk of VA'} ${hex(t.input)} for ${what}, root ${hex(target.root)}${control}`)
    this.logWalk(t)
    return {
      ...translationJson(t),
      regime: target.regimeName,
      ...(target.foreign ? {walk: walkJson(target)} : {}),
    }
  }

  /** --regime el1: the VA's range, its walk, the effective permissions. */
  private el1(machine: Machine, walk: El1Walk, va: bigint, flags: {write: boolean; exec: boolean; el0: boolean; pan: boolean}): TranslateJson {
    if (flags.el0 && flags.pan) throw new HvmemError('input', '--pan is an EL1 state: it does not apply to an --el0 access')
    const t = translateEl1(machine.memory, walk, va, {write: flags.write, exec: flags.exec, el0: flags.el0, pan: flags.pan})
    const what = [`${flags.el0 ? 'EL0' : 'EL1'} ${t.write ? 'write' : 'read'}`, ...(t.exec ? ['execute'] : []), ...(flags.pan ? ['(PAN)'] : [])].join(' + ')
    this.log(`Stage-1 (EL1&0) walk of VA ${hex(va)} for ${what}, ${describeEl1Range(t.range)}`)
    const p = t.output?.el1
    // the current ASID: TTBR0_EL1's, or TTBR1_EL1's with TCR_EL1.A1 (8 bits with AS 0)
    const asid = walk.asid ?? null
    let detail: string | undefined
    if (p !== undefined) {
      const el0 = (p.ap & 1) !== 0 ? ((p.ap & 2) !== 0 ? 'RO' : 'RW') : 'none'
      const tables = p.restrictedByTables ? ', with the table attributes' : ''
      const hardware = [...(t.setsAccessFlag === true ? ['sets the access flag (HA)'] : []), ...(p.dirty ? ['sets the page dirty (HD, DBM)'] : [])]
      detail = `   AP[2:1] ${p.ap.toString(2).padStart(2, '0')} (EL1 ${(p.ap & 2) !== 0 ? 'RO' : 'RW'}, EL0 ${el0}), PXN ${Number(p.pxn)}, UXN ${Number(p.uxn)}${tables}; ${t.ng === true ? `nG: ${asid === null ? `ASID unknown (the ${((walk.tcr.value >> 22n) & 1n) === 1n ? 'TTBR1_EL1' : 'TTBR0_EL1'} that holds it was not given)` : `ASID ${asid}`}` : 'global'}${hardware.length > 0 ? `; the access ${hardware.join(' and ')}` : ''}`
    }
    this.logWalk(t, detail)
    return {
      ...translationJson(t),
      regime: 'el1',
      access: {write: t.write, exec: t.exec, el0: flags.el0, pan: flags.pan},
      walk: el1WalkJson(walk),
      el1: {
        range: t.range.ttbr,
        asid,
        ...(p === undefined ? {} : {ap: p.ap, pxn: p.pxn, uxn: p.uxn, restrictedByTables: p.restrictedByTables, ng: t.ng ?? false, setsAccessFlag: t.setsAccessFlag ?? false, setsDirty: p.dirty}),
      },
    }
  }

  /** --stage2: stage 1 with each table fetch's PA, stage 2 of the IPA, the combined result. */
  private twoStage(machine: Machine, walk: El1Walk, s2: WalkTarget, va: bigint, flags: {write: boolean; exec: boolean; el0: boolean; pan: boolean; ptw: boolean}): TranslateJson {
    if (flags.pan) throw new HvmemError('input', '--pan does not apply to --stage2: AT S12E1R/W has no PAN form')
    const t = translateTwoStage(machine.memory, walk, {regime: s2.regime, root: s2.root, geometry: s2.geometry}, va, {write: flags.write, exec: flags.exec, el0: flags.el0}, {ptw: flags.ptw})
    const what = [`${flags.el0 ? 'EL0' : 'EL1'} ${t.write ? 'write' : 'read'}`, ...(t.exec ? ['execute'] : [])].join(' + ')
    const vttbr = s2.registers.find((r) => r.name === 'VTTBR_EL2')
    const vtcr = s2.registers.find((r) => r.name === 'VTCR_EL2')
    this.log(`Two-stage (EL1&0, HCR_EL2.VM) walk of VA ${hex(va)} for ${what}${flags.ptw ? ', HCR_EL2.PTW' : ''}`)
    this.log(`Stage 1: ${describeEl1Range(t.stage1.range)}`)
    t.steps.forEach((s, i) => {
      const pa = t.fetches[i]?.stage2.output?.address
      this.log(stepLine(s, 2, `IPA ${hex(s.table)}${pa === undefined ? '' : ` (PA ${hex(pa & ~0xfffn)})`}`))
    })
    const failedFetch = t.fault?.s1ptw === true ? t.fetches.at(-1) : undefined
    if (failedFetch !== undefined) {
      this.log(`  stage 2 of the level-${failedFetch.level} table at IPA ${hex(failedFetch.ipa)}:`)
      for (const s of failedFetch.stage2.steps) this.log(stepLine(s, 4))
    }
    const o1 = t.stage1.output
    if (o1 !== undefined) {
      this.log(`  -> IPA ${hex(o1.address)}  ${o1.memType} ${o1.leaf.shareability} (${formatSize(o1.size)} ${o1.level === 3 ? 'page' : 'block'} at L${o1.level})`)
      this.log(
        `Stage 2: ${vttbr === undefined ? '' : `VTTBR_EL2 ${hex(vttbr.value)} `}${vtcr === undefined ? '' : `(VTCR_EL2 ${hex(vtcr.value)}: `}${describeWalk(s2.geometry)}${vtcr === undefined ? '' : ')'}`,
      )
      for (const s of t.stage2!.steps) this.log(stepLine(s, 2))
      const o2 = t.stage2!.output
      if (o2 !== undefined)
        this.log(`  -> PA ${hex(o2.address)}  ${o2.leaf.memType} ${o2.leaf.shareability} ${o2.leaf.access} (${formatSize(o2.size)} ${o2.level === 3 ? 'page' : 'block'} at L${o2.level})`)
    }
    const o = t.output
    if (o !== undefined) {
      const perms = `${o.read ? 'R' : '-'}${o.write ? 'W' : '-'}${o.execute ? 'X' : '-'}`
      this.log(`${color.green('->')} ${color.bold(hex(o.address))}  ${o.memType} ${o.shareability} ${perms}  (both stages combined; ${formatSize(o.size)} mapped alike)`)
    } else this.log(faultLine(t.fault!))
    this.log(`PAR_EL1 ${hex(t.par)}`)
    return {
      ...translationJson(t),
      regime: 'el1',
      access: {write: t.write, exec: t.exec, el0: flags.el0, pan: false},
      walk: el1WalkJson(walk),
      el1: {range: t.stage1.range.ttbr, asid: walk.asid ?? null},
      twoStage: twoStageJson(t, s2, flags.ptw),
    }
  }

  /** The steps, the output or fault, `detail` (if any), PAR_EL1. */
  private logWalk(t: Translation, detail?: string): void {
    for (const s of t.steps) this.log(stepLine(s, 2))
    const o = t.output
    if (o !== undefined) {
      const perms = `${o.read ? 'R' : '-'}${o.write ? 'W' : '-'}${o.execute ? 'X' : '-'}`
      const run = o.leaf.contiguous ? ', contiguous bit set' : ''
      this.log(`${color.green('->')} ${color.bold(hex(o.address))}  ${o.memType} ${o.shareability} ${perms}  (${formatSize(o.size)} ${o.level === 3 ? 'page' : 'block'} at L${o.level}${run})`)
    } else this.log(faultLine(t.fault!))
    if (detail !== undefined) this.log(detail)
    this.log(`PAR_EL1 ${hex(t.par)}`)
  }
}

/** A walk's step, indented by `indent`: the entry, the table it is in (`where`, default its address), the descriptor and its kind. */
function stepLine(s: Translation['steps'][number], indent: number, where = hex(s.table)): string {
  return `${' '.repeat(indent)}L${s.level}[${s.index}]`.padEnd(indent + 9) + ` in ${where}: ${hex(s.descriptor, 16)}  ${s.kind}`
}

/** The fault a walk ended in (on the stage-1 table walk: S1PTW). */
function faultLine(f: NonNullable<Translation['fault']>): string {
  return `${color.red('->')} ${color.bold(`${f.kind} fault`)}, level ${f.level}, stage ${f.stage}${f.s1ptw === true ? ' on the stage-1 table walk (S1PTW)' : ''} (FSC ${hex(BigInt(f.fsc), 2)}): ${f.reason}`
}

function resultJson(t: Translation): WalkResultJson {
  const {input, steps, output, fault, par} = translationJson(t)
  return {input, steps, output, fault, par}
}

function twoStageJson(t: TwoStageTranslation, s2: WalkTarget, ptw: boolean): TwoStageJson {
  return {
    stage2Walk: walkJson(s2),
    stage1: resultJson(t.stage1),
    tableFetches: t.fetches.map((f) => ({level: f.level, ipa: hex(f.ipa), pa: f.stage2.output === undefined ? null : hex(f.stage2.output.address), stage2: resultJson(f.stage2)})),
    stage2: t.stage2 === undefined ? null : resultJson(t.stage2),
    ptw,
  }
}

/** The parts of TranslateJson every regime has. */
function translationJson(t: Translation): Omit<TranslateJson, 'regime'> {
  const o = t.output
  return {
    input: hex(t.input),
    access: {write: t.write, exec: t.exec},
    steps: t.steps.map((s) => ({level: s.level, table: hex(s.table), index: s.index, descriptor: hex(s.descriptor), kind: s.kind})),
    output:
      o === undefined
        ? null
        : {
            address: hex(o.address),
            level: o.level,
            size: Number(o.size),
            memType: o.memType,
            attr: hex(BigInt(o.attr), 2),
            sh: o.sh,
            shareability: o.shareability,
            read: o.read,
            write: o.write,
            execute: o.execute,
            contiguous: o.leaf.contiguous,
          },
    fault: t.fault === undefined ? null : {...t.fault, fsc: hex(BigInt(t.fault.fsc), 2)},
    par: hex(t.par),
  }
}
