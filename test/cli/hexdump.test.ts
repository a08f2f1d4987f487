/** The hexdump lines of `snapshot show`, `mem read` and `snapshot diff --bytes`, made from tables: byte for byte what the first rendering gave. */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {pageDump} from '../../src/cli/diff-text.js'
import {hexdump, hexdumpRow} from '../../src/cli/render.js'
import {hex} from '../../src/core/u64.js'

const dim = (text: string): string => `<${text}>`

/** The first rendering (arrays of strings a line), kept as the reference. */
function hexdumpBefore(address: bigint, bytes: Uint8Array): string {
  const lines: string[] = []
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const row = bytes.subarray(offset, offset + 16)
    const hexes = [...row].map((b) => b.toString(16).padStart(2, '0'))
    const left = hexes.slice(0, 8).join(' ')
    const right = hexes.slice(8).join(' ')
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('')
    lines.push(`${dim(hex(address + BigInt(offset), 10))}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${ascii}|`)
  }
  return lines.join('\n')
}

function pageDumpBefore(address: bigint, page: Uint8Array): string[] {
  const out: string[] = []
  let folded = false
  for (let offset = 0; offset < page.length; offset += 16) {
    const row = page.subarray(offset, offset + 16)
    if (row.every((b) => b === 0)) {
      if (!folded) out.push('*')
      folded = true
      continue
    }
    folded = false
    out.push(hexdumpBefore(address + BigInt(offset), row))
  }
  return out
}

const address = fc.bigInt({min: 0n, max: (1n << 52n) - 1n})

describe('hexdump', () => {
  it('one line of 16 bytes: two groups of eight, then the printable characters', () => {
    const bytes = Uint8Array.from([0x00, 0x41, 0x7e, 0x7f, 0x20, 0x1f, 0xff, 0x80, 0x61, 0x62, 0x63, 0x0a, 0x30, 0x39, 0x2e, 0x7b])
    expect(hexdumpRow(0x4100_0010n, bytes, 0, dim)).toBe('<0x0041000010>  00 41 7e 7f 20 1f ff 80  61 62 63 0a 30 39 2e 7b  |.A~. ...abc.09.{|')
    expect(hexdump(0x10n, bytes.subarray(0, 5), dim)).toBe(`<0x0000000010>  ${'00 41 7e 7f 20'.padEnd(23)}  ${''.padEnd(23)}  |.A~. |`)
  })

  it('any bytes at any address, a short last line too: what the first rendering gave', () => {
    fc.assert(
      fc.property(address, fc.uint8Array({maxLength: 80}), (at, bytes) => {
        expect(hexdump(at, bytes, dim)).toBe(hexdumpBefore(at, bytes))
      }),
      {numRuns: 300},
    )
  })

  it("a page's dump, runs of zero lines folded into '*': what the first rendering gave", () => {
    // sparse pages: most lines zero, some bytes set
    const page = fc.array(fc.tuple(fc.nat(4095), fc.integer({min: 1, max: 255})), {maxLength: 40}).map((sets) => {
      const p = new Uint8Array(4096)
      for (const [i, b] of sets) p[i] = b
      return p
    })
    fc.assert(
      fc.property(address, page, (at, p) => {
        expect(pageDump(at, p, dim)).toEqual(pageDumpBefore(at, p))
      }),
      {numRuns: 200},
    )
  })
})
