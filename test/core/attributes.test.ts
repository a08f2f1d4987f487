/** The attribute model (src/core/attributes.ts): every encoding as an exact descriptor, and what each regime refuses. */
import {describe, expect, it} from 'vitest'

import {type AttributeRequest, describeAttributes, parseMemType, resolveAttributes} from '../../src/core/attributes.js'
import type {RegimeName} from '../../src/core/descriptor.js'
import {STAGE1} from '../../src/core/stage1.js'
import {STAGE2} from '../../src/core/stage2.js'
import {walkTables} from '../../src/core/walker.js'
import {BLOCK, PAGE, expectHvmemError, mappedMachine} from './helpers.js'

const bits = (regime: RegimeName, request: AttributeRequest): bigint => resolveAttributes(regime, request).bits

describe('stage 2: MemAttr, S2AP, SH, XN[1:0]', () => {
  it('the presets are unchanged, and named', () => {
    expect(resolveAttributes('stage2', {})).toEqual({bits: 0x7fcn, name: 'normal'})
    expect(resolveAttributes('stage2', {preset: 'device'})).toEqual({bits: 0x0040_0000_0000_07c4n, name: 'device'})
    expect(resolveAttributes('stage2', {preset: 'readonly'})).toEqual({bits: 0x77cn, name: 'readonly'})
  })

  it('every memory type: MemAttr[3:2] outer, [1:0] inner, Device 0b00xx (and Device drops execute)', () => {
    const memAttr = (mem: string): number => Number((bits('stage2', {mem}) >> 2n) & 0xfn)
    expect(['Normal-WB', 'Normal-WT', 'Normal-NC', 'Normal-oWB-iNC', 'Normal-oNC-iWB', 'normal-owt-iwb'].map(memAttr)).toEqual([0b1111, 0b1010, 0b0101, 0b1101, 0b0111, 0b1011])
    expect(['Device-nGnRnE', 'Device-nGnRE', 'Device-nGRE', 'Device-GRE'].map(memAttr)).toEqual([0b0000, 0b0001, 0b0010, 0b0011])
    expect(bits('stage2', {mem: 'Device-nGnRnE'})).toBe(0x0040_0000_0000_07c0n)
    expect(bits('stage2', {mem: 'Normal-NC', perm: 'rw'})).toBe(0x0040_0000_0000_07d4n)
    expect(resolveAttributes('stage2', {mem: 'Normal-NC', perm: 'rw'}).name).toBe('Normal-NC IS RW NX')
  })

  it('S2AP none, read, write-only, read/write; XN 10 without x', () => {
    expect(bits('stage2', {perm: 'none'})).toBe(0x0040_0000_0000_073cn)
    expect(bits('stage2', {perm: 'r'})).toBe(0x0040_0000_0000_077cn)
    expect(bits('stage2', {perm: 'w'})).toBe(0x0040_0000_0000_07bcn)
    expect(bits('stage2', {perm: 'rwx'})).toBe(0x7fcn)
    expect(bits('stage2', {perm: 'x'})).toBe(0x73cn) // execute-only: S2AP 00, XN 00
  })

  it('FEAT_XNX: XN[1:0] 01 executable at EL0 only, 11 at EL1 only', () => {
    expect(bits('stage2', {execAt: 'el0'})).toBe(0x0020_0000_0000_07fcn)
    expect(bits('stage2', {execAt: 'el1'})).toBe(0x0060_0000_0000_07fcn)
    expect(describeAttributes('stage2', 0x0020_0000_0000_07fcn)).toBe('Normal-WB IS RW X@EL0')
    expectHvmemError(() => bits('stage2', {perm: 'rw', execAt: 'el0'}), 'input', 'execute at el0 contradicts permissions without x')
  })

  it('SH: NS 00, OS 10, IS 11', () => {
    expect(bits('stage2', {share: 'NS'})).toBe(0x4fcn)
    expect(bits('stage2', {share: 'os'})).toBe(0x6fcn)
    expectHvmemError(() => bits('stage2', {share: 'SH01'}), 'input', 'unknown shareability "SH01": use NS (non-shareable), OS (outer) or IS (inner shareable)')
  })

  it('Device memory is never executable', () => {
    expectHvmemError(() => bits('stage2', {preset: 'device', perm: 'rwx'}), 'input', 'Device memory must be execute-never')
    expectHvmemError(() => bits('stage2', {mem: 'Device-GRE', execAt: 'all'}), 'input', 'Device memory must be execute-never')
  })

  it('refuses unknown names', () => {
    expectHvmemError(() => parseMemType('Normal-WA'), 'input', 'unknown memory type "Normal-WA"')
    expectHvmemError(() => bits('stage2', {perm: 'xr'}), 'input', 'unknown permissions "xr": use r, rw, rx, rwx, w, wx, x or none')
  })

  it('the mapper writes them and reads them back, and names a conflict by its fields', () => {
    const {mapper} = mappedMachine()
    const nc = resolveAttributes('stage2', {mem: 'Normal-oWB-iNC', share: 'OS', perm: 'r'})
    expect(mapper.mapRegion(0x4800_0000n, BLOCK, nc).descriptor).toBe(0x0040_0000_4800_0675n)
    expect(mapper.mapRegion(0x4900_0000n, PAGE, resolveAttributes('stage2', {execAt: 'el1'})).descriptor).toBe(0x0060_0000_4900_07ffn)
    expect(STAGE2.decode(0x0040_0000_4800_0675n, 2).leaf).toMatchObject({memType: 'Normal-oWB-iNC', access: 'RO', shareability: 'OS', executable: false})
    expectHvmemError(() => mapper.mapRegion(0x4800_0000n, BLOCK, 'normal'), 'mapping-conflict', 'is already mapped Normal-oWB-iNC OS RO NX to 0x48000000')
  })
})

