/**
 * Self-test of the QEMU conformance runner: translation tables built by hvmem's core (stage 2) and
 * by hand (stage 1, EL2 regime) are walked by QEMU's Arm MMU model through AT, and the PAR_EL1
 * values it reports are checked exactly. PAR_EL1 layout: the Arm ARM's PAR_EL1 register description (F/FST/S/PTW
 * on a fault; PA, SH, ATTR on success).
 * Skipped when qemu-system-aarch64 or the aarch64 binutils are not installed.
 */
import {describe, expect, it} from 'vitest'

import {Machine} from '../../src/core/machine.js'
import {PhysicalMemory} from '../../src/core/memory.js'
import {vtcrFor, vttbrFor} from '../../src/core/registers.js'
import {CPU_PA_BITS, PROGRAM_RANGE, type Probe, type QemuJob, UART_RANGE, buildProbeProgram, paramBlock, qemuAvailable, runQemu} from './qemu.js'

const RAM_BASE = 0x4000_0000n
const HEAP_BASE = 0x4100_0000n
const BLOCK = 0x20_0000n
const PA_MASK = 0x0000_ffff_ffff_f000n

const hex = (value: bigint): string => `0x${value.toString(16).padStart(16, '0')}`

/** A successful PAR: ATTR in 63:56, PA[47:12], the low bits (NS bit 9, SH 8:7, bit 11) as QEMU sets them. */
const okPar = (attr: bigint, address: bigint, low: bigint): bigint => (attr << 56n) | (address & PA_MASK) | low

/**
 * A fault PAR: F (bit 0), FST (6:1), S (bit 9: stage 2), and bit 11, which QEMU sets (RES1).
 * fst: 0b0000LL address size, 0b0001LL translation, 0b0010LL access flag, 0b0011LL permission.
 */
const faultPar = (fst: number, stage2: boolean): bigint => (1n << 11n) | (stage2 ? 1n << 9n : 0n) | (BigInt(fst) << 1n) | 1n
const FST = {addressSize: (l: number) => l, translation: (l: number) => 0b0100 | l, accessFlag: (l: number) => 0b1000 | l, permission: (l: number) => 0b1100 | l}

interface Case {
  what: string
  probe: Probe
  expected: bigint
}

/** Runs the cases in one QEMU boot, prints every PAR, and checks them all (reporting every mismatch at once). */
async function runCases(job: Omit<QemuJob, 'probes'>, cases: Case[]): Promise<void> {
  const started = performance.now()
  const pars = await runQemu({...job, probes: cases.map((c) => c.probe)})
  const ms = performance.now() - started
  console.log(
    `${job.regime}: ${cases.length} probes in one QEMU run, ${ms.toFixed(0)} ms\n` +
      cases.map((c, i) => `  ${c.probe.write ? 'W' : 'R'} ${hex(c.probe.address)}  PAR ${hex(pars[i]!)}  ${c.what}`).join('\n'),
  )
  expect(cases.map((c, i) => `${c.what}: ${hex(pars[i]!)}`)).toEqual(cases.map((c) => `${c.what}: ${hex(c.expected)}`))
}

const read = (address: bigint): Probe => ({address, write: false})
const write = (address: bigint): Probe => ({address, write: true})

// ---- stage 2: hvmem's IdentityMapper ---------------------------------------------------------

/** hvmem's default layout with a mapper; returns the stage-2 job for its tables (the heap's bytes). */
function stage2Machine(map: (machine: Machine) => void): {machine: Machine; job: () => Omit<QemuJob, 'probes'>} {
  const machine = Machine.create({ramBase: RAM_BASE, ramSize: 1n << 30n, heapBase: HEAP_BASE, heapSize: 16n << 20n})
  map(machine)
  const job = (): Omit<QemuJob, 'probes'> => {
    const mapper = machine.ensureMapper().mapper
    const used = Number(machine.heap.status().next - HEAP_BASE)
    return {
      regime: 'stage2',
      images: [{address: HEAP_BASE, data: machine.memory.readBytes(HEAP_BASE, used)}],
      vttbr: vttbrFor(mapper.root, mapper.state.vmid),
      vtcr: vtcrFor(mapper.state.vmid),
    }
  }
  return {machine, job}
}

