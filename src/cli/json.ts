/**
 * The --json shapes (README, "JSON output"). Addresses, descriptors and registers are lowercase hex
 * strings; sizes and counts are JSON numbers, exact because RAM and the IPA space lie below 2^40.
 */
import type {HeapStatus} from '../core/heap.js'
import type {IdentityMapper} from '../core/mapper.js'
import type {Decoded} from '../core/stage2.js'
import {hex} from '../core/u64.js'
import type {Range, WalkEntry} from '../core/walker.js'

export interface HeapJson {
  start: string
  end: string
  size: number
  next: string
  allocated: number
  remaining: number
  padding: number
}

export function heapJson(s: HeapStatus): HeapJson {
  return {start: hex(s.start), end: hex(s.end), size: Number(s.size), next: hex(s.next), allocated: Number(s.allocated), remaining: Number(s.remaining), padding: Number(s.padding)}
}

export interface MapperJson {
  regime: 'stage2'
  root: string
  vmid: number
  l2Budget: number
  l2Tables: string[]
  vttbr: string
  vtcr: string
}

export function mapperJson(m: IdentityMapper): MapperJson {
  return {
    regime: m.state.regime,
    root: hex(m.root),
    vmid: m.state.vmid,
    l2Budget: m.state.l2Budget,
    l2Tables: m.l2Tables().map((t) => hex(t)),
    vttbr: hex(m.vttbr()),
    vtcr: hex(m.vtcr()),
  }
}

export interface LeafJson {
  outputAddress: string
  memAttr: number
  memType: string
  s2ap: number
  access: string
  sh: number
  shareability: string
  af: boolean
  xn: number
  executable: boolean
  contiguous: boolean
  software: number
}

export interface DescriptorJson {
  descriptor: string
  kind: string
  nextTable?: string
  leaf?: LeafJson
}

export function descriptorJson(d: Decoded): DescriptorJson {
  const out: DescriptorJson = {descriptor: hex(d.raw), kind: d.kind}
  if (d.nextTable !== undefined) out.nextTable = hex(d.nextTable)
  if (d.leaf !== undefined) out.leaf = {...d.leaf, outputAddress: hex(d.leaf.outputAddress)}
  return out
}

export interface EntryJson extends DescriptorJson {
  level: number
  index: number
  table: string
  ipa: string
  size: number
  problem?: string
}

export function entryJson(e: WalkEntry): EntryJson {
  return {level: e.level, index: e.index, table: hex(e.table), ipa: hex(e.ipa), size: Number(e.size), ...descriptorJson(e.decoded), ...(e.problem ? {problem: e.problem} : {})}
}

export interface RangeJson extends DescriptorJson {
  start: string
  end: string
  size: number
  level: number
  outputStart: string
  entries: number
}

export function rangeJson(r: Range): RangeJson {
  return {start: hex(r.start), end: hex(r.end), size: Number(r.end - r.start), level: r.level, outputStart: hex(r.outputStart), entries: r.entries, ...descriptorJson(r.decoded)}
}
