import {describe, expect, it} from 'vitest'

import {BumpAllocator} from '../../src/core/allocator.js'
import {DEFAULT_HEAP_BASE, DEFAULT_HEAP_SIZE, DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE, Heap, checkLayout} from '../../src/core/heap.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {PAGE, defaultMachine, expectHvmemError, smallHeapMachine} from './helpers.js'

const HEAP = DEFAULT_HEAP_BASE

describe('Heap: the plan scenario (Task 2)', () => {
  it('has the plan layout: 16 MiB at 0x4100_0000 inside 1 GiB of RAM at 0x4000_0000', () => {
    expect(DEFAULT_HEAP_BASE).toBe(0x4100_0000n)
    expect(DEFAULT_HEAP_SIZE).toBe(0x100_0000n)
    expect(DEFAULT_RAM_BASE).toBe(0x4000_0000n)
    expect(DEFAULT_RAM_SIZE).toBe(0x4000_0000n)
    expect(defaultMachine().heap.status()).toEqual({
      start: 0x4100_0000n,
      end: 0x4200_0000n,
      size: 0x100_0000n,
      next: 0x4100_0000n,
      allocated: 0n,
      remaining: 0x100_0000n,
      padding: 0n,
    })
  })

  it('allocates a page, writes 0xDEADBEEF to it and reads it back little-endian', () => {
    const m = defaultMachine()
    const page = m.heap.allocPage()
    expect(page).toBe(0x4100_0000n)
    m.memory.write(page, 8, 0xdead_beefn)
    expect(m.memory.read(page, 8)).toBe(0xdead_beefn)
    expect(m.memory.read(page, 4)).toBe(0xdead_beefn)
    expect(m.memory.read(page + 4n, 4)).toBe(0n)
    expect(Array.from(m.memory.readBytes(page, 8))).toEqual([0xef, 0xbe, 0xad, 0xde, 0, 0, 0, 0])
    expect(m.heap.status().next).toBe(0x4100_1000n)
    expect(m.heap.status().allocated).toBe(4096n)
  })
})

