/**
 * Mapping scenarios for the QEMU conformance suite: seeded random ones plus hand-picked edge cases,
 * built through hvmem's core API. Each scenario is a machine (its tables in the heap) and the addresses
 * to probe. Some scenarios also damage descriptors by hand (access flag clear, output or table
 * addresses past the 40-bit PA limit, reserved encodings, the other regime's encodings, L1 blocks, L3
 * tables) so that every fault kind and level is compared against QEMU, not only hvmem's own output.
 */
import {ADDRESS_MASK, AF, type Attr, type RegimeName, TABLE_OR_PAGE, tableDescriptor} from '../../src/core/descriptor.js'
import {DEFAULT_STAGE2} from '../../src/core/geometry.js'
import {HvmemError} from '../../src/core/errors.js'
import {DEFAULT_HEAP_BASE, DEFAULT_HEAP_SIZE, DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE} from '../../src/core/heap.js'
import {Machine} from '../../src/core/machine.js'
import {GRANULARITIES, type IdentityMapper, type MapOptions, PERMISSIONS} from '../../src/core/mapper.js'
import {PA_LIMIT} from '../../src/core/registers.js'

/** hvmem's original geometry (4 KiB, 39-bit, level-1 root): these scenarios build and damage tables in it; geometry-scenarios.ts covers the others. */
const IPA_LIMIT = DEFAULT_STAGE2.inputLimit
import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'
import {CPU_PA_BITS, PROGRAM_RANGE, type Probe, UART_RANGE} from './qemu.js'
import {walkEntries} from '../core/helpers.js'

export interface Scenario {
  name: string
  regime: RegimeName
  machine: Machine
  mapper: IdentityMapper
  probes: Probe[]
}

const GIB = DEFAULT_STAGE2.entrySize(1)
const BLOCK = DEFAULT_STAGE2.entrySize(2)
const PAGE = DEFAULT_STAGE2.entrySize(3)
const ATTRS: Attr[] = ['normal', 'device', 'readonly']
/**
 * Above this, AT S12E1 faults at the CPU's own flat stage 1 (EL1's MMU is off) before stage 2: not a
 * stage-2 question (qemu.ts CPU_PA_BITS; 2^52 with -cpu max).
 */
const STAGE2_PROBE_LIMIT = 1n << CPU_PA_BITS

/** mulberry32: a small seeded generator, so every run builds the same scenarios. */
export class Random {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(below: number): number {
    return Math.floor(this.next() * below)
  }
  big(below: bigint): bigint {
    // two 32-bit draws are plenty for the ranges used here (up to 2^52)
    const value = (BigInt(this.int(2 ** 32)) << 32n) | BigInt(this.int(2 ** 32))
    return value % below
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!
  }
  chance(p: number): boolean {
    return this.next() < p
  }
}

/** The default layout, a mapper with room for many tables, and for stage 1 the probe program's own mappings. */
export function freshScenario(name: string, regime: RegimeName): Scenario {
  const machine = Machine.create({ramBase: DEFAULT_RAM_BASE, ramSize: DEFAULT_RAM_SIZE, heapBase: DEFAULT_HEAP_BASE, heapSize: DEFAULT_HEAP_SIZE})
  const {mapper} = machine.ensureMapper({regime, l2Budget: 128})
  if (regime === 'stage1') {
    // With the EL2 MMU on, the probe program runs through these very tables.
    mapper.mapRegion(PROGRAM_RANGE.start, PROGRAM_RANGE.end - PROGRAM_RANGE.start, 'normal')
    mapper.mapRegion(UART_RANGE.start, UART_RANGE.end - UART_RANGE.start, 'device')
  }
  return {name, regime, machine, mapper, probes: []}
}

/** Runs a mapper operation, ignoring a refusal (conflict, budget, hole): scenarios pile operations up at random. */
export function attempt(operation: () => unknown): boolean {
  try {
    operation()
    return true
  } catch (error) {
    if (error instanceof HvmemError) return false
    throw error
  }
}

