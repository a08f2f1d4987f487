import {AllocCommand} from '../../cli/alloc.js'
import {intFlag} from '../../cli/flags.js'
import type {Parsed} from '../../cli/machine-command.js'
import {PAGE_SIZE} from '../../core/allocator.js'
import type {Heap} from '../../core/heap.js'

/** The most pages one `alloc page` takes (4 GiB): its addresses are listed, so the count is bounded. */
export const MAX_PAGE_COUNT = 1 << 20

const flags = {
  count: intFlag(1, MAX_PAGE_COUNT)({char: 'n', summary: `How many pages (1..${MAX_PAGE_COUNT}).`, default: 1}),
}

type Input = Parsed<typeof flags>

export default class AllocPage extends AllocCommand<Input> {
  static override summary = 'Allocate 4 KiB pages (4 KiB aligned) and print their addresses.'
  static override description = `With --count, the pages are consecutive and allocated all or none: if they do not all fit, nothing is allocated (exit 5). At most ${MAX_PAGE_COUNT} (4 GiB) per call; for more, use "alloc aligned --size".`
  static override examples = ['<%= config.bin %> alloc page', '<%= config.bin %> alloc page --count 4', 'PAGE=$(<%= config.bin %> alloc page)']
  static override flags = flags

  protected take(heap: Heap, {flags}: Input): bigint {
    return heap.allocRun(flags.count)
  }

  /** A run of page allocations, one after the other, is one run of pages: the same addresses in the same order. */
  protected override takeRepeated(heap: Heap, {flags}: Input, times: number): {first: bigint; step: number} | undefined {
    try {
      return {first: heap.allocRun(times * flags.count), step: Number(PAGE_SIZE)}
    } catch {
      // not all of them fit (nothing was taken): the lines one by one find the one that fails
      return undefined
    }
  }

  protected override count({flags}: Input): number {
    return flags.count
  }

  protected asked(): {size: bigint; align: bigint} {
    return {size: PAGE_SIZE, align: PAGE_SIZE}
  }
}
