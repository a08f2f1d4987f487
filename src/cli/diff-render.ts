/** `snapshot diff`: the JSON shape (docs/diff.md) and the human rendering. */
import {type ByteRange, type Layout, type MappingChange, type MappingSide, type Moved, type SnapshotDiff, mapperSummary} from '../core/diff.js'
import type {IdentityMapper} from '../core/mapper.js'
import {formatSize, hex} from '../core/u64.js'
import type {Range} from '../core/walker.js'
import {type DescriptorJson, type MapperJson, descriptorJson, mapperJson} from './json.js'
import {attributeWords, hexdump, rangeLine} from './render.js'
import {color} from './style.js'

export interface LayoutJson {
  ramBase: string
  ramSize: number
  heapStart: string
  heapSize: number
}

export interface MovedJson<T> {
  old: T
  new: T
  delta: number
}

export interface MappingSideJson extends DescriptorJson {
  outputStart: string
  level: number
  /** ptdump words, as `dump tables --format ranges` prints them */
  attributes: string
}

export interface SnapshotDiffJson {
  same: boolean
  /** the files as named on the command line ("-" for standard input) */
  a: string
  b: string
  layout: {old: LayoutJson; new: LayoutJson; fields: string[]} | null
  heap: {next: MovedJson<string>; allocated: MovedJson<number>; remaining: MovedJson<number>; changed: boolean}
  mapper: {change: 'added' | 'removed' | 'changed'; old: MapperJson | null; new: MapperJson | null; fields: string[]} | null
  mappings: Array<{change: 'added' | 'removed' | 'changed'; start: string; end: string; size: number; old: MappingSideJson | null; new: MappingSideJson | null}>
  tables: Array<{change: 'appeared' | 'disappeared' | 'changed'; address: string; level: number; entriesChanged: number}>
  /** with --bytes, each range also has `old` and `new`: its bytes as hex digits in address order */
  memory: Array<{address: string; end: string; length: number; differing: number; old?: string; new?: string}>
}

function layoutJson(l: Layout): LayoutJson {
  return {ramBase: hex(l.ramBase), ramSize: Number(l.ramSize), heapStart: hex(l.heapStart), heapSize: Number(l.heapSize)}
}

function sideJson(s: MappingSide | undefined): MappingSideJson | null {
  if (s === undefined) return null
  return {outputStart: hex(s.outputStart), level: s.level, attributes: attributeWords(s.decoded.leaf!, s.decoded.kind), ...descriptorJson(s.decoded)}
}

function movedNumber(m: Moved): MovedJson<number> {
  return {old: Number(m.old), new: Number(m.new), delta: Number(m.delta)}
}

/** The bytes of each changed range in the two snapshots (for --bytes). */
export interface RangeBytes {
  old: Uint8Array
  new: Uint8Array
}

export function diffJson(d: SnapshotDiff, names: {a: string; b: string}, bytes?: (r: ByteRange) => RangeBytes): SnapshotDiffJson {
  const mapper = (m: IdentityMapper | undefined): MapperJson | null => (m === undefined ? null : mapperJson(m))
  return {
    same: d.same,
    a: names.a,
    b: names.b,
    layout: d.layout === undefined ? null : {old: layoutJson(d.layout.old), new: layoutJson(d.layout.new), fields: d.layout.fields},
    heap: {
      next: {old: hex(d.heap.next.old), new: hex(d.heap.next.new), delta: Number(d.heap.next.delta)},
      allocated: movedNumber(d.heap.allocated),
      remaining: movedNumber(d.heap.remaining),
      changed: d.heap.changed,
    },
    mapper: d.mapper === undefined ? null : {change: d.mapper.change, old: mapper(d.mapper.old), new: mapper(d.mapper.new), fields: d.mapper.fields},
    mappings: d.mappings.map((m) => ({change: m.change, start: hex(m.start), end: hex(m.end), size: Number(m.end - m.start), old: sideJson(m.old), new: sideJson(m.new)})),
    tables: d.tables.map((t) => ({change: t.change, address: hex(t.address), level: t.level, entriesChanged: t.entriesChanged})),
    memory: d.memory.map((r) => {
      // (addresses as numbers: exact, as RAM lies below 2^40)
      const start = Number(r.address)
      const out: SnapshotDiffJson['memory'][number] = {address: `0x${start.toString(16)}`, end: `0x${(start + r.length).toString(16)}`, length: r.length, differing: r.differing}
      if (bytes !== undefined) {
        const b = bytes(r)
        out.old = Buffer.from(b.old).toString('hex')
        out.new = Buffer.from(b.new).toString('hex')
      }
      return out
    }),
  }
}

const minus = (text: string): string => color.red(`- ${text}`)
const plus = (text: string): string => color.green(`+ ${text}`)
const tilde = (text: string): string => color.yellow(`~ ${text}`)
const heading = (text: string): string => color.bold(text)

