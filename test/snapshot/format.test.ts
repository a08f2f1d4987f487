import {createHash} from 'node:crypto'
import {crc32} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import {HvmemError} from '../../src/core/errors.js'
import {Machine} from '../../src/core/machine.js'
import {FORMAT_VERSION, HEADER_BYTES, INDEX_ENTRY_BYTES, MAGIC, META_CRC_OFFSET, bufferSource, decodeSnapshot, decodeSource, encodeSnapshot, snapshotBatches} from '../../src/snapshot/format.js'
import {HEAP_BASE, HEAP_SIZE, PAGE, RAM_BASE, RAM_SIZE, V1_GOLDEN_HEX, V1_ONE_PAGE_SHA256, dataStart, encodeV1, expectHvmemError, newMachine, patched, patchedV1} from './fixtures.js'

const NAME = '/some dir/test.snap'
const PAGE_BYTES = 4096
/** What a stored page costs in a version-2 file: a 16-byte index entry and its 4096 bytes. */
const RECORD = INDEX_ENTRY_BYTES + PAGE_BYTES
const V1_ENTRY = 8 + PAGE_BYTES

/** Exact layout of the machine built by richMachine(). */
const FIRST_PAGE = HEAP_BASE // allocPage
const BYTES_100 = HEAP_BASE + 0x1000n // alloc(100)
const ALIGNED_64 = HEAP_BASE + 0x2000n // allocAligned(64, 4096): allocated, never written
const ROOT = HEAP_BASE + 0x3000n // the mapper's L1 table
const L2_NORMAL = HEAP_BASE + 0x4000n // L2 table for L1[1], 0x4000_0000-0x8000_0000
const L2_DEVICE = HEAP_BASE + 0x5000n // L2 table for L1[0], the device block
const NORMAL_SIZE = 4n << 20n // two 2 MiB blocks at RAM_BASE
const DEVICE_BLOCK = 0x0900_0000n
const CROSSING = RAM_BASE + 0x2_0ffen // a 4-byte write spanning two pages
const LAST_BYTE = RAM_BASE + RAM_SIZE - 1n
const ZEROED_AGAIN = RAM_BASE + 0x5_0000n // written, then overwritten with zeros: not stored
const EXPECTED_PAGES = [CROSSING & ~0xfffn, (CROSSING & ~0xfffn) + PAGE, FIRST_PAGE, BYTES_100, ROOT, L2_NORMAL, L2_DEVICE, LAST_BYTE & ~0xfffn]
const EXPECTED_NEXT = HEAP_BASE + 0x6000n
const EXPECTED_ALLOCATED = 4096n + 100n + 64n + 3n * 4096n

function richMachine(): Machine {
  const m = newMachine()
  expect(m.heap.allocPage()).toBe(FIRST_PAGE)
  expect(m.heap.alloc(100n)).toBe(BYTES_100)
  expect(m.heap.allocAligned(64n, PAGE)).toBe(ALIGNED_64)
  const {mapper, created} = m.ensureMapper({vmid: 7, l2Budget: 8})
  expect(created).toBe(true)
  expect(mapper.root).toBe(ROOT)
  expect(mapper.mapRegion(RAM_BASE, NORMAL_SIZE, 'normal').newTables).toEqual([L2_NORMAL])
  expect(mapper.mapRegion(DEVICE_BLOCK, 2n << 20n, 'device').newTables).toEqual([L2_DEVICE])
  m.memory.write(FIRST_PAGE, 8, 0x1122_3344_5566_7788n)
  m.memory.writeBytes(
    BYTES_100,
    Uint8Array.from({length: 100}, (_, i) => i + 1),
  )
  m.memory.write(CROSSING, 4, 0xdead_beefn)
  m.memory.write(LAST_BYTE, 1, 0xaan)
  m.memory.writeBytes(ZEROED_AGAIN, Uint8Array.of(1, 2, 3))
  m.memory.writeBytes(ZEROED_AGAIN, Uint8Array.of(0, 0, 0))
  expect(m.memory.hasPage(ZEROED_AGAIN)).toBe(true)
  return m
}

/** A stage-2 mapper (VMID 3, budget 2) whose root table is allocated but still all zeros; heap next 0x4100100a. */
function emptyMachine(): Machine {
  const m = newMachine()
  m.ensureMapper({vmid: 3, l2Budget: 2})
  m.heap.alloc(10n)
  return m
}

/** No pages: 128 bytes. */
function emptySnapshot(): Buffer {
  return encodeSnapshot(emptyMachine())
}

/** One page at HEAP_BASE (0x01020304 at +0x10), heap next HEAP_BASE + 0x1006, no mapper. */
function onePageMachine(): Machine {
  const m = newMachine()
  const page = m.heap.allocPage()
  m.heap.alloc(6n)
  m.memory.write(page + 0x10n, 4, 0x0102_0304n)
  return m
}

/** One page, no mapper: 4240 bytes. */
function onePageSnapshot(): Buffer {
  return encodeSnapshot(onePageMachine())
}

/** Two pages, no mapper: for ordering checks. */
function twoPageSnapshot(): Buffer {
  const m = newMachine()
  m.memory.write(RAM_BASE, 1, 1n)
  m.memory.write(RAM_BASE + 0x3000n, 1, 2n)
  return encodeSnapshot(m)
}

function pagesAsHex(m: Machine): Array<[bigint, string]> {
  return m.memory.nonZeroPages().map(([address, bytes]) => [address, Buffer.from(bytes).toString('hex')])
}

