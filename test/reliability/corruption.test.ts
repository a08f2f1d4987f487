/**
 * Corruption on disk: every single-byte change and every truncation of a small snapshot file is
 * refused by the store (read-only and mutating loads) with the file left exactly as it was, and a
 * sample of them by the real binary (exit 4, one line naming the file). The decoder itself is
 * covered input by input in test/snapshot/format.test.ts.
 */
import {readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {HvmemError} from '../../src/core/errors.js'
import {Machine} from '../../src/core/machine.js'
import {encodeSnapshot} from '../../src/snapshot/format.js'
import {createSnapshot, loadSnapshot, updateSnapshot} from '../../src/snapshot/store.js'
import {encodeV1, patched} from '../snapshot/fixtures.js'
import {hvmem, scratch, stackLines} from './proc.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
})
afterAll(async () => cleanup())

const HEAP = 0x4100_0000n

/** One stored page and a stage-2 mapper (its root allocated, still zero): the header's every field is in use. 4240 bytes. */
function smallMachine(): Machine {
  const m = Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: HEAP, heapSize: 16n << 20n})
  m.ensureMapper({vmid: 9, l2Budget: 3})
  const page = m.heap.allocPage()
  m.memory.write(page, 8, 0x0123_4567_89ab_cdefn)
  m.memory.write(page + 4095n, 1, 0x77n)
  return m
}

/** Every flip of one byte (xor 0xff), every truncation, and two appended bytes. */
function damaged(data: Buffer): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = []
  for (let offset = 0; offset < data.length; offset++) {
    const copy = Buffer.from(data)
    copy[offset] = copy[offset]! ^ 0xff
    out.push([`flip at ${offset}`, copy])
  }
  for (let length = 0; length < data.length; length++) out.push([`truncated to ${length}`, Buffer.from(data.subarray(0, length))])
  out.push(['appended 0x00', Buffer.concat([data, Buffer.of(0)])], ['appended 0xff', Buffer.concat([data, Buffer.of(0xff)])])
  return out
}

function problem(error: unknown, file: string): string | undefined {
  if (!(error instanceof HvmemError)) return `threw ${String(error)}`
  if (error.kind !== 'snapshot-invalid') return `kind ${error.kind}: ${error.message}`
  if (!error.message.startsWith(`${file} `)) return `message ${error.message}`
  if (error.message.includes('\n')) return 'a multi-line message'
  return undefined
}

describe('the store refuses every damaged file and leaves it as it was', () => {
  // 4240 flips + 4240 truncations + 2 appends = 8482 damaged files, each loaded twice: in CHUNKS
  // cases, in this process (no test runs for minutes on a busy machine).
  const CHUNKS = 8
  const good = encodeSnapshot(smallMachine())
  const inputs = damaged(good)
  const chunk = Math.ceil(inputs.length / CHUNKS)

  it('the damaged copies: 8482 of a 4240-byte snapshot', () => {
    expect(good.length).toBe(4240)
    expect(inputs.length).toBe(8482)
  })

  it.each(Array.from({length: CHUNKS}, (_, i) => i))(`damaged copies, part %i of ${CHUNKS}: read-only load (every page read) and update both refuse, bytes/inode/mtime unchanged`, async (part) => {
    const file = join(dir, 'damaged.snap')
    const wrong: string[] = []
    let changed = 0
    for (const [label, bytes] of inputs.slice(part * chunk, (part + 1) * chunk)) {
      await writeFile(file, bytes)
      const before = await stat(file, {bigint: true})
      try {
        const m = await loadSnapshot(file)
        m.memory.nonZeroPages() // read (and check) every page
        wrong.push(`${label}: read-only load accepted`)
      } catch (error) {
        const why = problem(error, file)
        if (why !== undefined) wrong.push(`${label}: read-only load ${why}`)
      }
      let called = false
      try {
        await updateSnapshot(file, (m) => {
          called = true
          m.heap.allocPage()
        })
        wrong.push(`${label}: update accepted`)
      } catch (error) {
        const why = problem(error, file)
        if (why !== undefined) wrong.push(`${label}: update ${why}`)
      }
      if (called) wrong.push(`${label}: the change ran on a damaged snapshot`)
      const after = await stat(file, {bigint: true})
      if (after.ino !== before.ino || after.mtimeNs !== before.mtimeNs || !(await readFile(file)).equals(bytes)) changed++
    }
    expect(wrong).toEqual([])
    expect(changed).toBe(0)
    expect(await readdir(dir)).toEqual(['damaged.snap']) // no lock or temp file left
  })
})

