import {crc32} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import {HvmemError} from '../../src/core/errors.js'
import {Machine} from '../../src/core/machine.js'
import {FORMAT_VERSION, HEADER_BYTES, MAGIC, decodeSnapshot, encodeSnapshot} from '../../src/snapshot/format.js'
import {HEAP_BASE, HEAP_SIZE, PAGE, RAM_BASE, RAM_SIZE, expectHvmemError, newMachine, patched} from './fixtures.js'

const NAME = '/some dir/test.snap'
const PAGE_BYTES = 4096
const ENTRY = 8 + PAGE_BYTES

/** Exact layout of the machine built by richMachine(). */
const FIRST_PAGE = HEAP_BASE // allocPage
const BYTES_100 = HEAP_BASE + 0x1000n // alloc(100)
const ALIGNED_64 = HEAP_BASE + 0x2000n // allocAligned(64, 4096): allocated, never written
const ROOT = HEAP_BASE + 0x3000n // the mapper's L1 table
const L2_NORMAL = HEAP_BASE + 0x4000n // L2 table for L1[1], 0x4000_0000-0x8000_0000
const L2_DEVICE = HEAP_BASE + 0x5000n // L2 table for L1[0], the device block
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
  expect(mapper.mapRegion(RAM_BASE, RAM_SIZE, 'normal').newTables).toEqual([L2_NORMAL])
  expect(mapper.mapRegion(DEVICE_BLOCK, 2n << 20n, 'device').newTables).toEqual([L2_DEVICE])
  m.memory.write(FIRST_PAGE, 8, 0x1122_3344_5566_7788n)
  m.memory.writeBytes(BYTES_100, Uint8Array.from({length: 100}, (_, i) => i + 1))
  m.memory.write(CROSSING, 4, 0xdead_beefn)
  m.memory.write(LAST_BYTE, 1, 0xaan)
  m.memory.writeBytes(ZEROED_AGAIN, Uint8Array.of(1, 2, 3))
  m.memory.writeBytes(ZEROED_AGAIN, Uint8Array.of(0, 0, 0))
  expect(m.memory.hasPage(ZEROED_AGAIN)).toBe(true)
  return m
}

/** No pages (the mapper's root table is allocated but still all zeros): 132 bytes. */
function emptySnapshot(): Buffer {
  const m = newMachine()
  m.ensureMapper({vmid: 3, l2Budget: 2})
  m.heap.alloc(10n)
  return encodeSnapshot(m)
}

