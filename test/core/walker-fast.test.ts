import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {type Regime, tableDescriptor} from '../../src/core/descriptor.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'
import {ScanCursor, type TableWalker, type Unfollowed, mergeRanges, scanTables, walkRanges} from '../../src/core/walker.js'
import {mappedMachine, walkEntries} from './helpers.js'
import {DEFAULT_STAGE2, type Geometry, type GeometrySpec, stage2Geometry} from '../../src/core/geometry.js'

const RAM = 0x4000_0000n
const ROOT = 0x4100_0000n
const TABLES = [ROOT, 0x4100_1000n, 0x4100_2000n, 0x4100_3000n]

/** A descriptor that points at one of TABLES, is a random leaf-ish value, or anything at all. */
const descriptor = fc.oneof(
  fc.constantFrom(...TABLES).map((t) => tableDescriptor(t)),
  fc.constantFrom(0x7fdn, 0x7ffn, 0x0040_0000_0000_07c5n, 0x77dn, 0x405n, 0x409n, 0x485n, 0x403n).chain((bits) => fc.bigInt({min: 0n, max: (1n << 36n) - 1n}).map((frame) => (frame << 12n) | bits)),
  fc.bigInt({min: 0n, max: (1n << 64n) - 1n}),
)

/** Tables written at random slots (neighbouring slots, so ranges form and break). */
const tables = fc.array(fc.tuple(fc.constantFrom(...TABLES), fc.integer({min: 0, max: 511}), descriptor, fc.integer({min: 1, max: 40})), {maxLength: 12})

function build(writes: Array<[bigint, number, bigint, number]>): PhysicalMemory {
  const memory = new PhysicalMemory(RAM, 0x4000_0000n)
  for (const [table, index, value, run] of writes) {
    // a run of `run` entries continuing the first one's output addresses, as a map would write them
    for (let i = 0; i < run && index + i < 512; i++) {
      const step = (value & 2n) === 0n ? 0x20_0000n : 0x1000n
      const next = (value + BigInt(i) * step) & ((1n << 64n) - 1n)
      memory.writeU64(table + 8n * BigInt(index + i), next)
    }
  }
  return memory
}

/** walkRanges gives exactly mergeRanges(walkEntries()) and its counts. */
function expectRangesAsMerged(memory: PhysicalMemory, regime: Regime, geometry: Geometry): void {
  const entries = walkEntries(memory, regime, ROOT, geometry)
  const walk = walkRanges(memory, regime, ROOT, geometry)
  expect(walk.ranges).toEqual(mergeRanges(entries))
  expect(walk.entries).toBe(entries.length)
  expect(walk.leaves).toBe(entries.filter((e) => e.decoded.leaf !== undefined).length)
}

describe('walkRanges and the number-based walk', () => {
  it('gives exactly mergeRanges(walkEntries()) and its counts, for random tables in both regimes', () => {
    fc.assert(
      fc.property(tables, fc.constantFrom<Regime>(STAGE2, STAGE1), fc.constantFrom(0, 1), (writes, regime, startLevel) => {
        const memory = build(writes)
        const options = startLevel === 0 ? stage2Geometry({granule: 4096, inputBits: 48}) : DEFAULT_STAGE2
        expectRangesAsMerged(memory, regime, options)
      }),
      {numRuns: 300},
    )
  })

  // RangeMerger.leafPage finds a run's entries by their words alone (the low word one page more each,
  // up to a carry into the high word): runs of pages that cross a 4 GiB output boundary, and the 16K
  // and 64K granules (tables 64 KiB apart), against mergeRanges
  const GRANULES: GeometrySpec[] = [
    {granule: 4096, inputBits: 39},
    {granule: 16384, inputBits: 40},
    {granule: 65536, inputBits: 42},
  ]
  const WIDE = [ROOT, ROOT + 0x1_0000n, ROOT + 0x2_0000n, ROOT + 0x3_0000n]
  const wideTables = fc.array(
    fc.tuple(
      fc.constantFrom(...WIDE),
      fc.integer({min: 0, max: 511}),
      fc.oneof(
        fc.constantFrom(...WIDE).map((t) => tableDescriptor(t)),
        // pages and blocks whose output lies just below a 4 GiB boundary, so that runs cross it
        fc
          .tuple(fc.constantFrom(0x7ffn, 0x7fdn, 0x0060_0000_0000_07ffn, 0x77fn), fc.integer({min: 0, max: 3}), fc.integer({min: 1, max: 48}))
          .map(([bits, high, back]) => (BigInt(high + 1) << 32n) - BigInt(back) * 0x1000n + bits),
        fc.bigInt({min: 0n, max: (1n << 64n) - 1n}),
      ),
      fc.integer({min: 1, max: 80}),
      // an entry of the run with bit 54 (XN) flipped: the same low words, another high word
      fc.integer({min: -1, max: 80}),
      // the run's low words wrapping at 2^32 without a carry into the high word (output not contiguous)
      fc.boolean(),
    ),
    {maxLength: 12},
  )

  it.each(GRANULES)('gives exactly mergeRanges(walkEntries()) for the $granule-byte granule, with runs across 4 GiB output boundaries', (spec) => {
    const geometry = stage2Geometry(spec)
    fc.assert(
      fc.property(wideTables, fc.constantFrom<Regime>(STAGE2, STAGE1), (writes, regime) => {
        const memory = new PhysicalMemory(RAM, 0x4000_0000n)
        for (const [table, index, value, run, flip, wrap] of writes) {
          // a run continuing the first entry's output addresses by the granule (or 4 KiB), as a map of pages would
          const step = BigInt(run % 2 === 0 ? spec.granule : 4096)
          for (let i = 0; i < run && index + i < geometry.entriesAt(geometry.startLevel + 1); i++) {
            const next = value + BigInt(i) * step
            const word = wrap ? (value & ~0xffff_ffffn) | (next & 0xffff_ffffn) : next
            memory.writeU64(table + 8n * BigInt(index + i), (word ^ (i === flip ? 1n << 54n : 0n)) & ((1n << 64n) - 1n))
          }
        }
        expectRangesAsMerged(memory, regime, geometry)
      }),
      {numRuns: 300},
    )
  })

  it('reads descriptors with bit 63 and bits 47:32 set exactly', () => {
    const memory = new PhysicalMemory(RAM, 0x4000_0000n)
    const raw = 0xfff0_ffff_ffe0_07fdn // upper attribute bits all set, output 0xffffffe00000
    memory.writeU64(ROOT, tableDescriptor(0x4100_1000n))
    memory.writeU64(0x4100_1000n, raw)
    const [table, block] = walkEntries(memory, STAGE2, ROOT, DEFAULT_STAGE2)
    expect(table!.decoded.nextTable).toBe(0x4100_1000n)
    expect(block!.decoded.raw).toBe(raw)
    expect(block!.decoded.leaf!.outputAddress).toBe(0xffff_ffe0_0000n)
    const {ranges} = walkRanges(memory, STAGE2, ROOT, DEFAULT_STAGE2)
    expect(ranges).toEqual([{start: 0n, end: 0x20_0000n, level: 2, outputStart: 0xffff_ffe0_0000n, decoded: block!.decoded, entries: 1}])
  })

  it('merges 512 GiB of 2 MiB blocks into one range of 262,144 entries', () => {
    const {machine, mapper} = mappedMachine({l2Budget: 512})
    mapper.mapRegion(0n, 512n << 30n, 'normal', {granularity: '2M'})
    const walk = walkRanges(machine.memory, STAGE2, mapper.root, mapper.geometry)
    expect(walk.entries).toBe(512 + 262_144)
    expect(walk.leaves).toBe(262_144)
    expect(walk.ranges.map((r) => [r.start, r.end, r.level, r.outputStart, r.entries, r.decoded.raw])).toEqual([[0n, 512n << 30n, 2, 0n, 262_144, 0x7fdn]])
  })

  it('decodes a leaf the same whether its attributes were seen before or not', () => {
    const a = STAGE2.decode(0x1234_5000n | 0x7ffn, 3)
    const b = STAGE2.decode(0x9876_5000n | 0x7ffn, 3)
    expect(b.leaf).toEqual({...a.leaf, outputAddress: 0x9876_5000n})
    expect(Object.keys(b.leaf!)).toEqual(Object.keys(a.leaf!))
    expect(b.leaf).not.toBe(a.leaf)
  })
})

