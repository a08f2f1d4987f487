import {HvmemCommand} from '../../cli/base.js'
import {u64Arg} from '../../cli/flags.js'
import {hexdump} from '../../cli/render.js'
import {HvmemError} from '../../core/errors.js'
import {hex} from '../../core/u64.js'
import {loadSnapshot} from '../../snapshot/store.js'

/** Most bytes one read shows: a hexdump is for people; export whole ranges instead. */
export const MAX_READ = 1n << 20n

export interface MemReadJson {
  address: string
  length: number
  /** the bytes as lowercase hex, two digits each, in address order */
  bytes: string
}

export default class MemRead extends HvmemCommand {
  static override summary = 'Hexdump LEN bytes of emulated physical memory at ADDR (default 64, at most 1 MiB).'
  static override examples = ['<%= config.bin %> mem read 0x4100_0000', '<%= config.bin %> mem read 0x4100_0000 8 --json']

  static override args = {
    addr: u64Arg({description: 'Physical address inside RAM.', required: true}),
    len: u64Arg({description: 'Bytes to read (1 to 1M).', default: 64n}),
  }

  async run(): Promise<MemReadJson> {
    const {args, flags} = await this.parse(MemRead)
    if (args.len < 1n || args.len > MAX_READ) throw new HvmemError('input', `LEN: ${args.len} is out of range (1..${MAX_READ})`)
    const machine = await loadSnapshot(flags.snapshot)
    const bytes = machine.memory.readBytes(args.addr, Number(args.len))
    this.log(hexdump(args.addr, bytes))
    return {address: hex(args.addr), length: bytes.length, bytes: Buffer.from(bytes).toString('hex')}
  }
}