describe('encodeSnapshot / decodeSnapshot: round trip', () => {
  it('restores heap status, mapper state, VTTBR and every non-zero page exactly', () => {
    const original = richMachine()
    const data = encodeSnapshot(original)
    const restored = decodeSnapshot(data, NAME)

    expect(restored.heap.status()).toEqual(original.heap.status())
    expect(restored.heap.status()).toEqual({
      start: HEAP_BASE,
      end: HEAP_BASE + HEAP_SIZE,
      size: HEAP_SIZE,
      next: EXPECTED_NEXT,
      allocated: EXPECTED_ALLOCATED,
      remaining: HEAP_BASE + HEAP_SIZE - EXPECTED_NEXT,
      padding: EXPECTED_NEXT - HEAP_BASE - EXPECTED_ALLOCATED,
    })
    expect(restored.state()).toEqual(original.state())
    expect(restored.mapper?.state).toEqual({regime: 'stage2', root: ROOT, vmid: 7, l2Budget: 8, orphanedTables: 0, granule: 4096, inputBits: 39})
    expect(restored.mapper?.vttbr()).toBe(original.mapper?.vttbr())
    expect(restored.mapper?.vttbr()).toBe((7n << 48n) | ROOT)
    expect(restored.mapper?.l2Tables()).toEqual([L2_DEVICE, L2_NORMAL])

    expect(restored.memory.nonZeroPages().map(([address]) => address)).toEqual(EXPECTED_PAGES)
    expect(pagesAsHex(restored)).toEqual(pagesAsHex(original))
    expect(restored.memory.read(FIRST_PAGE, 8)).toBe(0x1122_3344_5566_7788n)
    expect(restored.memory.read(CROSSING, 4)).toBe(0xdead_beefn)
    expect(restored.memory.read(LAST_BYTE, 1)).toBe(0xaan)
    expect(restored.memory.hasPage(ZEROED_AGAIN)).toBe(false)
  })

  it("keeps the mapper's count of unreachable table pages (header offset 88)", () => {
    const m = emptyMachine()
    Object.assign(m.mapper!.state, {orphanedTables: 5})
    const data = encodeSnapshot(m)
    expect(data.readUInt32LE(88)).toBe(5)
    expect(decodeSnapshot(data, NAME).mapper?.state).toEqual({regime: 'stage2', root: HEAP_BASE, vmid: 3, l2Budget: 2, orphanedTables: 5, granule: 4096, inputBits: 39})
  })

  it('re-encoding a decoded snapshot is byte-identical', () => {
    const data = encodeSnapshot(richMachine())
    const again = encodeSnapshot(decodeSnapshot(data, NAME))
    expect(again.length).toBe(data.length)
    expect(again.equals(data)).toBe(true)
    for (const small of [emptySnapshot(), onePageSnapshot(), twoPageSnapshot()]) {
      expect(encodeSnapshot(decodeSnapshot(small, NAME)).equals(small)).toBe(true)
    }
  })

  it('the restored mapper keeps working: re-mapping the same ranges changes no byte, the budget still counts', () => {
    const data = encodeSnapshot(richMachine())
    const restored = decodeSnapshot(data, NAME)
    const mapper = restored.ensureMapper({vmid: 7, l2Budget: 8}).mapper
    expect(mapper.mapRegion(RAM_BASE, NORMAL_SIZE, 'normal').newTables).toEqual([])
    expect(mapper.mapRegion(DEVICE_BLOCK, 2n << 20n, 'device').newTables).toEqual([])
    expect(encodeSnapshot(restored).equals(data)).toBe(true)
    expect(restored.heap.status().next).toBe(EXPECTED_NEXT)
  })

  it('the decoded machine does not share memory with the buffer it came from', () => {
    const data = encodeSnapshot(richMachine())
    const restored = decodeSnapshot(data, NAME)
    data.fill(0xee, dataStart(data))
    expect(restored.memory.read(FIRST_PAGE, 8)).toBe(0x1122_3344_5566_7788n)
  })

  it('is exactly 128 + N*(16+4096) bytes for N non-zero pages (a re-zeroed page is not stored)', () => {
    const data = encodeSnapshot(richMachine())
    expect(EXPECTED_PAGES.length).toBe(8)
    expect(data.length).toBe(128 + 8 * RECORD)
    expect(data.length).toBe(33_024)
    expect(emptySnapshot().length).toBe(128)
    expect(onePageSnapshot().length).toBe(128 + RECORD)
    expect(onePageSnapshot().length).toBe(4240)
    expect(twoPageSnapshot().length).toBe(128 + 2 * RECORD)

    const zeroed = newMachine()
    zeroed.memory.writeBytes(RAM_BASE + 0x7000n, Uint8Array.of(9, 9))
    zeroed.memory.zero(RAM_BASE + 0x7000n, 2n)
    expect(encodeSnapshot(zeroed).length).toBe(128)
  })

  it('writes every header field, index entry and checksum at its documented offset, little-endian', () => {
    const data = encodeSnapshot(richMachine())
    const n = EXPECTED_PAGES.length
    expect(data.subarray(0, 8).toString('latin1')).toBe('HVMEMSNP')
    expect(data.subarray(0, 8).equals(MAGIC)).toBe(true)
    expect(data.readUInt32LE(8)).toBe(3)
    expect(FORMAT_VERSION).toBe(5) // the newest read; a snapshot without recorded registers, with a heap, is written as 3
    expect(data.readUInt32LE(12)).toBe(128)
    expect(HEADER_BYTES).toBe(128)
    expect(data.readBigUInt64LE(16)).toBe(RAM_BASE)
    expect(data.readBigUInt64LE(24)).toBe(RAM_SIZE)
    expect(data.readBigUInt64LE(32)).toBe(HEAP_BASE)
    expect(data.readBigUInt64LE(40)).toBe(HEAP_SIZE)
    expect(data.readBigUInt64LE(48)).toBe(EXPECTED_NEXT)
    expect(data.readBigUInt64LE(56)).toBe(EXPECTED_ALLOCATED)
    expect(data.readUInt8(64)).toBe(1)
    expect(data.readUInt8(65)).toBe(1)
    expect(data.readUInt16LE(66)).toBe(7)
    expect(data.readUInt32LE(68)).toBe(8)
    expect(data.readBigUInt64LE(72)).toBe(ROOT)
    expect(data.readBigUInt64LE(80)).toBe(BigInt(n))
    expect(data.readUInt32LE(88)).toBe(0)
    expect(data.readUInt8(92)).toBe(12) // log2 of the 4 KiB granule
    expect(data.readUInt8(93)).toBe(39) // input bits
    expect([...data.subarray(94, 124)]).toEqual(new Array<number>(30).fill(0))
    expect(META_CRC_OFFSET).toBe(124)
    // little-endian: the low byte of RAM base (0x4000_0000) first
    expect([...data.subarray(16, 24)]).toEqual([0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0])

    const start = 128 + 16 * n
    expect(dataStart(data)).toBe(start)
    const entries = Array.from({length: n}, (_, i) => ({
      address: data.readBigUInt64LE(128 + 16 * i),
      crc: data.readUInt32LE(128 + 16 * i + 8),
      reserved: data.readUInt32LE(128 + 16 * i + 12),
    }))
    expect(entries.map((e) => e.address)).toEqual(EXPECTED_PAGES)
    entries.forEach((e, i) => {
      expect(e.crc).toBe(crc32(data.subarray(start + i * PAGE_BYTES, start + (i + 1) * PAGE_BYTES)))
      expect(e.reserved).toBe(0)
    })
    // the header-and-index CRC: bytes 0..123, then the index
    expect(data.readUInt32LE(124)).toBe(crc32(data.subarray(128, start), crc32(data.subarray(0, 124))))

    // the first stored page is CROSSING's: 0xdead_beef starts at offset 0xffe, so its bytes ef be
    expect([...data.subarray(start + 0xffe, start + 0x1000)]).toEqual([0xef, 0xbe])
    // the second continues it with ad de
    expect([...data.subarray(start + PAGE_BYTES, start + PAGE_BYTES + 2)]).toEqual([0xad, 0xde])
    // the third is FIRST_PAGE
    expect(data.readBigUInt64LE(start + 2 * PAGE_BYTES)).toBe(0x1122_3344_5566_7788n)
    // the last byte of the file is the last byte of RAM
    expect(data[data.length - 1]).toBe(0xaa)
  })

  it('a machine without a mapper leaves bytes 64..79 and 88..91 zero', () => {
    const data = onePageSnapshot()
    expect([...data.subarray(64, 80)]).toEqual(new Array<number>(16).fill(0))
    expect([...data.subarray(88, 92)]).toEqual([0, 0, 0, 0])
    expect(data.readBigUInt64LE(80)).toBe(1n)
    expect(decodeSnapshot(data, NAME).mapper).toBeUndefined()
  })

  it('snapshotBatches streams the same bytes: header and index first, then at most 256 pages (1 MiB) a batch', () => {
    const m = newMachine()
    for (let i = 0n; i < 300n; i++) m.memory.write(RAM_BASE + i * PAGE, 8, i + 1n)
    const chunks = [...snapshotBatches(m)].map((batch) => Buffer.concat(batch))
    expect(chunks.map((c) => c.length)).toEqual([128 + 300 * 16, 256 * PAGE_BYTES, 44 * PAGE_BYTES])
    expect(Buffer.concat(chunks).equals(encodeSnapshot(m))).toBe(true)
  })
})

