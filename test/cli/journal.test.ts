/**
 * A change to a large snapshot (format 5) is appended as a record, not a rewrite: the real binary,
 * with the size from which snapshots are written as version 5 lowered to 32 KiB
 * (HVMEM_JOURNAL_THRESHOLD, a test-only setting) so the snapshots stay small.
 */
import {statSync} from 'node:fs'
import {readFile, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {JOURNAL_THRESHOLD_BYTES} from '../../src/snapshot/store.js'
import {expectOkInProcess, expectOkJsonInProcess} from './inprocess.js'
import {hvmem, scratch} from './run.js'

const ENV = {HVMEM_JOURNAL_THRESHOLD: '32768'}
/** 16 pages of non-zero bytes: a 64 KiB image, a 65,920-byte snapshot (above the threshold). */
const IMAGE = Buffer.from(Array.from({length: 16 * 4096}, (_, i) => ((i * 7 + (i >> 12)) % 255) + 1))
/** A record of one changed page, no registers: its header (24), the machine header (128), one entry (16), the page. */
const ONE_PAGE_RECORD = 24 + 128 + 16 + 4096

let dir = ''
let cleanup: () => Promise<void> = async () => undefined

// the set-up (imports) and the readings run in this process, with the same threshold; the writes
// whose saves are checked run the binary
const previousThreshold = process.env.HVMEM_JOURNAL_THRESHOLD
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
  await writeFile(join(dir, 'image.raw'), IMAGE)
  process.env.HVMEM_JOURNAL_THRESHOLD = ENV.HVMEM_JOURNAL_THRESHOLD
})
afterAll(async () => {
  if (previousThreshold === undefined) delete process.env.HVMEM_JOURNAL_THRESHOLD
  else process.env.HVMEM_JOURNAL_THRESHOLD = previousThreshold
  await cleanup()
})

async function run(...args: string[]): Promise<{code: number; stdout: string; stderr: string}> {
  return hvmem(dir, args, ENV)
}

/** A new snapshot `name` of the image at 0x40000000. */
async function imported(name: string): Promise<string> {
  await expectOkInProcess(dir, 'snapshot', 'import', 'image.raw', '--base', '0x40000000', '-s', name)
  return join(dir, name)
}

async function byteAt(name: string, address: string): Promise<number> {
  return Number.parseInt((await expectOkJsonInProcess<{bytes: string}>(dir, 'mem', 'read', address, '1', '-s', name)).bytes, 16)
}

