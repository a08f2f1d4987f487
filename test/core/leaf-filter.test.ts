import {describe, expect, it} from 'vitest'

import {describeFilter, parsePerm, walkFilteredRanges} from '../../src/core/leaf-filter.js'
import {type LeafFilter} from '../../src/core/leaf-filter.js'
import {GIB, PAGE, expectHvmemError, mappedMachine} from './helpers.js'

/** 0x0900_0000 Device page; 0x4000_0000 Normal pages, 0x4000_2000 read-only; 0x8000_0000 1 GiB Normal block. */
function tree(regime: 'stage2' | 'stage1') {
  const {machine, mapper} = mappedMachine({regime, l2Budget: 8})
  mapper.mapRegion(0x0900_0000n, PAGE, 'device')
  mapper.mapRegion(0x4000_0000n, 4n * PAGE, 'normal', {granularity: 'page'})
  mapper.protect(0x4000_2000n, PAGE, {perm: 'r'})
  mapper.mapRegion(0x8000_0000n, GIB, 'normal')
  const ranges = (filter: LeafFilter): string[] =>
    walkFilteredRanges(machine.memory, mapper.regime, mapper.root, mapper.geometry, filter).ranges.map((r) => `${r.start.toString(16)}-${r.end.toString(16)}>${r.outputStart.toString(16)} L${r.level}`)
  return ranges
}

describe('leaf filters', () => {
  it.each(['stage2', 'stage1'] as const)('%s: each condition, combined, and cut to --range', (regime) => {
    const ranges = tree(regime)
    expect(ranges({})).toEqual(['9000000-9001000>9000000 L3', '40000000-40002000>40000000 L3', '40002000-40003000>40002000 L3', '40003000-40004000>40003000 L3', '80000000-c0000000>80000000 L1'])
    expect(ranges({perm: parsePerm('w')})).toEqual(['9000000-9001000>9000000 L3', '40000000-40002000>40000000 L3', '40003000-40004000>40003000 L3', '80000000-c0000000>80000000 L1'])
    expect(ranges({mem: 'device'})).toEqual(['9000000-9001000>9000000 L3'])
    expect(ranges({mem: 'normal', exec: false})).toEqual(['40002000-40003000>40002000 L3']) // protect --perm r: read-only, execute-never
    // Device memory is execute-never in both regimes' presets
    expect(ranges({exec: true, perm: parsePerm('rw')})).toEqual(['40000000-40002000>40000000 L3', '40003000-40004000>40003000 L3', '80000000-c0000000>80000000 L1'])
    expect(ranges({level: 1})).toEqual(['80000000-c0000000>80000000 L1'])
    expect(ranges({range: {start: 0x4000_1800n, end: 0x8000_1000n}, perm: parsePerm('w')})).toEqual(['40001800-40002000>40001800 L3', '40003000-40004000>40003000 L3', '80000000-80001000>80000000 L1'])
    expect(ranges({range: {start: 0x1_0000_0000n, end: 0x2_0000_0000n}})).toEqual([])
  })

  it('parses and describes', () => {
    expect(describeFilter({perm: parsePerm('rw'), exec: false, mem: 'device', range: {start: 0n, end: 0x1000n}, level: 3})).toBe('allowing rw, execute-never, Device, in 0x0-0x1000, at level 3')
    expectHvmemError(() => parsePerm('rwq'), 'input', 'permission "rwq" is not one or more of r, w and x (e.g. w, rw, rx)')
    expectHvmemError(() => parsePerm('ww'), 'input', /is not one or more/)
  })
})
