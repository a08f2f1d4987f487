/** Runs a scenario's probes on QEMU and compares every PAR_EL1 with hvmem's software walk. */
import type {IdentityMapper} from '../../src/core/mapper.js'
import type {PhysicalMemory} from '../../src/core/memory.js'
import {translate} from '../../src/core/translate.js'
import {type Probe, type QemuJob, noteDeviation, qemu72Stage1, runQemu} from './qemu.js'

export interface Disagreement {
  scenario: string
  probe: Probe
  hvmem: bigint
  qemu: bigint
  walk: string
}

export interface Outcome {
  compared: number
  disagreements: Disagreement[]
  /** how many probes ended in each result: "ok", or "<kind> L<level>" */
  results: Map<string, number>
  /** how many PARs differed only by a departure of QEMU 7.2 from the Arm ARM, by departure (qemu.ts) */
  deviations: Map<string, number>
}

/** The QEMU job that installs a mapper's tables: its registers, and `images` holding the table memory. */
export function jobFor(mapper: IdentityMapper, images: QemuJob['images']): Omit<QemuJob, 'probes'> {
  const reg = (name: string): bigint => mapper.registers().find((r) => r.name === name)!.value
  return mapper.state.regime === 'stage2'
    ? {regime: 'stage2', images, vttbr: reg('VTTBR_EL2'), vtcr: reg('VTCR_EL2')}
    : {regime: 'stage1', images, ttbr0: reg('TTBR0_EL2'), tcr: reg('TCR_EL2'), mair: reg('MAIR_EL2')}
}

const hex = (v: bigint): string => `0x${v.toString(16)}`

/**
 * hvmem's PAR for each probe, QEMU's PAR for each probe, compared in full, allowing for QEMU 7.2's
 * stage-1 shareability (qemu72Stage1). `hvmem` holds hvmem's PARs.
 */
export async function compare(scenario: string, memory: PhysicalMemory, mapper: IdentityMapper, job: Omit<QemuJob, 'probes'>, probes: Probe[]): Promise<Outcome & {qemu: bigint[]; hvmem: bigint[]}> {
  const qemu = await runQemu({...job, probes})
  const outcome: Outcome & {qemu: bigint[]; hvmem: bigint[]} = {compared: 0, disagreements: [], results: new Map(), deviations: new Map(), qemu, hvmem: []}
  probes.forEach((probe, i) => {
    const t = translate(memory, mapper.regime, mapper.root, probe.address, {write: probe.write}, mapper.geometry)
    const key = t.fault === undefined ? 'ok' : `${t.fault.kind} L${t.fault.level}`
    outcome.results.set(key, (outcome.results.get(key) ?? 0) + 1)
    outcome.compared++
    outcome.hvmem.push(t.par)
    const expected = mapper.regime.stage === 1 ? qemu72Stage1(t) : {par: t.par}
    noteDeviation(outcome.deviations, expected, qemu[i]!)
    if (expected.par !== qemu[i]) {
      const walk = t.steps.map((s) => `L${s.level}[${s.index}]=${hex(s.descriptor)}`).join(' ')
      outcome.disagreements.push({scenario, probe, hvmem: t.par, qemu: qemu[i]!, walk})
    }
  })
  return outcome
}

export function merge(into: Outcome, from: Outcome): void {
  into.compared += from.compared
  into.disagreements.push(...from.disagreements)
  for (const [k, v] of from.results) into.results.set(k, (into.results.get(k) ?? 0) + v)
  for (const [k, v] of from.deviations) into.deviations.set(k, (into.deviations.get(k) ?? 0) + v)
}

export function describeDisagreement(d: Disagreement): string {
  return `${d.scenario}: ${d.probe.write ? 'W' : 'R'} ${hex(d.probe.address)} hvmem PAR ${hex(d.hvmem)} QEMU PAR ${hex(d.qemu)} [${d.walk}]`
}
