import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {PhysicalMemory} from '../../src/core/memory.js'
import {expectHvmemError} from './helpers.js'

const BASE = 0x4000_0000n
const SIZE = 0x100_0000n // 16 MiB: frames 0x40000..0x40fff
const FIRST = Number(BASE >> 12n)

function filled(frame: number): Uint8Array {
  return new Uint8Array(4096).fill((frame % 255) + 1)
}

describe('PhysicalMemory with storedFrames (the compact page list)', () => {
  it('behaves as storedPages would: reads, hasPage, zero and the page order', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({min: 0, max: 4095}), {maxLength: 40}).map((a) => a.sort((x, y) => x - y)),
        fc.array(fc.tuple(fc.constantFrom('write', 'zero', 'read'), fc.integer({min: 0, max: 4095})), {maxLength: 30}),
        (offsets, ops) => {
          const frames = offsets.map((o) => FIRST + o)
          const source = (address: bigint): Uint8Array => filled(Number(address >> 12n))
          const compact = new PhysicalMemory(BASE, SIZE, {storedFrames: Float64Array.from(frames), pageSource: source})
          const classic = new PhysicalMemory(BASE, SIZE, {storedPages: frames.map((f) => BigInt(f) << 12n), pageSource: source})
          for (const [op, offset] of ops) {
            const address = BASE + (BigInt(offset) << 12n)
            for (const m of [compact, classic]) {
              if (op === 'write') m.writeU64(address + 8n, 0x1122_3344_5566_7788n)
              else if (op === 'zero') m.zero(address, 4096n)
              else m.readU64(address)
            }
            expect(compact.hasPage(address)).toBe(classic.hasPage(address))
            expect(compact.readU64(address)).toBe(classic.readU64(address))
          }
          const pages = (m: PhysicalMemory): Array<[bigint, string]> => [...m.readNonZeroPages()].map(([a, b]) => [a, Buffer.from(b).toString('hex')])
          expect(pages(compact)).toEqual(pages(classic))
          expect(compact.nonZeroPages().map(([a]) => a)).toEqual(classic.nonZeroPages().map(([a]) => a))
        },
      ),
      {numRuns: 100},
    )
  })

  it('refuses frames outside RAM or out of order', () => {
    const pageSource = (): undefined => undefined
    expectHvmemError(
      () => new PhysicalMemory(BASE, SIZE, {storedFrames: Float64Array.from([FIRST - 1]), pageSource}),
      'input',
      'stored page 0x3ffff000 is not a 4 KiB page inside RAM 0x40000000-0x41000000',
    )
    expectHvmemError(
      () => new PhysicalMemory(BASE, SIZE, {storedFrames: Float64Array.from([FIRST + 4096]), pageSource}),
      'input',
      'stored page 0x41000000 is not a 4 KiB page inside RAM 0x40000000-0x41000000',
    )
    expectHvmemError(
      () => new PhysicalMemory(BASE, SIZE, {storedFrames: Float64Array.from([FIRST + 2, FIRST + 2]), pageSource}),
      'input',
      'stored frames must be strictly ascending (frame 262146 at 1)',
    )
  })
})

describe('page tags', () => {
  it("keeps a loaded page's tag until the page is written or zeroed", () => {
    const m = new PhysicalMemory(BASE, SIZE)
    m.loadPage(BASE, filled(1), 0xdead_beef)
    m.loadPage(BASE + 0x1000n, filled(2), 7)
    m.loadPage(BASE + 0x2000n, filled(3), 9)
    m.loadPage(BASE + 0x3000n, filled(4))
    expect([0n, 0x1000n, 0x2000n, 0x3000n].map((o) => m.pageTag(BASE + o))).toEqual([0xdead_beef, 7, 9, undefined])
    m.readU64(BASE)
    m.readBytes(BASE + 0x1000n, 16)
    expect(m.pageTag(BASE)).toBe(0xdead_beef)
    m.writeU64(BASE + 0xff8n, 1n)
    m.writeBytes(BASE + 0x1fffn, new Uint8Array([1, 2]))
    m.zero(BASE + 0x2010n, 8n)
    expect([0n, 0x1000n, 0x2000n].map((o) => m.pageTag(BASE + o))).toEqual([undefined, undefined, undefined])
  })

  it('adopts an aligned page without copying only when asked', () => {
    const m = new PhysicalMemory(BASE, SIZE)
    const chunk = new Uint8Array(8192).fill(5)
    m.loadPage(BASE, chunk.subarray(4096), undefined, {adopt: true})
    m.loadPage(BASE + 0x1000n, chunk.subarray(0, 4096))
    chunk.fill(6)
    expect(m.readU64(BASE)).toBe(0x0606_0606_0606_0606n)
    expect(m.readU64(BASE + 0x1000n)).toBe(0x0505_0505_0505_0505n)
    expect(m.isResident(BASE)).toBe(true)
    expect(m.isResident(BASE + 0x2000n)).toBe(false)
  })
})

describe('PhysicalMemory: a page source that gives its pages (givesPages)', () => {
  /** Two stored pages in one buffer, as a snapshot reader's run of pages; the second at `offset` bytes into it. */
  function source(offset: number): {buffer: Uint8Array; pageSource: (address: bigint) => Uint8Array | undefined} {
    const buffer = new Uint8Array(offset + 4096).fill(7)
    return {buffer, pageSource: (address) => (address === BASE ? buffer.subarray(0, 4096) : buffer.subarray(offset, offset + 4096))}
  }
  const frames = Float64Array.from([FIRST, FIRST + 1])

  it("keeps the source's own bytes, 8-byte aligned, where it would otherwise keep a copy; a write changes them", () => {
    const given = source(4096)
    const m = new PhysicalMemory(BASE, SIZE, {storedFrames: frames, pageSource: given.pageSource, givesPages: true})
    const page = m.pageOfFrame(FIRST)!
    expect(page.buffer).toBe(given.buffer.buffer)
    expect(page.byteOffset).toBe(0)
    m.write(BASE + 8n, 1, 0x99n)
    expect(given.buffer[8]).toBe(0x99)
    expect(m.readU64(BASE + 8n)).toBe(0x0707_0707_0707_0799n)
    // a page that is not 8-byte aligned in its buffer is copied (isZero reads words)
    const odd = source(4100)
    const n = new PhysicalMemory(BASE, SIZE, {storedFrames: frames, pageSource: odd.pageSource, givesPages: true})
    const copied = n.pageOfFrame(FIRST + 1)!
    expect(copied.buffer).not.toBe(odd.buffer.buffer)
    expect(copied.byteOffset).toBe(0)
    expect(n.readU64(BASE + 0x1000n)).toBe(0x0707_0707_0707_0707n)
  })

  it('without it, memory keeps a copy: a write leaves the source as it was', () => {
    const given = source(4096)
    const m = new PhysicalMemory(BASE, SIZE, {storedFrames: frames, pageSource: given.pageSource})
    expect(m.pageOfFrame(FIRST)!.buffer).not.toBe(given.buffer.buffer)
    m.write(BASE + 8n, 1, 0x99n)
    expect(given.buffer[8]).toBe(7)
    expect(m.readU64(BASE + 8n)).toBe(0x0707_0707_0707_0799n)
  })
})
