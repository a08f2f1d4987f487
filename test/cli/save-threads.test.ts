/**
 * A small save (or append) is written and fsynced synchronously, without starting libuv's thread
 * pool (2-3 ms of a command on this VM, src/snapshot/store.ts SYNC_BYTES); a large one asynchronously,
 * so that a signal is answered while it is written. Seen from outside as the process's thread
 * count at exit (/proc/self/task): the pool adds its four threads.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {expectOkInProcess} from './inprocess.js'
import {BIN, hvmemEnv, scratch} from './run.js'

describe.skipIf(!existsSync('/proc/self/task'))("a save's thread pool", () => {
  let own: {dir: string; snap: string; cleanup: () => Promise<void>}
  let probe: string
  beforeAll(async () => {
    own = await scratch()
    await expectOkInProcess(own.dir, 'heap', 'init')
    probe = join(own.dir, 'probe.cjs')
    await writeFile(probe, "process.on('exit', () => require('node:fs').writeFileSync(process.env.PROBE_OUT, String(require('node:fs').readdirSync('/proc/self/task').length)))\n")
  })
  afterAll(async () => own.cleanup())

  /** The command's exit code, the snapshot's size after it, and its thread count at exit. */
  const threads = (args: string[]): {code: number | null; size: number; threads: number} => {
    const out = join(own.dir, 'threads.out')
    const r = spawnSync(process.execPath, ['-r', probe, BIN, ...args], {cwd: own.dir, env: hvmemEnv({PROBE_OUT: out}), stdio: 'ignore'})
    return {code: r.status, size: readFileSync(own.snap).length, threads: Number(readFileSync(out, 'utf8'))}
  }

  // in this order: a read (the reference), small saves, then one of more than 4 MiB
  let reference = 0
  it('heap status (no save): the reference', () => {
    const r = threads(['heap', 'status'])
    expect(r.code).toBe(0)
    reference = r.threads
    expect(reference).toBeGreaterThan(1)
  })

  it.each([
    [['alloc', 'page'], 128],
    [['map', 'region', '0x4000_0000', '2M'], 128 + 2 * 4112],
    [['mem', 'write', '0x4000_0000', '0x1234'], 128 + 3 * 4112],
  ])('%j saves %i bytes without the thread pool', (args, size) => {
    expect(threads(args)).toEqual({code: 0, size, threads: reference})
  })

  it('a save of more than 4 MiB (3 GiB mapped as pages: 1,539 table pages) uses it', () => {
    const r = threads(['map', 'region', '0x1_0000_0000', '3G', '--granularity', 'page'])
    expect(r.code).toBe(0)
    expect(r.size).toBeGreaterThan(4 << 20)
    expect(r.threads).toBe(reference + 4)
  })

  it('a change to that snapshot appended as one small record does not', () => {
    const before = readFileSync(own.snap)
    const r = threads(['mem', 'write', '0x4000_1000', '0x5678'])
    expect(r).toMatchObject({code: 0, threads: reference})
    // appended: the file as it was, then the record (its page and header), not rewritten
    const after = readFileSync(own.snap)
    expect(after.subarray(0, before.length).equals(before)).toBe(true)
    expect(after.length - before.length).toBeGreaterThan(4096)
    expect(after.length - before.length).toBeLessThan(3 * 4096)
  })
})