/** Decodes every input; returns a description of each one not refused as 'snapshot-invalid' starting with the name. */
function misdecoded(inputs: Array<[string, Buffer]>, decode: (data: Buffer) => unknown = (data) => decodeSnapshot(data, NAME)): string[] {
  const wrong: string[] = []
  for (const [label, input] of inputs) {
    try {
      decode(input)
      wrong.push(`${label}: accepted`)
    } catch (error) {
      if (!(error instanceof HvmemError)) wrong.push(`${label}: threw ${String(error)}`)
      else if (error.kind !== 'snapshot-invalid') wrong.push(`${label}: kind ${error.kind}`)
      else if (!error.message.startsWith(`${NAME} `)) wrong.push(`${label}: message ${error.message}`)
    }
  }
  return wrong
}

function flips(data: Buffer): Array<[string, Buffer]> {
  return Array.from({length: data.length}, (_, offset) => {
    const copy = Buffer.from(data)
    copy[offset] = copy[offset]! ^ 0xff
    return [`flip at ${offset}`, copy]
  })
}

function truncations(data: Buffer): Array<[string, Buffer]> {
  return Array.from({length: data.length}, (_, length) => [`truncated to ${length}`, Buffer.from(data.subarray(0, length))])
}

function appended(data: Buffer): Array<[string, Buffer]> {
  return [
    ['appended 0x00', Buffer.concat([data, Buffer.of(0)])],
    ['appended 0xff', Buffer.concat([data, Buffer.of(0xff)])],
  ]
}