export function tryMap(s: Scenario, ipa: bigint, size: bigint, attr: Attr, options: MapOptions = {}): boolean {
  return attempt(() => s.mapper.mapRegion(ipa, size, attr, options))
}

/** Whether [ipa, ipa + size) touches what the stage-1 probe program needs mapped as it is. */
function touchesProgram(s: Scenario, ipa: bigint, size: bigint): boolean {
  if (s.regime !== 'stage1') return false
  const overlaps = (r: {start: bigint; end: bigint}): boolean => ipa < r.end && ipa + size > r.start
  return overlaps(PROGRAM_RANGE) || overlaps(UART_RANGE)
}

/** L1 entries a damaged descriptor must not touch: in stage 1 the program and UART live under L1[0] and L1[1]. */
function protectedL1(s: Scenario, l1Index: number): boolean {
  return s.regime === 'stage1' && l1Index <= 1
}

function inProtectedBlock(s: Scenario, ipa: bigint): boolean {
  if (s.regime !== 'stage1') return false
  return (ipa >= PROGRAM_RANGE.start && ipa < PROGRAM_RANGE.end) || (ipa >= UART_RANGE.start && ipa < UART_RANGE.end)
}

function l1Address(s: Scenario, l1Index: number): bigint {
  return s.mapper.root + BigInt(8 * l1Index)
}

function freeL1Index(s: Scenario, r: Random): number | undefined {
  for (let tries = 0; tries < 64; tries++) {
    const i = 2 + r.int(510)
    if (s.machine.memory.readU64(l1Address(s, i)) === 0n) return i
  }
  return undefined
}

/** The leaf (block) entries of the tables: address of the entry, the IPA it maps, its descriptor. */
function leaves(s: Scenario): Array<{entry: bigint; ipa: bigint; size: bigint; descriptor: bigint}> {
  return walkEntries(s.machine.memory, s.mapper.regime, s.mapper.root, s.mapper.geometry)
    .filter((e) => e.decoded.leaf !== undefined)
    .map((e) => ({entry: e.table + BigInt(8 * e.index), ipa: e.ipa, size: e.size, descriptor: e.decoded.raw}))
}

