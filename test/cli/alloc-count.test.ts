/**
 * Issue 14, item 8: `alloc page --count` is bounded (1,048,576 pages, 4 GiB, per call). Past it is
 * one line, exit 2, at once (268,435,456 used to run for a minute and die of V8's invalid size
 * error, leaving the lock); the largest count is cheap; a count the heap cannot hold is exit 5.
 * Neither leaves a lock or a temp file, and a refused call leaves the snapshot byte-identical.
 */
import {readFile, readdir} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {MAX_PAGE_COUNT} from '../../src/commands/alloc/page.js'
import {hvmem, scratch} from './run.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  // a 4 GiB heap in 8 GiB of RAM: room for the largest count
  expect((await hvmem(dir, ['heap', 'init', '--size', '4G', '--ram-size', '8G'])).code).toBe(0)
})
afterAll(async () => cleanup())

describe('alloc page --count', () => {
  it('the limit is 1,048,576 pages', () => {
    expect(MAX_PAGE_COUNT).toBe(1_048_576)
  })

  it.each(['1048577', '268435456'])('--count %s: one line, exit 2, nothing changed, no lock left', async (count) => {
    const before = await readFile(snap)
    const r = await hvmem(dir, ['alloc', 'page', '--count', count])
    expect(r).toEqual({code: 2, stdout: '', stderr: `hvmem: --count: "${count}" is out of range (1..1048576)\n`})
    expect((await readFile(snap)).equals(before)).toBe(true)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
  })

  it('--count 1048576 on a heap that holds it: every address, in order, one a line; no lock left', async () => {
    const r = await hvmem(dir, ['alloc', 'page', '--count', String(MAX_PAGE_COUNT)])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    const lines = r.stdout.split('\n')
    expect(lines).toHaveLength(MAX_PAGE_COUNT + 1)
    expect(lines[0]).toBe('0x41000000')
    expect(lines[1]).toBe('0x41001000')
    expect(lines[MAX_PAGE_COUNT - 1]).toBe('0x140fff000')
    expect(lines[MAX_PAGE_COUNT]).toBe('')
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
  })

  it('--count 1048576 on the now full heap: exit 5 at once, nothing changed', async () => {
    const before = await readFile(snap)
    const r = await hvmem(dir, ['alloc', 'page', '--count', String(MAX_PAGE_COUNT)])
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(/^hvmem: heap exhausted: 4294967296 bytes \(align 4096\) requested but 0 bytes remain/)
    expect((await readFile(snap)).equals(before)).toBe(true)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
  })
})
