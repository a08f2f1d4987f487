/**
 * Real guests: Debian arm64 kernels (6.1, 48-bit VAs; 6.12, 52-bit VAs with LPA2) and U-Boot boot
 * in QEMU (scripts/guests.sh fetches them into $HVMEM_GUESTS, default ~/.cache/hvmem-guests), are
 * captured with "snapshot capture --gdb", and
 * hvmem's translation of a few hundred virtual addresses per guest (kernel image, linear map, vmalloc
 * around the stack, vmemmap, fixmap, unmapped, both halves; U-Boot's identity map at EL2) is compared
 * with QEMU's own: the gdbstub's read of 8 bytes at the VA (virtual mode; a fault is an error reply)
 * against its read at the PA hvmem translates to (physical mode), with the guest stopped for both.
 * Each guest boots once. Skipped without QEMU or the guests, except in CI, where it fails.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {createServer} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import type {DumpMapJson} from '../../src/commands/dump/map.js'
import {GdbClient} from '../../src/gdb/client.js'
import {runInProcess} from '../cli/inprocess.js'
import {QEMU} from './qemu.js'

const required = process.env.CI === 'true'
const CACHE = process.env.HVMEM_GUESTS ?? path.join(os.homedir(), '.cache', 'hvmem-guests')
const KERNEL = path.join(CACHE, 'Image')
const KERNEL_612 = path.join(CACHE, 'Image-6.12')
const UBOOT = path.join(CACHE, 'u-boot.bin')
const onPath = (command: string): boolean => (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && existsSync(path.join(dir, command)))
const available = onPath(QEMU) && existsSync(KERNEL) && existsSync(UBOOT)
const RAM_BASE = 0x4000_0000n
const RAM_SIZE = 128n << 20n

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

interface Guest {
  qemu: ChildProcess
  port: number
  serial: string
}

const started: ChildProcess[] = []

/** Boots QEMU with a gdbstub and waits (no timeout of its own: the test's) for `marker` on the serial console. */
async function boot(dir: string, name: string, args: string[], marker: RegExp): Promise<Guest> {
  const port = await freePort()
  const serial = path.join(dir, `${name}.serial`)
  const qemu = spawn(QEMU, ['-nographic', '-monitor', 'none', '-serial', `file:${serial}`, '-nic', 'none', '-gdb', `tcp:127.0.0.1:${port}`, ...args], {stdio: 'ignore'})
  started.push(qemu)
  for (;;) {
    if (qemu.exitCode !== null) throw new Error(`${name}: QEMU exited (${qemu.exitCode}): ${existsSync(serial) ? readFileSync(serial, 'latin1').slice(-2000) : ''}`)
    if (existsSync(serial) && marker.test(readFileSync(serial, 'latin1'))) return {qemu, port, serial}
    await new Promise((r) => setTimeout(r, 250))
  }
}

interface Translation {
  output: {address: string} | null
  fault: {kind: string} | null
}

async function translate(snap: string, va: bigint): Promise<Translation> {
  const r = await runInProcess(['translate', `0x${va.toString(16)}`, '--json', '-s', snap])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as Translation
}

/**
 * Captures the guest, then for each VA: hvmem's translation, QEMU's read at the VA, and QEMU's read
 * at hvmem's PA (RAM only: a device page is not read). Returns counts for the report.
 */
async function compare(snap: string, guest: Guest, vas: bigint[], ramSize = RAM_SIZE): Promise<{mapped: number; faults: number; device: number; disagreements: string[]}> {
  const c = await runInProcess(['snapshot', 'capture', '--gdb', `127.0.0.1:${guest.port}`, '--ram-size', `0x${ramSize.toString(16)}`, '-s', snap])
  expect(c.code, c.stderr).toBe(0)
  const hv = new Map<bigint, Translation>()
  for (const va of vas) hv.set(va, await translate(snap, va))
  const client = await GdbClient.connect('127.0.0.1', guest.port)
  const disagreements: string[] = []
  let mapped = 0
  let faults = 0
  let device = 0
  try {
    await client.handshake() // stops the guest again
    await client.setPhysicalMode(false)
    const atVa = new Map<bigint, Buffer | undefined>()
    for (const va of vas) {
      const t = hv.get(va)!
      const pa = t.output === null ? undefined : BigInt(t.output.address)
      // a device page is not read through its VA either (a read has side effects)
      if (pa !== undefined && (pa < RAM_BASE || pa >= RAM_BASE + ramSize)) continue
      atVa.set(va, await client.readMemory(va, 8))
    }
    await client.setPhysicalMode(true)
    for (const va of vas) {
      const t = hv.get(va)!
      const name = `0x${va.toString(16)}`
      if (t.output === null) {
        faults++
        if (atVa.get(va) !== undefined) disagreements.push(`${name}: hvmem faults (${t.fault?.kind}), QEMU reads it`)
        continue
      }
      const pa = BigInt(t.output.address)
      if (!atVa.has(va)) {
        device++
        continue
      }
      mapped++
      const qemuBytes = atVa.get(va)
      const paBytes = await client.readMemory(pa, 8)
      if (qemuBytes === undefined) disagreements.push(`${name}: hvmem translates it to 0x${pa.toString(16)}, QEMU faults`)
      else if (paBytes === undefined || !qemuBytes.equals(paBytes))
        disagreements.push(`${name}: QEMU reads ${qemuBytes.toString('hex')} at the VA, ${paBytes?.toString('hex')} at hvmem's PA 0x${pa.toString(16)}`)
    }
  } finally {
    client.close()
  }
  return {mapped, faults, device, disagreements}
}

