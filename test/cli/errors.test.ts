/** Every error path: its exit code, a one-line message without a stack, and the snapshot byte-identical. */
import {mkdir, readFile, readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ErrorJson} from '../../src/cli/base.js'
import {EXIT_CODES} from '../../src/cli/exit-codes.js'
import {expectOkInProcess, runInProcessAt} from './inprocess.js'
import {type Run, hvmem, scratch} from './run.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
let original: Buffer

// One prepared snapshot: default layout, two pages allocated, a mapper (budget 2) with one L2 table.
beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  for (const args of [
    ['heap', 'init'],
    ['alloc', 'page', '-n', '2'],
    ['map', 'region', '0x4000_0000', '4M', '--l2-budget', '2'],
  ])
    await expectOkInProcess(dir, ...args)
  original = await readFile(snap)
})
afterAll(async () => cleanup())

interface Case {
  args: string[]
  code: number
  message: string
}

const cases: Case[] = [
  // bad input: exit 2
  {args: ['alloc', 'aligned', '--size', '12Q', '--align', '4'], code: 2, message: 'hvmem: --size: "12Q" is not a number'},
  {args: ['alloc', 'aligned', '--size', '16', '--align', '3'], code: 2, message: 'hvmem: alignment must be a power of two (got 3)'},
  {args: ['alloc', 'aligned', '--size', '0', '--align', '4'], code: 2, message: 'hvmem: allocation size must be > 0 (got 0)'},
  {args: ['alloc', 'bytes', '-5'], code: 2, message: 'hvmem: SIZE: "-5" is negative'},
  {args: ['alloc', 'bytes', '0x1_0000_0000_0000_0000'], code: 2, message: 'hvmem: SIZE: "0x1_0000_0000_0000_0000" does not fit in 64 bits'},
  {args: ['alloc', 'bytes', '1__0'], code: 2, message: 'hvmem: SIZE: "1__0" is not a number'},
  {args: ['alloc', 'page', '--count', '0'], code: 2, message: 'hvmem: --count: "0" is out of range'},
  {args: ['map', 'region', '0x4010_0800', '2M'], code: 2, message: 'hvmem: IPA 0x40100800 is not aligned to the 4 KiB granule'},
  {args: ['map', 'region', '0x4000_0000', '0x1800'], code: 2, message: 'hvmem: size 0x1800 is not a multiple of the 4 KiB granule'},
  {args: ['map', 'region', '0x4000_0000', '0'], code: 2, message: 'hvmem: size must be > 0'},
  {args: ['map', 'region', '0x7f_ffe0_0000', '4M'], code: 2, message: 'hvmem: 0x7fffe00000-0x8000200000 ends past the 39-bit input address space'},
  {args: ['map', 'region', '0', '2M', '--attr', 'cached'], code: 2, message: 'hvmem: Expected --attr=cached to be one of: normal, device, readonly'},
  {args: ['map', 'region', '0', '2M', '--vmid', '3'], code: 2, message: 'hvmem: the mapper already exists with --vmid 0'},
  {args: ['map', 'region', '0', '2M', '--vmid', '65536'], code: 2, message: 'hvmem: --vmid: "65536" is out of range (0..65535)'},
  {args: ['map', 'region'], code: 2, message: 'hvmem: Missing 2 required args: IPA, SIZE'},
  {args: ['mem', 'read', '0x10'], code: 2, message: 'hvmem: 0x10-0x50 is outside RAM 0x40000000-0x80000000'},
  {args: ['mem', 'read', '0x4000_0000', '0'], code: 2, message: 'hvmem: LEN: 0 is out of range'},
  {args: ['mem', 'write', '0x7fff_fffc', '0', '--width', '8'], code: 2, message: 'hvmem: 0x7ffffffc-0x80000004 is outside RAM'},
  {args: ['mem', 'write', '0x4100_0000', '0x100', '--width', '1'], code: 2, message: 'hvmem: 0x100 does not fit in 1 byte'},
  {args: ['mem', 'write', '0x4100_0000', '1', '--width', '3'], code: 2, message: 'hvmem: Expected --width=3 to be one of: 1, 2, 4, 8'},
  {args: ['heap', 'status', '--bogus'], code: 2, message: 'hvmem: Nonexistent flag: --bogus'},
  // heap exhausted: exit 5
  {args: ['alloc', 'page', '--count', '4095'], code: 5, message: 'hvmem: heap exhausted: 16773120 bytes (align 4096) requested but 16760832 bytes remain at 0x41004000'},
  {args: ['alloc', 'aligned', '--size', '16M', '--align', '2M'], code: 5, message: 'hvmem: heap exhausted'},
  // mapping conflict: exit 6
  {
    args: ['map', 'region', '0x3fe0_0000', '4M', '--attr', 'device'],
    code: 6,
    message: 'hvmem: cannot map 0x3fe00000-0x40200000 as device: 0x40000000-0x40200000 is already mapped normal to 0x40000000 (2M, descriptor 0x400007fd)',
  },
  {args: ['map', 'region', '0x4000_0000', '4M', '--attr', 'readonly'], code: 6, message: '0x40000000-0x40400000 is already mapped normal'},
  {args: ['heap', 'reset'], code: 6, message: 'hvmem: the heap holds the stage-2 tables (root 0x41002000, 1 L2 table(s))'},
  // mapping limit: exit 7 (budget 2: one L2 table in use, this needs two more)
  {args: ['map', 'region', '0x8000_0000', '2G', '--granularity', '2M'], code: 7, message: 'hvmem: mapping 0x80000000-0x100000000 needs 2 new L2 table(s) but 1 of the budget of 2 are in use'},
  // snapshot exists: exit 8
  {args: ['heap', 'init'], code: 8, message: 'already exists; pass --force to replace it'},
  {args: ['heap', 'init', '--force', '--base', '0x3000_0000'], code: 2, message: 'hvmem: heap 0x30000000-0x31000000 is not inside RAM 0x40000000-0x80000000'},
  {args: ['heap', 'init', '--force', '--ram-size', '2T'], code: 2, message: 'ends past the 40-bit physical address space'},
]

