/** hvmem batch's output buffer (src/cli/batch.ts, BufferedOutput): what reaches stdout, in order, whatever the lines. */
import {afterEach, describe, expect, it, vi} from 'vitest'

import {BufferedOutput} from '../../src/cli/batch.js'

afterEach(() => {
  vi.restoreAllMocks()
})

/** Runs `write` against a BufferedOutput and returns what it wrote to stdout, and in how many writes. */
function capture(write: (out: BufferedOutput) => void): {text: string; writes: number} {
  const chunks: Buffer[] = []
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(Buffer.from(chunk))
    return true
  })
  const out = new BufferedOutput()
  write(out)
  out.flush()
  return {text: Buffer.concat(chunks).toString('utf8'), writes: chunks.length}
}

describe('BufferedOutput', () => {
  it('10,000 short lines: each with its newline, in order, in a few large writes', () => {
    const lines = Array.from({length: 10_000}, (_, i) => `0x${(0x4100_0000 + i * 4096).toString(16)}`)
    const {text, writes} = capture((out) => {
      for (const line of lines) out.line(line)
    })
    expect(text).toBe(lines.map((l) => `${l}\n`).join(''))
    expect(writes).toBeLessThanOrEqual(3)
  })

  it('non-ASCII, empty and long lines (longer than the buffer) keep their bytes and order', () => {
    const long = 'x'.repeat(3 * BufferedOutput.CHUNK)
    const lines = ['é ü 𝄞', '', long, 'after', ...Array.from({length: BufferedOutput.LINES + 5}, (_, i) => `line ${i} ✓`), long, 'end']
    const {text} = capture((out) => {
      for (const line of lines) out.line(line)
    })
    expect(text).toBe(lines.map((l) => `${l}\n`).join(''))
  })

  it('stderr comes out after stdout, once', () => {
    const errors: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk))
      return true
    })
    const {text} = capture((out) => {
      out.line('a')
      out.stderr('hvmem: one\n')
      out.line('b')
      out.stderr('hvmem: two\n')
    })
    expect(text).toBe('a\nb\n')
    expect(errors).toEqual(['hvmem: one\nhvmem: two\n'])
  })
})