describe('the binary refuses damaged files: exit 4, one line naming the file, the file unchanged', () => {
  let good: Buffer
  let pageOffset: number
  const PAGES = 3 // the written page, the L1 table, the L2 table
  beforeAll(async () => {
    for (const args of [
      ['heap', 'init', '-s', 'good.snap'],
      ['alloc', 'page', '-s', 'good.snap'],
      ['mem', 'write', '0x4100_0000', '0x1122334455667788', '-s', 'good.snap'],
      ['map', 'region', '0x4000_0000', '2M', '-s', 'good.snap'],
    ]) {
      expect((await hvmem(dir, args)).code).toBe(0)
    }
    good = await readFile(join(dir, 'good.snap'))
    expect(good.length).toBe(128 + PAGES * 4112)
    pageOffset = 128 + 16 * PAGES // the first page: 0x41000000, the written one
  })

  /** One damage per region of the file; `reader` is a read-only command that must meet it. */
  const sites = (): Array<{label: string; bytes: Buffer; reader: string[]; message: RegExp}> => {
    const flip = (offset: number, bit = 0x01): Buffer => {
      const copy = Buffer.from(good)
      copy[offset] = copy[offset]! ^ bit
      return copy
    }
    const header = /header or page index checksum mismatch/
    const status = ['heap', 'status']
    return [
      {label: 'magic', bytes: flip(0), reader: status, message: /wrong magic/},
      {label: 'version', bytes: flip(8, 0x04), reader: status, message: /snapshot format version 7, newer than this hvmem reads \(version 5\)/},
      {label: 'header length', bytes: flip(12), reader: status, message: /header length 129/},
      {label: 'RAM base', bytes: flip(19), reader: status, message: header},
      {label: 'heap next', bytes: flip(49), reader: status, message: header},
      {label: 'mapper flag', bytes: flip(64), reader: status, message: header},
      {label: 'VMID', bytes: flip(66), reader: status, message: header},
      {label: 'page count', bytes: flip(80), reader: status, message: /bytes where the header's 2 pages need/},
      {label: 'orphaned tables', bytes: flip(88), reader: status, message: header},
      {label: 'reserved header byte', bytes: flip(100), reader: status, message: header},
      {label: 'header checksum', bytes: flip(124), reader: status, message: header},
      {label: 'index: page address', bytes: flip(129), reader: status, message: header},
      {label: 'index: page checksum', bytes: flip(136), reader: status, message: header},
      {label: 'index: reserved', bytes: flip(140), reader: status, message: header},
      {label: 'page data', bytes: flip(pageOffset + 1), reader: ['mem', 'read', '0x4100_0000', '8'], message: /page 0x41000000 checksum mismatch/},
      {label: 'last byte (the L2 table)', bytes: flip(good.length - 1), reader: ['dump', 'tables'], message: /page 0x41002000 checksum mismatch/},
      {label: 'empty', bytes: Buffer.alloc(0), reader: status, message: /wrong magic/},
      {label: 'truncated to 100', bytes: good.subarray(0, 100), reader: status, message: /truncated \(100 bytes, a header alone needs 128\)/},
      {label: 'truncated to the header', bytes: good.subarray(0, 128), reader: status, message: /128 bytes where the header's 3 pages need 12464/},
      {label: 'truncated mid-page', bytes: good.subarray(0, pageOffset + 2000), reader: status, message: /truncated or damaged/},
      {label: 'one byte short', bytes: good.subarray(0, good.length - 1), reader: status, message: /truncated or damaged/},
      {label: 'one byte appended', bytes: Buffer.concat([good, Buffer.of(0)]), reader: status, message: /truncated or damaged/},
      {
        label: 'newer version, valid checksums',
        bytes: patched(good, (b) => b.writeUInt32LE(6, 8)),
        reader: status,
        message: /^hvmem: bad\.snap-\d+ has snapshot format version 6, newer than this hvmem reads \(version 5\); upgrade hvmem\n$/,
      },
    ]
  }

  it('23 kinds of damage', () => {
    expect(sites()).toHaveLength(23)
  })

  // One case a kind of damage: a mutating and a read-only command (2 processes).
  it.each(Array.from({length: 23}, (_, i) => i))('damage %i of 23, met by a mutating and a read-only command', async (i) => {
    const c = sites()[i]!
    const name = `bad.snap-${i}`
    const file = join(dir, name)
    await writeFile(file, c.bytes)
    const writer = await hvmem(dir, ['alloc', 'page', '-s', name])
    const reader = await hvmem(dir, [...c.reader, '-s', name])
    for (const r of [writer, reader]) {
      expect(r.code, `${c.label}: ${r.stderr}`).toBe(4)
      expect(r.stdout).toBe('')
      expect(r.stderr, c.label).toMatch(new RegExp(`^hvmem: ${name} `))
      expect(r.stderr, c.label).toMatch(c.message)
      expect(r.stderr.split('\n'), c.label).toHaveLength(2)
      expect(stackLines(r.stderr)).toEqual([])
    }
    expect((await readFile(file)).equals(c.bytes), c.label).toBe(true)
    expect((await readdir(dir)).filter((n) => n.includes('.lock') || n.includes('hvmem-tmp'))).toEqual([])
  })

  it('a version-1 file works with every command, and the first change rewrites it as version 3', async () => {
    const m = smallMachine()
    await writeFile(join(dir, 'v1.snap'), encodeV1(m))
    const status = await hvmem(dir, ['heap', 'status', '--json', '-s', 'v1.snap'])
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({heap: {next: '0x41002000', allocated: 8192}})
    expect((await hvmem(dir, ['mem', 'read', '0x4100_1000', '8', '-s', 'v1.snap'])).stdout).toContain('ef cd ab 89 67 45 23 01')
    expect((await hvmem(dir, ['alloc', 'page', '-s', 'v1.snap'])).stdout).toBe('0x41002000\n')
    const rewritten = await readFile(join(dir, 'v1.snap'))
    expect(rewritten.readUInt32LE(8)).toBe(3)
    m.heap.allocPage()
    expect(rewritten.equals(encodeSnapshot(m))).toBe(true)
  })
})

describe('version 5: damage to an appended record is refused; a record cut short reads as before it', () => {
  it('every flip of a record byte fails the load or the read of its page; every cut of it reads as the snapshot before', async () => {
    const file = join(dir, 'journal.snap')
    // the stored page of smallMachine (its byte 1 is 0xcd)
    const PAGE_AT = HEAP + 0x1001n
    const previous = process.env.HVMEM_JOURNAL_THRESHOLD
    process.env.HVMEM_JOURNAL_THRESHOLD = '0'
    let data: Buffer
    let base: number
    try {
      // (5 more pages: a record of one page stays under a quarter of the base, so it is appended)
      const m = smallMachine()
      for (let k = 0n; k < 5n; k++) m.memory.write(0x4000_0000n + k * 4096n, 1, 1n)
      await createSnapshot(file, m, false)
      base = (await readFile(file)).length
      await updateSnapshot(file, (m) => m.memory.write(PAGE_AT, 1, 0x55n))
      data = await readFile(file)
    } finally {
      if (previous === undefined) delete process.env.HVMEM_JOURNAL_THRESHOLD
      else process.env.HVMEM_JOURNAL_THRESHOLD = previous
    }
    expect(data.readUInt32LE(8)).toBe(5)
    expect(data.length).toBe(base + 24 + 128 + 16 + 4096)
    expect((await loadSnapshot(file)).memory.read(PAGE_AT, 1)).toBe(0x55n)
    const lengthField = [base + 8, base + 16]
    let ignored = 0
    for (let offset = base; offset < data.length; offset++) {
      const copy = Buffer.from(data)
      copy[offset] = copy[offset]! ^ 0xff
      await writeFile(file, copy)
      let value: bigint | undefined
      try {
        value = (await loadSnapshot(file)).memory.read(PAGE_AT, 1)
      } catch (error) {
        expect(error, `flip at ${offset}`).toBeInstanceOf(HvmemError)
        expect((error as HvmemError).kind).toBe('snapshot-invalid')
        continue
      }
      // a length that now passes the end of the file reads as an unfinished append (docs/reliability.md)
      expect(offset >= lengthField[0]! && offset < lengthField[1]!, `flip at ${offset} was not noticed`).toBe(true)
      expect(value).toBe(0xcdn)
      ignored++
    }
    expect(ignored).toBeLessThanOrEqual(8)
    for (let cut = base; cut < data.length; cut++) {
      await writeFile(file, data.subarray(0, cut))
      expect((await loadSnapshot(file)).memory.read(PAGE_AT, 1), `cut at ${cut}`).toBe(0xcdn)
    }
  })
})
