/**
 * Geometry as data: start levels (KVM's stage-2 rule, AArch64.S1StartLevel), root sizes and
 * concatenation, leaf levels per granule (AArch64.BlockDescSupported without FEAT_LPA/LPA2), the
 * registers derived from each geometry, and exact descriptors built and walked in 16K and 64K.
 */
import {describe, expect, it} from 'vitest'

import {STAGE2} from '../../src/core/stage2.js'
import {STAGE1} from '../../src/core/stage1.js'
import {kindOf} from '../../src/core/descriptor.js'
import {type Granule, defaultPaBits, stage1Geometry, stage2Geometry} from '../../src/core/geometry.js'
import {Machine} from '../../src/core/machine.js'
import {stage1Walk, stage2Walk} from '../../src/core/regime-config.js'
import {tcrEl2For, vtcrFor} from '../../src/core/registers.js'
import {translate} from '../../src/core/translate.js'
import {expectHvmemError, walkEntries} from './helpers.js'

const shape = (granule: Granule, inputBits: number, stage: 1 | 2) => {
  const g = stage === 2 ? stage2Geometry({granule, inputBits}) : stage1Geometry({granule, inputBits})
  return [g.startLevel, g.rootEntries, g.rootTables, g.paBits]
}

describe('stage-2 geometry: the start level as KVM derives it (fewest levels, up to 16 concatenated root tables)', () => {
  it.each([
    // granule, IPA bits -> start level, root entries, concatenated tables, PA bits
    [4096, 32, [2, 2048, 4, 40]],
    [4096, 36, [1, 64, 1, 40]],
    [4096, 39, [1, 512, 1, 40]],
    [4096, 40, [1, 1024, 2, 40]],
    [4096, 42, [1, 4096, 8, 42]],
    [4096, 43, [1, 8192, 16, 44]],
    [4096, 44, [0, 32, 1, 44]],
    [4096, 48, [0, 512, 1, 48]],
    [16384, 32, [2, 128, 1, 40]],
    [16384, 36, [2, 2048, 1, 40]],
    [16384, 40, [2, 32768, 16, 40]],
    [16384, 42, [1, 64, 1, 42]],
    [16384, 47, [1, 2048, 1, 48]],
    [16384, 48, [1, 4096, 2, 48]],
    [65536, 32, [3, 65536, 8, 40]],
    [65536, 36, [2, 128, 1, 40]],
    [65536, 42, [2, 8192, 1, 42]],
    [65536, 44, [2, 32768, 4, 44]],
    [65536, 46, [2, 131072, 16, 48]],
    [65536, 47, [1, 32, 1, 48]],
    [65536, 48, [1, 64, 1, 48]],
  ] as Array<[Granule, number, number[]]>)('%i-byte granule, %i-bit IPA', (granule, bits, expected) => {
    expect(shape(granule, bits, 2)).toEqual(expected)
  })
})

describe('stage-1 geometry: AArch64.S1StartLevel, never concatenated', () => {
  it.each([
    [4096, 25, [2, 16, 1, 40]],
    [4096, 30, [2, 512, 1, 40]],
    [4096, 39, [1, 512, 1, 40]],
    [4096, 40, [0, 2, 1, 40]],
    [4096, 48, [0, 512, 1, 48]],
    [16384, 25, [3, 2048, 1, 40]],
    [16384, 36, [2, 2048, 1, 40]],
    [16384, 47, [1, 2048, 1, 48]],
    [16384, 48, [0, 2, 1, 48]],
    [65536, 25, [3, 512, 1, 40]],
    [65536, 42, [2, 8192, 1, 42]],
    [65536, 48, [1, 64, 1, 48]],
  ] as Array<[Granule, number, number[]]>)('%i-byte granule, %i-bit VA', (granule, bits, expected) => {
    expect(shape(granule, bits, 1)).toEqual(expected)
  })
})

