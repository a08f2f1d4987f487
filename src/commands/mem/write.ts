import {Flags} from '@oclif/core'

import {u64Arg} from '../../cli/flags.js'
import {MachineCommand, type Parsed} from '../../cli/machine-command.js'
import type {Machine} from '../../core/machine.js'
import {type Width} from '../../core/memory.js'
import {hex} from '../../core/u64.js'

export interface MemWriteJson {
  address: string
  width: number
  value: string
}

const args = {
  addr: u64Arg({description: 'Physical address inside RAM.', required: true}),
  value: u64Arg({description: 'Value to write.', required: true}),
}
const flags = {
  width: Flags.option({options: ['1', '2', '4', '8'] as const, summary: 'Bytes to write.', default: '8' as const})(),
}
type Input = Parsed<typeof flags, typeof args>

export default class MemWrite extends MachineCommand<Input, void, MemWriteJson> {
  static override summary = 'Write VALUE (little-endian, --width bytes) to emulated physical memory at ADDR.'
  static override description =
    'VALUE must fit in the width. Any RAM address may be written, including live translation tables: hvmem does not stop you (that is how you model a corrupt table), so check with "dump tables".'
  static override examples = ['<%= config.bin %> mem write 0x4100_0000 0xdeadbeef', '<%= config.bin %> mem write 0x4100_0010 0xff --width 1']

  static override args = args
  static override flags = flags
  protected readonly changes = true

  protected work(machine: Machine, {args, flags}: Input): void {
    machine.memory.write(args.addr, Number(flags.width) as Width, args.value)
  }

  protected report(_: void, {args, flags}: Input): MemWriteJson {
    const width = Number(flags.width)
    this.log(`Wrote ${hex(args.value)} (${width} byte${width === 1 ? '' : 's'}) at ${hex(args.addr)}`)
    return {address: hex(args.addr), width, value: hex(args.value)}
  }
}
