import {open} from 'node:fs/promises'
import {resolve} from 'node:path'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {u64Flag} from '../../cli/flags.js'
import {HvmemError} from '../../core/errors.js'
import {hex} from '../../core/u64.js'
import {loadSnapshot} from '../../snapshot/store.js'

export interface ExportJson {
  file: string
  from: string
  to: string
  size: number
  /** the QEMU option that loads the image at its physical address */
  qemuLoader: string
  /** the registers that install the tables, by name (null without a mapper) */
  registers: Record<string, string> | null
}

/** Bytes written per chunk, so a large export never holds the whole range in memory. */
const CHUNK = 1 << 20

export default class SnapshotExport extends HvmemCommand {
  static override summary = 'Write the bytes of a physical range (default: the heap) as a raw image, ready for QEMU\'s loader.'
  static override description = `Untouched memory is written as zeros. Load the image with -device loader,file=FILE,addr=FROM,force-raw=on and the registers "hvmem regs" shows.`
  static override examples = ['<%= config.bin %> snapshot export --raw tables.bin', '<%= config.bin %> snapshot export --raw low.bin --from 0x4000_0000 --to 0x4100_0000']

  static override flags = {
    raw: Flags.string({summary: 'File to write the raw image to.', required: true}),
    from: u64Flag({summary: 'First physical address (default: heap start).'}),
    to: u64Flag({summary: 'End of the range, exclusive (default: heap end).'}),
  }

  async run(): Promise<ExportJson> {
    const {flags} = await this.parse(SnapshotExport)
    if (resolve(flags.raw) === resolve(flags.snapshot)) throw new HvmemError('input', `--raw ${flags.raw} is the snapshot itself; write the image to another file`)
    const machine = await loadSnapshot(flags.snapshot)
    const heap = machine.heap.status()
    const from = flags.from ?? heap.start
    const to = flags.to ?? heap.end
    if (to <= from) throw new HvmemError('input', `--to ${hex(to)} must be above --from ${hex(from)}`)
    machine.memory.checkRange(from, to - from)
    const file = await open(flags.raw, 'w').catch((error: Error) => {
      throw new HvmemError('io', `cannot write ${flags.raw}: ${error.message}`)
    })
    try {
      for (let at = from; at < to; at += BigInt(CHUNK)) {
        const length = Number(to - at < BigInt(CHUNK) ? to - at : BigInt(CHUNK))
        await file.write(machine.memory.readBytes(at, length))
      }
    } finally {
      await file.close()
    }
    const qemuLoader = `-device loader,file=${flags.raw},addr=${hex(from)},force-raw=on`
    const registers = machine.mapper === undefined ? null : Object.fromEntries(machine.mapper.registers().map((r) => [r.name, hex(r.value)]))
    this.log(`Wrote ${to - from} bytes of ${hex(from)}-${hex(to)} to ${flags.raw}`)
    this.log(`QEMU: ${qemuLoader}`)
    if (registers !== null) this.log(`Registers: ${Object.entries(registers).map(([n, v]) => `${n}=${v}`).join(' ')}`)
    return {file: flags.raw, from: hex(from), to: hex(to), size: Number(to - from), qemuLoader, registers}
  }
}
