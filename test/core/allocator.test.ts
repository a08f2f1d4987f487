import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {BumpAllocator, PAGE_SIZE} from '../../src/core/allocator.js'
import {U64_MAX} from '../../src/core/u64.js'
import {expectHvmemError} from './helpers.js'

const TWO_64 = 1n << 64n

/** The plan's test allocator: 1 MiB at 0x4100_0000. */
function planAllocator(): BumpAllocator {
  return new BumpAllocator(0x4100_0000n, 0x10_0000n)
}

describe('BumpAllocator: the plan scenario (Task 1)', () => {
  it('hands out 4 KiB-aligned pages back to back', () => {
    const a = planAllocator()
    const page1 = a.allocPage()
    const page2 = a.allocPage()
    expect(PAGE_SIZE).toBe(4096n)
    expect(page1).toBe(0x4100_0000n)
    expect(page1! % 4096n).toBe(0n)
    expect(page2).toBe(page1! + 4096n)
    expect(page2).toBe(0x4100_1000n)
  })

  it('allocAligned(256, 2048) is 2048-aligned and remaining() is exact', () => {
    const a = planAllocator()
    a.allocPage()
    a.allocPage()
    const aligned = a.allocAligned(256n, 2048n)
    expect(aligned).toBe(0x4100_2000n)
    expect(aligned! % 2048n).toBe(0n)
    expect(a.remaining()).toBeGreaterThan(0n)
    expect(a.remaining()).toBe(0x10_0000n - 0x2100n)
    expect(a.allocated()).toBe(0x2100n)
    expect(a.padding()).toBe(0n)
    expect(a.next).toBe(0x4100_2100n)
  })

  it('pads to the alignment when the cursor is not aligned', () => {
    const a = planAllocator()
    expect(a.alloc(6n)).toBe(0x4100_0000n)
    expect(a.alloc(4n)).toBe(0x4100_0008n) // alloc() is 4-byte aligned: 6 rounds up to 8
    expect(a.allocAligned(256n, 2048n)).toBe(0x4100_0800n)
    expect(a.allocated()).toBe(266n)
    expect(a.padding()).toBe(0x900n - 266n)
    expect(a.remaining()).toBe(0x10_0000n - 0x900n)
  })

  it('fills the range exactly, then returns undefined without moving', () => {
    const a = planAllocator()
    expect(a.allocAligned(0x10_0000n - 0x1000n, 1n)).toBe(0x4100_0000n)
    expect(a.allocPage()).toBe(0x410f_f000n)
    expect(a.remaining()).toBe(0n)
    const before = a.state()
    expect(a.allocPage()).toBeUndefined()
    expect(a.alloc(1n)).toBeUndefined()
    expect(a.state()).toEqual(before)
  })
})

describe('BumpAllocator: plan defects fixed', () => {
  it('reset() returns to the start even after alignment padding (the plan formula would not)', () => {
    const a = planAllocator()
    a.alloc(4n)
    a.allocPage() // skips 4092 bytes of padding
    expect(a.padding()).toBe(4092n)
    // The plan's reset: next = end - remaining - allocated, which lands after the padding.
    const planNext = a.end - a.remaining() - a.allocated()
    expect(planNext).toBe(0x4100_0000n + 4092n)

    a.reset()
    expect(a.next).toBe(0x4100_0000n)
    expect(a.allocated()).toBe(0n)
    expect(a.padding()).toBe(0n)
    expect(a.remaining()).toBe(0x10_0000n)
    expect(a.allocPage()).toBe(0x4100_0000n)
  })

  it('an alignment that is not a power of two throws input', () => {
    const a = planAllocator()
    for (const align of [0n, 3n, 6n, 12n, 0x3000n, -4n]) {
      expectHvmemError(() => a.allocAligned(16n, align), 'input', `alignment must be a power of two (got ${align})`)
    }
    expect(a.next).toBe(0x4100_0000n)
  })

  it('size 0 (or negative) throws input', () => {
    const a = planAllocator()
    expectHvmemError(() => a.allocAligned(0n, 8n), 'input', 'allocation size must be > 0 (got 0)')
    expectHvmemError(() => a.alloc(0n), 'input')
    expectHvmemError(() => a.alloc(-4n), 'input', 'got -4')
    expect(a.state()).toEqual({start: 0x4100_0000n, size: 0x10_0000n, next: 0x4100_0000n, allocated: 0n})
  })

  it('huge sizes and alignments return undefined rather than a wrapped address', () => {
    const start = TWO_64 - 0x10_0000n
    const a = new BumpAllocator(start, 0x10_0000n)
    expect(a.end).toBe(TWO_64)
    a.alloc(4n)
    const before = a.state()
    expect(a.allocAligned(TWO_64 - 1n, 1n)).toBeUndefined()
    expect(a.allocAligned(U64_MAX, 4096n)).toBeUndefined()
    expect(a.allocAligned(1n, 1n << 63n)).toBeUndefined() // rounds up to 2^64, which is the end
    expect(a.allocAligned(1n, TWO_64)).toBeUndefined()
    expect(a.state()).toEqual(before)

    // The very last byte of the address space is still reachable, and nothing after it.
    expect(a.allocAligned(0x10_0000n - 0x1000n, PAGE_SIZE)).toBe(start + 0x1000n)
    expect(a.next).toBe(TWO_64)
    expect(a.alloc(1n)).toBeUndefined()
  })

  it('the constructor refuses a range ending past 2^64, a negative start and size 0', () => {
    expectHvmemError(() => new BumpAllocator(TWO_64 - 0x1000n, 0x2000n), 'input', 'ends past the 64-bit address space')
    expectHvmemError(() => new BumpAllocator(U64_MAX, 2n), 'input')
    expectHvmemError(() => new BumpAllocator(-0x1000n, 0x2000n), 'input', 'start >= 0 and size > 0')
    expectHvmemError(() => new BumpAllocator(0x4100_0000n, 0n), 'input')
    expect(new BumpAllocator(TWO_64 - 0x1000n, 0x1000n).end).toBe(TWO_64)
    expect(new BumpAllocator(U64_MAX, 1n).size).toBe(1n)
  })
})