describe('geometry limits', () => {
  it('the PA size is 40 bits or the smallest PS size that holds the input', () => {
    expect([32, 39, 40, 41, 42, 43, 44, 45, 48].map(defaultPaBits)).toEqual([40, 40, 40, 42, 42, 44, 44, 48, 48])
  })

  it('refuses inputs outside 25..48 bits and granules that are not 4K, 16K or 64K', () => {
    expectHvmemError(() => stage2Geometry({granule: 4096, inputBits: 49}), 'input', 'the IPA size must be 25..48 bits (got 49)')
    expectHvmemError(() => stage1Geometry({granule: 4096, inputBits: 24}), 'input', 'the VA size must be 25..48 bits (got 24)')
    expectHvmemError(() => stage2Geometry({granule: 8192 as Granule, inputBits: 39}), 'input', 'the granule must be 4K, 16K or 64K (got 8192 bytes)')
    expectHvmemError(
      () => stage2Geometry({granule: 4096, inputBits: 39, startLevel: 0}),
      'input',
      'a 39-bit IPA cannot start at level 0: a level-0 start with the 4K granule needs a 40- to 48-bit input',
    )
  })

  it('leaves: 4K blocks at levels 1 and 2; 16K and 64K at level 2 only; pages at level 3 (AArch64.BlockDescSupported, DS = 0, PAMax 48)', () => {
    const sizes = (granule: Granule) =>
      stage2Geometry({granule, inputBits: 48})
        .leafSizes()
        .map((l) => `L${l.level} ${l.size}`)
    expect(sizes(4096)).toEqual(['L1 1073741824', 'L2 2097152', 'L3 4096'])
    expect(sizes(16384)).toEqual(['L2 33554432', 'L3 16384'])
    expect(sizes(65536)).toEqual(['L2 536870912', 'L3 65536'])
    // a block descriptor (bits 1:0 = 01) where the granule has none is a reserved encoding: a translation fault
    const g16 = stage2Geometry({granule: 16384, inputBits: 47})
    const g4 = stage2Geometry({granule: 4096, inputBits: 48})
    const g64 = stage2Geometry({granule: 65536, inputBits: 48})
    expect([kindOf(0x7fdn, 0, g4), kindOf(0x7fdn, 1, g4), kindOf(0x7fdn, 1, g16), kindOf(0x7fdn, 2, g16), kindOf(0x7fdn, 1, g64), kindOf(0x7fdn, 2, g64)]).toEqual([
      'reserved',
      'block',
      'reserved',
      'block',
      'reserved',
      'block',
    ])
  })
})

describe('registers for every geometry', () => {
  it.each([
    // granule, IPA bits, VTCR_EL2 (T0SZ, SL0, TG0, PS), TCR_EL2 for the same VA size
    [4096, 39, 0x8002_3559n, 0x8082_3519n],
    [4096, 40, 0x8002_3558n, 0x8082_3518n],
    [4096, 48, 0x8005_3590n, 0x8085_3510n],
    [16384, 40, 0x8002_b558n, 0x8082_b518n],
    [16384, 47, 0x8005_b591n, 0x8085_b511n],
    [65536, 42, 0x8003_7556n, 0x8083_7516n],
    [65536, 48, 0x8005_7590n, 0x8085_7510n],
  ] as Array<[Granule, number, bigint, bigint]>)('%i-byte granule, %i-bit input: VTCR_EL2 %s, TCR_EL2 %s', (granule, bits, vtcr, tcr) => {
    const s2 = stage2Geometry({granule, inputBits: bits})
    const s1 = stage1Geometry({granule, inputBits: bits})
    expect(vtcrFor(0, s2)).toBe(vtcr)
    expect(tcrEl2For(s1)).toBe(tcr)
    // and reading the registers back gives the same geometry
    expect(stage2Walk(vtcr).equals(s2)).toBe(true)
    expect(stage1Walk(tcr).equals(s1)).toBe(true)
  })
})

