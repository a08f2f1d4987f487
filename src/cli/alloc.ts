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

/** Runs an allocation under the snapshot lock and prints one address a line (what scripts capture). */
export async function allocate(snapshot: string, size: bigint, align: bigint, log: (line: string) => void, take: (heap: Heap) => bigint[]): Promise<AllocJson> {
  const {addresses, heap} = await updateSnapshot(snapshot, (machine) => ({addresses: take(machine.heap), heap: machine.heap.status()}))
  for (const a of addresses) log(hex(a))
  return {addresses: addresses.map((a) => hex(a)), size: Number(size), align: Number(align), heap: heapJson(heap)}
}
