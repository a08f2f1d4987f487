/**
 * Hostile sizes and unbounded input (issue 14, items 5 and 6): a header's declared size is checked
 * against the file before anything past it is read; a snapshot on standard input is read no further
 * than its header says; a batch script is read a line at a time, up to a documented bound.
 */
import {spawn} from 'node:child_process'
import {mkdir, readFile, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {MAX_SCRIPT_LINES} from '../../src/commands/batch.js'
import {HvmemError} from '../../src/core/errors.js'
import {MAX_READ_BYTES, checkDeclaredSize, declaredSnapshotSize} from '../../src/snapshot/declared-size.js'
import {HEADER_BYTES, MAGIC} from '../../src/snapshot/format.js'
import {openSnapshotFile} from '../../src/snapshot/store.js'
import {BIN, hvmem, hvmemEnv, scratch, stackLines} from './proc.js'

const PRELOAD = pathToFileURL(fileURLToPath(new URL('./rss-preload.mjs', import.meta.url))).href

let dir: string
let snap: string
let cleanup: () => Promise<void>

beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
})
afterAll(async () => cleanup())

/** A header of `bytes` bytes: the magic and `version`, the rest zero (page count 0). */
function header(version: number, bytes = 12): Buffer {
  const head = Buffer.alloc(bytes)
  MAGIC.copy(head, 0)
  head.writeUInt32LE(version, 8)
  return head
}

/** Runs `sh -c script` (hvmem is "$HVMEM"), with its peak RSS in KB (test/reliability/rss-preload.mjs). */
function shell(script: string): Promise<{code: number | null; stderr: string; rssKb: number}> {
  const rssFile = join(dir, `rss.${Math.random().toString(16).slice(2)}`)
  return new Promise((resolve, reject) => {
    const env = hvmemEnv({HVMEM: `"${process.execPath}" --import ${PRELOAD} "${BIN}"`, HVMEM_RSS_OUT: rssFile})
    const child = spawn('sh', ['-c', script.replaceAll('$HVMEM', 'eval $HVMEM')], {cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe']})
    let stderr = ''
    child.stdout.resume()
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      readFile(rssFile, 'utf8')
        .then((kb) => resolve({code, stderr, rssKb: Number(kb)}))
        .catch(() => resolve({code, stderr, rssKb: -1}))
    })
  })
}

function oneLine(stderr: string): string {
  expect(stackLines(stderr)).toEqual([])
  expect(stderr.endsWith('\n') && stderr.split('\n').length === 2, JSON.stringify(stderr)).toBe(true)
  return stderr.slice(0, -1)
}

describe('declared sizes, checked before reading (src/snapshot/declared-size.ts)', () => {
  it('a 12-byte version-1 header in a file sparse to 1.5 GiB: exit 4, and the file is never read (peak RSS well below its size)', async () => {
    const file = join(dir, 'sparse.snap')
    await writeFile(file, header(1))
    await truncate(file, 1.5 * 2 ** 30)
    for (const command of ['heap status', 'alloc page']) {
      const r = await shell(`$HVMEM ${command} -s sparse.snap`)
      expect(oneLine(r.stderr)).toBe("hvmem: sparse.snap is not a valid hvmem snapshot: 1610612736 bytes where the header's 0 pages need 132 (truncated or damaged)")
      expect(r.code).toBe(4)
      expect(r.rssKb).toBeGreaterThan(0)
      expect(r.rssKb).toBeLessThan(400 * 1024)
    }
  })

  it.each([
    ['3 GiB, version 1', 1, 3 * 2 ** 30],
    ['5 GiB, version 1', 1, 5 * 2 ** 30],
    ['5 GiB, version 2', 2, 5 * 2 ** 30],
  ])('%s: exit 4 naming the sizes, never "length out of range" or an internal error', async (_, version, size) => {
    const file = join(dir, `big${version}-${size}.snap`)
    await writeFile(file, header(version))
    await truncate(file, size)
    const r = await hvmem(dir, ['heap', 'status', '-s', file])
    expect(oneLine(r.stderr)).toBe(`hvmem: ${file} is not a valid hvmem snapshot: ${size} bytes where the header's 0 pages need ${version === 1 ? 132 : 128} (truncated or damaged)`)
    expect(r.code).toBe(4)
  })

  it('in-process: the same refusal from openSnapshotFile', async () => {
    const file = join(dir, 'sparse2.snap')
    await writeFile(file, header(1))
    await truncate(file, 3 * 2 ** 30)
    await expect(openSnapshotFile(file)).rejects.toMatchObject({kind: 'snapshot-invalid'})
  })

  it('a header whose declared size matches but is too large to read in one piece is refused', () => {
    // version 1, read whole: a page count making the file just past MAX_READ_BYTES
    const head = header(1, HEADER_BYTES)
    const pages = BigInt(Math.ceil((MAX_READ_BYTES - 132) / 4104))
    head.writeBigUInt64LE(pages, 80)
    const size = declaredSnapshotSize(head)!.size
    expect(size).toBeGreaterThan(BigInt(MAX_READ_BYTES))
    expect(() => checkDeclaredSize(head, Number(size), 'x.snap')).toThrow(HvmemError)
    expect(() => checkDeclaredSize(head, Number(size), 'x.snap')).toThrow(/read whole/)
    // version 2: an index past MAX_READ_BYTES
    const v2 = header(2, HEADER_BYTES)
    v2.writeBigUInt64LE(2n ** 27n, 80)
    expect(() => checkDeclaredSize(v2, Number(declaredSnapshotSize(v2)!.size), 'y.snap')).toThrow(/index of 134217728 pages/)
    // other headers are left to decode
    expect(declaredSnapshotSize(Buffer.from('not a snapshot at all, and long enough to hold a header of 88 bytes........................'))).toBeUndefined()
  })
})

