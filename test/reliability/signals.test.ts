/**
 * Issue 14, item 2: SIGINT, SIGTERM or SIGHUP while a command holds the lock (or writes a temp file)
 * removes the lock and the temp file at once, says in one line what became of the snapshot, and
 * dies of the signal (the shell sees 128+N). Each test waits for something it can see (a line
 * printed, the lock's owner file naming the process), then signals, then waits for the exit.
 */
import {spawn} from 'node:child_process'
import {mkdir, readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {createSnapshot, tempFilePattern} from '../../src/snapshot/store.js'
import {newMachine} from '../snapshot/fixtures.js'
import {startHolder} from '../snapshot/holder.js'
import {BIN, hvmem, hvmemEnv, scratch, stackLines, start} from './proc.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  ;({dir, snap, cleanup} = await scratch())
})
afterEach(async () => cleanup())

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('a stop signal while the lock is held', () => {
  it.each(SIGNALS)('%s: the lock is removed, the snapshot unchanged, one line, and the process dies of the signal', async (signal) => {
    await createSnapshot(snap, newMachine(), false)
    const before = await readFile(snap)
    const holder = await startHolder(['session', snap], 'locked')
    expect(await readdir(dir)).toContain('hvmem.snap.lock')
    holder.child.kill(signal)
    expect(await holder.done).toEqual({code: null, signal})
    expect(holder.stderr()).toBe(`hvmem: stopped by ${signal}; ${snap} was not changed\n`)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
    expect((await readFile(snap)).equals(before)).toBe(true)
  })

  it.each(SIGNALS)('%s while an output file is written: its temp file is removed, and no file is left', async (signal) => {
    const out = join(dir, 'image.bin')
    const holder = await startHolder(['export', out], 'writing')
    expect((await readdir(dir)).filter((name) => tempFilePattern('image.bin').test(name))).toHaveLength(1)
    holder.child.kill(signal)
    expect(await holder.done).toEqual({code: null, signal})
    expect(holder.stderr()).toBe(`hvmem: stopped by ${signal}; ${out} was not written\n`)
    expect(await readdir(dir)).toEqual([])
  })
})

describe('hvmem batch and SIGTERM', () => {
  it('a long batch (50,000 lines) stops within its run: lock gone, snapshot unchanged, and the next command does not wait', async () => {
    expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
    const before = await readFile(snap)
    await writeFile(join(dir, 'script.txt'), 'heap status\n'.repeat(50_000))
    const batch = start(dir, ['batch', 'script.txt'])
    let exited = false
    void batch.done.then(() => (exited = true))
    // Wait until the batch holds the lock: its owner file names the batch's process.
    const owner = join(dir, 'hvmem.snap.lock', 'owner')
    for (;;) {
      const text = await readFile(owner, 'utf8').catch(() => '')
      if (text.includes(`"pid":${batch.child.pid},`)) break
      expect(exited, 'the batch ended before it was seen holding the lock').toBe(false)
      await sleep(5)
    }
    batch.child.kill('SIGTERM')
    const r = await batch.done
    expect(r.signal).toBe('SIGTERM')
    expect(r.stderr).toBe('hvmem: stopped by SIGTERM; ./hvmem.snap was not changed\n')
    expect(stackLines(r.stderr)).toEqual([])
    expect(await readdir(dir)).toEqual(['hvmem.snap', 'script.txt'])
    expect((await readFile(snap)).equals(before)).toBe(true)
    const next = await hvmem(dir, ['alloc', 'page'])
    expect(next).toEqual({code: 0, stdout: '0x41000000\n', stderr: ''})
  })
})

describe('a stop signal while snapshot import - keeps standard input in a temp file', () => {
  /** `snapshot import -` with TMPDIR a directory of its own (`tmp`, in the scratch directory), reading a pipe the test writes to. */
  async function importStdin(...flags: string[]): Promise<{child: ReturnType<typeof spawn>; tmp: string; done: Promise<{code: number | null; signal: NodeJS.Signals | null; stderr: string}>}> {
    const tmp = join(dir, 'tmp')
    await mkdir(tmp)
    const child = spawn(process.execPath, [BIN, 'snapshot', 'import', '-', '--base', '0x4000_0000', ...flags], {cwd: dir, env: hvmemEnv({TMPDIR: tmp}), stdio: ['pipe', 'ignore', 'pipe']})
    child.stdin!.on('error', () => undefined) // (the pipe closed by the signal)
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const done = new Promise<{code: number | null; signal: NodeJS.Signals | null; stderr: string}>((resolve) => child.on('close', (code, signal) => resolve({code, signal, stderr})))
    return {child, tmp, done}
  }

  /** Waits until the temp file (tmp/hvmem-stdin-XXXXXX/image.raw) holds `bytes` bytes. */
  async function spooled(tmp: string, bytes: number, done: Promise<unknown>): Promise<void> {
    let exited = false
    void done.then(() => (exited = true))
    for (;;) {
      const [spool] = await readdir(tmp)
      if (spool !== undefined && (await stat(join(tmp, spool, 'image.raw')).catch(() => undefined))?.size === bytes) return
      expect(exited, 'the import ended before its temp file was seen').toBe(false)
      await sleep(5)
    }
  }

  it.each(SIGNALS)('%s while it copies standard input: the temp file and its directory are removed, and the process dies of the signal', async (signal) => {
    const run = await importStdin()
    run.child.stdin!.write(Buffer.alloc(100_000, 1)) // and no end: the copy goes on
    await spooled(run.tmp, 100_000, run.done)
    run.child.kill(signal)
    const r = await run.done
    expect(await readdir(run.tmp)).toEqual([])
    expect(r).toEqual({code: null, signal, stderr: `hvmem: stopped by ${signal}\n`})
    expect(await readdir(dir)).toEqual(['tmp'])
  })

  it('SIGTERM once it is copied, while another command holds the lock: the same, and the snapshot unchanged', async () => {
    await createSnapshot(snap, newMachine(), false)
    const before = await readFile(snap)
    const holder = await startHolder(['session', snap], 'locked')
    const run = await importStdin('--force')
    run.child.stdin!.end(Buffer.alloc(100_000, 1))
    await spooled(run.tmp, 100_000, run.done)
    run.child.kill('SIGTERM')
    const r = await run.done
    expect(await readdir(run.tmp)).toEqual([])
    expect(r).toEqual({code: null, signal: 'SIGTERM', stderr: 'hvmem: stopped by SIGTERM\n'})
    holder.child.kill('SIGTERM')
    await holder.done
    expect((await readdir(dir)).sort()).toEqual(['hvmem.snap', 'tmp'])
    expect((await readFile(snap)).equals(before)).toBe(true)
  })
})
