/** Format version 5: records appended to a base, applied in order; an unfinished append at the end is ignored. */
import {crc32} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import type {Machine} from '../../src/core/machine.js'
import {
  HEADER_BYTES,
  MAGIC,
  RECORD_ENTRY_BYTES,
  RECORD_FIXED_BYTES,
  RECORD_HEADER_BYTES,
  RECORD_MAGIC,
  type Decoded,
  bufferSource,
  decodeSnapshot,
  decodeSource,
  encodeRecord,
  encodeSnapshot,
  snapshotBatches,
} from '../../src/snapshot/format.js'
import {damagedPages} from '../../src/snapshot/verify.js'
import {HEAP_BASE, PAGE, RAM_BASE, expectHvmemError, newMachine} from './fixtures.js'

const NAME = 'j.snap'
const PAGE_BYTES = 4096

/** A machine with three data pages and a heap allocation. */
function baseMachine(): Machine {
  const m = newMachine()
  m.heap.allocPage()
  m.memory.write(HEAP_BASE, 8, 0x1122_3344_5566_7788n)
  m.memory.write(RAM_BASE, 4, 0xdead_beefn)
  m.memory.write(RAM_BASE + PAGE, 1, 0x5an)
  m.memory.write(RAM_BASE + 2n * PAGE, 1, 0x77n)
  return m
}

/** A version-5 base file (journalFrom 0: any size). */
function base(m: Machine = baseMachine()): Buffer {
  return Buffer.concat([...snapshotBatches(m, {journalFrom: 0})].flat())
}

function lazy(data: Buffer): Decoded {
  return decodeSource(bufferSource(data), NAME, 'lazy')
}

/** The change the tests append: one byte written, one page zeroed, one page new, a heap allocation. */
function change(m: Machine): void {
  m.memory.write(RAM_BASE + 1n, 1, 0x01n)
  m.memory.zero(RAM_BASE + PAGE, PAGE)
  m.memory.write(RAM_BASE + 9n * PAGE, 2, 0xbeefn)
  m.heap.alloc(64n)
}

/** `data` with one record appended: the change made to a lazy load of it. */
function appended(data: Buffer, edit: (m: Machine) => void = change): Buffer {
  const d = lazy(data)
  edit(d.machine)
  const record = encodeRecord(d.machine, d.pages!)
  const out = Buffer.concat([data, ...record.parts])
  expect(out.length).toBe(data.length + record.length)
  return out
}

/** What a machine holds, as a version-3/4 file: equal files, equal snapshots. */
function canonical(m: Machine): Buffer {
  return encodeSnapshot(m)
}

