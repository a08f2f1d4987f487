import {mkdirSync, rmSync} from 'node:fs'
import {chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, rmdir, stat, symlink, utimes, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {HvmemError} from '../../src/core/errors.js'
import type {Machine} from '../../src/core/machine.js'
import {decodeSnapshot, encodeSnapshot} from '../../src/snapshot/format.js'
import {createSnapshot, loadSnapshot, setLockWaitObserver, setWarn, updateSnapshot} from '../../src/snapshot/store.js'
import {HEAP_BASE, PAGE, RAM_BASE, dataStart, encodeV1, expectHvmemError, expectHvmemRejection, newMachine} from './fixtures.js'

let dir: string
let file: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvmem-snapshot-test-'))
  file = join(dir, 'test.snap')
})

afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

/** A machine with a mapper, a mapping and written bytes, so its file has several pages. */
function populated(): Machine {
  const m = newMachine()
  const page = m.heap.allocPage()
  m.memory.write(page, 8, 0x0123_4567_89ab_cdefn)
  m.ensureMapper({vmid: 7, l2Budget: 8}).mapper.mapRegion(RAM_BASE, 1n << 30n, 'normal', {granularity: '2M'})
  return m
}

async function snapshotOf(m: Machine): Promise<void> {
  await writeFile(file, encodeSnapshot(m))
}

/** Bytes and nanosecond mtime: what "left alone" means for a file. */
async function fingerprint(path: string): Promise<{bytes: string; mtime: bigint; ino: bigint}> {
  const info = await stat(path, {bigint: true})
  return {bytes: (await readFile(path)).toString('hex'), mtime: info.mtimeNs, ino: info.ino}
}

