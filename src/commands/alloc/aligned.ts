import {HvmemCommand} from '../../cli/base.js'
import {type AllocJson, allocate} from '../../cli/alloc.js'
import {u64Flag} from '../../cli/flags.js'

export default class AllocAligned extends HvmemCommand {
  static override summary = 'Allocate SIZE bytes at the next ALIGN-aligned address of the heap.'
  static override description = 'ALIGN must be a power of two and SIZE > 0. Bytes skipped to reach the alignment are counted as padding in "heap status".'
  static override examples = ['<%= config.bin %> alloc aligned --size 256 --align 2048', '<%= config.bin %> alloc aligned --size 2M --align 2M']

  static override flags = {
    size: u64Flag({summary: 'Bytes to allocate.', required: true}),
    align: u64Flag({summary: 'Alignment, a power of two.', required: true}),
  }

  async run(): Promise<AllocJson | undefined> {
    const {flags} = await this.parse(AllocAligned)
    return allocate(
      flags.snapshot,
      flags.size,
      flags.align,
      this.jsonEnabled(),
      (l) => this.log(l),
      (heap) => [heap.allocAligned(flags.size, flags.align)],
    )
  }
}
