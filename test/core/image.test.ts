/** Where an imported image puts RAM and the heap, and what it refuses. */
import {describe, expect, it} from 'vitest'

import {tableDescriptor} from '../../src/core/descriptor.js'
import {adoptedMapperState, checkImage, checkInsideRam, imageEnd, newSnapshotLayout} from '../../src/core/image.js'
import {Machine} from '../../src/core/machine.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {expectHvmemError} from './helpers.js'

const MiB = 1n << 20n
const scan = (nonZero: number[], length = 16n * MiB, base = 0x4100_0000n) => ({base, length, pages: Number((length + 4095n) / 4096n), nonZero})

describe('newSnapshotLayout', () => {
  it('puts RAM over the image (rounded up to pages) and the heap in its free tail, at most 16 MiB', () => {
    expect(newSnapshotLayout(scan([0, 1, 2]), {}, 'RAW x')).toEqual({ramBase: 0x4100_0000n, ramSize: 16n * MiB, heapBase: 0x4100_3000n, heapSize: 16n * MiB - 0x3000n, heapPlacement: 'tail'})
    expect(newSnapshotLayout(scan([0], 1024n * MiB, 0x4000_0000n), {}, 'RAW x')).toEqual({
      ramBase: 0x4000_0000n,
      ramSize: 1024n * MiB,
      heapBase: 0x7f00_0000n,
      heapSize: 16n * MiB,
      heapPlacement: 'tail',
    })
    expect(newSnapshotLayout(scan([], 100n), {}, 'RAW x')).toEqual({ramBase: 0x4100_0000n, ramSize: 4096n, heapBase: 0x4100_0000n, heapSize: 4096n, heapPlacement: 'tail'})
    expect(newSnapshotLayout(scan([4095]), {ramSize: 32n * MiB, heapSize: 4n * MiB}, 'RAW x')).toEqual({
      ramBase: 0x4100_0000n,
      ramSize: 32n * MiB,
      heapBase: 0x42c0_0000n,
      heapSize: 4n * MiB,
      heapPlacement: 'tail',
    })
    expect(newSnapshotLayout(scan([4095]), {heapStart: 0x4100_1000n, heapSize: 0x2000n}, 'RAW x')).toEqual({
      ramBase: 0x4100_0000n,
      ramSize: 16n * MiB,
      heapBase: 0x4100_1000n,
      heapSize: 0x2000n,
      heapPlacement: 'given',
    })
  })

  it('gives no heap for an image with no free tail (unless a --heap-size is asked for)', () => {
    expect(newSnapshotLayout(scan([4095]), {}, 'RAW x')).toEqual({ramBase: 0x4100_0000n, ramSize: 16n * MiB, heapBase: 0x4100_0000n, heapSize: 0n, heapPlacement: 'none'})
    expectHvmemError(() => newSnapshotLayout(scan([4095]), {heapSize: MiB}, 'RAW x'), 'input', 'RAW x leaves no all-zero page at the top of RAM 0x41000000-0x42000000 for a --heap-size heap')
  })

  it('refuses RAM smaller than the image, a heap over data', () => {
    expectHvmemError(
      () => newSnapshotLayout(scan([0]), {ramSize: 8n * MiB}, 'RAW x'),
      'input',
      'RAW x (16777216 bytes, 0x41000000-0x42000000) goes past RAM 0x41000000-0x41800000; pass a --ram-size of at least 0x1000000',
    )
    expectHvmemError(() => newSnapshotLayout(scan([7]), {heapStart: 0x4100_0000n, heapSize: 0x8000n}, 'RAW x'), 'input', 'the heap 0x41000000-0x41008000 would overlap imported data (page 0x41007000)')
    expect(newSnapshotLayout(scan([8]), {heapStart: 0x4100_0000n, heapSize: 0x8000n}, 'RAW x').heapBase).toBe(0x4100_0000n)
    expectHvmemError(() => newSnapshotLayout(scan([0]), {heapStart: 0x4000_0000n}, 'RAW x'), 'input', 'heap 0x40000000-0x41000000 is not inside RAM 0x41000000-0x42000000')
    expectHvmemError(() => newSnapshotLayout(scan([0]), {ramSize: 0x1800n}, 'RAW x'), 'input', '--ram-size 0x1800 must be a non-zero multiple of 4 KiB')
  })
})

describe('checkImage and checkInsideRam', () => {
  it('refuses an unaligned base, an empty image and one past the 40-bit PA space', () => {
    expect(imageEnd({base: 0x1000n, length: 1n})).toBe(0x2000n)
    expectHvmemError(() => checkImage({base: 0x800n, length: 1n}, 'RAW x'), 'input', '--base 0x800 is not 4 KiB aligned')
    expectHvmemError(() => checkImage({base: 0n, length: 0n}, 'RAW x'), 'input', 'RAW x is empty: there is nothing to import')
    expectHvmemError(() => checkImage({base: (1n << 40n) - 4096n, length: 4097n}, 'RAW x'), 'input', 'past the 40-bit physical address space')
    expect(() => checkImage({base: (1n << 40n) - 4096n, length: 4096n}, 'RAW x')).not.toThrow()
    expectHvmemError(
      () => checkInsideRam({base: 0x3fff_f000n, length: 0x1000n}, 0x4000_0000n, 0x8000_0000n, 'RAW x'),
      'input',
      "RAW x (4096 bytes at 0x3ffff000-0x40000000) does not lie inside the snapshot's RAM 0x40000000-0x80000000",
    )
    expect(() => checkInsideRam({base: 0x7fff_f000n, length: 0x1000n}, 0x4000_0000n, 0x8000_0000n, 'RAW x')).not.toThrow()
  })
})

describe('adoptedMapperState', () => {
  const ROOT = 0x4100_0000n
  const L2 = 0x4100_1000n

  it('sizes the L2 budget as the mapper counts it: one per L1 table entry, even where entries share a table', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x4000_0000n)
    for (let i = 0n; i < 5n; i++) memory.writeU64(ROOT + 8n * i, tableDescriptor(L2))
    const state = adoptedMapperState(memory, {root: ROOT, regime: 'stage2'})
    expect(state).toEqual({regime: 'stage2', root: ROOT, vmid: 0, l2Budget: 5, orphanedTables: 0, granule: 4096, inputBits: 39})
    // the mapper made of it can still map (its budget is not spent already)
    const machine = Machine.restore({ram: {base: 0x4000_0000n, size: 0x4000_0000n}, heap: {start: 0x4200_0000n, size: 0x100_0000n, next: 0x4200_0000n, allocated: 0n}, mapper: state}, memory)
    expect(() => machine.mapper!.mapRegion(0x0000_1000n, 0x1000n, 'normal')).not.toThrow()
    expectHvmemError(() => adoptedMapperState(memory, {root: ROOT, regime: 'stage2', l2Budget: 4}), 'input', '--l2-budget 4 is below the 5 L2 tables the root 0x41000000 already reaches')
  })
})
