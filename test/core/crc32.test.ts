import fc from 'fast-check'
import {crc32} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import {combineCrc32} from '../../src/core/crc32.js'

describe('combineCrc32', () => {
  it("is zlib's CRC-32 of the two pieces one after the other (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({maxLength: 300}), fc.uint8Array({maxLength: 5000}), (a, b) => {
        expect(combineCrc32(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])))
      }),
    )
  })

  it('chains over pages: sixteen 4 KiB pages combine to the CRC of the run', () => {
    const run = new Uint8Array(16 * 4096).map((_, i) => (i * 7919) >>> 3)
    let crc = crc32(run.subarray(0, 4096))
    for (let k = 1; k < 16; k++) crc = combineCrc32(crc, crc32(run.subarray(k * 4096, (k + 1) * 4096)), 4096)
    expect(crc).toBe(crc32(run))
    // a change in one page changes the combination's match
    const damaged = new Uint8Array(run)
    damaged[5 * 4096 + 17] ^= 1
    expect(crc32(damaged)).not.toBe(crc)
  })
})
