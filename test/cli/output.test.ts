/** Output contracts: plain text when piped, stable JSON shapes, help with examples, concurrent writers. */
import {spawnSync} from 'node:child_process'
import {closeSync, openSync, readFileSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {AllocJson} from '../../src/cli/alloc.js'
import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import {expectOkInProcess} from './inprocess.js'
import {BIN, hvmem, hvmemEnv, hvmemJson, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
  // set-up in this process; what a test checks runs the binary
  await expectOkInProcess(dir, 'heap', 'init')
  await expectOkInProcess(dir, 'map', 'region', '0x4000_0000', '2M')
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

// Each command is a case of its own (one process), in this order: they build on one snapshot.
describe('output', () => {
  it.each(commands.map((args) => [args.join(' '), args] as const))('%s: no escape codes when stdout is not a terminal', async (_, args) => {
    const r = await hvmem(dir, args)
    expect(r.code, args.join(' ')).toBe(0)
    expect(r.stdout).not.toMatch(/\u001b\[/)
  })

  const keySets: Array<[string[], string[]]> = [
    [
      ['heap', 'status'],
      ['ram', 'heap', 'mapper'],
    ],
    [
      ['alloc', 'page'],
      ['addresses', 'size', 'align', 'heap'],
    ],
    [
      ['map', 'region', '0x4000_0000', '2M'],
      ['mapped', 'coversTables', 'blocks', 'written', 'unchanged', 'leaves', 'splits', 'newTables', 'orphanedTables', 'mapperCreated', 'mapper'],
    ],
    [
      ['dump', 'tables'],
      ['mapper', 'entries', 'ranges'],
    ],
    [
      ['mem', 'read', '0x4100_0000', '1'],
      ['address', 'length', 'bytes'],
    ],
    [
      ['mem', 'write', '0x4200_0000', '1', '--width', '2'],
      ['address', 'width', 'value'],
    ],
    [
      ['heap', 'reset', '--discard-mapper'],
      ['heap', 'discardedTables'],
    ],
  ]
  it.each(keySets.map(([args, keys]) => [args.join(' '), args, keys] as const))('gives a stable JSON key set: %s', async (_, args, keys) => {
    expect(Object.keys((await hvmemJson<Record<string, unknown>>(dir, args)).json)).toEqual(keys)
  })

  it('after heap reset --discard-mapper: the RAM as made, no mapper', async () => {
    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.ram).toEqual({base: '0x40000000', size: 1 << 30, end: '0x80000000'})
    expect(status.json.mapper).toBeNull()
  })

  it.each(['heap init', 'heap status', 'heap reset', 'alloc page', 'alloc aligned', 'alloc bytes', 'map region', 'dump tables', 'mem read', 'mem write'])(
    'shows help with examples: %s',
    async (id) => {
      const r = await hvmem(dir, [...id.split(' '), '--help'])
      expect(r.code, id).toBe(0)
      expect(r.stdout).toContain('EXAMPLES')
      expect(r.stdout).toContain('--json')
    },
  )
})

// A file or /dev/null as stdout is written with fs.writeSync, without making process.stdout (src/cli/output.ts):
// the same bytes as through the stream, and process.stdout never made (which loads Node's stream modules).
describe('stdout a file or /dev/null: written without the stream', () => {
  let own: {dir: string; snap: string; cleanup: () => Promise<void>}
  let probe: string
  beforeAll(async () => {
    own = await scratch()
    await expectOkInProcess(own.dir, 'heap', 'init')
    await expectOkInProcess(own.dir, 'map', 'region', '0x4000_0000', '4M', '--granularity', 'page')
    await writeFile(join(own.dir, 'lines.txt'), 'heap status\ndump tables --format ranges\nmem read 0x4100_0000 16\n')
    // loaded with -r: at exit, whether anything read process.stdout (which makes the stream), into the file PROBE_OUT names
    probe = join(own.dir, 'probe.cjs')
    await writeFile(
      probe,
      `const node = Object.getOwnPropertyDescriptor(process, 'stdout')
let made = false
Object.defineProperty(process, 'stdout', {...node, get() { made = true; Object.defineProperty(process, 'stdout', node); return process.stdout }})
process.on('exit', () => require('node:fs').writeFileSync(process.env.PROBE_OUT, String(made)))
`,
    )
  })
  afterAll(async () => own.cleanup())

  /** Runs hvmem with stdout on `stdout` ('pipe', or the path of a file or device opened for writing); the output (for a pipe) and whether process.stdout was made. */
  const run = (args: string[], stdout: string): {code: number | null; stdout: string; stderr: string; stream: boolean} => {
    const out = join(own.dir, 'probe.out')
    const fd = stdout === 'pipe' ? 'pipe' : openSync(stdout, 'w')
    try {
      const r = spawnSync(process.execPath, ['-r', probe, BIN, ...args], {cwd: own.dir, env: hvmemEnv({PROBE_OUT: out}), stdio: ['ignore', fd, 'pipe'], encoding: 'utf8'})
      return {code: r.status, stdout: r.stdout ?? '', stderr: r.stderr, stream: readFileSync(out, 'utf8') === 'true'}
    } finally {
      if (typeof fd === 'number') closeSync(fd)
    }
  }

  it.each([
    ['heap', 'status'],
    ['dump', 'tables'],
    ['dump', 'tables', '--json'],
    ['mem', 'read', '0x4100_0000', '64'],
    ['batch', 'lines.txt'],
    ['batch', 'lines.txt', '--json'],
  ])('%s %s: a file gets what a pipe gets, and neither it nor /dev/null makes the stream', (...args) => {
    const piped = run(args, 'pipe')
    expect(piped).toMatchObject({code: 0, stderr: '', stream: true})
    const file = join(own.dir, 'out.txt')
    expect(run(args, file)).toEqual({code: 0, stdout: '', stderr: '', stream: false})
    expect(readFileSync(file, 'utf8')).toBe(piped.stdout)
    expect(run(args, '/dev/null')).toEqual({code: 0, stdout: '', stderr: '', stream: false})
  })
})

// 8 processes at once a case (test/reliability/concurrency.test.ts races readers and maps too).
describe('concurrent writers', () => {
  const AT_ONCE = 8
  it.each([1, 2])(`round %i of 2: ${AT_ONCE} alloc page processes at once get ${AT_ONCE} distinct consecutive pages, and the heap counts all ${AT_ONCE}`, async () => {
    const {dir: d, snap, cleanup: done} = await scratch()
    try {
      expect((await hvmem(d, ['heap', 'init'])).code).toBe(0)
      const runs = await Promise.all(Array.from({length: AT_ONCE}, () => hvmemJson<AllocJson>(d, ['alloc', 'page'])))
      const pages = runs.map((r) => BigInt(r.json.addresses[0]!)).sort((a, b) => (a < b ? -1 : 1))
      expect(pages).toEqual(Array.from({length: AT_ONCE}, (_, i) => 0x4100_0000n + BigInt(i) * 4096n))
      const status = await hvmemJson<HeapStatusJson>(d, ['heap', 'status'])
      expect(status.json.heap.allocated).toBe(AT_ONCE * 4096)
      expect((await readFile(snap)).length).toBe(128) // allocations write no memory: a header, no pages
    } finally {
      await done()
    }
  })
})
