import type {Heap, HeapStatus} from '../core/heap.js'
import type {Machine} from '../core/machine.js'
import {hex} from '../core/u64.js'
import {type HeapJson, heapJson} from './json.js'
import {MachineCommand, type SnapshotParse} from './machine-command.js'

export interface AllocJson {
  addresses: string[]
  size: number
  align: number
  heap: HeapJson
}

/** What an allocation did: its addresses, and (for --json only) the heap after it. */
export interface Allocated {
  addresses: bigint[]
  heap: HeapStatus | undefined
}

/**
 * An allocation command (alloc page, bytes, aligned): the allocation is a change of the snapshot,
 * and its output one address a line (what scripts capture). The --json result is made only under
 * --json: in text mode nothing reads it, and a batch of 10,000 `alloc page` lines would make it
 * 10,000 times for nothing.
 */
export abstract class AllocCommand<P extends SnapshotParse> extends MachineCommand<P, Allocated, AllocJson | undefined> {
  protected readonly changes = true

  /** the allocation, on the snapshot's heap: the addresses allocated */
  protected abstract take(heap: Heap, parsed: P): bigint[]

  /** the size and alignment asked for, as --json reports them */
  protected abstract asked(parsed: P): {size: bigint; align: bigint}

  protected work(machine: Machine, parsed: P): Allocated {
    return {addresses: this.take(machine.heap, parsed), heap: this.jsonEnabled() ? machine.heap.status() : undefined}
  }

  protected report({addresses, heap}: Allocated, parsed: P): AllocJson | undefined {
    // Many addresses are logged as one text (a log call a line took 25 s for a million).
    if (addresses.length === 1) this.log(hex(addresses[0]!))
    else if (addresses.length > 1) this.log(addresses.map((a) => hex(a)).join('\n'))
    if (heap === undefined) return undefined
    const {size, align} = this.asked(parsed)
    return {addresses: addresses.map((a) => hex(a)), size: Number(size), align: Number(align), heap: heapJson(heap)}
  }
}
