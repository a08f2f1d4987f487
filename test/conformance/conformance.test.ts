/**
 * Conformance: hvmem's tables and its software walk against QEMU's Arm MMU model. For every scenario
 * (seeded random and hand-picked, per regime) the heap holding the tables is loaded into QEMU, a small
 * EL2 program runs AT S12E1R/W (stage 2) or AT S1E2R/W (stage 1) on each probe address, and every
 * PAR_EL1 must equal the one hvmem's translate() computes: output address, memory type, shareability,
 * or fault kind, level and stage.
 */
import {describe, expect, it} from 'vitest'

import type {RegimeName} from '../../src/core/descriptor.js'
import {DEFAULT_HEAP_BASE} from '../../src/core/heap.js'
import {compare, describeDisagreement, jobFor, merge, type Outcome} from './compare.js'
import {describeDeviations, qemuAvailable} from './qemu.js'
import {SOAK} from '../soak.js'
import {type Scenario, edgeScenarios, randomScenario} from './scenarios.js'

/** In CI QEMU must be there (.ci/run installs it): a missing one fails instead of skipping. */
const required = process.env.CI === 'true'
/** Seeded random scenarios a regime: 40 in `npm test`, 400 in `npm run soak` (which CI runs too). */
const RANDOM_SCENARIOS = 26 * SOAK

function heapImage(s: Scenario): {address: bigint; data: Uint8Array} {
  const used = Number(s.machine.heap.status().next - DEFAULT_HEAP_BASE)
  return {address: DEFAULT_HEAP_BASE, data: s.machine.memory.readBytes(DEFAULT_HEAP_BASE, used)}
}

async function runAll(scenarios: Scenario[]): Promise<Outcome> {
  const total: Outcome = {compared: 0, disagreements: [], results: new Map(), deviations: new Map()}
  // two QEMUs at a time: the machine has two cores
  for (let i = 0; i < scenarios.length; i += 2) {
    const outcomes = await Promise.all(scenarios.slice(i, i + 2).map((s) => compare(s.name, s.machine.memory, s.mapper, jobFor(s.mapper, [heapImage(s)]), s.probes)))
    for (const o of outcomes) merge(total, o)
  }
  return total
}

describe.skipIf(!qemuAvailable() && !required).each(['stage2', 'stage1'] as RegimeName[])('conformance with QEMU, %s', (regime) => {
  it('agrees on every probed address across random and edge-case scenarios', {timeout: 600_000}, async () => {
    expect(qemuAvailable(), 'qemu-system-aarch64 and aarch64-linux-gnu binutils are needed (see README)').toBe(true)
    const scenarios = [...edgeScenarios(regime), ...Array.from({length: RANDOM_SCENARIOS}, (_, seed) => randomScenario(regime, seed))]
    const outcome = await runAll(scenarios)
    const results = [...outcome.results].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`)
    console.log(
      `conformance ${regime}: ${scenarios.length} scenarios, ${outcome.compared} addresses compared, ${outcome.disagreements.length} disagreements, ${describeDeviations(outcome.deviations)}\n  results: ${results.join(', ')}`,
    )
    expect(outcome.disagreements.map(describeDisagreement).slice(0, 20)).toEqual([])
    expect(scenarios.length).toBeGreaterThanOrEqual(50)
    expect(outcome.compared).toBeGreaterThanOrEqual(2000)
    // the scenarios must reach the fault kinds, not only successful walks
    const kinds = ['translation', 'access-flag', 'permission', 'address-size'].flatMap((k) => [1, 2, 3].map((l) => `${k} L${l}`))
    for (const kind of ['ok', 'translation L0', ...kinds]) {
      expect(outcome.results.get(kind) ?? 0, kind).toBeGreaterThan(0)
    }
  })
})
