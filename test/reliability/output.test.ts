/**
 * Standard output that cannot be written (issue 14, item 4): a full device (/dev/full stands for a
 * full disk) or a reader that closed the pipe. One line on stderr, exit 9, saying whether the change
 * was saved; never a stack trace, never exit 0 in silence after a change.
 */
import {spawn} from 'node:child_process'
import {closeSync, existsSync, openSync} from 'node:fs'
import {readFile, readdir} from 'node:fs/promises'
import {join} from 'node:path'
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

/**
 * Runs hvmem with stdout on `stdout`: a file descriptor (/dev/full, a file) or 'closed' (a pipe whose
 * reader is gone before hvmem writes). `shell`: a sh script run first, which then execs hvmem.
 */
function run(args: string[], stdout: number | 'closed', input?: string, shell?: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const command = shell === undefined ? [process.execPath, BIN, ...args] : ['sh', '-c', `${shell} && exec "$0" "$@"`, process.execPath, BIN, ...args]
    const child = spawn(command[0]!, command.slice(1), {cwd: dir, env: hvmemEnv(), stdio: [input === undefined ? 'ignore' : 'pipe', stdout === 'closed' ? 'pipe' : stdout, 'pipe']})
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
  beforeAll(async () => {
    full = openSync('/dev/full', 'w')
    // (for snapshot diff: another heap size)
    expect((await hvmem(dir, ['heap', 'init', '--size', '1M', '-s', 'other.snap'])).code).toBe(0)
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

  // oclif's help and version paths run no hvmem command; `help` loads the help plugin, whose own copy
  // of @oclif/core adds a listener that rethrows the error: each was a 32 KB stack trace, exit 1
  it.each([[['--help']], [['-v']], [['version']], [['help', 'heap']], [['dump']], [['alloc', 'page', '--help']]])('%j: one line, exit 9, nothing was changed', async (args) => {
    const r = await run(args, full)
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: no space left on its device (ENOSPC); nothing was changed')
    expect(r.code).toBe(9)
  })

  // diff(1)'s codes: 0 the same, 1 different, 2 trouble; its output lost is trouble, not "different"
  it.each([
    ['the same', ['hvmem.snap', 'hvmem.snap']],
    ['different', ['hvmem.snap', 'other.snap']],
    ['different, --json', ['hvmem.snap', 'other.snap', '--json']],
  ])('snapshot diff, %s: exit 2', async (_, args) => {
    const r = await run(['snapshot', 'diff', ...args], full)
    expect(oneLine(r)).toBe('hvmem: cannot write to standard output: no space left on its device (ENOSPC); the snapshot was not changed')
    expect(r.code).toBe(2)
  })

  // oclif writes '' to stdout as it ends, and /dev/full fails even a write of nothing
  it('a run that prints nothing does not fail: a comment-only batch, exit 0, nothing said', async () => {
    const r = await run(['batch'], full, '# only a comment\n')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it('an unknown command: its own line only (no second line about stdout), exit 2', async () => {
    const r = await run(['nosuch'], full)
    expect(oneLine(r)).toBe('hvmem: unknown command "nosuch"; see "hvmem --help" for the commands')
    expect(r.code).toBe(2)
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

/** The file-size limit of limited(): `ulimit -f 2`, in the 512-byte blocks sh counts (POSIX). */
const FILE_LIMIT = 1024

/**
 * Runs hvmem with stdout to a new file under a file-size limit of FILE_LIMIT bytes: a write that
 * passes it is cut short there (write(2) returns fewer bytes; the next write fails with EFBIG, as a
 * disk that fills part-way through a write then fails with ENOSPC). Node ignores SIGXFSZ.
 */
async function limited(args: string[]): Promise<Outcome & {out: Buffer}> {
  const path = join(dir, 'out.txt')
  const fd = openSync(path, 'w')
  try {
    const r = await run(args, fd, undefined, `ulimit -f ${FILE_LIMIT / 512}`)
    return {...r, out: await readFile(path)}
  } finally {
    closeSync(fd)
  }
}

const EFBIG = 'hvmem: cannot write to standard output: the file is larger than the file-size limit (ulimit -f) or its file system allows (EFBIG)'

describe('stdout a file that reaches its size limit part-way through a write (a short write)', () => {
  it('mem read: exit 9 and one line, not exit 0 with the output cut short; the file holds the output up to the limit', async () => {
    const args = ['mem', 'read', '0x4100_0000', '4096']
    const full = await hvmem(dir, args)
    expect(full.stdout.length).toBeGreaterThan(FILE_LIMIT)
    const r = await limited(args)
    expect(oneLine(r)).toBe(`${EFBIG}; the snapshot was not changed`)
    expect(r.code).toBe(9)
    expect(r.out.toString()).toBe(full.stdout.slice(0, FILE_LIMIT))
  })

  it('alloc page --count, whose output is one write after the save: the line says the change was saved', async () => {
    expect((await hvmem(dir, ['heap', 'init', '-s', 'limit.snap'])).code).toBe(0)
    const r = await limited(['alloc', 'page', '--count', '200', '-s', 'limit.snap'])
    expect(oneLine(r)).toBe(`${EFBIG}; the change to limit.snap was saved (only this output of it is lost)`)
    expect(r.code).toBe(9)
    expect(r.out.length).toBe(FILE_LIMIT)
    const heap = decodeSnapshot(await readFile(join(dir, 'limit.snap')), 'limit.snap').state().heap
    expect(heap.allocated).toBe(200n * 4096n)
  })

  it('snapshot export - (text): the summary on stderr does not claim the export was written', async () => {
    expect((await hvmem(dir, ['heap', 'init', '-s', 'export.snap'])).code).toBe(0)
    expect((await hvmem(dir, ['map', 'region', '0x4000_0000', '1G', '-s', 'export.snap'])).code).toBe(0)
    const r = await limited(['snapshot', 'export', '-', '--format', 'c', '-s', 'export.snap'])
    expect(oneLine(r)).toBe(`${EFBIG}; the snapshot was not changed`)
    expect(r.code).toBe(9)
  })
})

describe('a snapshot that would pass the file-size limit', () => {
  it('map region: exit 9, one line naming the limit, the snapshot unchanged and no temp file left', async () => {
    expect((await hvmem(dir, ['heap', 'init', '-s', 'big.snap'])).code).toBe(0)
    const before = await readFile(join(dir, 'big.snap'))
    expect(before.length).toBeLessThan(FILE_LIMIT)
    const devNull = openSync('/dev/null', 'w')
    try {
      // 2 MiB of pages: one table page of 4 KiB is already past the limit
      const r = await run(['map', 'region', '0x4000_0000', '2M', '--granularity', 'page', '-s', 'big.snap'], devNull, undefined, `ulimit -f ${FILE_LIMIT / 512}`)
      expect(oneLine(r)).toBe(
        'hvmem: big.snap would be larger than the file-size limit (ulimit -f) or its file system allows (EFBIG); the snapshot was not changed: raise the limit, or save it elsewhere',
      )
      expect(r.code).toBe(9)
    } finally {
      closeSync(devNull)
    }
    expect((await readFile(join(dir, 'big.snap'))).equals(before)).toBe(true)
    expect((await readdir(dir)).filter((f) => f.startsWith('big.snap') && f !== 'big.snap')).toEqual([])
  })
})

describe('stdoutErrorLine', () => {
  const error = (code: string): Error & {code: string} => Object.assign(new Error(code), {code})
  it('names the cause and what was saved', () => {
    expect(stdoutErrorLine(error('EDQUOT'), ['a.snap', 'a.snap'])).toBe(
      'hvmem: cannot write to standard output: no space left on its device (EDQUOT); the change to a.snap was saved (only this output of it is lost)',
    )
    expect(stdoutErrorLine(error('EFBIG'), [])).toBe(`${EFBIG}; the snapshot was not changed`)
    expect(stdoutErrorLine(error('EIO'), [])).toBe('hvmem: cannot write to standard output: EIO; the snapshot was not changed')
    expect(stdoutErrorLine(error('EIO'), [], false, false)).toBe('hvmem: cannot write to standard output: EIO; nothing was changed')
    expect(stdoutErrorLine(error('EPIPE'), [])).toBeUndefined()
    expect(stdoutErrorLine(error('EPIPE'), [], true)).toMatch(/nothing was saved/)
  })
})
