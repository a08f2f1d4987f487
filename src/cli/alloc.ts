import type {Heap} from '../core/heap.js'
import {hex} from '../core/u64.js'
import {updateSnapshot} from '../snapshot/store.js'
import {type HeapJson, heapJson} from './json.js'

export interface AllocJson {
  addresses: string[]
  size: number
  align: number
  heap: HeapJson
}

/**
 * Runs an allocation under the snapshot lock and prints one address a line (what scripts capture).
 * The --json result is made only with `json` (the command's jsonEnabled()): in text mode nothing
 * reads it, and a batch of 10,000 `alloc page` lines would make it 10,000 times for nothing.
 */
export async function allocate(snapshot: string, size: bigint, align: bigint, json: boolean, log: (line: string) => void, take: (heap: Heap) => bigint[]): Promise<AllocJson | undefined> {
  const {addresses, heap} = await updateSnapshot(snapshot, (machine) => ({addresses: take(machine.heap), heap: json ? machine.heap.status() : undefined}))
  for (let i = 0; i < addresses.length; i++) log(hex(addresses[i]!))
  if (heap === undefined) return undefined
  return {addresses: addresses.map((a) => hex(a)), size: Number(size), align: Number(align), heap: heapJson(heap)}
}
