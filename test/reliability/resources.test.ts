/**
 * Resources: memory stays proportional to the pages a command touches. A snapshot holding 1 GiB of
 * non-zero RAM (262,144 stored pages, RAM 2 GiB as "heap init --ram-size 2G" makes it), built through
 * the core API with a generated page source and streamed to disk by the store; read-only commands on
 * it must stay small. Also the page-source behaviour of PhysicalMemory that this rests on.
 */
import {readFile, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import {Machine} from '../../src/core/machine.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {HEADER_BYTES, PAGE_RECORD_BYTES} from '../../src/snapshot/format.js'
import {createSnapshot, loadSnapshot} from '../../src/snapshot/store.js'
import {expectHvmemError} from '../expect-error.js'
import {scratch, start} from './proc.js'

const RAM = 0x4000_0000n
const RAM_SIZE = 2n << 30n
const HEAP = 0x4100_0000n
const FILLED_START = 0x8000_0000n // the upper GiB of RAM
const FILLED_PAGES = 262_144 // 1 GiB
const PAGE = 4096n
/** The bound asserted: far below the 1 GiB a whole-file load needs (memory, not time). */
const RSS_LIMIT_KB = 200 * 1024

const PRELOAD = pathToFileURL(fileURLToPath(new URL('./rss-preload.mjs', import.meta.url))).href

/** The generated content of a filled page: its address at both ends, a pattern between. */
function pageAt(address: bigint): Uint8Array {
  const page = new Uint8Array(4096)
  const view = new DataView(page.buffer)
  view.setBigUint64(0, address, true)
  view.setBigUint64(4088, ~address & 0xffff_ffff_ffff_ffffn, true)
  page.fill(Number((address >> 12n) & 0xffn) | 1, 8, 64)
  return page
}

function* filledPages(): Generator<bigint> {
  for (let i = 0n; i < BigInt(FILLED_PAGES); i++) yield FILLED_START + i * PAGE
}

describe('a snapshot holding 1 GiB of RAM', () => {
  let dir: string
  let snap: string
  let cleanup: () => Promise<void>
  const peaks: Record<string, number> = {}

  beforeAll(async () => {
    ;({dir, snap, cleanup} = await scratch())
    // The core API, with pages generated on demand: this test process never holds the gigabyte either.
    const memory = new PhysicalMemory(RAM, RAM_SIZE, {storedPages: filledPages(), pageSource: pageAt})
    const machine = Machine.restore({ram: {base: RAM, size: RAM_SIZE}, heap: {start: HEAP, size: 16n << 20n, next: HEAP, allocated: 0n}, mapper: undefined}, memory)
    machine.ensureMapper().mapper.mapRegion(RAM, 1n << 30n, 'normal', {})
    machine.heap.allocPage()
    await createSnapshot(snap, machine, false)
  })
  afterAll(async () => {
    await rm(snap, {force: true})
    await cleanup()
    console.log(
      `resources: peak RSS on a snapshot of ${FILLED_PAGES} stored pages (1 GiB): ${Object.entries(peaks)
        .map(([command, kb]) => `${command} ${Math.round(kb / 1024)} MB`)
        .join(', ')}`,
    )
  })

  /** Runs a command with the RSS probe; returns its output and peak RSS in KB. */
  async function measured(args: string[]): Promise<{code: number; stdout: string; stderr: string; maxRssKb: number}> {
    const out = join(dir, 'rss.txt')
    // NODE_ENV=production as a user runs it (vitest's NODE_ENV=test makes oclif load more, ~60 MB)
    const r = await start(dir, args, {nodeArgs: ['--import', PRELOAD], env: {HVMEM_RSS_OUT: out, NODE_ENV: 'production'}}).done
    const maxRssKb = Number(await readFile(out, 'utf8'))
    await rm(out)
    peaks[args.slice(0, 2).join(' ')] = maxRssKb
    return {...r, maxRssKb}
  }

  it('is 1 GiB of pages on disk', async () => {
    const size = (await stat(snap)).size
    // the filled pages, the written heap page is not written (allocations write nothing), and the tables
    const tables = (size - HEADER_BYTES) / PAGE_RECORD_BYTES - FILLED_PAGES
    expect(tables).toBeGreaterThanOrEqual(1)
    expect(tables).toBeLessThanOrEqual(2)
    expect(size).toBe(HEADER_BYTES + (FILLED_PAGES + tables) * PAGE_RECORD_BYTES)
  })

  it(`heap status reads the header, the index and the root table: peak RSS below ${RSS_LIMIT_KB / 1024} MB`, async () => {
    const r = await measured(['heap', 'status', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const json = JSON.parse(r.stdout) as HeapStatusJson
    expect(json.ram).toEqual({base: '0x40000000', size: 2 * 1024 ** 3, end: '0xc0000000'})
    expect(json.heap.allocated).toBe(2 * 4096)
    expect(r.maxRssKb).toBeGreaterThan(0)
    expect(r.maxRssKb).toBeLessThan(RSS_LIMIT_KB)
  })

  it('mem read, dump tables and translate stay as small, and read the right bytes', async () => {
    const last = FILLED_START + BigInt(FILLED_PAGES - 1) * PAGE
    const read = await measured(['mem', 'read', `0x${last.toString(16)}`, '8', '--json'])
    expect(read.code, read.stderr).toBe(0)
    expect((JSON.parse(read.stdout) as {bytes: string}).bytes).toBe(Buffer.from(pageAt(last).subarray(0, 8)).toString('hex'))
    expect(read.maxRssKb).toBeLessThan(RSS_LIMIT_KB)
    for (const args of [
      ['dump', 'tables', '--json'],
      ['translate', '0x9000_1234', '--json'],
    ]) {
      const r = await measured(args)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
      expect(r.maxRssKb).toBeLessThan(RSS_LIMIT_KB)
    }
  })

  it('in this process too: a load holds only the pages used', async () => {
    const m = await loadSnapshot(snap)
    expect(m.memory.residentPages).toBe(0)
    expect(m.memory.read(FILLED_START + 5n * PAGE, 8)).toBe(FILLED_START + 5n * PAGE)
    expect(m.memory.hasPage(FILLED_START + BigInt(FILLED_PAGES - 1) * PAGE)).toBe(true)
    expect(m.memory.hasPage(FILLED_START + BigInt(FILLED_PAGES) * PAGE)).toBe(false)
    expect(m.memory.residentPages).toBe(1)
  })
})

describe('PhysicalMemory with a page source', () => {
  const BASE = 0x4000_0000n
  const SIZE = 0x10_0000n
  const stored = [BASE, BASE + 0x3000n, BASE + 0x5000n]
  function sourced(): {memory: PhysicalMemory; reads: bigint[]} {
    const reads: bigint[] = []
    const memory = new PhysicalMemory(BASE, SIZE, {
      storedPages: stored,
      pageSource: (address) => {
        reads.push(address)
        const page = new Uint8Array(4096)
        page[0] = Number((address >> 12n) & 0xffn) + 1
        return page
      },
    })
    return {memory, reads}
  }

  it('reads a stored page once, on first use, and behaves as if all were loaded', () => {
    const {memory, reads} = sourced()
    expect(memory.hasPage(BASE + 0x3000n)).toBe(true)
    expect(memory.hasPage(BASE + 0x1000n)).toBe(false)
    expect(reads).toEqual([])
    expect(memory.read(BASE + 0x3000n, 1)).toBe(4n)
    expect(memory.readU64(BASE + 0x3000n)).toBe(4n)
    expect(memory.readBytes(BASE + 0x2fffn, 2)).toEqual(Uint8Array.of(0, 4))
    expect(reads).toEqual([BASE + 0x3000n])
    expect(memory.residentPages).toBe(1)
    expect(memory.nonZeroPages().map(([a, p]) => [a, p[0]])).toEqual([
      [BASE, 1],
      [BASE + 0x3000n, 4],
      [BASE + 0x5000n, 6],
    ])
    expect(reads).toEqual([BASE + 0x3000n, BASE, BASE + 0x5000n])
  })

  it('a write to a stored page keeps its other bytes; zeroing drops it unread; loadPage replaces it unread', () => {
    const {memory, reads} = sourced()
    memory.write(BASE + 8n, 1, 0x99n)
    expect(memory.read(BASE, 1)).toBe(1n)
    memory.zero(BASE + 0x3000n, PAGE)
    expect(memory.hasPage(BASE + 0x3000n)).toBe(false)
    memory.loadPage(BASE + 0x5000n, new Uint8Array(4096).fill(7))
    expect(memory.read(BASE + 0x5000n, 1)).toBe(7n)
    expect(reads).toEqual([BASE])
    expect(memory.nonZeroPages().map(([a]) => a)).toEqual([BASE, BASE + 0x5000n])
  })

  it('readNonZeroPages streams stored pages without keeping them', () => {
    const {memory, reads} = sourced()
    expect([...memory.readNonZeroPages()].map(([a]) => a)).toEqual(stored)
    expect(memory.residentPages).toBe(0)
    expect(reads).toEqual(stored)
  })

  it('a page source that throws leaves the page unread: every later use throws again', () => {
    let calls = 0
    const memory = new PhysicalMemory(BASE, SIZE, {
      storedPages: [BASE],
      pageSource: () => {
        calls++
        throw new Error('damaged')
      },
    })
    expect(() => memory.read(BASE, 1)).toThrow('damaged')
    expect(() => memory.write(BASE, 1, 1n)).toThrow('damaged')
    expect(() => memory.nonZeroPages()).toThrow('damaged')
    expect(calls).toBe(3)
    expect(memory.hasPage(BASE)).toBe(true)
  })

  it('refuses stored pages that are unaligned or outside RAM, and a page source giving the wrong size', () => {
    expectHvmemError(() => new PhysicalMemory(BASE, SIZE, {storedPages: [BASE + 8n], pageSource: () => undefined}), 'input', 'stored page 0x40000008 is not a 4 KiB page inside RAM')
    expectHvmemError(() => new PhysicalMemory(BASE, SIZE, {storedPages: [BASE + SIZE], pageSource: () => undefined}), 'input', 'not a 4 KiB page inside RAM')
    const short = new PhysicalMemory(BASE, SIZE, {storedPages: [BASE], pageSource: () => new Uint8Array(10)})
    expectHvmemError(() => short.read(BASE, 1), 'input', 'the page source gave 10 bytes for page 0x40000000, not 4096')
  })
})
