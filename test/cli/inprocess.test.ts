/** test/cli/inprocess.ts gives what the binary gives: output, errors, exit codes and the snapshot's bytes. */
import {copyFile, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {runInProcess} from './inprocess.js'
import {hvmem, scratch} from './run.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  ;({dir, snap, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
})
afterEach(async () => cleanup())

// Changes (text and --json) and reads; a conflict (exit 6), a parse error (exit 2) as text and as JSON.
const SEQUENCES: Array<[string, string[][]]> = [
  [
    'changes and reads',
    [
      ['map', 'region', '0x4000_0000', '2M'],
      ['alloc', 'page', '--json'],
      ['dump', 'tables'],
    ],
  ],
  [
    'errors',
    [
      ['map', 'region', '0x4000_0000', '2M'],
      ['map', 'region', '0x4000_0000', '2M', '--attr', 'device'],
      ['alloc', 'bytes', '1__0'],
      ['mem', 'read', 'nowhere', '--json'],
    ],
  ],
]

describe('commands run in-process', () => {
  it.each(SEQUENCES)('%s: the same stdout, stderr, exit code and snapshot as the binary', async (_, commands) => {
    const inProcess = join(dir, 'in.snap')
    await copyFile(snap, inProcess)
    for (const args of commands) {
      const binary = await hvmem(dir, [...args, '-s', snap])
      const here = await runInProcess([...args, '-s', inProcess])
      expect(here, args.join(' ')).toEqual({...binary, stdout: binary.stdout.replaceAll(snap, inProcess), stderr: binary.stderr.replaceAll(snap, inProcess)})
      expect((await readFile(inProcess)).equals(await readFile(snap)), args.join(' ')).toBe(true)
    }
  })
})
