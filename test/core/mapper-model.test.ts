/**
 * Property: random sequences of map / unmap / protect / coalesce against a simple reference model, a
 * sorted list of input ranges with their output address and attribute bits. After every step every
 * probed address translates in the tables exactly as in the model, and a walk of the tables finds no
 * dangling, misaligned, reserved or half-written entry.
 */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {ADDRESS_MASK, type Attr, type RegimeName} from '../../src/core/descriptor.js'
import {HvmemError} from '../../src/core/errors.js'
import {Machine} from '../../src/core/machine.js'
import {type Granularity, type IdentityMapper, type Permission, XN_BITS} from '../../src/core/mapper.js'
import {DEFAULT_STAGE2} from '../../src/core/geometry.js'
import {translate} from '../../src/core/translate.js'
import {walkTables} from '../../src/core/walker.js'

const PAGE = DEFAULT_STAGE2.entrySize(3)
const BLOCK = DEFAULT_STAGE2.entrySize(2)
const GIB = DEFAULT_STAGE2.entrySize(1)
const SPACE = 4n * GIB // the operations stay in the first 4 GiB, so they collide often

interface Range {
  start: bigint
  end: bigint
  pa: bigint
  bits: bigint
}

/** The reference: what each input address should map to, as plain ranges. */
class Model {
  ranges: Range[] = []

  lookup(ipa: bigint): {pa: bigint; bits: bigint} | undefined {
    const r = this.ranges.find((x) => x.start <= ipa && ipa < x.end)
    return r === undefined ? undefined : {pa: r.pa + (ipa - r.start), bits: r.bits}
  }

  /** The parts of [start, end) that are mapped, clipped. */
  overlapping(start: bigint, end: bigint): Range[] {
    return this.ranges.filter((r) => r.start < end && r.end > start).map((r) => ({start: r.start > start ? r.start : start, end: r.end < end ? r.end : end, pa: r.pa + ((r.start > start ? r.start : start) - r.start), bits: r.bits}))
  }

  remove(start: bigint, end: bigint): void {
    const out: Range[] = []
    for (const r of this.ranges) {
      if (r.end <= start || r.start >= end) out.push(r)
      else {
        if (r.start < start) out.push({...r, end: start})
        if (r.end > end) out.push({start: end, end: r.end, pa: r.pa + (end - r.start), bits: r.bits})
      }
    }
    this.ranges = out.sort((a, b) => (a.start < b.start ? -1 : 1))
  }

  insert(range: Range): void {
    this.remove(range.start, range.end)
    this.ranges.push(range)
    this.ranges.sort((a, b) => (a.start < b.start ? -1 : 1))
  }

  /** True when [start, end) is mapped throughout. */
  covers(start: bigint, end: bigint): boolean {
    let at = start
    for (const r of this.overlapping(start, end)) {
      if (r.start !== at) return false
      at = r.end
    }
    return at === end
  }
}

type Op =
  | {kind: 'map'; ipa: bigint; size: bigint; attr: Attr; pa: bigint | undefined; granularity: Granularity; replace: boolean}
  | {kind: 'unmap'; ipa: bigint; size: bigint}
  | {kind: 'protect'; ipa: bigint; size: bigint; attr?: Attr; perm?: Permission}
  | {kind: 'coalesce'}

const ipaArb = fc.oneof(
  fc.bigInt(0n, SPACE / GIB - 1n).map((n) => n * GIB),
  fc.bigInt(0n, SPACE / BLOCK - 1n).map((n) => n * BLOCK),
  fc.bigInt(0n, SPACE / PAGE - 1n).map((n) => n * PAGE),
)
const sizeArb = fc.oneof(fc.bigInt(1n, 40n).map((n) => n * PAGE), fc.bigInt(1n, 8n).map((n) => n * BLOCK), fc.bigInt(1n, 4n).map((n) => n * BLOCK + n * PAGE), fc.constant(GIB))
const attrArb = fc.constantFrom<Attr>('normal', 'device', 'readonly')
const opArb: fc.Arbitrary<Op> = fc.oneof(
  // page-granular maps stay below 1 GiB, so a step never walks a quarter of a million pages
  {
    weight: 4,
    arbitrary: fc
      .record({kind: fc.constant('map' as const), ipa: ipaArb, size: sizeArb, attr: attrArb, pa: fc.option(ipaArb.map((p) => p + 8n * GIB), {nil: undefined}), granularity: fc.constantFrom<Granularity>('page', '2M', '1G', '1G'), replace: fc.boolean()})
      // a 1 GiB map is GiB-aligned and its offset 2 MiB-aligned: otherwise it is a quarter of a million pages
      .map((op) => (op.size === GIB ? {...op, ipa: op.ipa & ~(GIB - 1n), pa: op.pa === undefined ? undefined : op.pa & ~(BLOCK - 1n), granularity: op.granularity === 'page' ? ('2M' as Granularity) : op.granularity} : op)),
  },
  {weight: 2, arbitrary: fc.record({kind: fc.constant('unmap' as const), ipa: ipaArb, size: sizeArb})},
  {weight: 2, arbitrary: fc.record({kind: fc.constant('protect' as const), ipa: ipaArb, size: sizeArb, attr: fc.option(attrArb, {nil: undefined}), perm: fc.constantFrom<Permission>('r', 'rw', 'rx', 'rwx')})},
  {weight: 1, arbitrary: fc.constant({kind: 'coalesce' as const})},
)

