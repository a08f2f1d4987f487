import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {ADDRESS_MASK, CONTIGUOUS, tableDescriptor} from '../../src/core/descriptor.js'
import {FINAL_LEVEL, type Geometry, granuleName, stage2Geometry} from '../../src/core/geometry.js'
import type {Machine} from '../../src/core/machine.js'
import {formatSize, hex} from '../../src/core/u64.js'
import {type EntryDamage, type RamRange, type TableCheck, TableChecker, checkRegisters, checkTables} from '../../src/core/verify.js'
import type {WalkEntry} from '../../src/core/walker.js'
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

/**
 * checkTables as it was before it checked as the walk goes (TableChecker): over every entry of the
 * walk, made as objects. The reference the streaming checker is compared with.
 */
function referenceCheck(entries: readonly WalkEntry[], geometry: Geometry, ram: RamRange): TableCheck {
  const damage: EntryDamage[] = []
  let tables = 1
  const lowBits = (BigInt(geometry.granule) - 1n) & ADDRESS_MASK
  for (const e of entries) {
    const raw = e.decoded.raw
    const where = {level: e.level, index: e.index, table: e.table, address: e.table + 8n * BigInt(e.index), ipa: e.ipa, descriptor: raw}
    if (e.decoded.kind === 'reserved') {
      const why = e.level === FINAL_LEVEL ? 'bit 1 clear at level 3 (neither a page nor a table)' : `a block at level ${e.level}, which the ${granuleName(geometry.granule)} granule does not have`
      damage.push({kind: 'reserved', ...where, message: `reserved encoding: ${why}`})
      continue
    }
    if (e.decoded.kind !== 'table') continue
    const next = e.decoded.nextTable!
    const found = {...where, next}
    if ((raw & lowBits) !== 0n) {
      damage.push({
        kind: 'misaligned',
        ...found,
        message: `next-level table address ${hex(raw & ADDRESS_MASK)} is not aligned to the ${granuleName(geometry.granule)} granule (the walk reads ${hex(next)})`,
      })
    }
    if (e.problem === undefined) {
      tables++
      continue
    }
    const inRam = next >= ram.base && next + BigInt(geometry.granule) <= ram.base + ram.size
    damage.push({kind: inRam ? 'aliased' : 'outside-ram', ...found, message: e.problem})
  }
  const keyOf = (e: WalkEntry): string | undefined => {
    const n = geometry.contiguousEntries(e.level)
    return n === 0 || e.decoded.kind === 'table' ? undefined : `${e.table}:${e.level}:${Math.floor(e.index / n)}`
  }
  const marked = new Set<string>()
  for (const e of entries) if (e.decoded.leaf !== undefined && (e.decoded.raw & CONTIGUOUS) !== 0n) marked.add(keyOf(e)!)
  const runs = new Map<string, WalkEntry[]>()
  for (const e of entries) {
    const n = geometry.contiguousEntries(e.level)
    if (n === 0) continue
    const key = `${e.table}:${e.level}:${Math.floor(e.index / n)}`
    if (marked.has(key)) runs.set(key, [...(runs.get(key) ?? []), e])
  }
  for (const run of runs.values()) {
    const level = run[0]!.level
    const n = geometry.contiguousEntries(level)
    const size = geometry.entrySize(level)
    const first = run.find((e) => e.decoded.leaf !== undefined && (e.decoded.raw & CONTIGUOUS) !== 0n)!
    const start = first.index - (first.index % n)
    const base = first.decoded.leaf!.outputAddress - BigInt(first.index - start) * size
    const attrs = first.decoded.raw & ~ADDRESS_MASK
    const problem = ((): string | undefined => {
      for (let k = 0; k < n; k++) {
        const e = run.find((x) => x.index === start + k)
        const name = `L${level}[${start + k}]`
        if (e === undefined) return `${name} is not valid`
        if (e.decoded.leaf === undefined) return `${name} is not a leaf`
        if ((e.decoded.raw & CONTIGUOUS) === 0n) return `${name} does not have the bit`
        if ((e.decoded.raw & ~ADDRESS_MASK) !== attrs) return `${name} has other attributes`
        if (e.decoded.leaf.outputAddress !== base + BigInt(k) * size) return `${name}'s output ${hex(e.decoded.leaf.outputAddress)} does not continue the run's`
      }
      return base % (BigInt(n) * size) === 0n ? undefined : `its output ${hex(base)} is not aligned to the run's ${formatSize(BigInt(n) * size)}`
    })()
    if (problem === undefined) continue
    const where = {level, index: first.index, table: first.table, address: first.table + 8n * BigInt(first.index), ipa: first.ipa, descriptor: first.decoded.raw}
    damage.push({kind: 'contiguous', ...where, message: `the contiguous bit (52) on a run of ${n} entries (L${level}[${start}..${start + n - 1}]) that disagree: ${problem}`})
  }
  return {tables, entries: entries.length, damage}
}

