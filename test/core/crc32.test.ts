import fc from 'fast-check'
import {crc32} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import {combineCrc32, crc32Bytes} from '../../src/core/crc32.js'
import {SMALL_BYTES, crc32 as snapshotCrc32} from '../../src/snapshot/checksum.js'
import {ZERO_PAGE_CRC} from '../../src/snapshot/format.js'

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

describe('crc32Bytes', () => {
  it("is zlib's crc32(bytes, crc) for any bytes and running value (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({maxLength: 2000}), fc.integer({min: 0, max: 0xffff_ffff}), (bytes, running) => {
        expect(crc32Bytes(bytes, running)).toBe(crc32(bytes, running))
        expect(crc32Bytes(bytes)).toBe(crc32(bytes))
      }),
    )
  })

  it('gives the running value back for no bytes, and the check value of "123456789"', () => {
    expect(crc32Bytes(new Uint8Array(0), 0x1234_5678)).toBe(0x1234_5678)
    expect(crc32Bytes(Buffer.from('123456789'))).toBe(0xcbf4_3926)
  })
})

describe("the snapshot's crc32", () => {
  it.each([0, 1, SMALL_BYTES - 1, SMALL_BYTES, SMALL_BYTES + 1, 4096, 70_000])("is zlib's for %i bytes, from a running value too", (length) => {
    const bytes = new Uint8Array(length).map((_, i) => (i * 2654435761) >>> 24)
    expect(snapshotCrc32(bytes)).toBe(crc32(bytes))
    expect(snapshotCrc32(bytes, 0xdead_beef)).toBe(crc32(bytes, 0xdead_beef))
  })

  it("takes a string as its UTF-8 bytes, as zlib's does", () => {
    const name = 'snapshot-\u00e9t\u00e9-\u{1f600}.snap'
    expect(snapshotCrc32(name)).toBe(crc32(name))
    expect(snapshotCrc32(name.repeat(100))).toBe(crc32(name.repeat(100)))
  })

  it('has the CRC of an all-zero page right', () => {
    expect(ZERO_PAGE_CRC).toBe(crc32(new Uint8Array(4096)))
  })
})
