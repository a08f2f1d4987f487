import {describe, expect, it} from 'vitest'

import {tableDescriptor} from '../../src/core/descriptor.js'
import {type Geometry, stage1Geometry, stage2Geometry} from '../../src/core/geometry.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'
import {type WalkCursor, mergeRanges, skippingAccess, walkRanges, walkTables} from '../../src/core/walker.js'
import {walkEntries} from './helpers.js'
import type {Regime} from '../../src/core/descriptor.js'

const RAM = 0x4000_0000n
const ROOT = 0x4000_0000n
const ALIAS = 'was reached already (a loop or an alias): not walked again'

/** Each visit's cursor fields, read during the visit; and whether every visit got the same cursor. */
function visits(memory: PhysicalMemory, regime: Regime, geometry: Geometry, access?: Parameters<typeof walkTables>[5]): {rows: unknown[][]; oneCursor: boolean} {
  const rows: unknown[][] = []
  const cursors = new Set<WalkCursor>()
  walkTables(
    memory,
    regime,
    ROOT,
    geometry,
    (c) => {
      cursors.add(c)
      rows.push([c.level, c.index, c.table, c.addr, c.size, c.raw, c.kind, c.problem])
    },
    access,
  )
  return {rows, oneCursor: cursors.size <= 1}
}

