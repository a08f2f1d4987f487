import {describe, expect, it} from 'vitest'

import {GiB, KiB, MiB, TiB, U64_MAX, alignUp, formatSize, hex, isAligned, isPowerOfTwo} from '../../src/core/u64.js'

describe('u64 helpers', () => {
  it('constants', () => {
    expect(U64_MAX).toBe(0xffff_ffff_ffff_ffffn)
    expect([KiB, MiB, GiB, TiB]).toEqual([1024n, 0x10_0000n, 0x4000_0000n, 0x100_0000_0000n])
  })

  it('isPowerOfTwo()', () => {
    expect([1n, 2n, 4096n, 1n << 63n, 1n << 64n].map(isPowerOfTwo)).toEqual([true, true, true, true, true])
    expect([0n, -2n, 3n, 6n, 4097n, U64_MAX].map(isPowerOfTwo)).toEqual([false, false, false, false, false, false])
  })

  it('alignUp() and isAligned() do not wrap', () => {
    expect(alignUp(0x4100_0004n, 4096n)).toBe(0x4100_1000n)
    expect(alignUp(0x4100_1000n, 4096n)).toBe(0x4100_1000n)
    expect(alignUp(U64_MAX, 4096n)).toBe(1n << 64n)
    expect(isAligned(0x20_0000n, 0x20_0000n)).toBe(true)
    expect(isAligned(0x20_1000n, 0x20_0000n)).toBe(false)
  })

  it('hex()', () => {
    expect(hex(0x4000_07fdn)).toBe('0x400007fd')
    expect(hex(0xabn, 4)).toBe('0x00ab')
    expect(hex(0n)).toBe('0x0')
  })

  it('formatSize() uses the largest unit that divides exactly', () => {
    expect(formatSize(4096n)).toBe('4K')
    expect(formatSize(0x20_0000n)).toBe('2M')
    expect(formatSize(GiB)).toBe('1G')
    expect(formatSize(512n * GiB)).toBe('512G')
    expect(formatSize(2n * TiB)).toBe('2T')
    expect(formatSize(6n * KiB)).toBe('6K')
    expect(formatSize(MiB + KiB)).toBe('1025K')
    expect(formatSize(100n)).toBe('100B')
    expect(formatSize(0n)).toBe('0B')
  })
})
