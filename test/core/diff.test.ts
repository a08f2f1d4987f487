import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {ADDRESS_MASK, TABLE_OR_PAGE, tableDescriptor} from '../../src/core/descriptor.js'
import {type ByteRange, MERGE_GAP, type SnapshotDiff, bytesAt, diffMachines, diffMappings, diffMemory, mappingsOf} from '../../src/core/diff.js'
import {type PageList, memoryPages} from '../../src/core/page-list.js'
import {Machine} from '../../src/core/machine.js'
import type {Permission} from '../../src/core/mapper.js'
import {type WalkEntry} from '../../src/core/walker.js'
import {bufferSource, decodeSource, encodeSnapshot} from '../../src/snapshot/format.js'
import {BLOCK, GIB, PAGE, defaultMachine, mappedMachine, walkEntries} from './helpers.js'

/** An independent copy of a machine (through the snapshot format). */
function copy(machine: Machine): Machine {
  return decodeSource(bufferSource(encodeSnapshot(machine)), 'copy', 'full').machine
}

/** What a diff found, in plain values (no decoded descriptors or mapper objects). */
function summary(d: SnapshotDiff) {
  return {
    same: d.same,
    layout: d.layout?.fields ?? null,
    heap: d.heap.changed ? {next: d.heap.next.delta, allocated: d.heap.allocated.delta, remaining: d.heap.remaining.delta} : null,
    mapper: d.mapper === undefined ? null : {change: d.mapper.change, fields: d.mapper.fields},
    mappings: d.mappings.map((m) => ({
      change: m.change,
      start: m.start,
      end: m.end,
      old: m.old === undefined ? null : {out: m.old.outputStart, level: m.old.level, raw: m.old.decoded.raw},
      new: m.new === undefined ? null : {out: m.new.outputStart, level: m.new.level, raw: m.new.decoded.raw},
    })),
    tables: d.tables,
    memory: d.memory,
  }
}

const EMPTY = {same: true, layout: null, heap: null, mapper: null, mappings: [], tables: [], memory: []}

