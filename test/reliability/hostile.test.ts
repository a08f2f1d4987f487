/**
 * Hostile input: each bad input gives one line on stderr naming the problem, a documented exit code,
 * no stack trace, and leaves every snapshot byte-identical (and no lock or temp file behind). This
 * extends the table in test/cli/errors.test.ts (which it does not repeat) with the
 * hostile-input list of docs/reliability.md: malformed, negative and oversized numbers, unaligned addresses, zero sizes,
 * alignments, ranges past the IPA space or RAM, unknown attributes, wrong flag combinations, and
 * snapshots that are directories, devices, FIFOs, symlink loops, empty, foreign, write-protected, or
 * in directories that are missing or cannot be written.
 */
import {chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile} from 'node:fs/promises'
import {execFileSync} from 'node:child_process'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ErrorJson} from '../../src/cli/base.js'
import {EXIT_CODES} from '../../src/cli/exit-codes.js'
import {runInProcessAt} from '../cli/inprocess.js'
import {hvmem, scratch, stackLines, start} from './proc.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
let original: Buffer
let listing: string[]

const HELP = '(use decimal, 0x hex, _ between digits, and optionally K/M/G/T or KiB/MiB/GiB/TiB)'
const LONG_NAME = 'a'.repeat(5000)

beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  // default layout, two pages allocated, one written, no mapper
  for (const args of [
    ['heap', 'init'],
    ['alloc', 'page', '-n', '2'],
    ['mem', 'write', '0x4100_0000', '0x1122'],
  ])
    expect((await hvmem(dir, args)).code).toBe(0)
  original = await readFile(snap)
  await mkdir(join(dir, 'adir'))
  execFileSync('mkfifo', [join(dir, 'afifo')])
  await symlink('loop2', join(dir, 'loop1'))
  await symlink('loop1', join(dir, 'loop2'))
  await writeFile(join(dir, 'empty.snap'), '')
  await writeFile(join(dir, 'text.snap'), 'not a snapshot\n')
  await writeFile(join(dir, 'plain'), 'a file, not a directory\n')
  listing = (await readdir(dir)).sort()
})
afterAll(async () => cleanup())

interface Case {
  args: string[]
  code: number
  /** the whole stderr line, without "hvmem: " and the newline; or a pattern for it */
  message: string | RegExp
}

