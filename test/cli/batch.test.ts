/** hvmem batch: many commands in one process, checked against the same commands run one by one. */
import {copyFile, mkdir, readFile, readdir, rmdir, stat, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {LineErrorJson, LineResultJson, SummaryJson} from '../../src/cli/batch.js'
import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import {start} from '../reliability/proc.js'
import {expectOkInProcess, runInProcess} from './inprocess.js'
import {type Run, hvmem, hvmemJson, scratch, withoutTableWarning} from './run.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>

beforeEach(async () => {
  ;({dir, snap, cleanup} = await scratch())
})
afterEach(async () => cleanup())

/** A new snapshot to run a batch on (made in this process: the batch is what runs the binary). */
async function init(args: string[] = []): Promise<void> {
  await expectOkInProcess(dir, 'heap', 'init', ...args)
}

/**
 * Runs each command alone on `file` (copied from the current snapshot), each loading and saving it as
 * a separate hvmem process does: their stdout, in order, and the file's bytes after. In this process
 * (test/cli/inprocess.ts, checked against the binary in inprocess.test.ts): 50 start-ups of the
 * binary would prove nothing more.
 */
async function separately(commands: string[][], options: {json?: boolean; file?: string} = {}): Promise<{stdout: string; results: unknown[]; runs: Run[]; bytes: Buffer}> {
  const file = options.file ?? join(dir, 'separate.snap')
  await copyFile(snap, file)
  const runs: Run[] = []
  for (const args of commands) runs.push(await runInProcess([...args, '-s', file, ...(options.json ? ['--json'] : [])]))
  return {stdout: runs.map((r) => r.stdout).join(''), results: runs.map((r) => (options.json ? (JSON.parse(r.stdout) as unknown) : undefined)), runs, bytes: await readFile(file)}
}

function jsonLines(stdout: string): unknown[] {
  expect(stdout.endsWith('\n')).toBe(true)
  return stdout
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as unknown)
}

async function fingerprint(path: string): Promise<{bytes: string; ino: bigint; mtimeNs: bigint}> {
  const info = await stat(path, {bigint: true})
  return {bytes: (await readFile(path)).toString('hex'), ino: info.ino, mtimeNs: info.mtimeNs}
}

// Every kind of change and of read, in an order where each depends on the ones before.
const MIXED: string[][] = [
  ['heap', 'status'],
  ['alloc', 'page'],
  ['alloc', 'aligned', '--size', '256', '--align', '2048'],
  ['alloc', 'bytes', '100'],
  ['map', 'region', '0x4000_0000', '1G'],
  ['map', 'region', '0x0900_0000', '2M', '--attr', 'device'],
  ['mem', 'write', '0x4100_0000', '0xdeadbeef', '--width', '4'],
  ['mem', 'search', 'efbeadde', '--through-tables'],
  ['map', 'unmap', '0x4020_0000', '4K'],
  ['map', 'protect', '0x4000_0000', '2M', '--perm', 'r'],
  ['map', 'region', '0x8000_0000', '64M', '--pa', '0x4800_0000', '--granularity', 'page'],
  ['map', 'unmap', '0x8000_0000', '2M'],
  ['map', 'region', '0x8000_0000', '2M', '--pa', '0x4800_0000', '--granularity', 'page'],
  ['map', 'coalesce'],
  ['alloc', 'page', '--count', '3'],
  ['translate', '0x0900_0010', '--write'],
  ['dump', 'tables', '--format', 'ranges'],
  ['dump', 'tables'],
  ['regs'],
  ['mem', 'read', '0x4100_0000', '16'],
  ['heap', 'status'],
  ['heap', 'reset', '--discard-mapper'],
  ['alloc', 'aligned', '--size', '8K', '--align', '64K'],
  ['heap', 'status'],
]
const script = (commands: string[][]): string => commands.map((c) => `${c.join(' ')}\n`).join('')

