/**
 * Crash safety: a mutating command SIGKILLed at random moments during a large save (a 16 MiB heap
 * full of pages, a 16.8 MB file) leaves the old snapshot or the new one, byte for byte; never a
 * torn file. What a kill leaves behind (a temp file, a lock) never trips up a later command, and the
 * next save removes the temp files.
 *
 * The first part tests the whole-file save (temp file and rename): HVMEM_JOURNAL_THRESHOLD is set
 * above the file's size, so it is written as version 3 and rewritten by each save. The second part
 * tests appended records (format 5): a kill leaves the snapshot as it was or as changed, and an
 * append cut short is ignored by every later command and cut away by the next save.
 */
import {readFile, readdir, utimes} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import {Machine} from '../../src/core/machine.js'
import {decodeSnapshot, encodeSnapshot} from '../../src/snapshot/format.js'
import {createSnapshot, tempFilePattern} from '../../src/snapshot/store.js'
import {SOAK, hvmem, hvmemJson, scratch, stackLines, start} from './proc.js'

const RAM = 0x4000_0000n
const HEAP = 0x4100_0000n
const HEAP_PAGES = 4096 // 16 MiB
const PAGE = 4096n
/** Kills at a random delay after the command starts. */
const RANDOM_KILLS = 10 * SOAK
/** Kills at a random moment after the command's temp file appears: inside the save by construction. */
const SAVE_KILLS = 5 * SOAK

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
})
afterAll(async () => cleanup())

/** A small deterministic generator (mulberry32), seeded per run and reported on failure. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// (the whole-file save: see above; the append part passes its own threshold to its commands). Set
// for this file's tests only: a worker runs other files after it (isolate: false in vitest.config.ts).
let thresholdBefore: string | undefined
beforeAll(() => {
  thresholdBefore = process.env.HVMEM_JOURNAL_THRESHOLD
  process.env.HVMEM_JOURNAL_THRESHOLD = String(2 ** 40)
})
afterAll(() => {
  if (thresholdBefore === undefined) delete process.env.HVMEM_JOURNAL_THRESHOLD
  else process.env.HVMEM_JOURNAL_THRESHOLD = thresholdBefore
})

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The write each round makes: alternately into a stored heap page, and into a new page (the file grows). */
function writeFor(round: number): {address: bigint; value: bigint} {
  const address = round % 2 === 0 ? HEAP + BigInt((round * 37) % HEAP_PAGES) * PAGE + 16n : RAM + BigInt(round) * PAGE + 8n
  return {address, value: 0x5a5a_0000_0000_0000n + BigInt(round + 1)}
}

/** Rounds a case: a kill and a read-only command each, so a case runs 2 * ROUNDS_A_CASE processes. */
const ROUNDS_A_CASE = 3
const CASES = (RANDOM_KILLS + SAVE_KILLS) / ROUNDS_A_CASE

// The seed, printed before the run (set HVMEM_CRASH_SEED to repeat it). Each round draws from its own
// generator (seed and round), so a case's delays do not depend on which cases ran before it.
const seed = Number(process.env.HVMEM_CRASH_SEED ?? Date.now() % 2 ** 31)
const context = `seed ${seed} (set HVMEM_CRASH_SEED to repeat)`
console.log(`crash: SIGKILLs at random moments with ${context}`)