async function entries(): Promise<string[]> {
  return (await readdir(dir)).sort()
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

describe('loadSnapshot', () => {
  it('a missing path -> snapshot-missing, naming the path', async () => {
    const error = await expectHvmemRejection(loadSnapshot(file), 'snapshot-missing')
    expect(error.message).toContain(file)
  })

  it('a directory -> snapshot-invalid', async () => {
    const error = await expectHvmemRejection(loadSnapshot(dir), 'snapshot-invalid')
    expect(error.message).toContain(dir)
  })

  it('/dev/null -> snapshot-invalid', async () => {
    const error = await expectHvmemRejection(loadSnapshot('/dev/null'), 'snapshot-invalid')
    expect(error.message).toContain('/dev/null')
  })

  it('an empty file or a damaged header -> snapshot-invalid with a message starting with the path', async () => {
    await writeFile(file, Buffer.alloc(0))
    expect((await expectHvmemRejection(loadSnapshot(file), 'snapshot-invalid')).message.startsWith(`${file} `)).toBe(true)
    const data = encodeSnapshot(populated())
    data[50] = data[50]! ^ 1
    await writeFile(file, data)
    expect((await expectHvmemRejection(loadSnapshot(file), 'snapshot-invalid')).message).toMatch(new RegExp(`^${escape(file)} .*header or page index checksum mismatch`))
  })

  it('a damaged page: the load succeeds, the first read of that page fails naming file and page; other pages read', async () => {
    const m = populated()
    const data = encodeSnapshot(m)
    const pages = m.memory.nonZeroPages().map(([address]) => address)
    expect(pages[0]).toBe(HEAP_BASE)
    const start = dataStart(data)
    data[start + 3] = data[start + 3]! ^ 0x40 // the first page, HEAP_BASE
    await writeFile(file, data)
    const loaded = await loadSnapshot(file)
    expect(loaded.memory.read(pages[1]!, 8)).toBe(m.memory.read(pages[1]!, 8))
    const error = expectHvmemError(() => loaded.memory.read(HEAP_BASE, 8), 'snapshot-invalid')
    expect(error.message).toMatch(
      new RegExp(`^${escape(file)} is not a valid hvmem snapshot: page 0x41000000 checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged$`),
    )
  })

  it('reads only the pages used: the header and index, then one page at a time', async () => {
    const m = newMachine()
    for (let i = 0n; i < 64n; i++) m.memory.write(RAM_BASE + i * PAGE, 8, 0x100n + i)
    await snapshotOf(m)
    const loaded = await loadSnapshot(file)
    expect(loaded.memory.residentPages).toBe(0)
    expect(loaded.heap.status()).toEqual(m.heap.status())
    expect(loaded.memory.read(RAM_BASE + 5n * PAGE, 8)).toBe(0x105n)
    expect(loaded.memory.residentPages).toBe(1)
    expect(loaded.memory.nonZeroPages().length).toBe(64)
    expect(loaded.memory.residentPages).toBe(64)
  })

  it('keeps reading the file it opened: a save that replaces the snapshot meanwhile does not mix the two', async () => {
    const m = newMachine()
    m.memory.write(RAM_BASE, 8, 1n)
    m.memory.write(RAM_BASE + PAGE, 8, 2n)
    await createSnapshot(file, m, false)
    const reader = await loadSnapshot(file)
    expect(reader.memory.read(RAM_BASE, 8)).toBe(1n)
    await updateSnapshot(file, (w) => {
      w.memory.write(RAM_BASE, 8, 10n)
      w.memory.write(RAM_BASE + PAGE, 8, 20n)
    })
    expect(reader.memory.read(RAM_BASE + PAGE, 8)).toBe(2n) // the old file's page, not the new one
    const fresh = await loadSnapshot(file)
    expect([fresh.memory.read(RAM_BASE, 8), fresh.memory.read(RAM_BASE + PAGE, 8)]).toEqual([10n, 20n])
  })

  it('reads a version-1 file (whole), and the next change writes it as version 3', async () => {
    const m = populated()
    await writeFile(file, encodeV1(m))
    const loaded = await loadSnapshot(file)
    expect(loaded.state()).toEqual(m.state())
    expect(encodeSnapshot(loaded).equals(encodeSnapshot(m))).toBe(true)
    await updateSnapshot(file, (w) => w.heap.alloc(8n))
    const data = await readFile(file)
    expect(data.readUInt32LE(8)).toBe(3)
    const expected = populated()
    expected.heap.alloc(8n)
    expect(data.equals(encodeSnapshot(expected))).toBe(true)
  })

  it('loads what was written', async () => {
    const m = populated()
    await snapshotOf(m)
    const loaded = await loadSnapshot(file)
    expect(loaded.state()).toEqual(m.state())
    expect(encodeSnapshot(loaded).equals(encodeSnapshot(m))).toBe(true)
  })
})

describe('createSnapshot', () => {
  it('creates a new file holding exactly encodeSnapshot(machine), leaving no temp or lock files', async () => {
    const m = populated()
    await createSnapshot(file, m, false)
    expect((await readFile(file)).equals(encodeSnapshot(m))).toBe(true)
    expect(await entries()).toEqual(['test.snap'])
  })

  it('refuses an existing file without force (snapshot-exists) and leaves it byte-identical', async () => {
    const old = populated()
    await createSnapshot(file, old, false)
    const before = await fingerprint(file)
    await pause(20)
    const error = await expectHvmemRejection(createSnapshot(file, newMachine(), false), 'snapshot-exists')
    expect(error.message).toContain(file)
    expect(await fingerprint(file)).toEqual(before)
    expect(await entries()).toEqual(['test.snap'])
  })

  it('refuses an existing non-snapshot file without force and leaves it alone', async () => {
    await writeFile(file, 'not a snapshot\n')
    await expectHvmemRejection(createSnapshot(file, newMachine(), false), 'snapshot-exists')
    expect(await readFile(file, 'utf8')).toBe('not a snapshot\n')
  })

  it('with force replaces an existing snapshot (or any regular file)', async () => {
    await createSnapshot(file, populated(), false)
    const fresh = newMachine()
    fresh.heap.alloc(12n)
    await createSnapshot(file, fresh, true)
    expect((await readFile(file)).equals(encodeSnapshot(fresh))).toBe(true)
    expect((await loadSnapshot(file)).heap.status().next).toBe(HEAP_BASE + 12n)

    await writeFile(file, 'garbage')
    await createSnapshot(file, fresh, true)
    expect((await readFile(file)).equals(encodeSnapshot(fresh))).toBe(true)
    expect(await entries()).toEqual(['test.snap'])
  })

  it('refuses a directory even with force (snapshot-invalid)', async () => {
    const sub = join(dir, 'sub')
    await mkdir(sub)
    await expectHvmemRejection(createSnapshot(sub, newMachine(), true), 'snapshot-invalid')
    expect((await stat(sub)).isDirectory()).toBe(true)
    expect(await entries()).toEqual(['sub'])
  })

  it('in a directory that does not exist says so (io), not "no snapshot"', async () => {
    const file = join(dir, 'no-such-dir', 'a.snap')
    const error = await expectHvmemRejection(createSnapshot(file, newMachine(), false), 'io')
    expect(error.message).toBe(`cannot create ${file}: its directory ${join(dir, 'no-such-dir')} does not exist`)
  })
})

describe('updateSnapshot', () => {
  it('saves the change and returns the callback result', async () => {
    await createSnapshot(file, newMachine(), false)
    const page = await updateSnapshot(file, (m) => {
      const at = m.heap.allocPage()
      m.memory.write(at + 8n, 2, 0xbeefn)
      return at
    })
    expect(page).toBe(HEAP_BASE)
    const loaded = await loadSnapshot(file)
    expect(loaded.heap.status().next).toBe(HEAP_BASE + PAGE)
    expect(loaded.heap.status().allocated).toBe(PAGE)
    expect(loaded.memory.read(HEAP_BASE + 8n, 2)).toBe(0xbeefn)
    expect(loaded.memory.nonZeroPages().map(([address]) => address)).toEqual([HEAP_BASE])
    expect(await entries()).toEqual(['test.snap'])
  })

  it('a change that throws leaves the file byte-identical (bytes, mtime, inode) and releases the lock', async () => {
    await createSnapshot(file, populated(), false)
    const before = await fingerprint(file)
    await pause(20)
    const boom = new Error('boom')
    let caught: unknown
    try {
      await updateSnapshot(file, (m) => {
        m.heap.allocPage()
        m.memory.write(RAM_BASE, 8, 0xffn)
        throw boom
      })
    } catch (error) {
      caught = error
    }
    expect(caught).toBe(boom)
    expect(await fingerprint(file)).toEqual(before)
    expect(await entries()).toEqual(['test.snap']) // no test.snap.lock directory left

    // The lock was released: the next update gets it at once and saves.
    const next = await updateSnapshot(file, (m) => m.heap.allocPage())
    expect(next).toBe(decodeSnapshot(Buffer.from(before.bytes, 'hex'), file).heap.status().next)
    expect(await entries()).toEqual(['test.snap'])
  })

  it('a change that throws an HvmemError passes it through unchanged and saves nothing', async () => {
    await createSnapshot(file, populated(), false)
    const before = await fingerprint(file)
    await pause(20)
    const error = await expectHvmemRejection(
      updateSnapshot(file, (m) => m.ensureMapper().mapper.mapRegion(RAM_BASE, 2n << 20n, 'device')),
      'mapping-conflict',
    )
    expect(error).toBeInstanceOf(HvmemError)
    expect(await fingerprint(file)).toEqual(before)
    expect(await entries()).toEqual(['test.snap'])
  })

  it('on a missing file -> snapshot-missing, creating nothing', async () => {
    let called = false
    await expectHvmemRejection(
      updateSnapshot(file, () => {
        called = true
      }),
      'snapshot-missing',
    )
    expect(called).toBe(false)
    expect(await entries()).toEqual([])
  })

  it('on a damaged file -> snapshot-invalid, leaving it alone and unlocked', async () => {
    const data = encodeSnapshot(populated())
    data[300] = data[300]! ^ 0x10
    await writeFile(file, data)
    const before = await fingerprint(file)
    await expectHvmemRejection(
      updateSnapshot(file, (m) => m.heap.allocPage()),
      'snapshot-invalid',
    )
    expect(await fingerprint(file)).toEqual(before)
    expect(await entries()).toEqual(['test.snap'])
  })

  it('leaves no temp files after several saves', async () => {
    await createSnapshot(file, newMachine(), false)
    for (let i = 0; i < 5; i++) await updateSnapshot(file, (m) => m.memory.write(RAM_BASE + BigInt(i) * PAGE, 1, BigInt(i + 1)))
    await createSnapshot(file, populated(), true)
    await updateSnapshot(file, (m) => m.heap.alloc(4n))
    expect(await entries()).toEqual(['test.snap'])
  })

  it('20 concurrent updates in one process each allocate a distinct page; none is lost', async () => {
    await createSnapshot(file, newMachine(), false)
    const pages = await Promise.all(Array.from({length: 20}, () => updateSnapshot(file, (m) => m.heap.allocPage())))
    expect(new Set(pages).size).toBe(20)
    const expected = Array.from({length: 20}, (_, i) => HEAP_BASE + BigInt(i) * PAGE)
    expect([...pages].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(expected)
    const status = (await loadSnapshot(file)).heap.status()
    expect(status.next).toBe(HEAP_BASE + 20n * PAGE)
    expect(status.allocated).toBe(20n * PAGE)
    expect(await entries()).toEqual(['test.snap'])
  })
})

describe('saving: temp files, permissions, links', () => {
  it('a temp file left by a killed save is ignored by loads and removed by the next save; look-alike files are kept', async () => {
    const m = populated()
    await createSnapshot(file, m, false)
    const good = await readFile(file)
    // what a save killed mid-write leaves: part of a new snapshot under the temp name
    const leftover = join(dir, 'test.snap.hvmem-tmp.12345.0badf00d')
    await writeFile(leftover, good.subarray(0, 1000))
    // names that only look like it, or belong to another snapshot: never touched
    const keep = ['test.snap.1', 'test.snap.bak', 'test.snap.hvmem-tmp.1.xyz', 'other.snap.hvmem-tmp.1.0badf00d', 'test.snap.hvmem-tmp.12.0badf00d.old']
    for (const name of keep) await writeFile(join(dir, name), 'mine')
    expect((await loadSnapshot(file)).state()).toEqual(m.state())
    expect(await entries()).toEqual([...keep, 'test.snap', 'test.snap.hvmem-tmp.12345.0badf00d'].sort())
    await updateSnapshot(file, (w) => w.heap.alloc(4n))
    expect(await entries()).toEqual([...keep, 'test.snap'].sort())
    for (const name of keep) expect(await readFile(join(dir, name), 'utf8')).toBe('mine')
  })

  it('a replaced snapshot keeps its permission bits; a new one gets 0666 less the umask', async () => {
    await createSnapshot(file, newMachine(), false)
    expect((await stat(file)).mode & 0o777).toBe(0o666 & ~process.umask())
    await chmod(file, 0o640)
    await updateSnapshot(file, (m) => m.heap.alloc(4n))
    expect((await stat(file)).mode & 0o777).toBe(0o640)
  })

  it('a symlinked snapshot: the file it points at is replaced, the link stays a link', async () => {
    const real = join(dir, 'real.snap')
    await createSnapshot(real, newMachine(), false)
    await symlink(real, file)
    await updateSnapshot(file, (m) => m.heap.alloc(4n))
    expect((await lstat(file)).isSymbolicLink()).toBe(true)
    expect((await loadSnapshot(real)).heap.status().allocated).toBe(4n)
    expect(await entries()).toEqual(['real.snap', 'test.snap'])
  })
})

describe('the lock', () => {
  it('takes over a stale lock (untouched for a minute), saying so once, and saves', async () => {
    await createSnapshot(file, newMachine(), false)
    await mkdir(`${file}.lock`)
    const old = new Date(Date.now() - 60_000)
    await utimes(`${file}.lock`, old, old)
    const warnings: string[] = []
    const previous = setWarn((message) => warnings.push(message))
    try {
      expect(await updateSnapshot(file, (m) => m.heap.allocPage())).toBe(HEAP_BASE)
    } finally {
      setWarn(previous)
    }
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(new RegExp(`^took over a stale lock on ${escape(file)} left by a command that did not finish \\(${escape(file)}\\.lock, untouched for \\d+ s\\)$`))
    expect(await entries()).toEqual(['test.snap'])
  })

  it('waits for a live lock instead of taking it over, and says nothing', async () => {
    await createSnapshot(file, newMachine(), false)
    await mkdir(`${file}.lock`)
    const warnings: string[] = []
    const previous = setWarn((message) => warnings.push(message))
    try {
      let done = false
      const update = updateSnapshot(file, (m) => m.heap.allocPage()).then((page) => {
        done = true
        return page
      })
      await pause(300)
      expect(done).toBe(false) // still waiting
      await rmdir(`${file}.lock`)
      expect(await update).toBe(HEAP_BASE)
    } finally {
      setWarn(previous)
    }
    expect(warnings).toEqual([])
  })

  it("a command whose lock was taken over while it ran (thought dead) saves nothing, and leaves the new owner's lock alone", async () => {
    await createSnapshot(file, newMachine(), false)
    const before = await fingerprint(file)
    const error = await expectHvmemRejection(
      updateSnapshot(file, (m) => {
        m.heap.allocPage()
        // What another command does to a lock it finds stale: remove it (and its owner file) and make its own.
        rmSync(`${file}.lock`, {recursive: true})
        mkdirSync(`${file}.lock`)
      }),
      'io',
    )
    expect(error.message).toBe(
      `the lock on ${file} was taken over by another command while this one ran (it was thought dead); nothing was saved: check the snapshot with "hvmem heap status" and try again`,
    )
    expect(await fingerprint(file)).toEqual(before)
    expect(await entries()).toEqual(['test.snap', 'test.snap.lock']) // the other command's lock, still there
  })

  // "At once": not one wait for the lock (the store's test hook counts them), not a timeout.
  it('a lock that cannot be made fails at once with the reason (no 30 s of retries)', async () => {
    const waits: string[] = []
    const previous = setLockWaitObserver((lockPath) => waits.push(lockPath))
    try {
      const missing = join(dir, 'no-such-dir', 'a.snap')
      await expectHvmemRejection(createSnapshot(missing, newMachine(), false), 'io')
      await expectHvmemRejection(
        updateSnapshot(missing, () => undefined),
        'snapshot-missing',
      )
      await writeFile(join(dir, 'plain'), 'x')
      const under = join(dir, 'plain', 'a.snap')
      expect((await expectHvmemRejection(createSnapshot(under, newMachine(), false), 'io')).message).toBe(`cannot use ${under}: part of its directory ${join(dir, 'plain')} is not a directory`)
    } finally {
      setLockWaitObserver(previous)
    }
    expect(waits).toEqual([])
  })
})
