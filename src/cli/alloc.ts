import type {Heap, HeapStatus} from '../core/heap.js'
import type {Machine} from '../core/machine.js'
import {hex} from '../core/u64.js'
import type {SnapshotSession} from '../snapshot/store.js'
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

  /**
   * `times` runs of take() at once, when their addresses follow one another `step` bytes apart from
   * `first` (alloc page's pages); undefined when they do not, or do not all fit (nothing taken then).
   */
  protected takeRepeated(_heap: Heap, _parsed: P, _times: number): {first: bigint; step: number} | undefined {
    return undefined
  }

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

  /**
   * A run of identical allocation lines (a script's `alloc page` 10,000 times), in text mode: each
   * line's allocation and its address line(s), without the rest of a line's way through the batch.
   * A line whose allocation fails (the heap is full) is left to the batch: an allocation that fails
   * changes nothing, so the batch's own run of it fails the same way and reports it.
   */
  override runRepeatedIn(session: SnapshotSession, parsed: P, times: number): number {
    if (this.jsonEnabled()) return 0
    const heap = session.machine.heap
    const run = this.takeRepeated(heap, parsed, times)
    if (run !== undefined) {
      // (addresses in RAM are below 2^52: exact as numbers, and printed as hex() prints them)
      const {first, step} = run
      for (let i = 0, n = times * this.count(parsed), at = Number(first); i < n; i++, at += step) this.logLine(`0x${at.toString(16)}`)
      session.changed = true
      return times
    }
    let ran = 0
    try {
      // each line's allocation printed as the line itself prints it (report of a text-mode outcome)
      for (; ran < times; ran++) this.report(this.take(heap, parsed), parsed)
    } catch {
      // the line that fails: run by the batch, and reported there
    }
    if (ran > 0) session.changed = true
    return ran
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
