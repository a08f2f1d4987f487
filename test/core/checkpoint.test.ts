/** Machine.checkpoint and PhysicalMemory.beginUndo: what hvmem batch --keep-going undoes a failed line with. */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {HvmemError} from '../../src/core/errors.js'
import {diffMachines, diffSinceCheckpoint} from '../../src/core/diff.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {decodeSource, encodeSnapshot} from '../../src/snapshot/format.js'
import {BLOCK, GIB, PAGE, capture, defaultMachine, expectHvmemError, smallHeapMachine} from './helpers.js'

const RAM = 0x4000_0000n

describe('Machine.checkpoint', () => {
  it('a map region that created the mapper and was then refused is undone whole: no mapper, heap and memory as before', () => {
    const machine = defaultMachine()
    machine.memory.write(0x4100_0000n, 8, 0x1122_3344_5566_7788n) // where the L1 table would go (allocation zeroes it)
    const before = capture(machine)
    const checkpoint = machine.checkpoint()
    // What "map region 0x80_0000_0000 2M" does: the mapper is created first, then the range is refused.
    const {created} = machine.ensureMapper({vmid: 3})
    expect(created).toBe(true)
    expect(machine.memory.read(0x4100_0000n, 8)).toBe(0n)
    expectHvmemError(() => machine.mapper!.mapRegion(0x80_0000_0000n, BLOCK, 'normal'), 'input', /IPA space|39-bit|past/)
    checkpoint.rollback()
    expect(machine.mapper).toBeUndefined()
    expect(capture(machine)).toEqual(before)
    expect(machine.memory.read(0x4100_0000n, 8)).toBe(0x1122_3344_5566_7788n)
  })

  it('rollback restores the mapper state (orphan count) and the tables a later edit changed; release keeps the changes', () => {
    const machine = defaultMachine()
    const {mapper} = machine.ensureMapper()
    mapper.mapRegion(RAM, GIB, 'normal', {granularity: 'page'})
    const before = encodeSnapshot(machine)
    const checkpoint = machine.checkpoint()
    mapper.coalesce()
    mapper.unmap(RAM, 2n * BLOCK)
    machine.heap.allocPages(3)
    expect(mapper.state.orphanedTables).toBeGreaterThan(0)
    checkpoint.rollback()
    expect(mapper.state.orphanedTables).toBe(0)
    expect(machine.mapper).toBe(mapper)
    expect(encodeSnapshot(machine).equals(before)).toBe(true)

    const next = machine.heap.status().next
    const kept = machine.checkpoint()
    const page = machine.heap.allocPage()
    machine.memory.write(page, 8, 0xabn)
    kept.release()
    expect(page).toBe(next)
    expect(machine.heap.status().next).toBe(next + PAGE)
    expect(machine.memory.read(page, 8)).toBe(0xabn)
  })

  it('checkpoints nest: an inner rollback undoes only what came after it, the outer one everything; closing the outer first is refused', () => {
    const machine = defaultMachine()
    machine.memory.write(RAM + 3n * PAGE, 8, 9n)
    const start = capture(machine)
    const outer = machine.checkpoint()
    machine.memory.write(RAM, 8, 1n)
    const middle = capture(machine)
    const inner = machine.checkpoint()
    machine.memory.write(RAM, 8, 2n)
    machine.memory.write(RAM + PAGE, 8, 3n)
    machine.memory.write(RAM + 3n * PAGE, 8, 10n) // first changed with both open: both keep it as it was
    machine.ensureMapper().mapper.mapRegion(RAM, BLOCK, 'normal')
    expect(() => outer.release()).toThrow('an undo record closed while one opened after it is open')
    inner.rollback()
    expect(capture(machine)).toEqual(middle)
    expect(machine.mapper).toBeUndefined()
    // written again after the inner rollback: the outer record still has it as it was at the start
    machine.memory.write(RAM + 3n * PAGE, 8, 11n)
    outer.rollback()
    expect(capture(machine)).toEqual(start)
    machine.checkpoint().release()
  })

  it('before(): the machine as it was at the checkpoint, with the frames changed since; diffSinceCheckpoint reads only those', () => {
    const machine = defaultMachine()
    machine.memory.write(RAM + 0x10n, 8, 0xaan)
    machine.memory.write(RAM + 2n * PAGE, 8, 0xbbn)
    const start = capture(machine)
    const checkpoint = machine.checkpoint()
    machine.memory.write(RAM + 0x10n, 8, 0xccn) // changed
    machine.memory.zero(RAM + 2n * PAGE, PAGE) // dropped
    machine.ensureMapper().mapper.mapRegion(RAM, BLOCK, 'device') // a mapper, its tables from the heap
    const before = checkpoint.before()
    expect(capture(before)).toEqual(start)
    expect(before.mapper).toBeUndefined()
    // the two RAM pages, and the root and L2 table the map allocated from the heap at 0x4100_0000
    expect(checkpoint.changedFrames()).toEqual([0x40000, 0x40002, 0x41000, 0x41001])
    const diff = diffSinceCheckpoint(machine, checkpoint)
    const whole = diffMachines({machine: before}, {machine})
    expect(diff).toEqual(whole)
    expect(diff.memory.map((r) => [r.address, r.length])).toEqual([
      [RAM + 0x10n, 1],
      [RAM + 2n * PAGE, 1],
    ])
    expect(diff.mapper?.change).toBe('added')
    checkpoint.release()
  })

  it('heap reset --discard-mapper undone: mapper, tables and heap back', () => {
    const machine = defaultMachine()
    machine.ensureMapper().mapper.mapRegion(RAM, 4n * BLOCK, 'device')
    const before = encodeSnapshot(machine)
    const checkpoint = machine.checkpoint()
    machine.resetHeap(true)
    expect(machine.mapper).toBeUndefined()
    checkpoint.rollback()
    expect(encodeSnapshot(machine).equals(before)).toBe(true)
    expect(machine.mapper?.state.regime).toBe('stage2')
  })

  type Op =
    | {kind: 'write'; at: bigint; width: 1 | 2 | 4 | 8; value: bigint}
    | {kind: 'zero'; at: bigint; length: bigint}
    | {kind: 'alloc'; pages: number}
    | {kind: 'map'; at: bigint; pages: bigint}
    | {kind: 'unmap'; at: bigint; pages: bigint}
    | {kind: 'fail'}

  const address = fc.bigInt({min: 0n, max: 0x40_0000n - 8n}).map((o) => 0x4100_0000n + o)
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({kind: fc.constant('write' as const), at: address, width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), value: fc.bigInt({min: 0n, max: 0xffn})}),
    fc.record({kind: fc.constant('zero' as const), at: address, length: fc.bigInt({min: 1n, max: 3n * PAGE})}),
    fc.record({kind: fc.constant('alloc' as const), pages: fc.integer({min: 1, max: 40})}),
    fc.record({kind: fc.constant('map' as const), at: fc.bigInt({min: 0n, max: 2048n}).map((p) => RAM + p * PAGE), pages: fc.bigInt({min: 1n, max: 1024n})}),
    fc.record({kind: fc.constant('unmap' as const), at: fc.bigInt({min: 0n, max: 2048n}).map((p) => RAM + p * PAGE), pages: fc.bigInt({min: 1n, max: 1024n})}),
    fc.constant({kind: 'fail' as const}),
  )

  it('undoes a page memory adopted from a Buffer (as a snapshot read whole gives them), also in nested records', () => {
    const memory = new PhysicalMemory(RAM, 1n << 20n)
    const chunk = Buffer.alloc(2 * 4096, 0x11)
    memory.loadPage(RAM, chunk.subarray(0, 4096), 1, {adopt: true})
    memory.loadPage(RAM + PAGE, chunk.subarray(4096), 2, {adopt: true})
    const outer = memory.beginUndo()
    memory.write(RAM, 4, 0xdead_beefn)
    const inner = memory.beginUndo()
    memory.write(RAM + PAGE, 4, 0xfeed_f00dn)
    memory.write(RAM, 4, 0x1234_5678n)
    inner.rollback()
    expect([memory.read(RAM, 4), memory.read(RAM + PAGE, 4)]).toEqual([0xdead_beefn, 0x1111_1111n])
    outer.rollback()
    expect([memory.read(RAM, 4), memory.read(RAM + PAGE, 4)]).toEqual([0x1111_1111n, 0x1111_1111n])
  })

  it.each([
    ['made in memory', false],
    ['read back from its snapshot file whole (pages adopted from the read)', true],
  ])('any sequence of changes, failed or not, rolled back leaves the snapshot bytes as before (property): a machine %s', (_, decoded) => {
    fc.assert(
      fc.property(fc.array(op, {maxLength: 6}), fc.array(op, {maxLength: 6}), (setup, inside) => {
        let machine = smallHeapMachine(256)
        const apply = (o: Op): void => {
          try {
            if (o.kind === 'write') machine.memory.write(o.at, o.width, o.value)
            else if (o.kind === 'zero') machine.memory.zero(o.at, o.length)
            else if (o.kind === 'alloc') machine.heap.allocPages(o.pages)
            else if (o.kind === 'map') machine.ensureMapper().mapper.mapRegion(o.at, o.pages * PAGE, 'normal', {replace: true})
            else if (o.kind === 'unmap') machine.mapper?.unmap(o.at, o.pages * PAGE)
            else throw new HvmemError('input', 'a line that fails')
          } catch (error) {
            if (!(error instanceof HvmemError)) throw error
          }
        }
        setup.forEach(apply)
        if (decoded) {
          // as the store reads a file whole: each chunk a fresh Buffer, its pages kept as views of it
          const bytes = encodeSnapshot(machine)
          machine = decodeSource({length: bytes.length, fresh: true, read: (offset, length) => Buffer.from(bytes.subarray(offset, offset + length))}, 'checkpoint.snap', 'full').machine
        }
        const before = encodeSnapshot(machine)
        const mapperBefore = machine.mapper
        const checkpoint = machine.checkpoint()
        inside.forEach(apply)
        checkpoint.rollback()
        expect(encodeSnapshot(machine).equals(before)).toBe(true)
        expect(machine.mapper).toBe(mapperBefore)
      }),
      {numRuns: 200},
    )
  })
})
