import {describe, expect, it} from 'vitest'

import {PhysicalMemory} from '../../src/core/memory.js'
import {expectHvmemError} from './helpers.js'

const BASE = 0x4000_0000n
const SIZE = 0x1_0000n // 64 KiB
const END = BASE + SIZE

function ram(): PhysicalMemory {
  return new PhysicalMemory(BASE, SIZE)
}

/** The bytes at [address, address + length) as plain numbers. */
function bytesAt(memory: PhysicalMemory, address: bigint, length: number): number[] {
  return Array.from(memory.readBytes(address, length))
}

function nonZeroAddresses(memory: PhysicalMemory): bigint[] {
  return memory.nonZeroPages().map(([address]) => address)
}

describe('PhysicalMemory: untouched memory', () => {
  it('reads as zero at every width and creates no pages', () => {
    const m = ram()
    expect(m.read(BASE, 1)).toBe(0n)
    expect(m.read(BASE + 0x123n, 2)).toBe(0n)
    expect(m.read(BASE + 0xffdn, 4)).toBe(0n) // page-crossing
    expect(m.read(BASE + 0x2000n, 8)).toBe(0n)
    expect(m.read(BASE + 0x2001n, 8)).toBe(0n)
    expect(m.readU64(END - 8n)).toBe(0n)
    expect(bytesAt(m, BASE + 0xff0n, 32)).toEqual(new Array<number>(32).fill(0))
    expect(m.nonZeroPages()).toEqual([])
    expect(m.hasPage(BASE)).toBe(false)
    expect(m.hasPage(BASE + 0x2000n)).toBe(false)
  })

  it('the constructor refuses unaligned or empty RAM', () => {
    expectHvmemError(() => new PhysicalMemory(BASE + 1n, SIZE), 'input', 'RAM must be a non-empty, 4 KiB-aligned range of the 64-bit address space')
    expectHvmemError(() => new PhysicalMemory(-0x1000n, 0x3000n), 'input')
    expectHvmemError(() => new PhysicalMemory(0xffff_ffff_ffff_f000n, 0x2000n), 'input')
    expect(new PhysicalMemory(0xffff_ffff_ffff_f000n, 0x1000n).end).toBe(1n << 64n)
    expectHvmemError(() => new PhysicalMemory(BASE, 0x1800n), 'input')
    expectHvmemError(() => new PhysicalMemory(BASE, 0n), 'input')
    expect(ram().end).toBe(0x4001_0000n)
  })
})

