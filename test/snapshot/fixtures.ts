/** Shared fixtures for the snapshot tests (not a test file itself: vitest only collects *.test.ts). */
import {crc32} from 'node:zlib'

import {Machine} from '../../src/core/machine.js'

export const RAM_BASE = 0x4000_0000n
export const RAM_SIZE = 1n << 30n
export const HEAP_BASE = 0x4100_0000n
export const HEAP_SIZE = 16n << 20n
export const PAGE = 4096n

export function newMachine(): Machine {
  return Machine.create({ramBase: RAM_BASE, ramSize: RAM_SIZE, heapBase: HEAP_BASE, heapSize: HEAP_SIZE})
}

export {expectHvmemError, expectHvmemRejection} from '../expect-error.js'

/** A copy of `data` changed by `edit`, with the trailing CRC-32 recomputed so only the edit is wrong. */
export function patched(data: Buffer, edit: (copy: Buffer) => void): Buffer {
  const copy = Buffer.from(data)
  edit(copy)
  copy.writeUInt32LE(crc32(copy.subarray(0, copy.length - 4)), copy.length - 4)
  return copy
}
