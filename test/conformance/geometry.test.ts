/**
 * Conformance in every geometry: for each granule / input size the issue names (4K/39, 4K/40 (KVM's
 * two concatenated level-1 tables), 4K/48 (a level-0 root), 16K/40 (16 concatenated level-2 tables),
 * 16K/47, 64K/42, 64K/48), in both regimes, seeded scenarios built by the mapper (pages, blocks,
 * splits, unmaps, protects, coalesces) and damaged by hand are run on QEMU's MMU (-cpu max: every
 * granule) with the VTCR_EL2 / TCR_EL2 hvmem derives, and every PAR_EL1 must equal translate()'s.
 */
import {describe, expect, it} from 'vitest'

import {DEFAULT_HEAP_BASE} from '../../src/core/heap.js'
import {compare, describeDisagreement, jobFor, merge, type Outcome} from './compare.js'
import {NAMED_GEOMETRIES, geometryName, geometryScenario} from './geometry-scenarios.js'
import {describeDeviations, qemuAvailable} from './qemu.js'
import type {Scenario} from './scenarios.js'

/** In CI QEMU must be there (.ci/run installs it): a missing one fails instead of skipping. */
const required = process.env.CI === 'true'
const SCENARIOS = 8

function heapImage(s: Scenario): {address: bigint; data: Uint8Array} {
  const used = Number(s.machine.heap.status().next - DEFAULT_HEAP_BASE)
  return {address: DEFAULT_HEAP_BASE, data: s.machine.memory.readBytes(DEFAULT_HEAP_BASE, used)}
}

describe.skipIf(!qemuAvailable() && !required)('conformance with QEMU in every geometry', () => {
  it.each(NAMED_GEOMETRIES.map((c) => ({...c, name: geometryName(c)})))('$name: every probed address agrees', {timeout: 600_000}, async (c) => {
    expect(qemuAvailable(), 'qemu-system-aarch64 and aarch64-linux-gnu binutils are needed (see README)').toBe(true)
    const scenarios = Array.from({length: SCENARIOS}, (_, seed) => geometryScenario(c, seed))
    const total: Outcome = {compared: 0, disagreements: [], results: new Map(), deviations: new Map()}
    // two QEMUs at a time: the machine has two cores
    for (let i = 0; i < scenarios.length; i += 2) {
      const outcomes = await Promise.all(scenarios.slice(i, i + 2).map((s) => compare(s.name, s.machine.memory, s.mapper, jobFor(s.mapper, [heapImage(s)]), s.probes)))
      for (const o of outcomes) merge(total, o)
    }
    const g = scenarios[0]!.mapper.geometry
    const results = [...total.results].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`)
    console.log(
      `conformance ${c.name} (${g.describe()}): ${scenarios.length} scenarios, ${total.compared} addresses, ${total.disagreements.length} disagreements, ${describeDeviations(total.deviations)}; ${results.join(', ')}`,
    )
    expect(total.disagreements.map(describeDisagreement).slice(0, 20)).toEqual([])
    expect(total.compared).toBeGreaterThanOrEqual(100)
    // successful walks and the faults the damage aims at
    for (const kind of ['ok', 'translation', 'access-flag'])
      expect(
        [...total.results.keys()].some((k) => k.startsWith(kind)),
        kind,
      ).toBe(true)
  })
})
