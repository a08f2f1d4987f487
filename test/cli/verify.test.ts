/**
 * `snapshot verify`: every page's CRC-32 (every damaged page named), every table reachable from the
 * mapper, the registers; exit 4 when anything is damaged, 0 when intact; read-only (the file stays
 * byte-identical, no lock is made).
 */
import {existsSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {type VerifyPageJson, reportText} from '../../src/commands/snapshot/verify.js'
import {tableDescriptor} from '../../src/core/descriptor.js'
import {Machine} from '../../src/core/machine.js'
import {createSnapshot} from '../../src/snapshot/store.js'
import {dataStart, encodeV1, pageCount, patched} from '../snapshot/fixtures.js'
import {hvmem, hvmemJson, scratch} from './run.js'

const ROOT = 0x4100_0000n
let dir = ''
let intact: Buffer = Buffer.alloc(0)
let cleanup: () => Promise<void> = async () => undefined

/** The offset of the page at `address` in a version-2+ file. */
function pageOffset(data: Buffer, address: bigint): number {
  for (let i = 0; i < pageCount(data); i++) if (data.readBigUInt64LE(128 + 16 * i) === address) return dataStart(data) + 4096 * i
  throw new Error(`no page ${address.toString(16)} in the file`)
}

/** Writes `data` as `name` in the scratch directory; returns its path. */
async function file(name: string, data: Buffer): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, data)
  return path
}

/** Runs verify (args after `snapshot verify`) and checks the file is byte-identical and no lock was made. */
async function verify(name: string, ...extra: string[]) {
  const path = join(dir, name)
  const before = await readFile(path)
  const r = await hvmem(dir, ['snapshot', 'verify', name, ...extra])
  expect(await readFile(path)).toEqual(before)
  expect(existsSync(`${path}.lock`)).toBe(false)
  // intact: nothing on stderr; damaged: the report on stdout and one "hvmem: " line on stderr (docs/scripting.md)
  if (r.code === 0) expect(r.stderr).toBe('')
  else expect(r.stderr).toMatch(/^hvmem: [^\n]+\n$/)
  return r
}

beforeAll(async () => {
  const s = await scratch()
  dir = s.dir
  cleanup = s.cleanup
  // root 0x41000000 -> L2 0x41001000 -> L3 0x41002000 (three pages mapped), and two data pages
  const machine = Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: ROOT, heapSize: 16n << 20n})
  machine.ensureMapper().mapper.mapRegion(0x4000_0000n, 0x3000n, 'normal', {granularity: 'page'})
  machine.memory.writeU64(0x4000_5000n, 7n)
  machine.memory.writeU64(0x4000_9000n, 7n)
  await createSnapshot(join(dir, 'intact.snap'), machine, true)
  intact = await readFile(join(dir, 'intact.snap'))
})

afterAll(() => cleanup())

