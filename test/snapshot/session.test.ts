/** withSnapshotSession (src/snapshot/store.ts): one lock, one load, one save for many commands (hvmem batch). */
import {mkdir, mkdtemp, readFile, readdir, rm, rmdir, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {encodeSnapshot} from '../../src/snapshot/format.js'
import {createSnapshot, loadSnapshot, updateSnapshot, withSnapshotSession} from '../../src/snapshot/store.js'
import {HEAP_BASE, PAGE, expectHvmemRejection, newMachine} from './fixtures.js'

let dir: string
let file: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvmem-session-test-'))
  file = join(dir, 'test.snap')
  await writeFile(file, encodeSnapshot(newMachine()))
})

afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

/** Bytes, inode and nanosecond mtime: what "left alone" means for a file (a save renames a new file over it). */
async function fingerprint(path: string): Promise<{bytes: string; ino: bigint; mtimeNs: bigint}> {
  const info = await stat(path, {bigint: true})
  return {bytes: (await readFile(path)).toString('hex'), ino: info.ino, mtimeNs: info.mtimeNs}
}

describe('withSnapshotSession', () => {
  it('loads and updates of the path use one machine; one save at the end holds every change', async () => {
    const {result, saved} = await withSnapshotSession(file, async (session) => {
      const pages: bigint[] = []
      for (let i = 0; i < 5; i++) pages.push(await updateSnapshot(file, (m) => m.heap.allocPage()))
      // Nothing written yet: the file is saved once, at the end.
      expect((await readFile(file)).equals(encodeSnapshot(newMachine()))).toBe(true)
      expect(await loadSnapshot(file)).toBe(session.machine)
      // The same file by another spelling is the session's too.
      expect(await loadSnapshot(join(dir, '.', 'test.snap'))).toBe(session.machine)
      expect(session.changed).toBe(true)
      return {result: pages, commit: true}
    })
    expect(saved).toBe(true)
    expect(result).toEqual([0n, 1n, 2n, 3n, 4n].map((i) => HEAP_BASE + i * PAGE))
    const expected = newMachine()
    expected.heap.allocPages(5)
    expect((await readFile(file)).equals(encodeSnapshot(expected))).toBe(true)
    expect(await readdir(dir)).toEqual(['test.snap']) // lock released, no temp file
  })

  it('reads only: the file is not rewritten (same inode, bytes and mtime)', async () => {
    const before = await fingerprint(file)
    const {saved} = await withSnapshotSession(file, async () => {
      await loadSnapshot(file)
      return {result: undefined, commit: true}
    })
    expect(saved).toBe(false)
    expect(await fingerprint(file)).toEqual(before)
  })

  it('commit false, or a body that throws: nothing saved, the file byte-identical, the lock released', async () => {
    const before = await fingerprint(file)
    const {saved} = await withSnapshotSession(file, async () => {
      await updateSnapshot(file, (m) => m.heap.allocPage())
      return {result: undefined, commit: false}
    })
    expect(saved).toBe(false)
    await expect(
      withSnapshotSession(file, async () => {
        await updateSnapshot(file, (m) => m.heap.allocPage())
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(await fingerprint(file)).toEqual(before)
    expect(await readdir(dir)).toEqual(['test.snap'])
    // and outside a session, the store is itself again
    expect(await updateSnapshot(file, (m) => m.heap.allocPage())).toBe(HEAP_BASE)
  })

  it('refuses another snapshot, creating one, and a second session while one is open', async () => {
    const other = join(dir, 'other.snap')
    await writeFile(other, encodeSnapshot(newMachine()))
    await withSnapshotSession(file, async () => {
      await expectHvmemRejection(loadSnapshot(other), 'input', `cannot use ${other} inside a batch, which works on ${file}; run that command outside the batch`)
      await expectHvmemRejection(
        updateSnapshot(other, () => 0),
        'input',
        `cannot use ${other} inside a batch`,
      )
      await expectHvmemRejection(
        createSnapshot(join(dir, 'new.snap'), newMachine(), false),
        'input',
        `cannot create ${join(dir, 'new.snap')} inside a batch, which works on ${file}; create it before the batch`,
      )
      await expectHvmemRejection(
        withSnapshotSession(file, async () => ({result: 0, commit: true})),
        'input',
        `a batch is already running on ${file}`,
      )
      return {result: undefined, commit: true}
    })
    expect(await readdir(dir)).toEqual(['other.snap', 'test.snap'])
  })

  it('a missing snapshot, or a directory, fails before any lock is made', async () => {
    const missing = join(dir, 'missing.snap')
    await expectHvmemRejection(
      withSnapshotSession(missing, async () => ({result: 0, commit: true})),
      'snapshot-missing',
    )
    await mkdir(join(dir, 'd.snap'))
    await expectHvmemRejection(
      withSnapshotSession(join(dir, 'd.snap'), async () => ({result: 0, commit: true})),
      'snapshot-invalid',
    )
    expect((await readdir(dir)).sort()).toEqual(['d.snap', 'test.snap'])
  })

  it('waits for a lock another command holds, and has the lock while it runs', async () => {
    await mkdir(`${file}.lock`)
    let ran = false
    const session = withSnapshotSession(file, async () => {
      ran = true
      expect((await readdir(dir)).sort()).toEqual(['test.snap', 'test.snap.lock'])
      return {result: undefined, commit: true}
    })
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(ran).toBe(false)
    await rmdir(`${file}.lock`)
    await session
    expect(ran).toBe(true)
  })
})
