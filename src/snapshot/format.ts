/**
 * The snapshot file format, version 1. All integers little-endian.
 *
 *   offset  size  field
 *        0     8  magic "HVMEMSNP"
 *        8     4  format version (1)
 *       12     4  header length (128)
 *       16     8  RAM base                24     8  RAM size
 *       32     8  heap start              40     8  heap size
 *       48     8  heap next               56     8  heap allocated bytes
 *       64     1  mapper present (0 or 1) 65     1  regime (1 = stage 2, 2 = stage 1 EL2)
 *       66     2  VMID                    68     4  L2-table budget
 *       72     8  mapper root table       80     8  page count N
 *       88    40  reserved, zero
 *      128   8N  physical address of each stored page, strictly ascending
 *  128+8N 4096N  the pages' bytes, in the same order (only pages holding a non-zero byte)
 *      end     4  CRC-32 (zlib) of every byte before it
 */
import {crc32} from 'node:zlib'

import {REGIME_NAMES, type RegimeName} from '../core/descriptor.js'
import {HvmemError} from '../core/errors.js'
import {Machine, type MachineState} from '../core/machine.js'
import {PAGE_BYTES, PhysicalMemory} from '../core/memory.js'
import {hex} from '../core/u64.js'

export const MAGIC = Buffer.from('HVMEMSNP', 'latin1')
export const FORMAT_VERSION = 1
export const HEADER_BYTES = 128
const CRC_BYTES = 4
const REGIME_CODE: Record<RegimeName, number> = {stage2: 1, stage1: 2}
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES)

export function encodeSnapshot(machine: Machine): Buffer {
  const state = machine.state()
  const pages = machine.memory.nonZeroPages()
  const n = pages.length
  const out = Buffer.alloc(HEADER_BYTES + n * (8 + PAGE_BYTES) + CRC_BYTES)
  MAGIC.copy(out, 0)
  out.writeUInt32LE(FORMAT_VERSION, 8)
  out.writeUInt32LE(HEADER_BYTES, 12)
  out.writeBigUInt64LE(state.ram.base, 16)
  out.writeBigUInt64LE(state.ram.size, 24)
  out.writeBigUInt64LE(state.heap.start, 32)
  out.writeBigUInt64LE(state.heap.size, 40)
  out.writeBigUInt64LE(state.heap.next, 48)
  out.writeBigUInt64LE(state.heap.allocated, 56)
  const mapper = state.mapper
  if (mapper !== undefined) {
    out.writeUInt8(1, 64)
    out.writeUInt8(REGIME_CODE[mapper.regime], 65)
    out.writeUInt16LE(mapper.vmid, 66)
    out.writeUInt32LE(mapper.l2Budget, 68)
    out.writeBigUInt64LE(mapper.root, 72)
  }
  out.writeBigUInt64LE(BigInt(n), 80)
  const dataStart = HEADER_BYTES + 8 * n
  pages.forEach(([address, bytes], i) => {
    out.writeBigUInt64LE(address, HEADER_BYTES + 8 * i)
    out.set(bytes, dataStart + i * PAGE_BYTES)
  })
  out.writeUInt32LE(crc32(out.subarray(0, out.length - CRC_BYTES)), out.length - CRC_BYTES)
  return out
}

/** Parses and checks a snapshot; anything wrong is a 'snapshot-invalid' error naming the problem. */
export function decodeSnapshot(data: Buffer, name: string): Machine {
  const bad = (why: string): never => {
    throw new HvmemError('snapshot-invalid', `${name} is not a valid hvmem snapshot: ${why}`)
  }
  if (data.length < MAGIC.length || !data.subarray(0, MAGIC.length).equals(MAGIC)) bad('wrong magic (not a snapshot, or damaged)')
  if (data.length < HEADER_BYTES + CRC_BYTES) bad(`truncated (${data.length} bytes, a header alone needs ${HEADER_BYTES + CRC_BYTES})`)
  const version = data.readUInt32LE(8)
  if (version > FORMAT_VERSION) {
    throw new HvmemError('snapshot-invalid', `${name} has snapshot format version ${version}, newer than this hvmem reads (version ${FORMAT_VERSION}); upgrade hvmem`)
  }
  if (version !== FORMAT_VERSION) bad(`unknown format version ${version}`)
  if (data.readUInt32LE(12) !== HEADER_BYTES) bad(`header length ${data.readUInt32LE(12)}, expected ${HEADER_BYTES}`)
  const count = data.readBigUInt64LE(80)
  const expected = BigInt(HEADER_BYTES + CRC_BYTES) + count * BigInt(8 + PAGE_BYTES)
  if (expected !== BigInt(data.length)) bad(`${data.length} bytes where the header's ${count} pages need ${expected} (truncated or damaged)`)
  const stored = data.readUInt32LE(data.length - CRC_BYTES)
  const actual = crc32(data.subarray(0, data.length - CRC_BYTES))
  if (stored !== actual) bad(`checksum mismatch (stored ${hex(BigInt(stored), 8)}, computed ${hex(BigInt(actual), 8)}): the file is damaged`)
  if (!data.subarray(88, HEADER_BYTES).every((b) => b === 0)) bad('reserved header bytes are not zero')

  const hasMapper = data.readUInt8(64)
  if (hasMapper > 1) bad(`mapper flag ${hasMapper}`)
  const regime = REGIME_NAMES.find((r) => REGIME_CODE[r] === data.readUInt8(65))
  if (hasMapper === 1 && regime === undefined) bad(`unknown regime ${data.readUInt8(65)}`)
  if (hasMapper === 0 && !data.subarray(65, 80).every((b) => b === 0)) bad('mapper fields set without a mapper')
  const state: MachineState = {
    ram: {base: data.readBigUInt64LE(16), size: data.readBigUInt64LE(24)},
    heap: {start: data.readBigUInt64LE(32), size: data.readBigUInt64LE(40), next: data.readBigUInt64LE(48), allocated: data.readBigUInt64LE(56)},
    mapper: hasMapper === 1 ? {regime: regime!, vmid: data.readUInt16LE(66), l2Budget: data.readUInt32LE(68), root: data.readBigUInt64LE(72)} : undefined,
  }

  return asInvalid(name, () => {
    const memory = new PhysicalMemory(state.ram.base, state.ram.size)
    const n = Number(count)
    const dataStart = HEADER_BYTES + 8 * n
    let previous = -1n
    for (let i = 0; i < n; i++) {
      const address = data.readBigUInt64LE(HEADER_BYTES + 8 * i)
      if (address <= previous) bad(`page addresses out of order at entry ${i} (${hex(address)})`)
      previous = address
      const page = data.subarray(dataStart + i * PAGE_BYTES, dataStart + (i + 1) * PAGE_BYTES)
      if (page.equals(ZERO_PAGE)) bad(`page ${hex(address)} is stored but all zero (only non-zero pages are stored)`)
      memory.loadPage(address, page)
    }
    return Machine.restore(state, memory)
  })
}

/** Reports a core error raised while rebuilding the machine as an invalid snapshot, naming the file. */
function asInvalid<T>(name: string, build: () => T): T {
  try {
    return build()
  } catch (error) {
    if (error instanceof HvmemError && !error.message.startsWith(name)) {
      throw new HvmemError('snapshot-invalid', `${name} is not a valid hvmem snapshot: ${error.message}`)
    }
    throw error
  }
}