describe('diffMachines', () => {
  it('finds nothing between a machine and its copy', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, GIB, 'normal')
    machine.memory.write(0x4180_0000n, 8, 0x1122_3344_5566_7788n)
    const d = diffMachines({machine}, {machine: copy(machine)})
    expect(summary(d)).toEqual(EMPTY)
    expect(d.heap).toEqual({
      next: {old: 0x4100_1000n, new: 0x4100_1000n, delta: 0n},
      allocated: {old: 0x1000n, new: 0x1000n, delta: 0n},
      remaining: {old: 0xfff000n, new: 0xfff000n, delta: 0n},
      changed: false,
    })
  })

  it('reports the heap moving: next, allocated and remaining with signed deltas', () => {
    const a = defaultMachine()
    const b = copy(a)
    b.heap.allocAligned(0x100n, 0x1000n)
    b.heap.alloc(0x10n)
    const d = diffMachines({machine: a}, {machine: b})
    expect(d.heap).toEqual({
      next: {old: 0x4100_0000n, new: 0x4100_0110n, delta: 0x110n},
      allocated: {old: 0n, new: 0x110n, delta: 0x110n},
      remaining: {old: 0x100_0000n, new: 0xff_fef0n, delta: -0x110n},
      changed: true,
    })
    expect(summary(d)).toEqual({...EMPTY, same: false, heap: {next: 0x110n, allocated: 0x110n, remaining: -0x110n}})
    // and back: the deltas change sign
    expect(diffMachines({machine: b}, {machine: a}).heap.remaining.delta).toBe(0x110n)
  })

  it('reports a layout that differs, naming the fields', () => {
    const a = defaultMachine()
    const b = Machine.create({ramBase: 0x4000_0000n, ramSize: 2n * GIB, heapBase: 0x4100_0000n, heapSize: 0x200_0000n})
    const d = diffMachines({machine: a}, {machine: b})
    expect(d.layout).toEqual({
      old: {ramBase: 0x4000_0000n, ramSize: GIB, heapStart: 0x4100_0000n, heapSize: 0x100_0000n},
      new: {ramBase: 0x4000_0000n, ramSize: 2n * GIB, heapStart: 0x4100_0000n, heapSize: 0x200_0000n},
      fields: ['ramSize', 'heapSize'],
    })
    expect(summary(d).heap).toEqual({next: 0n, allocated: 0n, remaining: 0x100_0000n})
    expect(d.same).toBe(false)
  })

  it('reports a mapper added (with its root table appearing) and removed', () => {
    const a = defaultMachine()
    const b = copy(a)
    b.ensureMapper({vmid: 3})
    const added = diffMachines({machine: a}, {machine: b})
    expect(summary(added)).toEqual({
      ...EMPTY,
      same: false,
      heap: {next: PAGE, allocated: PAGE, remaining: -PAGE},
      mapper: {change: 'added', fields: []},
      // the root is all zero: an appeared table with no entry changed
      tables: [{change: 'appeared', address: 0x4100_0000n, level: 1, entriesChanged: 0}],
    })
    expect(added.mapper!.new!.state.vmid).toBe(3)
    const removed = diffMachines({machine: b}, {machine: a})
    expect(removed.mapper?.change).toBe('removed')
    expect(removed.tables).toEqual([{change: 'disappeared', address: 0x4100_0000n, level: 1, entriesChanged: 0}])
  })

  it('reports mapper fields that differ, registers included', () => {
    const a = mappedMachine({vmid: 1}).machine
    const b = mappedMachine({vmid: 2, l2Budget: 8}).machine
    expect(summary(diffMachines({machine: a}, {machine: b})).mapper).toEqual({change: 'changed', fields: ['vmid', 'l2Budget', 'VTTBR_EL2']})
    const s1 = mappedMachine({regime: 'stage1'}).machine
    expect(diffMachines({machine: a}, {machine: s1}).mapper?.fields).toEqual(['regime', 'vmid', 'VTTBR_EL2', 'VTCR_EL2', 'HCR_EL2', 'TTBR0_EL2', 'TCR_EL2', 'MAIR_EL2', 'SCTLR_EL2'])
  })

  it('reports mappings added, removed and changed as merged ranges, with both sides', () => {
    const {machine: a, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 4n * BLOCK, 'normal', {granularity: '2M'})
    mapper.mapRegion(0x8000_0000n, BLOCK, 'device')
    const b = copy(a)
    const mb = b.mapper!
    mb.unmap(0x8000_0000n, BLOCK) // removed
    mb.protect(0x4020_0000n, 2n * BLOCK, {perm: 'r'}) // changed: two blocks, one range
    mb.mapRegion(0x0900_0000n, PAGE, 'device') // added: a page under a new L2 and L3 table
    mb.mapRegion(0x4080_0000n, BLOCK, 'normal', {pa: 0x5000_0000n}) // added, not identity
    const d = diffMachines({machine: a}, {machine: b})
    const s = summary(d)
    expect(s.mappings).toEqual([
      {change: 'added', start: 0x0900_0000n, end: 0x0900_1000n, old: null, new: {out: 0x0900_0000n, level: 3, raw: 0x0040_0000_0900_07c7n}},
      {change: 'changed', start: 0x4020_0000n, end: 0x4060_0000n, old: {out: 0x4020_0000n, level: 2, raw: 0x4020_07fdn}, new: {out: 0x4020_0000n, level: 2, raw: 0x0040_0000_4020_077dn}},
      {change: 'added', start: 0x4080_0000n, end: 0x40a0_0000n, old: null, new: {out: 0x5000_0000n, level: 2, raw: 0x5000_07fdn}},
      {change: 'removed', start: 0x8000_0000n, end: 0x8020_0000n, old: {out: 0x8000_0000n, level: 2, raw: 0x0040_0000_8000_07c5n}, new: null},
    ])
    // L1 at 0x4100_0000, L2 for 1..2 GiB at 0x4100_1000, L2 for 2..3 GiB at 0x4100_2000; B adds L2 and L3 for 0x0900_0000
    expect(s.tables).toEqual([
      {change: 'changed', address: 0x4100_0000n, level: 1, entriesChanged: 1},
      {change: 'changed', address: 0x4100_1000n, level: 2, entriesChanged: 3},
      {change: 'changed', address: 0x4100_2000n, level: 2, entriesChanged: 1},
      {change: 'appeared', address: 0x4100_3000n, level: 2, entriesChanged: 1},
      {change: 'appeared', address: 0x4100_4000n, level: 3, entriesChanged: 1},
    ])
    expect(s.memory).toEqual([])
  })

  it('compares per input address: a block split into pages that map the same is no mapping change, but its table appears', () => {
    const {machine: a, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal', {granularity: '2M'})
    const b = copy(a)
    // protect one page read-only (splitting the block into 512 pages), then give it its permissions back
    b.mapper!.protect(0x4000_3000n, PAGE, {perm: 'r'})
    b.mapper!.protect(0x4000_3000n, PAGE, {perm: 'rwx'})
    const d = diffMachines({machine: a}, {machine: b})
    expect(d.mappings).toEqual([])
    expect(d.tables).toEqual([
      {change: 'changed', address: 0x4100_1000n, level: 2, entriesChanged: 1},
      {change: 'appeared', address: 0x4100_2000n, level: 3, entriesChanged: 512},
    ])
    expect(d.same).toBe(false)
  })

  it('reports a table that disappeared (coalesced) and its page kept out of the memory changes', () => {
    const {machine: a, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal', {granularity: 'page'})
    const b = copy(a)
    b.mapper!.coalesce()
    const d = diffMachines({machine: a}, {machine: b})
    expect(d.mappings).toEqual([])
    expect(d.mapper?.fields).toEqual(['orphanedTables'])
    // the L3 table is unreachable in B but still holds its bytes: no entry of it changed
    expect(d.tables).toEqual([
      {change: 'changed', address: 0x4100_1000n, level: 2, entriesChanged: 1},
      {change: 'disappeared', address: 0x4100_2000n, level: 3, entriesChanged: 0},
    ])
    expect(d.memory).toEqual([])
  })

  it("compares table pages as each machine's memory holds them: a side's page list is not asked for them again", () => {
    const {machine: a, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, BLOCK, 'normal', {granularity: 'page'})
    const b = copy(a)
    b.mapper!.protect(0x4000_0000n, PAGE, {perm: 'r'})
    // page lists that read as the memory does, and count the reads of table pages
    const tables = new Set([...a.tablePages().keys(), ...b.tablePages().keys()])
    let tableReads = 0
    const counted = (list: PageList): PageList => ({
      ...list,
      read: (i) => {
        if (tables.has(list.frame(i))) tableReads++
        return list.read(i)
      },
      readRun: undefined,
    })
    const d = diffMachines({machine: a, pages: counted(memoryPages(a.memory))}, {machine: b, pages: counted(memoryPages(b.memory))})
    expect(d.tables).toEqual([{change: 'changed', address: 0x4100_2000n, level: 3, entriesChanged: 1}])
    expect(d.memory).toEqual([])
    expect(tableReads).toBe(0)
  })

  it('reports other memory as ranges of changed bytes, with how many bytes differ', () => {
    const a = defaultMachine()
    a.memory.write(0x4180_0000n, 8, 0x1122_3344_5566_7788n)
    const b = copy(a)
    b.memory.write(0x4180_0000n, 8, 0x1122_3344_0066_7700n) // bytes 0 and 3 change: one range
    b.memory.write(0x4200_0ffcn, 8, 0xffff_ffff_ffff_ffffn) // across a page boundary, into a new page
    b.memory.write(0x4500_0000n, 1, 0x5an) // a page only B holds
    a.memory.write(0x4600_0010n, 2, 0xabcdn) // a page only A holds
    const d = diffMachines({machine: a}, {machine: b})
    expect(d.memory).toEqual([
      {address: 0x4180_0000n, length: 4, differing: 2},
      {address: 0x4200_0ffcn, length: 8, differing: 8},
      {address: 0x4500_0000n, length: 1, differing: 1},
      {address: 0x4600_0010n, length: 2, differing: 2},
    ])
    expect(summary(d)).toEqual({...EMPTY, same: false, memory: d.memory})
  })
})

