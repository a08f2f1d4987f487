import {describe, expect, it} from 'vitest'

import {DEFAULT_L2_BUDGET, IdentityMapper, MAX_L2_BUDGET} from '../../src/core/mapper.js'
import {tableDescriptor} from '../../src/core/descriptor.js'
import {STAGE2} from '../../src/core/stage2.js'
import {DEFAULT_STAGE2} from '../../src/core/geometry.js'
import {BLOCK, GIB, PAGE, capture, defaultMachine, expectHvmemError, expectUnchangedAfterError, l2DescriptorAt, l2Leaves, mappedMachine, smallHeapMachine, walkEntries} from './helpers.js'

const ROOT = 0x4100_0000n
const FIRST_L2 = 0x4100_1000n
const IPA_LIMIT = 1n << 39n

describe('IdentityMapper: the plan scenario (Task 3)', () => {
  it('maps 0x1000_0000 + 2 MiB normal and has a non-zero VTTBR', () => {
    const {machine, mapper} = mappedMachine()
    const result = mapper.mapRegion(0x1000_0000n, 0x20_0000n, 'normal', {granularity: '2M'})
    expect(result).toEqual({
      ipa: 0x1000_0000n,
      size: 0x20_0000n,
      pa: 0x1000_0000n,
      attr: 'normal',
      descriptor: 0x1000_07fdn,
      written: {1: 0, 2: 1, 3: 0},
      unchanged: {1: 0, 2: 0, 3: 0},
      cleared: {1: 0, 2: 0, 3: 0},
      splits: 0,
      newTables: [FIRST_L2],
      orphanedTables: 0,
    })
    expect(mapper.vttbr()).not.toBe(0n)
    expect(mapper.vttbr()).toBe(ROOT)
    expect(machine.memory.readU64(ROOT)).toBe(0x4100_1003n) // L1[0] -> the new L2 table
    expect(machine.memory.readU64(FIRST_L2 + 8n * 128n)).toBe(0x1000_07fdn) // L2[0x1000_0000 >> 21 = 128]
    expect(machine.memory.nonZeroPages().map(([a]) => a)).toEqual([ROOT, FIRST_L2])
    expect(mapper.l2Tables()).toEqual([FIRST_L2])
    expect(machine.heap.status().next).toBe(0x4100_2000n)
  })

  it('create() allocates and zeroes the root and records its options', () => {
    const machine = defaultMachine()
    machine.memory.write(ROOT + 0x40n, 8, 0x4000_07fdn) // stale data where the root will go
    const mapper = IdentityMapper.create(machine.heap, {vmid: 7, l2Budget: 9})
    expect(mapper.state).toEqual({regime: 'stage2', root: ROOT, vmid: 7, l2Budget: 9, orphanedTables: 0, granule: 4096, inputBits: 39})
    expect(machine.memory.nonZeroPages()).toEqual([])
    expect(mapper.l2Tables()).toEqual([])
    expect(mapper.vttbr()).toBe(0x0007_0000_4100_0000n)
    expect(mapper.vtcr()).toBe(0x8002_3559n)
  })
})