describe('format 5: mem write appends', () => {
  it('a large snapshot is written as version 5; a 1-byte write appends one record in place', async () => {
    const path = await imported('a.snap')
    const before = await readFile(path)
    expect(before.readUInt32LE(8)).toBe(5)
    expect(before.length).toBe(128 + 16 * (16 + 4096))
    const inode = statSync(path).ino
    const r = await run('mem', 'write', '0x40003005', '0', '--width', '1', '-s', 'a.snap')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const after = await readFile(path)
    expect(statSync(path).ino).toBe(inode)
    expect(after.length).toBe(before.length + ONE_PAGE_RECORD)
    expect(after.subarray(0, before.length).equals(before)).toBe(true)
    expect(after.subarray(before.length, before.length + 8).toString('latin1')).toBe('HVMEMREC')
    expect(await byteAt('a.snap', '0x40003005')).toBe(0)
    expect(await byteAt('a.snap', '0x40003006')).toBe(IMAGE[0x3006])
    const verify = await run('snapshot', 'verify', '-s', 'a.snap')
    expect(verify.code).toBe(0)
  })

  it('a record cut short at the end reads as the snapshot before it; the next write cuts it away', async () => {
    const path = await imported('b.snap')
    const base = (await readFile(path)).length
    expect((await run('mem', 'write', '0x40001000', '0x11', '--width', '1', '-s', 'b.snap')).code).toBe(0)
    expect((await run('mem', 'write', '0x40002000', '0x22', '--width', '1', '-s', 'b.snap')).code).toBe(0)
    expect((await readFile(path)).length).toBe(base + 2 * ONE_PAGE_RECORD)
    // a crash half-way through the second append
    await truncate(path, base + ONE_PAGE_RECORD + 1000)
    expect(await byteAt('b.snap', '0x40001000')).toBe(0x11)
    expect(await byteAt('b.snap', '0x40002000')).toBe(IMAGE[0x2000])
    expect((await run('snapshot', 'verify', '-s', 'b.snap')).code).toBe(0)
    expect((await run('mem', 'write', '0x40004000', '0x44', '--width', '1', '-s', 'b.snap')).code).toBe(0)
    expect((await readFile(path)).length).toBe(base + 2 * ONE_PAGE_RECORD)
    expect(await byteAt('b.snap', '0x40004000')).toBe(0x44)
    expect(await byteAt('b.snap', '0x40001000')).toBe(0x11)
    expect(await byteAt('b.snap', '0x40002000')).toBe(IMAGE[0x2000])
  })

  it('a record written but not committed (a crash between its body and its magic) reads as before it; the next write replaces it', async () => {
    const path = await imported('f.snap')
    const base = (await readFile(path)).length
    expect((await run('mem', 'write', '0x40001000', '0x11', '--width', '1', '-s', 'f.snap')).code).toBe(0)
    const data = await readFile(path)
    data.fill(0, base, base + 8)
    await writeFile(path, data)
    expect(await byteAt('f.snap', '0x40001000')).toBe(IMAGE[0x1000])
    const info = await run('snapshot', 'info', '--json', '-s', 'f.snap')
    expect(JSON.parse(info.stdout)).toMatchObject({version: 5, journal: {base, records: 0, recordBytes: 0, unfinished: ONE_PAGE_RECORD}})
    expect((await run('mem', 'write', '0x40002000', '0x22', '--width', '1', '-s', 'f.snap')).code).toBe(0)
    expect((await readFile(path)).length).toBe(base + ONE_PAGE_RECORD)
    expect(await byteAt('f.snap', '0x40002000')).toBe(0x22)
    expect(await byteAt('f.snap', '0x40001000')).toBe(IMAGE[0x1000])
  })

  it('a complete record with a bad checksum is damage: exit 4, and a write changes nothing', async () => {
    const path = await imported('c.snap')
    const base = (await readFile(path)).length
    expect((await run('mem', 'write', '0x40001000', '0x11', '--width', '1', '-s', 'c.snap')).code).toBe(0)
    const data = await readFile(path)
    data[base + 24 + 40] = data[base + 24 + 40]! ^ 1
    await writeFile(path, data)
    const read = await run('mem', 'read', '0x40001000', '-s', 'c.snap')
    expect(read.code).toBe(4)
    expect(read.stderr).toMatch(/^hvmem: .*c\.snap is not a valid hvmem snapshot: record 1 \(at byte \d+\) checksum mismatch.*\n$/)
    const write = await run('mem', 'write', '0x40001000', '0x12', '--width', '1', '-s', 'c.snap')
    expect(write.code).toBe(4)
    expect((await readFile(path)).equals(data)).toBe(true)
    expect((await run('snapshot', 'verify', '-s', 'c.snap')).code).toBe(4)
  })

  it('records past a quarter of the base: the next save rewrites the file whole (a new file, no records)', async () => {
    const path = await imported('d.snap')
    const base = await readFile(path)
    const inode = statSync(path).ino
    let writes = 0
    for (; writes < 8 && statSync(path).ino === inode; writes++) {
      expect((await run('mem', 'write', `0x4000${writes.toString(16)}000`, '0x33', '--width', '1', '-s', 'd.snap')).code).toBe(0)
    }
    // a quarter of 65,920 bytes holds 3 one-page records: the 4th write rewrites
    expect(writes).toBe(4)
    const after = await readFile(path)
    expect(after.length).toBe(base.length)
    expect(after.readUInt32LE(8)).toBe(5)
    for (let i = 0; i < writes; i++) expect(await byteAt('d.snap', `0x4000${i.toString(16)}000`)).toBe(0x33)
    expect((await run('snapshot', 'verify', '-s', 'd.snap')).code).toBe(0)
  })

  it('below the threshold a snapshot is written as before (version 4 here) and replaced whole', async () => {
    const DEFAULT = {HVMEM_JOURNAL_THRESHOLD: String(JOURNAL_THRESHOLD_BYTES)} // this process's is lowered
    const r = await hvmem(dir, ['snapshot', 'import', 'image.raw', '--base', '0x40000000', '-s', 'e.snap'], DEFAULT)
    expect(r.code).toBe(0)
    const path = join(dir, 'e.snap')
    expect((await readFile(path)).readUInt32LE(8)).toBe(4)
    const inode = statSync(path).ino
    expect((await hvmem(dir, ['mem', 'write', '0x40001000', '0x11', '--width', '1', '-s', 'e.snap'], DEFAULT)).code).toBe(0)
    expect(statSync(path).ino).not.toBe(inode)
    expect((await readFile(path)).length).toBe(128 + 16 * (16 + 4096))
  })
})
