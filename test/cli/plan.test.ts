/** The sprint plan's four test scenarios, through the real binary. */
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {AllocJson} from '../../src/cli/alloc.js'
import type {MemReadJson} from '../../src/commands/mem/read.js'
import type {HeapStatusJson} from '../../src/commands/heap/status.js'
import type {MapRegionJson} from '../../src/commands/map/region.js'
import {hvmem, hvmemJson, scratch, withoutTableWarning} from './run.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => ({dir, cleanup} = await scratch()))
afterEach(async () => cleanup())

const ok = async (args: string[]): Promise<string> => {
  const r = await hvmem(dir, args)
  expect(withoutTableWarning(r.stderr)).toBe('')
  expect(r.code).toBe(0)
  return r.stdout
}

describe('plan task 1: bump allocator (1 MiB heap at 0x4100_0000)', () => {
  it('allocates aligned, sequential pages, an aligned block, and reports what remains', async () => {
    await ok(['heap', 'init', '--base', '0x4100_0000', '--size', '0x10_0000'])
    expect(await ok(['alloc', 'page'])).toBe('0x41000000\n')
    expect(await ok(['alloc', 'page'])).toBe('0x41001000\n')
    const aligned = await hvmemJson<AllocJson>(dir, ['alloc', 'aligned', '--size', '256', '--align', '2048'])
    expect(aligned.code).toBe(0)
    expect(aligned.json.addresses).toEqual(['0x41002000'])
    const status = await hvmemJson<HeapStatusJson>(dir, ['heap', 'status'])
    expect(status.json.heap).toEqual({start: '0x41000000', end: '0x41100000', size: 0x10_0000, next: '0x41002100', allocated: 8448, remaining: 0x10_0000 - 0x2100, padding: 0})
  })
})

describe('plan task 2: global heap', () => {
  it('allocates a page from the default 16 MiB heap and reads 0xDEADBEEF back from it', async () => {
    await ok(['heap', 'init'])
    const page = (await ok(['alloc', 'page'])).trim()
    expect(page).toBe('0x41000000')
    expect(await ok(['mem', 'write', page, '0xDEADBEEF'])).toBe('Wrote 0xdeadbeef (8 bytes) at 0x41000000\n')
    const read = await hvmemJson<MemReadJson>(dir, ['mem', 'read', page, '8'])
    expect(read.json).toEqual({address: '0x41000000', length: 8, bytes: 'efbeadde00000000'})
    expect(await ok(['mem', 'read', page, '4'])).toBe(`0x0041000000  ef be ad de${' '.repeat(12 + 2 + 23 + 2)}|....|\n`)
  })
})

describe('plan task 3: dynamic page tables', () => {
  it('maps 0x1000_0000 + 2 MiB and gives a non-zero VTTBR', async () => {
    await ok(['heap', 'init'])
    const map = await hvmemJson<MapRegionJson>(dir, ['map', 'region', '0x1000_0000', '0x20_0000', '--granularity', '2M'])
    expect(map.code).toBe(0)
    expect(map.json.mapperCreated).toBe(true)
    expect(map.json.mapped).toEqual({ipa: '0x10000000', end: '0x10200000', size: 0x20_0000, pa: '0x10000000', attr: 'normal', descriptor: '0x100007fd'})
    expect(BigInt(map.json.mapper.registers.VTTBR_EL2!)).not.toBe(0n)
    expect(map.json.mapper.registers.VTTBR_EL2!).toBe('0x41000000')
    expect(map.json.mapper.registers.VTCR_EL2).toBe('0x80023559')
    expect(map.json.newTables).toEqual({count: 1, start: '0x41001000', end: '0x41002000'})
  })
})
