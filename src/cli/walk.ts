/**
 * The tables a reading command walks: the snapshot's mapper by default, or, with --root, tables hvmem
 * did not build (imported from a running hypervisor), with the regime and control register given on
 * the command line (--regime, --vtcr / --tcr, --vmid).
 */
import {Flags} from '@oclif/core'

import type {Regime, RegimeName} from '../core/descriptor.js'
import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import type {PhysicalMemory} from '../core/memory.js'
import {type Geometry, MEMORY_PAGE, granuleName} from '../core/geometry.js'
import {foreignWalk} from '../core/regime-config.js'
import {hex} from '../core/u64.js'
import {type WalkEntry, walkTables} from '../core/walker.js'
import {intFlag, u64Flag} from './flags.js'
import {requireMapper} from './mapper.js'

export const walkFlags = {
  root: u64Flag({summary: 'Walk the tables at this root (physical address) instead of the snapshot\'s mapper: tables hvmem did not build.', helpGroup: 'FOREIGN TABLES'}),
  regime: Flags.option({options: ['stage2', 'stage1'] as const, summary: 'With --root: the regime the tables are for (default stage2).', helpGroup: 'FOREIGN TABLES'})(),
  vtcr: u64Flag({summary: 'With --root, stage 2: VTCR_EL2 (T0SZ, SL0, TG0, PS give the walk; default 0x80023559).', helpGroup: 'FOREIGN TABLES'}),
  tcr: u64Flag({summary: 'With --root, stage 1: TCR_EL2 (T0SZ, TG0, PS give the walk; default 0x80823519).', helpGroup: 'FOREIGN TABLES'}),
  vmid: intFlag(0, 0xffff)({summary: 'With --root, stage 2: the VMID shown in VTTBR_EL2 (default 0).', helpGroup: 'FOREIGN TABLES'}),
  mair: u64Flag({summary: 'With --root, stage 1: MAIR_EL2, which AttrIndx selects from (default 0x0004ff00).', helpGroup: 'FOREIGN TABLES'}),
}

interface WalkFlags {
  root?: bigint
  regime?: RegimeName
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
}

/** The walk's description in --json (with --root): `{regime, root, startLevel, inputBits, paBits, registers}`. */
export interface WalkJson {
  regime: RegimeName
  root: string
  granule: number
  startLevel: number
  inputBits: number
  paBits: number
  registers: Record<string, string>
}

export function walkJson(t: WalkTarget): WalkJson {
  return {
    regime: t.regimeName,
    root: hex(t.root),
    granule: t.geometry.granule,
    startLevel: t.geometry.startLevel,
    inputBits: t.geometry.inputBits,
    paBits: t.geometry.paBits,
    registers: Object.fromEntries(t.registers.map((r) => [r.name, hex(r.value)])),
  }
}

/** Refuses --regime/--vtcr/--tcr/--vmid without --root, and the other regime's register. */
function checkCombination(flags: WalkFlags): void {
  if (flags.root === undefined) {
    for (const name of ['regime', 'vtcr', 'tcr', 'vmid', 'mair'] as const) {
      if (flags[name] !== undefined) throw new HvmemError('input', `--${name} describes the tables at --root; pass --root ADDR too (without --root the snapshot's own tables are walked, with their own settings)`)
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
  if (flags.root !== undefined) {
    const regimeName = flags.regime ?? 'stage2'
    const w = foreignWalk(regimeName, flags.root, regimeName === 'stage2' ? flags.vtcr : flags.tcr, flags.vmid, flags.mair)
    return {regimeName, regime: w.decoder, root: w.root, geometry: w.geometry, registers: w.registers, foreign: true}
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
 * For listings (dump tables, dump map): a foreign root must lie inside RAM, all its pages (a
 * concatenated stage-2 root has up to 16). Returns how many pages the root has.
 */
export function rootPagesInRam(machine: Machine, target: WalkTarget): number {
  const g = target.geometry
  const bytes = g.tableBytes(g.startLevel)
  if (target.foreign && !machine.memory.contains(target.root, BigInt(bytes))) {
    throw new HvmemError('input', `--root ${hex(target.root)}: the root table${g.rootTables > 1 ? `s (${g.rootTables} tables of ${g.granule / 1024} KiB)` : ''} must lie inside RAM ${hex(machine.memory.base)}-${hex(machine.memory.end)}`)
  }
  return bytes / MEMORY_PAGE
}

/** "4K granule, start level 1, 39-bit input, 40-bit PA" */
export function describeWalk(g: Geometry): string {
  return `${granuleName(g.granule)} granule, start level ${g.startLevel}, ${g.inputBits}-bit input, ${g.paBits}-bit PA`
}

/** Every valid entry of the target's tables, in input-address order (a concatenated stage-2 root as one table). */
export function walkEntries(memory: PhysicalMemory, target: WalkTarget): WalkEntry[] {
  return walkTables(memory, target.regime, target.root, target.geometry)
}
