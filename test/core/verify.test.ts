import {describe, expect, it} from 'vitest'

import {tableDescriptor} from '../../src/core/descriptor.js'
import {stage2Geometry} from '../../src/core/geometry.js'
import type {Machine} from '../../src/core/machine.js'
import {checkRegisters, checkTables} from '../../src/core/verify.js'
import {mappedMachine} from './helpers.js'

const ram = (machine: Machine) => ({base: machine.memory.base, size: machine.memory.size})

describe('checkTables', () => {
  it('finds nothing in tables hvmem built', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 0x20_1000n, 'normal', {granularity: 'page'})
    expect(checkTables(machine.walkTables(), mapper.geometry, ram(machine))).toEqual({tables: 4, entries: 516, damage: []})
  })

  it('names each hand-damaged entry: a reserved encoding, a table outside RAM, a loop back to the root', () => {
    const {machine, mapper} = mappedMachine()
    // L1[1] -> L2 0x41001000, L2[0] -> L3 0x41002000, L3[0] a page
    mapper.mapRegion(0x4000_0000n, 0x1000n, 'normal', {granularity: 'page'})
    const root = mapper.root
    machine.memory.writeU64(0x4100_2008n, 0x4000_1001n) // L3[1]: valid, bit 1 clear
    machine.memory.writeU64(root + 16n, tableDescriptor(0x2_0000_0000n)) // L1[2]: outside RAM
    machine.memory.writeU64(root + 24n, tableDescriptor(root)) // L1[3]: the root again
    expect(checkTables(machine.walkTables(), mapper.geometry, ram(machine))).toEqual({
      tables: 3,
      entries: 6,
      damage: [
        {
          kind: 'reserved',
          level: 3,
          index: 1,
          table: 0x4100_2000n,
          address: 0x4100_2008n,
          ipa: 0x4000_1000n,
          descriptor: 0x4000_1001n,
          message: 'reserved encoding: bit 1 clear at level 3 (neither a page nor a table)',
        },
        {
          kind: 'outside-ram',
          level: 1,
          index: 2,
          table: root,
          address: root + 16n,
          ipa: 0x8000_0000n,
          descriptor: 0x2_0000_0003n,
          next: 0x2_0000_0000n,
          message: 'next-level table 0x200000000 is outside RAM',
        },
        {
          kind: 'aliased',
          level: 1,
          index: 3,
          table: root,
          address: root + 24n,
          ipa: 0xc000_0000n,
          descriptor: 0x4100_0003n,
          next: root,
          message: 'next-level table 0x41000000 was reached already (a loop or an alias): not walked again',
        },
      ],
    })
  })

  it('finds nothing in contiguous runs hvmem built, and names a run whose entries disagree', () => {
    const {machine, mapper} = mappedMachine()
    // L3 table 0x41002000: pages 0..31 in two runs of 16, all with bit 52
    mapper.mapRegion(0x4000_0000n, 0x2_0000n, 'normal', {contiguous: true})
    expect(checkTables(machine.walkTables(), mapper.geometry, ram(machine)).damage).toEqual([])
    machine.memory.writeU64(0x4100_2000n + 8n * 5n, 0x4000_57ffn) // L3[5] without the bit
    machine.memory.writeU64(0x4100_2000n + 8n * 20n, 0n) // L3[20] invalid
    expect(checkTables(machine.walkTables(), mapper.geometry, ram(machine)).damage).toEqual([
      {
        kind: 'contiguous',
        level: 3,
        index: 0,
        table: 0x4100_2000n,
        address: 0x4100_2000n,
        ipa: 0x4000_0000n,
        descriptor: 0x0010_0000_4000_07ffn,
        message: 'the contiguous bit (52) on a run of 16 entries (L3[0..15]) that disagree: L3[5] does not have the bit',
      },
      {
        kind: 'contiguous',
        level: 3,
        index: 16,
        table: 0x4100_2000n,
        address: 0x4100_2080n,
        ipa: 0x4001_0000n,
        descriptor: 0x0010_0000_4001_07ffn,
        message: 'the contiguous bit (52) on a run of 16 entries (L3[16..31]) that disagree: L3[20] is not valid',
      },
    ])
  })

  it('names a contiguous run whose output is not aligned to the run', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 0x1_0000n, 'normal', {pa: 0x5000_1000n})
    for (let k = 0n; k < 16n; k++) machine.memory.writeU64(0x4100_2000n + 8n * k, (0x5000_1000n + k * 0x1000n) | 0x7ffn | (1n << 52n))
    expect(checkTables(machine.walkTables(), mapper.geometry, ram(machine)).damage.map((d) => d.message)).toEqual([
      "the contiguous bit (52) on a run of 16 entries (L3[0..15]) that disagree: its output 0x50001000 is not aligned to the run's 64K",
    ])
  })

  it('names a next-table address with bits below the 16K granule set', () => {
    const {machine, mapper} = mappedMachine({granule: 16384})
    machine.memory.writeU64(mapper.root, 0x4200_1003n)
    const check = checkTables(machine.walkTables(), mapper.geometry, ram(machine))
    expect(check.damage).toEqual([
      {
        kind: 'misaligned',
        level: 2,
        index: 0,
        table: mapper.root,
        address: mapper.root,
        ipa: 0n,
        descriptor: 0x4200_1003n,
        next: 0x4200_0000n,
        message: 'next-level table address 0x42001000 is not aligned to the 16K granule (the walk reads 0x42000000)',
      },
    ])
    expect(check.tables).toBe(2)
  })

  it('a walk reads pages it is told are unreadable as all zero', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 0x1000n, 'normal', {granularity: 'page'})
    const entries = machine.walkTables(new Set([0x4100_1000 / 4096]))
    expect(entries.map((e) => [e.level, e.index])).toEqual([[1, 1]])
    expect(checkTables(entries, mapper.geometry, ram(machine)).damage).toEqual([])
  })
})

describe('checkRegisters', () => {
  it('finds nothing in the registers of tables hvmem built, stage 2 and stage 1', () => {
    for (const regime of ['stage2', 'stage1'] as const) {
      const {machine, mapper} = mappedMachine({regime, vmid: regime === 'stage2' ? 300 : 0})
      expect(checkRegisters(mapper.registers(), mapper.state, mapper.geometry, ram(machine))).toEqual([])
    }
  })

  it('names registers that do not describe the tables', () => {
    const {machine, mapper} = mappedMachine()
    const other = stage2Geometry({granule: 4096, inputBits: 40})
    expect(checkRegisters(mapper.registers(), mapper.state, other, ram(machine))).toEqual([{register: 'VTCR_EL2', message: "T0SZ 25 does not give the tables' 40-bit input (T0SZ 24)"}])
    const moved = {...mapper.state, root: 0x4100_1000n}
    expect(checkRegisters(mapper.registers(), moved, mapper.geometry, ram(machine))).toEqual([{register: 'VTTBR_EL2', message: "BADDR 0x41000000 is not the mapper's root 0x41001000"}])
  })
})
