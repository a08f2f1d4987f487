/**
 * Which leaves a listing shows (`dump tables --format ranges`, `dump map`), like gdb-pt-dump's
 * `-filter` and `-range`: every condition given must hold (they combine with AND).
 *
 * - perm: the access letters the leaf must allow, from r and w (and x: executable), as the regime's
 *   decoding gives them: stage 2 the guest's access (S2AP), the EL2 stage-1 regime EL2's (AP), and
 *   the EL1&0 regime EL1's (AP, and PXN for x), from the descriptor alone.
 * - exec: executable at that same EL (stage 2: XN clear; stage 1: XN/PXN clear).
 * - mem: Device or Normal memory, from the memory type the leaf selects.
 * - range: the leaf translates some of [start, end) (input addresses); ranges are cut to it.
 * - level: the leaf is at this level (a block at 1 or 2, a page at 3).
 *
 * The access flag is not looked at: a leaf with AF clear is shown with the permissions it would have.
 * A walk asks matches() per entry with the walker's numbers; the decision is made once per kind of
 * entry (level and attribute bits) and kept, so a filtered listing costs no decode per entry.
 */
import type {LeafFields, Regime} from './descriptor.js'
import {isLeafLow} from './descriptor.js'
import {HvmemError} from './errors.js'
import type {Geometry} from './geometry.js'
import type {PhysicalMemory} from './memory.js'
import {hex} from './u64.js'
import {type RangeWalk, RangeMerger, type TableAccess, TableWalker, memoryAccess} from './walker.js'

export interface LeafFilter {
  perm?: {read: boolean; write: boolean; exec: boolean}
  exec?: boolean
  mem?: 'device' | 'normal'
  range?: {start: bigint; end: bigint}
  level?: number
}

/** Parses --perm: one or more of r, w, x (e.g. "w", "rw", "rx"). */
export function parsePerm(text: string): NonNullable<LeafFilter['perm']> {
  if (!/^[rwx]{1,3}$/.test(text) || new Set(text).size !== text.length) throw new HvmemError('input', `permission "${text}" is not one or more of r, w and x (e.g. w, rw, rx)`)
  return {read: text.includes('r'), write: text.includes('w'), exec: text.includes('x')}
}

/** Whether any condition is set. */
export function filterActive(filter: LeafFilter): boolean {
  return filter.perm !== undefined || filter.exec !== undefined || filter.mem !== undefined || filter.range !== undefined || filter.level !== undefined
}

/** The filter in words, for a listing's heading: "writable, Device, in 0x0-0x4000_0000, level 3". */
export function describeFilter(filter: LeafFilter): string {
  const words: string[] = []
  if (filter.perm !== undefined) words.push(`allowing ${filter.perm.read ? 'r' : ''}${filter.perm.write ? 'w' : ''}${filter.perm.exec ? 'x' : ''}`)
  if (filter.exec !== undefined) words.push(filter.exec ? 'executable' : 'execute-never')
  if (filter.mem !== undefined) words.push(filter.mem === 'device' ? 'Device' : 'Normal')
  if (filter.range !== undefined) words.push(`in ${hex(filter.range.start)}-${hex(filter.range.end)}`)
  if (filter.level !== undefined) words.push(`at level ${filter.level}`)
  return words.join(', ')
}

/** Whether a leaf's decoded fields pass the filter's attribute conditions (perm, exec, mem; not range or level). */
export function leafAttributesMatch(leaf: LeafFields, filter: LeafFilter): boolean {
  const p = filter.perm
  if (p !== undefined) {
    if (p.read && leaf.access !== 'RO' && leaf.access !== 'RW') return false
    if (p.write && leaf.access !== 'WO' && leaf.access !== 'RW') return false
    if (p.exec && !leaf.executable) return false
  }
  if (filter.exec !== undefined && leaf.executable !== filter.exec) return false
  if (filter.mem !== undefined && leaf.memType.startsWith('Device') !== (filter.mem === 'device')) return false
  return true
}