/** A page list over a map of frame -> bytes, with optional (possibly lying) CRCs. */
function listOf(pages: Map<number, Uint8Array>, crc?: (frame: number) => number): PageList {
  const frames = [...pages.keys()].sort((x, y) => x - y)
  return {
    count: frames.length,
    frame: (i) => frames[i]!,
    read: (i) => pages.get(frames[i]!)!,
    ...(crc === undefined ? {} : {crc: (i: number) => crc(frames[i]!)}),
  }
}

function page(bytes: Record<number, number>): Uint8Array {
  const p = new Uint8Array(4096)
  for (const [offset, value] of Object.entries(bytes)) p[Number(offset)] = value
  return p
}

describe('diffMemory', () => {
  it(`merges runs fewer than ${MERGE_GAP} equal bytes apart, and no others`, () => {
    const a = listOf(new Map([[0x41000, page({})]]))
    const b = listOf(new Map([[0x41000, page({0: 1, 8: 1, 17: 1, 4095: 1})]]))
    expect(diffMemory(a, b, new Set())).toEqual([
      {address: 0x4100_0000n, length: 9, differing: 2}, // 7 equal bytes between: one range
      {address: 0x4100_0011n, length: 1, differing: 1}, // 8 equal bytes from the last: a new range
      {address: 0x4100_0fffn, length: 1, differing: 1},
    ])
  })

  it('merges a run across a page boundary and keeps pages in `skip` out', () => {
    const a = listOf(new Map())
    const b = listOf(
      new Map([
        [0x41000, page({4095: 1})],
        [0x41001, page({0: 2, 100: 3})],
        [0x41002, page({0: 4})],
      ]),
    )
    expect(diffMemory(a, b, new Set())).toEqual([
      {address: 0x4100_0fffn, length: 2, differing: 2},
      {address: 0x4100_1064n, length: 1, differing: 1},
      {address: 0x4100_2000n, length: 1, differing: 1},
    ])
    expect(diffMemory(a, b, new Set([0x41001]))).toEqual([
      {address: 0x4100_0fffn, length: 1, differing: 1},
      {address: 0x4100_2000n, length: 1, differing: 1},
    ])
  })

  it('compares the bytes of pages whose CRCs are equal (an equal CRC is no proof), and trusts different ones', () => {
    const a = new Map([[0x41000, page({5: 1})]])
    const b = new Map([[0x41000, page({5: 2})]])
    expect(
      diffMemory(
        listOf(a, () => 7),
        listOf(b, () => 7),
        new Set(),
      ),
    ).toEqual([{address: 0x4100_0005n, length: 1, differing: 1}])
    // CRCs that differ send the page to the byte scan, which finds what differs (here nothing)
    let crc = 0
    expect(
      diffMemory(
        listOf(a, () => crc++),
        listOf(new Map(a), () => crc++),
        new Set(),
      ),
    ).toEqual([])
  })

  it('reports progress, ending with the total', () => {
    const pages = new Map(Array.from({length: 600}, (_, i) => [0x41000 + i, page({0: 1})] as [number, Uint8Array]))
    const calls: Array<[number, number]> = []
    diffMemory(listOf(pages), listOf(new Map()), new Set(), (done, total) => calls.push([done, total]))
    expect(calls).toEqual([
      [256, 600],
      [512, 600],
      [600, 600],
    ])
  })

  it('reads a list in runs into one reused buffer when it can', () => {
    const stored = new Map([
      [0x41000, page({1: 1})],
      [0x41001, page({2: 2})],
      [0x41003, page({3: 3})],
    ])
    const base = listOf(stored)
    const runs: Array<[number, number]> = []
    const buffers = new Set<ArrayBufferLike>()
    const withRuns: PageList = {
      ...base,
      readRun: (first, count, into) => {
        runs.push([first, count])
        const out = into!.subarray(0, count * 4096)
        for (let k = 0; k < count; k++) out.set(base.read(first + k), k * 4096)
        buffers.add(out.buffer)
        return out
      },
    }
    expect(diffMemory(withRuns, listOf(new Map()), new Set())).toEqual([
      {address: 0x4100_0001n, length: 1, differing: 1},
      {address: 0x4100_1002n, length: 1, differing: 1},
      {address: 0x4100_3003n, length: 1, differing: 1},
    ])
    expect(runs).toEqual([[0, 3]])
    expect(buffers.size).toBe(1)
  })

  it('reads runs unchecked from a list that checks pages, and checks every page it uses (one side of an equal pair)', () => {
    /** A list that reads runs unchecked only when asked, and records the pages it checks (by frame) with their first bytes; CRC: the first byte. */
    function checking(pages: Map<number, Uint8Array>, checked: Array<[number, number]>, damaged = new Set<number>()): PageList {
      const base = listOf(pages, (frame) => pages.get(frame)![0]!)
      return {
        ...base,
        readRun: (first, count, into, unchecked) => {
          expect(unchecked).toBe(true)
          const out = into!.subarray(0, count * 4096)
          for (let k = 0; k < count; k++) out.set(base.read(first + k), k * 4096)
          return out
        },
        check: (i, bytes) => {
          checked.push([base.frame(i), bytes[0]!])
          if (damaged.has(base.frame(i))) throw new Error(`page ${base.frame(i)} damaged`)
        },
      }
    }
    const a = new Map([
      [0x41000, page({0: 1})],
      [0x41001, page({0: 2, 9: 1})],
      [0x41002, page({0: 3})],
      [0x41003, page({0: 4})],
      [0x41005, page({0: 6})],
    ])
    const b = new Map([
      [0x41000, page({0: 1})],
      [0x41001, page({0: 2, 9: 2})],
      [0x41002, page({0: 9})],
      [0x41004, page({0: 5})],
      [0x41005, page({0: 6})],
    ])
    const checkedA: Array<[number, number]> = []
    const checkedB: Array<[number, number]> = []
    expect(diffMemory(checking(a, checkedA), checking(b, checkedB), new Set([0x41005]))).toEqual([
      {address: 0x4100_1009n, length: 1, differing: 1}, // equal CRCs, different bytes
      {address: 0x4100_2000n, length: 1, differing: 1}, // different CRCs
      {address: 0x4100_3000n, length: 1, differing: 1}, // only in A
      {address: 0x4100_4000n, length: 1, differing: 1}, // only in B
    ])
    // the pages each side used, each checked once with its own bytes; B's copy of an equal page (same CRC) is proven by A's, and the skipped page is not used
    expect(checkedA).toEqual([
      [0x41000, 1],
      [0x41001, 2],
      [0x41002, 3],
      [0x41003, 4],
    ])
    expect(checkedB).toEqual([
      [0x41001, 2],
      [0x41002, 9],
      [0x41004, 5],
    ])
    // a page that fails its check fails the diff, on either side
    expect(() => diffMemory(checking(a, [], new Set([0x41000])), checking(b, []), new Set())).toThrow('page 266240 damaged')
    expect(() => diffMemory(checking(a, []), checking(b, [], new Set([0x41002])), new Set())).toThrow('page 266242 damaged')
  })

  it('compares runs of pages at the same frames with the same CRCs in one go, checking A’s run once (checkRun)', () => {
    /** A list of the frames 0x41000.. holding `pages`, CRC the first byte, recording its checks. */
    function runs(pages: Uint8Array[], log: string[]): PageList {
      const stored = new Map(pages.map((p, k) => [0x41000 + k, p] as [number, Uint8Array]))
      const base = listOf(stored, (frame) => stored.get(frame)![0]!)
      return {
        ...base,
        readRun: (first, count, into) => {
          const out = into!.subarray(0, count * 4096)
          for (let k = 0; k < count; k++) out.set(base.read(first + k), k * 4096)
          return out
        },
        check: (i, bytes) => void log.push(`check ${i} ${bytes[0]}`),
        checkRun: (first, count, run) => void log.push(`run ${first}+${count} ${run.length / 4096} ${run[0]}`),
      }
    }
    const pages = Array.from({length: 20}, (_, k) => page({0: k + 1, 4000: 7}))
    const logA: string[] = []
    const logB: string[] = []
    expect(
      diffMemory(
        runs(pages, logA),
        runs(
          pages.map((p) => new Uint8Array(p)),
          logB,
        ),
        new Set([0x41012]),
      ),
    ).toEqual([])
    // runs of 16 pages are read; page 18 (0x41012) is skipped, so the second run splits around it
    expect(logA).toEqual(['run 0+16 16 1', 'run 16+2 2 17', 'check 19 20'])
    expect(logB).toEqual([])
    // a difference in page 5: that run is compared page by page (and not retried as a shorter run)
    const changed = pages.map((p) => new Uint8Array(p))
    changed[5]![4000] = 8
    logA.length = 0
    expect(diffMemory(runs(pages, logA), runs(changed, logB), new Set())).toEqual([{address: 0x4100_5fa0n, length: 1, differing: 1}])
    expect(logA).toEqual([...Array.from({length: 16}, (_, k) => `check ${k} ${k + 1}`), 'run 16+4 4 17'])
    expect(logB).toEqual(['check 5 6'])
  })

  /** The reference: every differing byte, one at a time, merged by the same gap rule. */
  function naive(a: Map<number, Uint8Array>, b: Map<number, Uint8Array>): ByteRange[] {
    const frames = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y)
    const out: Array<{start: number; end: number; differing: number}> = []
    for (const frame of frames) {
      for (let k = 0; k < 4096; k++) {
        if ((a.get(frame)?.[k] ?? 0) === (b.get(frame)?.[k] ?? 0)) continue
        const at = frame * 4096 + k
        const last = out.at(-1)
        if (last !== undefined && at - last.end < MERGE_GAP) {
          last.end = at + 1
          last.differing++
        } else out.push({start: at, end: at + 1, differing: 1})
      }
    }
    return out.map((r) => ({address: BigInt(r.start), length: r.end - r.start, differing: r.differing}))
  }

  it('agrees with a byte-by-byte reference on random pages (property)', () => {
    const edits = fc.array(fc.tuple(fc.integer({min: 0, max: 3}), fc.integer({min: 0, max: 4095}), fc.integer({min: 0, max: 255})), {maxLength: 40})
    fc.assert(
      fc.property(edits, edits, fc.boolean(), (ea, eb, sharedBase) => {
        const a = new Map<number, Uint8Array>()
        const b = new Map<number, Uint8Array>()
        const apply = (pages: Map<number, Uint8Array>, edits: Array<[number, number, number]>): void => {
          for (const [frame, offset, value] of edits) {
            const p = pages.get(0x41000 + frame) ?? new Uint8Array(4096)
            p[offset] = value
            pages.set(0x41000 + frame, p)
          }
        }
        apply(a, ea)
        if (sharedBase) for (const [f, p] of a) b.set(f, new Uint8Array(p))
        apply(b, eb)
        // only non-zero pages are stored
        for (const pages of [a, b]) for (const [f, p] of pages) if (p.every((x) => x === 0)) pages.delete(f)
        expect(diffMemory(listOf(a), listOf(b), new Set())).toEqual(naive(a, b))
      }),
      {numRuns: 300},
    )
  })
})