describe('decodeSnapshot: corruption is always snapshot-invalid', () => {
  // 128-byte snapshot: 128 flips + 128 truncations + 2 appends = 258 inputs.
  it('no pages: all 128 single-byte flips, all 128 truncations (0..127) and 2 appended bytes (258 inputs)', () => {
    const data = emptySnapshot()
    expect(data.length).toBe(128)
    expect(data.readUInt8(64)).toBe(1) // the mapper fields are populated, so flips there matter
    decodeSnapshot(data, NAME)
    const inputs = [...flips(data), ...truncations(data), ...appended(data)]
    expect(inputs.length).toBe(258)
    expect(misdecoded(inputs)).toEqual([])
  })

  // 4240-byte snapshot: 4240 flips + 4240 truncations + 2 appends = 8482 inputs.
  it('one page: all 4240 single-byte flips, all 4240 truncations (0..4239) and 2 appended bytes (8482 inputs)', () => {
    const data = onePageSnapshot()
    expect(data.length).toBe(4240)
    decodeSnapshot(data, NAME)
    const inputs = [...flips(data), ...truncations(data), ...appended(data)]
    expect(inputs.length).toBe(8482)
    expect(misdecoded(inputs)).toEqual([])
  })

  it('names the problem: wrong magic, truncation, header checksum, page checksum', () => {
    const data = onePageSnapshot()
    const message = (input: Buffer): string => expectHvmemError(() => decodeSnapshot(input, NAME), 'snapshot-invalid').message
    expect(message(Buffer.alloc(0))).toBe(`${NAME} is not a valid hvmem snapshot: wrong magic (not a snapshot, or damaged)`)
    expect(message(data.subarray(0, 10))).toBe(`${NAME} is not a valid hvmem snapshot: truncated (10 bytes, too short for a header)`)
    expect(message(data.subarray(0, 100))).toBe(`${NAME} is not a valid hvmem snapshot: truncated (100 bytes, a header alone needs 128)`)
    expect(message(data.subarray(0, 4239))).toBe(`${NAME} is not a valid hvmem snapshot: 4239 bytes where the header's 1 pages need 4240 (truncated or damaged)`)
    const header = Buffer.from(data)
    header[40] = header[40]! ^ 0x01
    expect(message(header)).toMatch(
      new RegExp(`^${NAME} is not a valid hvmem snapshot: header or page index checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged$`),
    )
    const page = Buffer.from(data)
    page[200] = page[200]! ^ 0xff
    expect(message(page)).toMatch(new RegExp(`^${NAME} is not a valid hvmem snapshot: page 0x41000000 checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged$`))
  })

  it('a page count far too large is refused from the file size, before anything is allocated', () => {
    for (const count of [2n, 1n << 32n, (1n << 64n) - 1n]) {
      const data = Buffer.from(onePageSnapshot())
      data.writeBigUInt64LE(count, 80)
      const need = 128n + count * 4112n
      expect(expectHvmemError(() => decodeSnapshot(data, NAME), 'snapshot-invalid').message).toBe(
        `${NAME} is not a valid hvmem snapshot: 4240 bytes where the header's ${count} pages need ${need} (truncated or damaged)`,
      )
    }
  })
})