describe('format 5: base and records', () => {
  it('a base is a version-4 layout with version 5 and no records', () => {
    const data = base()
    expect(data.subarray(0, 8).equals(MAGIC)).toBe(true)
    expect(data.readUInt32LE(8)).toBe(5)
    const d = lazy(data)
    expect(d.version).toBe(5)
    expect(d.journal).toEqual({baseBytes: data.length, records: 0, recordBytes: 0, end: data.length, unfinished: 0})
    expect(canonical(d.machine).equals(canonical(baseMachine()))).toBe(true)
  })

  it('without journalFrom, or below it, a save writes version 3 exactly as before', () => {
    const m = baseMachine()
    const v3 = encodeSnapshot(m)
    expect(v3.readUInt32LE(8)).toBe(3)
    expect(Buffer.concat([...snapshotBatches(m, {journalFrom: v3.length + 1})].flat()).equals(v3)).toBe(true)
    expect(Buffer.concat([...snapshotBatches(m, {journalFrom: v3.length})].flat()).readUInt32LE(8)).toBe(5)
  })

  it('a record holds the changed pages and the header, byte by byte as documented', () => {
    const data = base()
    const file = appended(data)
    const r = file.subarray(data.length)
    expect(r.subarray(0, 8).equals(RECORD_MAGIC)).toBe(true)
    expect(r.readBigUInt64LE(8)).toBe(BigInt(r.length))
    const entries = r.readUInt32LE(20)
    // page 0 changed, page 1 now zero, page 9 new
    expect(entries).toBe(3)
    const metaEnd = RECORD_FIXED_BYTES + entries * RECORD_ENTRY_BYTES
    expect(r.length).toBe(metaEnd + 2 * PAGE_BYTES)
    expect(r.readUInt32LE(16)).toBe(crc32(r.subarray(20, metaEnd), crc32(r.subarray(8, 16))))
    const header = r.subarray(RECORD_HEADER_BYTES, RECORD_FIXED_BYTES)
    expect(header.subarray(0, 8).equals(MAGIC)).toBe(true)
    expect(header.readUInt32LE(8)).toBe(5)
    expect(header.readUInt32LE(12)).toBe(HEADER_BYTES)
    // pages after: base's 4, one zeroed, one new
    expect(header.readBigUInt64LE(80)).toBe(4n)
    expect(header.readUInt32LE(124)).toBe(0)
    const entry = (i: number): [bigint, number, number] => {
      const at = RECORD_FIXED_BYTES + i * RECORD_ENTRY_BYTES
      return [r.readBigUInt64LE(at), r.readUInt32LE(at + 8), r.readUInt32LE(at + 12)]
    }
    const page0 = r.subarray(metaEnd, metaEnd + PAGE_BYTES)
    const page9 = r.subarray(metaEnd + PAGE_BYTES)
    expect(entry(0)).toEqual([RAM_BASE, crc32(page0), 0])
    expect(entry(1)).toEqual([RAM_BASE + PAGE, 0, 1])
    expect(entry(2)).toEqual([RAM_BASE + 9n * PAGE, crc32(page9), 0])
    expect(page0.readUInt32LE(0)).toBe(0xdead_01ef)
    expect(page9.readUInt16LE(0)).toBe(0xbeef)
  })

  it('loading applies the records in order: the same snapshot as making the changes in memory', () => {
    const expected = baseMachine()
    change(expected)
    expected.memory.write(RAM_BASE + 2n * PAGE, 1, 0n)
    expected.memory.write(RAM_BASE + PAGE, 8, 0x42n)
    const file = appended(appended(base()), (m) => {
      m.memory.write(RAM_BASE + 2n * PAGE, 1, 0n)
      m.memory.write(RAM_BASE + PAGE, 8, 0x42n)
    })
    const d = lazy(file)
    expect(d.journal?.records).toBe(2)
    expect(canonical(d.machine).equals(canonical(expected))).toBe(true)
    expect(canonical(decodeSnapshot(file, NAME)).equals(canonical(expected))).toBe(true)
    expect(d.pages!.count).toBe(4)
    expect(d.machine.state().heap).toEqual(expected.state().heap)
  })

  it('a record page between base pages: runs are read page by page where they are not contiguous in the file', () => {
    const file = appended(base(), (m) => m.memory.write(RAM_BASE + PAGE + 5n, 1, 0x66n))
    const d = lazy(file)
    expect(damagedPages(d.pages!)).toEqual([])
    const run = d.pages!.readRun!(0, 4)
    expect(run[PAGE_BYTES + 5]).toBe(0x66)
    expect(run[0]).toBe(0xef)
    expect(run[2 * PAGE_BYTES]).toBe(0x77)
    expect(decodeSnapshot(file, NAME).memory.read(RAM_BASE + PAGE + 5n, 1)).toBe(0x66n)
  })

  it('a change that touches nothing stored still records the header (a heap allocation)', () => {
    const file = appended(base(), (m) => void m.heap.alloc(8n))
    const d = lazy(file)
    expect(d.journal?.records).toBe(1)
    expect(d.machine.state().heap.next).toBe(baseMachine().state().heap.next + 8n)
  })
})