const cases: Case[] = [
  // malformed numbers
  {args: ['alloc', 'bytes', '0x'], code: 2, message: `SIZE: "0x" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '1.5'], code: 2, message: `SIZE: "1.5" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '1e3'], code: 2, message: `SIZE: "1e3" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '0x4100_0000_'], code: 2, message: `SIZE: "0x4100_0000_" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '0X10'], code: 2, message: `SIZE: "0X10" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '0b101'], code: 2, message: `SIZE: "0b101" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '12KB'], code: 2, message: `SIZE: "12KB" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '16m'], code: 2, message: `SIZE: "16m" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '+5'], code: 2, message: `SIZE: "+5" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', ''], code: 2, message: `SIZE: "" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '１２'], code: 2, message: `SIZE: "１２" is not a number ${HELP}`},
  {args: ['alloc', 'bytes', '1\n2'], code: 2, message: 'SIZE: "1\\n2" has whitespace in it (a space, tab, newline, CR, no-break space or BOM); write the number alone, as 0x4100_0000'},
  {args: ['alloc', 'bytes', ' 5'], code: 2, message: 'SIZE: " 5" has whitespace in it (a space, tab, newline, CR, no-break space or BOM); write the number alone, as 0x4100_0000'},
  {args: ['alloc', 'bytes', '\u001b[31m7'], code: 2, message: `SIZE: "\\u001b[31m7" is not a number ${HELP}`},
  {args: ['mem', 'read', 'x'.repeat(100_000)], code: 2, message: `ADDR: "${'x'.repeat(40)}"... (100000 characters) is not a number ${HELP}`},
  // negative numbers
  {args: ['alloc', 'bytes', '--', '-5'], code: 2, message: 'SIZE: "-5" is negative; SIZE takes a number >= 0'},
  {args: ['mem', 'write', '0x4100_0000', '--', '-1'], code: 2, message: 'VALUE: "-1" is negative; VALUE takes a number >= 0'},
  {args: ['alloc', 'page', '--count', '-1'], code: 2, message: '--count: "-1" is negative; --count takes a number >= 0'},
  // past 64 bits
  {args: ['alloc', 'bytes', '18446744073709551616'], code: 2, message: 'SIZE: "18446744073709551616" does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)'},
  {args: ['alloc', 'bytes', '16777216T'], code: 2, message: 'SIZE: "16777216T" does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)'},
  {args: ['translate', '0x1_0000_0000_0000_0000'], code: 2, message: 'ADDRESS: "0x1_0000_0000_0000_0000" does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)'},
  {args: ['mem', 'write', '0x4100_0000', '0x1_0000_0000_0000_0000'], code: 2, message: 'VALUE: "0x1_0000_0000_0000_0000" does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)'},
  {args: ['alloc', 'bytes', '9'.repeat(100_000)], code: 2, message: `SIZE: "${'9'.repeat(40)}"... (100000 characters) does not fit in 64 bits (largest 0xffff_ffff_ffff_ffff)`},
  // unaligned addresses and sizes
  {args: ['heap', 'init', '--force', '--base', '0x4100_0001'], code: 2, message: 'heap base and size must be non-zero multiples of 4 KiB (got 0x41000001 + 0x1000000)'},
  {args: ['heap', 'init', '--force', '--ram-base', '0x4000_0800'], code: 2, message: 'RAM base and size must be non-zero multiples of 4 KiB (got 0x40000800 + 0x40000000)'},
  {args: ['heap', 'init', '--force', '--ram-size', '0x1000_0800'], code: 2, message: 'RAM base and size must be non-zero multiples of 4 KiB (got 0x40000000 + 0x10000800)'},
  // sizes of 0
  {args: ['alloc', 'bytes', '0'], code: 2, message: 'allocation size must be > 0 (got 0)'},
  {args: ['heap', 'init', '--force', '--size', '0'], code: 2, message: 'heap base and size must be non-zero multiples of 4 KiB (got 0x41000000 + 0x0)'},
  {args: ['heap', 'init', '--force', '--ram-size', '0'], code: 2, message: 'RAM base and size must be non-zero multiples of 4 KiB (got 0x40000000 + 0x0)'},
  // alignments that are not powers of two
  {args: ['alloc', 'aligned', '--size', '8', '--align', '0'], code: 2, message: 'alignment must be a power of two (got 0)'},
  {args: ['alloc', 'aligned', '--size', '8', '--align', '6'], code: 2, message: 'alignment must be a power of two (got 6)'},
  {args: ['alloc', 'aligned', '--size', '8', '--align', '0x8000_0000_0000_0001'], code: 2, message: 'alignment must be a power of two (got 9223372036854775809)'},
  // ranges past the IPA space, RAM or the PA space
  {args: ['map', 'region', '0x80_0000_0000', '2M'], code: 2, message: '0x8000000000-0x8000200000 ends past the 39-bit input address space (0x8000000000, T0SZ = 25)'},
  {args: ['mem', 'read', '0x7fff_fff0', '32'], code: 2, message: '0x7ffffff0-0x80000010 is outside RAM 0x40000000-0x80000000'},
  {args: ['mem', 'write', '0x8000_0000', '1'], code: 2, message: '0x80000000-0x80000008 is outside RAM 0x40000000-0x80000000'},
  {args: ['mem', 'read', '0xffff_ffff_ffff_fff0', '32'], code: 2, message: '0xfffffffffffffff0-0x10000000000000010 is outside RAM 0x40000000-0x80000000'},
  {args: ['snapshot', 'export', '--raw', 'x.bin', '--from', '0', '--to', '16M'], code: 2, message: '0x0-0x1000000 is outside RAM 0x40000000-0x80000000'},
  {
    args: ['heap', 'init', '--force', '--ram-base', '0xff_ffff_f000', '--ram-size', '8K'],
    code: 2,
    message: 'RAM 0xfffffff000-0x10000001000 ends past the 40-bit physical address space (0x10000000000, VTCR_EL2.PS)',
  },
  {args: ['heap', 'init', '--force', '--size', '32G'], code: 2, message: 'heap 0x41000000-0x841000000 is not inside RAM 0x40000000-0x80000000'},
  // unknown attributes and options
  {args: ['map', 'region', '0', '2M', '--attr', 'wb'], code: 2, message: 'Expected --attr=wb to be one of: normal, device, readonly (see --help)'},
  {args: ['map', 'region', '0', '2M', '--regime', 'stage3'], code: 2, message: 'Expected --regime=stage3 to be one of: stage2, stage1 (see --help)'},
  {args: ['mem', 'write', '0x4100_0000', '1', '--width', '16'], code: 2, message: 'Expected --width=16 to be one of: 1, 2, 4, 8 (see --help)'},
  // wrong flag combinations and missing or extra arguments
  {args: ['map', 'region', '0', '2M', '--regime', 'stage1', '--vmid', '5'], code: 2, message: 'a VMID applies to stage-2 tables only; the stage-1 (EL2) regime has none'},
  {args: ['alloc', 'aligned', '--size', '16'], code: 2, message: 'Missing required flag align (see --help)'},
  {args: ['alloc', 'aligned'], code: 2, message: 'Missing required flag align; Missing required flag size (see --help)'},
  {args: ['alloc', 'page', '-n', '1', '-n', '2'], code: 2, message: 'Flag --count can only be specified once (see --help)'},
  {args: ['heap', 'init', '--base'], code: 2, message: 'Flag --base expects a value (see --help)'},
  {args: ['mem', 'read', '0x4100_0000', '8', '9'], code: 2, message: 'Unexpected argument: 9 (see --help)'},
  // the snapshot is not a snapshot file
  {args: ['heap', 'status', '-s', ''], code: 2, message: 'the snapshot path is empty; pass --snapshot FILE or set HVMEM_SNAPSHOT to a file name'},
  {args: ['alloc', 'page', '-s', 'adir'], code: 4, message: 'adir is not a regular file; name a snapshot file'},
  {args: ['heap', 'init', '--force', '-s', 'adir'], code: 4, message: 'adir exists and is not a regular file; choose another --snapshot'},
  {args: ['heap', 'status', '-s', '/dev/null'], code: 4, message: '/dev/null is not a regular file; name a snapshot file'},
  {args: ['map', 'region', '0', '2M', '-s', '/dev/null'], code: 4, message: '/dev/null is not a regular file; name a snapshot file'},
  {args: ['heap', 'init', '--force', '-s', '/dev/null'], code: 4, message: '/dev/null exists and is not a regular file; choose another --snapshot'},
  {args: ['heap', 'status', '-s', 'afifo'], code: 4, message: 'afifo is not a regular file; name a snapshot file'},
  {args: ['alloc', 'page', '-s', 'afifo'], code: 4, message: 'afifo is not a regular file; name a snapshot file'},
  {args: ['alloc', 'page', '-s', 'empty.snap'], code: 4, message: 'empty.snap is not a valid hvmem snapshot: wrong magic (not a snapshot, or damaged)'},
  {args: ['dump', 'tables', '-s', 'text.snap'], code: 4, message: 'text.snap is not a valid hvmem snapshot: wrong magic (not a snapshot, or damaged)'},
  {args: ['heap', 'status', '-s', 'no.snap'], code: 3, message: 'no snapshot at no.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT'},
  {args: ['heap', 'status', '-s', 'a\nb'], code: 3, message: 'no snapshot at a\\nb; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT'},
  // where the snapshot cannot be: loops, missing or non-directories, too long a name, a read-only file system
  {args: ['heap', 'status', '-s', 'loop1'], code: 9, message: 'cannot use loop1: too many levels of symbolic links'},
  {args: ['alloc', 'page', '-s', 'loop1'], code: 9, message: 'cannot use loop1: too many levels of symbolic links'},
  {args: ['heap', 'init', '-s', 'no/such/dir/x.snap'], code: 9, message: 'cannot create no/such/dir/x.snap: its directory no/such/dir does not exist'},
  {args: ['alloc', 'page', '-s', 'no/such/dir/x.snap'], code: 3, message: 'no snapshot at no/such/dir/x.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT'},
  {args: ['heap', 'init', '-s', 'plain/x.snap'], code: 9, message: 'cannot use plain/x.snap: part of its directory plain is not a directory'},
  {args: ['heap', 'status', '-s', LONG_NAME], code: 9, message: 'cannot use the snapshot path: it is too long (5000 characters)'},
  {args: ['heap', 'init', '-s', '/proc/hvmem.snap'], code: 9, message: /^cannot (create|lock) \/proc\/hvmem\.snap: /},
]

