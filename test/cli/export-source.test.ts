/**
 * Issue 15 item 2: `snapshot export FILE --format asm|c|bin [--base]`. The C header compiles with the
 * host gcc and its array is, byte for byte, the bin export of the same range at the same base; the
 * assembly assembles with aarch64-linux-gnu-as (its table pointers are relocations against the
 * table symbols); FILE - writes the same text to stdout; refusals are one line, exit 2, snapshot
 * unchanged. (test/conformance/export.test.ts runs the linked assembly's tables on QEMU.)
 */
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import {delimiter, join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ExportJson} from '../../src/commands/snapshot/export.js'
import {runInProcessAt} from './inprocess.js'
import {type Run, scratch} from './run.js'

const onPath = (command: string): boolean => (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, command)))

let dir: string
let snap: string
let cleanup: () => Promise<void>
const run = (...args: string[]): Promise<Run> => runInProcessAt(dir, [...args, '-s', snap])
async function ok(...args: string[]): Promise<string> {
  const r = await run(...args)
  expect(r.stderr, args.join(' ')).toBe('')
  expect(r.code, args.join(' ')).toBe(0)
  return r.stdout
}

beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  await ok('heap', 'init')
  await ok('map', 'region', '0x4000_0000', '0x3000', '--granularity', 'page')
  await ok('map', 'region', '0x8000_0000', '1G')
  await ok('map', 'region', '0x0900_0000', '2M', '--attr', 'device')
})
afterAll(async () => cleanup())

describe('snapshot export --format', () => {
  it('c: the header compiles and its array is the bin export of the same range and base', async () => {
    const json = JSON.parse(await ok('snapshot', 'export', join(dir, 't.h'), '--format', 'c', '--base', '0x5000_0000', '--json')) as ExportJson
    expect(json).toMatchObject({format: 'c', from: '0x41000000', to: '0x41004000', base: '0x50000000', size: 0x4000, tables: 4})
    expect(json.registers).toEqual({VTTBR_EL2: '0x50000000', VTCR_EL2: '0x80023559', HCR_EL2: '0x80000001'})
    await ok('snapshot', 'export', join(dir, 't.bin'), '--format', 'bin', '--from', json.from, '--to', json.to, '--base', json.base)
    const bin = await readFile(join(dir, 't.bin'))
    expect(bin.length).toBe(0x4000)
    // the root's first entries: L2 tables at their new addresses, the 1 GiB block untouched
    expect(bin.readBigUInt64LE(0)).toBe(0x5000_3003n)
    expect(bin.readBigUInt64LE(8)).toBe(0x5000_1003n)
    expect(bin.readBigUInt64LE(16)).toBe(0x8000_07fdn)
    const header = await readFile(join(dir, 't.h'), 'utf8')
    expect(header).toContain('#define HVMEM_VTTBR_EL2 0x0000000050000000ULL')
    expect(header).toContain('#define HVMEM_L3_41002000_OFFSET 0x2000 /* L3, 4096 bytes, at 0x41002000 in the snapshot */')
    if (!onPath('gcc')) return
    await writeFile(
      join(dir, 'dump.c'),
      '#include <stdio.h>\n#include "t.h"\nint main(void) { return fwrite(hvmem_tables, 1, sizeof hvmem_tables, stdout) != HVMEM_TABLES_BYTES || ((unsigned long)hvmem_tables % HVMEM_TABLES_ALIGN) != 0; }\n',
    )
    execFileSync('gcc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-o', join(dir, 'dump'), join(dir, 'dump.c')], {cwd: dir})
    expect(execFileSync(join(dir, 'dump')).equals(bin)).toBe(true)
  })

  it('asm: relocations against the table symbols; - writes the same text to stdout', async () => {
    await ok('snapshot', 'export', join(dir, 't.S'), '--format', 'asm')
    const text = await readFile(join(dir, 't.S'), 'utf8')
    expect(text).toContain('hvmem_root:\n        .quad   hvmem_l2_41003000 + 0x3\n        .quad   hvmem_l2_41001000 + 0x3\n        .quad   0x00000000800007fd\n')
    expect(text).toContain('        .equ    HVMEM_VTCR_EL2, 0x0000000080023559\n')
    expect(text).toContain('hvmem_vttbr_el2:\n        .quad   hvmem_root + HVMEM_VTTBR_EL2_FLAGS\n')
    const r = await run('snapshot', 'export', '-', '--format', 'asm')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(text)
    expect(r.stderr).toMatch(/^Wrote 4 table\(s\) from 0x41000000-0x41004000 as asm to standard output\n/)
    if (!onPath('aarch64-linux-gnu-as')) return
    execFileSync('aarch64-linux-gnu-as', [join(dir, 't.S'), '-o', join(dir, 't.o')])
    const relocs = execFileSync('aarch64-linux-gnu-objdump', ['-r', '-j', '.rodata.hvmem_tables', join(dir, 't.o')], {encoding: 'utf8'})
    // the table pointers and the root word: R_AARCH64_ABS64 against the table symbols, attributes as addends
    expect([...relocs.matchAll(/^([0-9a-f]{16}) R_AARCH64_ABS64\s+(\w+)(?:\+0x([0-9a-f]+))?$/gm)].map((m) => [parseInt(m[1]!, 16), m[2], parseInt(m[3] ?? '0', 16)])).toEqual([
      [0, 'hvmem_l2_41003000', 3],
      [8, 'hvmem_l2_41001000', 3],
      [0x1000, 'hvmem_l3_41002000', 3],
      [0x4000, 'hvmem_root', 0],
    ])
  })

  it('refuses what it cannot do: one line, exit 2, snapshot unchanged', async () => {
    const before = await readFile(snap)
    const refused = async (args: string[], message: string): Promise<void> => {
      const r = await run('snapshot', 'export', ...args)
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toBe(`hvmem: ${message}\n`)
      expect((await readFile(snap)).equals(before)).toBe(true)
    }
    await refused([join(dir, 'x.S'), '--raw', join(dir, 'x.bin')], `both FILE (${join(dir, 'x.S')}) and --raw (${join(dir, 'x.bin')}) name the output; pass one`)
    await refused(['--format', 'asm'], 'no output file; pass FILE (- for stdout) with --format asm|c|bin, or --raw FILE')
    await refused(
      [join(dir, 'x.S'), '--format', 'asm', '--base', '0x5000_0800'],
      'base 0x50000800 puts the table at 0x41000000 at 0x50000800, not 0x1000-aligned; choose a base that is a multiple of 0x1000 away from 0x41000000',
    )
    await refused(
      [join(dir, 'x.S'), '--format', 'asm', '--to', '0x4100_3000'],
      'the L1 table entry at 0x41000000 points at 0x41003000, outside the exported range 0x41000000-0x41003000; export a range that holds every table',
    )
    const both = await run('snapshot', 'export', '-', '--format', 'c', '--json')
    expect([both.code, JSON.parse(both.stdout)]).toEqual([
      2,
      {error: {kind: 'input', message: 'FILE - writes the export to standard output, which --json needs for its document; write it to a file with --json', exitCode: 2}},
    ])
    expect(existsSync(join(dir, 'x.S'))).toBe(false)
    const empty = join(dir, 'empty.snap')
    await runInProcessAt(dir, ['heap', 'init', '-s', empty])
    const r = await runInProcessAt(dir, ['snapshot', 'export', join(dir, 'x.h'), '--format', 'c', '-s', empty])
    expect([r.code, r.stderr]).toEqual([2, 'hvmem: the snapshot has no mapper, so no tables to write as c; map something first (hvmem map region)\n'])
  })
})
