/**
 * Concurrent writers and readers against one snapshot, and a lock left behind. Builds on
 * test/cli/output.test.ts (alloc page processes at once) with readers among the writers, concurrent
 * maps, and the stale-lock takeover; test/snapshot/store.test.ts covers the same in one process.
 *
 * Each race is ROUNDS cases of RACERS processes started at once (each case on a fresh snapshot): a
 * lost update shows with 8 racing processes as with 32, and a case of 8 stays small on a busy
 * 2-core machine; the rounds repeat the race.
 */
import {mkdir, readFile, readdir, rmdir, utimes} from 'node:fs/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {AllocJson} from '../../src/cli/alloc.js'
import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import {decodeSnapshot} from '../../src/snapshot/format.js'
import {withoutTableWarning} from '../cli/run.js'
import {SOAK, hvmem, hvmemJson, scratch, start, stackLines} from './proc.js'

const HEAP = 0x4100_0000n
const PAGE = 4096n
/** processes started at once in one case */
const RACERS = 8
const READERS = 2
const WRITERS = RACERS - READERS
const ROUNDS = 2 * SOAK
const rounds = Array.from({length: ROUNDS}, (_, i) => i + 1)

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  ;({dir, snap, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
})
afterEach(async () => cleanup())

const sorted = (values: bigint[]): bigint[] => [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))

describe('concurrent commands on one snapshot', () => {
  it.each(rounds)(`round %i of ${ROUNDS}: ${WRITERS} alloc page processes at once, ${READERS} heap status readers among them: ${WRITERS} distinct consecutive pages, all counted`, async () => {
    const writers = Array.from({length: WRITERS}, () => start(dir, ['alloc', 'page', '--json']))
    const readers = Array.from({length: READERS}, () => start(dir, ['heap', 'status', '--json']))
    const written = await Promise.all(writers.map((w) => w.done))
    const read = await Promise.all(readers.map((r) => r.done))

    for (const r of [...written, ...read]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
    }
    const pages = written.map((r) => (JSON.parse(r.stdout) as AllocJson).addresses.map((a) => BigInt(a)))
    expect(pages.every((p) => p.length === 1)).toBe(true)
    const addresses = sorted(pages.flat())
    expect(addresses).toEqual(Array.from({length: WRITERS}, (_, i) => HEAP + BigInt(i) * PAGE))
    expect(addresses.every((a) => a % PAGE === 0n)).toBe(true)
    // each reader saw a whole snapshot: some number of whole pages allocated, never a torn state
    for (const r of read) {
      const allocated = (JSON.parse(r.stdout) as HeapStatusJson).heap.allocated
      expect(allocated % 4096).toBe(0)
      expect(allocated).toBeGreaterThanOrEqual(0)
      expect(allocated).toBeLessThanOrEqual(WRITERS * 4096)
    }

    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.heap.allocated).toBe(WRITERS * 4096)
    expect(status.json.heap.next).toBe(`0x${(HEAP + BigInt(WRITERS) * PAGE).toString(16)}`)
    expect(status.json.heap.padding).toBe(0)
    expect(await readdir(dir)).toEqual(['hvmem.snap']) // no lock, no temp file
  })

  // Round r maps blocks 8(r-1) to 8r-1 of the L2 table: the rounds together cover blocks 0-31.
  it.each(rounds)(`round %i of ${ROUNDS}: ${RACERS} map region processes of disjoint 2 MiB ranges at once: every block mapped, one L1 and one L2 table`, async (round) => {
    const first = (round - 1) * RACERS
    const ipa = (i: number): bigint => 0x4000_0000n + BigInt(i) * (2n << 20n)
    const runs = await Promise.all(Array.from({length: RACERS}, (_, i) => start(dir, ['map', 'region', `0x${ipa(first + i).toString(16)}`, '2M']).done))
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0)
      expect(withoutTableWarning(r.stderr)).toBe('') // later rounds map the heap, where the tables are
    }
    const created = runs.filter((r) => r.stdout.includes('Created the stage2 mapper')).length
    expect(created).toBe(1)

    const m = decodeSnapshot(await readFile(snap), snap)
    const root = m.mapper!.root
    expect(root).toBe(HEAP)
    const l1 = m.memory.readU64(root + 8n) // L1[1] covers 0x4000_0000-0x8000_0000
    expect(l1 & 3n).toBe(3n) // a table descriptor
    const l2 = l1 & 0x0000_ffff_ffff_f000n
    expect(l2).toBe(HEAP + PAGE)
    const l2Entries = Array.from({length: 512}, (_, i) => m.memory.readU64(l2 + BigInt(8 * i)))
    expect(l2Entries.slice(first, first + RACERS)).toEqual(Array.from({length: RACERS}, (_, i) => ipa(first + i) | 0x7fdn))
    expect([...l2Entries.slice(0, first), ...l2Entries.slice(first + RACERS)].every((d) => d === 0n)).toBe(true)
    // nothing else in the L1 table, and exactly the two tables allocated
    expect(Array.from({length: 512}, (_, i) => m.memory.readU64(root + BigInt(8 * i))).filter((d) => d !== 0n)).toEqual([l1])
    expect(m.heap.status().allocated).toBe(2n * PAGE)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
  })
})

describe('a lock left behind', () => {
  it('a stale lock (untouched for a minute, as a killed command leaves it) is taken over with a one-line message', async () => {
    const before = await readFile(snap)
    await mkdir(`${snap}.lock`)
    const old = new Date(Date.now() - 60_000)
    await utimes(`${snap}.lock`, old, old)
    const r = await hvmem(dir, ['alloc', 'page'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('0x41000000\n')
    expect(r.stderr).toMatch(/^hvmem: took over a stale lock on \.\/hvmem\.snap left by a command that did not finish \(\.\/hvmem\.snap\.lock, untouched for \d+ s\)\n$/)
    expect(stackLines(r.stderr)).toEqual([])
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
    expect((await readFile(snap)).equals(before)).toBe(false)
    expect((await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])).json.heap.allocated).toBe(4096)
  })

  it('a stale lock under --json: the message on stderr, the JSON on stdout untouched', async () => {
    await mkdir(`${snap}.lock`)
    const old = new Date(Date.now() - 60_000)
    await utimes(`${snap}.lock`, old, old)
    const r = await hvmem(dir, ['alloc', 'page', '--json'])
    expect(r.code).toBe(0)
    expect((JSON.parse(r.stdout) as AllocJson).addresses).toEqual(['0x41000000'])
    expect(r.stderr.split('\n')).toHaveLength(2) // one line and its newline
    expect(r.stderr).toContain('took over a stale lock')
  })

  it('a live lock is waited for, not taken over: the command finishes once it is released, silently', async () => {
    await mkdir(`${snap}.lock`)
    const waiting = start(dir, ['alloc', 'page'])
    // Give it time to start and find the lock; whenever it gets there, it must wait.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(waiting.child.exitCode).toBe(null)
    await rmdir(`${snap}.lock`)
    const r = await waiting.done
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('0x41000000\n')
    expect(r.stderr).toBe('')
  })
})