describe('failing commands', () => {
  it.each(cases)('$args.0 $args.1 $args.2 $args.3 -> exit $code', async ({args, code, message}) => {
    const r = await hvmem(dir, args)
    expect(r.code).toBe(code)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(message)
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1) // one line, no stack trace
    expect(await readFile(snap)).toEqual(original)
  })

  // the same failures with --json, run in this process (the binary's own start and stderr are checked above)
  it.each(cases.filter((c) => !c.args.includes('--bogus')))('$args.0 $args.1 $args.2 $args.3 --json -> exit $code and a JSON error', async ({args, code}) => {
    const r = await runInProcessAt(dir, [...args, '--json'])
    expect(r.code, args.join(' ')).toBe(code)
    const json = JSON.parse(r.stdout) as ErrorJson
    expect(json.error.exitCode).toBe(code)
    expect(Object.keys(json.error)).toEqual(['kind', 'message', 'exitCode'])
    expect(await readFile(snap)).toEqual(original)
  })

  it('documents distinct codes for each kind', () => {
    expect(new Set(Object.values(EXIT_CODES)).size).toBe(Object.keys(EXIT_CODES).length)
  })
})

describe('snapshot problems', () => {
  it('a missing snapshot is exit 3 with a hint', async () => {
    const r = await hvmem(dir, ['heap', 'status', '-s', 'missing.snap'])
    expect(r.code).toBe(3)
    expect(r.stderr).toBe('hvmem: no snapshot at missing.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT\n')
    expect((await hvmem(dir, ['alloc', 'page', '-s', 'missing.snap'])).code).toBe(3)
    expect(await readdir(dir)).not.toContain('missing.snap')
  })

  it('HVMEM_SNAPSHOT selects the file', async () => {
    const r = await hvmem(dir, ['heap', 'status', '--json'], {HVMEM_SNAPSHOT: 'elsewhere.snap'})
    expect(r.code).toBe(3)
    expect(r.stdout).toContain('no snapshot at elsewhere.snap')
  })

  // One case a kind of damage (three processes each).
  const damaged: Array<[string, (original: Buffer) => Buffer, string]> = [
    [
      'a flipped bit',
      (o) => {
        const flipped = Buffer.from(o)
        flipped[200] = flipped[200]! ^ 0x01
        return flipped
      },
      'checksum mismatch',
    ],
    ['one byte short', (o) => o.subarray(0, o.length - 1), 'truncated or damaged'],
    [
      'format version 9',
      (o) => {
        const newer = Buffer.from(o)
        newer.writeUInt32LE(9, 8)
        return newer
      },
      'has snapshot format version 9, newer than this hvmem reads (version 5)',
    ],
    ['not a snapshot', () => Buffer.from('not a snapshot at all'), 'wrong magic'],
  ]
  it.each(damaged)('a corrupt, truncated or newer snapshot is exit 4 and left as it was: %s', async (_, damage, message) => {
    const bad = join(dir, 'bad.snap')
    const bytes = damage(original)
    await writeFile(bad, bytes)
    for (const args of [
      ['heap', 'status'],
      ['alloc', 'page'],
      ['map', 'region', '0', '2M'],
    ]) {
      const r = await hvmem(dir, [...args, '-s', bad])
      expect(r.code).toBe(4)
      expect(r.stderr).toContain(message)
      expect(await readFile(bad)).toEqual(bytes)
    }
  })

  it('a directory or a device as the snapshot is exit 4', async () => {
    await mkdir(join(dir, 'adir'))
    expect((await hvmem(dir, ['heap', 'status', '-s', 'adir'])).stderr).toBe('hvmem: adir is not a regular file; name a snapshot file\n')
    expect((await hvmem(dir, ['alloc', 'page', '-s', '/dev/null'])).code).toBe(4)
    expect((await hvmem(dir, ['heap', 'init', '-s', 'adir', '--force'])).code).toBe(4)
  })
})

describe('NODE_ENV=development or test: oclif then looks for TypeScript sources to run (and finds none in the bundle)', () => {
  // Every other test's hvmem runs without NODE_ENV, as a user's usually does (test/cli/run.ts's
  // hvmemEnv); a developer's shell may set it. A success, a parse error (where oclif, in these modes,
  // would warn that the command "did not parse its arguments") and an error as JSON.
  const commands = [
    ['heap', 'status'],
    ['map', 'region'],
    ['alloc', 'bytes', '1__0', '--json'],
  ]
  let plain: Run[]
  beforeAll(async () => {
    plain = []
    for (const args of commands) plain.push(await hvmem(dir, args))
    expect(plain.map((r) => r.code)).toEqual([0, 2, 2])
  })

  it.each(['development', 'test'])('NODE_ENV=%s: the same stdout, stderr and exit code as without it, the snapshot unchanged', async (value) => {
    for (const [i, args] of commands.entries()) expect(await hvmem(dir, args, {NODE_ENV: value}), args.join(' ')).toEqual(plain[i])
    expect(await readFile(snap)).toEqual(original)
  })
})
