/**
 * Arguments and environment (issue 14, item 9): whitespace and backslashes in numbers, long
 * snapshot names, a directory's name as the snapshot, a file where the lock goes, an empty
 * HVMEM_SNAPSHOT, --json for unknown commands and extra arguments, HOME or XDG_DATA_HOME not a
 * directory. Number parsing and the store run in-process; the rest needs the binary.
 */
import {mkdtemp, readFile, readdir, rm, utimes, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {parseU64} from '../../src/cli/numbers.js'
import {HvmemError} from '../../src/core/errors.js'
import {createSnapshot, loadSnapshot, updateSnapshot} from '../../src/snapshot/store.js'
import {newMachine} from '../snapshot/fixtures.js'
import {hvmem, scratch, stackLines} from './proc.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>

beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
})
afterAll(async () => cleanup())

function oneLine(r: {stderr: string}): string {
  expect(stackLines(r.stderr)).toEqual([])
  expect(r.stderr.endsWith('\n') && r.stderr.split('\n').length === 2, JSON.stringify(r.stderr)).toBe(true)
  return r.stderr.slice(0, -1)
}

describe('numbers: whitespace anywhere and backslashes are refused, naming the flag and the text (in-process)', () => {
  const refused = (text: string): string => {
    try {
      parseU64(text, 'VALUE')
    } catch (error) {
      expect(error).toBeInstanceOf(HvmemError)
      expect((error as HvmemError).kind).toBe('input')
      return (error as HvmemError).message
    }
    throw new Error(`${JSON.stringify(text)} was accepted`)
  }
  it.each([
    ['a newline after', '5\n', '"5\\n"'],
    ['a newline before', '\n5', '"\\n5"'],
    ['a tab', '\t5', '"\\t5"'],
    ['a CR', '5\r', '"5\\r"'],
    ['a no-break space', '\u00a05', '"\\u00a05"'],
    ['a BOM', '\ufeff5', '"\\ufeff5"'],
    ['spaces around', ' 5 ', '" 5 "'],
    ['a space inside', '0x4100 0000', '"0x4100 0000"'],
  ])('%s: refused as whitespace', (_, text, shown) => {
    expect(refused(text)).toBe(`VALUE: ${shown} has whitespace in it (a space, tab, newline, CR, no-break space or BOM); write the number alone, as 0x4100_0000`)
  })
  it.each([
    ['a trailing backslash', '5\\', '"5\\\\"'],
    ['a leading backslash and space', '\\ 5', '"\\\\ 5"'],
    ['a leading backslash', '\\5', '"\\\\5"'],
  ])('%s: refused', (_, text, shown) => {
    expect(refused(text)).toMatch(new RegExp(`^VALUE: ${shown.replace(/[\\]/g, '\\\\')} (is not a number|has whitespace)`))
  })
  it("the binary: mem write ADDR $'5\\n' is exit 2, the snapshot unchanged", async () => {
    const before = await readFile(snap)
    const r = await hvmem(dir, ['mem', 'write', '0x4100_0000', '5\n'])
    expect(oneLine(r)).toMatch(/^hvmem: VALUE: "5\\n" has whitespace in it/)
    expect(r.code).toBe(2)
    expect((await readFile(snap)).equals(before)).toBe(true)
  })
})

describe('a 240-character snapshot name (NAME_MAX 255) can be changed: the temp name fits (in-process)', () => {
  it('create, update and load it; no temp file left', async () => {
    const where = await mkdtemp(join(tmpdir(), 'hvmem-long-'))
    try {
      const file = join(where, 'a'.repeat(236) + '.snap')
      await createSnapshot(file, newMachine(), false)
      const page = await updateSnapshot(file, (m) => m.heap.allocPage())
      expect((await loadSnapshot(file)).state().heap.next).toBe(page + 4096n)
      expect(await readdir(where)).toEqual(['a'.repeat(236) + '.snap'])
    } finally {
      await rm(where, {recursive: true, force: true})
    }
  })
})

