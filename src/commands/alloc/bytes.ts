import {HvmemCommand} from '../../cli/base.js'
import {type AllocJson, allocate} from '../../cli/alloc.js'
import {u64Arg} from '../../cli/flags.js'

export default class AllocBytes extends HvmemCommand {
  static override summary = 'Allocate SIZE bytes at the next 4-byte aligned address of the heap.'
  static override examples = ['<%= config.bin %> alloc bytes 100', '<%= config.bin %> alloc bytes 1K']

  static override args = {
    size: u64Arg({description: 'Bytes to allocate (> 0).', required: true}),
  }

  async run(): Promise<AllocJson | undefined> {
    const {args, flags} = await this.parse(AllocBytes)
    return allocate(
      flags.snapshot,
      args.size,
      4n,
      this.jsonEnabled(),
      (l) => this.log(l),
      (heap) => [heap.alloc(args.size)],
    )
  }
}