describe('decodeSource lazy: header and index checked at load, each page when first used', () => {
  const lazy = (data: Buffer): Machine => decodeSource(bufferSource(data), NAME, 'lazy').machine

  it('reads no page until one is used, then only that one', () => {
    const decoded = decodeSource(bufferSource(encodeSnapshot(richMachine())), NAME, 'lazy')
    expect(decoded.usesSource).toBe(true)
    const m = decoded.machine
    expect(m.memory.residentPages).toBe(0)
    expect(m.heap.status().next).toBe(EXPECTED_NEXT)
    expect(m.memory.hasPage(FIRST_PAGE)).toBe(true)
    expect(m.memory.hasPage(ALIGNED_64)).toBe(false)
    expect(m.memory.residentPages).toBe(0)
    expect(m.memory.read(FIRST_PAGE, 8)).toBe(0x1122_3344_5566_7788n)
    expect(m.memory.residentPages).toBe(1)
    expect(m.mapper?.l2Tables()).toEqual([L2_DEVICE, L2_NORMAL]) // reads the root table
    expect(m.memory.residentPages).toBe(2)
    expect(pagesAsHex(m)).toEqual(pagesAsHex(richMachine()))
    expect(m.memory.residentPages).toBe(8)
  })

  it('a lazily loaded machine re-encodes byte-identically, and keeps its changes', () => {
    const data = encodeSnapshot(richMachine())
    expect(encodeSnapshot(lazy(data)).equals(data)).toBe(true)
    const m = lazy(data)
    m.memory.write(FIRST_PAGE + 8n, 8, 0xfeedn)
    m.memory.zero(LAST_BYTE & ~0xfffn, PAGE) // drops a stored page never read
    const expected = richMachine()
    expected.memory.write(FIRST_PAGE + 8n, 8, 0xfeedn)
    expected.memory.zero(LAST_BYTE & ~0xfffn, PAGE)
    expect(encodeSnapshot(m).equals(encodeSnapshot(expected))).toBe(true)
  })

  // 4240 flips of the one-page snapshot: those in the header or index fail the load; those in the page
  // load, then fail the first read of the page, naming it.
  it('every one of the 4240 single-byte flips fails the load or the first read of the page', () => {
    const data = onePageSnapshot()
    const start = dataStart(data)
    expect(start).toBe(144)
    const atLoad = flips(data).filter(([label]) => Number(label.split(' ').at(-1)) < start)
    const inPage = flips(data).filter(([label]) => Number(label.split(' ').at(-1)) >= start)
    expect(atLoad.length + inPage.length).toBe(4240)
    expect(misdecoded(atLoad, lazy)).toEqual([])
    const wrong: string[] = []
    for (const [label, input] of inPage) {
      const m = lazy(input)
      try {
        m.memory.read(HEAP_BASE + 0x10n, 4)
        wrong.push(`${label}: read`)
      } catch (error) {
        if (!(error instanceof HvmemError) || error.kind !== 'snapshot-invalid' || !error.message.startsWith(`${NAME} is not a valid hvmem snapshot: page 0x41000000 checksum mismatch`))
          wrong.push(`${label}: ${String(error)}`)
      }
      // still refused on a second use: a damaged page is never taken in
      expect(() => m.memory.nonZeroPages()).toThrow(HvmemError)
    }
    expect(wrong).toEqual([])
  })

  // reads run ahead while they are sequential (a table walk): a page read ahead is checked only when used
  it('pages read ahead are checked when used, not before: a damaged page is an error only for its reader', () => {
    const m0 = newMachine()
    for (let k = 0n; k < 6n; k++) m0.memory.write(RAM_BASE + k * 0x1000n, 1, k + 1n)
    const data = encodeSnapshot(m0)
    const damaged = Buffer.from(data)
    damaged[dataStart(data) + 3 * 4096 + 7]! ^= 1 // the fourth page, RAM_BASE + 0x3000
    const m = lazy(damaged)
    // in order: page 0, then 1 and 2 (read together), then 3 and on (read together with 4 and 5)
    for (const k of [0n, 1n, 2n]) expect(m.memory.read(RAM_BASE + k * 0x1000n, 1)).toBe(k + 1n)
    expectHvmemError(() => m.memory.read(RAM_BASE + 0x3000n, 1), 'snapshot-invalid', 'page 0x40003000 checksum mismatch')
    for (const k of [4n, 5n]) expect(m.memory.read(RAM_BASE + k * 0x1000n, 1)).toBe(k + 1n)
    // and a fresh load that reads 2 then 3 then stops never meets the damage... until it reads 3 itself
    const again = lazy(damaged)
    expect(again.memory.read(RAM_BASE + 0x1000n, 1)).toBe(2n)
    expect(again.memory.read(RAM_BASE + 0x2000n, 1)).toBe(3n) // sequential: 2 and 3 read together, 3 not checked
    expectHvmemError(() => again.memory.read(RAM_BASE + 0x3000n, 1), 'snapshot-invalid', 'page 0x40003000 checksum mismatch')
  })

  it('a damaged page does not stop other pages from being read', () => {
    const data = twoPageSnapshot()
    const damaged = Buffer.from(data)
    damaged[dataStart(data) + 5] = damaged[dataStart(data) + 5]! ^ 1 // first page, RAM_BASE
    const m = lazy(damaged)
    expect(m.memory.read(RAM_BASE + 0x3000n, 1)).toBe(2n)
    expectHvmemError(() => m.memory.read(RAM_BASE, 1), 'snapshot-invalid', 'page 0x40000000 checksum mismatch')
    expectHvmemError(() => encodeSnapshot(m), 'snapshot-invalid', 'page 0x40000000 checksum mismatch')
  })
})