describe('IdentityMapper: stage-2 encodings in memory', () => {
  it('mapping 0x4000_0000 + 1 GiB normal writes 512 L2 blocks 0x4000_07fd, 0x4020_07fd, ...', () => {
    const {machine, mapper} = mappedMachine()
    const result = mapper.mapRegion(0x4000_0000n, GIB, 'normal', {granularity: '2M'})
    expect(result).toMatchObject({written: {1: 0, 2: 512, 3: 0}, unchanged: {1: 0, 2: 0, 3: 0}, newTables: [FIRST_L2], descriptor: 0x4000_07fdn})
    const leaves = l2Leaves(machine, mapper)
    expect(leaves).toHaveLength(512)
    expect(leaves.slice(0, 3).map((e) => e.decoded.raw)).toEqual([0x4000_07fdn, 0x4020_07fdn, 0x4040_07fdn])
    expect(leaves[511]!.decoded.raw).toBe(0x7fe0_07fdn)
    leaves.forEach((e, i) => {
      expect(e).toMatchObject({level: 2, index: i, table: FIRST_L2, ipa: 0x4000_0000n + BigInt(i) * BLOCK, size: BLOCK})
      expect(e.decoded.raw).toBe(0x4000_07fdn + BigInt(i) * BLOCK)
    })
  })

  it('device blocks are P | 0x0040_0000_0000_07c5 and readonly blocks P | 0x77d', () => {
    const {machine, mapper} = mappedMachine()
    expect(mapper.mapRegion(0x0900_0000n, 2n * BLOCK, 'device').descriptor).toBe(0x0040_0000_0900_07c5n)
    mapper.mapRegion(0x4800_0000n, BLOCK, 'readonly')
    expect(l2DescriptorAt(machine, mapper, 0x0900_0000n)).toBe(0x0040_0000_0900_07c5n)
    expect(l2DescriptorAt(machine, mapper, 0x0920_0000n)).toBe(0x0040_0000_0920_07c5n)
    expect(l2DescriptorAt(machine, mapper, 0x4800_0000n)).toBe(0x4800_077dn)
  })

  it('the VTTBR carries the VMID and the VTCR sets VS for 16-bit VMIDs', () => {
    expect(mappedMachine({vmid: 0}).mapper.vttbr()).toBe(ROOT)
    expect(mappedMachine({vmid: 255}).mapper.vttbr()).toBe(0x00ff_0000_4100_0000n)
    expect(mappedMachine({vmid: 255}).mapper.vtcr()).toBe(0x8002_3559n)
    expect(mappedMachine({vmid: 256}).mapper.vttbr()).toBe(0x0100_0000_4100_0000n)
    expect(mappedMachine({vmid: 256}).mapper.vtcr()).toBe(0x800a_3559n)
    expect(mappedMachine().mapper.vtcr()).toBe(0x8002_3559n)
  })
})

