/**
 * Conformance scenarios in every geometry the architecture defines for hvmem (granule, input size,
 * start level, concatenated roots): tables built through the mapper (maps of every leaf size, unmaps
 * and protects that split blocks, coalesces), then damaged by hand in ways the geometry makes
 * meaningful (access flag clear, a block where the granule has none, an output address past PS), and
 * probed at every leaf's edges, inside, beside, and at the input-size limit.
 */
import {AF} from '../../src/core/descriptor.js'
import {DEFAULT_HEAP_BASE, DEFAULT_HEAP_SIZE, DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE} from '../../src/core/heap.js'
import type {Granule} from '../../src/core/geometry.js'
import {FINAL_LEVEL} from '../../src/core/geometry.js'
import {Machine} from '../../src/core/machine.js'
import {PERMISSIONS} from '../../src/core/mapper.js'
import type {RegimeName} from '../../src/core/descriptor.js'
import {CPU_PA_BITS, PROGRAM_RANGE, type Probe, UART_RANGE} from './qemu.js'
import {Random, type Scenario, attempt} from './scenarios.js'
import {walkEntries} from '../core/helpers.js'

export interface GeometryCase {
  regime: RegimeName
  granule: Granule
  inputBits: number
}

/** The geometries issue 11 names, in both regimes: 4K/39, 4K/40 (KVM), 4K/48 (level-0 root), 16K/40, 16K/47, 64K/42, 64K/48. */
export const NAMED_GEOMETRIES: GeometryCase[] = (['stage2', 'stage1'] as RegimeName[]).flatMap((regime) =>
  (
    [
      [4096, 39],
      [4096, 40],
      [4096, 48],
      [16384, 40],
      [16384, 47],
      [65536, 42],
      [65536, 48],
    ] as Array<[Granule, number]>
  ).map(([granule, inputBits]) => ({regime, granule, inputBits})),
)

export const geometryName = (c: GeometryCase): string => `${c.regime} ${c.granule / 1024}K/${c.inputBits}`

const overlaps = (a: bigint, size: bigint, r: {start: bigint; end: bigint}): boolean => a < r.end && a + size > r.start

/** A seeded scenario in one geometry. */
export function geometryScenario(c: GeometryCase, seed: number): Scenario {
  const r = new Random(seed * 7919 + c.granule + c.inputBits)
  const machine = Machine.create({ramBase: DEFAULT_RAM_BASE, ramSize: DEFAULT_RAM_SIZE, heapBase: DEFAULT_HEAP_BASE, heapSize: DEFAULT_HEAP_SIZE})
  const {mapper} = machine.ensureMapper({regime: c.regime, granule: c.granule, inputBits: c.inputBits, l2Budget: 512})
  const g = mapper.geometry
  const s: Scenario = {name: `${geometryName(c)} #${seed}`, regime: c.regime, machine, mapper, probes: []}
  const program = (ipa: bigint, size: bigint): boolean => c.regime === 'stage1' && (overlaps(ipa, size, PROGRAM_RANGE) || overlaps(ipa, size, UART_RANGE))
  if (c.regime === 'stage1') {
    // With the EL2 MMU on, the probe program runs through these very tables.
    mapper.mapRegion(PROGRAM_RANGE.start, PROGRAM_RANGE.end - PROGRAM_RANGE.start, 'normal')
    mapper.mapRegion(UART_RANGE.start, UART_RANGE.end - UART_RANGE.start, 'device')
  }
  const leafSizes = g.leafSizes().map((l) => l.size)
  const page = BigInt(g.granule)
  // the operations stay in the low 16 GiB (or the whole space, if smaller) and near its top, so they meet
  const space = g.inputLimit < 16n << 30n ? g.inputLimit : 16n << 30n
  const pick = (size: bigint): bigint => (r.chance(0.15) ? g.inputLimit - size * BigInt(1 + r.int(4)) : r.big(space / size) * size)
  const attrs = ['normal', 'device', 'readonly'] as const
  // one aligned run of pages with the contiguous bit (16 x 4K, 128 x 16K, 32 x 64K) at the top of the low space
  const run = BigInt(g.contiguousEntries(FINAL_LEVEL)) * page
  if (!program(space - run, run)) attempt(() => mapper.mapRegion(space - run, run, 'normal', {granularity: page, contiguous: true}))
  for (let op = 0; op < 10; op++) {
    const unit = r.pick(leafSizes)
    // at most 1 GiB or 8 blocks of any size, so a page-granular map stays small
    const count = BigInt(1 + r.int(unit === page ? 24 : 3))
    const size = unit * count + (r.chance(0.3) ? page * BigInt(1 + r.int(8)) : 0n)
    const ipa = pick(unit)
    if (ipa < 0n || ipa + size > g.inputLimit || program(ipa, size)) continue
    const identity = r.chance(0.6) || ipa + size > g.paLimit
    const pa = identity ? ipa : r.big((g.paLimit < 1n << 40n ? g.paLimit : 1n << 40n) / unit - count - 1n) * unit
    // pages only where they are few (at most 4096 a map)
    const granularity = size / page <= 4096n && r.chance(0.2) ? page : r.pick(leafSizes.filter((l) => size / l <= 4096n))
    // every other map sets the contiguous bit (52) on its aligned runs (no random draw: the scenarios stay as they were otherwise)
    attempt(() => mapper.mapRegion(ipa, size, r.pick(attrs), {pa, granularity, replace: r.chance(0.2), contiguous: op % 2 === 0}))
  }
  // unmaps and protects inside what is mapped: they split blocks
  const mapped = walkEntries(machine.memory, mapper.regime, mapper.root, g).filter((e) => e.decoded.leaf !== undefined && e.size > page)
  for (let op = 0; op < 4 && mapped.length > 0; op++) {
    const leaf = r.pick(mapped)
    const offset = r.big(leaf.size / page) * page
    const size = page * BigInt(1 + r.int(4))
    if (program(leaf.ipa + offset, size)) continue
    if (r.chance(0.5)) attempt(() => mapper.unmap(leaf.ipa + offset, size))
    else attempt(() => mapper.protect(leaf.ipa + offset, size, {perm: r.pick(PERMISSIONS)}))
  }
  if (r.chance(0.5)) mapper.coalesce()
  const damaged = damage(s, r, program)
  s.probes = probes(s, r, damaged)
  return s
}