describe('TableChecker: checkTables as the walk goes', () => {
  // a map (granule, contiguous runs, pages or blocks), then descriptors written by hand into its table pages
  const maps = fc.array(
    fc.record({at: fc.integer({min: 0, max: 63}), pages: fc.integer({min: 1, max: 3000}), contiguous: fc.boolean(), page: fc.boolean(), attr: fc.constantFrom('normal', 'device', 'readonly')}),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  const writes = fc.array(fc.record({table: fc.nat(), index: fc.integer({min: 0, max: 511}), how: fc.integer({min: 0, max: 8}), bit: fc.integer({min: 0, max: 11})}), {maxLength: 12})

  it("finds what checking the walk's entries made whole found, in the same order, with nothing kept per entry (property)", () => {
    fc.assert(
      fc.property(fc.constantFrom(4096, 16384, 65536), fc.constantFrom('stage2', 'stage1'), maps, writes, fc.boolean(), (granule, regime, regions, edits, unreadable) => {
        const {machine, mapper} = mappedMachine({granule: granule as 4096 | 16384 | 65536, regime: regime as 'stage2' | 'stage1', l2Budget: 64})
        const g = mapper.geometry
        for (const r of regions) {
          try {
            mapper.mapRegion(BigInt(r.at) << 25n, BigInt(g.granule) * BigInt(r.pages), r.attr as 'normal', {contiguous: r.contiguous, replace: true, ...(r.page ? {granularity: 'page' as const} : {})})
          } catch {
            // a map the budget refuses: the tables as they are
          }
        }
        const tables = [...machine.tablePages().keys()]
        for (const e of edits) {
          const at = BigInt(tables[e.table % tables.length]!) * 4096n + 8n * BigInt(e.index)
          const old = machine.memory.readU64(at)
          const other = BigInt(tables[(e.table >> 3) % tables.length]!) * 4096n
          const value = [
            old ^ CONTIGUOUS,
            tableDescriptor(mapper.root),
            tableDescriptor(0x10_0000_0000n),
            old & ~2n,
            0n,
            old === 0n ? 0n : old + BigInt(g.granule),
            tableDescriptor(other) | BigInt((e.bit & 15) << 12),
            old ^ (1n << BigInt(e.bit)),
            old === 0n ? 0n : old | CONTIGUOUS,
          ][e.how]!
          machine.memory.writeU64(at, value)
        }
        const ram = {base: machine.memory.base, size: machine.memory.size}
        const skipped = new Set(unreadable && tables.length > 1 ? [tables[1]!] : [])
        const checker = new TableChecker(g, ram)
        machine.visitTables((c) => checker.visit(c), skipped)
        const expected = referenceCheck(machine.walkTables(skipped), g, ram)
        expect(checker.finish()).toEqual(expected)
        expect(checkTables(machine.walkTables(skipped), g, ram)).toEqual(expected)
        // the table pages, and those of them asked for, as a walk made whole lists them
        const all = machine.tablePageSink()
        const some = machine.tablePageSink(new Set(tables.filter((_, i) => i % 2 === 0)))
        machine.visitTables((c) => {
          all.visit(c)
          some.visit(c)
        }, skipped)
        const walked = machine.tablePages(machine.walkTables(skipped))
        expect([...all.pages]).toEqual([...walked])
        expect([...some.pages]).toEqual([...walked].filter(([frame]) => tables.indexOf(frame) % 2 === 0))
      }),
      {numRuns: 150},
    )
  })
})

describe('TableChecker: ordering', () => {
  it('lists damaged contiguous runs by their first entries, a run inside another run after it', () => {
    const {machine, mapper} = mappedMachine()
    // L2 table 0x41001000: 2 MiB blocks 0..15 with the bit; L3 table 0x41003000: pages 0..31 with it, in two runs
    mapper.mapRegion(0x4000_0000n, 0x200_0000n, 'normal', {contiguous: true, granularity: '2M'})
    mapper.mapRegion(0x8000_0000n, 0x2_0000n, 'normal', {contiguous: true})
    const l3 = machine.tablePages(machine.walkTables())
    const table = [...l3].find(([, level]) => level === 3)![0] * 4096
    // the L3 table hung in the block run too (L2[3]), its first run broken (L3[5] without the bit)
    const l2 = [...l3].find(([, level]) => level === 2)![0] * 4096
    machine.memory.writeU64(BigInt(l2) + 8n * 3n, tableDescriptor(BigInt(table)))
    machine.memory.writeU64(BigInt(table) + 8n * 5n, machine.memory.readU64(BigInt(table) + 8n * 5n) & ~CONTIGUOUS)
    const ram = {base: machine.memory.base, size: machine.memory.size}
    const checker = new TableChecker(mapper.geometry, ram)
    machine.visitTables((c) => checker.visit(c))
    const check = checker.finish()
    expect(check).toEqual(referenceCheck(machine.walkTables(), mapper.geometry, ram))
    expect(check.damage.map((d) => [d.kind, d.level, d.index])).toEqual([
      ['aliased', 2, 0],
      ['contiguous', 2, 0],
      ['contiguous', 3, 0],
    ])
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
