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

/**
 * What an allocation did: its first address (count() of them, each `asked().size` after the one
 * before); under --json with the heap after it. In text mode the address alone: no object a line
 * (10,000 `alloc page` lines of a batch made 10,000 objects, a scavenge's worth with the rest).
 */
export type Allocated = bigint | {first: bigint; heap: HeapStatus}

/**
 * An allocation command (alloc page, bytes, aligned): the allocation is a change of the snapshot,
 * and its output one address a line (what scripts capture). The --json result is made only under
 * --json: in text mode nothing reads it, and a batch of 10,000 `alloc page` lines would make it
 * 10,000 times for nothing.
 */
export abstract class AllocCommand<P extends SnapshotParse> extends MachineCommand<P, Allocated, AllocJson | undefined> {
  protected readonly changes = true

  /** the allocation, on the snapshot's heap: the first address allocated (of count(), consecutive) */
  protected abstract take(heap: Heap, parsed: P): bigint

  /** how many allocations of asked().size take() makes, one after the other */
  protected count(_parsed: P): number {
    return 1
  }

  /** the size and alignment asked for, as --json reports them */
  protected abstract asked(parsed: P): {size: bigint; align: bigint}

  protected work(machine: Machine, parsed: P): Allocated {
    const first = this.take(machine.heap, parsed)
    return this.jsonEnabled() ? {first, heap: machine.heap.status()} : first
  }

  protected report(outcome: Allocated, parsed: P): AllocJson | undefined {
    const count = this.count(parsed)
    if (typeof outcome === 'bigint') {
      // One address as it is (asked() not made: a batch's 10,000 lines); many as one text (a log
      // call a line took 25 s for a million).
      this.logLine(count === 1 ? hex(outcome) : addresses(outcome, count, this.asked(parsed).size).join('\n'))
      return undefined
    }
    const {size, align} = this.asked(parsed)
    return {addresses: addresses(outcome.first, count, size), size: Number(size), align: Number(align), heap: heapJson(outcome.heap)}
  }
}

/** `count` addresses `size` apart from `first`, in hex. */
function addresses(first: bigint, count: number, size: bigint): string[] {
  const list: string[] = []
  for (let i = 0, at = first; i < count; i++, at += size) list.push(hex(at))
  return list
}
