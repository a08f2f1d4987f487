/** Shared fixtures for the core tests (not a test file itself: vitest only collects *.test.ts). */
import {expect} from 'vitest'

import type {ErrorKind, HvmemError} from '../../src/core/errors.js'
import {DEFAULT_HEAP_BASE, DEFAULT_HEAP_SIZE, DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE, type HeapStatus} from '../../src/core/heap.js'
import {Machine} from '../../src/core/machine.js'
import type {IdentityMapper, MapperOptions, MapperState} from '../../src/core/mapper.js'
import {STAGE2} from '../../src/core/stage2.js'
import {type WalkEntry, walkEntries} from '../../src/core/walker.js'
import {expectHvmemError} from '../expect-error.js'

export {expectHvmemError}

export const PAGE = 0x1000n
export const BLOCK = 0x20_0000n
export const GIB = 0x4000_0000n

/** A machine with the plan's layout: 1 GiB of RAM at 0x4000_0000, a 16 MiB heap at 0x4100_0000. */
export function defaultMachine(): Machine {
  return Machine.create({ramBase: DEFAULT_RAM_BASE, ramSize: DEFAULT_RAM_SIZE, heapBase: DEFAULT_HEAP_BASE, heapSize: DEFAULT_HEAP_SIZE})
}

/** The default RAM with a heap of only `pages` pages at 0x4100_0000. */
export function smallHeapMachine(pages: number): Machine {
  return Machine.create({ramBase: DEFAULT_RAM_BASE, ramSize: DEFAULT_RAM_SIZE, heapBase: DEFAULT_HEAP_BASE, heapSize: BigInt(pages) * PAGE})
}

/** A default machine whose mapper exists (its root is the first heap page, 0x4100_0000). */
export function mappedMachine(options: MapperOptions = {}): {machine: Machine; mapper: IdentityMapper} {
  const machine = defaultMachine()
  return {machine, mapper: machine.ensureMapper(options).mapper}
}

/** Everything a failed operation must leave alone: heap state, mapper state and every non-zero page, copied. */
export interface MachineCapture {
  heap: HeapStatus
  mapper: MapperState | undefined
  pages: Array<[bigint, string]>
}

export function capture(machine: Machine): MachineCapture {
  return {
    heap: machine.heap.status(),
    mapper: machine.mapper === undefined ? undefined : {...machine.mapper.state},
    pages: machine.memory.nonZeroPages().map(([address, page]) => [address, Buffer.from(page).toString('hex')]),
  }
}

/** Asserts that `fn` throws `kind` and that the machine is byte-identical afterwards. */
export function expectUnchangedAfterError(machine: Machine, fn: () => unknown, kind: ErrorKind, message?: string | RegExp): HvmemError {
  const before = capture(machine)
  const error = expectHvmemError(fn, kind, message)
  expect(capture(machine)).toEqual(before)
  return error
}

export {walkEntries}

/** The level-2 walk entries (2 MiB blocks) under a mapper's root, in IPA order. */
export function l2Leaves(machine: Machine, mapper: IdentityMapper): WalkEntry[] {
  return walkEntries(machine.memory, STAGE2, mapper.root, mapper.geometry).filter((e) => e.level === 2)
}

/** The raw L2 descriptor translating `ipa`, or undefined when the walk finds none. */
export function l2DescriptorAt(machine: Machine, mapper: IdentityMapper, ipa: bigint): bigint | undefined {
  return l2Leaves(machine, mapper).find((e) => e.ipa === ipa)?.decoded.raw
}
