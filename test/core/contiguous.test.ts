/**
 * The contiguous bit (descriptor bit 52; Arm ARM DDI 0487, D8.6.1 "The Contiguous bit"): map region
 * --contiguous sets it on every aligned run wholly inside the range, and every edit that cuts a run
 * clears it on the whole run first, so no run is left with entries that disagree.
 */
import {describe, expect, it} from 'vitest'

import type {Machine} from '../../src/core/machine.js'
import type {IdentityMapper, MapperOptions} from '../../src/core/mapper.js'
import {translate} from '../../src/core/translate.js'
import {GIB, PAGE, expectUnchangedAfterError, mappedMachine, walkEntries} from './helpers.js'

const C = 1n << 52n
/** a normal stage-2 page at P: P | 0x7ff */
const page = (pa: bigint): bigint => pa | 0x7ffn
/** a normal stage-2 block at P: P | 0x7fd */
const block = (pa: bigint): bigint => pa | 0x7fdn

/** Every leaf descriptor of the mapper's tables in input order, as [ipa, level, descriptor]. */
function leaves(machine: Machine, mapper: IdentityMapper): Array<[bigint, number, bigint]> {
  return walkEntries(machine.memory, mapper.regime, mapper.root, mapper.geometry)
    .filter((e) => e.decoded.leaf !== undefined)
    .map((e) => [e.ipa, e.level, e.decoded.raw])
}

/** `count` leaves from `ipa`, identity, of `size` bytes at `level`, each `make(pa)` (with C when `cont` says so). */
function run(ipa: bigint, count: number, size: bigint, level: number, make: (pa: bigint) => bigint, cont: (k: number) => boolean = () => true): Array<[bigint, number, bigint]> {
  return Array.from({length: count}, (_, k) => {
    const a = ipa + BigInt(k) * size
    return [a, level, make(a) | (cont(k) ? C : 0n)]
  })
}

function setup(options: MapperOptions = {}): {machine: Machine; mapper: IdentityMapper} {
  return mappedMachine(options)
}

describe('map region --contiguous: run sizes per granule and level', () => {
  it('4K granule, level 3: 16 pages (64 KiB)', () => {
    const {machine, mapper} = setup()
    const r = mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    expect(r.contiguousRuns).toEqual({1: 0, 2: 0, 3: 1})
    expect(r.descriptor).toBe(0x0010_0000_8000_07ffn)
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, PAGE, 3, page))
  })

  it('4K granule, level 2: 16 blocks of 2 MiB (32 MiB)', () => {
    const {machine, mapper} = setup()
    const r = mapper.mapRegion(0x8000_0000n, 0x200_0000n, 'normal', {contiguous: true})
    expect(r.contiguousRuns).toEqual({1: 0, 2: 1, 3: 0})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, 0x20_0000n, 2, block))
    expect(leaves(machine, mapper)[0]![2]).toBe(0x0010_0000_8000_07fdn)
  })

  it('4K granule, level 1: 16 blocks of 1 GiB (16 GiB)', () => {
    const {machine, mapper} = setup()
    const r = mapper.mapRegion(0x40_0000_0000n, 16n * GIB, 'normal', {contiguous: true})
    expect(r.contiguousRuns).toEqual({1: 1, 2: 0, 3: 0})
    expect(leaves(machine, mapper)).toEqual(run(0x40_0000_0000n, 16, GIB, 1, block))
  })

  it('16K granule, level 3: 128 pages (2 MiB); level 2: 32 blocks of 32 MiB (1 GiB)', () => {
    const {machine, mapper} = setup({granule: 16384, inputBits: 40})
    const r = mapper.mapRegion(0x8000_0000n, 0x20_0000n, 'normal', {granularity: 'page', contiguous: true})
    expect(r.contiguousRuns).toEqual({2: 0, 3: 1})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 128, 0x4000n, 3, page))
    const big = mapper.mapRegion(0x1_0000_0000n, GIB, 'normal', {contiguous: true})
    expect(big.contiguousRuns).toEqual({2: 1, 3: 0})
    expect(leaves(machine, mapper).filter(([, level]) => level === 2)).toEqual(run(0x1_0000_0000n, 32, 0x200_0000n, 2, block))
  })

  it('64K granule, level 3: 32 pages (2 MiB)', () => {
    const {machine, mapper} = setup({granule: 65536, inputBits: 42})
    const r = mapper.mapRegion(0x8000_0000n, 0x20_0000n, 'normal', {granularity: 'page', contiguous: true})
    expect(r.contiguousRuns).toEqual({2: 0, 3: 1})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 32, 0x1_0000n, 3, page))
  })

  it('stage 1 (EL2): the same bit on P | 0x707 pages', () => {
    const {machine, mapper} = setup({regime: 'stage1'})
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, PAGE, 3, (pa) => pa | 0x707n))
    expect(leaves(machine, mapper)[0]![2]).toBe(0x0010_0000_8000_0707n)
  })
})

