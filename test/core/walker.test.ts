import {describe, expect, it} from 'vitest'

import {PhysicalMemory} from '../../src/core/memory.js'
import {type Attr as Stage2Attr, tableDescriptor} from '../../src/core/descriptor.js'
import {STAGE2} from '../../src/core/stage2.js'
import {translate} from '../../src/core/translate.js'
import {type WalkEntry, mergeRanges} from '../../src/core/walker.js'
import {BLOCK, GIB, PAGE, mappedMachine, walkEntries} from './helpers.js'
import {DEFAULT_STAGE2, Geometry, stage2Geometry} from '../../src/core/geometry.js'

const ROOT = 0x4100_0000n

/** The comparable part of a walk entry. */
function shape(e: WalkEntry): {level: number; index: number; table: bigint; ipa: bigint; size: bigint; kind: string} {
  return {level: e.level, index: e.index, table: e.table, ipa: e.ipa, size: e.size, kind: e.decoded.kind}
}

/** Hand-built tables in a small RAM: an L1 root at `ROOT` and L2 tables after it. */
function handTables(): {memory: PhysicalMemory; setL1: (index: bigint, descriptor: bigint) => void; setL2: (table: bigint, index: bigint, descriptor: bigint) => void} {
  const memory = new PhysicalMemory(0x4000_0000n, 0x4000_0000n)
  return {
    memory,
    setL1: (index, descriptor) => memory.writeU64(ROOT + 8n * index, descriptor),
    setL2: (table, index, descriptor) => memory.writeU64(table + 8n * index, descriptor),
  }
}

function block(pa: bigint, attr: Stage2Attr = 'normal'): bigint {
  return STAGE2.leafDescriptor(2, pa, attr)
}

