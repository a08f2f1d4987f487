/**
 * The --json shapes (docs/scripting.md, "JSON output"). Addresses, descriptors and registers are lowercase hex
 * strings; sizes and counts are JSON numbers, exact because RAM and the IPA space lie below 2^40.
 */
import type {HeapStatus} from '../core/heap.js'
import type {Geometry} from '../core/geometry.js'
import type {IdentityMapper} from '../core/mapper.js'
import type {Decoded, LeafFields, RegimeName} from '../core/descriptor.js'
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
  regime: RegimeName
  root: string
  geometry: GeometryJson
  vmid: number
  l2Budget: number
  l2Tables: string[]
  /** table pages left unreachable by coalesce, replacing maps and unmaps (the bump allocator cannot free them) */
  orphanedTables: number
  /** the values to load, by architectural name: VTTBR_EL2, VTCR_EL2, HCR_EL2 (stage 2) or TTBR0_EL2, TCR_EL2, MAIR_EL2, SCTLR_EL2, HCR_EL2 (stage 1) */
  registers: Record<string, string>
}

/** A geometry in JSON: `{granule: 4096, inputBits: 39, paBits: 40, startLevel: 1, rootTables: 1}`. */
export interface GeometryJson {
  granule: number
  inputBits: number
  paBits: number
  startLevel: number
  rootTables: number
}

export function geometryJson(g: Geometry): GeometryJson {
  return {granule: g.granule, inputBits: g.inputBits, paBits: g.paBits, startLevel: g.startLevel, rootTables: g.rootTables}
}

export function mapperJson(m: IdentityMapper): MapperJson {
  return {
    regime: m.state.regime,
    root: hex(m.root),
    geometry: geometryJson(m.geometry),
    vmid: m.state.vmid,
    l2Budget: m.state.l2Budget,
    l2Tables: m.l2Tables().map((t) => hex(t)),
    orphanedTables: m.state.orphanedTables,
    registers: registersJson(m.registers()),
  }
}

/** Register values by name, as hex strings: `{"VTTBR_EL2": "0x...", ...}`. */
export function registersJson(registers: ReadonlyArray<{name: string; value: bigint}>): Record<string, string> {
  return Object.fromEntries(registers.map((r) => [r.name, hex(r.value)]))
}

/** The translation-table registers in one line, e.g. "VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559". */
export function registerLine(m: IdentityMapper): string {
  return m
    .registers()
    .filter((r) => r.name !== 'HCR_EL2' && r.name !== 'SCTLR_EL2')
    .map((r) => `${r.name} ${hex(r.value)}`)
    .join('  ')
}

/** A leaf's decoded fields, with its output address as hex. */
export type LeafJson = Omit<LeafFields, 'outputAddress'> & {outputAddress: string}

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