/** The page of the guest's stack pointer (a vmalloc'ed stack), through the gdbstub (before the capture). */
async function stackPage(guest: Guest): Promise<bigint> {
  const probe = await GdbClient.connect('127.0.0.1', guest.port)
  try {
    await probe.handshake()
    const regs = await probe.targetRegisters()
    return (await probe.readRegister(regs.find((r) => r.name === 'sp')!.regnum))! & ~0xfffn
  } finally {
    probe.close()
  }
}

async function recorded(snap: string): Promise<Record<string, string>> {
  const info = await runInProcess(['snapshot', 'info', '--json', '-s', snap])
  expect(info.code, info.stderr).toBe(0)
  return (JSON.parse(info.stdout) as {registers: Record<string, string>}).registers
}

async function dumpMapJson(snap: string): Promise<DumpMapJson> {
  const map = await runInProcess(['dump', 'map', '--json', '-s', snap])
  expect(map.code, map.stderr).toBe(0)
  return JSON.parse(map.stdout) as DumpMapJson
}

const span = (start: bigint, step: bigint, count: number, offset = 0x18n): bigint[] => Array.from({length: count}, (_, k) => start + BigInt(k) * step + offset)

describe.skipIf(!available && !required)('real guests captured from QEMU agree with QEMU', () => {
  let dir = ''
  afterAll(async () => {
    for (const q of started) q.kill('SIGKILL')
    if (dir !== '') await rm(dir, {recursive: true, force: true})
  })

  it('a Debian arm64 kernel (EL1&0, TTBR0 and TTBR1): every probed VA agrees', {timeout: 600_000}, async () => {
    expect(available, `qemu-system-aarch64 and the guests in ${CACHE} are needed (sh scripts/guests.sh)`).toBe(true)
    dir = await mkdtemp(path.join(os.tmpdir(), 'hvmem-guests-'))
    const guest = await boot(dir, 'kernel', ['-M', 'virt', '-cpu', 'max', '-m', '128M', '-kernel', KERNEL, '-append', 'console=ttyAMA0 panic=0 nokaslr'], /Kernel panic/)
    const snap = path.join(dir, 'kernel.snap')
    const sp = await stackPage(guest)
    const vas = [
      ...span(0xffff_8000_0800_0000n, 0x4_0000n, 80), // the kernel image (text, rodata, data, bss) and past its end
      ...span(0xffff_0000_0000_0000n, 0x10_0000n, 140), // the linear map: 128 MiB of RAM, then unmapped
      ...span(sp - 0x8000n, 0x1000n, 24), // vmalloc: the stack, its guard pages
      ...span(0xffff_fc00_0000_0000n, 0x1_0000n, 24), // vmemmap
      ...span(0xffff_fbff_fe00_0000n - 0x40_0000n, 0x2_0000n, 32), // fixmap
      ...span(0n, 0x1000_0000n, 8), // TTBR0: the lower half, unmapped at a panic
      ...span(0x0000_ffff_ffff_0000n, 0x1000n, 4),
      0x0001_0000_0000_0000n,
      0x8000_0000_0000_0000n,
      0xffff_7fff_ffff_f000n, // between the halves
      0xffff_ffff_ffff_f000n,
    ]
    const r = await compare(snap, guest, vas)
    console.log(`kernel: ${vas.length} VAs: ${r.mapped} mapped RAM, ${r.device} device (not read), ${r.faults} faults`)
    expect(r.disagreements).toEqual([])
    expect(r.mapped).toBeGreaterThan(150)
    expect(r.faults).toBeGreaterThan(30)
  })

  it('U-Boot at EL2 (virtualization=on; the EL2 stage-1 regime): every probed VA agrees', {timeout: 600_000}, async () => {
    expect(available, `qemu-system-aarch64 and the guests in ${CACHE} are needed (sh scripts/guests.sh)`).toBe(true)
    dir ||= await mkdtemp(path.join(os.tmpdir(), 'hvmem-guests-'))
    const guest = await boot(dir, 'uboot', ['-M', 'virt,virtualization=on', '-cpu', 'max', '-m', '128M', '-bios', UBOOT], /Hit any key|=> /)
    const snap = path.join(dir, 'uboot.snap')
    const vas = [
      ...span(0n, 0x200_0000n, 40), // flash, devices (not read), the gap below RAM
      ...span(RAM_BASE, 0x8_0000n, 280), // RAM, 128 MiB, and past it
      ...span(0x80_0000_0000n, 0x80_0000_0000n, 8), // high PCIe windows and beyond
      0xffff_ffff_ffff_f000n,
    ]
    const r = await compare(snap, guest, vas)
    const cpsr = BigInt((await recorded(snap)).CPSR!)
    expect((cpsr >> 2n) & 3n, 'U-Boot runs at EL2').toBe(2n)
    // dump map pictures the recorded EL2 stage 1; a captured snapshot has no heap
    const picture = await dumpMapJson(snap)
    expect([picture.ipa?.regime, picture.ipa?.cells.includes('normal-rw') || picture.ipa?.cells.includes('normal-rwx'), picture.heap.cells]).toEqual(['stage1', true, []])
    console.log(`U-Boot: ${vas.length} VAs: ${r.mapped} mapped RAM, ${r.device} device (not read), ${r.faults} faults`)
    expect(r.disagreements).toEqual([])
    expect(r.mapped).toBeGreaterThan(200)
  })

  // Image-6.12 is optional in scripts/guests.sh (it says so when it cannot get it)
  it.skipIf(!existsSync(KERNEL_612) && !required)('Debian 6.12 on an LPA2 CPU (TCR_EL1.DS 1, 52-bit VAs, a level -1 root): every probed VA agrees', {timeout: 600_000}, async () => {
    expect(available && existsSync(KERNEL_612), `qemu-system-aarch64 and the guests in ${CACHE} (Image-6.12 too) are needed (sh scripts/guests.sh)`).toBe(true)
    dir ||= await mkdtemp(path.join(os.tmpdir(), 'hvmem-guests-'))
    // 64 MiB: it boots and is captured in half the time 128 MiB take
    const ram = 64n << 20n
    const guest = await boot(dir, 'kernel612', ['-M', 'virt', '-cpu', 'max', '-m', '64M', '-kernel', KERNEL_612, '-append', 'console=ttyAMA0 panic=0 nokaslr'], /Kernel panic/)
    const snap = path.join(dir, 'kernel612.snap')
    const sp = await stackPage(guest)
    // CONFIG_ARM64_VA_BITS_52 with 4K pages: the linear map from 0xfff0000000000000 (L-1[0] of TTBR1),
    // the kernel image at 0xffff800080000000 (L-1[15]), as the kernel's own layout puts them
    const vas = [
      ...span(0xffff_8000_8000_0000n, 0x10_0000n, 48), // the kernel image (text, rodata, data, bss) and past its end
      ...span(0xfff0_0000_0000_0000n, 0x10_0000n, 72), // the linear map: 64 MiB of RAM, then unmapped
      ...span(sp - 0x8000n, 0x1000n, 16), // vmalloc: the stack, its guard pages
      ...span(0xffff_8000_9000_0000n, 0x400_0000n, 2), // PCIe ECAM, a 256 MiB device block (not read)
      ...span(0xffff_c1ff_c000_0000n, 0x4_0000n, 12), // vmemmap
      ...span(0xffff_ffff_ff5f_0000n, 0x1_0000n, 20), // fixmap (the FDT) and its ends
      ...span(0xffff_ffff_c07f_0000n, 0x8000n, 6), // PCI I/O (a device) and around it
      ...span(0n, 0x1000_0000n, 4), // TTBR0: the lower half, unmapped at a panic
      ...span(0x000f_ffff_ffff_0000n, 0x1000n, 2), // the top of the 52-bit lower half
      0x0001_0000_0000_0000n, // beyond 48 bits, inside 52
      0x0010_0000_0000_0000n, // beyond 52 bits: between the halves
      0x8000_0000_0000_0000n,
      0xffef_ffff_ffff_f000n, // just below the 52-bit upper half
      0xffff_0000_0000_0000n, // a 48-bit kernel's linear map: here vmalloc space, unmapped
      0xffff_ffff_ffff_f000n,
    ]
    const r = await compare(snap, guest, vas, ram)
    const tcr = BigInt((await recorded(snap)).TCR_EL1!)
    expect((tcr >> 59n) & 1n, 'TCR_EL1.DS').toBe(1n)
    expect([tcr & 0x3fn, (tcr >> 16n) & 0x3fn], 'T0SZ, T1SZ: 52-bit VAs').toEqual([12n, 12n])
    // dump map pictures both ranges from the recorded registers: level -1 roots, the upper range from 2^64 - 2^52
    const el1 = (await dumpMapJson(snap)).el1!
    expect(el1.walk.ranges.map((h) => [h.ttbr, h.startLevel, h.inputBits, h.lpa2])).toEqual([
      ['TTBR0_EL1', -1, 52, true],
      ['TTBR1_EL1', -1, 52, true],
    ])
    expect([el1.halves[0].cells, el1.halves[1].start, el1.halves[1].ranges[0]?.start]).toEqual([[], '0xfff0000000000000', '0xfff0000000000000'])
    console.log(`kernel 6.12 (TCR_EL1 ${tcr.toString(16)}): ${vas.length} VAs: ${r.mapped} mapped RAM, ${r.device} device (not read), ${r.faults} faults`)
    expect(r.disagreements).toEqual([])
    expect(r.mapped).toBeGreaterThan(100)
    expect(r.faults).toBeGreaterThan(20)
    expect(r.device).toBeGreaterThan(2)
  })
})