describe('IdentityMapper: plan defects fixed', () => {
  it('mapRegion refuses an unaligned IPA or size with input', () => {
    const {machine, mapper} = mappedMachine()
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4010_0800n, BLOCK, 'normal'), 'input', 'IPA 0x40100800 is not aligned to the 4 KiB granule')
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4000_0000n, 0x1800n, 'normal'), 'input', 'size 0x1800 is not a multiple of the 4 KiB granule')
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4000_0000n, BLOCK + PAGE / 2n, 'normal'), 'input', 'not a multiple of the 4 KiB granule')
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4000_0000n, BLOCK, 'normal', {pa: 0x4800_0800n}), 'input', 'PA 0x48000800 is not aligned to the 4 KiB granule')
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4000_0000n, 0n, 'normal'), 'input', 'size must be > 0 (got 0)')
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4000_0000n, -BLOCK, 'normal'), 'input')
    expect(mapper.l2Tables()).toEqual([])
  })

  it('remapping the same range with the same attribute is a no-op', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 4n * BLOCK, 'normal')
    const before = capture(machine)
    const again = mapper.mapRegion(0x4000_0000n, 4n * BLOCK, 'normal')
    expect(again).toMatchObject({written: {1: 0, 2: 0, 3: 0}, unchanged: {1: 0, 2: 4, 3: 0}, newTables: []})
    expect(capture(machine)).toEqual(before)
  })

  it('an overlapping remap with the same attribute writes only the new blocks', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 2n * BLOCK, 'normal')
    const next = machine.heap.status().next
    expect(mapper.mapRegion(0x4000_0000n, 4n * BLOCK, 'normal')).toMatchObject({written: {1: 0, 2: 2, 3: 0}, unchanged: {1: 0, 2: 2, 3: 0}, newTables: []})
    expect(machine.heap.status().next).toBe(next)
    expect(l2Leaves(machine, mapper).map((e) => e.decoded.raw)).toEqual([0x4000_07fdn, 0x4020_07fdn, 0x4040_07fdn, 0x4060_07fdn])
  })

  it('remapping with a different attribute is a mapping-conflict naming the conflicting range', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 2n * BLOCK, 'normal')
    const error = expectUnchangedAfterError(machine, () => mapper.mapRegion(0x3fe0_0000n, 4n * BLOCK, 'device'), 'mapping-conflict')
    expect(error.message).toBe(
      'cannot map 0x3fe00000-0x40600000 as device: 0x40000000-0x40400000 is already mapped normal to 0x40000000 (4M, descriptor 0x400007fd); unmap it first, or pass --replace',
    )
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4020_0000n, BLOCK, 'readonly'), 'mapping-conflict', '0x40200000-0x40400000 is already mapped normal')
  })

  it('a block with the same attribute but another output address is a conflict', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal')
    machine.memory.writeU64(FIRST_L2 + 8n, STAGE2.leafDescriptor(2, 0x4800_0000n, 'normal')) // IPA 0x4020_0000 -> PA 0x4800_0000
    expectUnchangedAfterError(
      machine,
      () => mapper.mapRegion(0x4020_0000n, BLOCK, 'normal'),
      'mapping-conflict',
      '0x40200000-0x40400000 is already mapped normal to 0x48000000 (2M, descriptor 0x480007fd)',
    )
  })

  it('an L3 table under an L2 entry is followed, not overwritten: a page in it mapped otherwise is a conflict too', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal')
    machine.memory.writeU64(FIRST_L2 + 8n, tableDescriptor(0x4200_0000n)) // L2[1] -> an L3 table
    machine.memory.writeU64(0x4200_0000n, STAGE2.leafDescriptor(3, 0x4800_0000n, 'normal')) // L3[0]: IPA 0x4020_0000 -> PA 0x4800_0000
    expectUnchangedAfterError(
      machine,
      () => mapper.mapRegion(0x4020_0000n, BLOCK, 'normal'),
      'mapping-conflict',
      '0x40200000-0x40201000 is already mapped normal to 0x48000000 (4K, descriptor 0x480007ff)',
    )
  })

  it('an L1 block descriptor written by hand is a conflict, not "no table"', () => {
    const {machine, mapper} = mappedMachine()
    machine.memory.writeU64(ROOT + 8n * 1n, STAGE2.leafDescriptor(1, 0x4000_0000n, 'normal'))
    expectUnchangedAfterError(
      machine,
      () => mapper.mapRegion(0x4020_0000n, BLOCK, 'device'),
      'mapping-conflict',
      '0x40200000-0x40400000 is already mapped normal to 0x40200000 (2M, descriptor 0x400007fd)',
    )
    expect(mapper.l2Tables()).toEqual([])
    // The same mapping inside the block is already there: nothing is written under it.
    const before = capture(machine)
    expect(mapper.mapRegion(0x4020_0000n, BLOCK, 'normal')).toMatchObject({written: {1: 0, 2: 0, 3: 0}, unchanged: {1: 1, 2: 0, 3: 0}, newTables: []})
    expect(capture(machine)).toEqual(before)
    // A range that only starts before the block is refused as a whole.
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x3fe0_0000n, 2n * BLOCK, 'device'), 'mapping-conflict')
  })

  it('an L1 table descriptor with high attribute bits set is still followed to the right L2 table', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal')
    const tagged = 0x4100_1003n | (1n << 63n) | (0xfn << 59n)
    machine.memory.writeU64(ROOT + 8n, tagged) // L1[1]
    expect(mapper.l2Tables()).toEqual([FIRST_L2])
    expect(mapper.mapRegion(0x4000_0000n, BLOCK, 'normal')).toMatchObject({written: {1: 0, 2: 0, 3: 0}, unchanged: {1: 0, 2: 1, 3: 0}, newTables: []})
    expect(mapper.mapRegion(0x4020_0000n, BLOCK, 'normal')).toMatchObject({written: {1: 0, 2: 1, 3: 0}, unchanged: {1: 0, 2: 0, 3: 0}, newTables: []})
    expect(machine.memory.readU64(FIRST_L2 + 8n)).toBe(0x4020_07fdn)
    expect(machine.memory.readU64(ROOT + 8n)).toBe(tagged)
    expect(machine.heap.status().next).toBe(0x4100_2000n)
    expect(l2Leaves(machine, mapper).map((e) => [e.table, e.ipa])).toEqual([
      [FIRST_L2, 0x4000_0000n],
      [FIRST_L2, 0x4020_0000n],
    ])
  })

  it('an L1 table pointing outside RAM makes the map fail as snapshot-invalid, changing nothing', () => {
    const {machine, mapper} = mappedMachine()
    machine.memory.writeU64(ROOT, tableDescriptor(0x10_0000_0000n))
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0n, BLOCK, 'normal'), 'snapshot-invalid', 'the L1 entry at 0x41000000 (0x1000000003) points at 0x1000000000, outside RAM')
  })
})

