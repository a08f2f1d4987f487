import {describe, expect, it} from 'vitest'

import {Machine} from '../../src/core/machine.js'
import {tableDescriptor} from '../../src/core/descriptor.js'
import {BLOCK, GIB, PAGE, capture, defaultMachine, expectHvmemError, expectUnchangedAfterError, mappedMachine} from './helpers.js'

const HEAP = 0x4100_0000n

/** A default machine with a mapper, two L2 tables (0x4100_1000, 0x4100_2000) and user data at 0x4100_3000. */
function machineWithTables(): Machine {
  const {machine, mapper} = mappedMachine()
  mapper.mapRegion(0x4000_0000n, 2n * BLOCK, 'normal')
  mapper.mapRegion(0x8000_0000n, BLOCK, 'device')
  const data = machine.heap.allocPage()
  machine.memory.write(data + 8n, 4, 0xcafe_f00dn)
  return machine
}

describe('Machine.create and state', () => {
  it('creates RAM and heap from a layout, without a mapper', () => {
    const m = defaultMachine()
    expect(m.memory.base).toBe(0x4000_0000n)
    expect(m.memory.size).toBe(GIB)
    expect(m.mapper).toBeUndefined()
    expect(m.state()).toEqual({
      ram: {base: 0x4000_0000n, size: GIB},
      heap: {start: HEAP, size: 0x100_0000n, next: HEAP, allocated: 0n},
      mapper: undefined,
    })
  })

  it('refuses a bad layout', () => {
    expectHvmemError(() => Machine.create({ramBase: 0x4000_0000n, ramSize: GIB, heapBase: 0x8000_0000n, heapSize: PAGE}), 'input', 'is not inside RAM')
    expectHvmemError(() => Machine.create({ramBase: 0xff_c000_0000n, ramSize: 2n * GIB, heapBase: 0xff_c000_0000n, heapSize: PAGE}), 'input', '40-bit physical address space')
  })

  it('restore() rebuilds the same machine from its state and memory', () => {
    const m = machineWithTables()
    const restored = Machine.restore(m.state(), m.memory)
    expect(restored.state()).toEqual(m.state())
    expect(restored.mapper?.vttbr()).toBe(HEAP)
    expect(restored.mapper?.l2Tables()).toEqual([0x4100_1000n, 0x4100_2000n])
    expect(restored.heap.allocPage()).toBe(0x4100_4000n)
  })

  it('restore() refuses memory that does not match the state', () => {
    const m = defaultMachine()
    const other = Machine.create({ramBase: 0x4000_0000n, ramSize: 2n * GIB, heapBase: HEAP, heapSize: PAGE}).memory
    expectHvmemError(() => Machine.restore(m.state(), other), 'snapshot-invalid', 'memory does not match the RAM layout')
  })
})

describe('Machine.ensureMapper', () => {
  it('creates the mapper once, from the first heap page', () => {
    const m = defaultMachine()
    const first = m.ensureMapper({vmid: 9, l2Budget: 8})
    expect(first.created).toBe(true)
    expect(first.mapper.state).toEqual({regime: 'stage2', root: HEAP, vmid: 9, l2Budget: 8, orphanedTables: 0, granule: 4096, inputBits: 39})
    expect(m.heap.status().next).toBe(HEAP + PAGE)
    const second = m.ensureMapper()
    expect(second.created).toBe(false)
    expect(second.mapper).toBe(first.mapper)
    expect(m.ensureMapper({vmid: 9, l2Budget: 8}).mapper).toBe(first.mapper)
    expect(m.heap.status().next).toBe(HEAP + PAGE)
  })

  it('a different vmid or l2Budget than the existing mapper throws input', () => {
    const {machine} = mappedMachine({vmid: 1, l2Budget: 4})
    expectUnchangedAfterError(machine, () => machine.ensureMapper({vmid: 2}), 'input', 'the mapper already exists with --vmid 1')
    expectUnchangedAfterError(machine, () => machine.ensureMapper({l2Budget: 5}), 'input', 'the mapper already exists with --l2-budget 4')
    expectUnchangedAfterError(machine, () => machine.ensureMapper({vmid: 1, l2Budget: 6}), 'input', '--l2-budget 4')
  })

  it('bad options for a new mapper allocate nothing', () => {
    const m = defaultMachine()
    expectUnchangedAfterError(m, () => m.ensureMapper({vmid: 70000}), 'input')
    expectUnchangedAfterError(m, () => m.ensureMapper({l2Budget: 0}), 'input')
    expect(m.mapper).toBeUndefined()
  })
})