describe("walkTables' cursor", () => {
  it('64K granule: a root spanning 16 memory pages, an alias, a table outside RAM, an empty table last; one cursor, entries exact', () => {
    const g = stage2Geometry({granule: 65536, inputBits: 42}) // level-2 root of 8192 entries (64 KiB), 512 MiB blocks, 64 KiB pages
    expect([g.startLevel, g.rootEntries]).toEqual([2, 8192])
    const memory = new PhysicalMemory(RAM, 0x4000_0000n)
    const l3 = 0x4001_0000n
    const empty = 0x4002_0000n
    const page = 0x7654_0000n | 0x7ffn // a stage-2 page: output 0x76540000, normal
    const block = 0x6000_0000n | 0x7fdn // a 512 MiB block at 0x60000000
    memory.writeU64(ROOT + 8n * 600n, tableDescriptor(l3)) // in the root's second memory page
    memory.writeU64(l3 + 8n * 5000n, page) // in the L3 table's tenth memory page
    memory.writeU64(ROOT + 8n * 601n, tableDescriptor(l3)) // the same table again: an alias
    memory.writeU64(ROOT + 8n * 700n, block)
    memory.writeU64(ROOT + 8n * 701n, tableDescriptor(0x1_0000_0000n)) // outside RAM
    memory.writeU64(ROOT + 8n * 8191n, tableDescriptor(empty)) // a table of no valid entries, the walk's last entry
    const B = 2 ** 29
    const {rows, oneCursor} = visits(memory, STAGE2, g)
    expect(oneCursor).toBe(true)
    expect(rows).toEqual([
      [2, 600, 0x4000_0000, 600 * B, B, tableDescriptor(l3), 'table', undefined],
      [3, 5000, 0x4001_0000, 600 * B + 5000 * 65536, 65536, page, 'page', undefined],
      [2, 601, 0x4000_0000, 601 * B, B, tableDescriptor(l3), 'table', `next-level table 0x40010000 ${ALIAS}`],
      [2, 700, 0x4000_0000, 700 * B, B, block, 'block', undefined],
      [2, 701, 0x4000_0000, 701 * B, B, tableDescriptor(0x1_0000_0000n), 'table', 'next-level table 0x100000000 is outside RAM'],
      [2, 8191, 0x4000_0000, 8191 * B, B, tableDescriptor(empty), 'table', undefined],
    ])
    // entry(): a copy with the bigint and decoded forms, the problem only where there is one
    const entries = walkEntries(memory, STAGE2, ROOT, g)
    expect(entries.map((e) => [e.level, e.index, e.table, e.ipa, e.size, e.decoded.kind, 'problem' in e])).toEqual([
      [2, 600, ROOT, 600n << 29n, 1n << 29n, 'table', false],
      [3, 5000, l3, (600n << 29n) + 5000n * 65536n, 65536n, 'page', false],
      [2, 601, ROOT, 601n << 29n, 1n << 29n, 'table', true],
      [2, 700, ROOT, 700n << 29n, 1n << 29n, 'block', false],
      [2, 701, ROOT, 701n << 29n, 1n << 29n, 'table', true],
      [2, 8191, ROOT, 8191n << 29n, 1n << 29n, 'table', false],
    ])
    expect(entries[1]!.decoded.leaf!.outputAddress).toBe(0x7654_0000n)
    expect(entries[0]!.decoded.nextTable).toBe(l3)
    expect(walkRanges(memory, STAGE2, ROOT, g).ranges).toEqual(mergeRanges(entries))
  })

  it('LPA2 (52-bit VA, level -1 root): output bits 51:50 from bits 9:8, a level-0 block, a page four tables down', () => {
    const g = stage1Geometry({granule: 4096, inputBits: 52, ds: true})
    expect([g.startLevel, g.rootEntries]).toEqual([-1, 16])
    const memory = new PhysicalMemory(RAM, 0x4000_0000n)
    const [t0, t1, t2, t3] = [0x4000_1000n, 0x4000_2000n, 0x4000_3000n, 0x4000_4000n]
    // a 512 GiB block at 0xc_0080_0000_0000 (bits 51:50 = 3 in bits 9:8) and a page at 0xc_0000_1234_5000
    const blockRaw = (0x80n << 32n) | (3n << 8n) | 0x401n
    const pageRaw = 0x1234_5000n | (3n << 8n) | 0x403n
    memory.writeU64(ROOT + 8n, tableDescriptor(t0))
    memory.writeU64(t0 + 8n * 2n, blockRaw)
    memory.writeU64(t0 + 8n * 3n, tableDescriptor(t1))
    memory.writeU64(t1, tableDescriptor(t2))
    memory.writeU64(t2 + 8n * 5n, tableDescriptor(t3))
    memory.writeU64(t3 + 8n * 7n, pageRaw)
    const base = 2 ** 48
    const {rows, oneCursor} = visits(memory, STAGE1, g)
    expect(oneCursor).toBe(true)
    expect(rows).toEqual([
      [-1, 1, 0x4000_0000, base, base, tableDescriptor(t0), 'table', undefined],
      [0, 2, 0x4000_1000, base + 2 * 2 ** 39, 2 ** 39, blockRaw, 'block', undefined],
      [0, 3, 0x4000_1000, base + 3 * 2 ** 39, 2 ** 39, tableDescriptor(t1), 'table', undefined],
      [1, 0, 0x4000_2000, base + 3 * 2 ** 39, 2 ** 30, tableDescriptor(t2), 'table', undefined],
      [2, 5, 0x4000_3000, base + 3 * 2 ** 39 + 5 * 2 ** 21, 2 ** 21, tableDescriptor(t3), 'table', undefined],
      [3, 7, 0x4000_4000, base + 3 * 2 ** 39 + 5 * 2 ** 21 + 7 * 4096, 4096, pageRaw, 'page', undefined],
    ])
    const entries = walkEntries(memory, STAGE1, ROOT, g)
    expect(entries[1]!.decoded.leaf!.outputAddress).toBe(0xc_0080_0000_0000n)
    expect(entries[5]!.decoded.leaf!.outputAddress).toBe(0xc_0000_1234_5000n)
    expect(entries[5]!.ipa).toBe((1n << 48n) + (3n << 39n) + (5n << 21n) + 7n * 4096n)
    expect(walkRanges(memory, STAGE1, ROOT, g).ranges).toEqual(mergeRanges(entries))
  })

  it('an unreadable table page reads as invalid entries: its table entry is visited, nothing under it', () => {
    const g = stage2Geometry({granule: 4096, inputBits: 39})
    const memory = new PhysicalMemory(RAM, 0x4000_0000n)
    memory.writeU64(ROOT, tableDescriptor(0x4000_1000n))
    memory.writeU64(0x4000_1000n, 0x4020_07fdn)
    memory.writeU64(ROOT + 8n, 0x8000_07fdn)
    const whole = visits(memory, STAGE2, g).rows.map((r) => [r[0], r[1], r[6]])
    expect(whole).toEqual([
      [1, 0, 'table'],
      [2, 0, 'block'],
      [1, 1, 'block'],
    ])
    const damaged = visits(memory, STAGE2, g, skippingAccess(memory, new Set([0x4000_1000 / 4096]))).rows.map((r) => [r[0], r[1], r[6]])
    expect(damaged).toEqual([
      [1, 0, 'table'],
      [1, 1, 'block'],
    ])
  })
})