describe('IdentityMapper: L2 table budget', () => {
  /** Maps one 2 MiB block in each of the GiBs `gibs`, one new L2 table each. */
  function mapGibs(mapper: IdentityMapper, gibs: number[]): void {
    for (const g of gibs) mapper.mapRegion(BigInt(g) * GIB, BLOCK, 'normal')
  }

  it('defaults to 4; a 5th L2 table throws mapping-limit and changes nothing', () => {
    expect(DEFAULT_L2_BUDGET).toBe(4)
    const {machine, mapper} = mappedMachine()
    mapGibs(mapper, [0, 1, 2, 3])
    expect(mapper.l2Tables()).toEqual([0x4100_1000n, 0x4100_2000n, 0x4100_3000n, 0x4100_4000n])
    expectUnchangedAfterError(
      machine,
      () => mapper.mapRegion(4n * GIB, BLOCK, 'normal'),
      'mapping-limit',
      'mapping 0x100000000-0x100200000 needs 1 new L2 table(s) but 4 of the budget of 4 are in use',
    )
    // Blocks under existing tables still map.
    expect(mapper.mapRegion(3n * GIB + BLOCK, BLOCK, 'normal').written).toEqual({1: 0, 2: 1, 3: 0})
  })

  it('a range that needs a table beyond the budget writes none of its blocks under existing tables', () => {
    const {machine, mapper} = mappedMachine()
    mapGibs(mapper, [0, 1, 2, 3])
    expectUnchangedAfterError(machine, () => mapper.mapRegion(4n * GIB - BLOCK, 2n * BLOCK, 'normal'), 'mapping-limit')
    expect(l2DescriptorAt(machine, mapper, 4n * GIB - BLOCK)).toBeUndefined()
  })

  it('respects the l2Budget option', () => {
    const one = mappedMachine({l2Budget: 1})
    mapGibs(one.mapper, [1])
    expectUnchangedAfterError(one.machine, () => mapGibs(one.mapper, [2]), 'mapping-limit', 'but 1 of the budget of 1 are in use')

    const six = mappedMachine({l2Budget: 6})
    mapGibs(six.mapper, [0, 1, 2, 3, 4, 5])
    expect(six.mapper.l2Tables()).toHaveLength(6)
    expectUnchangedAfterError(six.machine, () => mapGibs(six.mapper, [6]), 'mapping-limit', 'needs 1 new L2 table(s) but 6 of the budget of 6')
  })

  it('counts every new table a single map needs', () => {
    const {machine, mapper} = mappedMachine({l2Budget: 2})
    expectUnchangedAfterError(machine, () => mapper.mapRegion(GIB - BLOCK, GIB + 2n * BLOCK, 'normal', {granularity: '2M'}), 'mapping-limit', 'needs 3 new L2 table(s) but 0 of the budget of 2')
    expect(mapper.mapRegion(GIB - BLOCK, 2n * BLOCK, 'normal').newTables).toEqual([0x4100_1000n, 0x4100_2000n])
  })

  it('refuses a budget outside 1..512 before allocating anything', () => {
    expect(MAX_L2_BUDGET).toBe(512)
    const machine = defaultMachine()
    for (const l2Budget of [0, -1, 513, 2.5]) {
      expectUnchangedAfterError(machine, () => IdentityMapper.create(machine.heap, {l2Budget}), 'input', `L2 table budget must be 1..512 (got ${l2Budget})`)
    }
    expectUnchangedAfterError(machine, () => IdentityMapper.create(machine.heap, {vmid: 65536}), 'input', 'VMID must be 0..65535')
    expect(IdentityMapper.create(machine.heap, {l2Budget: 512}).state.l2Budget).toBe(512)
  })

  it('mapping IPA ranges past 2^39 throws input', () => {
    const {machine, mapper} = mappedMachine()
    expectUnchangedAfterError(
      machine,
      () => mapper.mapRegion(IPA_LIMIT - BLOCK, 2n * BLOCK, 'normal'),
      'input',
      '0x7fffe00000-0x8000200000 ends past the 39-bit input address space (0x8000000000, T0SZ = 25)',
    )
    expectUnchangedAfterError(machine, () => mapper.mapRegion(IPA_LIMIT, BLOCK, 'normal'), 'input', 'ends past the 39-bit input address space')
    expect(mapper.mapRegion(IPA_LIMIT - BLOCK, BLOCK, 'device').descriptor).toBe(0x0040_007f_ffe0_07c5n)
    expect(machine.memory.readU64(ROOT + 8n * 511n)).toBe(0x4100_1003n)
    expect(machine.memory.readU64(FIRST_L2 + 8n * 511n)).toBe(0x0040_007f_ffe0_07c5n)
  })
})