/** Damages or adds descriptors by hand, each kind of damage aimed at a fault kind/level QEMU must agree on. */
export function damage(s: Scenario, r: Random, count: number): string[] {
  const done: string[] = []
  const memory = s.machine.memory
  const regime = s.regime === 'stage2' ? STAGE2 : STAGE1
  const other = s.regime === 'stage2' ? STAGE1 : STAGE2
  const candidates = leaves(s).filter((l) => !inProtectedBlock(s, l.ipa) && l.size === BLOCK)
  for (let n = 0; n < count; n++) {
    const kind = r.int(8)
    if (kind <= 3 && candidates.length > 0) {
      const leaf = candidates.splice(r.int(candidates.length), 1)[0]!
      const oa = leaf.descriptor & ADDRESS_MASK
      if (kind === 0) {
        memory.writeU64(leaf.entry, leaf.descriptor & ~AF)
        done.push(`AF clear at ${leaf.ipa.toString(16)}`)
      } else if (kind === 1) {
        memory.writeU64(leaf.entry, (leaf.descriptor & ~ADDRESS_MASK) | PA_LIMIT | (BigInt(r.int(128)) << 41n) | oa)
        done.push(`output past 2^40 at ${leaf.ipa.toString(16)}`)
      } else if (kind === 2) {
        memory.writeU64(leaf.entry, other.leafDescriptor(2, oa, r.pick(ATTRS)))
        done.push(`${other.name} encoding at ${leaf.ipa.toString(16)}`)
      } else {
        // low output-address bits inside the block: QEMU ignores them, hvmem must too
        memory.writeU64(leaf.entry, leaf.descriptor | (BigInt(1 + r.int(511)) << 12n))
        done.push(`bits below block alignment at ${leaf.ipa.toString(16)}`)
      }
      continue
    }
    const l1Index = freeL1Index(s, r)
    if (l1Index === undefined || protectedL1(s, l1Index)) continue
    const base = BigInt(l1Index) * GIB
    if (kind === 4) {
      // a 1 GiB block, identity or not, maybe damaged
      const oa = r.chance(0.7) ? base % PA_LIMIT : (r.big(1024n) * GIB) % (PA_LIMIT * 2n)
      let d = regime.leafDescriptor(1, oa % PA_LIMIT, r.pick(ATTRS))
      if (oa >= PA_LIMIT) d |= PA_LIMIT
      if (r.chance(0.2)) d &= ~AF
      memory.writeU64(l1Address(s, l1Index), d)
      done.push(`L1 block at ${base.toString(16)}`)
    } else if (kind === 5) {
      // a table descriptor pointing past the PA limit
      memory.writeU64(l1Address(s, l1Index), tableDescriptor(PA_LIMIT | (BigInt(r.int(1024)) << 12n)))
      done.push(`L1 table past 2^40 at ${base.toString(16)}`)
    } else {
      // an L2 table with a few blocks and an L3 table of pages (valid, AF clear, read-only, reserved, past 2^40)
      const [l2, l3] = s.machine.heap.allocZeroedPages(2)
      memory.writeU64(l1Address(s, l1Index), tableDescriptor(l2!))
      const l3Slot = r.int(512)
      memory.writeU64(l2! + BigInt(8 * l3Slot), tableDescriptor(l3!))
      for (let i = 0; i < 4; i++) {
        const slot = r.int(512)
        if (slot !== l3Slot) memory.writeU64(l2! + BigInt(8 * slot), regime.leafDescriptor(2, base + BigInt(slot) * BLOCK, r.pick(ATTRS)))
      }
      const pageBase = base + BigInt(l3Slot) * BLOCK
      for (let i = 0; i < 24; i++) {
        const slot = r.int(512)
        const pa = pageBase + BigInt(slot) * PAGE
        const variant = r.int(6)
        let d = regime.leafDescriptor(3, pa, r.pick(ATTRS))
        if (variant === 1) d &= ~AF
        else if (variant === 2)
          d &= ~TABLE_OR_PAGE // 0b01 at level 3: reserved
        else if (variant === 3) d |= PA_LIMIT
        else if (variant === 4) d = regime.leafDescriptor(3, (pa + BigInt(r.int(4096)) * PAGE) % PA_LIMIT, r.pick(ATTRS)) // not identity
        memory.writeU64(l3! + BigInt(8 * slot), d)
      }
      if (r.chance(0.3)) memory.writeU64(l2! + BigInt(8 * ((l3Slot + 1) % 512)), tableDescriptor(PA_LIMIT | l3!))
      done.push(`L2+L3 tables at ${base.toString(16)}`)
    }
  }
  return done
}

/** Probe addresses: both edges and the inside of every leaf, the holes beside them, random ones, the input-size limit. */
export function chooseProbes(s: Scenario, r: Random, most: number): Probe[] {
  const addresses = new Set<bigint>()
  for (const leaf of walkEntries(s.machine.memory, s.mapper.regime, s.mapper.root, s.mapper.geometry)) {
    if (leaf.level === 1 && leaf.decoded.kind === 'table') {
      addresses.add(leaf.ipa + r.big(leaf.size)) // somewhere under every table, mapped or not
      continue
    }
    if (leaf.decoded.kind === 'table') continue
    addresses.add(leaf.ipa)
    addresses.add(leaf.ipa + leaf.size - 1n)
    addresses.add(leaf.ipa + r.big(leaf.size))
    if (leaf.ipa >= PAGE) addresses.add(leaf.ipa - 1n - r.big(PAGE))
    addresses.add(leaf.ipa + leaf.size + r.big(PAGE))
  }
  const limit = s.regime === 'stage2' ? STAGE2_PROBE_LIMIT : IPA_LIMIT * 2n
  for (let i = 0; i < 8; i++) addresses.add(r.big(IPA_LIMIT))
  for (const edge of [0n, IPA_LIMIT - 1n, IPA_LIMIT, IPA_LIMIT + PAGE, PA_LIMIT - PAGE, limit - 1n]) addresses.add(edge)
  const all = [...addresses].filter((a) => a >= 0n && a < limit)
  // keep every edge case, then a random sample of the rest
  const chosen = all.length <= most ? all : [...all.slice(-6), ...shuffle(all.slice(0, -6), r).slice(0, most - 6)]
  return chosen.map((address) => ({address, write: r.chance(0.5)}))
}

