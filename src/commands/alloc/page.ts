import {HvmemCommand} from '../../cli/base.js'
import {type AllocJson, allocate} from '../../cli/alloc.js'
import {intFlag} from '../../cli/flags.js'
import {PAGE_SIZE} from '../../core/allocator.js'

/** The most pages one `alloc page` takes (4 GiB): its addresses are listed, so the count is bounded. */
export const MAX_PAGE_COUNT = 1 << 20

export default class AllocPage extends HvmemCommand {
  static override summary = 'Allocate 4 KiB pages (4 KiB aligned) and print their addresses.'
  static override description = `With --count, the pages are consecutive and allocated all or none: if they do not all fit, nothing is allocated (exit 5). At most ${MAX_PAGE_COUNT} (4 GiB) per call; for more, use "alloc aligned --size".`
  static override examples = ['<%= config.bin %> alloc page', '<%= config.bin %> alloc page --count 4', 'PAGE=$(<%= config.bin %> alloc page)']

  static override flags = {
    count: intFlag(1, MAX_PAGE_COUNT)({char: 'n', summary: `How many pages (1..${MAX_PAGE_COUNT}).`, default: 1}),
  }

  async run(): Promise<AllocJson | undefined> {
    const {flags} = await this.parse(AllocPage)
    if (flags.count === 1)
      return allocate(
        flags.snapshot,
        PAGE_SIZE,
        PAGE_SIZE,
        this.jsonEnabled(),
        (l) => this.log(l),
        (heap) => heap.allocPages(1),
      )
    // Many addresses: logged as one text (a log call per line took 25 s for a million).
    const lines: string[] = []
    const result = await allocate(
      flags.snapshot,
      PAGE_SIZE,
      PAGE_SIZE,
      this.jsonEnabled(),
      (l) => lines.push(l),
      (heap) => heap.allocPages(flags.count),
    )
    if (lines.length > 0) this.log(lines.join('\n'))
    return result
  }
}
