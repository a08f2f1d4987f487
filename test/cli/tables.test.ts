/** Exact descriptors, registers and dumps through the real binary. */
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {DumpTablesJson} from '../../src/commands/dump/tables.js'
import type {HeapResetJson} from '../../src/commands/heap/reset.js'
import type {MapRegionJson} from '../../src/commands/map/region.js'
import {expectOkInProcess} from './inprocess.js'
import {expectOk, hvmemJson, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => ({dir, cleanup} = await scratch()))
afterEach(async () => cleanup())

const ok = (...args: string[]): Promise<string> => expectOk(dir, ...args)
// set-up steps in this process; what a test checks runs the binary
const okIn = (...args: string[]): Promise<string> => expectOkInProcess(dir, ...args)

describe('map region and dump tables', () => {
  it('maps 0x4000_0000 + 1 GiB normal as 512 L2 blocks 0x400007fd, 0x402007fd, ...', async () => {
    await okIn('heap', 'init')
    await okIn('map', 'region', '0x4000_0000', '1G', '--granularity', '2M')
    const dump = await hvmemJson<DumpTablesJson>(dir, ['dump', 'tables'])
    const [l1, ...l2] = dump.json.entries
    expect(l1).toMatchObject({level: 1, index: 1, table: '0x41000000', ipa: '0x40000000', descriptor: '0x41001003', kind: 'table', nextTable: '0x41001000'})
    expect(l2).toHaveLength(512)
    l2.forEach((e, i) => {
      expect(e.descriptor).toBe('0x' + (0x4000_07fd + i * 0x20_0000).toString(16))
      expect(e).toMatchObject({level: 2, index: i, table: '0x41001000', kind: 'block', size: 0x20_0000})
    })
    expect(l2[0]!.leaf).toEqual({
      outputAddress: '0x40000000',
      memAttr: 15,
      memType: 'Normal-WB',
      s2ap: 3,
      access: 'RW',
      sh: 3,
      shareability: 'IS',
      af: true,
      xn: 0,
      executable: true,
      contiguous: false,
      software: 0,
    })
    expect(dump.json.ranges).toHaveLength(1)
    expect(dump.json.ranges[0]).toMatchObject({start: '0x40000000', end: '0x80000000', size: 1 << 30, level: 2, entries: 512})
    const ranges = await ok('dump', 'tables', '--format', 'ranges')
    expect(ranges.split('\n')[1]).toBe('0x0000000040000000-0x0000000080000000   1G  L2  RW X Normal-WB IS AF BLK')
  })

  it('writes the KVM stage-2 encodings for device and readonly, not the plan stage-1 ones', async () => {
    await okIn('heap', 'init')
    const device = await hvmemJson<MapRegionJson>(dir, ['map', 'region', '0x0900_0000', '2M', '--attr', 'device'])
    expect(device.json.mapped.descriptor).toBe('0x400000090007c5')
    const ro = await hvmemJson<MapRegionJson>(dir, ['map', 'region', '0x1000_0000', '4M', '--attr', 'readonly'])
    expect(ro.json.mapped.descriptor).toBe('0x1000077d')
    expect(ro.json.newTables).toEqual({count: 0, start: null, end: null}) // same L1 entry as the device block: its L2 table is reused
    const lines = (await ok('dump', 'tables', '--format', 'ranges')).split('\n')
    expect(lines.slice(1, 3)).toEqual(['0x0000000009000000-0x0000000009200000   2M  L2  RW NX Device-nGnRE IS AF BLK', '0x0000000010000000-0x0000000010400000   4M  L2  RO X Normal-WB IS AF BLK'])
  })

  it('carries the VMID in VTTBR_EL2 bits 63:48 and reports VTCR_EL2 0x80023559', async () => {
    await okIn('heap', 'init')
    const map = await hvmemJson<MapRegionJson>(dir, ['map', 'region', '0', '2M', '--vmid', '5', '--l2-budget', '8'])
    expect(map.json.mapper).toMatchObject({regime: 'stage2', root: '0x41000000', vmid: 5, l2Budget: 8, registers: {VTTBR_EL2: '0x5000041000000', VTCR_EL2: '0x80023559', HCR_EL2: '0x80000001'}})
    expect(await ok('map', 'region', '0', '2M')).toContain('VTTBR_EL2 0x5000041000000  VTCR_EL2 0x80023559')
  })

  it('treats a second identical map as a no-op that allocates nothing', async () => {
    await okIn('heap', 'init')
    await okIn('map', 'region', '0x4000_0000', '4M')
    const again = await hvmemJson<MapRegionJson>(dir, ['map', 'region', '0x4000_0000', '4M'])
    expect(again.json).toMatchObject({blocks: 2, written: 0, unchanged: 2, newTables: {count: 0, start: null, end: null}, mapperCreated: false})
    expect((await ok('heap', 'status')).includes('0x41002000')).toBe(true) // next: L1 + one L2 table only
  })

  it('tree format lists each valid entry with its raw descriptor and decoded fields', async () => {
    await okIn('heap', 'init')
    await okIn('map', 'region', '0x4020_0000', '2M', '--attr', 'device')
    const tree = await ok('dump', 'tables')
    expect(tree).toContain('│ L1[1]   │ 0x41000000 │ 0x0040000000 │ 1G   │ 0x0000000041001003 │ table │ 0x41001000    │')
    expect(tree).toContain('│   L2[1] │ 0x41001000 │ 0x0040200000 │ 2M   │ 0x00400000402007c5 │ block │ 0x40200000    │ RW NX Device-nGnRE IS AF BLK │')
    expect(tree).toContain('2 valid entries, 1 leaves, 1 range(s)')
  })

  it('dump tables without a mapper says so and gives empty JSON', async () => {
    await okIn('heap', 'init')
    expect(await ok('dump', 'tables')).toBe('No translation tables yet: "hvmem map region" creates them.\n')
    expect((await hvmemJson<DumpTablesJson>(dir, ['dump', 'tables'])).json).toEqual({mapper: null, entries: [], ranges: []})
  })
})

describe('heap reset', () => {
  it('returns to the heap start after alignment padding (plan defect 1)', async () => {
    await okIn('heap', 'init')
    await ok('alloc', 'bytes', '3')
    await ok('alloc', 'aligned', '--size', '16', '--align', '4096')
    const reset = await hvmemJson<HeapResetJson>(dir, ['heap', 'reset'])
    expect(reset.json.heap).toMatchObject({next: '0x41000000', allocated: 0, padding: 0})
    expect(await ok('alloc', 'page')).toBe('0x41000000\n')
  })

  it('with --discard-mapper zeroes the tables and forgets the mapper', async () => {
    await okIn('heap', 'init')
    await okIn('map', 'region', '0x4000_0000', '2M')
    const reset = await hvmemJson<HeapResetJson>(dir, ['heap', 'reset', '--discard-mapper'])
    expect(reset.json.discardedTables).toEqual(['0x41000000', '0x41001000'])
    expect(await ok('mem', 'read', '0x41000008', '8')).toContain('00 00 00 00 00 00 00 00')
    expect(await ok('mem', 'read', '0x41001000', '8')).toContain('00 00 00 00 00 00 00 00')
    expect(await ok('heap', 'status')).toContain('No mapper yet')
  })
})