/** The permission change, written independently of the mapper: stage 2 S2AP[7:6] + XN, stage 1 AP[2] + XN. */
function permBits(regime: RegimeName, bits: bigint, perm: Permission): bigint {
  const write = perm.includes('w')
  const xn = perm.includes('x') ? 0n : 1n << 54n
  if (regime === 'stage2') return (bits & ~(3n << 6n) & ~XN_BITS) | ((write ? 3n : 1n) << 6n) | xn
  return (bits & ~(1n << 7n) & ~XN_BITS) | (write ? 0n : 1n << 7n) | xn
}

function expectRefused(run: () => unknown, kind: HvmemError['kind']): void {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(HvmemError)
    expect((error as HvmemError).kind).toBe(kind)
    return
  }
  throw new Error(`expected a ${kind} refusal`)
}

/** Applies an op to the tables and the model alike; a refusal must be predicted by the model. */
function step(mapper: IdentityMapper, model: Model, op: Op): void {
  const regime = mapper.state.regime
  if (op.kind === 'coalesce') {
    mapper.coalesce()
    return
  }
  const end = op.ipa + op.size
  if (end > SPACE + GIB) return
  if (op.kind === 'map') {
    const pa = op.pa ?? op.ipa
    const bits = mapper.regime.attrBits[op.attr]
    const conflict = model.overlapping(op.ipa, end).some((r) => r.bits !== bits || r.pa !== pa + (r.start - op.ipa))
    if (conflict && !op.replace) return expectRefused(() => mapper.mapRegion(op.ipa, op.size, op.attr, {pa, granularity: op.granularity}), 'mapping-conflict')
    mapper.mapRegion(op.ipa, op.size, op.attr, {pa, granularity: op.granularity, replace: op.replace})
    model.insert({start: op.ipa, end, pa, bits})
  } else if (op.kind === 'unmap') {
    mapper.unmap(op.ipa, op.size)
    model.remove(op.ipa, end)
  } else {
    if (!model.covers(op.ipa, end)) return expectRefused(() => mapper.protect(op.ipa, op.size, op.attr ? {attr: op.attr} : {perm: op.perm!}), 'input')
    mapper.protect(op.ipa, op.size, op.attr ? {attr: op.attr} : {perm: op.perm!})
    for (const r of model.overlapping(op.ipa, end)) model.insert({...r, bits: op.attr ? mapper.regime.attrBits[op.attr] : permBits(regime, r.bits, op.perm!)})
  }
}

/** Every range edge (and its neighbours) plus random addresses: tables and model must agree on each. */
function checkAgreement(machine: Machine, mapper: IdentityMapper, model: Model, random: bigint[]): void {
  const probes = new Set<bigint>(random)
  for (const r of model.ranges) for (const a of [r.start - PAGE, r.start, r.end - 1n, r.end]) if (a >= 0n) probes.add(a)
  for (const ipa of probes) {
    const t = translate(machine.memory, mapper.regime, mapper.root, ipa)
    const want = model.lookup(ipa)
    if (want === undefined) {
      expect(t.fault?.kind, `${ipa.toString(16)} should be unmapped`).toBe('translation')
      continue
    }
    expect(t.output?.address, `output of ${ipa.toString(16)}`).toBe(want.pa)
    expect(t.steps.at(-1)!.descriptor & ~ADDRESS_MASK & ~3n, `attributes at ${ipa.toString(16)}`).toBe(want.bits)
  }
}

/** No dangling, misaligned, reserved or half-written entries; the budget holds. */
function checkStructure(machine: Machine, mapper: IdentityMapper): void {
  const heap = machine.heap.status()
  const problems: string[] = []
  for (const e of walkTables(machine.memory, mapper.regime, mapper.root, mapper.geometry)) {
    const where = `L${e.level}[${e.index}] of ${e.table.toString(16)}`
    if (e.problem !== undefined) problems.push(`${where}: ${e.problem}`)
    if (e.decoded.kind === 'reserved') problems.push(`${where}: reserved encoding`)
    if (e.decoded.kind === 'table') {
      const next = e.decoded.nextTable!
      if (next < heap.start || next >= heap.next || next % PAGE !== 0n) problems.push(`${where}: table ${next.toString(16)} is not an allocated heap page`)
      if ((e.decoded.raw & ~ADDRESS_MASK) !== 3n) problems.push(`${where}: stray bits on a table descriptor`)
    } else if (e.decoded.leaf !== undefined) {
      if ((e.decoded.raw & ADDRESS_MASK & (e.size - 1n)) !== 0n) problems.push(`${where}: output bits below the leaf size`)
      if (!e.decoded.leaf.af) problems.push(`${where}: access flag clear`)
    }
  }
  expect(problems).toEqual([])
  expect(mapper.l2Tables().length).toBeLessThanOrEqual(mapper.state.l2Budget)
}

describe.each(['stage2', 'stage1'] as RegimeName[])('mapper against a reference model, %s', (regime) => {
  it('agrees after every step of random map / unmap / protect / coalesce sequences', {timeout: 300_000}, () => {
    fc.assert(
      fc.property(fc.array(opArb, {minLength: 1, maxLength: 10}), fc.array(fc.bigInt(0n, SPACE + GIB), {minLength: 16, maxLength: 16}), (ops, random) => {
        const machine = Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: 0x4100_0000n, heapSize: 64n << 20n})
        const {mapper} = machine.ensureMapper({regime, l2Budget: 512})
        const model = new Model()
        for (const op of ops) {
          step(mapper, model, op)
          checkAgreement(machine, mapper, model, random.map((a) => a & ~(PAGE - 1n)))
          checkStructure(machine, mapper)
        }
      }),
      {numRuns: 300},
    )
  })
})
