/**
 * Standard output that cannot be written (issue 14, item 4): a full device (/dev/full stands for a
 * full disk) or a reader that closed the pipe. One line on stderr, exit 9, saying whether the change
 * was saved; never a stack trace, never exit 0 in silence after a change.
 */
import {spawn} from 'node:child_process'
import {closeSync, existsSync, openSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {stdoutErrorLine} from '../../src/cli/output.js'
import {decodeSnapshot} from '../../src/snapshot/format.js'
import {BIN, hvmem, hvmemEnv, scratch, stackLines} from './proc.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>

beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
})
afterAll(async () => cleanup())

const allocated = async (): Promise<bigint> => decodeSnapshot(await readFile(snap), snap).state().heap.allocated

interface Outcome {
  code: number | null
  stderr: string
}

/** Runs hvmem with stdout on `stdout`: a file descriptor (/dev/full) or 'closed' (a pipe whose reader is gone before hvmem writes). */
function run(args: string[], stdout: number | 'closed', input?: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {cwd: dir, env: hvmemEnv(), stdio: [input === undefined ? 'ignore' : 'pipe', stdout === 'closed' ? 'pipe' : stdout, 'pipe']})
    // the reading end closed at once: hvmem's first write meets EPIPE
    if (stdout === 'closed') child.stdout!.destroy()
    if (input !== undefined) child.stdin!.end(input)
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stderr}))
  })
}

function oneLine(r: Outcome): string {
  expect(stackLines(r.stderr)).toEqual([])
  expect(r.stderr.endsWith('\n') && r.stderr.split('\n').length === 2, JSON.stringify(r.stderr)).toBe(true)
  return r.stderr.slice(0, -1)
}

const hasDevFull = existsSync('/dev/full')

describe.skipIf(!hasDevFull)('stdout on a full device (/dev/full)', () => {
  let full: number
  beforeAll(() => {
    full = openSync('/dev/full', 'w')
  })
  afterAll(() => closeSync(full))

  it('a read-only command: one line, exit 9, the snapshot not changed', async () => {
    const r = await run(['heap', 'status'], full)
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: no space left on its device (ENOSPC); the snapshot was not changed')
    expect(r.code).toBe(9)
  })

  it('--json too', async () => {
    const r = await run(['heap', 'status', '--json'], full)
    expect(oneLine(r)).toMatch(/^hvmem: cannot write to standard output: .*ENOSPC/)
    expect(r.code).toBe(9)
  })

  it('alloc page: exit 9, and the line says the allocation was saved (it was)', async () => {
    const before = await allocated()
    const r = await run(['alloc', 'page'], full)
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: no space left on its device (ENOSPC); the change to ./hvmem.snap was saved (only this output of it is lost)')
    expect(r.code).toBe(9)
    expect(await allocated()).toBe(before + 4096n)
  })

  it('batch: its output fails before the save, so nothing is saved, and the line says so', async () => {
    const before = await allocated()
    const r = await run(['batch'], full, 'alloc page\nalloc page\n')
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: no space left on its device (ENOSPC); nothing was saved, the snapshot is unchanged')
    expect(r.code).toBe(9)
    expect(await allocated()).toBe(before)
  })
})

describe('stdout a closed pipe (EPIPE)', () => {
  it('alloc page: exit 9 (not 0 in silence), and the line says the allocation was saved', async () => {
    const before = await allocated()
    const r = await run(['alloc', 'page'], 'closed')
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: the reader closed it (EPIPE); the change to ./hvmem.snap was saved (only this output of it is lost)')
    expect(r.code).toBe(9)
    expect(await allocated()).toBe(before + 4096n)
  })

  it('mem write --json: the same', async () => {
    const r = await run(['mem', 'write', '0x4100_0000', '7', '--json'], 'closed')
    expect(oneLine(r)).toMatch(/EPIPE\); the change to \.\/hvmem\.snap was saved/)
    expect(r.code).toBe(9)
  })

  it('batch: nothing saved, exit 9, said in one line', async () => {
    const before = await allocated()
    const r = await run(['batch'], 'closed', 'alloc page\n')
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: the reader closed it (EPIPE); nothing was saved, the snapshot is unchanged')
    expect(r.code).toBe(9)
    expect(await allocated()).toBe(before)
  })

  it('a read-only command whose reader went away (`hvmem dump tables | head`) ends quietly, as other Unix tools', async () => {
    const r = await run(['heap', 'status'], 'closed')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
})

describe('stdoutErrorLine', () => {
  const error = (code: string): Error & {code: string} => Object.assign(new Error(code), {code})
  it('names the cause and what was saved', () => {
    expect(stdoutErrorLine(error('EDQUOT'), ['a.snap', 'a.snap'])).toBe(
      'hvmem: cannot write to standard output: no space left on its device (EDQUOT); the change to a.snap was saved (only this output of it is lost)',
    )
    expect(stdoutErrorLine(error('EIO'), [])).toBe('hvmem: cannot write to standard output: EIO; the snapshot was not changed')
    expect(stdoutErrorLine(error('EPIPE'), [])).toBeUndefined()
    expect(stdoutErrorLine(error('EPIPE'), [], true)).toMatch(/nothing was saved/)
  })
})