// Stage-2 success PARs: bit 11 (QEMU sets it), NS (bit 9), SH (8:7) 0b11 for Normal inner shareable;
// Device is reported outer shareable (0b10), whatever the descriptor's SH.
const S2_NORMAL_LOW = 0xb80n
const S2_DEVICE_LOW = 0xb00n

const NORMAL = 0x4800_0000n
const DEVICE = 0x0900_0000n
const READONLY = 0x4860_0000n
const HIGH_NORMAL = 0x7f_c000_0000n // the last GiB of the 39-bit IPA space

describe.skipIf(!qemuAvailable())('QEMU conformance runner', () => {
  it('builds the EL2 probe program once and reuses it', async () => {
    const started = performance.now()
    const elf = await buildProbeProgram()
    expect(elf).toMatch(/probe\.elf$/)
    expect(await buildProbeProgram()).toBe(elf)
    console.log(`probe program: ${elf} (${(performance.now() - started).toFixed(0)} ms, cached across runs)`)
  })

  it('stage 2: QEMU walks hvmem IdentityMapper tables as the architecture notes say', async () => {
    const {job} = stage2Machine((machine) => {
      const {mapper} = machine.ensureMapper()
      mapper.mapRegion(NORMAL, 2n * BLOCK, 'normal')
      mapper.mapRegion(READONLY, BLOCK, 'readonly')
      mapper.mapRegion(DEVICE, BLOCK, 'device')
      mapper.mapRegion(HIGH_NORMAL, BLOCK, 'normal')
    })
    await runCases(job(), [
      {what: 'normal block, read', probe: read(NORMAL + 0x1234n), expected: okPar(0xffn, NORMAL + 0x1234n, S2_NORMAL_LOW)},
      {what: 'normal block, write', probe: write(NORMAL + 0x3f_f008n), expected: okPar(0xffn, NORMAL + 0x3f_f008n, S2_NORMAL_LOW)},
      {what: 'normal block at the top of the IPA space', probe: write(HIGH_NORMAL + 0x1f_f000n), expected: okPar(0xffn, HIGH_NORMAL + 0x1f_f000n, S2_NORMAL_LOW)},
      {what: 'device block, read', probe: read(DEVICE + 0x18n), expected: okPar(0x04n, DEVICE, S2_DEVICE_LOW)},
      {what: 'device block, write', probe: write(DEVICE + 0x1000n), expected: okPar(0x04n, DEVICE + 0x1000n, S2_DEVICE_LOW)},
      {what: 'readonly block, read', probe: read(READONLY + 0xabcn), expected: okPar(0xffn, READONLY, S2_NORMAL_LOW)},
      {what: 'readonly block, write: permission fault, level 2, stage 2', probe: write(READONLY + 0xabcn), expected: 0xa1dn},
      {what: 'IPA under an empty L1 entry: translation fault, level 1', probe: read(0x8000_0000n), expected: 0xa0bn},
      {what: 'IPA under an empty L2 entry: translation fault, level 2', probe: read(NORMAL + 2n * BLOCK), expected: 0xa0dn},
      {what: 'IPA 2^39 (T0SZ 25): translation fault, level 0', probe: read(1n << 39n), expected: 0xa09n},
      {what: 'IPA 2^40 - 4 KiB: translation fault, level 0', probe: write((1n << 40n) - 0x1000n), expected: 0xa09n},
    ])
    expect(faultPar(FST.permission(2), true)).toBe(0xa1dn)
    expect(faultPar(FST.translation(1), true)).toBe(0xa0bn)
    expect(faultPar(FST.translation(0), true)).toBe(0xa09n)
  })

  it('stage 2: QEMU behaviour around the edges (descriptors written by hand into hvmem tables)', async () => {
    const at = {
      oaTooWide: 0x4a00_0000n,
      noAf: 0x4a20_0000n,
      stage1Normal: 0x4a40_0000n,
      stage1Readonly: 0x4a60_0000n,
      lowBitsSet: 0x4a80_0000n,
      outerWbInnerNc: 0x4aa0_0000n,
      nGnRnE: 0x4ac0_0000n,
      nonShareable: 0x4ae0_0000n,
      outerShareable: 0x4b00_0000n,
      writeOnly: 0x4b20_0000n,
      noAccess: 0x4b40_0000n,
      emptyL3: 0x4b60_0000n,
      l1Block: 0x8000_0000n,
      l1TableTooWide: 0xc000_0000n,
    }
    const {job} = stage2Machine((machine) => {
      const {mapper} = machine.ensureMapper()
      mapper.mapRegion(NORMAL, BLOCK, 'normal') // creates the L2 table for 0x4000_0000-0x7fff_ffff
      const memory = machine.memory
      const l2 = memory.readU64(mapper.root + 8n) & PA_MASK
      const setL2 = (ipa: bigint, descriptor: bigint) => memory.writeU64(l2 + ((ipa >> 21n) & 0x1ffn) * 8n, descriptor)
      setL2(at.oaTooWide, (1n << 40n) | 0x7fdn) // output address past VTCR_EL2.PS (40 bits)
      setL2(at.noAf, at.noAf | 0x3fdn) // normal RW, AF clear
      setL2(at.stage1Normal, at.stage1Normal | 0x405n) // the plan's stage-1 encodings under stage 2
      setL2(at.stage1Readonly, at.stage1Readonly | 0x485n)
      setL2(at.lowBitsSet, at.lowBitsSet | 0x1000n | 0x7fdn) // bit 12 set below the 2 MiB alignment
      setL2(at.outerWbInnerNc, at.outerWbInnerNc | 0x7f5n) // MemAttr 0b1101
      setL2(at.nGnRnE, at.nGnRnE | 0x0040_0000_0000_07c1n) // MemAttr 0b0000
      setL2(at.nonShareable, at.nonShareable | 0x4fdn) // SH 0b00
      setL2(at.outerShareable, at.outerShareable | 0x6fdn) // SH 0b10
      setL2(at.writeOnly, at.writeOnly | 0x7bdn) // S2AP 0b10
      setL2(at.noAccess, at.noAccess | 0x73dn) // S2AP 0b00
      // A table descriptor at level 2 pointing at an all-zero page of the heap (an empty L3 table).
      const [l3] = machine.heap.allocZeroedPages(1)
      setL2(at.emptyL3, l3! | 3n)
      memory.writeU64(mapper.root + 2n * 8n, at.l1Block | 0x7fdn) // a 1 GiB L1 block
      memory.writeU64(mapper.root + 3n * 8n, (1n << 40n) | 3n) // an L1 table descriptor past the PA size
    })
    await runCases(job(), [
      {what: 'block output address >= 2^40 (PS 40 bits): address size fault, level 2', probe: read(at.oaTooWide), expected: faultPar(FST.addressSize(2), true)},
      {what: 'L1 table address >= 2^40: address size fault, level 1', probe: read(at.l1TableTooWide), expected: faultPar(FST.addressSize(1), true)},
      {what: 'AF = 0, read: access flag fault, level 2', probe: read(at.noAf), expected: faultPar(FST.accessFlag(2), true)},
      {what: 'AF = 0, write: access flag fault, level 2', probe: write(at.noAf), expected: faultPar(FST.accessFlag(2), true)},
      {what: 'stage-1 0x405 under stage 2 (S2AP none), read', probe: read(at.stage1Normal), expected: 0xa1dn},
      {what: 'stage-1 0x485 under stage 2 (S2AP write-only), read', probe: read(at.stage1Readonly), expected: 0xa1dn},
      {what: 'stage-1 0x485 under stage 2, write: Device-nGnRE', probe: write(at.stage1Readonly), expected: okPar(0x04n, at.stage1Readonly, S2_DEVICE_LOW)},
      {what: 'bit 12 set in a 2 MiB block: ignored', probe: read(at.lowBitsSet + 0x1_2345n), expected: okPar(0xffn, at.lowBitsSet + 0x1_2345n, S2_NORMAL_LOW)},
      {what: 'MemAttr 0b1101: outer WB, inner NC', probe: read(at.outerWbInnerNc), expected: okPar(0xf4n, at.outerWbInnerNc, S2_NORMAL_LOW)},
      {what: 'MemAttr 0b0000: Device-nGnRnE', probe: read(at.nGnRnE), expected: okPar(0x00n, at.nGnRnE, S2_DEVICE_LOW)},
      {what: 'SH 0b00: non-shareable', probe: read(at.nonShareable), expected: okPar(0xffn, at.nonShareable, 0xa00n)},
      {what: 'SH 0b10: outer shareable', probe: read(at.outerShareable), expected: okPar(0xffn, at.outerShareable, 0xb00n)},
      {what: 'S2AP write-only, read', probe: read(at.writeOnly), expected: faultPar(FST.permission(2), true)},
      {what: 'S2AP write-only, write', probe: write(at.writeOnly), expected: okPar(0xffn, at.writeOnly, S2_NORMAL_LOW)},
      {what: 'S2AP none, write', probe: write(at.noAccess), expected: faultPar(FST.permission(2), true)},
      {what: 'empty L3 table: translation fault, level 3', probe: read(at.emptyL3), expected: faultPar(FST.translation(3), true)},
      {what: '1 GiB L1 block', probe: write(at.l1Block + 0x1234_5000n), expected: okPar(0xffn, at.l1Block + 0x1234_5000n, S2_NORMAL_LOW)},
      // With EL1's MMU off, stage 1 is flat but checks the VA against the CPU's PA size
      // (CPU_PA_BITS, 52 for -cpu max): below it stage 2 decides (T0SZ 25: translation fault,
      // level 0), at or above it a stage-1 (S = 0) address size fault at level 0.
      {what: 'IPA 2^44: translation fault, level 0, stage 2', probe: read(1n << 44n), expected: faultPar(FST.translation(0), true)},
      {what: 'IPA 2^PAMax - 4 KiB: translation fault, level 0, stage 2', probe: write((1n << CPU_PA_BITS) - 0x1000n), expected: faultPar(FST.translation(0), true)},
      {what: 'IPA 2^PAMax: stage-1 address size fault, level 0', probe: read(1n << CPU_PA_BITS), expected: faultPar(FST.addressSize(0), false)},
    ])
  })

  it('stage 2 without HCR_EL2.DC: every success reads as Device-nGnRnE, outer shareable', async () => {
    const {job} = stage2Machine((machine) => {
      machine.ensureMapper().mapper.mapRegion(NORMAL, BLOCK, 'normal')
    })
    await runCases({...job(), hcr: (1n << 0n) | (1n << 31n)}, [
      {what: 'normal block, HCR_EL2 = VM | RW', probe: read(NORMAL), expected: okPar(0x00n, NORMAL, S2_DEVICE_LOW)},
      {what: 'empty L2 entry, HCR_EL2 = VM | RW', probe: read(NORMAL + BLOCK), expected: 0xa0dn},
    ])
  })

  it('stage 2: 5,000 probes in one run match the expected PARs', async () => {
    const {job} = stage2Machine((machine) => {
      const {mapper} = machine.ensureMapper()
      mapper.mapRegion(0x4200_0000n, 8n * BLOCK, 'normal')
      mapper.mapRegion(0x4300_0000n, 4n * BLOCK, 'readonly')
      mapper.mapRegion(0x0800_0000n, 8n * BLOCK, 'device')
    })
    // Probe i goes to region i % 5, at page i / 5 of it (wrapping), with a varying offset in the page,
    // alternately read and written.
    const regions: Array<{kind: string; start: bigint; size: bigint; expect: (va: bigint, isWrite: boolean) => bigint}> = [
      {kind: 'device', start: 0x0800_0000n, size: 8n * BLOCK, expect: (va) => okPar(0x04n, va, S2_DEVICE_LOW)},
      {kind: 'normal', start: 0x4200_0000n, size: 8n * BLOCK, expect: (va) => okPar(0xffn, va, S2_NORMAL_LOW)},
      {kind: 'readonly', start: 0x4300_0000n, size: 4n * BLOCK, expect: (va, isWrite) => (isWrite ? 0xa1dn : okPar(0xffn, va, S2_NORMAL_LOW))},
      {kind: 'empty L2 entry', start: 0x4400_0000n, size: 8n * BLOCK, expect: () => 0xa0dn},
      {kind: 'empty L1 entry', start: 0x8000_0000n, size: 8n * BLOCK, expect: () => 0xa0bn},
    ]
    const cases: Case[] = Array.from({length: 5000}, (_, i) => {
      const region = regions[i % regions.length]!
      const page = BigInt(Math.floor(i / regions.length)) * 0x1000n
      const va = region.start + (page % region.size) + BigInt(i % 512) * 8n
      const isWrite = i % 2 === 1
      return {what: `${region.kind} ${isWrite ? 'W' : 'R'} ${hex(va)}`, probe: {address: va, write: isWrite}, expected: region.expect(va, isWrite)}
    })
    expect(cases).toHaveLength(5000)
    const started = performance.now()
    const pars = await runQemu({...job(), probes: cases.map((c) => c.probe)})
    const ms = performance.now() - started
    console.log(`stage2: 5000 probes in one QEMU run, ${ms.toFixed(0)} ms`)
    const mismatches = cases.flatMap((c, i) => (pars[i] === c.expected ? [] : [`${c.what}: PAR ${hex(pars[i]!)}, expected ${hex(c.expected)}`]))
    expect(mismatches).toEqual([])
  })

  // ---- stage 1, EL2 regime: hand-written tables ------------------------------------------------

  describe('stage 1 (EL2, TTBR0_EL2), tables written by hand', () => {
    /** MAIR_EL2: index 0 Device-nGnRnE (0x00), index 1 Normal WB (0xff), index 2 Device-nGnRE (0x04). */
    const MAIR = 0x0000_0000_0004_ff00n
    /** TCR_EL2: T0SZ 25, IRGN0/ORGN0 01, SH0 11, TG0 4 KiB, PS 40-bit (2 at 18:16), RES1 bits 23 and 31. */
    const TCR = 0x8082_3519n
    // 2 MiB block descriptors: AttrIndx[4:2], AP[2] = bit 7 read-only, SH[9:8] 00, AF bit 10, valid.
    const S1_NORMAL = 0x405n // AttrIndx 1, AF
    const S1_DEVICE = 0x409n // AttrIndx 2, AF
    const S1_READONLY = 0x485n // AttrIndx 1, AP[2], AF
    const S1_NO_AF = 0x005n // AttrIndx 1, AF clear

    const L1 = HEAP_BASE
    const L2_LOW = HEAP_BASE + 0x1000n // VA 0x0000_0000-0x3fff_ffff
    const L2_RAM = HEAP_BASE + 0x2000n // VA 0x4000_0000-0x7fff_ffff
    const TEST_NORMAL = 0x4800_0000n
    const TEST_READONLY = 0x4820_0000n
    const TEST_NO_AF = 0x4840_0000n
    const TEST_DEVICE = 0x4860_0000n

    /** Identity map: the program range and the UART (which the probe program needs), plus the test blocks. */
    function stage1Job(options: {mapUart?: boolean} = {}): Omit<QemuJob, 'probes'> {
      const memory = new PhysicalMemory(RAM_BASE, 1n << 30n)
      memory.writeU64(L1 + 0n * 8n, L2_LOW | 3n)
      memory.writeU64(L1 + 1n * 8n, L2_RAM | 3n)
      const block = (va: bigint, bits: bigint) => {
        const l2 = va < 0x4000_0000n ? L2_LOW : L2_RAM
        memory.writeU64(l2 + ((va >> 21n) & 0x1ffn) * 8n, va | bits)
      }
      for (let va = PROGRAM_RANGE.start; va < PROGRAM_RANGE.end; va += BLOCK) block(va, S1_NORMAL)
      if (options.mapUart !== false) for (let va = UART_RANGE.start; va < UART_RANGE.end; va += BLOCK) block(va, S1_DEVICE)
      block(TEST_NORMAL, S1_NORMAL)
      block(TEST_READONLY, S1_READONLY)
      block(TEST_NO_AF, S1_NO_AF)
      block(TEST_DEVICE, S1_DEVICE)
      return {regime: 'stage1', images: [{address: L1, data: memory.readBytes(L1, 0x3000)}], ttbr0: L1, tcr: TCR, mair: MAIR}
    }

    // Stage-1 success PARs: bit 11 and NS (bit 9) set; SH as the descriptor has it (0b00 here), for
    // Device too (stage 2 reports Device as outer shareable, stage 1 alone does not).
    const S1_NORMAL_LOW = 0xa00n
    const S1_DEVICE_LOW = 0xa00n

    it('QEMU walks them with the EL2 MMU on', async () => {
      await runCases(stage1Job(), [
        {what: 'normal block, read', probe: read(TEST_NORMAL + 0x1234n), expected: okPar(0xffn, TEST_NORMAL + 0x1234n, S1_NORMAL_LOW)},
        {what: 'normal block, write', probe: write(TEST_NORMAL + 0x1f_f000n), expected: okPar(0xffn, TEST_NORMAL + 0x1f_f000n, S1_NORMAL_LOW)},
        {what: 'the program itself (PROGRAM_RANGE)', probe: read(PROGRAM_RANGE.start), expected: okPar(0xffn, PROGRAM_RANGE.start, S1_NORMAL_LOW)},
        {what: 'device block (the UART), write', probe: write(UART_RANGE.start), expected: okPar(0x04n, UART_RANGE.start, S1_DEVICE_LOW)},
        {what: 'device test block, read', probe: read(TEST_DEVICE + 0x8n), expected: okPar(0x04n, TEST_DEVICE, S1_DEVICE_LOW)},
        {what: 'read-only block, read', probe: read(TEST_READONLY + 0x10n), expected: okPar(0xffn, TEST_READONLY, S1_NORMAL_LOW)},
        {what: 'read-only block, write: permission fault, level 2, stage 1', probe: write(TEST_READONLY + 0x10n), expected: faultPar(FST.permission(2), false)},
        {what: 'AF = 0, read: access flag fault, level 2', probe: read(TEST_NO_AF), expected: faultPar(FST.accessFlag(2), false)},
        {what: 'AF = 0, write: access flag fault, level 2', probe: write(TEST_NO_AF), expected: faultPar(FST.accessFlag(2), false)},
        {what: 'unmapped VA under an empty L1 entry: translation fault, level 1', probe: read(0x8000_0000n), expected: faultPar(FST.translation(1), false)},
        {what: 'unmapped VA under an empty L2 entry: translation fault, level 2', probe: read(0x4a00_0000n), expected: faultPar(FST.translation(2), false)},
        {what: 'VA 2^39 (T0SZ 25): translation fault, level 0', probe: read(1n << 39n), expected: faultPar(FST.translation(0), false)},
      ])
      expect(faultPar(FST.permission(2), false)).toBe(0x81dn)
      expect(faultPar(FST.accessFlag(2), false)).toBe(0x815n)
    })

    it('reports an exception instead of hanging when the tables leave the UART unmapped', async () => {
      const error = await runQemu({...stage1Job({mapUart: false}), probes: [read(TEST_NORMAL)]}).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      expect(error?.message).toMatch(/EXC esr=[0-9a-f]{16} far=0000000009000018 elr=/)
      console.log(`UART unmapped: ${error?.message.split('\n')[0]}`)
    })
  })

  it('kills QEMU after the timeout (stage 1 without the program mapped loops on instruction aborts)', async () => {
    const job: QemuJob = {regime: 'stage1', images: [{address: HEAP_BASE, data: new Uint8Array(0x1000)}], ttbr0: HEAP_BASE, tcr: 0x8082_3519n, mair: 0xff00n, probes: [read(NORMAL)]}
    await expect(runQemu(job, {timeoutMs: 3000})).rejects.toThrow(/timed out/)
  })
})