describe('BumpAllocator state', () => {
  it('state() and fromState() round-trip, and clone() is independent', () => {
    const a = planAllocator()
    a.alloc(4n)
    a.allocPage()
    expect(a.state()).toEqual({start: 0x4100_0000n, size: 0x10_0000n, next: 0x4100_2000n, allocated: 4100n})
    const b = BumpAllocator.fromState(a.state())
    expect(b.state()).toEqual(a.state())
    expect(b.padding()).toBe(4092n)
    const c = a.clone()
    expect(c.allocPage()).toBe(0x4100_2000n)
    expect(a.next).toBe(0x4100_2000n)
  })

  it('fromState() refuses inconsistent states as snapshot-invalid', () => {
    const good = {start: 0x4100_0000n, size: 0x10_0000n, next: 0x4100_2000n, allocated: 0x1000n}
    expect(BumpAllocator.fromState(good).next).toBe(0x4100_2000n)
    for (const bad of [
      {...good, next: 0x40ff_f000n},
      {...good, next: 0x4110_0001n},
      {...good, allocated: -1n},
      {...good, allocated: 0x2001n},
    ]) {
      expectHvmemError(() => BumpAllocator.fromState(bad), 'snapshot-invalid', 'allocator state is inconsistent')
    }
    expect(BumpAllocator.fromState({...good, next: 0x4110_0000n, allocated: 0x10_0000n}).remaining()).toBe(0n)
  })
})

type Op = {kind: 'page'} | {kind: 'aligned'; size: bigint; align: bigint} | {kind: 'alloc'; size: bigint}

const sizeArb = fc.oneof({weight: 8, arbitrary: fc.bigInt({min: 1n, max: 0x3000n})}, {weight: 1, arbitrary: fc.bigInt({min: 1n, max: U64_MAX})})
const alignArb = fc.oneof({weight: 8, arbitrary: fc.integer({min: 0, max: 13})}, {weight: 1, arbitrary: fc.integer({min: 14, max: 64})}).map((shift) => 1n << BigInt(shift))
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant<Op>({kind: 'page'}),
  fc.record({kind: fc.constant<'aligned'>('aligned'), size: sizeArb, align: alignArb}),
  fc.record({kind: fc.constant<'alloc'>('alloc'), size: sizeArb}),
)
const rangeArb = fc.record({
  size: fc.bigInt({min: 1n, max: 0x4_0000n}),
  start: fc.oneof(fc.bigInt({min: 0n, max: 0x1_0000_0000n}), fc.bigInt({min: TWO_64 - 0x10_0000n, max: TWO_64 - 0x4_0000n})),
})

function run(a: BumpAllocator, op: Op): {at: bigint | undefined; size: bigint; align: bigint} {
  switch (op.kind) {
    case 'page':
      return {at: a.allocPage(), size: 4096n, align: 4096n}
    case 'aligned':
      return {at: a.allocAligned(op.size, op.align), size: op.size, align: op.align}
    case 'alloc':
      return {at: a.alloc(op.size), size: op.size, align: 4n}
  }
}

describe('BumpAllocator property', () => {
  it('never returns an address outside [start, end), never overlaps, and accounts for every byte', () => {
    fc.assert(
      fc.property(rangeArb, fc.array(opArb, {maxLength: 40}), ({start, size}, ops) => {
        const a = new BumpAllocator(start, size)
        const taken: Array<[bigint, bigint]> = []
        for (const op of ops) {
          const before = a.state()
          const {at, size: length, align} = run(a, op)
          const expectedAt = ((before.next + align - 1n) / align) * align
          if (at === undefined) {
            expect(expectedAt + length).toBeGreaterThan(a.end)
            expect(a.state()).toEqual(before)
          } else {
            expect(at).toBe(expectedAt)
            expect(at % align).toBe(0n)
            expect(at).toBeGreaterThanOrEqual(a.start)
            expect(at + length).toBeLessThanOrEqual(a.end)
            for (const [s, e] of taken) expect(at >= e || at + length <= s).toBe(true)
            taken.push([at, at + length])
            expect(a.next).toBe(at + length)
            expect(a.allocated()).toBe(before.allocated + length)
          }
          expect(a.padding() + a.allocated()).toBe(a.next - a.start)
          expect(a.padding()).toBeGreaterThanOrEqual(0n)
          expect(a.remaining()).toBe(a.end - a.next)
        }
      }),
      {numRuns: 200},
    )
  })
})
