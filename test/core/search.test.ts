import {describe, expect, it} from 'vitest'

import {PhysicalMemory} from '../../src/core/memory.js'
import {parseHexBytes} from '../../src/cli/numbers.js'
import {OutputIndex, searchMemory, u64Bytes} from '../../src/core/search.js'
import {expectHvmemError} from './helpers.js'

const find = (memory: PhysicalMemory, pattern: string, from = memory.base, to = memory.end): bigint[] => [...searchMemory(memory, parseHexBytes(pattern), from, to)]

describe('searchMemory', () => {
  const memory = new PhysicalMemory(0x4000_0000n, 0x10_0000n)
  memory.writeBytes(0x4000_0ffcn, Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x11, 0x22])) // across a page boundary
  memory.writeBytes(0x4000_5ffen, Uint8Array.from([0xaa, 0xbb])) // at a page's end, zeros after
  memory.writeBytes(0x4000_8000n, Uint8Array.from([0xcc, 0xdd])) // at a page's start, zeros before
  memory.writeBytes(0x4000_9010n, Uint8Array.from([0xde, 0xad, 0xde, 0xad, 0xde, 0xad])) // overlapping hits
  memory.writeBytes(0x4000_0000n, Uint8Array.from([0xaa, 0xbb])) // at RAM's start

  it('finds hits within a page, across page boundaries and running into untouched memory, once each', () => {
    expect(find(memory, 'deadbeef1122')).toEqual([0x4000_0ffcn])
    expect(find(memory, 'ad be ef 11')).toEqual([0x4000_0ffdn])
    expect(find(memory, 'aabb00000000')).toEqual([0x4000_0000n, 0x4000_5ffen])
    expect(find(memory, '000000ccdd')).toEqual([0x4000_7ffdn])
    expect(find(memory, 'dead')).toEqual([0x4000_0ffcn, 0x4000_9010n, 0x4000_9012n, 0x4000_9014n])
    expect(find(memory, 'deaddead')).toEqual([0x4000_9010n, 0x4000_9012n])
    expect(find(memory, '99')).toEqual([])
  })

  it('keeps to [from, to): hits wholly inside only; nothing before RAM', () => {
    expect(find(memory, 'dead', 0x4000_9011n, 0x4000_9016n)).toEqual([0x4000_9012n, 0x4000_9014n])
    expect(find(memory, 'dead', 0x4000_9011n, 0x4000_9015n)).toEqual([0x4000_9012n])
    expect(find(memory, '0000aabb')).toEqual([0x4000_5ffcn]) // not at 0x3fff_fffe, outside RAM
  })

  it('refuses empty, all-zero and malformed patterns', () => {
    expectHvmemError(() => [...searchMemory(memory, new Uint8Array(4), memory.base, memory.end)], 'input', 'PATTERN is all zero bytes, which all untouched memory matches; search for something else')
    expectHvmemError(() => parseHexBytes('abc'), 'input', /is not hex bytes/)
    expectHvmemError(() => parseHexBytes('zz'), 'input', /is not hex bytes/)
    expect([...parseHexBytes('0xde:ad be_ef')]).toEqual([0xde, 0xad, 0xbe, 0xef])
    expect([...u64Bytes(0x1122_3344_5566_7788n)]).toEqual([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
  })
})

describe('OutputIndex', () => {
  it('gives every input address that maps a physical address, aliases included', () => {
    const index = new OutputIndex([
      {start: 0x4000_0000n, end: 0x8000_0000n, outputStart: 0x4000_0000n}, // 1 GiB identity
      {start: 0xc000_0000n, end: 0xc000_1000n, outputStart: 0x4000_0000n}, // an alias of its first page
      {start: 0x1000n, end: 0x3000n, outputStart: 0x9000_0000n},
    ])
    expect(index.inputsOf(0x4000_0010n)).toEqual([0x4000_0010n, 0xc000_0010n])
    expect(index.inputsOf(0x4000_1000n)).toEqual([0x4000_1000n])
    expect(index.inputsOf(0x7fff_ffffn)).toEqual([0x7fff_ffffn])
    expect(index.inputsOf(0x8000_0000n)).toEqual([])
    expect(index.inputsOf(0x9000_1fffn)).toEqual([0x2fffn])
    expect(index.inputsOf(0x3fff_ffffn)).toEqual([])
  })
})