describe('stage 1 (EL2): AttrIndx through MAIR_EL2, AP[2], SH, XN', () => {
  it('the safe presets: inner shareable, device execute-never', () => {
    expect(resolveAttributes('stage1', {})).toEqual({bits: 0x704n, name: 'normal'})
    expect(resolveAttributes('stage1', {preset: 'device'})).toEqual({bits: 0x0040_0000_0000_0708n, name: 'device'})
    expect(resolveAttributes('stage1', {preset: 'readonly'})).toEqual({bits: 0x784n, name: 'readonly'})
    expect(STAGE1.decode(0x0040_0000_0900_0709n, 2).leaf).toMatchObject({memType: 'Device-nGnRE', shareability: 'IS', executable: false})
  })

  it('memory types select their MAIR_EL2 index; others are refused', () => {
    expect(bits('stage1', {mem: 'Device-nGnRnE'})).toBe(0x0040_0000_0000_0700n)
    expect(bits('stage1', {mem: 'Normal-WB', perm: 'r', share: 'NS'})).toBe(0x0040_0000_0000_0484n)
    expectHvmemError(() => bits('stage1', {mem: 'Normal-NC'}), 'input', "Normal-NC is not in hvmem's MAIR_EL2")
  })

  it('has no write-only, no no-access and no EL0/EL1 split', () => {
    expectHvmemError(() => bits('stage1', {perm: 'w'}), 'input', 'stage 1 (EL2) has no write-only encoding')
    expectHvmemError(() => bits('stage1', {perm: 'none'}), 'input', 'stage 1 (EL2) has no no-access encoding')
    expectHvmemError(() => bits('stage1', {execAt: 'el0'}), 'input', 'execute at el0 only is stage 2 with FEAT_XNX')
    expectHvmemError(() => bits('stage1', {preset: 'device', perm: 'rx'}), 'input', 'Device memory must be execute-never')
  })
})

describe("the mapper's own tables", () => {
  it('tablePagesIn lists the table pages an output range covers, the root first', () => {
    const {mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 2n * BLOCK, 'normal', {granularity: 'page'})
    expect(mapper.tablePagesIn(0x4000_0000n, 0x4000_0000n)).toEqual([0x4100_0000n, 0x4100_1000n, 0x4100_2000n, 0x4100_3000n])
    expect(mapper.tablePagesIn(0x4100_2000n, PAGE)).toEqual([0x4100_2000n])
    expect(mapper.tablePagesIn(0x4200_0000n, 0x3e00_0000n)).toEqual([])
  })

  // against a walk's own account (walkTables visits every table entry, the ones it does not follow
  // too): the root's granules, and the table each table entry points at, each time one does
  it.each([4096, 16384, 65536] as const)('tablePagesIn (%i granule) is every table a table entry points at, an alias twice and one outside RAM too', (granule) => {
    const {machine, mapper} = mappedMachine({granule})
    const g = mapper.geometry
    const block = BigInt(g.entrySize(g.startLevel + 1 === 3 ? 2 : g.startLevel + 1))
    mapper.mapRegion(0x4000_0000n, 3n * BigInt(granule), 'normal', {granularity: 'page'})
    mapper.mapRegion(0x2_0000_0000n, 2n * BigInt(g.entrySize(2)), 'normal', {granularity: 'page'})
    mapper.mapRegion(0x4_0000_0000n, block, 'device')
    // the root's first table entry copied into a free root slot (an alias), and a table entry to a page outside RAM
    const root = mapper.root
    const entries = BigInt(g.entriesAt(g.startLevel))
    const first = machine.memory.readU64(root + 8n * BigInt(Number((0x4000_0000n / BigInt(g.entrySize(g.startLevel))) % entries)))
    expect(first & 3n).toBe(3n)
    machine.memory.writeU64(root + 8n * (entries - 1n), first)
    machine.memory.writeU64(root + 8n * (entries - 2n), 0x1_0000_0000n | 3n)
    const expected = [...Array(g.tableBytes(g.startLevel) / granule).keys()].map((i) => root + BigInt(i * granule))
    walkTables(machine.memory, mapper.regime, root, g, (c) => {
      if (c.kind === 'table') expected.push(c.decoded.nextTable!)
    })
    const sorted = (xs: bigint[]): bigint[] => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    expect(expected.filter((t) => t === 0x1_0000_0000n)).toHaveLength(1)
    expect(mapper.tablePagesIn(0n, 1n << 48n)).toEqual(sorted(expected))
    expect(mapper.tablePagesIn(0x4100_0000n, 0x100_0000n)).toEqual(sorted(expected.filter((t) => t >= 0x4100_0000n && t < 0x4200_0000n)))
  })
})