describe('walkTables', () => {
  it('walks a concatenated root (two pages: 40-bit inputs from level 1) as one table, past an unwritten first page', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x4000_0000n)
    // entry 513 of the root sits in its second page; the first page is never written
    memory.writeU64(ROOT + 8n * 513n, STAGE2.leafDescriptor(1, 0x4000_0000n, 'normal'))
    const entries = walkEntries(memory, STAGE2, ROOT, stage2Geometry({granule: 4096, inputBits: 40, startLevel: 1}))
    expect(entries.map(shape)).toEqual([{level: 1, index: 513, table: ROOT, ipa: 513n * GIB, size: GIB, kind: 'block'}])
  })

  it('lists tables and blocks in IPA order with exact level, index, ipa and size', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x8000_0000n, BLOCK, 'device') // L1[2] -> 0x4100_1000
    mapper.mapRegion(0x20_0000n, BLOCK, 'normal') // L1[0] -> 0x4100_2000
    mapper.mapRegion(0x7fe0_0000n, BLOCK, 'readonly') // L1[1] -> 0x4100_3000
    const entries = walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry)
    expect(entries.map(shape)).toEqual([
      {level: 1, index: 0, table: ROOT, ipa: 0n, size: GIB, kind: 'table'},
      {level: 2, index: 1, table: 0x4100_2000n, ipa: 0x20_0000n, size: BLOCK, kind: 'block'},
      {level: 1, index: 1, table: ROOT, ipa: GIB, size: GIB, kind: 'table'},
      {level: 2, index: 511, table: 0x4100_3000n, ipa: 0x7fe0_0000n, size: BLOCK, kind: 'block'},
      {level: 1, index: 2, table: ROOT, ipa: 2n * GIB, size: GIB, kind: 'table'},
      {level: 2, index: 0, table: 0x4100_1000n, ipa: 0x8000_0000n, size: BLOCK, kind: 'block'},
    ])
    expect(entries.map((e) => e.decoded.raw)).toEqual([0x4100_2003n, 0x20_07fdn, 0x4100_3003n, 0x7fe0_077dn, 0x4100_1003n, 0x0040_0000_8000_07c5n])
    expect(entries[0]!.decoded.nextTable).toBe(0x4100_2000n)
    expect(entries.every((e) => e.problem === undefined)).toBe(true)
  })

  it('lists an L1 block with its 1 GiB size', () => {
    const {memory, setL1} = handTables()
    setL1(3n, STAGE2.leafDescriptor(1, 3n * GIB, 'device'))
    expect(walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2).map(shape)).toEqual([{level: 1, index: 3, table: ROOT, ipa: 3n * GIB, size: GIB, kind: 'block'}])
  })

  it('returns nothing for an untouched root, and skips untouched table pages', () => {
    const {memory, setL1} = handTables()
    expect(walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2)).toEqual([])
    setL1(0n, tableDescriptor(0x4200_0000n)) // inside RAM, never written
    expect(walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2).map(shape)).toEqual([{level: 1, index: 0, table: ROOT, ipa: 0n, size: GIB, kind: 'table'}])
  })

  it('a table descriptor pointing outside RAM gets a problem and the walk carries on', () => {
    const {memory, setL1, setL2} = handTables()
    setL1(0n, tableDescriptor(0x10_0000_0000n))
    setL1(1n, tableDescriptor(0x4100_1000n))
    setL2(0x4100_1000n, 0n, block(0x4000_0000n))
    const entries = walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2)
    expect(entries.map(shape)).toEqual([
      {level: 1, index: 0, table: ROOT, ipa: 0n, size: GIB, kind: 'table'},
      {level: 1, index: 1, table: ROOT, ipa: GIB, size: GIB, kind: 'table'},
      {level: 2, index: 0, table: 0x4100_1000n, ipa: GIB, size: BLOCK, kind: 'block'},
    ])
    expect(entries[0]!.problem).toBe('next-level table 0x1000000000 is outside RAM')
    expect(entries[1]!.problem).toBeUndefined()
  })

  it('follows a table descriptor with high attribute bits to bits 47:12', () => {
    const {memory, setL1, setL2} = handTables()
    setL1(1n, 0x4100_1003n | (1n << 63n) | (0xfn << 59n))
    setL2(0x4100_1000n, 5n, block(0x40a0_0000n))
    const entries = walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2)
    expect(entries.map(shape)).toEqual([
      {level: 1, index: 1, table: ROOT, ipa: GIB, size: GIB, kind: 'table'},
      {level: 2, index: 5, table: 0x4100_1000n, ipa: 0x40a0_0000n, size: BLOCK, kind: 'block'},
    ])
    expect(entries[0]!.problem).toBeUndefined()
  })

  it('walks four levels from level 0 with a 48-bit IPA, listing reserved encodings', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x10_0000n)
    const [l0, l1, l2, l3] = [0x4000_0000n, 0x4000_1000n, 0x4000_2000n, 0x4000_3000n]
    memory.writeU64(l0 + 8n, tableDescriptor(l1)) // L0[1]: IPA 512 GiB
    memory.writeU64(l0 + 16n, 0x4000_07fdn) // L0[2]: a level-0 block is reserved
    memory.writeU64(l1, tableDescriptor(l2))
    memory.writeU64(l2 + 8n * 3n, tableDescriptor(l3))
    memory.writeU64(l3 + 8n, STAGE2.leafDescriptor(3, 0x4000_5000n, 'readonly'))
    memory.writeU64(l3 + 16n, 0x4000_67fdn) // 0b01 at level 3: reserved
    const entries = walkEntries(memory, STAGE2, l0, stage2Geometry({granule: 4096, inputBits: 48, startLevel: 0}))
    const tb512 = 512n * GIB
    expect(entries.map(shape)).toEqual([
      {level: 0, index: 1, table: l0, ipa: tb512, size: tb512, kind: 'table'},
      {level: 1, index: 0, table: l1, ipa: tb512, size: GIB, kind: 'table'},
      {level: 2, index: 3, table: l2, ipa: tb512 + 3n * BLOCK, size: BLOCK, kind: 'table'},
      {level: 3, index: 1, table: l3, ipa: tb512 + 3n * BLOCK + PAGE, size: PAGE, kind: 'page'},
      {level: 3, index: 2, table: l3, ipa: tb512 + 3n * BLOCK + 2n * PAGE, size: PAGE, kind: 'reserved'},
      {level: 0, index: 2, table: l0, ipa: 2n * tb512, size: tb512, kind: 'reserved'},
    ])
    expect(entries[3]!.decoded.leaf?.outputAddress).toBe(0x4000_5000n)
  })

  it('reads only the root entries the IPA size allows', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x10_0000n)
    memory.writeU64(0x4000_0000n, tableDescriptor(0x4000_1000n))
    memory.writeU64(0x4000_0008n, tableDescriptor(0x4000_2000n)) // L0[1]: beyond a 39-bit IPA
    expect(walkEntries(memory, STAGE2, 0x4000_0000n, new Geometry(2, 4096, 39, 40, 0)).map((e) => e.index)).toEqual([0])
  })
})

