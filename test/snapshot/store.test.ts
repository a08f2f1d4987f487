import {mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {HvmemError} from '../../src/core/errors.js'
import type {Machine} from '../../src/core/machine.js'
import {decodeSnapshot, encodeSnapshot} from '../../src/snapshot/format.js'
import {createSnapshot, loadSnapshot, updateSnapshot} from '../../src/snapshot/store.js'
import {HEAP_BASE, PAGE, RAM_BASE, expectHvmemRejection, newMachine} from './fixtures.js'

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
  m.ensureMapper({vmid: 7, l2Budget: 8}).mapper.mapRegion(RAM_BASE, 1n << 30n, 'normal')
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

  it('an empty or damaged file -> snapshot-invalid with a message starting with the path', async () => {
    await writeFile(file, Buffer.alloc(0))
    expect((await expectHvmemRejection(loadSnapshot(file), 'snapshot-invalid')).message.startsWith(`${file} `)).toBe(true)
    const data = encodeSnapshot(populated())
    data[data.length - 1] = data[data.length - 1]! ^ 1
    await writeFile(file, data)
    expect((await expectHvmemRejection(loadSnapshot(file), 'snapshot-invalid')).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .*checksum mismatch`))
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
    await expectHvmemRejection(updateSnapshot(file, (m) => m.heap.allocPage()), 'snapshot-invalid')
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
  }, 30_000)
})
