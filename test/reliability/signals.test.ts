/**
 * Issue 14, item 2: SIGINT, SIGTERM or SIGHUP while a command holds the lock (or writes a temp file)
 * removes the lock and the temp file at once, says in one line what became of the snapshot, and
 * dies of the signal (the shell sees 128+N). Each test waits for something it can see (a line
 * printed, the lock's owner file naming the process), then signals, then waits for the exit.
 */
import {readFile, readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {createSnapshot, tempFilePattern} from '../../src/snapshot/store.js'
import {newMachine} from '../snapshot/fixtures.js'
import {startHolder} from '../snapshot/holder.js'
import {hvmem, scratch, stackLines, start} from './proc.js'

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
