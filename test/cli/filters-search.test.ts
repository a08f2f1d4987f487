/**
 * Issue 15 item 3 from the command line (in-process): the leaf filters of `dump tables --format
 * ranges` and `dump map` in each regime they read (the mapper's stage 2, --root stage 1, --regime el1),
 * and `mem search` with and without --through-tables; refusals are one line, exit 2.
 */
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {DumpMapJson} from '../../src/commands/dump/map.js'
import type {DumpTablesJson} from '../../src/commands/dump/tables.js'
import type {MemSearchJson} from '../../src/commands/mem/search.js'
import {runInProcessAt} from './inprocess.js'
import {type Run, scratch} from './run.js'

let dir = ''
let snap = ''
let el1 = ''
let cleanup: () => Promise<void> = async () => undefined
const runOn = (file: string, ...args: string[]): Promise<Run> => runInProcessAt(dir, [...args, '-s', file])
async function ok(file: string, ...args: string[]): Promise<string> {
  const r = await runOn(file, ...args)
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
  return r.stdout
}
const okJson = async <T>(file: string, ...args: string[]): Promise<T> => JSON.parse(await ok(file, ...args, '--json')) as T
const EL1 = ['--ttbr0', '0x42000000', '--ttbr1', '0x42010000', '--tcr', '0x280190019']

beforeAll(async () => {
  const s = await scratch()
  ;({dir, cleanup} = s)
  snap = join(dir, 's2.snap')
  el1 = join(dir, 'el1.snap')
  await ok(snap, 'heap', 'init')
  await ok(snap, 'map', 'region', '0x0900_0000', '0x1000', '--attr', 'device')
  await ok(snap, 'map', 'region', '0x4000_0000', '0x4000', '--granularity', 'page')
  await ok(snap, 'map', 'region', '0x4000_4000', '0x1000', '--attr', 'readonly')
  await ok(snap, 'map', 'region', '0xc000_0000', '0x1000', '--pa', '0x4000_1000')
  await ok(snap, 'mem', 'write', '0x4000_1ffc', '0x11223344_aabbccdd')
  await ok(el1, 'heap', 'init')
  for (const [address, value] of [
    ['0x42000008', '0x42001003'], // lower L1[1] -> L2
    ['0x42001000', '0x42002003'], // L2[0] -> L3
    ['0x42002000', '0x4800074f'], // VA 0x4000_0000: AP 01 (EL1 RW, EL0 RW: EL1 cannot execute it)
    ['0x42002008', '0x0040000048001fcf'], // VA 0x4000_1000: AP 11 (read-only), UXN
    ['0x42010000', '0x42011003'], // upper L1[0] -> L2
    ['0x42011000', '0x4000070d'], // VA 0xffff_ff80_0000_0000: a 2M block, AP 00 (EL1 RW), executable at EL1
    ['0x48000010', '0xabcdef'], // under VA 0x4000_0010
    ['0x40000020', '0xabcdef'], // under VA 0xffff_ff80_0000_0020
  ])
    await ok(el1, 'mem', 'write', address, value)
})
afterAll(() => cleanup())

const spans = (json: DumpTablesJson): string[] => json.ranges.map((r) => `${r.start}-${r.end}`)