function shuffle<T>(items: T[], r: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = r.int(i + 1)
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

/** A 2 MiB-aligned IPA chosen to land on interesting places: table edges, L1 boundaries, the top of the space. */
function interestingIpa(r: Random, blocks: number): bigint {
  const size = BigInt(blocks) * BLOCK
  switch (r.int(5)) {
    case 0: // the first block of a table
      return r.big(512n) * GIB
    case 1: // ending at the last block of a table, or crossing into the next one
      return r.big(511n) * GIB + GIB - size + (r.chance(0.5) ? BLOCK * BigInt(r.int(3)) : 0n)
    case 2: // the top of the input space
      return IPA_LIMIT - size
    case 3: // low memory, where the device and RAM maps of a real guest live
      return r.big((4n * GIB) / BLOCK) * BLOCK
    default:
      return r.big(IPA_LIMIT / BLOCK) * BLOCK
  }
}

/** A 4 KiB-aligned range of a few pages to a few blocks, somewhere interesting. */
function smallRange(r: Random): [bigint, bigint] {
  const size = r.chance(0.5) ? BigInt(1 + r.int(40)) * PAGE : BigInt(1 + r.int(6)) * BLOCK + BigInt(r.int(8)) * PAGE
  const ipa = interestingIpa(r, 1) + BigInt(r.int(512)) * PAGE
  return [ipa, size]
}

/** A seeded random scenario: maps of every granularity (identity or not), then unmaps, protects and coalesces. */
export function randomScenario(regime: RegimeName, seed: number): Scenario {
  const r = new Random(seed * 7919 + (regime === 'stage2' ? 1 : 2))
  const s = freshScenario(`${regime} random #${seed}`, regime)
  const operations = 1 + r.int(10)
  for (let i = 0; i < operations; i++) {
    const blocks = r.chance(0.1) ? 256 + r.int(300) : 1 + r.int(24)
    let ipa = interestingIpa(r, blocks)
    let size = BigInt(blocks) * BLOCK
    if (r.chance(0.3)) [ipa, size] = smallRange(r) // page-granular edges
    if (ipa < 0n || ipa + size > IPA_LIMIT) continue
    // page-granular maps stay small: a scenario of a quarter of a million pages only slows the walks down
    const options: MapOptions = {granularity: size > 16n * BLOCK ? r.pick(['2M', '1G'] as const) : r.pick(GRANULARITIES)}
    if (r.chance(0.25)) options.pa = (r.big(PA_LIMIT / GIB) * GIB + (r.chance(0.5) ? ipa % GIB : BigInt(r.int(512)) * PAGE)) % (PA_LIMIT - size)
    tryMap(s, ipa, size, r.pick(ATTRS), options)
  }
  // edits inside what is mapped now: they split blocks, keep the rest, and make coalescable tables
  const mapped = leaves(s).filter((l) => !inProtectedBlock(s, l.ipa))
  for (let i = 0; i < 3 && mapped.length > 0; i++) {
    const leaf = r.pick(mapped)
    const at = leaf.ipa + BigInt(r.int(Number(leaf.size / PAGE))) * PAGE
    const size = BigInt(1 + r.int(16)) * PAGE
    if (touchesProgram(s, at, size) || at + size > IPA_LIMIT) continue
    const choice = r.int(3)
    if (choice === 0) attempt(() => s.mapper.unmap(at, size))
    else if (choice === 1) attempt(() => s.mapper.protect(at, size, r.chance(0.5) ? {perm: r.pick(PERMISSIONS)} : {attr: r.pick(ATTRS)}))
    else attempt(() => s.mapper.protect(at, size, {perm: r.pick(PERMISSIONS)}))
  }
  if (r.chance(0.3)) s.mapper.coalesce()
  if (r.chance(0.5)) s.name += ` (${damage(s, r, 1 + r.int(4)).join('; ')})`
  s.probes = chooseProbes(s, r, 70)
  return s
}

/** Hand-picked cases: each attribute, the first and last block of a table, an L1 boundary, the top of the space, holes. */
export function edgeScenarios(regime: RegimeName): Scenario[] {
  const r = new Random(regime === 'stage2' ? 11 : 12)
  const make = (name: string, maps: Array<[bigint, bigint, Attr]>, damageCount = 0): Scenario => {
    const s = freshScenario(`${regime} edge: ${name}`, regime)
    for (const [ipa, size, attr] of maps) if (!tryMap(s, ipa, size, attr)) throw new Error(`edge scenario ${name}: cannot map ${ipa.toString(16)}`)
    if (damageCount > 0) damage(s, r, damageCount)
    s.probes = chooseProbes(s, r, 120)
    return s
  }
  const top = IPA_LIMIT - BLOCK
  const edited = (name: string, build: (s: Scenario) => void): Scenario => {
    const s = freshScenario(`${regime} edge: ${name}`, regime)
    build(s)
    s.probes = chooseProbes(s, r, 120)
    return s
  }
  const must = (ok: boolean, what: string): void => {
    if (!ok) throw new Error(`edge scenario: ${what} was refused`)
  }
  return [
    ...ATTRS.map((attr) => make(`one ${attr} block`, [[0x8000_0000n + BLOCK * 3n, BLOCK, attr]])),
    ...ATTRS.map((attr) => make(`one ${attr} page`, [[0x8000_0000n + BLOCK * 5n + 7n * PAGE, PAGE, attr]])),
    ...ATTRS.map((attr) => make(`one ${attr} 1 GiB block`, [[(4n + BigInt(ATTRS.indexOf(attr))) * GIB, GIB, attr]])),
    make('first and last block of a table', [
      [2n * GIB, BLOCK, 'normal'],
      [3n * GIB - BLOCK, BLOCK, 'device'],
    ]),
    make('first and last page of a table', [
      [11n * GIB, PAGE, 'normal'],
      [11n * GIB + BLOCK - PAGE, PAGE, 'readonly'],
    ]),
    make('across an L1 boundary', [[5n * GIB - 2n * BLOCK, 4n * BLOCK, 'readonly']]),
    make('a whole table', [[6n * GIB, GIB, 'normal']]),
    make('the top of the input space', [[top, BLOCK, 'normal']]),
    make('holes between mappings', [
      [7n * GIB, BLOCK, 'normal'],
      [7n * GIB + 2n * BLOCK, BLOCK, 'device'],
      [7n * GIB + 4n * BLOCK, BLOCK, 'readonly'],
    ]),
    make('guest RAM, UART and flash', [
      [0x4000_0000n, GIB, 'normal'],
      [0x0800_0000n, BLOCK, 'readonly'],
    ]),
    make(
      'damaged descriptors',
      [
        [9n * GIB, 16n * BLOCK, 'normal'],
        [10n * GIB, 16n * BLOCK, 'device'],
      ],
      8,
    ),
    edited('blocks, then pages at unaligned edges', (s) => must(tryMap(s, 12n * GIB - 3n * PAGE, GIB + 5n * BLOCK + 7n * PAGE, 'normal'), 'map')),
    edited('not identity: IPA to another PA, as blocks and pages', (s) => {
      must(tryMap(s, 13n * GIB, GIB, 'normal', {pa: 0x80_0000_0000n}), '1G map')
      must(tryMap(s, 14n * GIB + 3n * PAGE, 3n * BLOCK, 'device', {pa: 0x1234_5000n}), 'page map')
    }),
    edited('a 1 GiB block split by an unmap in its middle', (s) => {
      must(tryMap(s, 15n * GIB, GIB, 'normal'), 'map')
      must(
        attempt(() => s.mapper.unmap(15n * GIB + 5n * BLOCK + 9n * PAGE, 2n * PAGE)),
        'unmap',
      )
    }),
    edited('a block split by protect, then coalesced back', (s) => {
      must(tryMap(s, 16n * GIB, 4n * BLOCK, 'normal'), 'map')
      must(
        attempt(() => s.mapper.protect(16n * GIB + BLOCK + 4n * PAGE, PAGE, {perm: 'r'})),
        'protect r',
      )
      must(
        attempt(() => s.mapper.protect(16n * GIB + 2n * BLOCK, PAGE, {attr: 'device'})),
        'protect device',
      )
      must(
        attempt(() => s.mapper.protect(16n * GIB + BLOCK + 4n * PAGE, PAGE, {perm: 'rwx'})),
        'protect rwx',
      )
      s.mapper.coalesce()
    }),
    edited('pages coalesced into a block and blocks into a 1 GiB block', (s) => {
      must(tryMap(s, 17n * GIB, GIB, 'readonly', {granularity: 'page'}), 'map pages')
      s.mapper.coalesce()
    }),
    edited('level-1 faults: 1 GiB blocks without AF or past 2^40, a table past 2^40', (s) => {
      const regimeOf = s.regime === 'stage2' ? STAGE2 : STAGE1
      must(tryMap(s, 19n * GIB, GIB, 'normal'), 'map')
      s.machine.memory.writeU64(l1Address(s, 19), regimeOf.leafDescriptor(1, 19n * GIB, 'normal') & ~AF)
      s.machine.memory.writeU64(l1Address(s, 20), regimeOf.leafDescriptor(1, 20n * GIB, 'device') | PA_LIMIT)
      s.machine.memory.writeU64(l1Address(s, 21), tableDescriptor(PA_LIMIT | 0x4100_0000n))
      s.machine.memory.writeU64(l1Address(s, 22), regimeOf.leafDescriptor(1, 22n * GIB, 'readonly'))
    }),
    edited('level-2 and level-3 faults: a block and a page without AF or past 2^40, a table past 2^40', (s) => {
      const regimeOf = s.regime === 'stage2' ? STAGE2 : STAGE1
      const base = 23n * GIB
      must(tryMap(s, base, 3n * BLOCK, 'normal'), 'map blocks')
      must(tryMap(s, base + 4n * BLOCK, 3n * PAGE, 'normal', {granularity: 'page'}), 'map pages')
      const memory = s.machine.memory
      const l2 = memory.readU64(l1Address(s, 23)) & ADDRESS_MASK
      memory.writeU64(l2, regimeOf.leafDescriptor(2, base, 'normal') & ~AF)
      memory.writeU64(l2 + 8n, regimeOf.leafDescriptor(2, base + BLOCK, 'device') | PA_LIMIT)
      memory.writeU64(l2 + 24n, tableDescriptor(PA_LIMIT | 0x4100_0000n))
      const l3 = memory.readU64(l2 + 32n) & ADDRESS_MASK
      memory.writeU64(l3, regimeOf.leafDescriptor(3, base + 4n * BLOCK, 'normal') & ~AF)
      memory.writeU64(l3 + 8n, regimeOf.leafDescriptor(3, base + 4n * BLOCK + PAGE, 'normal') | PA_LIMIT)
    }),
    edited('a replacing map over pages and blocks', (s) => {
      must(tryMap(s, 18n * GIB, 3n * BLOCK, 'normal', {granularity: 'page'}), 'map')
      must(tryMap(s, 18n * GIB + BLOCK - PAGE, BLOCK + 2n * PAGE, 'device', {replace: true}), 'replace')
    }),
  ]
}
