/**
 * Capturing a stopped QEMU guest through its gdbstub: the system registers that describe its
 * translation regimes, and its RAM read in QEMU's physical memory mode.
 */
import type {RecordedRegister} from '../core/machine.js'
import {HvmemError} from '../core/errors.js'
import {hex} from '../core/u64.js'
import {GdbClient} from './client.js'
import {ramSizeFromMtree} from './protocol.js'

/**
 * The registers a capture records, by architectural name, with the names QEMU's gdbstub gives them
 * (its "org.qemu.gdb.arm.sys.regs" feature names a register by its cpreg name: SCTLR_EL1 is "SCTLR";
 * PSTATE is the core feature's "cpsr"). Whichever the target exposes are recorded.
 */
export const CAPTURED_REGISTERS: ReadonlyArray<{name: string; gdbNames: readonly string[]}> = [
  {name: 'CPSR', gdbNames: ['cpsr']},
  {name: 'TTBR0_EL1', gdbNames: ['TTBR0_EL1']},
  {name: 'TTBR1_EL1', gdbNames: ['TTBR1_EL1']},
  {name: 'TCR_EL1', gdbNames: ['TCR_EL1']},
  {name: 'MAIR_EL1', gdbNames: ['MAIR_EL1']},
  {name: 'SCTLR_EL1', gdbNames: ['SCTLR_EL1', 'SCTLR']},
  {name: 'TTBR0_EL2', gdbNames: ['TTBR0_EL2', 'HTTBR']},
  {name: 'TCR_EL2', gdbNames: ['TCR_EL2']},
  {name: 'MAIR_EL2', gdbNames: ['MAIR_EL2']},
  {name: 'SCTLR_EL2', gdbNames: ['SCTLR_EL2']},
  {name: 'HCR_EL2', gdbNames: ['HCR_EL2']},
  {name: 'VTTBR_EL2', gdbNames: ['VTTBR_EL2']},
  {name: 'VTCR_EL2', gdbNames: ['VTCR_EL2']},
]

/** "HOST:PORT" (or ":PORT", or "PORT": localhost) to its parts. */
export function parseGdbAddress(text: string): {host: string; port: number} {
  const m = /^(?:(.*):)?(\d+)$/.exec(text.trim())
  const port = m === null ? NaN : Number(m[2])
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) throw new HvmemError('input', `--gdb ${JSON.stringify(text)} is not HOST:PORT (e.g. localhost:1234, QEMU's -s)`)
  const host = m[1] === undefined || m[1] === '' ? '127.0.0.1' : m[1].replace(/^\[(.*)\]$/, '$1')
  return {host, port}
}

export interface Capture {
  registers: RecordedRegister[]
  ramBase: bigint
  ramSize: bigint
  /** where the RAM size came from */
  ramSizeFrom: 'flag' | 'monitor'
  ram: Buffer
}

/**
 * Connects, stops the guest (QEMU halts it when gdb attaches), reads the registers and `ramSize`
 * bytes of RAM from `ramBase` (or the size of the RAM region QEMU's `info mtree -f` lists there), and
 * disconnects. `progress(done, total)` reports the RAM read in bytes.
 */
export async function captureGuest(address: {host: string; port: number}, ramBase: bigint, ramSize: bigint | undefined, progress: (done: number, total: number) => void): Promise<Capture> {
  const client = await GdbClient.connect(address.host, address.port)
  try {
    await client.handshake()
    const described = await client.targetRegisters()
    const registers: RecordedRegister[] = []
    for (const wanted of CAPTURED_REGISTERS) {
      const r = described.find((d) => wanted.gdbNames.includes(d.name))
      if (r === undefined) continue
      const value = await client.readRegister(r.regnum)
      if (value !== undefined) registers.push({name: wanted.name, value})
    }
    if (!registers.some((r) => r.name !== 'CPSR'))
      throw new HvmemError('gdb', `the gdbstub at ${client.where} exposes none of the translation registers (TTBR0_EL1, TCR_EL1, VTTBR_EL2...): QEMU 7.0 or later shows them`)
    let size = ramSize
    let from: Capture['ramSizeFrom'] = 'flag'
    if (size === undefined) {
      const mtree = await client.monitor('info mtree -f')
      size = mtree === undefined ? undefined : ramSizeFromMtree(mtree, ramBase)
      if (size === undefined) throw new HvmemError('input', `QEMU's monitor lists no RAM region starting at --ram-base ${hex(ramBase)} (info mtree -f); pass --ram-base and --ram-size`)
      from = 'monitor'
    }
    if (size <= 0n || size % 4096n !== 0n || ramBase % 4096n !== 0n)
      throw new HvmemError('input', `--ram-base ${hex(ramBase)} and --ram-size ${hex(size)} must be multiples of 4 KiB, the size non-zero`)
    if (size > 0x1_0000_0000n) throw new HvmemError('input', `--ram-size ${hex(size)}: capture reads at most 4 GiB of RAM`)
    await client.setPhysicalMode(true)
    const total = Number(size)
    const ram = await client.readMemoryRange(ramBase, total, (done) => progress(done, total))
    await client.setPhysicalMode(false)
    return {registers, ramBase, ramSize: size, ramSizeFrom: from, ram}
  } finally {
    client.close()
  }
}
