import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {type HeapJson, heapJson} from '../../cli/json.js'
import {hex} from '../../core/u64.js'
import {updateSnapshot} from '../../snapshot/store.js'

export interface HeapResetJson {
  heap: HeapJson
  discardedTables: string[]
}

export default class HeapReset extends HvmemCommand {
  static override summary = 'Return the heap to its start: every allocation is forgotten and the whole heap is free again.'
  static override description = `The stage-2 tables live in the heap, so resetting a heap that holds them would let later allocations overwrite live tables: hvmem refuses (exit 6) unless --discard-mapper, which zeroes every table the mapper reaches (L1, L2 and L3) and forgets the mapper. Other heap contents stay as they are, as on hardware.`
  static override examples = ['<%= config.bin %> heap reset', '<%= config.bin %> heap reset --discard-mapper']

  static override flags = {
    'discard-mapper': Flags.boolean({summary: 'Also drop the mapper and zero its tables.', default: false}),
  }

  async run(): Promise<HeapResetJson> {
    const {flags} = await this.parse(HeapReset)
    const {result, heap} = await updateSnapshot(flags.snapshot, (machine) => ({result: machine.resetHeap(flags['discard-mapper']), heap: machine.heap.status()}))
    const dropped = result.discardedTables.length
    this.log(`Heap reset: next ${hex(heap.next)}${dropped > 0 ? `; mapper dropped, ${dropped} table page(s) zeroed` : ''}`)
    return {heap: heapJson(heap), discardedTables: result.discardedTables.map((t) => hex(t))}
  }
}