describe('ScanCursor: a scan in parts', () => {
  /** What a scan's visits say, one string each: the entry, or the word on a table not followed. */
  const trace =
    (out: string[]) =>
    (w: TableWalker, unfollowed?: Unfollowed): void => {
      out.push(unfollowed === undefined ? `${w.level} ${w.index} ${w.table} ${w.addr} ${w.lo} ${w.hi}` : `unfollowed ${w.next} ${unfollowed}`)
    }

  /** The tables `writes` builds, a geometry starting at `startLevel`, and scanTables' visits of them. */
  function scanned(writes: Array<[bigint, number, bigint, number]>, startLevel: number): {memory: PhysicalMemory; geometry: Geometry; whole: string[]} {
    const memory = build(writes)
    // start levels 0 and -1 (FEAT_LPA2, 52-bit: a 16-entry root) as well as KVM's level 1
    const geometry = startLevel === -1 ? stage2Geometry({granule: 4096, inputBits: 52, ds: true, startLevel: -1}) : startLevel === 0 ? stage2Geometry({granule: 4096, inputBits: 48}) : DEFAULT_STAGE2
    expect(geometry.startLevel).toBe(startLevel)
    const whole: string[] = []
    scanTables(memory, ROOT, geometry, trace(whole))
    return {memory, geometry, whole}
  }

  // with a page visitor (dump tables --json's), pages of leaves and runs of blocks come in one call,
  // the entries passed over left out, and a stop inside one goes on from that entry
  it.each([1, 2, 7, 100].flatMap((every) => [[every, false] as const, [every, true] as const]))(
    "stopping after every %i entries (a page visitor: %s) gives scanTables' visits, in order",
    (every, paged) => {
      fc.assert(
        fc.property(tables, fc.constantFrom(-1, 0, 1), (writes, startLevel) => {
          const {memory, geometry, whole} = scanned(writes, startLevel)
          const parts: string[] = []
          const record = trace(parts)
          const cursor = new ScanCursor(memory, ROOT, geometry)
          let n = 0
          let runs = 0
          const visit = (w: TableWalker, unfollowed?: Unfollowed): void => {
            // with a page visitor, table entries only: every leaf comes in a page or run
            if (paged) expect(w.level < 3 && (w.lo & 3) === 3).toBe(true)
            if (unfollowed === undefined && ++n % (every + 1) === 0) return cursor.stop(w)
            record(w, unfollowed)
          }
          const page = (w: TableWalker, words: Uint32Array, from: number, to: number): void => {
            for (let i = from; i <= to; i++) {
              if ((words[(i & 511) * 2]! & 1) === 0) continue
              w.at(i, words)
              if (++n % (every + 1) === 0) return cursor.stop(w)
              record(w)
            }
          }
          while (!cursor.run(visit, paged ? page : undefined)) runs++
          expect(parts).toEqual(whole)
          // it did stop, where there was more than a part's worth
          if (whole.filter((v) => !v.startsWith('unfollowed')).length > every) expect(runs).toBeGreaterThan(0)
        }),
        {numRuns: 100},
      )
    },
  )
})