describe('SIGKILL during a large save', () => {
  const tally = {kills: 0, oldKept: 0, newWritten: 0, finishedFirst: 0, locksLeft: 0}
  const tempFilesSeen = new Set<string>()
  const tempPattern = tempFilePattern('hvmem.snap')
  /** How long an uninterrupted save takes here: the window for random kills. */
  let window = 200

  beforeAll(async () => {
    // A default machine whose heap is all allocated, every page holding data.
    const m = Machine.create({ramBase: RAM, ramSize: 1n << 30n, heapBase: HEAP, heapSize: BigInt(HEAP_PAGES) * PAGE})
    for (let i = 0; i < HEAP_PAGES; i++) {
      const page = m.heap.allocPage()
      m.memory.write(page, 8, page)
      m.memory.write(page + 4088n, 8, BigInt(i + 1))
    }
    await createSnapshot(snap, m, false)
    expect((await readFile(snap)).length).toBe(128 + HEAP_PAGES * 4112)

    // One uninterrupted run first: how long a save takes here sets the window for random kills (a
    // busy machine only moves the kills later in the run; every moment is a valid one).
    const warm = Date.now()
    expect((await hvmem(dir, ['mem', 'write', '0x4000_0000', '1'])).code).toBe(0)
    window = Math.max(200, 1.5 * (Date.now() - warm))
  })

  it.each(Array.from({length: CASES}, (_, i) => i))(
    `kills %i of ${CASES} (${ROUNDS_A_CASE} rounds each, ${RANDOM_KILLS} at random delays, then ${SAVE_KILLS} inside the save): the file is always the old or the new snapshot, and later commands work`,
    async (group) => {
      let current = await readFile(snap)
      for (let round = group * ROUNDS_A_CASE; round < (group + 1) * ROUNDS_A_CASE; round++) {
        const rng = random(seed + round * 0x9e37_79b9)
        const label = `round ${round}, ${context}`
        const {address, value} = writeFor(round)
        const next = decodeSnapshot(current, snap)
        next.memory.write(address, 8, value)
        const expected = encodeSnapshot(next)

        const run = start(dir, ['mem', 'write', `0x${address.toString(16)}`, `0x${value.toString(16)}`])
        let exited = false
        void run.done.then(() => (exited = true))
        if (round < RANDOM_KILLS) {
          await sleep(rng() * window)
        } else {
          // wait for the temp file, then kill somewhere in the write, fsync or rename
          while (!exited && !(await readdir(dir)).some((name) => tempPattern.test(name))) await sleep(1)
          await sleep(rng() * 40)
        }
        run.child.kill('SIGKILL')
        const result = await run.done
        tally.kills++
        if (result.signal !== 'SIGKILL') {
          tally.finishedFirst++
          expect(result.code, `${label}: ${result.stderr}`).toBe(0)
        }

        const after = await readFile(snap)
        const isOld = after.equals(current)
        const isNew = after.equals(expected)
        expect(isOld || isNew, `${label}: the file is neither the old nor the new snapshot (${after.length} bytes)`).toBe(true)
        if (result.signal !== 'SIGKILL') expect(isNew, label).toBe(true)
        if (isNew) tally.newWritten++
        else tally.oldKept++
        decodeSnapshot(after, snap) // whole and valid, every page checked
        current = after

        const names = await readdir(dir)
        for (const name of names.filter((n) => tempPattern.test(n))) tempFilesSeen.add(name)
        if (names.includes('hvmem.snap.lock')) {
          tally.locksLeft++
          // What 10 s of waiting would do: the lock of the killed command is now stale.
          const old = new Date(Date.now() - 60_000)
          await utimes(join(dir, 'hvmem.snap.lock'), old, old)
        }
        expect(
          names.filter((name) => name !== 'hvmem.snap' && name !== 'hvmem.snap.lock' && !tempPattern.test(name)),
          label,
        ).toEqual([])

        // A read-only command beside what the kill left: it sees the snapshot, nothing else.
        const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
        expect(status.code, `${label}: ${status.stderr}`).toBe(0)
        expect(status.json.heap.allocated).toBe(HEAP_PAGES * 4096)
      }
    },
  )

  it('after the kills, the next save works, reports a stale lock if one was left, and clears the temp files', async () => {
    const final = decodeSnapshot(await readFile(snap), snap)
    final.memory.write(RAM, 8, 0xfn)
    const r = await hvmem(dir, ['mem', 'write', '0x4000_0000', '0xf'])
    expect(r.code, r.stderr).toBe(0)
    expect(stackLines(r.stderr)).toEqual([])
    expect(r.stderr === '' || /^hvmem: took over a stale lock on \.\/hvmem\.snap .*\n$/.test(r.stderr), r.stderr).toBe(true)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
    expect((await readFile(snap)).equals(encodeSnapshot(final))).toBe(true)

    expect(tally.kills).toBe(RANDOM_KILLS + SAVE_KILLS)
    expect(tally.oldKept + tally.newWritten).toBe(tally.kills)
    console.log(
      `crash: ${tally.kills} SIGKILLs (${context}): old snapshot kept ${tally.oldKept}, new one written ${tally.newWritten} (${tally.finishedFirst} finished before the kill); temp files left and later removed ${tempFilesSeen.size}; stale locks taken over ${tally.locksLeft}; torn files 0`,
    )
  })
})