function signed(n: bigint): string {
  return n < 0n ? `-${-n}` : `+${n}`
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** A changed mapping's side as a ptdump line over the changed range. */
function mappingLine(m: MappingChange, side: MappingSide): string {
  const r: Range = {start: m.start, end: m.end, level: side.level, outputStart: side.outputStart, decoded: side.decoded, entries: 0}
  return rangeLine(r)
}

function mapperLine(m: IdentityMapper): string {
  const s = mapperSummary(m)
  const registers = s.registers.map((r) => `${r.name} ${hex(r.value)}`).join('  ')
  return `${s.regime} (${s.geometry}), root ${hex(s.root)}, vmid ${s.vmid}, l2Budget ${s.l2Budget}, orphanedTables ${s.orphanedTables}; ${registers}`
}

function mapperField(m: IdentityMapper, field: string): string {
  const s = mapperSummary(m)
  switch (field) {
    case 'regime':
      return s.regime
    case 'geometry':
      return s.geometry
    case 'root':
      return hex(s.root)
    case 'vmid':
      return `${s.vmid}`
    case 'l2Budget':
      return `${s.l2Budget}`
    case 'orphanedTables':
      return `${s.orphanedTables}`
    default: {
      const r = s.registers.find((x) => x.name === field)
      return r === undefined ? '(none)' : hex(r.value)
    }
  }
}

function layoutLine(l: Layout): string {
  return `RAM ${hex(l.ramBase)}-${hex(l.ramBase + l.ramSize)} (${formatSize(l.ramSize)}), heap ${hex(l.heapStart)}-${hex(l.heapStart + l.heapSize)} (${formatSize(l.heapSize)})`
}

/** Hexdump lines, each prefixed and coloured as a removed or added line. */
function dumpLines(address: bigint, bytes: Uint8Array, mark: (text: string) => string): string[] {
  return hexdump(address, bytes)
    .split('\n')
    .map((line) => mark(line))
}

/** The human rendering: a section per category that changed, with coloured -/+/~ lines. */
export function diffLines(d: SnapshotDiff, names: {a: string; b: string}, bytes?: (r: ByteRange) => RangeBytes): string[] {
  if (d.same) return [`${names.a} and ${names.b} are the same`]
  const out: string[] = [color.red(`--- ${names.a}`), color.green(`+++ ${names.b}`)]
  if (d.layout !== undefined) {
    out.push(heading(`Layout (${d.layout.fields.join(', ')}):`), minus(layoutLine(d.layout.old)), plus(layoutLine(d.layout.new)))
  }
  if (d.heap.changed) {
    const h = d.heap
    out.push(
      heading('Heap:'),
      tilde(`next       ${hex(h.next.old)} -> ${hex(h.next.new)} (${signed(h.next.delta)})`),
      tilde(`allocated  ${h.allocated.old} -> ${h.allocated.new} (${signed(h.allocated.delta)})`),
      tilde(`remaining  ${h.remaining.old} -> ${h.remaining.new} (${signed(h.remaining.delta)})`),
    )
  }
  const m = d.mapper
  if (m !== undefined) {
    if (m.change === 'added') out.push(heading('Mapper (added):'), plus(mapperLine(m.new!)))
    else if (m.change === 'removed') out.push(heading('Mapper (removed):'), minus(mapperLine(m.old!)))
    else {
      out.push(heading(`Mapper (${m.fields.join(', ')}):`))
      for (const field of m.fields) out.push(minus(`${field} ${mapperField(m.old!, field)}`), plus(`${field} ${mapperField(m.new!, field)}`))
    }
  }
  if (d.mappings.length > 0) {
    const count = (c: string): number => d.mappings.filter((x) => x.change === c).length
    out.push(heading(`Mappings: ${count('added')} added, ${count('removed')} removed, ${count('changed')} changed`))
    for (const c of d.mappings) {
      if (c.old !== undefined) out.push(minus(mappingLine(c, c.old)))
      if (c.new !== undefined) out.push(plus(mappingLine(c, c.new)))
    }
  }
  if (d.tables.length > 0) {
    const count = (c: string): number => d.tables.filter((x) => x.change === c).length
    out.push(heading(`Page tables: ${count('appeared')} appeared, ${count('disappeared')} disappeared, ${count('changed')} changed`))
    for (const t of d.tables) {
      const text = `${hex(t.address)}  L${t.level} table ${t.change}, ${plural(t.entriesChanged, 'entry', 'entries')} changed`
      out.push(t.change === 'appeared' ? plus(text) : t.change === 'disappeared' ? minus(text) : tilde(text))
    }
  }
  if (d.memory.length > 0) {
    const differing = d.memory.reduce((n, r) => n + r.differing, 0)
    out.push(heading(`Memory outside the tables: ${plural(d.memory.length, 'range')}, ${plural(differing, 'byte')} ${differing === 1 ? 'differs' : 'differ'}`))
    // (addresses as numbers: exact, as RAM lies below 2^40; a line each, and thousands of ranges are common)
    const mark = color.level > 0 ? tilde : (text: string): string => `~ ${text}`
    for (const r of d.memory) {
      const start = Number(r.address)
      out.push(mark(`0x${start.toString(16)}-0x${(start + r.length).toString(16)}  ${plural(r.length, 'byte')}, ${r.differing} ${r.differing === 1 ? 'differs' : 'differ'}`))
      if (bytes !== undefined) {
        const b = bytes(r)
        out.push(...dumpLines(r.address, b.old, minus), ...dumpLines(r.address, b.new, plus))
      }
    }
  }
  return out
}
