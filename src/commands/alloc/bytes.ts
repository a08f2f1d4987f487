import {AllocCommand} from '../../cli/alloc.js'
import {u64Arg} from '../../cli/flags.js'
import type {Parsed} from '../../cli/machine-command.js'
import type {Heap} from '../../core/heap.js'

const args = {
  size: u64Arg({description: 'Bytes to allocate (> 0).', required: true}),
}
type Input = Parsed<Record<never, never>, typeof args>

export default class AllocBytes extends AllocCommand<Input> {
  static override summary = 'Allocate SIZE bytes at the next 4-byte aligned address of the heap.'
  static override examples = ['<%= config.bin %> alloc bytes 100', '<%= config.bin %> alloc bytes 1K']
  static override args = args

  protected take(heap: Heap, {args}: Input): bigint {
    return heap.alloc(args.size)
  }

  protected asked({args}: Input): {size: bigint; align: bigint} {
    return {size: args.size, align: 4n}
  }
}
