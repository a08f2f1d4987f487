import {Flags} from '@oclif/core'

import {type HeapJson, heapJson} from '../../cli/json.js'
import {MachineCommand, type Parsed} from '../../cli/machine-command.js'
import type {HeapStatus} from '../../core/heap.js'
import type {Machine} from '../../core/machine.js'
import {hex} from '../../core/u64.js'

export interface HeapResetJson {
  heap: HeapJson
  discardedTables: string[]
}

const flags = {
  'discard-mapper': Flags.boolean({summary: 'Also drop the mapper and zero its tables.', default: false}),
}
type Input = Parsed<typeof flags>

/** What a reset did: the tables it zeroed, and the heap after it. */
interface Reset {
  discardedTables: bigint[]
  heap: HeapStatus
}

export default class HeapReset extends MachineCommand<Input, Reset, HeapResetJson> {
  static override summary = 'Return the heap to its start: every allocation is forgotten and the whole heap is free again.'
  static override description = `The stage-2 tables live in the heap, so resetting a heap that holds them would let later allocations overwrite live tables: hvmem refuses (exit 6) unless --discard-mapper, which zeroes every table the mapper reaches (L1, L2 and L3) and forgets the mapper. Other heap contents stay as they are, as on hardware.`
  static override examples = ['<%= config.bin %> heap reset', '<%= config.bin %> heap reset --discard-mapper']

  static override flags = flags
  protected readonly changes = true

  protected work(machine: Machine, {flags}: Input): Reset {
    return {discardedTables: machine.resetHeap(flags['discard-mapper']).discardedTables, heap: machine.heap.status()}
  }

  protected report({discardedTables, heap}: Reset): HeapResetJson {
    const dropped = discardedTables.length
    this.log(`Heap reset: next ${hex(heap.next)}${dropped > 0 ? `; mapper dropped, ${dropped} table page(s) zeroed` : ''}`)
    return {heap: heapJson(heap), discardedTables: discardedTables.map((t) => hex(t))}
  }
}