describe('building and walking in 16K and 64K', () => {
  const machine = (): Machine => Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: 0x4100_0000n, heapSize: 16n << 20n})

  it('16K, 40-bit IPA: a 16-table concatenated root (256 KiB aligned), 32 MiB blocks, 16 KiB pages', () => {
    const m = machine()
    const {mapper} = m.ensureMapper({granule: 16384, inputBits: 40})
    expect(mapper.root).toBe(0x4100_0000n)
    expect(m.heap.status().next).toBe(0x4104_0000n) // 16 x 16 KiB
    const r = mapper.mapRegion(0x4000_0000n, 0x200_4000n, 'normal')
    expect(r.written).toEqual({2: 1, 3: 1})
    expect(r.newTables).toEqual([0x4104_0000n])
    const entries = walkEntries(m.memory, STAGE2, mapper.root, mapper.geometry).map((e) => [e.level, e.index, e.table, e.ipa, e.decoded.raw])
    expect(entries).toEqual([
      [2, 32, 0x4100_0000n, 0x4000_0000n, 0x4000_07fdn],
      [2, 33, 0x4100_0000n, 0x4200_0000n, 0x4104_0003n],
      [3, 0, 0x4104_0000n, 0x4200_0000n, 0x4200_07ffn],
    ])
    // root entry 32 lies in the root's third 4 KiB page: 32 * 8 = 0x100... and the walk indexes all 32768 entries
    const t = translate(m.memory, STAGE2, mapper.root, 0x4200_3fffn, {}, mapper.geometry)
    expect(t.steps.map((s) => [s.level, s.index, s.kind])).toEqual([
      [2, 33, 'table'],
      [3, 0, 'page'],
    ])
    expect(t.output).toMatchObject({address: 0x4200_3fffn, size: 0x4000n})
    expect(translate(m.memory, STAGE2, mapper.root, 0x4200_4000n, {}, mapper.geometry).fault).toMatchObject({kind: 'translation', level: 3})
    // unmapping 16 KiB inside the 32 MiB block splits it into 2048 pages
    const u = mapper.unmap(0x4000_4000n, 0x4000n)
    expect(u).toMatchObject({splits: 1, cleared: {2: 0, 3: 1}})
    expect(m.memory.readU64(u.newTables[0]! + 8n)).toBe(0n)
    expect(m.memory.readU64(u.newTables[0]! + 16n)).toBe(0x4000_87ffn)
    expect(m.memory.readU64(u.newTables[0]! + 8n * 2047n)).toBe(0x41ff_c7ffn)
  })

  it('64K, 42-bit IPA: a level-2 root of 8192 entries, 512 MiB blocks, 64 KiB pages; coalesce folds them back', () => {
    const m = machine()
    const {mapper} = m.ensureMapper({regime: 'stage1', granule: 65536, inputBits: 42})
    expect(mapper.geometry.describe()).toBe('64K granule, 42-bit VA, 42-bit PA, level-2 root')
    const r = mapper.mapRegion(0x4000_0000n, 0x2000_0000n, 'normal', {granularity: 'page'})
    expect(r.written).toEqual({2: 0, 3: 8192})
    expect(m.memory.readU64(r.newTables[0]!)).toBe(0x4000_0707n)
    expect(m.memory.readU64(r.newTables[0]! + 8n * 8191n)).toBe(0x5fff_0707n)
    expect(mapper.coalesce()).toEqual({blocks: [{ipa: 0x4000_0000n, level: 2, descriptor: 0x4000_0705n}], orphanedTables: 1})
    expect(translate(m.memory, STAGE1, mapper.root, 0x5fff_fff0n, {}, mapper.geometry).output).toMatchObject({address: 0x5fff_fff0n, level: 2, size: 0x2000_0000n})
  })

  it('alignment errors name the granule', () => {
    const m = machine()
    const {mapper} = m.ensureMapper({granule: 16384, inputBits: 40})
    expectHvmemError(() => mapper.mapRegion(0x4000_1000n, 0x4000n, 'normal'), 'input', 'IPA 0x40001000 is not aligned to the 16 KiB granule')
    expectHvmemError(() => mapper.mapRegion(0x4000_0000n, 0x1000n, 'normal'), 'input', 'size 0x1000 is not a multiple of the 16 KiB granule')
    expectHvmemError(() => mapper.mapRegion(0x4000_0000n, 0x4000n, 'normal', {granularity: 2n << 20n}), 'input', 'the 16K granule has no 2M leaf; its leaves are 32M (L2), 16K (L3)')
  })
})