describe('the snapshot path and its lock', () => {
  it('heap init -s dir/: exit 2 saying it names a directory, and no lock left', async () => {
    for (const path of ['newdir/', 'hvmem.snap/']) {
      const r = await hvmem(dir, ['heap', 'init', '-s', path])
      expect(oneLine(r)).toBe(`hvmem: the snapshot path "${path}" ends in "/", which names a directory; name a file, as "${path}hvmem.snap"`)
      expect(r.code).toBe(2)
    }
    expect((await readdir(dir)).filter((n) => n.endsWith('.lock'))).toEqual([])
  })

  it.each([
    ['fresh', 0],
    ['old (as a stale lock would be)', 3600],
  ])('a regular file at <snapshot>.lock (%s) is reported as such, exit 9, and left alone', async (_, ageSeconds) => {
    const lock = join(dir, `f${ageSeconds}.snap.lock`)
    expect((await hvmem(dir, ['heap', 'init', '-s', `f${ageSeconds}.snap`])).code).toBe(0)
    await writeFile(lock, 'mine\n')
    if (ageSeconds > 0) {
      const then = new Date(Date.now() - ageSeconds * 1000)
      await utimes(lock, then, then)
    }
    const r = await hvmem(dir, ['alloc', 'page', '-s', `f${ageSeconds}.snap`])
    expect(oneLine(r)).toBe(`hvmem: cannot lock f${ageSeconds}.snap: f${ageSeconds}.snap.lock is a regular file, not an hvmem lock (a directory); remove or rename it if no hvmem command made it`)
    expect(r.code).toBe(9)
    expect(await readFile(lock, 'utf8')).toBe('mine\n')
  })
})

describe('environment', () => {
  it('an empty HVMEM_SNAPSHOT is a usage error (exit 2), never ./hvmem.snap: heap init --force leaves it alone', async () => {
    const before = await readFile(snap)
    const r = await hvmem(dir, ['heap', 'init', '--force'], {HVMEM_SNAPSHOT: ''})
    expect(oneLine(r)).toBe('hvmem: the snapshot path is empty; pass --snapshot FILE or set HVMEM_SNAPSHOT to a file name')
    expect(r.code).toBe(2)
    expect((await readFile(snap)).equals(before)).toBe(true)
    // -s still wins over the empty variable
    expect((await hvmem(dir, ['heap', 'status', '-s', 'hvmem.snap'], {HVMEM_SNAPSHOT: ''})).code).toBe(0)
  })

  it.each([
    ['HOME', {HOME: '/dev/null', XDG_DATA_HOME: ''}],
    ['XDG_DATA_HOME', {XDG_DATA_HOME: '/dev/null'}],
  ])('%s not a directory: no Node warnings', async (_, env) => {
    const r = await hvmem(dir, ['heap', 'status'], env)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
})

describe('--json for unknown commands and extra arguments: the JSON error on stdout', () => {
  it.each([
    [['nosuch', '--json'], 'unknown command "nosuch"; see "hvmem --help" for the commands'],
    [['heap', 'nosuch', '--json'], 'unknown command "heap nosuch"; see "hvmem --help" for the commands'],
    [['alloc', 'page', 'extra', '--json'], '"alloc page" takes no arguments: unexpected "extra" (see --help)'],
    [['regs', 'a', 'b', '--json'], '"regs" takes no arguments: unexpected "a" "b" (see --help)'],
  ])('%j', async (args, message) => {
    const r = await hvmem(dir, args)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({error: {kind: 'input', message, exitCode: 2}})
    expect(r.code).toBe(2)
  })

  it('without --json: the same message on stderr', async () => {
    const r = await hvmem(dir, ['alloc', 'page', 'extra'])
    expect(oneLine(r)).toBe('hvmem: "alloc page" takes no arguments: unexpected "extra" (see --help)')
    expect(r.stdout).toBe('')
    expect(r.code).toBe(2)
  })
})