describe('SIGKILL during appends (format 5)', () => {
  const ENV = {HVMEM_JOURNAL_THRESHOLD: '65536'}
  const PAGES = 256
  const KILLS = 6 * SOAK
  let jdir = ''
  let jsnap = ''
  let jcleanup: () => Promise<void> = async () => undefined
  let window = 200
  const tally = {kills: 0, oldKept: 0, newWritten: 0, unfinishedLeft: 0}

  /** The snapshot a file holds, as a version-3 file: equal bytes, equal snapshots. */
  const canonical = (data: Buffer): Buffer => encodeSnapshot(decodeSnapshot(data, jsnap))

  beforeAll(async () => {
    ;({dir: jdir, snap: jsnap, cleanup: jcleanup} = await scratch())
    const m = Machine.create({ramBase: RAM, ramSize: 1n << 30n, heapBase: HEAP, heapSize: BigInt(PAGES) * PAGE})
    for (let i = 0; i < PAGES; i++) m.memory.write(m.heap.allocPage(), 8, BigInt(i + 1))
    const previous = process.env.HVMEM_JOURNAL_THRESHOLD
    process.env.HVMEM_JOURNAL_THRESHOLD = ENV.HVMEM_JOURNAL_THRESHOLD
    try {
      await createSnapshot(jsnap, m, false)
    } finally {
      process.env.HVMEM_JOURNAL_THRESHOLD = previous
    }
    expect((await readFile(jsnap)).readUInt32LE(8)).toBe(5)
    const warm = Date.now()
    expect((await hvmem(jdir, ['mem', 'write', '0x4000_0000', '1'], ENV)).code).toBe(0)
    window = Math.max(200, 1.5 * (Date.now() - warm))
  })
  afterAll(async () => jcleanup())

  // cases of three kills each (a kill and a read-only command a round), then the next save after them all
  const GROUPS = KILLS / 3
  it.each(Array.from({length: GROUPS}, (_, i) => i))(
    `append kills %i of ${GROUPS} (3 at random moments of a mem write each): the snapshot is the old one or the new one, and the next commands work`,
    async (group) => {
      for (let round = 3 * group; round < 3 * group + 3; round++) {
        const rng = random(seed + 0x5151 + round * 0x9e37_79b9)
        const label = `append round ${round}, ${context}`
        const current = await readFile(jsnap)
        const next = decodeSnapshot(current, jsnap)
        const address = RAM + BigInt(round % 64) * PAGE + 8n * BigInt(round)
        next.memory.write(address, 8, 0xa5n + BigInt(round))
        const expected = encodeSnapshot(next)
        const run = start(jdir, ['mem', 'write', `0x${address.toString(16)}`, `0x${(0xa5 + round).toString(16)}`, '--width', '8'], {env: ENV})
        await sleep(rng() * window)
        run.child.kill('SIGKILL')
        const result = await run.done
        tally.kills++
        if (result.signal !== 'SIGKILL') expect(result.code, `${label}: ${result.stderr}`).toBe(0)
        const after = await readFile(jsnap)
        const now = canonical(after)
        const isOld = now.equals(canonical(current))
        const isNew = now.equals(expected)
        expect(isOld || isNew, `${label}: neither the old nor the new snapshot`).toBe(true)
        if (result.signal !== 'SIGKILL') expect(isNew, label).toBe(true)
        if (isNew) tally.newWritten++
        else tally.oldKept++
        if (after.length > current.length && isOld) tally.unfinishedLeft++
        if ((await readdir(jdir)).includes('hvmem.snap.lock')) {
          const old = new Date(Date.now() - 60_000)
          await utimes(join(jdir, 'hvmem.snap.lock'), old, old)
        }
        const status = await hvmemJson<HeapStatusJson>(jdir, ['heap', 'status'])
        expect(status.code, `${label}: ${status.stderr}`).toBe(0)
        expect(status.json.heap.allocated).toBe(PAGES * 4096)
      }
    },
  )

  it('the next save after all the kills appends (or rewrites) over whatever they left', async () => {
    expect(tally.kills).toBe(KILLS)
    const final = decodeSnapshot(await readFile(jsnap), jsnap)
    final.memory.write(RAM, 8, 0xfn)
    const r = await hvmem(jdir, ['mem', 'write', '0x4000_0000', '0xf', '--width', '8'], ENV)
    expect(r.code, r.stderr).toBe(0)
    expect(stackLines(r.stderr)).toEqual([])
    expect(canonical(await readFile(jsnap)).equals(encodeSnapshot(final))).toBe(true)
    expect((await hvmem(jdir, ['snapshot', 'verify'], ENV)).code).toBe(0)
    console.log(`crash (appends): ${tally.kills} SIGKILLs (${context}): old snapshot kept ${tally.oldKept} (an unfinished append left ${tally.unfinishedLeft}), new one written ${tally.newWritten}`)
  })
})