/** Runs one case and returns what is wrong with its outcome (empty: nothing). */
function check(c: Case, r: {code: number; stdout: string; stderr: string}): string[] {
  const wrong: string[] = []
  if (r.code !== c.code) wrong.push(`exit ${r.code}, expected ${c.code}`)
  if (r.stdout !== '') wrong.push(`stdout ${JSON.stringify(r.stdout)}`)
  if (!r.stderr.startsWith('hvmem: ') || !r.stderr.endsWith('\n') || r.stderr.split('\n').length !== 2) wrong.push(`stderr is not one "hvmem: " line: ${JSON.stringify(r.stderr)}`)
  const line = r.stderr.slice('hvmem: '.length, -1)
  if (typeof c.message === 'string' ? line !== c.message : !c.message.test(line)) wrong.push(`message ${JSON.stringify(line)}`)
  if (stackLines(r.stderr).length > 0) wrong.push('a stack trace')
  return wrong
}

const label = (c: Case): string => c.args.map((a) => (a.length > 30 ? `${a.slice(0, 12)}...(${a.length})` : JSON.stringify(a))).join(' ')

describe(`${cases.length} hostile inputs: one line naming the problem, a documented exit code, nothing changed`, () => {
  // All fail before writing anything, so they may run side by side (five at a time); concurrent
  // tests assert with their own context's expect.
  it.concurrent.for(cases.map((c) => [label(c), c] as const))('%s', async ([, c], {expect: expectHere}) => {
    const r = await hvmem(dir, c.args)
    expectHere(check(c, r)).toEqual([])
    expectHere((await readFile(snap)).equals(original)).toBe(true)
  })

  it('every exit code used is a documented one, and each category is represented', () => {
    const documented = new Set(Object.values(EXIT_CODES))
    expect(cases.every((c) => documented.has(c.code))).toBe(true)
    expect(new Set(cases.map((c) => c.code))).toEqual(new Set([2, 3, 4, 9]))
  })

  // --json before any "--" (after it, it would be an argument). The commands themselves, in this
  // process (the binary's start-up and its stderr are what the cases above check).
  const withJson = (args: string[]): string[] => (args.includes('--') ? args.flatMap((a) => (a === '--' ? ['--json', a] : [a])) : [...args, '--json'])
  it.concurrent.for(cases.map((c) => [label(c), c] as const))('--json %s: the same exit code, and {"error": {kind, message, exitCode}} on stdout', async ([, c], {expect: expectHere}) => {
    const r = await runInProcessAt(dir, withJson(c.args))
    expectHere(r.code).toBe(c.code)
    const json = JSON.parse(r.stdout) as ErrorJson
    expectHere(Object.keys(json.error).join()).toBe('kind,message,exitCode')
    expectHere(json.error.exitCode).toBe(c.code)
    expectHere(json.error.message).not.toContain('\n')
    expectHere(stackLines(r.stderr)).toEqual([])
    expectHere((await readFile(snap)).equals(original)).toBe(true)
  })

  afterAll(async () => {
    // nothing was created beside the snapshot by any case: no lock, no temp file, no snapshot elsewhere
    expect((await readdir(dir)).sort()).toEqual(listing)
  })
})