describe('diffMappings', () => {
  const WINDOW = 0x4000_0000n // the operations touch [1 GiB, 1 GiB + 8 MiB)
  const PAGES = 2048

  /** Each 4 KiB page of the window as a walk maps it: output address and attribute bits (block/page bit aside), or undefined. */
  function perPage(entries: readonly WalkEntry[]): Array<string | undefined> {
    const out: Array<string | undefined> = new Array(PAGES).fill(undefined)
    for (const e of entries) {
      const leaf = e.decoded.leaf
      if (leaf === undefined) continue
      for (let at = e.ipa; at < e.ipa + e.size; at += PAGE) {
        const k = Number((at - WINDOW) / PAGE)
        if (k >= 0 && k < PAGES) out[k] = `${leaf.outputAddress + (at - e.ipa)}:${e.decoded.raw & ~ADDRESS_MASK & ~TABLE_OR_PAGE}`
      }
    }
    return out
  }

  type Op =
    {op: 'map'; page: number; pages: number; pa: number; granularity: 'page' | '2M'} | {op: 'unmap'; page: number; pages: number} | {op: 'protect'; page: number; pages: number; perm: Permission}
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      op: fc.constant('map' as const),
      page: fc.integer({min: 0, max: PAGES - 1}),
      pages: fc.integer({min: 1, max: 1024}),
      pa: fc.integer({min: 0, max: 3}),
      granularity: fc.constantFrom('page' as const, '2M' as const),
    }),
    fc.record({op: fc.constant('unmap' as const), page: fc.integer({min: 0, max: PAGES - 1}), pages: fc.integer({min: 1, max: 600})}),
    fc.record({op: fc.constant('protect' as const), page: fc.integer({min: 0, max: PAGES - 1}), pages: fc.integer({min: 1, max: 600}), perm: fc.constantFrom<Permission>('r', 'rw', 'rx', 'rwx')}),
  )

  function apply(machine: Machine, ops: readonly Op[]): void {
    const m = machine.ensureMapper({l2Budget: 512}).mapper
    for (const o of ops) {
      const ipa = WINDOW + BigInt(o.page) * PAGE
      const size = BigInt(Math.min(o.pages, PAGES - o.page)) * PAGE
      try {
        if (o.op === 'map') m.mapRegion(ipa, size, 'normal', {pa: ipa + BigInt(o.pa) * 0x4000_0000n, granularity: o.granularity, replace: true})
        else if (o.op === 'unmap') m.unmap(ipa, size)
        else m.protect(ipa, size, {perm: o.perm})
      } catch {
        // a protect of unmapped pages is refused and changes nothing
      }
    }
  }

  it('classifies every page as a per-page comparison does, in ordered, disjoint ranges (property)', () => {
    let changed = 0
    fc.assert(
      fc.property(fc.array(op, {maxLength: 5}), fc.array(op, {maxLength: 4}), (common, more) => {
        const a = defaultMachine()
        apply(a, common)
        const b = copy(a)
        apply(b, more)
        const walkA = walkEntries(a.memory, a.mapper!.regime, a.mapper!.root, a.mapper!.geometry)
        const walkB = walkEntries(b.memory, b.mapper!.regime, b.mapper!.root, b.mapper!.geometry)
        const changes = diffMappings(mappingsOf(a), mappingsOf(b))
        const pagesA = perPage(walkA)
        const pagesB = perPage(walkB)
        const expected = pagesA.map((x, k) => {
          const y = pagesB[k]
          return x === y ? undefined : x === undefined ? 'added' : y === undefined ? 'removed' : 'changed'
        })
        const actual: Array<string | undefined> = new Array(PAGES).fill(undefined)
        let previousEnd = 0n
        for (const c of changes) {
          expect(c.start).toBeGreaterThanOrEqual(previousEnd)
          expect(c.end).toBeGreaterThan(c.start)
          previousEnd = c.end
          for (let at = c.start; at < c.end; at += PAGE) actual[Number((at - WINDOW) / PAGE)] = c.change
          // each side's first address maps as the change says
          if (c.old !== undefined) expect(`${c.old.outputStart}:${c.old.decoded.raw & ~ADDRESS_MASK & ~TABLE_OR_PAGE}`).toBe(pagesA[Number((c.start - WINDOW) / PAGE)])
          if (c.new !== undefined) expect(`${c.new.outputStart}:${c.new.decoded.raw & ~ADDRESS_MASK & ~TABLE_OR_PAGE}`).toBe(pagesB[Number((c.start - WINDOW) / PAGE)])
        }
        expect(actual).toEqual(expected)
        if (changes.length > 0) changed++
      }),
      {numRuns: 60},
    )
    // the runs are not vacuous: most of them change some mapping
    expect(changed).toBeGreaterThan(20)
  })
})

