/** Output contracts: plain text when piped, stable JSON shapes, help with examples, concurrent writers. */
import {readFile} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {AllocJson} from '../../src/cli/alloc.js'
import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import {hvmem, hvmemJson, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
  expect((await hvmem(dir, ['map', 'region', '0x4000_0000', '2M'])).code).toBe(0)
})
afterAll(async () => cleanup())

const commands = [
  ['heap', 'status'],
  ['alloc', 'page'],
  ['alloc', 'aligned', '--size', '64', '--align', '64'],
  ['alloc', 'bytes', '12'],
  ['map', 'region', '0x4000_0000', '2M'],
  ['dump', 'tables'],
  ['dump', 'tables', '--format', 'ranges'],
  ['mem', 'read', '0x4100_0000', '16'],
  ['mem', 'write', '0x4200_0000', '7'],
]

describe('output', () => {
  it('has no escape codes when stdout is not a terminal', async () => {
    for (const args of commands) {
      const r = await hvmem(dir, args)
      expect(r.code, args.join(' ')).toBe(0)
      expect(r.stdout).not.toMatch(/\u001b\[/)
    }
  })

  it('gives stable JSON key sets', async () => {
    const keys = async (args: string[]): Promise<string[]> => Object.keys((await hvmemJson<Record<string, unknown>>(dir, args)).json)
    expect(await keys(['heap', 'status'])).toEqual(['ram', 'heap', 'mapper'])
    expect(await keys(['alloc', 'page'])).toEqual(['addresses', 'size', 'align', 'heap'])
    expect(await keys(['map', 'region', '0x4000_0000', '2M'])).toEqual(['mapped', 'blocks', 'written', 'unchanged', 'leaves', 'splits', 'newTables', 'orphanedTables', 'mapperCreated', 'mapper'])
    expect(await keys(['dump', 'tables'])).toEqual(['mapper', 'entries', 'ranges'])
    expect(await keys(['mem', 'read', '0x4100_0000', '1'])).toEqual(['address', 'length', 'bytes'])
    expect(await keys(['mem', 'write', '0x4200_0000', '1', '--width', '2'])).toEqual(['address', 'width', 'value'])
    expect(await keys(['heap', 'reset', '--discard-mapper'])).toEqual(['heap', 'discardedTables'])
    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.ram).toEqual({base: '0x40000000', size: 1 << 30, end: '0x80000000'})
    expect(status.json.mapper).toBeNull()
  })

  it('shows help with examples for every command', async () => {
    for (const id of ['heap init', 'heap status', 'heap reset', 'alloc page', 'alloc aligned', 'alloc bytes', 'map region', 'dump tables', 'mem read', 'mem write']) {
      const r = await hvmem(dir, [...id.split(' '), '--help'])
      expect(r.code, id).toBe(0)
      expect(r.stdout).toContain('EXAMPLES')
      expect(r.stdout).toContain('--json')
    }
  })
})

describe('concurrent writers', () => {
  it('16 alloc page processes at once get 16 distinct consecutive pages, and the heap counts all 16', async () => {
    const {dir: d, snap, cleanup: done} = await scratch()
    try {
      expect((await hvmem(d, ['heap', 'init'])).code).toBe(0)
      const runs = await Promise.all(Array.from({length: 16}, () => hvmemJson<AllocJson>(d, ['alloc', 'page'])))
      const pages = runs.map((r) => BigInt(r.json.addresses[0]!)).sort((a, b) => (a < b ? -1 : 1))
      expect(pages).toEqual(Array.from({length: 16}, (_, i) => 0x4100_0000n + BigInt(i) * 4096n))
      const status = await hvmemJson<HeapStatusJson>(d, ['heap', 'status'])
      expect(status.json.heap.allocated).toBe(16 * 4096)
      expect((await readFile(snap)).length).toBe(128) // allocations write no memory: a header, no pages
    } finally {
      await done()
    }
  })
})