describe('snapshot diff - : standard input read no further than its header says', () => {
  it.each([
    ['zeros', 'head -c 268435456 /dev/zero'],
    ['yes', 'yes | head -c 268435456'],
  ])('%s: stops at the header (wrong magic): exit 2, one line, peak RSS far below the 256 MiB offered', async (_, source) => {
    const r = await shell(`${source} | $HVMEM snapshot diff - hvmem.snap`)
    expect(oneLine(r.stderr)).toBe('hvmem: standard input is not a valid hvmem snapshot: wrong magic (not a snapshot, or damaged)')
    expect(r.code).toBe(2)
    expect(r.rssKb).toBeGreaterThan(0)
    expect(r.rssKb).toBeLessThan(200 * 1024)
  })

  it('a valid header followed by more than it declares: exit 2, read no further than a chunk past it', async () => {
    const r = await shell('{ cat hvmem.snap; head -c 268435456 /dev/zero; } | $HVMEM snapshot diff - hvmem.snap')
    expect(oneLine(r.stderr)).toBe('hvmem: standard input is not a valid hvmem snapshot: it holds more than the 128 bytes its header declares (damaged, or more than one file?)')
    expect(r.code).toBe(2)
    expect(r.rssKb).toBeLessThan(200 * 1024)
  })

  it('the snapshot itself: still compared', async () => {
    const r = await hvmem(dir, ['snapshot', 'diff', '-', 'hvmem.snap'], {}, await readFile(snap))
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
})

describe('batch: the script streamed a line at a time, up to a bound', () => {
  it(`yes 'alloc page' | hvmem batch: refused past ${MAX_SCRIPT_LINES} lines, exit 2, nothing run or saved`, async () => {
    const before = await readFile(snap)
    const r = await shell("yes 'alloc page' | $HVMEM batch")
    expect(oneLine(r.stderr)).toBe('hvmem: standard input has more than 1,000,000 lines; nothing was run: split the script into several batches')
    expect(r.code).toBe(2)
    expect((await readFile(snap)).equals(before)).toBe(true)
  })

  it('a line with no end (/dev/zero): refused past 1 MiB characters, exit 2', async () => {
    const r = await shell('head -c 268435456 /dev/zero | $HVMEM batch')
    expect(oneLine(r.stderr)).toBe('hvmem: line 1 of standard input is longer than 1,048,576 characters (not a script of commands?); nothing was run')
    expect(r.code).toBe(2)
    expect(r.rssKb).toBeLessThan(200 * 1024)
  })

  it('standard input a directory (batch < DIR): exit 2, not 0 in silence', async () => {
    await mkdir(join(dir, 'adir'), {recursive: true})
    const r = await shell('$HVMEM batch < adir')
    expect(oneLine(r.stderr)).toBe('hvmem: cannot read the batch script from standard input: it is a directory; redirect a file of commands, or name it: hvmem batch FILE')
    expect(r.code).toBe(2)
  })

  it('lines split across reads (a multi-byte character, a CRLF) still run as written', async () => {
    const r = await hvmem(dir, ['batch', '--json'], {}, `${'# é\r\n'.repeat(40_000)}heap status\r\n`)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('"line":40001')
  })
})
