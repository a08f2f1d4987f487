import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {u64Arg} from '../../cli/flags.js'
import {type Width} from '../../core/memory.js'
import {hex} from '../../core/u64.js'
import {updateSnapshot} from '../../snapshot/store.js'

export interface MemWriteJson {
  address: string
  width: number
  value: string
}

export default class MemWrite extends HvmemCommand {
  static override summary = 'Write VALUE (little-endian, --width bytes) to emulated physical memory at ADDR.'
  static override description =
    'VALUE must fit in the width. Any RAM address may be written, including live translation tables: hvmem does not stop you (that is how you model a corrupt table), so check with "dump tables".'
  static override examples = ['<%= config.bin %> mem write 0x4100_0000 0xdeadbeef', '<%= config.bin %> mem write 0x4100_0010 0xff --width 1']

  static override args = {
    addr: u64Arg({description: 'Physical address inside RAM.', required: true}),
    value: u64Arg({description: 'Value to write.', required: true}),
  }

  static override flags = {
    width: Flags.option({options: ['1', '2', '4', '8'] as const, summary: 'Bytes to write.', default: '8' as const})(),
  }

  async run(): Promise<MemWriteJson> {
    const {args, flags} = await this.parse(MemWrite)
    const width = Number(flags.width) as Width
    await updateSnapshot(flags.snapshot, (machine) => machine.memory.write(args.addr, width, args.value))
    this.log(`Wrote ${hex(args.value)} (${width} byte${width === 1 ? '' : 's'}) at ${hex(args.addr)}`)
    return {address: hex(args.addr), width, value: hex(args.value)}
  }
}
