import {AllocCommand} from '../../cli/alloc.js'
import {u64Flag} from '../../cli/flags.js'
import type {Parsed} from '../../cli/machine-command.js'
import type {Heap} from '../../core/heap.js'

const flags = {
  size: u64Flag({summary: 'Bytes to allocate.', required: true}),
  align: u64Flag({summary: 'Alignment, a power of two.', required: true}),
}

type Input = Parsed<typeof flags>

export default class AllocAligned extends AllocCommand<Input> {
  static override summary = 'Allocate SIZE bytes at the next ALIGN-aligned address of the heap.'
  static override description = 'ALIGN must be a power of two and SIZE > 0. Bytes skipped to reach the alignment are counted as padding in "heap status".'
  static override examples = ['<%= config.bin %> alloc aligned --size 256 --align 2048', '<%= config.bin %> alloc aligned --size 2M --align 2M']
  static override flags = flags

  protected take(heap: Heap, {flags}: Input): bigint {
    return heap.allocAligned(flags.size, flags.align)
  }

  protected asked({flags}: Input): {size: bigint; align: bigint} {
    return flags
  }
}