/** One page, no mapper: 4236 bytes. */
function onePageSnapshot(): Buffer {
  const m = newMachine()
  const page = m.heap.allocPage()
  m.heap.alloc(6n)
  m.memory.write(page + 0x10n, 4, 0x0102_0304n)
  return encodeSnapshot(m)
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
    expect(restored.mapper?.state).toEqual({regime: 'stage2', root: ROOT, vmid: 7, l2Budget: 8})
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

  it('re-encoding a decoded snapshot is byte-identical', () => {
    const data = encodeSnapshot(richMachine())
    const again = encodeSnapshot(decodeSnapshot(data, NAME))
    expect(again.length).toBe(data.length)
    expect(again.equals(data)).toBe(true)
    for (const small of [emptySnapshot(), onePageSnapshot(), twoPageSnapshot()]) {
      expect(encodeSnapshot(decodeSnapshot(small, NAME)).equals(small)).toBe(true)
    }
  })

  it('the restored mapper keeps working: re-mapping the same ranges is a no-op, the budget still counts', () => {
    const restored = decodeSnapshot(encodeSnapshot(richMachine()), NAME)
    const mapper = restored.ensureMapper({vmid: 7, l2Budget: 8}).mapper
    const again = mapper.mapRegion(RAM_BASE, RAM_SIZE, 'normal')
    expect(again.written).toBe(0)
    expect(again.unchanged).toBe(512)
    expect(again.newTables).toEqual([])
    expect(mapper.mapRegion(DEVICE_BLOCK, 2n << 20n, 'device').unchanged).toBe(1)
    expect(restored.heap.status().next).toBe(EXPECTED_NEXT)
  })

  it('the decoded machine does not share memory with the buffer it came from', () => {
    const data = encodeSnapshot(richMachine())
    const restored = decodeSnapshot(data, NAME)
    data.fill(0xee, HEADER_BYTES + 8 * EXPECTED_PAGES.length)
    expect(restored.memory.read(FIRST_PAGE, 8)).toBe(0x1122_3344_5566_7788n)
  })

  it('is exactly 128 + N*(8+4096) + 4 bytes for N non-zero pages (a re-zeroed page is not stored)', () => {
    const data = encodeSnapshot(richMachine())
    expect(EXPECTED_PAGES.length).toBe(8)
    expect(data.length).toBe(128 + 8 * ENTRY + 4)
    expect(data.length).toBe(32_964)
    expect(emptySnapshot().length).toBe(132)
    expect(onePageSnapshot().length).toBe(128 + ENTRY + 4)
    expect(twoPageSnapshot().length).toBe(128 + 2 * ENTRY + 4)

    const zeroed = newMachine()
    zeroed.memory.writeBytes(RAM_BASE + 0x7000n, Uint8Array.of(9, 9))
    zeroed.memory.zero(RAM_BASE + 0x7000n, 2n)
    expect(encodeSnapshot(zeroed).length).toBe(132)
  })

  it('writes every header field at its documented offset, little-endian', () => {
    const data = encodeSnapshot(richMachine())
    const n = EXPECTED_PAGES.length
    expect(data.subarray(0, 8).toString('latin1')).toBe('HVMEMSNP')
    expect(data.subarray(0, 8).equals(MAGIC)).toBe(true)
    expect(data.readUInt32LE(8)).toBe(1)
    expect(FORMAT_VERSION).toBe(1)
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
    expect([...data.subarray(88, 128)]).toEqual(new Array<number>(40).fill(0))
    // little-endian: the low byte of RAM base (0x4000_0000) first
    expect([...data.subarray(16, 24)]).toEqual([0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0])

    const addresses = Array.from({length: n}, (_, i) => data.readBigUInt64LE(128 + 8 * i))
    expect(addresses).toEqual(EXPECTED_PAGES)
    const dataStart = 128 + 8 * n
    // the first stored page is CROSSING's: 0xdead_beef starts at offset 0xffe, so its bytes ef be
    expect([...data.subarray(dataStart + 0xffe, dataStart + 0x1000)]).toEqual([0xef, 0xbe])
    // the second continues it with ad de
    expect([...data.subarray(dataStart + PAGE_BYTES, dataStart + PAGE_BYTES + 2)]).toEqual([0xad, 0xde])
    // the third is FIRST_PAGE
    expect(data.readBigUInt64LE(dataStart + 2 * PAGE_BYTES)).toBe(0x1122_3344_5566_7788n)
    // the last byte of the last page is the last byte of RAM
    expect(data[dataStart + n * PAGE_BYTES - 1]).toBe(0xaa)
    expect(data.readUInt32LE(data.length - 4)).toBe(crc32(data.subarray(0, data.length - 4)))
  })

  it('a machine without a mapper leaves bytes 64..79 zero', () => {
    const data = onePageSnapshot()
    expect([...data.subarray(64, 80)]).toEqual(new Array<number>(16).fill(0))
    expect(data.readBigUInt64LE(80)).toBe(1n)
    expect(decodeSnapshot(data, NAME).mapper).toBeUndefined()
  })
})