describe('filters', () => {
  it('dump tables --format ranges: each filter and a combination, text and --json', async () => {
    expect((await ok(snap, 'dump', 'tables', '--format', 'ranges', '--perm', 'w', '--range', '0x4000_2000..0xc000_1000')).split('\n')).toEqual([
      'Stage 2, root 0x41000000: VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559',
      'Leaves allowing w, in 0x40002000-0xc0001000:',
      '0x0000000040002000-0x0000000040004000   8K  L3  RW X Normal-WB IS AF PG',
      '0x00000000c0000000-0x00000000c0001000   4K  L3  RW X Normal-WB IS AF PG  -> 0x0040001000',
      '3 matching leaves, 2 range(s)',
      '',
    ])
    expect(spans(await okJson(snap, 'dump', 'tables', '--format', 'ranges', '--mem', 'device'))).toEqual(['0x9000000-0x9001000'])
    expect(spans(await okJson(snap, 'dump', 'tables', '--format', 'ranges', '--no-exec'))).toEqual(['0x9000000-0x9001000']) // the mapper's readonly stays executable
    expect(spans(await okJson(snap, 'dump', 'tables', '--format', 'ranges', '--perm', 'rx', '--mem', 'normal', '--level', '3'))).toEqual([
      '0x40000000-0x40004000',
      '0x40004000-0x40005000',
      '0xc0000000-0xc0001000',
    ])
    const json = await okJson<DumpTablesJson>(snap, 'dump', 'tables', '--format', 'ranges', '--level', '2')
    expect([json.ranges, json.filter]).toEqual([[], 'at level 2'])
  })

  it('the same filters over --root (stage 1 regime read as such) and --regime el1 (EL1 permissions)', async () => {
    // the stage-2 tables read as stage 1: bits 7:6 are AP there, and only readonly's S2AP 01 reads as AP 01 (EL2 RW)
    expect(spans(await okJson(snap, 'dump', 'tables', '--format', 'ranges', '--root', '0x4100_0000', '--regime', 'stage1', '--perm', 'w'))).toEqual(['0x40004000-0x40005000'])
    expect(spans(await okJson(el1, 'dump', 'tables', '--format', 'ranges', ...EL1, '--perm', 'w'))).toEqual(['0x40000000-0x40001000', '0xffffff8000000000-0xffffff8000200000'])
    expect(spans(await okJson(el1, 'dump', 'tables', '--format', 'ranges', ...EL1, '--exec'))).toEqual(['0x40001000-0x40002000', '0xffffff8000000000-0xffffff8000200000']) // read-only (AP 11) with only UXN: EL1 may execute
    expect(spans(await okJson(el1, 'dump', 'tables', '--format', 'ranges', ...EL1, '--range', '0xffff_ff80_0010_0000..0xffff_ff80_0010_1000'))).toEqual(['0xffffff8000100000-0xffffff8000101000'])
    const text = await ok(el1, 'dump', 'tables', '--format', 'ranges', ...EL1, '--perm', 'r', '--level', '3')
    expect(text).toContain('Leaves allowing r, at level 3:\n')
    expect(text).toContain('2 matching leaves, 2 range(s)\n')
  })

  it('dump map pictures only what passes; filters need --format ranges in dump tables', async () => {
    const json = await okJson<DumpMapJson>(snap, 'dump', 'map', '--mem', 'device')
    expect(json.ipa!.ranges.map((r) => `${r.start}-${r.end} ${r.category}`)).toEqual(['0x9000000-0x9001000 device'])
    expect(json.ipa!.filter).toBe('Device')
    expect(json.heap.tablePages).toHaveLength(7) // the heap strip is not filtered
    const r = await runOn(snap, 'dump', 'tables', '--perm', 'w')
    expect([r.code, r.stderr]).toEqual([2, 'hvmem: --perm, --exec, --mem, --range and --level select ranges: pass --format ranges (not tree)\n'])
    const bad = await runOn(snap, 'dump', 'map', '--range', '0x5000..0x4000')
    expect([bad.code, bad.stderr]).toEqual([2, 'hvmem: --range: the end 0x4000 must be above the start 0x5000\n'])
  })
})

describe('mem search', () => {
  it('finds hex bytes (across a page boundary) and --u64 values, with the input addresses through the tables', async () => {
    expect(await ok(snap, 'mem', 'search', 'ddccbbaa44')).toBe('0x40001ffc\n1 hit(s) of 5 byte(s) ddccbbaa44 in 0x40000000-0x80000000\n')
    const json = await okJson<MemSearchJson>(snap, 'mem', 'search', '--u64', '0x11223344_aabbccdd', '--through-tables')
    expect(json).toEqual({pattern: 'ddccbbaa44332211', from: '0x40000000', to: '0x80000000', hits: [{address: '0x40001ffc', inputs: ['0x40001ffc', '0xc0000ffc']}], truncated: false, regime: 'stage2'})
    expect(await ok(snap, 'mem', 'search', '4433', '--through-tables', '--from', '0x4000_2000')).toBe('0x40002000  IPA 0x40002000\n1 hit(s) of 2 byte(s) 4433 in 0x40002000-0x80000000\n')
    // the descriptors themselves: page entries in the heap, which nothing maps
    expect(await ok(snap, 'mem', 'search', '0040', '--through-tables', '--limit', '1')).toMatch(
      /^0x4100[0-9a-f]{4} {2}not mapped\n1 hit\(s\) of 2 byte\(s\) 0040 in 0x40000000-0x80000000 \(stopped at --limit 1; there are more\)\n$/,
    )
    const s1 = await okJson<MemSearchJson>(el1, 'mem', 'search', 'efcdab', '--through-tables', ...EL1)
    expect(s1.hits).toEqual([
      {address: '0x40000020', inputs: ['0xffffff8000000020']},
      {address: '0x48000010', inputs: ['0x40000010']},
    ])
    expect(s1.regime).toBe('el1')
    const r = await runOn(snap, 'mem', 'search', '0000')
    expect([r.code, r.stderr]).toEqual([2, 'hvmem: PATTERN is all zero bytes, which all untouched memory matches; search for something else\n'])
    const t = await runOn(snap, 'mem', 'search', 'aa', '--root', '0x4100_0000')
    expect([t.code, t.stderr]).toEqual([2, 'hvmem: the table options (--root, --regime, --ttbr0, ...) say which tables --through-tables walks; pass --through-tables too\n'])
  })
})
