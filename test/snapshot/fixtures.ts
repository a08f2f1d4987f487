/** Shared fixtures for the snapshot tests (not a test file itself: vitest only collects *.test.ts). */
import {crc32} from 'node:zlib'

import {Machine} from '../../src/core/machine.js'
import {HEADER_BYTES, INDEX_ENTRY_BYTES, META_CRC_OFFSET} from '../../src/snapshot/format.js'

export const RAM_BASE = 0x4000_0000n
export const RAM_SIZE = 1n << 30n
export const HEAP_BASE = 0x4100_0000n
export const HEAP_SIZE = 16n << 20n
export const PAGE = 4096n
const PAGE_BYTES = 4096

export function newMachine(): Machine {
  return Machine.create({ramBase: RAM_BASE, ramSize: RAM_SIZE, heapBase: HEAP_BASE, heapSize: HEAP_SIZE})
}

export {expectHvmemError, expectHvmemRejection} from '../expect-error.js'

/** Pages in a version-2 file (the page count at offset 80). */
export function pageCount(data: Buffer): number {
  return Number(data.readBigUInt64LE(80))
}

/** Offset of the first page's data in a version-2 file. */
export function dataStart(data: Buffer): number {
  return HEADER_BYTES + INDEX_ENTRY_BYTES * pageCount(data)
}

/**
 * A copy of a version-2 file changed by `edit`, with every checksum recomputed (each page's, then the
 * header-and-index one) so only the edit is wrong. The page count must still describe the layout.
 */
export function patched(data: Buffer, edit: (copy: Buffer) => void): Buffer {
  const copy = Buffer.from(data)
  edit(copy)
  // as many pages as the file can hold, whatever the (possibly edited) count says
  const n = Math.min(pageCount(copy), Math.max(0, Math.floor((copy.length - HEADER_BYTES) / (INDEX_ENTRY_BYTES + PAGE_BYTES))))
  const start = HEADER_BYTES + INDEX_ENTRY_BYTES * n
  for (let i = 0; i < n; i++) {
    const page = copy.subarray(start + i * PAGE_BYTES, start + (i + 1) * PAGE_BYTES)
    if (page.length === PAGE_BYTES) copy.writeUInt32LE(crc32(page), HEADER_BYTES + INDEX_ENTRY_BYTES * i + 8)
  }
  const crc = crc32(copy.subarray(HEADER_BYTES, start), crc32(copy.subarray(0, META_CRC_OFFSET)))
  copy.writeUInt32LE(crc, META_CRC_OFFSET)
  return copy
}

/** A copy of a version-1 file changed by `edit`, with the trailing CRC-32 recomputed so only the edit is wrong. */
export function patchedV1(data: Buffer, edit: (copy: Buffer) => void): Buffer {
  const copy = Buffer.from(data)
  edit(copy)
  copy.writeUInt32LE(crc32(copy.subarray(0, copy.length - 4)), copy.length - 4)
  return copy
}

/**
 * The version-1 writer of hvmem 0.1 (src/snapshot/format.ts before format version 2), kept to make
 * version-1 files for the compatibility tests: header, N page addresses, N pages, CRC-32 of it all.
 */
export function encodeV1(machine: Machine): Buffer {
  const state = machine.state()
  const pages = machine.memory.nonZeroPages()
  const n = pages.length
  const out = Buffer.alloc(128 + n * (8 + PAGE_BYTES) + 4)
  out.write('HVMEMSNP', 0, 'latin1')
  out.writeUInt32LE(1, 8)
  out.writeUInt32LE(128, 12)
  out.writeBigUInt64LE(state.ram.base, 16)
  out.writeBigUInt64LE(state.ram.size, 24)
  out.writeBigUInt64LE(state.heap.start, 32)
  out.writeBigUInt64LE(state.heap.size, 40)
  out.writeBigUInt64LE(state.heap.next, 48)
  out.writeBigUInt64LE(state.heap.allocated, 56)
  const mapper = state.mapper
  if (mapper !== undefined) {
    out.writeUInt8(1, 64)
    out.writeUInt8(mapper.regime === 'stage2' ? 1 : 2, 65)
    out.writeUInt16LE(mapper.vmid, 66)
    out.writeUInt32LE(mapper.l2Budget, 68)
    out.writeBigUInt64LE(mapper.root, 72)
  }
  out.writeBigUInt64LE(BigInt(n), 80)
  const start = 128 + 8 * n
  pages.forEach(([address, bytes], i) => {
    out.writeBigUInt64LE(address, 128 + 8 * i)
    out.set(bytes, start + i * PAGE_BYTES)
  })
  out.writeUInt32LE(crc32(out.subarray(0, out.length - 4)), out.length - 4)
  return out
}

/**
 * A version-1 file written by hvmem 0.1 itself (not by encodeV1): the default layout, a stage-2
 * mapper (VMID 3, budget 2, root 0x41000000, not yet written so no pages), heap next 0x4100100a,
 * 4106 bytes allocated. 132 bytes.
 */
export const V1_GOLDEN_HEX =
  '48564d454d534e50010000008000000000000040000000000000004000000000000000410000000000000001000000000a100041000000000a1000000000000001010300020000000000004100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000d773ea4e'

/** SHA-256 of the one-page version-1 file hvmem 0.1 wrote for the machine of `onePageMachine()` in format.test.ts (4236 bytes). */
export const V1_ONE_PAGE_SHA256 = 'c2c541d3d1acd404f15d46702106fd66d86ea3b9fdfd4df165db5501b5150247'
