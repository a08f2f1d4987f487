import {HvmemCommand} from '../../cli/base.js'
import {type AllocJson, allocate} from '../../cli/alloc.js'
import {intFlag} from '../../cli/flags.js'
import {PAGE_SIZE} from '../../core/allocator.js'

export default class AllocPage extends HvmemCommand {
  static override summary = 'Allocate 4 KiB pages (4 KiB aligned) and print their addresses.'
  static override description = 'With --count, the pages are consecutive and allocated all or none: if they do not all fit, nothing is allocated (exit 5).'
  static override examples = ['<%= config.bin %> alloc page', '<%= config.bin %> alloc page --count 4', 'PAGE=$(<%= config.bin %> alloc page)']

  static override flags = {
    count: intFlag(1, 1 << 28)({char: 'n', summary: 'How many pages.', default: 1}),
  }

  async run(): Promise<AllocJson | undefined> {
    const {flags} = await this.parse(AllocPage)
    return allocate(flags.snapshot, PAGE_SIZE, PAGE_SIZE, this.jsonEnabled(), (l) => this.log(l), (heap) => heap.allocPages(flags.count))
  }
}