describe('helpers', () => {
  it('bytesAt reads across pages, zero where nothing is stored', () => {
    const list = listOf(new Map([[0x41001, page({0: 0xaa, 1: 0xbb})]]))
    expect([...bytesAt(list, 0x4100_0ffen, 4)]).toEqual([0, 0, 0xaa, 0xbb])
  })

  it('Machine.tablePages lists the root and every table a walk reaches, with levels', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, PAGE, 'normal')
    expect([...machine.tablePages()]).toEqual([
      [0x41000, 1],
      [0x41001, 2],
      [0x41002, 3],
    ])
    expect(memoryPages(machine.memory).count).toBe(3)
    expect(defaultMachine().tablePages().size).toBe(0)
  })

  it('Machine.tablePages without a walk lists what it lists from one: an alias once, a table outside RAM not at all', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, PAGE, 'normal')
    machine.memory.writeU64(0x4100_0000n + 2n * 8n, tableDescriptor(0x4100_1000n))
    machine.memory.writeU64(0x4100_0000n + 3n * 8n, tableDescriptor(0x10_0000_0000n))
    const expected = [
      [0x41000, 1],
      [0x41001, 2],
      [0x41002, 3],
    ]
    expect([...machine.tablePages()]).toEqual(expected)
    expect([...machine.tablePages(machine.walkTables())]).toEqual(expected)
  })

  // tablePages() scans the table entries alone (pages of leaves and runs of blocks a page at a time);
  // tablePages(entries) reads them from a walk: the same pages, levels and order, for random tables
  it('Machine.tablePages from its own scan is what it is from a walk, for random tables (blocks, runs, aliases, loops)', () => {
    const tables = [0x4100_0000n, 0x4100_1000n, 0x4100_2000n, 0x4100_3000n]
    const descriptor = fc.oneof(
      fc.constantFrom(...tables, 0x10_0000_0000n).map((t) => tableDescriptor(t)),
      fc.constantFrom(0x7fdn, 0x7ffn, 0x405n).chain((bits) => fc.bigInt({min: 0n, max: (1n << 30n) - 1n}).map((frame) => (frame << 12n) | bits)),
      fc.bigInt({min: 0n, max: (1n << 64n) - 1n}),
    )
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...tables), fc.integer({min: 0, max: 511}), descriptor, fc.integer({min: 1, max: 20})), {maxLength: 12}), (writes) => {
        const {machine, mapper} = mappedMachine()
        mapper.mapRegion(0x4000_0000n, 0x40_0000n, 'normal', {granularity: 'page'})
        for (const [table, index, value, run] of writes) {
          for (let i = 0; i < run && index + i < 512; i++) machine.memory.writeU64(table + 8n * BigInt(index + i), (value + BigInt(i) * ((value & 2n) === 0n ? BLOCK : PAGE)) & ((1n << 64n) - 1n))
        }
        expect([...machine.tablePages()]).toEqual([...machine.tablePages(machine.walkTables())])
      }),
      {numRuns: 200},
    )
  })

  it('Machine.tablePages: a table reached again at another level keeps the level it was first reached at, as a walk lists it', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, PAGE, 'normal')
    // L2[5] (in 0x4100_1000) points back at the root as if it were an L3 table
    machine.memory.writeU64(0x4100_1000n + 5n * 8n, tableDescriptor(0x4100_0000n))
    const expected = [
      [0x41000, 1],
      [0x41001, 2],
      [0x41002, 3],
    ]
    expect([...machine.tablePages(machine.walkTables())]).toEqual(expected)
    expect([...machine.tablePages()]).toEqual(expected)
  })
})