describe('decodeSnapshot: format version', () => {
  it('refuses a newer version (6, valid checksums) naming both versions', () => {
    const data = patched(onePageSnapshot(), (b) => b.writeUInt32LE(6, 8))
    const error = expectHvmemError(() => decodeSnapshot(data, NAME), 'snapshot-invalid')
    expect(error.message).toBe(`${NAME} has snapshot format version 6, newer than this hvmem reads (version 5); upgrade hvmem`)
  })

  it('reads a version-2 file (no geometry bytes) as 4 KiB / 39-bit, and writes it back as version 3, byte for byte otherwise', () => {
    const v3 = encodeSnapshot(richMachine())
    const v2 = patched(v3, (b) => {
      b.writeUInt32LE(2, 8)
      b.fill(0, 92, 94)
    })
    const m = decodeSnapshot(v2, NAME)
    expect(m.mapper?.state).toMatchObject({granule: 4096, inputBits: 39})
    expect(m.mapper?.geometry.describe()).toBe('4K granule, 39-bit IPA, 40-bit PA, level-1 root')
    expect(encodeSnapshot(m).equals(v3)).toBe(true)
    // a version-2 file with geometry bytes set is damaged: version 2 keeps them zero
    expect(
      expectHvmemError(
        () =>
          decodeSnapshot(
            patched(v2, (b) => b.writeUInt8(14, 92)),
            NAME,
          ),
        'snapshot-invalid',
      ).message,
    ).toContain('reserved header bytes are not zero')
  })

  it('stores and reads back every geometry; refuses a granule or input size that is not one', () => {
    for (const [granule, inputBits] of [
      [4096, 48],
      [16384, 47],
      [65536, 42],
    ] as const) {
      const m = newMachine()
      m.ensureMapper({granule, inputBits}).mapper.mapRegion(RAM_BASE, BigInt(granule), 'normal')
      const data = encodeSnapshot(m)
      expect([data.readUInt8(92), data.readUInt8(93)]).toEqual([Math.log2(granule), inputBits])
      expect(decodeSnapshot(data, NAME).mapper?.geometry.equals(m.mapper!.geometry)).toBe(true)
    }
    const base = encodeSnapshot(richMachine())
    expect(
      expectHvmemError(
        () =>
          decodeSnapshot(
            patched(base, (b) => b.writeUInt8(13, 92)),
            NAME,
          ),
        'snapshot-invalid',
      ).message,
    ).toContain('granule 2^13 bytes is not 4, 16 or 64 KiB')
    expect(
      expectHvmemError(
        () =>
          decodeSnapshot(
            patched(base, (b) => b.writeUInt8(49, 93)),
            NAME,
          ),
        'snapshot-invalid',
      ).message,
    ).toContain("the mapper's geometry is not valid: the IPA size must be 25..48 bits (got 49)")
    expect(
      expectHvmemError(
        () =>
          decodeSnapshot(
            patched(onePageSnapshot(), (b) => b.writeUInt8(12, 92)),
            NAME,
          ),
        'snapshot-invalid',
      ).message,
    ).toContain('mapper fields set without a mapper')
  })

  it('refuses version 0 and a wrong header length', () => {
    expect(
      expectHvmemError(
        () =>
          decodeSnapshot(
            patched(emptySnapshot(), (b) => b.writeUInt32LE(0, 8)),
            NAME,
          ),
        'snapshot-invalid',
      ).message,
    ).toContain('unknown format version 0')
    expect(
      expectHvmemError(
        () =>
          decodeSnapshot(
            patched(emptySnapshot(), (b) => b.writeUInt32LE(64, 12)),
            NAME,
          ),
        'snapshot-invalid',
      ).message,
    ).toContain('header length 64')
  })
})

describe('version 1: still read', () => {
  it('reads a file hvmem 0.1 wrote (golden bytes)', () => {
    const golden = Buffer.from(V1_GOLDEN_HEX, 'hex')
    expect(golden.length).toBe(132)
    const m = decodeSnapshot(golden, NAME)
    expect(m.state()).toEqual(emptyMachine().state())
    expect(m.heap.status().next).toBe(HEAP_BASE + 0x100an)
    expect(m.mapper?.state).toEqual({regime: 'stage2', root: HEAP_BASE, vmid: 3, l2Budget: 2, orphanedTables: 0, granule: 4096, inputBits: 39})
    expect(m.memory.nonZeroPages()).toEqual([])
    // and writes it back as version 3
    expect(encodeSnapshot(m).equals(emptySnapshot())).toBe(true)
    expect(encodeV1(emptyMachine()).equals(golden)).toBe(true)
  })

  it('encodeV1 (the test writer) makes exactly the bytes hvmem 0.1 did', () => {
    const v1 = encodeV1(onePageMachine())
    expect(v1.length).toBe(4236)
    expect(createHash('sha256').update(v1).digest('hex')).toBe(V1_ONE_PAGE_SHA256)
  })

  it('a version-1 file of every kind of content decodes to the same machine as its version-2 file, through both modes', () => {
    const original = richMachine()
    const v1 = encodeV1(original)
    expect(v1.length).toBe(132 + 8 * V1_ENTRY)
    for (const mode of ['full', 'lazy'] as const) {
      const decoded = decodeSource(bufferSource(v1), NAME, mode)
      expect(decoded.version).toBe(1)
      expect(decoded.usesSource).toBe(false) // read whole
      expect(decoded.machine.state()).toEqual(original.state())
      expect(pagesAsHex(decoded.machine)).toEqual(pagesAsHex(original))
      expect(encodeSnapshot(decoded.machine).equals(encodeSnapshot(original))).toBe(true)
    }
  })

  // 4236-byte version-1 snapshot: 4236 flips + 4236 truncations + 2 appends = 8474 inputs.
  it('one page: all 4236 flips, all 4236 truncations and 2 appended bytes are refused (8474 inputs)', () => {
    const data = encodeV1(onePageMachine())
    decodeSnapshot(data, NAME)
    const inputs = [...flips(data), ...truncations(data), ...appended(data)]
    expect(inputs.length).toBe(8474)
    expect(misdecoded(inputs)).toEqual([])
  })

  it('structural checks behind a valid version-1 CRC: order, zero page, reserved bytes', () => {
    const two = newMachine()
    two.memory.write(RAM_BASE, 1, 1n)
    two.memory.write(RAM_BASE + 0x3000n, 1, 2n)
    const message = (input: Buffer): string => expectHvmemError(() => decodeSnapshot(input, NAME), 'snapshot-invalid').message
    expect(message(patchedV1(encodeV1(two), (b) => b.writeBigUInt64LE(RAM_BASE, 136)))).toContain('out of order at entry 1')
    expect(message(patchedV1(encodeV1(onePageMachine()), (b) => b.fill(0, 136, 136 + 4096)))).toBe(
      `${NAME} is not a valid hvmem snapshot: page 0x41000000 is stored but all zero (only non-zero pages are stored)`,
    )
    expect(message(patchedV1(encodeV1(onePageMachine()), (b) => b.writeUInt8(1, 100)))).toBe(`${NAME} is not a valid hvmem snapshot: reserved header bytes are not zero`)
  })
})