describe('QEMU runner input checks', () => {
  const base: QemuJob = {regime: 'stage2', images: [], vttbr: HEAP_BASE, vtcr: 0x8002_3559n, probes: []}

  it('lays out the parameter block', () => {
    const view = new DataView(paramBlock({...base, probes: [read(0x1000n), write(0x2000n)]}).buffer)
    const words = Array.from({length: 12}, (_, i) => view.getBigUint64(i * 8, true))
    expect(words).toEqual([0x4542_4f52_5056_4d48n, 2n, HEAP_BASE, 0x8002_3559n, (1n << 0n) | (1n << 12n) | (1n << 31n), 0n, 0n, 0n, 0n, 2n, 0x1000n, (1n << 63n) | 0x2000n])
    expect(new TextDecoder().decode(new Uint8Array(view.buffer, 0, 8))).toBe('HMVPROBE')
  })

  it('refuses images over the device tree or the program, and missing registers', async () => {
    await expect(runQemu({...base, images: [{address: 0x4000_0000n, data: new Uint8Array(8)}]})).rejects.toThrow(/device tree/)
    await expect(runQemu({...base, images: [{address: 0x403f_f000n, data: new Uint8Array(0x2000)}]})).rejects.toThrow(/probe program/)
    await expect(
      runQemu({
        ...base,
        images: [
          {address: 0x4100_0000n, data: new Uint8Array(0x2000)},
          {address: 0x4100_1000n, data: new Uint8Array(8)},
        ],
      }),
    ).rejects.toThrow(/overlaps the image/)
    await expect(runQemu({regime: 'stage1', images: [], probes: []})).rejects.toThrow(/needs ttbr0/)
    await expect(runQemu({...base, probes: [read(1n << 63n)]})).rejects.toThrow(/below 2\^63/)
  })
})
