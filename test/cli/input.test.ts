/**
 * src/cli/input.ts: a named input (batch's script, map apply's layout) read as a regular file in plain
 * reads, or as a stream (a FIFO, standard input that is a pipe), gives the same bytes either way.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {createWriteStream, openSync, closeSync} from 'node:fs'
import {chmod, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {inputChunks} from '../../src/cli/input.js'
import {HvmemError} from '../../src/core/errors.js'
import {expectOkInProcess} from './inprocess.js'
import {BIN, hvmemEnv, scratch} from './run.js'

const names = {name: 'the test input', stdinDirectory: 'stdin is a directory'}

async function chunksOf(file: string): Promise<Buffer[]> {
  const chunks: Buffer[] = []
  for await (const chunk of inputChunks(file, names)) chunks.push(chunk)
  return chunks
}

/** Bytes 0..n-1 of a text of numbered lines with a 3-byte character (U+2026) now and then, one across 64 KiB. */
function text(bytes: number): Buffer {
  const lines: string[] = []
  for (let i = 0, length = 0; length < bytes; i++) {
    lines.push(i % 7 === 0 ? `line ${i} \u2026` : `line ${i}`)
    length += lines.at(-1)!.length + 1
  }
  const all = Buffer.from(lines.join('\n'))
  // a 3-byte character that starts 1 byte before the 64 KiB boundary
  Buffer.from('\u2026').copy(all, (1 << 16) - 1)
  return all.subarray(0, bytes)
}

describe('inputChunks', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => {
    ;({dir, cleanup} = await scratch())
  })
  afterEach(async () => cleanup())

  it('a regular file: its bytes in chunks of at most 64 KiB, each a buffer of its own', async () => {
    const bytes = text(200_000)
    await writeFile(join(dir, 'in.txt'), bytes)
    const chunks = await chunksOf(join(dir, 'in.txt'))
    expect(chunks.map((c) => c.length)).toEqual([65_536, 65_536, 65_536, 3_392])
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true)
    // each chunk has its own memory: a caller may keep them all (map apply joins them)
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(4)
  })

  it('an empty file gives no chunk', async () => {
    await writeFile(join(dir, 'empty.txt'), '')
    expect(await chunksOf(join(dir, 'empty.txt'))).toEqual([])
  })

  it('a FIFO is read as a stream: the same bytes', async () => {
    const fifo = join(dir, 'in.fifo')
    execFileSync('mkfifo', [fifo])
    const bytes = text(100_000)
    const writer = createWriteStream(fifo)
    writer.end(bytes)
    expect(Buffer.concat(await chunksOf(fifo)).equals(bytes)).toBe(true)
  })

  it.each([
    ['a missing file', 'nosuch.txt', 'input', 'cannot read the test input: there is no such file'],
    ['a directory', '.', 'input', 'cannot read the test input: it is a directory'],
  ])('%s is an HvmemError naming it', async (_, file, kind, message) => {
    const error = await chunksOf(join(dir, file)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HvmemError)
    expect(error).toMatchObject({kind, message})
  })

  it.runIf(process.getuid?.() !== 0)('an unreadable file is an I/O error naming it', async () => {
    await writeFile(join(dir, 'secret.txt'), 'alloc page\n')
    await chmod(join(dir, 'secret.txt'), 0o200)
    const error = await chunksOf(join(dir, 'secret.txt')).catch((e: unknown) => e)
    expect(error).toMatchObject({kind: 'io', message: expect.stringMatching(/^cannot read the test input: EACCES: permission denied/)})
  })

  it('a caller that stops early closes the file (the rest is not read)', async () => {
    await writeFile(join(dir, 'big.txt'), text(300_000))
    const before = openSync('/dev/null', 'r')
    closeSync(before)
    for await (const chunk of inputChunks(join(dir, 'big.txt'), names)) {
      expect(chunk.length).toBe(65_536)
      break
    }
    // the descriptor the reader had is free again: the next open gets the same number
    const after = openSync('/dev/null', 'r')
    closeSync(after)
    expect(after).toBe(before)
  })

  it('hvmem batch < FILE: standard input that is a regular file is read whole, across chunks', async () => {
    await expectOkInProcess(dir, 'heap', 'init')
    // 9,000 lines (over 64 KiB of script): a comment line carries the text across the chunk boundaries
    const script = Array.from({length: 9000}, (_, i) => (i % 3 === 0 ? 'alloc page' : `# padding \u2026 ${i}`)).join('\n')
    expect(Buffer.byteLength(script)).toBeGreaterThan(1 << 17)
    await writeFile(join(dir, 'script.hvmem'), script)
    const fd = openSync(join(dir, 'script.hvmem'), 'r')
    try {
      const r = spawnSync(process.execPath, [BIN, 'batch', '--json'], {cwd: dir, env: hvmemEnv(), stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8'})
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      const summary = JSON.parse(r.stdout.trimEnd().split('\n').at(-1)!) as {summary: {lines: number; ok: number}}
      expect(summary.summary).toMatchObject({lines: 3000, ok: 3000})
    } finally {
      closeSync(fd)
    }
  })
})
