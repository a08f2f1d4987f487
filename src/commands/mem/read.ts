import {u64Arg} from '../../cli/flags.js'
import {type Parsed, ReadCommand} from '../../cli/machine-command.js'
import {hexdump} from '../../cli/render.js'
import {HvmemError} from '../../core/errors.js'
import type {Machine} from '../../core/machine.js'
import {hex} from '../../core/u64.js'

/** Most bytes one read shows: a hexdump is for people; export whole ranges instead. */
export const MAX_READ = 1n << 20n

export interface MemReadJson {
  address: string
  length: number
  /** the bytes as lowercase hex, two digits each, in address order */
  bytes: string
}

const args = {
  addr: u64Arg({description: 'Physical address inside RAM.', required: true}),
  len: u64Arg({description: 'Bytes to read (1 to 1M).', default: 64n}),
}
type Input = Parsed<Record<never, never>, typeof args>

export default class MemRead extends ReadCommand<Input, MemReadJson> {
  static override summary = 'Hexdump LEN bytes of emulated physical memory at ADDR (default 64, at most 1 MiB).'
  static override examples = ['<%= config.bin %> mem read 0x4100_0000', '<%= config.bin %> mem read 0x4100_0000 8 --json']

  static override args = args

  protected override check({args}: Input): void {
    if (args.len < 1n || args.len > MAX_READ) throw new HvmemError('input', `LEN: ${args.len} is out of range (1..${MAX_READ})`)
  }

  protected report(machine: Machine, {args}: Input): MemReadJson {
    const bytes = machine.memory.readBytes(args.addr, Number(args.len))
    this.log(hexdump(args.addr, bytes))
    return {address: hex(args.addr), length: bytes.length, bytes: Buffer.from(bytes).toString('hex')}
  }
}