describe('decodeSnapshot: structural checks behind valid checksums', () => {
  const ramEnd = RAM_BASE + RAM_SIZE

  /** Cases whose error message starts with the file name. Index entries are at 128 + 16i: address, CRC, reserved. */
  const named: Array<[string, () => Buffer, string]> = [
    [
      'page addresses swapped',
      () =>
        patched(twoPageSnapshot(), (b) => {
          b.writeBigUInt64LE(RAM_BASE + 0x3000n, 128)
          b.writeBigUInt64LE(RAM_BASE, 144)
        }),
      'page addresses out of order at entry 1 (0x40000000)',
    ],
    ['page address repeated', () => patched(twoPageSnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE, 144)), 'out of order at entry 1'],
    ['page just past RAM', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(ramEnd, 128)), 'outside RAM'],
    ['page just below RAM', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE - PAGE, 128)), 'outside RAM'],
    ['page not page-aligned', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE + 8n, 128)), 'page address 0x40000008 at entry 0 is not 4 KiB aligned'],
    ['index entry reserved bytes set', () => patched(onePageSnapshot(), (b) => b.writeUInt32LE(1, 140)), 'reserved bytes of index entry 0 are not zero'],
    [
      'heap starting past RAM',
      () =>
        patched(emptySnapshot(), (b) => {
          b.writeBigUInt64LE(ramEnd, 32)
          b.writeBigUInt64LE(ramEnd, 48)
          b.writeBigUInt64LE(0n, 56)
        }),
      'not inside RAM',
    ],
    ['heap running past RAM', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(RAM_SIZE, 40)), 'not inside RAM'],
    ['heap size zero', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(0n, 40)), ''],
    ['mapper flag 2', () => patched(emptySnapshot(), (b) => b.writeUInt8(2, 64)), 'mapper flag 2'],
    ['mapper flag 0xff', () => patched(emptySnapshot(), (b) => b.writeUInt8(0xff, 64)), 'mapper flag 255'],
    ['regime 3', () => patched(emptySnapshot(), (b) => b.writeUInt8(3, 65)), 'unknown regime 3'],
    ['mapper fields without a mapper', () => patched(onePageSnapshot(), (b) => b.writeUInt16LE(5, 66)), 'mapper fields set without a mapper'],
    ['orphaned tables without a mapper', () => patched(onePageSnapshot(), (b) => b.writeUInt32LE(1, 88)), 'mapper fields set without a mapper'],
    ['mapper L2 budget 0', () => patched(emptySnapshot(), (b) => b.writeUInt32LE(0, 68)), 'budget'],
    ['mapper L2 budget 513', () => patched(emptySnapshot(), (b) => b.writeUInt32LE(513, 68)), 'budget'],
    ['RAM size zero', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(0n, 24)), ''],
    ['RAM not page-aligned', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE + 1n, 16)), ''],
    ['RAM past the 40-bit PA limit', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(1n << 40n, 24)), '40-bit'],
  ]
  for (const [label, make, fragment] of named) {
    it(`${label} -> snapshot-invalid, message starting with the file name`, () => {
      const error = expectHvmemError(() => decodeSnapshot(make(), NAME), 'snapshot-invalid')
      expect(error.message.startsWith(`${NAME} is not a valid hvmem snapshot: `)).toBe(true)
      expect(error.message).toContain(fragment)
    })
  }

  /** Checks made while rebuilding the machine (allocator, mapper): still named after the file. */
  const rebuilt: Array<[string, () => Buffer, string]> = [
    ['allocator next one page past the end', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(HEAP_BASE + HEAP_SIZE + PAGE, 48)), 'allocator state is inconsistent'],
    ['allocator next below the start', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(HEAP_BASE - PAGE, 48)), 'allocator state is inconsistent'],
    ['allocated more than next - start', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(0x2000n, 56)), 'allocator state is inconsistent'],
    ['mapper root outside RAM', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(ramEnd, 72)), 'not a 4K-aligned table inside RAM'],
    ['mapper root not page-aligned', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(HEAP_BASE + 8n, 72)), 'not a 4K-aligned table inside RAM'],
  ]
  for (const [label, make, fragment] of rebuilt) {
    it(`${label} -> snapshot-invalid, message starting with the file name`, () => {
      const error = expectHvmemError(() => decodeSnapshot(make(), NAME), 'snapshot-invalid')
      expect(error.message.startsWith(`${NAME} is not a valid hvmem snapshot: `)).toBe(true)
      expect(error.message).toContain(fragment)
    })
  }

  it('a stored page of zeros is refused (only non-zero pages are stored), at load or on first use', () => {
    const data = patched(onePageSnapshot(), (b) => b.fill(0, 144, 144 + 4096))
    const expected = `${NAME} is not a valid hvmem snapshot: page 0x41000000 is stored but all zero (only non-zero pages are stored)`
    expect(expectHvmemError(() => decodeSnapshot(data, NAME), 'snapshot-invalid').message).toBe(expected)
    const m = decodeSource(bufferSource(data), NAME, 'lazy').machine
    expect(expectHvmemError(() => m.memory.read(HEAP_BASE, 1), 'snapshot-invalid').message).toBe(expected)
  })

  it('a run read unchecked is checked in one go (checkRun), naming a damaged page or a stored page of zeros', () => {
    const m = newMachine()
    for (let k = 0n; k < 5n; k++) m.memory.writeBytes(HEAP_BASE + k * PAGE, Uint8Array.of(Number(k) + 1, 0xaa))
    const data = encodeSnapshot(m)
    const pagesOf = (file: Buffer) => decodeSource(bufferSource(file), NAME, 'lazy').pages!
    const good = pagesOf(data)
    expect(good.count).toBe(5)
    const run = good.readRun(0, 5, undefined, true)
    expect([...run.subarray(3 * PAGE_BYTES, 3 * PAGE_BYTES + 2)]).toEqual([4, 0xaa])
    good.checkRun(0, 5, run)
    good.checkRun(1, 3, run.subarray(PAGE_BYTES))
    // page 3's byte changed without its CRC: unchecked reads pass it, checks name it
    const damaged = Buffer.from(data)
    damaged[dataStart(data) + 3 * PAGE_BYTES + 100] = 1
    const bad = pagesOf(damaged)
    const badRun = bad.readRun(0, 5, undefined, true)
    const mismatch = `${NAME} is not a valid hvmem snapshot: page 0x41003000 checksum mismatch`
    expect(expectHvmemError(() => bad.checkRun(0, 5, badRun), 'snapshot-invalid').message).toContain(mismatch)
    expect(expectHvmemError(() => bad.check(3, badRun.subarray(3 * PAGE_BYTES, 4 * PAGE_BYTES)), 'snapshot-invalid').message).toContain(mismatch)
    expect(expectHvmemError(() => bad.readRun(0, 5), 'snapshot-invalid').message).toContain(mismatch)
    bad.checkRun(0, 3, badRun)
    // a page of zeros stored with its true CRC: the run's CRC matches, and the page is still refused
    const zeros = patched(data, (b) => b.fill(0, dataStart(data) + 2 * PAGE_BYTES, dataStart(data) + 3 * PAGE_BYTES))
    const z = pagesOf(zeros)
    expect(expectHvmemError(() => z.checkRun(0, 5, z.readRun(0, 5, undefined, true)), 'snapshot-invalid').message).toBe(
      `${NAME} is not a valid hvmem snapshot: page 0x41002000 is stored but all zero (only non-zero pages are stored)`,
    )
  })

  it('allocator next exactly at the end is accepted (a full heap)', () => {
    const data = patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(HEAP_BASE + HEAP_SIZE, 48))
    expect(decodeSnapshot(data, NAME).heap.status().remaining).toBe(0n)
  })

  // 30 inputs: each reserved byte 94..123 set to 1 (92 and 93 hold the geometry).
  it('a non-zero byte at any of the 30 reserved offsets 94..123 -> snapshot-invalid', () => {
    const base = emptySnapshot()
    const wrong: string[] = []
    for (let offset = 94; offset < 124; offset++) {
      const data = patched(base, (b) => b.writeUInt8(1, offset))
      try {
        decodeSnapshot(data, NAME)
        wrong.push(`${offset}: accepted`)
      } catch (error) {
        if (!(error instanceof HvmemError) || error.kind !== 'snapshot-invalid' || error.message !== `${NAME} is not a valid hvmem snapshot: reserved header bytes are not zero`) {
          wrong.push(`${offset}: ${String(error)}`)
        }
      }
    }
    expect(wrong).toEqual([])
  })
})