describe('snapshot verify', () => {
  it('an intact snapshot: exit 0, says so', async () => {
    const r = await verify('intact.snap')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('5 checked each by its CRC-32: none damaged')
    expect(r.stdout).toContain('3 tables, 5 valid entries: none damaged')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('intact.snap: intact')
  })

  it('an intact snapshot under --json', async () => {
    const r = await hvmemJson(dir, ['snapshot', 'verify', 'intact.snap'])
    expect(r.code).toBe(0)
    expect(r.json).toEqual({
      file: 'intact.snap',
      intact: true,
      header: {intact: true, version: 3},
      pages: {checked: 5, damaged: []},
      tables: {checked: 3, entries: 5, damaged: []},
      registers: {checked: ['VTTBR_EL2', 'VTCR_EL2', 'HCR_EL2'], damaged: []},
    })
  })

  it('a page whose bytes were flipped after saving: exit 4, names the page', async () => {
    const data = Buffer.from(intact)
    data[pageOffset(data, 0x4000_9000n) + 100]! ^= 0xff
    await file('one.snap', data)
    const r = await verify('one.snap')
    expect(r.code).toBe(4)
    expect(r.stdout).toMatch(/0x40009000 +│ checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/)
    expect(r.stdout).toContain('1 damaged page')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('one.snap: damaged')
    expect(r.stderr).toBe('hvmem: one.snap: 1 damaged page\n')
  })

  it('two damaged pages, one a table: both named (text and --json)', async () => {
    const data = Buffer.from(intact)
    data[pageOffset(data, 0x4000_5000n)]! ^= 1
    data[pageOffset(data, 0x4100_2000n) + 8]! ^= 1
    await file('two.snap', data)
    const r = await verify('two.snap')
    expect(r.code).toBe(4)
    expect(r.stdout).toContain('2 damaged pages')
    expect(r.stdout).toContain('0x40005000')
    expect(r.stdout).toContain('0x41002000')
    expect(r.stdout).toContain('holds a level-3 table, whose entries were not checked')
    expect(r.stderr).toBe('hvmem: two.snap: 2 damaged pages\n')
    const j = await hvmemJson<{intact: boolean; pages: {checked: number; damaged: Array<{address: string; reason: string; tableLevel?: number}>}}>(dir, ['snapshot', 'verify', 'two.snap'])
    expect(j.code).toBe(4)
    expect(j.json.intact).toBe(false)
    expect(j.json.pages.checked).toBe(5)
    expect(j.json.pages.damaged.map((p) => [p.address, p.reason, p.tableLevel])).toEqual([
      ['0x40005000', 'checksum', undefined],
      ['0x41002000', 'checksum', 3],
    ])
    // as every failing command's JSON (docs/scripting.md): the error beside the report
    expect((j.json as {error?: unknown}).error).toEqual({kind: 'snapshot-invalid', message: 'two.snap: 2 damaged pages', exitCode: 4})
  })

  it('a table entry looping back to the root (valid checksums): exit 4, names the entry (text and --json)', async () => {
    const data = patched(intact, (copy) => copy.writeBigUInt64LE(tableDescriptor(ROOT), pageOffset(copy, ROOT) + 8 * 3))
    await file('loop.snap', data)
    const r = await verify('loop.snap')
    expect(r.code).toBe(4)
    expect(r.stdout).toContain('none damaged') // the pages
    expect(r.stdout).toContain('L1[3] of table 0x41000000')
    expect(r.stdout).toContain('0x41000018')
    expect(r.stdout).toContain('was reached already (a loop or an alias)')
    expect(r.stderr).toBe('hvmem: loop.snap: 1 damaged table entry\n')
    const j = await hvmemJson<{intact: boolean; tables: unknown}>(dir, ['snapshot', 'verify', 'loop.snap'])
    expect(j.code).toBe(4)
    expect(j.json.tables).toEqual({
      checked: 3,
      entries: 6,
      damaged: [
        {
          kind: 'aliased',
          level: 1,
          index: 3,
          table: '0x41000000',
          address: '0x41000018',
          ipa: '0xc0000000',
          descriptor: '0x0000000041000003',
          next: '0x41000000',
          message: 'next-level table 0x41000000 was reached already (a loop or an alias): not walked again',
        },
      ],
    })
  })

  it("a version-1 snapshot: its pages are covered by the whole file's CRC-32, its tables walked", async () => {
    const machine = Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: ROOT, heapSize: 16n << 20n})
    machine.ensureMapper().mapper.mapRegion(0x4000_0000n, 0x1000n, 'normal', {granularity: 'page'})
    await file('v1.snap', encodeV1(machine))
    const r = await verify('v1.snap')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("3 checked by the whole file's CRC-32: none damaged")
    expect(r.stdout).toContain('3 tables, 3 valid entries: none damaged')
  })

  it('a damaged header: exit 4, the problem, nothing else checked (--json)', async () => {
    const data = Buffer.from(intact)
    data[20]! ^= 1
    await file('header.snap', data)
    const j = await hvmemJson<{intact: boolean; header: {intact: boolean; problem: string}; pages: null; tables: null}>(dir, ['snapshot', 'verify', 'header.snap'])
    expect(j.code).toBe(4)
    expect(j.json).toMatchObject({intact: false, header: {intact: false, version: null}, pages: null, tables: null, registers: null})
    expect(j.json.header.problem).toContain('header or page index checksum mismatch')
    expect((j.json as {error?: {kind: string; message: string; exitCode: number}}).error).toMatchObject({kind: 'snapshot-invalid', exitCode: 4})
    expect((j.json as {error?: {message: string}}).error?.message).toMatch(/^header\.snap: damaged header or page index: .*checksum mismatch/)
    const r = await verify('header.snap')
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/^hvmem: header\.snap: damaged header or page index: .*checksum mismatch/)
  })

  // In-process: the report of a snapshot damaged everywhere (a 500 MB file to make). cli-table3 drew
  // its tables in time quadratic in the rows, and past about 120,000 overflowed the stack.
  it('the text report of 125,000 damaged pages: every one a row of one table, as for a few', () => {
    const n = 125_000
    const damaged = Array.from({length: n}, (_, i): VerifyPageJson => ({address: `0x${(0x4200_0000 + i * 4096).toString(16)}`, reason: 'checksum', stored: '0x7cd551dd', computed: '0x899de68d'}))
    const lines = reportText({file: 'all.snap', intact: false, header: {intact: true, version: 3}, pages: {checked: n, damaged}, tables: null, registers: null}).split('\n')
    // the summary (8 lines), then the damaged pages: a rule, the heading, a rule, a row each, a rule; the last line
    expect(lines).toHaveLength(8 + 3 + n + 1 + 1)
    expect(lines[8]).toBe(`┌──────────────┬${'─'.repeat(60)}┐`)
    expect(lines[9]).toMatch(/^│ .*damaged page.* │ .*problem.* +│$/)
    expect(lines[11]).toBe('│ 0x42000000   │ checksum mismatch (stored 0x7cd551dd, computed 0x899de68d) │')
    expect(lines[11 + n - 1]).toBe('│ 0x60847000   │ checksum mismatch (stored 0x7cd551dd, computed 0x899de68d) │')
    expect(lines.at(-2)).toBe(`└──────────────┴${'─'.repeat(60)}┘`)
    expect(lines.at(-1)).toContain('all.snap: damaged')
  })

  it('a directory named as the snapshot (text): exit 4, the report, one "hvmem: " line on stderr', async () => {
    const r = await hvmem(dir, ['snapshot', 'verify', '-s', '.'])
    expect(r.code).toBe(4)
    expect(r.stdout).toContain('damaged: . is not a regular file')
    expect(r.stderr).toBe('hvmem: .: damaged header or page index: . is not a regular file; name a snapshot file\n')
  })
})