/** Decodes every input; returns a description of each one not refused as 'snapshot-invalid' starting with the name. */
function misdecoded(inputs: Array<[string, Buffer]>): string[] {
  const wrong: string[] = []
  for (const [label, input] of inputs) {
    try {
      decodeSnapshot(input, NAME)
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
  // 132-byte snapshot: 132 flips + 132 truncations + 2 appends = 266 inputs.
  it('no pages: all 132 single-byte flips, all 132 truncations (0..131) and 2 appended bytes (266 inputs)', () => {
    const data = emptySnapshot()
    expect(data.length).toBe(132)
    expect(data.readUInt8(64)).toBe(1) // the mapper fields are populated, so flips there matter
    decodeSnapshot(data, NAME)
    const inputs = [...flips(data), ...truncations(data), ...appended(data)]
    expect(inputs.length).toBe(266)
    expect(misdecoded(inputs)).toEqual([])
  })

  // 4236-byte snapshot: 4236 flips + 4236 truncations + 2 appends = 8474 inputs.
  it('one page: all 4236 single-byte flips, all 4236 truncations (0..4235) and 2 appended bytes (8474 inputs)', () => {
    const data = onePageSnapshot()
    expect(data.length).toBe(4236)
    decodeSnapshot(data, NAME)
    const inputs = [...flips(data), ...truncations(data), ...appended(data)]
    expect(inputs.length).toBe(8474)
    expect(misdecoded(inputs)).toEqual([])
  })

  it('names the problem: wrong magic, truncation, checksum', () => {
    const data = onePageSnapshot()
    expect(expectHvmemError(() => decodeSnapshot(Buffer.alloc(0), NAME), 'snapshot-invalid').message).toBe(`${NAME} is not a valid hvmem snapshot: wrong magic (not a snapshot, or damaged)`)
    expect(expectHvmemError(() => decodeSnapshot(data.subarray(0, 100), NAME), 'snapshot-invalid').message).toContain('truncated (100 bytes')
    expect(expectHvmemError(() => decodeSnapshot(data.subarray(0, 4235), NAME), 'snapshot-invalid').message).toContain('4235 bytes where the header')
    const flipped = Buffer.from(data)
    flipped[200] = flipped[200]! ^ 0xff
    expect(expectHvmemError(() => decodeSnapshot(flipped, NAME), 'snapshot-invalid').message).toContain('checksum mismatch')
  })
})

describe('decodeSnapshot: format version', () => {
  it('refuses a newer version (2, valid CRC) naming both versions', () => {
    const data = patched(onePageSnapshot(), (b) => b.writeUInt32LE(2, 8))
    const error = expectHvmemError(() => decodeSnapshot(data, NAME), 'snapshot-invalid')
    expect(error.message.startsWith(`${NAME} `)).toBe(true)
    expect(error.message).toContain('version 2')
    expect(error.message).toContain('version 1')
  })

  it('refuses version 0 and a wrong header length', () => {
    expect(expectHvmemError(() => decodeSnapshot(patched(emptySnapshot(), (b) => b.writeUInt32LE(0, 8)), NAME), 'snapshot-invalid').message).toContain('unknown format version 0')
    expect(expectHvmemError(() => decodeSnapshot(patched(emptySnapshot(), (b) => b.writeUInt32LE(64, 12)), NAME), 'snapshot-invalid').message).toContain('header length 64')
  })
})

describe('decodeSnapshot: structural checks behind a valid CRC', () => {
  const ramEnd = RAM_BASE + RAM_SIZE

  /** Cases whose error message starts with the file name. */
  const named: Array<[string, () => Buffer, string]> = [
    ['page addresses swapped', () => patched(twoPageSnapshot(), (b) => {
      b.writeBigUInt64LE(RAM_BASE + 0x3000n, 128)
      b.writeBigUInt64LE(RAM_BASE, 136)
    }), 'out of order at entry 1'],
    ['page address repeated', () => patched(twoPageSnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE, 136)), 'out of order at entry 1'],
    ['page just past RAM', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(ramEnd, 128)), 'outside RAM'],
    ['page just below RAM', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE - PAGE, 128)), 'outside RAM'],
    ['page not page-aligned', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(RAM_BASE + 8n, 128)), '4 KiB-aligned'],
    ['heap starting past RAM', () => patched(emptySnapshot(), (b) => {
      b.writeBigUInt64LE(ramEnd, 32)
      b.writeBigUInt64LE(ramEnd, 48)
      b.writeBigUInt64LE(0n, 56)
    }), 'not inside RAM'],
    ['heap running past RAM', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(RAM_SIZE, 40)), 'not inside RAM'],
    ['heap size zero', () => patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(0n, 40)), ''],
    ['mapper flag 2', () => patched(emptySnapshot(), (b) => b.writeUInt8(2, 64)), 'mapper flag 2'],
    ['mapper flag 0xff', () => patched(emptySnapshot(), (b) => b.writeUInt8(0xff, 64)), 'mapper flag 255'],
    ['regime 3', () => patched(emptySnapshot(), (b) => b.writeUInt8(3, 65)), 'unknown regime 3'],
    ['mapper fields without a mapper', () => patched(onePageSnapshot(), (b) => b.writeUInt16LE(5, 66)), 'mapper fields set without a mapper'],
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
    ['mapper root outside RAM', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(ramEnd, 72)), 'not a page inside RAM'],
    ['mapper root not page-aligned', () => patched(emptySnapshot(), (b) => b.writeBigUInt64LE(HEAP_BASE + 8n, 72)), 'not a page inside RAM'],
  ]
  for (const [label, make, fragment] of rebuilt) {
    it(`${label} -> snapshot-invalid, message starting with the file name`, () => {
      const error = expectHvmemError(() => decodeSnapshot(make(), NAME), 'snapshot-invalid')
      expect(error.message.startsWith(`${NAME} is not a valid hvmem snapshot: `)).toBe(true)
      expect(error.message).toContain(fragment)
    })
  }

  it('a stored page of zeros is refused (only non-zero pages are stored)', () => {
    const data = patched(onePageSnapshot(), (b) => b.fill(0, 136, 136 + 4096))
    expect(expectHvmemError(() => decodeSnapshot(data, NAME), 'snapshot-invalid').message).toBe(`${NAME} is not a valid hvmem snapshot: page 0x41000000 is stored but all zero (only non-zero pages are stored)`)
  })

  it('allocator next exactly at the end is accepted (a full heap)', () => {
    const data = patched(onePageSnapshot(), (b) => b.writeBigUInt64LE(HEAP_BASE + HEAP_SIZE, 48))
    expect(decodeSnapshot(data, NAME).heap.status().remaining).toBe(0n)
  })

  // 40 inputs: each reserved byte 88..127 set to 1.
  it('a non-zero byte at any of the 40 reserved offsets 88..127 -> snapshot-invalid', () => {
    const base = emptySnapshot()
    const wrong: string[] = []
    for (let offset = 88; offset < 128; offset++) {
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