describe('a directory that cannot be written', () => {
  // As root, permissions do not stop us: the commands then run as "nobody" (uid 65534).
  const asRoot = process.getuid?.() === 0
  const user = asRoot ? {uid: 65534, gid: 65534, env: {HOME: '/nonexistent'}} : {}

  it('changes fail at once with exit 9 naming the directory; reads still work; nothing is changed', async () => {
    const top = await mkdtemp(join(tmpdir(), 'hvmem-ro-'))
    try {
      await chmod(top, 0o755)
      const ro = join(top, 'ro')
      await mkdir(ro)
      const file = join(ro, 'h.snap')
      await writeFile(file, original)
      await chmod(file, 0o644)
      await chmod(ro, 0o555)
      const run = (args: string[]): Promise<{code: number; stdout: string; stderr: string}> => start(top, args, user).done
      const failing: Case[] = [
        {
          args: ['alloc', 'page', '-s', 'ro/h.snap'],
          code: 9,
          message: 'cannot lock ro/h.snap: the directory ro is not writable (EACCES); hvmem creates h.snap.lock and a temp file next to the snapshot',
        },
        {
          args: ['mem', 'write', '0x4100_0000', '1', '-s', 'ro/h.snap'],
          code: 9,
          message: 'cannot lock ro/h.snap: the directory ro is not writable (EACCES); hvmem creates h.snap.lock and a temp file next to the snapshot',
        },
        {
          args: ['heap', 'init', '-s', 'ro/new.snap'],
          code: 9,
          message: 'cannot lock ro/new.snap: the directory ro is not writable (EACCES); hvmem creates new.snap.lock and a temp file next to the snapshot',
        },
        {
          args: ['heap', 'init', '--force', '-s', 'ro/h.snap'],
          code: 9,
          message: 'cannot lock ro/h.snap: the directory ro is not writable (EACCES); hvmem creates h.snap.lock and a temp file next to the snapshot',
        },
      ]
      for (const c of failing) expect(check(c, await run(c.args)), label(c)).toEqual([])
      const status = await run(['heap', 'status', '--json', '-s', 'ro/h.snap'])
      expect(status.code, status.stderr).toBe(0)
      expect(JSON.parse(status.stdout)).toMatchObject({heap: {allocated: 8192}})
      expect((await readFile(file)).equals(original)).toBe(true)
      expect(await readdir(ro)).toEqual(['h.snap'])
    } finally {
      await chmod(join(top, 'ro'), 0o755).catch(() => undefined)
      await rm(top, {recursive: true, force: true})
    }
  })
})