describe('Machine.resetHeap', () => {
  it('without a mapper returns the heap to its start and keeps memory contents', () => {
    const m = defaultMachine()
    m.heap.alloc(4n)
    const page = m.heap.allocPage()
    m.memory.write(page, 8, 0x1122_3344n)
    expect(m.resetHeap(false)).toEqual({discardedTables: []})
    expect(m.heap.status()).toMatchObject({next: HEAP, allocated: 0n, padding: 0n, remaining: 0x100_0000n})
    expect(m.memory.read(page, 8)).toBe(0x1122_3344n)
    expect(m.heap.allocPage()).toBe(HEAP)
    expect(m.resetHeap(true)).toEqual({discardedTables: []})
  })

  it('with a mapper and discardMapper=false throws mapping-conflict and changes nothing', () => {
    const m = machineWithTables()
    const mapper = m.mapper
    expectUnchangedAfterError(m, () => m.resetHeap(false), 'mapping-conflict', 'the heap holds the stage-2 tables (root 0x41000000, 2 L2 table(s))')
    expect(m.mapper).toBe(mapper)
  })

  it('with discardMapper=true zeroes the tables, drops the mapper and returns the heap to its start', () => {
    const m = machineWithTables()
    expect(m.memory.nonZeroPages().map(([a]) => a)).toEqual([HEAP, 0x4100_1000n, 0x4100_2000n, 0x4100_3000n])
    expect(m.resetHeap(true)).toEqual({discardedTables: [HEAP, 0x4100_1000n, 0x4100_2000n]})
    expect(m.mapper).toBeUndefined()
    expect(m.state().mapper).toBeUndefined()
    expect(m.memory.nonZeroPages().map(([a]) => a)).toEqual([0x4100_3000n]) // only the user data is left
    expect(m.memory.read(0x4100_3008n, 4)).toBe(0xcafe_f00dn)
    expect(m.heap.status()).toMatchObject({next: HEAP, allocated: 0n, remaining: 0x100_0000n})
    // A new mapper starts over at the heap start with an empty root.
    const again = m.ensureMapper({vmid: 4})
    expect(again).toMatchObject({created: true})
    expect(again.mapper.vttbr()).toBe(0x0004_0000_4100_0000n)
    expect(again.mapper.l2Tables()).toEqual([])
  })

  it('with discardMapper=true zeroes the L3 tables of page mappings too', () => {
    const m = defaultMachine()
    m.ensureMapper({}).mapper.mapRegion(0x4000_0000n, 2n * PAGE, 'normal', {granularity: 'page'})
    // root, one L2 table, one L3 table
    expect(m.memory.nonZeroPages().map(([a]) => a)).toEqual([HEAP, 0x4100_1000n, 0x4100_2000n])
    expect(m.resetHeap(true)).toEqual({discardedTables: [HEAP, 0x4100_1000n, 0x4100_2000n]})
    expect(m.memory.nonZeroPages()).toEqual([])
  })

  it('with discardMapper=true leaves memory outside the heap alone, even where a hand-written L1 entry points', () => {
    const m = machineWithTables()
    m.memory.write(0x5000_0010n, 8, 0x1234n)
    m.memory.writeU64(HEAP + 8n * 5n, tableDescriptor(0x5000_0000n)) // L1[5] -> a "table" outside the heap
    expect(m.resetHeap(true)).toEqual({discardedTables: [HEAP, 0x4100_1000n, 0x4100_2000n]})
    expect(m.memory.read(0x5000_0010n, 8)).toBe(0x1234n)
  })

  it('capture() sees a discard (sanity check of the test helper)', () => {
    const m = machineWithTables()
    const before = capture(m)
    m.resetHeap(true)
    expect(capture(m)).not.toEqual(before)
  })
})
