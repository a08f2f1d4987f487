import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {writeDumpJson} from '../../src/cli/dump-json.js'
import {entryJson, mapperJson, rangeJson} from '../../src/cli/json.js'
import {tableDescriptor} from '../../src/core/descriptor.js'
import type {IdentityMapper} from '../../src/core/mapper.js'
import type {Machine} from '../../src/core/machine.js'
import {mergeRanges} from '../../src/core/walker.js'
import {mappedMachine, walkEntries} from '../core/helpers.js'

/** The document as `dump tables --json` built it before: objects, stringified whole. */
function reference(machine: Machine, mapper: IdentityMapper): string {
  const entries = walkEntries(machine.memory, mapper.regime, mapper.root, mapper.geometry)
  return `${JSON.stringify({mapper: mapperJson(mapper), entries: entries.map(entryJson), ranges: mergeRanges(entries).map(rangeJson)}, null, 2)}\n`
}

/** The streamed document: `write` copies each chunk and says it may be reused, or keeps the chunk itself. */
function streamed(machine: Machine, mapper: IdentityMapper, reuse = true): string {
  const parts: Uint8Array[] = []
  writeDumpJson(mapper, machine.memory, (bytes) => {
    parts.push(reuse ? Buffer.from(bytes) : bytes)
    return reuse
  })
  return Buffer.concat(parts).toString('utf8')
}

const descriptor = fc.oneof(
  fc.constantFrom(0x4100_1000n, 0x4100_2000n, 0x9_0000_0000n, 0x4100_0000n).map((t) => tableDescriptor(t)),
  fc.constantFrom(0x7fdn, 0x7ffn, 0x0040_0000_0000_07c5n, 0x77dn, 0x405n, 0x487n, 0x7fcn).chain((bits) => fc.bigInt({min: 0n, max: (1n << 36n) - 1n}).map((frame) => (frame << 12n) | bits)),
  fc.bigInt({min: 0n, max: (1n << 64n) - 1n}),
)

describe('dump tables --json, written as produced', () => {
  it('is byte for byte JSON.stringify of the document, for random tables in both regimes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('stage2' as const, 'stage1' as const),
        fc.array(fc.tuple(fc.constantFrom(0x4100_0000n, 0x4100_1000n, 0x4100_2000n), fc.integer({min: 0, max: 511}), descriptor), {maxLength: 20}),
        (regime, writes) => {
          const {machine, mapper} = mappedMachine({regime})
          for (const [table, index, value] of writes) machine.memory.writeU64(table + 8n * BigInt(index), value)
          expect(streamed(machine, mapper)).toBe(reference(machine, mapper))
        },
      ),
      {numRuns: 200},
    )
  })

  // A table whose entries take more than the 1 MiB output buffer (one table address for them all)
  it.each([
    ['a concatenated root of 16 tables holding 8,192 blocks', {inputBits: 43}, 0n, 8n << 40n, '1G'],
    ['a 64K-granule table of 8,192 pages', {granule: 65536}, 0x4000_0000n, 512n << 20n, 'page'],
  ] as const)('is the same for %s (4 MB of entries through a reused buffer)', (_, options, start, size, granularity) => {
    const {machine, mapper} = mappedMachine(options)
    mapper.mapRegion(start, size, 'normal', {granularity})
    const text = streamed(machine, mapper)
    expect(text.length).toBeGreaterThan(4_000_000)
    expect(text).toBe(reference(machine, mapper))
  })

  // Entries of one kind are written by patching the last one's digits: here halves of 2^31 and more
  // (bit 63 set; outputs from below 512 GiB to above it: the low half goes from 2^31 and more to less).
  it('is the same for a table of pages whose descriptor halves reach 2^31 and cross 2^32 boundaries', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 0x20_0000n, 'normal', {granularity: 'page'})
    const table = walkEntries(machine.memory, mapper.regime, mapper.root, mapper.geometry).find((e) => e.level === 3)!.table
    for (let i = 0n; i < 512n; i++) machine.memory.writeU64(table + 8n * i, (1n << 63n) | ((0x7_ffff_00n + i) << 12n) | 0x7ffn)
    const text = streamed(machine, mapper)
    expect(text).toContain('"descriptor": "0x80000080000007ff"')
    expect(text).toBe(reference(machine, mapper))
  })

  // An entry that goes on from the one before it is that one's text counted on digit by digit: here
  // digits that grow inside runs (addresses from 0: 0xf000 to 0x10000, 0xe00000 to 0x1000000; indexes
  // 9 to 10, 99 to 100), and a low word that carries, whose next entry's words look like a run's
  // (the same high word) but whose addresses go back 4 GiB.
  it('is the same where digits grow inside a run, and where a run would carry into the high word', () => {
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0n, 0x20_0000n, 'normal', {granularity: 'page'})
    mapper.mapRegion(0x20_0000n, 0x3fe0_0000n, 'normal', {granularity: '2M'})
    mapper.mapRegion(0x4000_0000n, 0x20_0000n, 'normal', {granularity: '2M'})
    const l2 = walkEntries(machine.memory, mapper.regime, mapper.root, mapper.geometry).find((e) => e.level === 2 && e.ipa === 0x4000_0000n)!.table
    machine.memory.writeU64(l2, (1n << 32n) | 0xffe0_07fdn)
    machine.memory.writeU64(l2 + 8n, (1n << 32n) | 0x7fdn)
    const text = streamed(machine, mapper)
    expect(text).toContain('"outputAddress": "0x1000000"')
    expect(text).toContain('"descriptor": "0x1000007fd"')
    expect(text).toBe(reference(machine, mapper))
  })

  it('is the same for a mapper with no entries, and for 1 GiB of pages', () => {
    const empty = mappedMachine()
    expect(streamed(empty.machine, empty.mapper)).toBe(reference(empty.machine, empty.mapper))
    const {machine, mapper} = mappedMachine()
    mapper.mapRegion(0x4000_0000n, 1n << 30n, 'normal', {granularity: 'page'})
    mapper.mapRegion(0x0900_0000n, 0x1000n, 'device')
    mapper.protect(0x4000_0000n, 0x20_0000n, {perm: 'r'})
    const text = streamed(machine, mapper)
    expect(text.length).toBeGreaterThan(100_000_000)
    expect(text).toBe(reference(machine, mapper))
    expect(streamed(machine, mapper, false)).toBe(text)
  })
})