describe('IdentityMapper: heap exhaustion', () => {
  it('with a 3-page heap, a map needing 3 tables fails with heap-exhausted and changes nothing', () => {
    const machine = smallHeapMachine(3)
    const {mapper} = machine.ensureMapper()
    expect(machine.heap.status()).toMatchObject({next: ROOT + PAGE, remaining: 2n * PAGE})
    // L1[0]'s last block, all of L1[1], L1[2]'s first block: three new L2 tables.
    expectUnchangedAfterError(
      machine,
      () => mapper.mapRegion(GIB - BLOCK, GIB + 2n * BLOCK, 'normal', {granularity: '2M'}),
      'heap-exhausted',
      'heap exhausted: 4096 bytes (align 4096) requested but 0 bytes remain',
    )
    expect(mapper.l2Tables()).toEqual([])
    // Both remaining pages are still there: a map needing two tables fits.
    expect(mapper.mapRegion(GIB - BLOCK, 2n * BLOCK, 'normal', {granularity: '2M'}).newTables).toEqual([ROOT + PAGE, ROOT + 2n * PAGE])
  })

  it('a map failing halfway (first part under an existing table) writes nothing', () => {
    const machine = smallHeapMachine(2)
    const {mapper} = machine.ensureMapper()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal') // uses the last heap page
    expect(machine.heap.status().remaining).toBe(0n)
    expectUnchangedAfterError(machine, () => mapper.mapRegion(2n * GIB - 2n * BLOCK, 4n * BLOCK, 'normal'), 'heap-exhausted')
    expect(l2Leaves(machine, mapper).map((e) => e.ipa)).toEqual([0x4000_0000n])
  })

  it('a map refused after it filled new tables (a conflict further on) leaves no trace: the next map fills tables of its own', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n + 4n * BLOCK, BLOCK, 'device')
    // [1 GiB, +4 blocks) as pages fills four new tables whole before it meets the device block
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x4000_0000n, 5n * BLOCK, 'normal', {granularity: 'page'}), 'mapping-conflict')
    const r = mapper.mapRegion(0x4000_0000n + BLOCK, 2n * BLOCK + 3n * PAGE, 'normal', {granularity: 'page'})
    expect(r.written[3]).toBe(2 * 512 + 3)
    expect(r.newTables).toHaveLength(3)
    // the third table holds the 3 pages asked for and nothing else
    const third = walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry).filter((e) => e.level === 3 && e.table === r.newTables[2])
    expect(third.map((e) => e.ipa)).toEqual([0, 1, 2].map((i) => 0x4000_0000n + 3n * BLOCK + BigInt(i) * PAGE))
  })

  it('a mapper cannot be created in a full heap', () => {
    const machine = smallHeapMachine(1)
    machine.heap.alloc(4n)
    expectUnchangedAfterError(machine, () => machine.ensureMapper(), 'heap-exhausted')
    expect(machine.mapper).toBeUndefined()
  })
})

describe('IdentityMapper.attach', () => {
  it('re-binds to existing tables', () => {
    const {machine, mapper} = mappedMachine({vmid: 3})
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal')
    const again = IdentityMapper.attach(machine.heap, mapper.state)
    expect(again.vttbr()).toBe(0x0003_0000_4100_0000n)
    expect(again.l2Tables()).toEqual([FIRST_L2])
    expect(again.mapRegion(0x4000_0000n, BLOCK, 'normal').unchanged).toEqual({1: 0, 2: 1, 3: 0})
  })

  it('refuses a root that is not a page inside RAM', () => {
    const machine = defaultMachine()
    const state = {regime: 'stage2' as const, root: ROOT, vmid: 0, l2Budget: 4, orphanedTables: 0, granule: 4096 as const, inputBits: 39}
    expectHvmemError(() => IdentityMapper.attach(machine.heap, {...state, root: ROOT + 8n}), 'snapshot-invalid', 'mapper root table 0x41000008 is not a 4K-aligned table inside RAM')
    expectHvmemError(() => IdentityMapper.attach(machine.heap, {...state, root: 0x8000_0000n}), 'snapshot-invalid')
    expectHvmemError(() => IdentityMapper.attach(machine.heap, {...state, vmid: -1}), 'input')
    expectHvmemError(() => IdentityMapper.attach(machine.heap, {...state, l2Budget: 0}), 'input')
  })
})

describe('IdentityMapper and the walker agree', () => {
  it('walking from the VTTBR (VMID in the top bits) finds the same tables', () => {
    const {machine, mapper} = mappedMachine({vmid: 0x1234})
    mapper.mapRegion(0x4000_0000n, 2n * BLOCK, 'readonly')
    expect(walkEntries(machine.memory, STAGE2, mapper.vttbr(), DEFAULT_STAGE2)).toEqual(walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry))
    expect(walkEntries(machine.memory, STAGE2, mapper.vttbr(), DEFAULT_STAGE2)).toHaveLength(3)
  })
})