describe('PhysicalMemory: little-endian access', () => {
  it('writes and reads 1, 2, 4 and 8 bytes little-endian', () => {
    const m = ram()
    m.write(BASE, 1, 0xabn)
    m.write(BASE + 0x10n, 2, 0xbeefn)
    m.write(BASE + 0x20n, 4, 0xdead_beefn)
    m.write(BASE + 0x30n, 8, 0x0102_0304_0506_0708n)
    expect(bytesAt(m, BASE, 2)).toEqual([0xab, 0])
    expect(bytesAt(m, BASE + 0x10n, 3)).toEqual([0xef, 0xbe, 0])
    expect(bytesAt(m, BASE + 0x20n, 4)).toEqual([0xef, 0xbe, 0xad, 0xde])
    expect(bytesAt(m, BASE + 0x30n, 8)).toEqual([8, 7, 6, 5, 4, 3, 2, 1])
    expect(m.read(BASE, 1)).toBe(0xabn)
    expect(m.read(BASE + 0x10n, 2)).toBe(0xbeefn)
    expect(m.read(BASE + 0x20n, 4)).toBe(0xdead_beefn)
    expect(m.read(BASE + 0x30n, 8)).toBe(0x0102_0304_0506_0708n)
    expect(m.readU64(BASE + 0x30n)).toBe(0x0102_0304_0506_0708n)
    expect(m.read(BASE + 0x30n, 2)).toBe(0x0708n)
    expect(m.read(BASE + 0x34n, 4)).toBe(0x0102_0304n)
  })

  it('handles unaligned accesses', () => {
    const m = ram()
    m.write(BASE + 3n, 8, 0x0102_0304_0506_0708n)
    expect(bytesAt(m, BASE, 12)).toEqual([0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    expect(m.read(BASE + 3n, 8)).toBe(0x0102_0304_0506_0708n)
    expect(m.read(BASE + 4n, 4)).toBe(0x0405_0607n)
    expect(m.read(BASE + 5n, 2)).toBe(0x0506n)
    expect(m.readU64(BASE)).toBe(0x0405_0607_0800_0000n)
    expect(m.readU64(BASE + 8n)).toBe(0x0000_0000_0001_0203n)
  })

  it('handles accesses that cross a page boundary', () => {
    const m = ram()
    m.write(BASE + 0xffdn, 8, 0x1122_3344_5566_7788n)
    expect(nonZeroAddresses(m)).toEqual([BASE, BASE + 0x1000n])
    expect(bytesAt(m, BASE + 0xffdn, 8)).toEqual([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    expect(m.read(BASE + 0xffdn, 8)).toBe(0x1122_3344_5566_7788n)
    expect(m.read(BASE + 0xfffn, 2)).toBe(0x5566n)
    expect(m.read(BASE + 0x1000n, 4)).toBe(0x2233_4455n)
    m.write(BASE + 0x1ffen, 4, 0xa1b2_c3d4n)
    expect(m.read(BASE + 0x1ffen, 4)).toBe(0xa1b2_c3d4n)
    expect(m.read(BASE + 0x2000n, 1)).toBe(0xb2n)
  })

  it('writeBytes spans several pages', () => {
    const m = ram()
    const data = Uint8Array.from({length: 0x2010}, (_, i) => (i % 255) + 1)
    m.writeBytes(BASE + 0xff8n, data)
    expect(nonZeroAddresses(m)).toEqual([BASE, BASE + 0x1000n, BASE + 0x2000n, BASE + 0x3000n])
    expect(m.readBytes(BASE + 0xff8n, data.length)).toEqual(data)
    expect(m.read(BASE + 0xff7n, 1)).toBe(0n)
    expect(m.read(BASE + 0xff8n + 0x2010n, 1)).toBe(0n)
  })

  it('the last 8 bytes of RAM are accessible', () => {
    const m = ram()
    m.write(END - 8n, 8, 0xffff_ffff_ffff_ffffn)
    expect(m.readU64(END - 8n)).toBe(0xffff_ffff_ffff_ffffn)
    m.write(END - 1n, 1, 0x5an)
    expect(m.read(END - 2n, 2)).toBe(0x5affn)
  })
})

describe('PhysicalMemory: bounds and widths', () => {
  it('an access outside RAM throws input naming the range', () => {
    const m = ram()
    expectHvmemError(() => m.read(BASE - 1n, 1), 'input', '0x3fffffff-0x40000000 is outside RAM 0x40000000-0x40010000')
    expectHvmemError(() => m.read(END - 4n, 8), 'input', '0x4000fffc-0x40010004 is outside RAM')
    expectHvmemError(() => m.write(END, 1, 1n), 'input', '0x40010000-0x40010001 is outside RAM')
    expectHvmemError(() => m.readU64(END), 'input', '0x40010000-0x40010008')
    expectHvmemError(() => m.writeU64(BASE - 8n, 1n), 'input', '0x3ffffff8-0x40000000')
    expectHvmemError(() => m.writeU64(BASE, 1n << 64n), 'input', '18446744073709551616 does not fit in 8 bytes')
    expectHvmemError(() => m.writeU64(BASE, -1n), 'input', '-1 does not fit in 8 bytes')
    expectHvmemError(() => m.readBytes(BASE, 0x1_0001), 'input', '0x40000000-0x40010001')
    expectHvmemError(() => m.writeBytes(END - 1n, new Uint8Array(2)), 'input')
    expectHvmemError(() => m.zero(END - 0x1000n, 0x1001n), 'input')
    expect(m.nonZeroPages()).toEqual([])
    expect(m.hasPage(END - 1n)).toBe(false)
  })

  it('a value too wide for the width (or negative) throws input and writes nothing', () => {
    const m = ram()
    expectHvmemError(() => m.write(BASE, 1, 0x100n), 'input', '0x100 does not fit in 1 byte')
    expectHvmemError(() => m.write(BASE, 2, 0x1_0000n), 'input', 'does not fit in 2 bytes')
    expectHvmemError(() => m.write(BASE, 4, 0x1_0000_0000n), 'input', 'does not fit in 4 bytes')
    expectHvmemError(() => m.write(BASE, 8, 1n << 64n), 'input', 'does not fit in 8 bytes')
    expectHvmemError(() => m.write(BASE + 1n, 8, 1n << 64n), 'input')
    expectHvmemError(() => m.write(BASE, 4, -1n), 'input')
    expect(m.hasPage(BASE)).toBe(false)
    m.write(BASE, 1, 0xffn)
    m.write(BASE + 8n, 8, (1n << 64n) - 1n)
    expect(m.read(BASE, 8)).toBe(0xffn)
    expect(m.read(BASE + 8n, 8)).toBe((1n << 64n) - 1n)
  })

  it('contains() checks the whole range', () => {
    const m = ram()
    expect(m.contains(BASE)).toBe(true)
    expect(m.contains(END - 1n)).toBe(true)
    expect(m.contains(END)).toBe(false)
    expect(m.contains(BASE - 1n)).toBe(false)
    expect(m.contains(END - 0x1000n, 0x1000n)).toBe(true)
    expect(m.contains(END - 0x1000n, 0x1001n)).toBe(false)
  })
})

describe('PhysicalMemory: zero() and pages', () => {
  it('zeroing whole pages drops them', () => {
    const m = ram()
    m.write(BASE + 0x10n, 4, 0x1234_5678n)
    m.write(BASE + 0x1010n, 4, 0x1234_5678n)
    m.write(BASE + 0x2010n, 4, 0x1234_5678n)
    m.zero(BASE, 0x2000n)
    expect(m.hasPage(BASE)).toBe(false)
    expect(m.hasPage(BASE + 0x1000n)).toBe(false)
    expect(nonZeroAddresses(m)).toEqual([BASE + 0x2000n])
    expect(m.read(BASE + 0x10n, 4)).toBe(0n)
    expect(m.read(BASE + 0x2010n, 4)).toBe(0x1234_5678n)
  })

  it('zeroing part of a page clears only that part', () => {
    const m = ram()
    m.writeBytes(BASE + 0xffcn, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]))
    m.zero(BASE + 0xffdn, 2n) // inside page 0
    expect(bytesAt(m, BASE + 0xffcn, 8)).toEqual([1, 0, 0, 4, 5, 6, 7, 8])
    m.zero(BASE + 0xfffn, 3n) // across the boundary, partial on both sides
    expect(bytesAt(m, BASE + 0xffcn, 8)).toEqual([1, 0, 0, 0, 0, 0, 7, 8])
    expect(m.hasPage(BASE)).toBe(true)
    expect(m.hasPage(BASE + 0x1000n)).toBe(true)
    m.zero(BASE + 0xffcn, 1n)
    m.zero(BASE + 0x1002n, 2n)
    expect(m.nonZeroPages()).toEqual([])
    expect(m.hasPage(BASE)).toBe(true) // written once, all zeros now: kept but not listed
  })

  it('zeroing untouched memory creates no pages', () => {
    const m = ram()
    m.zero(BASE + 0x10n, 0x20n)
    m.zero(BASE, SIZE)
    expect(m.hasPage(BASE)).toBe(false)
    expect(m.nonZeroPages()).toEqual([])
  })

  it('nonZeroPages() lists pages with a non-zero byte in address order', () => {
    const m = ram()
    m.write(BASE + 0x5000n, 1, 1n)
    m.write(BASE + 0x1fffn, 1, 2n)
    m.write(BASE + 0x3000n, 8, 0n) // written, but only zeros
    const pages = m.nonZeroPages()
    expect(pages.map(([a]) => a)).toEqual([BASE + 0x1000n, BASE + 0x5000n])
    expect(pages[0]![1].length).toBe(4096)
    expect(pages[0]![1][0xfff]).toBe(2)
    expect(pages[1]![1][0]).toBe(1)
    expect(m.hasPage(BASE + 0x3000n)).toBe(true)
  })

  it('loadPage() installs a copy of a whole page and refuses anything else', () => {
    const m = ram()
    const data = new Uint8Array(4096)
    data[8] = 0x7f
    m.loadPage(BASE + 0x2000n, data)
    data[8] = 0
    expect(m.read(BASE + 0x2008n, 1)).toBe(0x7fn)
    expectHvmemError(() => m.loadPage(BASE + 0x800n, new Uint8Array(4096)), 'input', 'a page must be 4096 bytes')
    expectHvmemError(() => m.loadPage(BASE, new Uint8Array(4095)), 'input')
    expectHvmemError(() => m.loadPage(END, new Uint8Array(4096)), 'input', 'outside RAM')
  })
})