// A load reads the page index 16,384 entries at a time (src/snapshot/format.ts, INDEX_CHUNK_ENTRIES).
describe('decodeSource: a page index longer than one chunk of reading', () => {
  const PAGES = 16_390
  const machine = newMachine()
  for (let i = 0; i < PAGES; i++) machine.memory.write(RAM_BASE + BigInt(i) * PAGE, 4, BigInt(i + 1))
  const data = encodeSnapshot(machine)
  const entry = (i: number): number => HEADER_BYTES + INDEX_ENTRY_BYTES * i
  // the file read through readInto (as a snapshot file is) and through read (a file held in memory)
  const sources = [
    ['read', (d: Buffer) => bufferSource(d)],
    ['readInto', (d: Buffer) => ({...bufferSource(d), readInto: (offset: number, out: Uint8Array) => void out.set(d.subarray(offset, offset + out.length))})],
  ] as const

  it.each(sources)('reads every entry through %s: the pages of the second chunk are where the index says', (_, source) => {
    const decoded = decodeSource(source(data), NAME, 'lazy')
    expect(decoded.pages!.count).toBe(PAGES)
    for (const i of [0, 16_383, 16_384, PAGES - 1]) expect(decoded.machine.memory.read(RAM_BASE + BigInt(i) * PAGE, 4)).toBe(BigInt(i + 1))
  })

  it.each(sources)('through %s, finds a problem in the second chunk once the checksum is right, and a damaged entry there by the checksum', (_, source) => {
    const message = (input: Buffer): string => expectHvmemError(() => decodeSource(source(input), NAME, 'lazy'), 'snapshot-invalid').message
    expect(message(patched(data, (b) => b.writeUInt32LE(1, entry(16_388) + 12)))).toBe(`${NAME} is not a valid hvmem snapshot: reserved bytes of index entry 16388 are not zero`)
    const swapped = patched(data, (b) => b.writeBigUInt64LE(RAM_BASE, entry(16_384)))
    expect(message(swapped)).toBe(`${NAME} is not a valid hvmem snapshot: page addresses out of order at entry 16384 (0x40000000)`)
    const flipped = Buffer.from(data)
    flipped[entry(16_389)] ^= 0x10
    expect(message(flipped)).toMatch(/header or page index checksum mismatch/)
  })
})