/** Whether a leaf at `level` translating [addr, addr + size) passes the whole filter. */
export function leafMatches(leaf: LeafFields, level: number, addr: bigint, size: bigint, filter: LeafFilter): boolean {
  if (filter.level !== undefined && level !== filter.level) return false
  if (filter.range !== undefined && (addr >= filter.range.end || addr + size <= filter.range.start)) return false
  return leafAttributesMatch(leaf, filter)
}

/** Whether a walked entry is a leaf that passes the whole filter (its address as the entry gives it). */
export function entryMatches(e: {level: number; ipa: bigint; size: bigint; decoded: {leaf?: LeafFields}}, filter: LeafFilter): boolean {
  return e.decoded.leaf !== undefined && leafMatches(e.decoded.leaf, e.level, e.ipa, e.size, filter)
}

/** The walker's view of an entry that matches() reads. */
export interface WalkedEntry {
  level: number
  lo: number
  hi: number
  addr: number
  size: number
  raw: bigint
}

/** A filter over a walk's entries (the walker's numbers), deciding once per kind of entry. */
export class WalkFilter {
  private readonly kinds = new Map<number, boolean>()
  private readonly start: number
  private readonly end: number

  constructor(
    private readonly regime: Regime,
    private readonly geometry: Geometry,
    private readonly filter: LeafFilter,
  ) {
    this.start = filter.range === undefined ? 0 : Number(filter.range.start)
    this.end = filter.range === undefined ? Infinity : Number(filter.range.end)
  }

  /** The part of the input space a walk need visit: the range, or all of it. */
  bounds(): {start: number; end: number} {
    const limit = 2 ** this.geometry.inputBits
    return {start: Math.min(this.start, limit), end: Math.min(this.end, limit)}
  }

  /** Whether the entry is a leaf that passes the filter. */
  matches(w: WalkedEntry): boolean {
    if (!isLeafLow(w.lo, w.level, this.geometry)) return false
    if (this.filter.level !== undefined && w.level !== this.filter.level) return false
    if (w.addr >= this.end || w.addr + w.size <= this.start) return false
    const key = w.level * 0x1000_0000 + (w.lo & 0xfff) * 0x1_0000 + (w.hi >>> 16)
    let pass = this.kinds.get(key)
    if (pass === undefined) {
      const leaf = this.regime.decode(w.raw, w.level, this.geometry).leaf
      pass = leaf !== undefined && leafAttributesMatch(leaf, this.filter)
      this.kinds.set(key, pass)
    }
    return pass
  }
}

/** A range of input addresses cut to the filter's range: [start, end) and where its output begins. */
export function clipRange<R extends {start: bigint; end: bigint; outputStart: bigint}>(r: R, filter: LeafFilter): R {
  if (filter.range === undefined) return r
  const start = r.start > filter.range.start ? r.start : filter.range.start
  const end = r.end < filter.range.end ? r.end : filter.range.end
  return {...r, start, end, outputStart: r.outputStart + (start - r.start)}
}

/**
 * The ranges (as walkRanges gives them) of the leaves that pass the filter, cut to its range: one
 * walk over the filter's range only, nothing kept per entry. `entries` and `leaves` count the
 * matching leaves.
 */
export function walkFilteredRanges(memory: PhysicalMemory, regime: Regime, root: bigint, geometry: Geometry, filter: LeafFilter, access: TableAccess = memoryAccess(memory)): RangeWalk {
  const f = new WalkFilter(regime, geometry, filter)
  const merger = new RangeMerger(regime, geometry)
  const walker = new TableWalker(access, geometry)
  const rootTable = Number(root & geometry.addressMask)
  const {start, end} = f.bounds()
  if (start < end && walker.access.inRam(rootTable, geometry.tableBytes(geometry.startLevel))) {
    walker.walk(rootTable, start, end, {leaf: (w) => (f.matches(w) ? merger.add(w) : undefined)}, {validOnly: true})
  }
  const result = merger.finish()
  return {...result, ranges: result.ranges.map((r) => clipRange(r, filter))}
}
