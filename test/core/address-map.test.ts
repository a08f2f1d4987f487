/** The pictures' data: scales, the cell rule, heap segments and leaf categories. */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {HEAP_CATEGORIES, IPA_CATEGORIES, type IpaCategory, type Segment, heapScale, heapSegments, ipaCategory, ipaScale, strip} from '../../src/core/address-map.js'
import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'

const MiB = 1n << 20n

describe('scales', () => {
  it('picks the smallest power-of-two cell (>= 4 KiB) that fits the extent in the width', () => {
    expect(ipaScale(0x0900_0000n, 0x4020_1000n, 16)).toEqual({start: 0x0800_0000n, cellSize: 64n * MiB, cells: 15})
    expect(ipaScale(0x4000_0000n, 0x4000_1000n, 64)).toEqual({start: 0x4000_0000n, cellSize: 4096n, cells: 1})
    expect(ipaScale(0n, 1n << 39n, 64)).toEqual({start: 0n, cellSize: 8n << 30n, cells: 64})
    fc.assert(
      fc.property(fc.bigInt({min: 0n, max: (1n << 48n) - 1n}), fc.bigInt({min: 1n, max: 1n << 40n}), fc.integer({min: 8, max: 1024}), (start, length, width) => {
        const s = ipaScale(start, start + length, width)
        expect(s.cells).toBeLessThanOrEqual(width)
        expect(s.start <= start && s.start + BigInt(s.cells) * s.cellSize >= start + length).toBe(true)
        expect(s.start % s.cellSize).toBe(0n)
        // half the cell would not do
        if (s.cellSize > 4096n) {
          const half = s.cellSize / 2n
          const first = (start / half) * half
          expect((start + length - first + half - 1n) / half > BigInt(width)).toBe(true)
        }
      }),
    )
  })

  it('cuts the heap into equal page-multiple cells from its start', () => {
    expect(heapScale(0x4100_0000n, 0x4200_0000n, 64)).toEqual({start: 0x4100_0000n, cellSize: 256n * 1024n, cells: 64})
    expect(heapScale(0x4100_6000n, 0x4200_0000n, 64)).toEqual({start: 0x4100_6000n, cellSize: 256n * 1024n, cells: 64})
    expect(heapScale(0x4100_0000n, 0x4100_3000n, 64)).toEqual({start: 0x4100_0000n, cellSize: 4096n, cells: 3})
  })
})

describe('strip', () => {
  const scale = {start: 0n, cellSize: 0x1000n, cells: 4}
  it('shows what covers most of a cell among what is there; empty only when nothing is', () => {
    const segments: Array<Segment<IpaCategory>> = [
      {start: 0x0n, end: 0x10n, category: 'device'}, // 16 bytes of cell 0: still shown
      {start: 0x1000n, end: 0x1800n, category: 'normal-ro'},
      {start: 0x1800n, end: 0x1c00n, category: 'normal-rwx'}, // less than normal-ro in cell 1
      {start: 0x2000n, end: 0x2800n, category: 'normal-rw'},
      {start: 0x2800n, end: 0x3000n, category: 'device'}, // a tie in cell 2: the earlier category wins
    ]
    expect(strip(segments, scale, IPA_CATEGORIES, 0x4000n).cells).toEqual(['device', 'normal-ro', 'normal-rw', 'unmapped'])
  })

  it('spreads a segment over every cell it touches', () => {
    const s = strip([{start: 0x800n, end: 0x3001n, category: 'table'}], scale, HEAP_CATEGORIES, 0x4000n)
    expect(s.cells).toEqual(['table', 'table', 'table', 'table'])
    expect(strip([{start: 0n, end: 0x4000n, category: 'free'}], scale, HEAP_CATEGORIES, 0x4000n).cells).toEqual(['free', 'free', 'free', 'free'])
  })
})

describe('heapSegments', () => {
  it('splits the heap into tables, the rest allocated up to next, and free', () => {
    const heap = {start: 0x1000n, next: 0x5080n, end: 0x8000n}
    expect(heapSegments(heap, [0x2000n, 0x1000n, 0x2000n, 0x6000n, 0x9000n])).toEqual([
      {start: 0x1000n, end: 0x2000n, category: 'table'},
      {start: 0x2000n, end: 0x3000n, category: 'table'},
      {start: 0x3000n, end: 0x5080n, category: 'allocated'},
      {start: 0x5080n, end: 0x6000n, category: 'free'},
      {start: 0x6000n, end: 0x7000n, category: 'table'},
      {start: 0x7000n, end: 0x8000n, category: 'free'},
    ])
    expect(heapSegments({start: 0x1000n, next: 0x1000n, end: 0x3000n}, [])).toEqual([{start: 0x1000n, end: 0x3000n, category: 'free'}])
  })
})

describe('ipaCategory', () => {
  const leaf = (regime: typeof STAGE2, raw: bigint) => regime.decode(raw, 2).leaf!
  it("names each of hvmem's encodings and the faulting ones", () => {
    expect(ipaCategory(leaf(STAGE2, 0x4000_07fdn))).toBe('normal-rwx')
    expect(ipaCategory(leaf(STAGE2, 0x0040_0000_4000_07fdn))).toBe('normal-rw')
    expect(ipaCategory(leaf(STAGE2, 0x4000_077dn))).toBe('normal-ro')
    expect(ipaCategory(leaf(STAGE2, 0x0040_0000_0900_07c5n))).toBe('device')
    expect(ipaCategory(leaf(STAGE2, 0x4000_03fdn))).toBe('faulting') // AF clear
    expect(ipaCategory(leaf(STAGE2, 0x4000_0405n))).toBe('faulting') // stage-1 encoding under stage 2: no access
    expect(ipaCategory(leaf(STAGE1, 0x4000_0405n))).toBe('normal-rwx')
    expect(ipaCategory(leaf(STAGE1, 0x4000_0409n))).toBe('device')
    expect(ipaCategory(leaf(STAGE1, 0x4000_0485n))).toBe('normal-ro')
  })
})
