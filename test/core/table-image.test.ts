import {describe, expect, it} from 'vitest'

import {buildTableImage, misalignedTable, tableSpan} from '../../src/core/table-image.js'
import {translate} from '../../src/core/translate.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {BLOCK, GIB, PAGE, expectHvmemError, mappedMachine} from './helpers.js'

/** A stage-2 tree: 0x4000_0000 in pages (L1 -> L2 -> L3), 0x8000_0000 as a 1 GiB block; 4 tables. */
function tree() {
  const {machine, mapper} = mappedMachine({l2Budget: 8})
  mapper.mapRegion(0x4000_0000n, 2n * PAGE, 'normal', {granularity: 'page'})
  mapper.mapRegion(0x8000_0000n, GIB, 'normal')
  mapper.mapRegion(0xc000_0000n, BLOCK, 'device', {granularity: '2M'})
  return {machine, mapper}
}

describe('buildTableImage', () => {
  it('finds every table and rewrites only table pointers for a new base', () => {
    const {machine, mapper} = tree()
    const span = tableSpan(machine.memory, mapper.geometry, mapper.root)
    expect(span).toEqual({from: 0x4100_0000n, to: 0x4100_4000n, align: PAGE})
    const base = 0x5000_0000n
    const image = buildTableImage(machine.memory, mapper.geometry, mapper.root, span.from, span.to, base)
    expect(image.root).toBe(base)
    expect(image.tables.map((t) => [t.address, t.level, t.offset])).toEqual([
      [0x4100_0000n, 1, 0],
      [0x4100_1000n, 2, 0x1000],
      [0x4100_2000n, 3, 0x2000],
      [0x4100_3000n, 2, 0x3000],
    ])
    expect(image.pointers.map((p) => [p.offset, p.target, p.attributes])).toEqual([
      [0x8, 0x4100_1000n, 3n],
      [0x18, 0x4100_3000n, 3n],
      [0x1000, 0x4100_2000n, 3n],
    ])
    // the image placed at the base translates as the snapshot does, leaves untouched
    const moved = new PhysicalMemory(0x4000_0000n, 0x2000_0000n)
    moved.writeBytes(base, image.bytes)
    for (const address of [0x4000_0000n, 0x4000_1000n, 0x4000_2000n, 0x8123_4567n, 0xc000_0008n, 0xc020_0000n]) {
      const here = translate(machine.memory, mapper.regime, mapper.root, address, {}, mapper.geometry)
      const there = translate(moved, mapper.regime, base, address, {}, mapper.geometry)
      expect(there.par).toBe(here.par)
      expect(there.steps.map((s) => s.descriptor & 0xfffn)).toEqual(here.steps.map((s) => s.descriptor & 0xfffn))
    }
    const view = new DataView(image.bytes.buffer)
    expect(view.getBigUint64(0x10, true)).toBe(machine.memory.readU64(0x4100_0010n)) // the 1 GiB block as it was
  })

  it('refuses a base that misaligns a table, one past the PA space, and a range without every table', () => {
    const {machine, mapper} = tree()
    const g = mapper.geometry
    expectHvmemError(
      () => buildTableImage(machine.memory, g, mapper.root, 0x4100_0000n, 0x4100_4000n, 0x5000_0800n),
      'input',
      'base 0x50000800 puts the table at 0x41000000 at 0x50000800, not 0x1000-aligned; choose a base that is a multiple of 0x1000 away from 0x41000000',
    )
    expectHvmemError(() => buildTableImage(machine.memory, g, mapper.root, 0x4100_0000n, 0x4100_4000n, 0xff_ffff_f000n), 'input', /past the 40-bit physical address space/)
    expectHvmemError(
      () => buildTableImage(machine.memory, g, mapper.root, 0x4100_0000n, 0x4100_3000n),
      'input',
      'the L1 table entry at 0x41000018 points at 0x41003000, outside the exported range 0x41000000-0x41003000; export a range that holds every table',
    )
    expectHvmemError(() => buildTableImage(machine.memory, g, mapper.root, 0x4100_1000n, 0x4100_4000n), 'input', 'the root table 0x41000000 is not inside the exported range 0x41001000-0x41004000')
  })

  it('keeps a concatenated root aligned to its size', () => {
    const {machine, mapper} = mappedMachine({inputBits: 40})
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal')
    expect(mapper.geometry.rootAlign).toBe(0x2000n)
    const span = tableSpan(machine.memory, mapper.geometry, mapper.root)
    expect(span.align).toBe(0x2000n)
    expectHvmemError(() => buildTableImage(machine.memory, mapper.geometry, mapper.root, span.from, span.to, 0x5000_1000n), 'input', /not 0x2000-aligned/)
    expect(buildTableImage(machine.memory, mapper.geometry, mapper.root, span.from, span.to, 0x5000_2000n).root).toBe(0x5000_2000n + mapper.root - span.from)
  })
})

describe('misalignedTable', () => {
  it('names the first table whose offset in the image is not a multiple of its alignment', () => {
    const {machine, mapper} = tree()
    const span = tableSpan(machine.memory, mapper.geometry, mapper.root)
    const image = buildTableImage(machine.memory, mapper.geometry, mapper.root, span.from, span.to)
    expect(misalignedTable(image, mapper.geometry)).toBeUndefined()
    const shifted = {...image, tables: image.tables.map((t, i) => (i === 2 ? {...t, offset: t.offset + 0x800} : t))}
    expect(misalignedTable(shifted, mapper.geometry)).toEqual({table: shifted.tables[2], needs: PAGE})
  })
})