describe('Heap allocation', () => {
  it('alloc() is 4-byte aligned and allocAligned() pads', () => {
    const m = defaultMachine()
    expect(m.heap.alloc(3n)).toBe(HEAP)
    expect(m.heap.alloc(1n)).toBe(HEAP + 4n)
    expect(m.heap.allocAligned(16n, 64n)).toBe(HEAP + 64n)
    expect(m.heap.status()).toMatchObject({next: HEAP + 80n, allocated: 20n, padding: 60n, remaining: 0x100_0000n - 80n})
  })

  it('allocPages(count) returns consecutive pages, all or nothing', () => {
    const m = smallHeapMachine(3)
    m.heap.alloc(4n) // the pages start after the padding
    const before = m.heap.status()
    expectHvmemError(() => m.heap.allocPages(3), 'heap-exhausted')
    expect(m.heap.status()).toEqual(before)
    expect(m.heap.allocPages(2)).toEqual([HEAP + PAGE, HEAP + 2n * PAGE])
    expect(m.heap.status()).toMatchObject({next: HEAP + 3n * PAGE, allocated: 4n + 2n * PAGE, padding: PAGE - 4n, remaining: 0n})
  })

  it('allocPages() refuses a count that is not a positive integer', () => {
    const m = defaultMachine()
    for (const count of [0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) {
      expectHvmemError(() => m.heap.allocPages(count), 'input', 'page count must be a positive integer')
    }
    expect(m.heap.status().next).toBe(HEAP)
  })

  it('an exhausted heap throws heap-exhausted with the numbers in the message', () => {
    const m = smallHeapMachine(3)
    m.heap.allocPages(2)
    const error = expectHvmemError(() => m.heap.allocPages(2), 'heap-exhausted')
    expect(error.message).toBe(
      'heap exhausted: 8192 bytes (align 4096) requested but 4096 bytes remain at 0x41002000 in heap 0x41000000-0x41003000; make a larger heap with "heap init --force --size"',
    )
    expect(m.heap.allocPage()).toBe(HEAP + 2n * PAGE)
    expectHvmemError(() => m.heap.alloc(1n), 'heap-exhausted', 'but 0 bytes remain at 0x41003000')
  })

  it('allocZeroedPages() zeroes pages that still hold old data', () => {
    const m = smallHeapMachine(2)
    m.memory.write(HEAP + 0x10n, 8, 0x1234n)
    m.memory.write(HEAP + PAGE + 0xff8n, 8, 0x5678n)
    m.memory.write(HEAP + 2n * PAGE, 1, 0x99n) // just past the heap: left alone
    expect(m.heap.allocZeroedPages(2)).toEqual([HEAP, HEAP + PAGE])
    expect(m.memory.nonZeroPages().map(([a]) => a)).toEqual([HEAP + 2n * PAGE])
    expect(m.memory.read(HEAP + 2n * PAGE, 1)).toBe(0x99n)
  })

  it('contains() covers exactly [start, end)', () => {
    const h = smallHeapMachine(2).heap
    expect(h.contains(HEAP)).toBe(true)
    expect(h.contains(HEAP + 2n * PAGE - 1n)).toBe(true)
    expect(h.contains(HEAP + 2n * PAGE)).toBe(false)
    expect(h.contains(HEAP - 1n)).toBe(false)
  })
})

describe('Heap layout checks', () => {
  const ram = {base: 0x4000_0000n, size: 0x4000_0000n}

  it('accepts the default layout and a heap filling all of RAM', () => {
    expect(() => checkLayout(ram.base, ram.size, HEAP, DEFAULT_HEAP_SIZE)).not.toThrow()
    expect(() => checkLayout(ram.base, ram.size, ram.base, ram.size)).not.toThrow()
    expect(() => checkLayout(0xff_0000_0000n, 0x1_0000_0000n, 0xff_0000_0000n, PAGE)).not.toThrow() // ends exactly at 2^40
  })

  it('refuses unaligned or empty RAM and heaps', () => {
    expectHvmemError(() => checkLayout(ram.base + 1n, ram.size, HEAP, PAGE), 'input', 'RAM base and size must be non-zero multiples of 4 KiB')
    expectHvmemError(() => checkLayout(ram.base, 0n, HEAP, PAGE), 'input', 'RAM base and size')
    expectHvmemError(() => checkLayout(ram.base, ram.size, HEAP + 8n, PAGE), 'input', 'heap base and size must be non-zero multiples of 4 KiB')
    expectHvmemError(() => checkLayout(ram.base, ram.size, HEAP, 100n), 'input', 'heap base and size')
    expectHvmemError(() => checkLayout(ram.base, ram.size, HEAP, 0n), 'input', 'heap base and size')
  })

  it('refuses RAM past the 40-bit PA limit and a heap outside RAM', () => {
    expectHvmemError(() => checkLayout(0xff_0000_0000n, 0x1_0000_1000n, 0xff_0000_0000n, PAGE), 'input', 'ends past the 40-bit physical address space (0x10000000000')
    expectHvmemError(() => checkLayout(ram.base, ram.size, ram.base - PAGE, 2n * PAGE), 'input', 'heap 0x3ffff000-0x40001000 is not inside RAM 0x40000000-0x80000000')
    expectHvmemError(() => checkLayout(ram.base, ram.size, 0x7fff_f000n, 2n * PAGE), 'input', 'is not inside RAM')
  })

  it('the Heap constructor applies the same checks', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x10_0000n)
    expectHvmemError(() => new Heap(memory, new BumpAllocator(0x4100_0000n, PAGE)), 'input', 'is not inside RAM')
    expectHvmemError(() => new Heap(memory, new BumpAllocator(0x4000_0000n, 0x800n)), 'input', 'heap base and size')
    expect(new Heap(memory, new BumpAllocator(0x4000_0000n, 0x10_0000n)).allocPage()).toBe(0x4000_0000n)
  })
})