describe('map region --contiguous: only whole, aligned runs', () => {
  it('an unaligned region gets the bit on its aligned inner runs only', () => {
    const {machine, mapper} = setup()
    // 4 pages, two runs of 16, 4 pages
    const r = mapper.mapRegion(0x7fff_c000n, 0x2_8000n, 'normal', {contiguous: true})
    expect(r.contiguousRuns).toEqual({1: 0, 2: 0, 3: 2})
    expect(leaves(machine, mapper)).toEqual(run(0x7fff_c000n, 40, PAGE, 3, page, (k) => k >= 4 && k < 36))
  })

  it('an output not aligned to the run gets no bit', () => {
    const {machine, mapper} = setup()
    const r = mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {pa: 0x9000_1000n, contiguous: true})
    expect(r.contiguousRuns).toEqual({1: 0, 2: 0, 3: 0})
    expect(leaves(machine, mapper).every(([, , d]) => (d & C) === 0n)).toBe(true)
  })

  it('without --contiguous no descriptor has the bit, and the result has no run count', () => {
    const {machine, mapper} = setup()
    const r = mapper.mapRegion(0x8000_0000n, 0x200_0000n, 'normal')
    expect('contiguousRuns' in r).toBe(false)
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, 0x20_0000n, 2, block, () => false))
  })

  it('mapping a contiguous range again, with or without the flag or --replace, changes nothing', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    const before = leaves(machine, mapper)
    expect(mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal').unchanged[3]).toBe(16)
    expect(mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {replace: true}).unchanged[3]).toBe(16)
    expect(mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {replace: true, contiguous: true}).unchanged[3]).toBe(16)
    expect(leaves(machine, mapper)).toEqual(before)
  })

  it('a refused map leaves memory as it was', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    expectUnchangedAfterError(machine, () => mapper.mapRegion(0x8000_0000n, 0x2_0000n, 'device', {contiguous: true}), 'mapping-conflict', /already mapped normal/)
  })

  it('translates exactly as without the bit (QEMU and the architecture ignore it for the result)', () => {
    const a = setup()
    const b = setup()
    a.mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    b.mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal')
    for (const ipa of [0x8000_0000n, 0x8000_5123n, 0x8000_fff8n]) {
      const ta = translate(a.machine.memory, a.mapper.regime, a.mapper.root, ipa)
      const tb = translate(b.machine.memory, b.mapper.regime, b.mapper.root, ipa)
      expect(ta.par).toBe(tb.par)
      expect(ta.output?.address).toBe(ipa)
      expect(ta.output?.leaf.contiguous).toBe(true)
      expect(tb.output?.leaf.contiguous).toBe(false)
    }
  })
})

describe('edits that cut a run clear the bit on all of it first', () => {
  it('unmap of one page inside a run clears the bit on the 15 others', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x2_0000n, 'normal', {contiguous: true})
    mapper.unmap(0x8000_5000n, PAGE)
    const expected = [...run(0x8000_0000n, 16, PAGE, 3, page, () => false).filter(([a]) => a !== 0x8000_5000n), ...run(0x8001_0000n, 16, PAGE, 3, page)]
    expect(leaves(machine, mapper)).toEqual(expected)
  })

  it('unmap of a whole run keeps the neighbouring run', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x2_0000n, 'normal', {contiguous: true})
    mapper.unmap(0x8000_0000n, 0x1_0000n)
    expect(leaves(machine, mapper)).toEqual(run(0x8001_0000n, 16, PAGE, 3, page))
  })

  it('protect of one page inside a run clears the bit on the 15 others', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    mapper.protect(0x8000_5000n, PAGE, {perm: 'rx'})
    expect(leaves(machine, mapper)).toEqual(
      run(
        0x8000_0000n,
        16,
        PAGE,
        3,
        (pa) => (pa === 0x8000_5000n ? pa | 0x77fn : page(pa)),
        () => false,
      ),
    )
  })

  it('protect of a whole aligned run keeps the bit (all 16 change alike), with --perm or --attr', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    mapper.protect(0x8000_0000n, 0x1_0000n, {perm: 'rx'})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, PAGE, 3, (pa) => pa | 0x77fn))
    mapper.protect(0x8000_0000n, 0x1_0000n, {attr: 'device'})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, PAGE, 3, (pa) => pa | 0x0040_0000_0000_07c7n))
  })

  it('a --replace map over part of a run clears the bit on the rest', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    mapper.mapRegion(0x8000_0000n, 0x2000n, 'readonly', {replace: true})
    expect(leaves(machine, mapper)).toEqual(
      run(
        0x8000_0000n,
        16,
        PAGE,
        3,
        (pa) => (pa < 0x8000_2000n ? pa | 0x77fn : page(pa)),
        () => false,
      ),
    )
  })

  it('a --replace --contiguous map of a whole run with new attributes sets the bit on all of it again', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'normal', {contiguous: true})
    mapper.mapRegion(0x8000_8000n, 0x8000n, 'readonly', {replace: true}) // half the run: no bit left
    mapper.mapRegion(0x8000_0000n, 0x1_0000n, 'readonly', {replace: true, contiguous: true})
    expect(leaves(machine, mapper)).toEqual(run(0x8000_0000n, 16, PAGE, 3, (pa) => pa | 0x77fn))
  })

  it('a split of one block of a run clears the bit on the other 15; its pages have none', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x200_0000n, 'normal', {contiguous: true})
    const r = mapper.unmap(0x8060_0000n, PAGE)
    expect(r.splits).toBe(1)
    const all = leaves(machine, mapper)
    expect(all.filter(([, level]) => level === 2)).toEqual(run(0x8000_0000n, 16, 0x20_0000n, 2, block, () => false).filter(([a]) => a !== 0x8060_0000n))
    const pages = all.filter(([, level]) => level === 3)
    expect(pages).toHaveLength(511)
    expect(pages.every(([, , d]) => (d & C) === 0n)).toBe(true)
  })

  it('coalesce folds a table of contiguous pages into a block without the bit', () => {
    const {machine, mapper} = setup()
    mapper.mapRegion(0x8000_0000n, 0x20_0000n, 'normal', {granularity: 'page', contiguous: true})
    expect(mapper.coalesce().blocks).toEqual([{ipa: 0x8000_0000n, level: 2, descriptor: block(0x8000_0000n)}])
    expect(leaves(machine, mapper)).toEqual([[0x8000_0000n, 2, block(0x8000_0000n)]])
  })
})