describe('mergeRanges', () => {
  it('merges 512 contiguous 2 MiB normal blocks into one 1 GiB range', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, GIB, 'normal', {granularity: '2M'})
    const ranges = mergeRanges(walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry))
    expect(ranges).toHaveLength(1)
    expect(ranges[0]).toMatchObject({start: 0x4000_0000n, end: 0x8000_0000n, level: 2, outputStart: 0x4000_0000n, entries: 512})
    expect(ranges[0]!.decoded.raw).toBe(0x4000_07fdn)
  })

  it('merges across an L1 boundary (two L2 tables)', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(GIB - BLOCK, 2n * BLOCK, 'device')
    expect(mergeRanges(walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry))).toMatchObject([{start: GIB - BLOCK, end: GIB + BLOCK, level: 2, outputStart: GIB - BLOCK, entries: 2}])
  })

  it('splits on an attribute change', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 2n * BLOCK, 'normal')
    mapper.mapRegion(0x4040_0000n, BLOCK, 'device')
    mapper.mapRegion(0x4060_0000n, 3n * BLOCK, 'normal')
    mapper.mapRegion(0x40c0_0000n, BLOCK, 'readonly')
    const ranges = mergeRanges(walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry))
    expect(ranges.map((r) => [r.start, r.end, r.entries, r.decoded.raw])).toEqual([
      [0x4000_0000n, 0x4040_0000n, 2, 0x4000_07fdn],
      [0x4040_0000n, 0x4060_0000n, 1, 0x0040_0000_4040_07c5n],
      [0x4060_0000n, 0x40c0_0000n, 3, 0x4060_07fdn],
      [0x40c0_0000n, 0x40e0_0000n, 1, 0x40c0_077dn],
    ])
  })

  it('splits on a non-contiguous output address and on a gap in the IPA', () => {
    const {memory, setL1, setL2} = handTables()
    const l2 = 0x4100_1000n
    setL1(1n, tableDescriptor(l2))
    setL2(l2, 0n, block(0x4000_0000n))
    setL2(l2, 1n, block(0x4800_0000n)) // contiguous IPA, same attributes, output jumps
    setL2(l2, 2n, block(0x4820_0000n))
    setL2(l2, 4n, block(0x4860_0000n)) // IPA gap at index 3, output would be contiguous with index 2
    const ranges = mergeRanges(walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2))
    expect(ranges.map((r) => [r.start, r.end, r.outputStart, r.entries])).toEqual([
      [0x4000_0000n, 0x4020_0000n, 0x4000_0000n, 1],
      [0x4020_0000n, 0x4060_0000n, 0x4800_0000n, 2],
      [0x4080_0000n, 0x40a0_0000n, 0x4860_0000n, 1],
    ])
  })

  it('does not merge entries of different levels and ignores tables', () => {
    const {memory, setL1, setL2} = handTables()
    const l2 = 0x4100_1000n
    setL1(0n, tableDescriptor(l2))
    setL2(l2, 511n, block(GIB - BLOCK))
    setL1(1n, STAGE2.leafDescriptor(1, GIB, 'normal')) // contiguous, same attributes, but a 1 GiB block
    const ranges = mergeRanges(walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2))
    expect(ranges.map((r) => [r.level, r.start, r.end, r.entries])).toEqual([
      [2, GIB - BLOCK, GIB, 1],
      [1, GIB, 2n * GIB, 1],
    ])
  })

  it('returns nothing when there are no leaves', () => {
    expect(mergeRanges([])).toEqual([])
    const {memory, setL1} = handTables()
    setL1(0n, tableDescriptor(0x10_0000_0000n))
    expect(mergeRanges(walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2))).toEqual([])
  })
})

describe('hostile tables: loops and aliases', () => {
  it('a root whose 512 entries all point back at itself is walked once: 512 entries, each reported, none followed', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x10_0000n)
    for (let i = 0n; i < 512n; i++) memory.writeU64(0x4000_0000n + 8n * i, tableDescriptor(0x4000_0000n))
    const entries = walkEntries(memory, STAGE2, 0x4000_0000n, DEFAULT_STAGE2)
    expect(entries).toHaveLength(512)
    expect(entries[0]!.problem).toBe('next-level table 0x40000000 was reached already (a loop or an alias): not walked again')
    expect(entries.every((e) => e.problem !== undefined && e.level === 1)).toBe(true)
  })

  it('two entries sharing one table: the table is walked under the first, the second is reported as an alias', () => {
    const memory = new PhysicalMemory(0x4000_0000n, 0x10_0000n)
    memory.writeU64(0x4000_0000n, tableDescriptor(0x4000_1000n))
    memory.writeU64(0x4000_0008n, tableDescriptor(0x4000_1000n))
    memory.writeU64(0x4000_1000n, 0x4000_07fdn)
    const entries = walkEntries(memory, STAGE2, 0x4000_0000n, DEFAULT_STAGE2).map((e) => [e.level, e.index, e.ipa, e.problem])
    expect(entries).toEqual([
      [1, 0, 0n, undefined],
      [2, 0, 0n, undefined],
      [1, 1, 1n << 30n, 'next-level table 0x40001000 was reached already (a loop or an alias): not walked again'],
    ])
    // translate walks one address as the MMU does, alias or not
    expect(translate(memory, STAGE2, 0x4000_0000n, (1n << 30n) + 0x10n).output?.address).toBe(0x4000_0010n)
  })
})
