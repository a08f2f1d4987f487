/** The progress bar: drawn only on a terminal, never under --json, erased when done. */
import {describe, expect, it, vi} from 'vitest'

import {PROGRESS_THRESHOLD, progress} from '../../src/cli/progress.js'

function fakeStream(isTTY: boolean): {stream: NodeJS.WriteStream; written: string[]} {
  const written: string[] = []
  const stream = {isTTY, write: (s: string) => written.push(s) > 0} as unknown as NodeJS.WriteStream
  return {stream, written}
}

describe('progress', () => {
  it('draws a bar on a terminal and erases it when finished', () => {
    const {stream, written} = fakeStream(true)
    const now = vi.spyOn(Date, 'now').mockReturnValue(1000)
    try {
      const p = progress('importing', 10_000, {json: false, stream})
      p.update(2500)
      now.mockReturnValue(1050)
      p.update(5000) // within 100 ms of the last draw: skipped
      now.mockReturnValue(1200)
      p.update(5000)
      p.finish()
    } finally {
      now.mockRestore()
    }
    expect(written).toEqual([`\rimporting [${'█'.repeat(7)}${'░'.repeat(23)}]  25%`, `\rimporting [${'█'.repeat(15)}${'░'.repeat(15)}]  50%`, '\r\u001b[2K'])
  })

  it('draws nothing when piped, under --json, or for short operations', () => {
    for (const [isTTY, json, total] of [
      [false, false, 10_000],
      [true, true, 10_000],
      [true, false, PROGRESS_THRESHOLD - 1],
    ] as const) {
      const {stream, written} = fakeStream(isTTY)
      const p = progress('diffing', total, {json, stream})
      p.update(total / 2)
      p.finish()
      expect(written).toEqual([])
    }
  })
})