describe('hvmem batch: the same result as the commands run one by one', () => {
  it('10,000 "alloc page" lines on a 64 MiB heap in one process: every address in order, the heap after', async () => {
    await init(['--size', '64M'])
    await writeFile(join(dir, 'pages.hvmem'), 'alloc page\n'.repeat(10_000))
    const r = await hvmem(dir, ['batch', 'pages.hvmem'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const expected = Array.from({length: 10_000}, (_, i) => `0x${(0x4100_0000 + i * 0x1000).toString(16)}\n`).join('')
    expect(r.stdout).toBe(expected)
    expect(r.stdout.endsWith('0x4370f000\n')).toBe(true)
    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.heap).toEqual({start: '0x41000000', end: '0x45000000', size: 64 << 20, next: '0x43710000', allocated: 10_000 * 4096, remaining: (64 << 20) - 10_000 * 4096, padding: 0})
    expect(status.json.mapper).toBe(null)
    expect(await readdir(dir)).toEqual(['hvmem.snap', 'pages.hvmem'])
  })

  it('50 "alloc page" lines leave the snapshot byte for byte as 50 separate runs do, with the same output', async () => {
    await init(['--size', '64M'])
    const alone = await separately(Array.from({length: 50}, () => ['alloc', 'page']))
    const r = await hvmem(dir, ['batch', '-'], {}, 'alloc page\n'.repeat(50))
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(alone.stdout)
    expect((await readFile(snap)).equals(alone.bytes)).toBe(true)
  })

  it('a mixed script (alloc, map region, mem write, unmap, protect, coalesce and reads): same bytes, same output in order', async () => {
    await init()
    const alone = await separately(MIXED)
    expect(alone.runs.map((r) => r.code)).toEqual(MIXED.map(() => 0))
    await writeFile(join(dir, 'mixed.hvmem'), script(MIXED))
    const r = await hvmem(dir, ['batch', 'mixed.hvmem'])
    expect(withoutTableWarning(r.stderr)).toBe('') // MIXED maps all of RAM, the tables' heap included
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(alone.stdout)
    expect((await readFile(snap)).equals(alone.bytes)).toBe(true)
  })

  it('--json: one exact JSON line a command (its --json result as run alone), then the summary', async () => {
    await init()
    const alone = await separately(MIXED, {json: true})
    const r = await hvmem(dir, ['batch', '--json'], {}, script(MIXED))
    expect(r.code).toBe(0)
    expect(withoutTableWarning(r.stderr)).toBe('') // MIXED maps all of RAM, the tables' heap included
    const expected: Array<LineResultJson | SummaryJson> = MIXED.map((c, i) => ({
      line: i + 1,
      command: c
        .filter((w) => !/^[-0-9]/.test(w))
        .slice(0, 2)
        .join(' '),
      result: alone.results[i],
    }))
    expected.push({summary: {lines: MIXED.length, ok: MIXED.length, failed: 0, skipped: 0, saved: true, exitCode: 0}})
    expect(jsonLines(r.stdout)).toEqual(expected)
    expect((jsonLines(r.stdout)[0] as LineResultJson).command).toBe('heap status')
    expect((await readFile(snap)).equals(alone.bytes)).toBe(true)
  })

  it('comments, blank lines, quotes, escapes, tabs, CRLF and a leading "hvmem" word', async () => {
    await init()
    const text = ['# set up the guest', '', 'hvmem mem write 0x4100_0000 \'0xdead_beef\' --width "4"   # a comment', '\tmem \\write 0x4100_0008 "0x1_0000"\r', '   ', "alloc 'page' --count=2"].join(
      '\n',
    )
    const r = await hvmem(dir, ['batch', '--json'], {}, text)
    expect(r.code).toBe(0)
    expect(jsonLines(r.stdout)).toEqual([
      {line: 3, command: 'mem write', result: {address: '0x41000000', width: 4, value: '0xdeadbeef'}},
      {line: 4, command: 'mem write', result: {address: '0x41000008', width: 8, value: '0x10000'}},
      {line: 6, command: 'alloc page', result: expect.objectContaining({addresses: ['0x41000000', '0x41001000']})},
      {summary: {lines: 3, ok: 3, failed: 0, skipped: 0, saved: true, exitCode: 0}},
    ])
    const read = await hvmemJson<{bytes: string}>(dir, ['mem', 'read', '0x4100_0000', '16'])
    expect(read.json.bytes).toBe('efbeadde000000000000010000000000')
  })

  it('reads standard input for "-" and for no FILE; an empty script does nothing', async () => {
    await init()
    expect((await hvmem(dir, ['batch'], {}, 'alloc page\nalloc page\n')).stdout).toBe('0x41000000\n0x41001000\n')
    expect((await hvmem(dir, ['batch', '-'], {}, 'alloc page\n')).stdout).toBe('0x41002000\n')
    const before = await fingerprint(snap)
    const empty = await hvmem(dir, ['batch', '--json'], {}, '# nothing\n\n')
    expect(empty).toEqual({code: 0, stdout: '{"summary":{"lines":0,"ok":0,"failed":0,"skipped":0,"saved":false,"exitCode":0}}\n', stderr: ''})
    expect(await fingerprint(snap)).toEqual(before)
  })

  it('a line whose optional argument is missing does not read it from standard input (the script)', async () => {
    await init()
    const r = await hvmem(dir, ['batch'], {}, 'mem write 0x4100_0000 0x41\nmem read 0x4100_0000\n')
    expect(r.code).toBe(0)
    const alone = await hvmem(dir, ['mem', 'read', '0x4100_0000'])
    expect(r.stdout).toBe(`Wrote 0x41 (8 bytes) at 0x41000000\n${alone.stdout}`)
    expect(alone.stdout.split('\n')).toHaveLength(5) // 64 bytes: 4 lines of hexdump
  })

  it('a batch of reads does not rewrite the snapshot (same inode, bytes and mtime)', async () => {
    await init()
    expect((await hvmem(dir, ['map', 'region', '0x4000_0000', '2M'])).code).toBe(0)
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch', '--verbose'], {}, 'heap status\ndump tables\ntranslate 0x4000_1000\nregs\nmem read 0x4100_0000 8\n')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('# line 3: translate 0x4000_1000\nStage-2 walk of IPA 0x40001000 for read')
    expect(r.stdout.endsWith('# 5 line(s): 5 ok, 0 failed; ./hvmem.snap unchanged\n')).toBe(true)
    expect(await fingerprint(snap)).toEqual(before)
  })

  it('--verbose: a header before each line and a summary; without it, neither', async () => {
    await init()
    const r = await hvmem(dir, ['batch', '-v'], {}, 'alloc page # one\nalloc page\n')
    expect(r.stdout).toBe('# line 1: alloc page # one\n0x41000000\n# line 2: alloc page\n0x41001000\n# 2 line(s): 2 ok, 0 failed; saved ./hvmem.snap\n')
  })

  it("a line's own --json prints that line's result as JSON, as the command alone does", async () => {
    await init()
    const alone = await separately([
      ['alloc', 'page'],
      ['alloc', 'page', '--json'],
      ['heap', 'status', '--json'],
    ])
    const r = await hvmem(dir, ['batch'], {}, 'alloc page\nalloc page --json\nheap status --json\n')
    expect(r.stdout).toBe(alone.stdout)
  })
})

describe('hvmem batch: failures', () => {
  // Lines 1-2 succeed, line 3 conflicts (exit 6), line 4 is never run.
  const FAILING = [
    ['alloc', 'page'],
    ['map', 'region', '0x4000_0000', '2M'],
    ['map', 'region', '0x4000_0000', '2M', '--attr', 'device'],
    ['alloc', 'page'],
  ]

  it('the first failing line stops the batch: nothing saved (byte-identical), its exit code, one line naming it', async () => {
    await init()
    const alone = await separately(FAILING)
    expect(alone.runs.map((r) => r.code)).toEqual([0, 0, 6, 0])
    const message = alone.runs[2]!.stderr.replace(/^hvmem: /, '').replace(/\n$/, '')
    expect(message).toMatch(/^cannot map 0x40000000-0x40200000 as device: /)
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch'], {}, script(FAILING))
    expect(r.code).toBe(6)
    expect(r.stderr).toBe(`hvmem: line 3 "map region 0x4000_0000 2M --attr device": ${message}; the batch stopped there and saved nothing\n`)
    expect(r.stdout).toBe(alone.runs[0]!.stdout + alone.runs[1]!.stdout)
    expect(await fingerprint(snap)).toEqual(before)
    expect(await readdir(dir)).toEqual(['hvmem.snap', 'separate.snap'])
  })

  it('--json: the lines before, the error line, and a summary with saved false; nothing saved', async () => {
    await init()
    const alone = await separately(FAILING, {json: true})
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch', '--json'], {}, script(FAILING))
    expect(r.code).toBe(6)
    expect(r.stderr).toBe('')
    expect(jsonLines(r.stdout)).toEqual([
      {line: 1, command: 'alloc page', result: alone.results[0]},
      {line: 2, command: 'map region', result: alone.results[1]},
      {line: 3, command: 'map region', text: 'map region 0x4000_0000 2M --attr device', error: (alone.results[2] as {error: LineErrorJson['error']}).error},
      {summary: {lines: 4, ok: 2, failed: 1, skipped: 1, saved: false, exitCode: 6}},
    ])
    expect(await fingerprint(snap)).toEqual(before)
  })

  it('--keep-going: failing lines reported and undone whole (a map that created the mapper, then failed), the rest saved', async () => {
    await init()
    const lines = [
      ['alloc', 'page'],
      ['map', 'region', '0x80_0000_0000', '2M'], // creates the mapper, then the range is refused: exit 2
      ['alloc', 'page'],
      ['mem', 'write', '0x9000_0000', '1'], // outside RAM: exit 2
      ['alloc', 'aligned', '--size', '64M', '--align', '4K'], // heap exhausted: exit 5
      ['map', 'region', '0x4000_0000', '2M'],
    ]
    const alone = await separately(lines)
    expect(alone.runs.map((r) => r.code)).toEqual([0, 2, 0, 2, 5, 0])
    const good = await separately([lines[0]!, lines[2]!, lines[5]!], {file: join(dir, 'good.snap')})
    const r = await hvmem(dir, ['batch', '--keep-going'], {}, script(lines))
    expect(r.code).toBe(2)
    const failure = (i: number): string => `hvmem: line ${i + 1} "${lines[i]!.join(' ')}": ${alone.runs[i]!.stderr.replace(/^hvmem: /, '')}`
    expect(r.stderr).toBe(`${failure(1)}${failure(3)}${failure(4)}hvmem: 3 of 6 line(s) failed (the first: line 2); the snapshot holds the other lines' changes\n`)
    expect(r.stdout).toBe(good.stdout)
    // The mapper is the one line 6 created (root 0x41002000), not line 2's.
    expect(r.stdout).toContain('Created the stage2 mapper (4K granule, 39-bit IPA, 40-bit PA, level-1 root): root at 0x41002000')
    expect((await readFile(snap)).equals(good.bytes)).toBe(true)
  })

  it('--keep-going --json: every line reported, the summary counts them, and saved says so', async () => {
    await init()
    const r = await hvmem(dir, ['batch', '-k', '--json'], {}, 'alloc page\nalloc bytes 0\nfrobnicate 3\nalloc page\n')
    expect(r.code).toBe(2)
    expect(jsonLines(r.stdout)).toEqual([
      {line: 1, command: 'alloc page', result: expect.objectContaining({addresses: ['0x41000000']})},
      {line: 2, command: 'alloc bytes', text: 'alloc bytes 0', error: {kind: 'input', message: 'allocation size must be > 0 (got 0)', exitCode: 2}},
      {line: 3, command: 'frobnicate 3', text: 'frobnicate 3', error: {kind: 'input', message: 'unknown command "frobnicate"; see "hvmem --help" for the commands', exitCode: 2}},
      {line: 4, command: 'alloc page', result: expect.objectContaining({addresses: ['0x41001000']})},
      {summary: {lines: 4, ok: 2, failed: 2, skipped: 0, saved: true, exitCode: 2}},
    ])
    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.heap.next).toBe('0x41002000')
  })

  it('a run of the same line that fails part-way: each line numbered, the rest counted as skipped or each reported under -k', async () => {
    await init(['--size', '16K']) // 4 pages
    const lines = 'alloc page\n'.repeat(6) + 'heap status --json\n'
    const r = await hvmem(dir, ['batch', '--json'], {}, lines)
    expect(r.code).toBe(5)
    const out = jsonLines(r.stdout)
    expect(out.slice(0, 4).map((l) => (l as LineResultJson).line)).toEqual([1, 2, 3, 4])
    expect(out[4]).toMatchObject({line: 5, command: 'alloc page', text: 'alloc page', error: {kind: 'heap-exhausted', exitCode: 5}})
    expect(out[5]).toEqual({summary: {lines: 7, ok: 4, failed: 1, skipped: 2, saved: false, exitCode: 5}})
    const kept = await hvmem(dir, ['batch', '-k', '--verbose'], {}, `${lines}alloc bytes 1__0\nalloc bytes 1__0\n`)
    expect(kept.code).toBe(5)
    expect(
      kept.stdout
        .split('\n')
        .filter((l) => l.startsWith('# line'))
        .map((l) => l.split(':')[0]),
    ).toEqual(['# line 1', '# line 2', '# line 3', '# line 4', '# line 5', '# line 6', '# line 7', '# line 8', '# line 9'])
    expect(kept.stdout.endsWith('# 9 line(s): 5 ok, 4 failed; saved ./hvmem.snap\n')).toBe(true)
    const failed = kept.stderr
      .split('\n')
      .filter((l) => l.startsWith('hvmem: line '))
      .map((l) => l.split(' "')[0])
    expect(failed).toEqual(['hvmem: line 5', 'hvmem: line 6', 'hvmem: line 8', 'hvmem: line 9'])
  })

  it.each([
    ['alloc page', [4096, 4096, 4096, 4096]],
    ['alloc page --count 3', [3 * 4096, 3 * 4096]],
  ])('a run of "%s" lines that fills the heap part-way in text mode: the lines that fit print, then the one that does not stops the batch', async (line, sizes) => {
    await init(['--size', '16K']) // 4 pages
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch', '-'], {}, `${line}\n`.repeat(6))
    const fitting = line === 'alloc page' ? 4 : 1
    expect(r.code).toBe(5)
    expect(r.stdout).toBe(Array.from({length: fitting * (line === 'alloc page' ? 1 : 3)}, (_, i) => `0x${(0x4100_0000 + i * 0x1000).toString(16)}\n`).join(''))
    expect(r.stderr).toMatch(new RegExp(`^hvmem: line ${fitting + 1} "${line}": .*; the batch stopped there and saved nothing\n$`))
    expect(await fingerprint(snap)).toEqual(before)
    // under -k the same lines, each that does not fit reported, and the others' pages saved
    const kept = await hvmem(dir, ['batch', '-k', '-'], {}, `${line}\n`.repeat(6))
    expect(kept.stdout).toBe(r.stdout)
    expect(
      kept.stderr
        .split('\n')
        .filter((l) => l.startsWith('hvmem: line '))
        .map((l) => l.split(' "')[0]),
    ).toEqual(Array.from({length: 6 - fitting}, (_, i) => `hvmem: line ${fitting + 1 + i}`))
    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.heap.allocated).toBe(sizes.slice(0, fitting).reduce((a, b) => a + b, 0))
  })

  it('runs of alloc bytes and alloc aligned lines (addresses not a page apart): the same output and bytes as the commands run one by one', async () => {
    await init(['--size', '64M'])
    const commands = [
      ...Array.from({length: 7}, () => ['alloc', 'bytes', '100']),
      ...Array.from({length: 5}, () => ['alloc', 'aligned', '--size', '24', '--align', '64']),
      ['alloc', 'page', '--count', '2'],
      ['alloc', 'page', '--count', '2'],
    ]
    const alone = await separately(commands)
    const r = await hvmem(dir, ['batch', '-'], {}, commands.map((c) => `${c.join(' ')}\n`).join(''))
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(alone.stdout)
    expect(r.stdout.split('\n').slice(0, 8)).toEqual(['0x41000000', '0x41000064', '0x410000c8', '0x4100012c', '0x41000190', '0x410001f4', '0x41000258', '0x410002c0'])
    expect((await readFile(snap)).equals(alone.bytes)).toBe(true)
  })

  it('a line refused by its own checks before any work (mem read LEN, map protect without --attr or --perm) fails each time it comes', async () => {
    await init()
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch', '-k'], {}, 'mem read 0x4100_0000 0\nmem read 0x4100_0000 0\nmap protect 0x4000_0000 2M\nmem read 0x4100_0000 0\n')
    expect(r.code).toBe(2)
    const read = 'LEN: 0 is out of range (1..1048576)'
    const protect = 'say what to change: --attr normal|device|readonly or --perm r|rw|rx|rwx'
    expect(r.stderr).toBe(
      `hvmem: line 1 "mem read 0x4100_0000 0": ${read}\nhvmem: line 2 "mem read 0x4100_0000 0": ${read}\n` +
        `hvmem: line 3 "map protect 0x4000_0000 2M": ${protect}\nhvmem: line 4 "mem read 0x4100_0000 0": ${read}\n` +
        'hvmem: 4 of 4 line(s) failed (the first: line 1); the snapshot is unchanged\n',
    )
    expect(await fingerprint(snap)).toEqual(before)
  })

  it('--keep-going where every line fails: nothing to save, the file untouched', async () => {
    await init()
    const before = await fingerprint(snap)
    // The same failing lines twice: a line that failed to parse fails the same way when it comes back.
    const r = await hvmem(dir, ['batch', '-k'], {}, 'alloc bytes 0\nmap unmap 0x4000_0000 4K\nalloc bytes 1__0\nalloc bytes 0\nalloc bytes 1__0\n')
    expect(r.code).toBe(2)
    const badNumber = 'SIZE: "1__0" is not a number'
    expect(r.stderr).toMatch(new RegExp(`^hvmem: line 3 "alloc bytes 1__0": ${badNumber} \\(.*\\)\n`, 'm'))
    const third = r.stderr.split('\n')[2]!
    expect(r.stderr).toBe(
      'hvmem: line 1 "alloc bytes 0": allocation size must be > 0 (got 0)\n' +
        'hvmem: line 2 "map unmap 0x4000_0000 4K": the snapshot has no translation tables yet; create them with "hvmem map region"\n' +
        `${third}\n` +
        'hvmem: line 4 "alloc bytes 0": allocation size must be > 0 (got 0)\n' +
        `${third.replace('line 3', 'line 5')}\n` +
        'hvmem: 5 of 5 line(s) failed (the first: line 1); the snapshot is unchanged\n',
    )
    expect(await fingerprint(snap)).toEqual(before)
  })

  it('an unterminated quote is an input error naming the line: nothing runs, no lock is taken', async () => {
    await init()
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch', '-k'], {}, "alloc page\nmem write 'x\nalloc page\nalloc page; heap status\n")
    expect(r).toEqual({code: 2, stdout: '', stderr: `hvmem: line 2 "mem write 'x": unterminated ' quote, opened at column 11 (and 1 more line(s) that cannot be split); nothing was run\n`})
    const json = await hvmem(dir, ['batch', '--json'], {}, 'alloc page "\n')
    expect(json).toEqual({
      code: 2,
      stdout: '{"error":{"kind":"input","message":"line 1 \\"alloc page \\\\\\"\\": unterminated \\" quote, opened at column 12; nothing was run","exitCode":2}}\n',
      stderr: '',
    })
    expect(await fingerprint(snap)).toEqual(before)
  })

  const refused: Array<[string, string]> = [
    ['heap init --force', '"heap init" cannot run inside a batch: it creates the snapshot the batch works on; run it before the batch'],
    ['batch other.hvmem', '"batch" cannot run inside a batch: a batch cannot run another batch'],
    [
      'snapshot export --raw t.bin',
      '"snapshot export" cannot run inside a batch: the snapshot commands work on snapshot files, not on the batch\'s snapshot in memory; run it before or after the batch',
    ],
    ['version', '"version" cannot run inside a batch: it prints hvmem\'s version and touches no snapshot; run it outside the batch'],
    ['help alloc', '"help" cannot run inside a batch: it is @oclif/plugin-help\'s, not one of hvmem\'s snapshot commands; run it outside the batch'],
    ['autocomplete bash', '"autocomplete" cannot run inside a batch: it is @oclif/plugin-autocomplete\'s, not one of hvmem\'s snapshot commands; run it outside the batch'],
    ['alloc pag', 'unknown command "alloc pag" (did you mean "alloc page"?); see "hvmem --help" for the commands'],
    ['heap', '"heap" is a topic, not a command: write one of its commands (heap init, heap reset, heap status)'],
    ['heap nosuch', 'unknown command "heap nosuch"; see "hvmem --help" for the commands'],
    ['--json alloc page', 'the line names no command: it starts with "--json"; write the command first, as "alloc page --count 2"'],
  ]
  it.each(refused)('a command that cannot run inside a batch is refused, naming the line: %s', async (line, message) => {
    await init()
    const before = await fingerprint(snap)
    const r = await hvmem(dir, ['batch'], {}, `alloc page\n${line}\n`)
    expect({line, ...r}).toEqual({line, code: 2, stdout: '0x41000000\n', stderr: `hvmem: line 2 ${JSON.stringify(line)}: ${message}; the batch stopped there and saved nothing\n`})
    expect(await fingerprint(snap)).toEqual(before)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
  })

  it.each([
    ['alloc page\nheap status\n', 0, 0],
    ['alloc page\nhelp alloc\nfrobnicate\n', 2, 1],
  ])("a batch loads oclif's plugins only once a line names none of hvmem's commands: %j", async (script, code, loads) => {
    await init()
    // oclif's debug log says when it loads the plugins the package declares
    const r = await hvmem(dir, ['batch', '-k'], {DEBUG: 'oclif:config'}, script)
    expect(r.code).toBe(code)
    expect(r.stderr.match(/loading plugins \[ '@oclif\/plugin-autocomplete', '@oclif\/plugin-help' \]/g)?.length ?? 0).toBe(loads)
  })

  it("a line's --snapshot may name the batch's snapshot, and no other", async () => {
    await init()
    await copyFile(snap, join(dir, 'other.snap'))
    const ok = await hvmem(dir, ['batch', '-s', 'hvmem.snap'], {}, 'alloc page -s ./hvmem.snap\nalloc page --snapshot=hvmem.snap\n')
    expect(ok).toEqual({code: 0, stdout: '0x41000000\n0x41001000\n', stderr: ''})
    const r = await hvmem(dir, ['batch'], {}, 'alloc page -s other.snap\n')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(
      'hvmem: line 1 "alloc page -s other.snap": --snapshot "other.snap": every line works on the batch\'s snapshot "./hvmem.snap"; drop the flag, or give the file to "hvmem batch --snapshot"; the batch stopped there and saved nothing\n',
    )
    // HVMEM_SNAPSHOT names the batch's snapshot when --snapshot does not; lines follow the batch.
    const env = await hvmem(dir, ['batch'], {HVMEM_SNAPSHOT: 'other.snap'}, 'alloc page\n')
    expect(env.stdout).toBe('0x41000000\n')
    expect((await hvmemJson<HeapStatusJson>(dir, ['heap', 'status', '-s', 'other.snap'])).json.heap.next).toBe('0x41001000')
  })

  it('the batch itself failing: a missing snapshot (exit 3), a missing script file (exit 2), as one line or one JSON line', async () => {
    await init()
    expect(await hvmem(dir, ['batch', '-s', 'missing.snap'], {}, 'alloc page\n')).toEqual({
      code: 3,
      stdout: '',
      stderr: 'hvmem: no snapshot at missing.snap; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT\n',
    })
    expect(await hvmem(dir, ['batch', '--json', '-s', 'missing.snap'], {}, 'alloc page\n')).toEqual({
      code: 3,
      stdout: '{"error":{"kind":"snapshot-missing","message":"no snapshot at missing.snap; create one with \\"hvmem heap init\\", or pass --snapshot / set HVMEM_SNAPSHOT","exitCode":3}}\n',
      stderr: '',
    })
    expect(await hvmem(dir, ['batch', 'nope.hvmem'])).toEqual({code: 2, stdout: '', stderr: 'hvmem: cannot read the batch file "nope.hvmem": there is no such file\n'})
    expect(await hvmem(dir, ['batch', '.'])).toEqual({code: 2, stdout: '', stderr: 'hvmem: cannot read the batch file ".": it is a directory\n'})
  })

  it('a lock held by another command is waited for, as every command does; the batch then runs', async () => {
    await init()
    await writeFile(join(dir, 'two.hvmem'), 'alloc page\nalloc page\n')
    await mkdir(`${snap}.lock`)
    const waiting = start(dir, ['batch', 'two.hvmem'])
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(waiting.child.exitCode).toBe(null)
    await rmdir(`${snap}.lock`)
    const r = await waiting.done
    expect({code: r.code, stdout: r.stdout, stderr: r.stderr}).toEqual({code: 0, stdout: '0x41000000\n0x41001000\n', stderr: ''})
    expect(await readdir(dir)).toEqual(['hvmem.snap', 'two.hvmem'])
  })

  it('a stale lock (left by a killed command) is taken over with the same one-line message as for any command', async () => {
    await init()
    await mkdir(`${snap}.lock`)
    const old = new Date(Date.now() - 60_000)
    await utimes(`${snap}.lock`, old, old)
    const r = await hvmem(dir, ['batch'], {}, 'alloc page\n')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('0x41000000\n')
    expect(r.stderr).toMatch(/^hvmem: took over a stale lock on \.\/hvmem\.snap left by a command that did not finish \(\.\/hvmem\.snap\.lock, untouched for \d+ s\)\n$/)
    expect(await readdir(dir)).toEqual(['hvmem.snap'])
  })
})
