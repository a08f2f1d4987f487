import {crc32} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import {Machine, type RecordedRegister} from '../../src/core/machine.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {META_CRC_OFFSET, PLAIN_FORMAT_VERSION, REGISTER_RECORD_BYTES, bufferSource, decodeSnapshot, decodeSource, encodeSnapshot} from '../../src/snapshot/format.js'
import {declaredSnapshotSize} from '../../src/snapshot/declared-size.js'
import {RAM_BASE, RAM_SIZE, expectHvmemError, newMachine} from './fixtures.js'

const NAME = 'v4.snap'
const REGISTERS: RecordedRegister[] = [
  {name: 'CPSR', value: 0x8040_0005n},
  {name: 'TTBR1_EL1', value: 0x4185_8001n},
  {name: 'TCR_EL1', value: 0x0150_01f5_b550_3510n},
  {name: 'SCTLR_EL1', value: 0x0200_0001_8fc7_791dn},
]

/** A captured snapshot: RAM with one page of data, no heap, the registers recorded. */
function captured(registers: RecordedRegister[] = REGISTERS): Machine {
  const memory = new PhysicalMemory(RAM_BASE, RAM_SIZE)
  memory.write(RAM_BASE + 0x1_0000n, 8, 0x1122_3344_5566_7788n)
  return Machine.restore({ram: {base: RAM_BASE, size: RAM_SIZE}, heap: {start: RAM_BASE, size: 0n, next: RAM_BASE, allocated: 0n}, mapper: undefined, registers}, memory)
}

describe('snapshot format version 4: recorded registers and no heap', () => {
  it('writes the registers after the pages, counted at bytes 94..95 and covered by the header CRC, and reads them back whole and lazily', () => {
    const data = encodeSnapshot(captured())
    expect(data.readUInt32LE(8)).toBe(4)
    expect(data.readUInt16LE(94)).toBe(4)
    expect(data.length).toBe(128 + 4112 + 4 * REGISTER_RECORD_BYTES)
    expect(declaredSnapshotSize(data.subarray(0, 128))?.size).toBe(BigInt(data.length))
    const records = data.subarray(data.length - 4 * REGISTER_RECORD_BYTES)
    expect(records.subarray(24, 40).toString('latin1')).toBe('TTBR1_EL1\0\0\0\0\0\0\0')
    expect(records.readBigUInt64LE(40)).toBe(0x4185_8001n)
    expect(data.readUInt32LE(META_CRC_OFFSET)).toBe(crc32(records, crc32(data.subarray(128, 144), crc32(data.subarray(0, META_CRC_OFFSET)))))
    for (const machine of [decodeSnapshot(data, NAME), decodeSource(bufferSource(data), NAME, 'lazy').machine]) {
      expect(machine.registers).toEqual(REGISTERS)
      expect(machine.register('TCR_EL1')).toBe(0x0150_01f5_b550_3510n)
      expect(machine.heap.present).toBe(false)
      expect(machine.memory.read(RAM_BASE + 0x1_0000n, 8)).toBe(0x1122_3344_5566_7788n)
      expect(encodeSnapshot(machine).equals(data)).toBe(true)
    }
  })

  it('a snapshot with a heap and no registers is still written as version 3, which older hvmem reads', () => {
    const data = encodeSnapshot(newMachine())
    expect(data.readUInt32LE(8)).toBe(PLAIN_FORMAT_VERSION)
    expect(decodeSnapshot(data, NAME).registers).toEqual([])
  })

  it('no heap alone makes version 4 (no records); allocating there says there is no heap', () => {
    const data = encodeSnapshot(captured([]))
    expect(data.readUInt32LE(8)).toBe(4)
    expect(data.length).toBe(128 + 4112)
    const machine = decodeSnapshot(data, NAME)
    expectHvmemError(() => machine.heap.allocPage(), 'heap-exhausted', /^the snapshot has no heap \(its RAM is a whole memory image\)/)
    expectHvmemError(() => machine.ensureMapper(), 'heap-exhausted', 'no heap')
  })

  it('refuses a damaged register record, a truncated file, a version-3 file without a heap, and malformed names', () => {
    const data = encodeSnapshot(captured())
    const flipped = Buffer.from(data)
    flipped[flipped.length - 1]! ^= 1
    expectHvmemError(() => decodeSnapshot(flipped, NAME), 'snapshot-invalid', 'header or page index checksum mismatch')
    expectHvmemError(() => decodeSnapshot(data.subarray(0, data.length - 24), NAME), 'snapshot-invalid', 'pages and 4 registers need')
    const noHeap = encodeSnapshot(captured([]))
    const asV3 = Buffer.from(noHeap)
    asV3.writeUInt32LE(3, 8)
    asV3.writeUInt32LE(crc32(asV3.subarray(128, 144), crc32(asV3.subarray(0, META_CRC_OFFSET))), META_CRC_OFFSET)
    expectHvmemError(() => decodeSnapshot(asV3, NAME), 'snapshot-invalid', 'heap size 0 (a snapshot without a heap is version 4)')
    expectHvmemError(() => encodeSnapshot(captured([{name: 'ttbr0_el1', value: 0n}])), 'input', 'is not 1 to 16 upper-case letters')
    const badName = Buffer.from(data)
    badName.write('x', data.length - 4 * REGISTER_RECORD_BYTES, 'latin1')
    const records = badName.subarray(data.length - 4 * REGISTER_RECORD_BYTES)
    badName.writeUInt32LE(crc32(records, crc32(badName.subarray(128, 144), crc32(badName.subarray(0, META_CRC_OFFSET)))), META_CRC_OFFSET)
    expectHvmemError(() => decodeSnapshot(badName, NAME), 'snapshot-invalid', 'register record 0 has a malformed name')
  })
})
