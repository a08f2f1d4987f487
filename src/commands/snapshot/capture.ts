import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {u64Flag} from '../../cli/flags.js'
import {progress} from '../../cli/progress.js'
import {DEFAULT_RAM_BASE} from '../../core/heap.js'
import {Machine} from '../../core/machine.js'
import {PAGE_BYTES, PhysicalMemory, isZeroPage} from '../../core/memory.js'
import {formatSize, hex} from '../../core/u64.js'
import {captureGuest, parseGdbAddress} from '../../gdb/capture.js'
import {createSnapshot, refuseExistingSnapshot} from '../../snapshot/store.js'
import {registersJson} from '../../cli/json.js'

export interface CaptureJson {
  snapshot: string
  /** the gdbstub, HOST:PORT */
  gdb: string
  ram: {base: string; size: number; end: string}
  /** "flag": --ram-size; "monitor": the RAM region QEMU's "info mtree -f" lists at --ram-base */
  ramSizeFrom: 'flag' | 'monitor'
  pagesStored: number
  zeroPagesSkipped: number
  /** the registers recorded, by architectural name */
  registers: Record<string, string>
}

export default class SnapshotCapture extends HvmemCommand {
  static override summary = 'Capture a running QEMU guest through its gdbstub: its translation registers and its RAM, into a new snapshot.'
  static override description = `Connects to QEMU's gdbstub (qemu-system-aarch64 -s, or -gdb tcp::PORT) with the GDB remote protocol (no gdb needed), which stops the guest, and reads the registers of QEMU's system-register feature that describe the translation regimes (TTBR0/1_EL1, TCR_EL1, MAIR_EL1, SCTLR_EL1, and at EL2 TTBR0_EL2, TCR_EL2, MAIR_EL2, SCTLR_EL2, HCR_EL2, VTTBR_EL2, VTCR_EL2; whichever the CPU has) and PSTATE (CPSR), then the RAM from --ram-base in QEMU's physical memory mode (Qqemu.PhyMemMode:1). --ram-size defaults to the size of the RAM region QEMU's monitor lists at --ram-base (qRcmd "info mtree -f").

The snapshot records the registers: "translate", "dump tables" and "dump map" walk with them when no tables are named (EL1&0 when SCTLR_EL1.M is set, else the EL2 stage-1 regime when SCTLR_EL2.M is, else stage 2 when HCR_EL2.VM is), and fill in what --regime el1, stage1 or stage2 leaves out; flags given win. "snapshot info" and "regs" show them. The snapshot has no heap: the guest's RAM is all in use.

Nothing is written unless the whole capture succeeds. A progress bar is drawn on stderr when it is a terminal (never with --json).`

  static override examples = ['<%= config.bin %> snapshot capture --gdb localhost:1234 -s guest.snap', '<%= config.bin %> snapshot capture --gdb :1234 --ram-size 512M -s guest.snap --force']

  static override flags = {
    gdb: Flags.string({summary: "The gdbstub: HOST:PORT (QEMU's -s is localhost:1234).", required: true}),
    'ram-base': u64Flag({summary: "Physical address of the guest's RAM (default 0x4000_0000, QEMU virt)."}),
    'ram-size': u64Flag({summary: "RAM size to read (default: the RAM region QEMU's monitor lists at --ram-base)."}),
    force: Flags.boolean({summary: 'Replace an existing snapshot.', default: false}),
  }

  async run(): Promise<CaptureJson> {
    const {flags} = await this.parse(SnapshotCapture)
    const address = parseGdbAddress(flags.gdb)
    // before reading RAM: what createSnapshot would refuse after it
    refuseExistingSnapshot(flags.snapshot, flags.force)
    let bar: ReturnType<typeof progress> | undefined
    let capture
    try {
      capture = await captureGuest(address, flags['ram-base'] ?? DEFAULT_RAM_BASE, flags['ram-size'], (done, total) => {
        bar ??= progress(`Capturing ${formatSize(BigInt(total))} of RAM`, total / PAGE_BYTES, {json: this.jsonEnabled()})
        bar.update(done / PAGE_BYTES)
      })
    } finally {
      bar?.finish()
    }
    const memory = new PhysicalMemory(capture.ramBase, capture.ramSize)
    const ram = capture.ram
    let stored = 0
    for (let offset = 0; offset < ram.length; offset += PAGE_BYTES) {
      const page = ram.subarray(offset, offset + PAGE_BYTES)
      if (isZeroPage(page)) continue
      // (a 4 KiB slice of the RAM read: memory takes it over rather than copying it)
      memory.loadPage(capture.ramBase + BigInt(offset), page, undefined, {adopt: true})
      stored++
    }
    const machine = Machine.restore(
      {ram: {base: capture.ramBase, size: capture.ramSize}, heap: {start: capture.ramBase, size: 0n, next: capture.ramBase, allocated: 0n}, mapper: undefined, registers: capture.registers},
      memory,
    )
    await createSnapshot(flags.snapshot, machine, flags.force)
    const pages = ram.length / PAGE_BYTES
    const json: CaptureJson = {
      snapshot: flags.snapshot,
      gdb: `${address.host}:${address.port}`,
      ram: {base: hex(capture.ramBase), size: Number(capture.ramSize), end: hex(capture.ramBase + capture.ramSize)},
      ramSizeFrom: capture.ramSizeFrom,
      pagesStored: stored,
      zeroPagesSkipped: pages - stored,
      registers: registersJson(capture.registers),
    }
    this.log(
      `Captured RAM ${json.ram.base}-${json.ram.end} (${formatSize(capture.ramSize)}${capture.ramSizeFrom === 'monitor' ? ", size from QEMU's info mtree" : ''}) from the gdbstub at ${json.gdb} into new snapshot ${flags.snapshot}: ${stored} page(s) stored, ${pages - stored} all-zero page(s) skipped; no heap`,
    )
    this.log(`Registers: ${capture.registers.map((r) => `${r.name}=${hex(r.value)}`).join(' ')}`)
    return json
  }
}