describe('a write-protected snapshot (chmod a-w)', () => {
  // Root may write any file: as root the commands run as "nobody" (uid 65534), who owns the snapshots.
  const asRoot = process.getuid?.() === 0
  const user = asRoot ? {uid: 65534, gid: 65534} : {}
  // large.snap (140 KB) is version 5, and a change to it appended in place; small.snap (128 bytes) is replaced by a rename
  const env = {HVMEM_JOURNAL_THRESHOLD: '65536', HOME: '/nonexistent'}

  it('is not changed, whether its change would be appended or replace it (exit 9); made writable, it is, and keeps its mode', async () => {
    const top = await mkdtemp(join(tmpdir(), 'hvmem-wp-'))
    try {
      await chmod(top, 0o777) // (the user makes the lock and the temp file here)
      for (const args of [
        ['heap', 'init', '-s', 'small.snap'],
        ['heap', 'init', '-s', 'large.snap'],
        ['map', 'region', '0x4000_0000', '64M', '--granularity', 'page', '-s', 'large.snap'],
      ])
        expect((await hvmem(top, args, env)).code).toBe(0)
      expect((await readFile(join(top, 'large.snap'))).readUInt32LE(8)).toBe(5)
      const files = ['small.snap', 'large.snap']
      for (const name of files) {
        if (asRoot) await chown(join(top, name), 65534, 65534)
        await chmod(join(top, name), 0o444)
      }
      const before = await Promise.all(files.map((name) => readFile(join(top, name))))
      const run = async (args: string[]): Promise<{code: number; stdout: string; stderr: string}> => {
        const {code, stdout, stderr} = await start(top, args, {...user, env}).done
        return {code, stdout, stderr}
      }
      const refused = (file: string): string => `${file} is write-protected (this user may not write it); nothing was saved: make it writable (chmod u+w) to change it, or work on a copy`
      const failing: Case[] = [
        {args: ['alloc', 'page', '-s', 'small.snap'], code: 9, message: refused('small.snap')},
        {args: ['alloc', 'page', '-s', 'large.snap'], code: 9, message: refused('large.snap')},
        {args: ['heap', 'init', '--force', '-s', 'small.snap'], code: 9, message: refused('small.snap')},
      ]
      for (const c of failing) expect(check(c, await run(c.args)), label(c)).toEqual([])
      expect(await Promise.all(files.map((name) => readFile(join(top, name))))).toEqual(before)
      expect((await readdir(top)).sort()).toEqual(['large.snap', 'small.snap'])
      // (small.snap replaced: a new inode; large.snap appended to: the same one)
      for (const [name, page, replaced] of [
        ['small.snap', '0x41000000', true],
        ['large.snap', '0x41022000', false],
      ] as const) {
        await chmod(join(top, name), 0o640)
        const ino = (await stat(join(top, name))).ino
        expect(await run(['alloc', 'page', '-s', name])).toEqual({code: 0, stdout: `${page}\n`, stderr: ''})
        expect((await stat(join(top, name))).mode & 0o777).toBe(0o640)
        expect((await stat(join(top, name))).ino !== ino).toBe(replaced)
      }
    } finally {
      await rm(top, {recursive: true, force: true})
    }
  })
})