/**
 * Damages a few leaves by hand: access flag clear, a page with bit 1 clear (reserved), an output past
 * PS; returns an input address under each. (A block written at a level whose granule has none is
 * left out here: QEMU 7.2 takes a level-0 block of the 4 KiB granule or a level-1 block of the 16 KiB
 * granule as a block although VTCR/TCR.DS is 0, where the Arm ARM (AArch64.BlockDescSupported) makes
 * it a translation fault, as hvmem does; and a 64 KiB level-1 block is valid on a CPU whose PAMax is
 * 52 bits, as -cpu max's is, but not on the 48-bit one hvmem models. test/core/geometry.test.ts
 * holds hvmem's side.)
 */
function damage(s: Scenario, r: Random, program: (ipa: bigint, size: bigint) => boolean): bigint[] {
  const out: bigint[] = []
  const g = s.mapper.geometry
  const entries = walkEntries(s.machine.memory, s.mapper.regime, s.mapper.root, g).filter((e) => !program(e.ipa, e.size))
  const leaves = entries.filter((e) => e.decoded.leaf !== undefined)
  const address = (e: (typeof entries)[number]): bigint => e.table + BigInt(8 * e.index)
  const memory = s.machine.memory
  const hit = (e: (typeof entries)[number], value: bigint): void => {
    memory.writeU64(address(e), value)
    out.push(e.ipa + r.big(e.size))
  }
  if (leaves.length > 0) {
    const e = r.pick(leaves)
    hit(e, e.decoded.raw & ~AF)
  }
  // a page with bit 1 clear: the reserved level-3 encoding
  const pages = leaves.filter((e) => e.level === FINAL_LEVEL)
  if (pages.length > 0) {
    const e = r.pick(pages)
    hit(e, e.decoded.raw & ~2n)
  }
  if (g.paBits < 48 && leaves.length > 1) {
    const e = r.pick(leaves)
    hit(e, e.decoded.raw | (1n << BigInt(g.paBits)))
  }
  return out
}

/** Both edges and the inside of every leaf, the holes beside them, random addresses, the input-size limit. */
function probes(s: Scenario, r: Random, damaged: bigint[]): Probe[] {
  const g = s.mapper.geometry
  const page = BigInt(g.granule)
  const addresses = new Set<bigint>()
  for (const e of walkEntries(s.machine.memory, s.mapper.regime, s.mapper.root, g)) {
    addresses.add(e.ipa + r.big(e.size))
    if (e.decoded.kind === 'table') continue
    addresses.add(e.ipa)
    addresses.add(e.ipa + e.size - 1n)
    if (e.ipa >= page) addresses.add(e.ipa - 1n - r.big(page))
    addresses.add(e.ipa + e.size + r.big(page))
  }
  for (let i = 0; i < 8; i++) addresses.add(r.big(g.inputLimit))
  const cpuLimit = 1n << CPU_PA_BITS
  for (const edge of [0n, g.inputLimit - 1n, g.inputLimit, g.inputLimit + page, g.paLimit - page]) addresses.add(edge)
  // stage 2: below the CPU's PA size (above it AT S12E1 faults at its flat stage 1); stage 1: inside the TTBR0 half
  const limit = s.regime === 'stage2' ? cpuLimit : 1n << 48n
  const all = [...addresses].filter((a) => a >= 0n && a < limit)
  const most = 300
  for (let i = all.length - 1; i > 0; i--) {
    const j = r.int(i + 1)
    ;[all[i], all[j]] = [all[j]!, all[i]!]
  }
  return [...damaged, ...all.slice(0, most)].map((address) => ({address, write: r.chance(0.5)}))
}