describe('format 5: an unfinished append is ignored', () => {
  it('a file cut anywhere inside its last record reads as before that record', () => {
    const data = base()
    const before = canonical(lazy(data).machine)
    const file = appended(data)
    const cuts = new Set([data.length + 1, data.length + 7, data.length + 8, data.length + RECORD_HEADER_BYTES - 1, data.length + RECORD_HEADER_BYTES, file.length - 1])
    for (let cut = data.length; cut < file.length; cut += 331) cuts.add(cut)
    for (const cut of cuts) {
      const d = lazy(file.subarray(0, cut))
      expect(d.journal?.records, `cut at ${cut}`).toBe(0)
      expect(d.journal?.unfinished).toBe(cut - data.length)
      expect(canonical(d.machine).equals(before), `cut at ${cut}`).toBe(true)
    }
  })

  it('a whole record whose magic is still zero (written but not committed) is ignored', () => {
    const data = base()
    const file = appended(data)
    file.fill(0, data.length, data.length + 8)
    const d = lazy(file)
    expect(d.journal).toMatchObject({records: 0, end: data.length, unfinished: file.length - data.length})
  })

  it('a cut second record leaves the first applied', () => {
    const one = appended(base())
    const two = appended(one, (m) => m.memory.write(RAM_BASE, 1, 0x99n))
    const d = lazy(two.subarray(0, two.length - 100))
    expect(d.journal).toMatchObject({records: 1, end: one.length, unfinished: two.length - 100 - one.length})
    expect(canonical(d.machine).equals(canonical(lazy(one).machine))).toBe(true)
  })
})

describe('format 5: damage is an error', () => {
  it('a complete record with a bad CRC', () => {
    const data = base()
    const file = appended(data)
    file[data.length + RECORD_HEADER_BYTES + 40]! ^= 1
    expectHvmemError(() => lazy(file), 'snapshot-invalid', `record 1 (at byte ${data.length}) checksum mismatch`)
  })

  it('a wrong magic', () => {
    const data = base()
    const file = appended(data)
    file[data.length]! ^= 1
    expectHvmemError(() => lazy(file), 'snapshot-invalid', 'has a wrong magic')
  })

  it('bad bytes in a record before the last one', () => {
    const one = appended(base())
    const at = lazy(one).journal!.baseBytes
    const two = appended(one, (m) => m.memory.write(RAM_BASE, 1, 0x99n))
    two[at + RECORD_FIXED_BYTES + 3]! ^= 0x10
    expectHvmemError(() => lazy(two), 'snapshot-invalid', 'record 1')
  })

  it('a damaged page in a record: its read fails, and verify names it', () => {
    const data = base()
    const file = appended(data)
    // the first stored page of the record (RAM_BASE)
    file[file.length - 2 * PAGE_BYTES + 3]! ^= 1
    const d = lazy(file)
    expectHvmemError(() => d.machine.memory.read(RAM_BASE, 1), 'snapshot-invalid', 'page 0x40000000 checksum mismatch')
    expect(damagedPages(d.pages!).map((p) => p.address)).toEqual([RAM_BASE])
    expectHvmemError(() => decodeSnapshot(file, NAME), 'snapshot-invalid', 'page 0x40000000 checksum mismatch')
  })

  it('a record whose page count disagrees with its pages', () => {
    const data = base()
    const file = appended(data)
    const r = data.length
    file.writeBigUInt64LE(9n, r + RECORD_HEADER_BYTES + 80)
    const metaEnd = RECORD_FIXED_BYTES + 3 * RECORD_ENTRY_BYTES
    file.writeUInt32LE(crc32(file.subarray(r + 20, r + metaEnd), crc32(file.subarray(r + 8, r + 16))), r + 16)
    expectHvmemError(() => lazy(file), 'snapshot-invalid', 'the last record says 9 pages')
  })

  it('a base shorter than its header says', () => {
    const data = base()
    expectHvmemError(() => lazy(data.subarray(0, data.length - 1)), 'snapshot-invalid', 'truncated or damaged')
  })
})
