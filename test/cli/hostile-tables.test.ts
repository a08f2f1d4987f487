/**
 * Hostile tables (issue 14, item 3): a root whose 512 entries all point back at itself once made
 * every reading command walk 512^3 entries. The walker enters each table at most once, so each command
 * ends, and the listings name the loop.
 */
import {copyFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {tableDescriptor} from '../../src/core/descriptor.js'
import {Machine} from '../../src/core/machine.js'
import {createSnapshot} from '../../src/snapshot/store.js'
import {hvmem, scratch} from './run.js'

const ROOT = 0x4100_0000n
let dir = ''
let cleanup: () => Promise<void> = async () => undefined

beforeAll(async () => {
  const s = await scratch()
  dir = s.dir
  cleanup = s.cleanup
  const machine = Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: ROOT, heapSize: 16n << 20n})
  expect(machine.ensureMapper().mapper.root).toBe(ROOT)
  for (let i = 0n; i < 512n; i++) machine.memory.writeU64(ROOT + 8n * i, tableDescriptor(ROOT))
  await createSnapshot(join(dir, 'loop.snap'), machine, true)
  await copyFile(join(dir, 'loop.snap'), join(dir, 'other.snap'))
})

afterAll(() => cleanup())

describe('a root that points at itself', () => {
  it.each([
    [['snapshot', 'info', 'loop.snap'], 0, '1 stored'],
    [['dump', 'tables', '-s', 'loop.snap'], 0, 'reached already'],
    [['dump', 'tables', '--format', 'ranges', '-s', 'loop.snap'], 0, '512 valid entries, 0 leaves'],
    [['dump', 'tables', '--json', '-s', 'loop.snap'], 0, 'reached already'],
    [['dump', 'tables', '--format', 'dot', '-s', 'loop.snap'], 0, 'digraph'],
    [['dump', 'map', '-s', 'loop.snap'], 0, 'IPA'],
    [['snapshot', 'show', '--text', 'loop.snap'], 0, '0x41000000'],
    [['snapshot', 'diff', 'loop.snap', 'other.snap'], 0, 'the same'],
    [['translate', '0x4000_0000', '-s', 'loop.snap'], 0, 'L3[0]'],
    [['heap', 'reset', '--discard-mapper', '-s', 'loop.snap'], 0, ''],
  ] as Array<[string[], number, string]>)(
    'hvmem %j ends (exit %i) and says %j',
    async (args, code, text) => {
      const r = await hvmem(dir, args)
      expect(r.stderr).not.toContain('    at ')
      expect(r.code, r.stderr).toBe(code)
      expect(r.stdout).toContain(text)
    },
    120_000,
  )
})
