/**
 * Issue 14, items 1 and 2, in one process: a snapshot named through a symbolic link is locked and
 * replaced as the file it points at (no update lost between the two names; a dangling link's target
 * is created); a hard link is told about; a live command's lock is never taken over, however old its
 * mtime; a lock whose owner is gone is taken over at once.
 */
import {spawnSync} from 'node:child_process'
import {link, lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink, utimes, writeFile} from 'node:fs/promises'
import {hostname, tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {createSnapshot, loadSnapshot, setLockWaitObserver, setWarn, updateSnapshot} from '../../src/snapshot/store.js'
import {HEAP_BASE, PAGE, newMachine} from './fixtures.js'
import {firstWait, startHolder} from './holder.js'

let dir: string
let real: string
let linked: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvmem-links-'))
  real = join(dir, 'real.snap')
  linked = join(dir, 'link.snap')
})

afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

/** Collects warnings while `body` runs. */
async function warnings(body: () => Promise<void>): Promise<string[]> {
  const said: string[] = []
  const previous = setWarn((message) => said.push(message))
  try {
    await body()
  } finally {
    setWarn(previous)
  }
  return said
}

describe('a snapshot named through a symbolic link', () => {
  it('20 concurrent updates, half through the link and half through the real name: 20 distinct pages, none lost', async () => {
    await createSnapshot(real, newMachine(), false)
    await symlink('real.snap', linked)
    const pages = await Promise.all(Array.from({length: 20}, (_, i) => updateSnapshot(i % 2 === 0 ? linked : real, (m) => m.heap.allocPage())))
    expect(new Set(pages).size).toBe(20)
    expect((await loadSnapshot(real)).heap.status().allocated).toBe(20n * PAGE)
    expect((await lstat(linked)).isSymbolicLink()).toBe(true)
    expect((await readdir(dir)).sort()).toEqual(['link.snap', 'real.snap'])
  })

  it('a dangling link: heap init through it creates the file it points at, and the link stays a link', async () => {
    await symlink('made.snap', linked)
    await createSnapshot(linked, newMachine(), false)
    expect((await lstat(linked)).isSymbolicLink()).toBe(true)
    expect(await readlink(linked)).toBe('made.snap')
    expect((await lstat(join(dir, 'made.snap'))).isFile()).toBe(true)
    expect(await updateSnapshot(linked, (m) => m.heap.allocPage())).toBe(HEAP_BASE)
    expect((await loadSnapshot(join(dir, 'made.snap'))).heap.status().allocated).toBe(PAGE)
  })

  it('a batch holding the lock through the link: an update through the real name waits for it, then lands on top', async () => {
    await createSnapshot(real, newMachine(), false)
    await symlink('real.snap', linked)
    const holder = await startHolder(['session', linked], 'locked')
    const {waiting, stop} = firstWait()
    try {
      const other = updateSnapshot(real, (m) => m.heap.allocPage())
      // It found the lock taken (before, it took its own lock at real.snap.lock and went on).
      expect(await Promise.race([waiting.then(() => 'waited'), other.then(() => 'went on')])).toBe('waited')
      holder.child.stdin!.end()
      expect(await holder.done).toEqual({code: 0, signal: null})
      expect(await other).toBe(HEAP_BASE + PAGE)
    } finally {
      stop()
    }
    expect((await loadSnapshot(real)).heap.status().allocated).toBe(2n * PAGE)
    expect((await lstat(linked)).isSymbolicLink()).toBe(true)
  })
})

describe('a hard-linked snapshot', () => {
  it('the save that parts the names says so once; the other name keeps the old snapshot', async () => {
    await createSnapshot(real, newMachine(), false)
    const other = join(dir, 'other.snap')
    await link(real, other)
    const said = await warnings(async () => {
      await updateSnapshot(real, (m) => m.heap.allocPage())
      await updateSnapshot(real, (m) => m.heap.allocPage())
    })
    expect(said).toEqual([`${real} has another hard link, which keeps the snapshot as it was: a save replaces the file (use a symbolic link to share a snapshot under two names)`])
    expect((await loadSnapshot(real)).heap.status().allocated).toBe(2n * PAGE)
    expect((await loadSnapshot(other)).heap.status().allocated).toBe(0n)
  })
})

describe('the lock and its owner', () => {
  it("a live command's lock is not taken over however long it goes untouched (a batch computing for minutes)", async () => {
    await createSnapshot(real, newMachine(), false)
    const holder = await startHolder(['session', real], 'locked')
    // What a long synchronous computation leaves: a lock whose mtime was not refreshed for a minute.
    const old = new Date(Date.now() - 60_000)
    await utimes(`${real}.lock`, old, old)
    const {waiting, stop} = firstWait()
    const said = await warnings(async () => {
      const other = updateSnapshot(real, (m) => m.heap.allocPage())
      expect(await Promise.race([waiting.then(() => 'waited'), other.then(() => 'took the lock over')])).toBe('waited')
      holder.child.stdin!.end()
      // the holder's save found its lock still its own
      expect(await holder.done).toEqual({code: 0, signal: null})
      expect(holder.stderr()).toBe('')
      expect(await other).toBe(HEAP_BASE + PAGE)
    }).finally(stop)
    expect(said).toEqual([])
    expect((await loadSnapshot(real)).heap.status().allocated).toBe(2n * PAGE)
  })

  // "At once": not one wait for the lock (the store's test hook counts them), not a timeout.
  it('a lock whose owner process is gone is taken over at once, even with a fresh mtime, saying whose it was', async () => {
    await createSnapshot(real, newMachine(), false)
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {encoding: 'utf8'})
    const pid = Number(gone.stdout)
    await mkdir(`${real}.lock`)
    await writeFile(join(`${real}.lock`, 'owner'), JSON.stringify({pid, start: null, host: hostname(), token: 'x'}))
    const waits: string[] = []
    const previous = setLockWaitObserver((lockPath) => waits.push(lockPath))
    const said = await warnings(async () => {
      expect(await updateSnapshot(real, (m) => m.heap.allocPage())).toBe(HEAP_BASE)
    }).finally(() => setLockWaitObserver(previous))
    expect(waits).toEqual([])
    expect(said).toEqual([`took over a stale lock on ${real} left by a command that did not finish (${real}.lock, its process ${pid} is gone)`])
    expect((await readdir(dir)).sort()).toEqual(['real.snap'])
  })
})
