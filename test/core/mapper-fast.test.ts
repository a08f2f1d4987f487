import {describe, expect, it} from 'vitest'

import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'
import {mappedMachine, walkEntries} from './helpers.js'

describe('maps into new tables (written as 32-bit halves)', () => {
  it('writes exact descriptors with upper attribute bits and output addresses above 2^32', () => {
    const {machine, mapper} = mappedMachine()
    // pages at the edges, a 2 MiB block between, ending 4 KiB below the top of the 39-bit IPA space;, output near the top of the 40-bit PA space
    const ipa = 0x80_0000_0000n - 0x60_0000n + 0x1000n
    const pa = 0xff_0000_0000n + 0x1000n
    const r = mapper.mapRegion(ipa, 0x60_0000n - 0x2000n, 'device', {pa})
    expect(r.written).toEqual({1: 0, 2: 1, 3: 1022})
    const leaves = walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry).filter((e) => e.decoded.leaf !== undefined)
    expect(leaves).toHaveLength(1023)
    for (const e of leaves) {
      const out = pa + (e.ipa - ipa)
      const bits = e.level === 3 ? 0x0040_0000_0000_07c7n : 0x0040_0000_0000_07c5n
      expect(e.decoded.raw).toBe(out | bits)
    }
  })

  // A new table's leaves are written in 32-bit halves: where the output's low half passes 2^32 inside
  // the table, the high half carries (an output not aligned like the input); where it only reaches
  // 2^32 after the last entry (a table ending at 4 GiB), it does not
  it.each([
    ['2 MiB blocks, 4 GiB crossed at entry 256', 0x4000_0000n, 1n << 30n, 0xe000_0000n, '2M', 2, 0x7fdn],
    ['pages, 4 GiB crossed at entry 256', 0x4000_0000n, 0x20_0000n, 0xfff0_0000n, 'page', 3, 0x7ffn],
    ['2 MiB blocks ending at 4 GiB', 0xc000_0000n, 1n << 30n, 0xc000_0000n, '2M', 2, 0x7fdn],
  ] as const)('%s: exact descriptors', (_, ipa, size, pa, granularity, level, bits) => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(ipa, size, 'normal', {pa, granularity})
    const leaves = walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry).filter((e) => e.decoded.leaf !== undefined)
    expect(leaves).toHaveLength(512)
    expect(leaves.every((e) => e.level === level && e.decoded.raw === ((pa + (e.ipa - ipa)) | bits))).toBe(true)
    expect(leaves.at(-1)!.decoded.raw).toBe((pa + size - size / 512n) | bits)
  })

  it('gives the same tables as mapping entry by entry (512 GiB in 2 MiB blocks, 1 GiB in pages)', () => {
    const bulk = mappedMachine({l2Budget: 512})
    bulk.mapper.mapRegion(0n, 512n << 30n, 'normal', {granularity: '2M'})
    const entries = walkEntries(bulk.machine.memory, STAGE2, bulk.mapper.root, bulk.mapper.geometry)
    expect(entries).toHaveLength(512 + 262_144)
    expect(entries.filter((e) => e.level === 2).every((e) => e.decoded.raw === (e.ipa | 0x7fdn))).toBe(true)

    const pages = mappedMachine({regime: 'stage1'})
    const r = pages.mapper.mapRegion(0x4000_0000n, 1n << 30n, 'readonly', {granularity: 'page'})
    expect(r.written).toEqual({1: 0, 2: 0, 3: 262_144})
    expect(r.newTables).toHaveLength(1 + 512)
    const leaves = walkEntries(pages.machine.memory, STAGE1, pages.mapper.root, pages.mapper.geometry).filter((e) => e.level === 3)
    expect(leaves).toHaveLength(262_144)
    expect(leaves.every((e) => e.decoded.raw === (e.ipa | 0x787n))).toBe(true)
  })
})
