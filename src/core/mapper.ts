import {PAGE_SIZE} from './allocator.js'
import {ADDRESS_MASK, type Attr, LEVEL_SHIFT, LEVEL_SIZE, type Regime, type RegimeName, TABLE_OR_PAGE, VALID, XN, tableDescriptor} from './descriptor.js'
import {HvmemError} from './errors.js'
import type {Heap} from './heap.js'
import {IPA_LIMIT, PA_LIMIT, type Register, START_LEVEL, checkVmid, registersFor} from './registers.js'
import {STAGE1} from './stage1.js'
import {STAGE2} from './stage2.js'
import {TableTransaction} from './transaction.js'
import {GiB, formatSize, hex} from './u64.js'

export const DEFAULT_L2_BUDGET = 4
export const MAX_L2_BUDGET = 512
const ENTRIES = 512
const PAGE = LEVEL_SIZE[3]!

export const REGIMES: Record<RegimeName, Regime> = {stage2: STAGE2, stage1: STAGE1}

/** What a snapshot stores of the mapper; the tables themselves are found by walking the root. */
export interface MapperState {
  regime: RegimeName
  root: bigint
  vmid: number
  l2Budget: number
  /** table pages that coalesce or a replacing map left unreachable (a bump allocator cannot free them) */
  orphanedTables: number
}

export interface MapperOptions {
  regime?: RegimeName
  vmid?: number
  l2Budget?: number
}

/** The largest leaf a map may use: a 4 KiB page, a 2 MiB block or a 1 GiB block. */
export type Granularity = 'page' | '2M' | '1G'
export const GRANULARITIES: readonly Granularity[] = ['page', '2M', '1G']
const GRANULARITY_SIZE: Record<Granularity, bigint> = {page: PAGE, '2M': LEVEL_SIZE[2]!, '1G': GiB}

export interface MapOptions {
  /** output address of `ipa` (default: `ipa`, an identity map) */
  pa?: bigint
  granularity?: Granularity
  /** overwrite existing mappings instead of refusing */
  replace?: boolean
}

/** Leaf descriptors written or left as they were, by level (1: 1 GiB blocks, 2: 2 MiB blocks, 3: pages). */
export interface LeafCounts {
  1: number
  2: number
  3: number
}

export interface EditResult {
  ipa: bigint
  size: bigint
  /** leaf descriptors written */
  written: LeafCounts
  /** leaf descriptors already as wanted */
  unchanged: LeafCounts
  /** leaf descriptors cleared (unmap) */
  cleared: LeafCounts
  /** blocks split into next-level tables to keep the part outside the range as it was */
  splits: number
  newTables: bigint[]
  /** tables this operation left unreachable */
  orphanedTables: number
}

export interface MapResult extends EditResult {
  pa: bigint
  attr: Attr
  /** the leaf descriptor that now maps `ipa` */
  descriptor: bigint
}

/** XN[1:0], bits 54:53: a permission change clears both and sets bit 54 for execute-never. */
export const XN_BITS = 3n << 53n

export type Permission = 'r' | 'rw' | 'rx' | 'rwx'
export const PERMISSIONS: readonly Permission[] = ['r', 'rw', 'rx', 'rwx']

/** A protect: new attributes, or new access permissions keeping the memory type. */
export type Protection = {attr: Attr} | {perm: Permission}

export interface CoalesceResult {
  /** the blocks that replaced a table, in IPA order */
  blocks: Array<{ipa: bigint; level: number; descriptor: bigint}>
  orphanedTables: number
}

type Edit =
  | {op: 'map'; ipa: bigint; pa: bigint; attrBits: bigint; maxLeaf: bigint; replace: boolean}
  | {op: 'unmap'}
  | {op: 'protect'; change: (descriptor: bigint) => bigint}

interface Conflict {
  start: bigint
  end: bigint
  existing: bigint
  /** the existing output address at `start` */
  oa: bigint
}

interface EditState {
  tx: TableTransaction
  edit: Edit
  result: EditResult
  conflicts: Conflict[]
  /** protect: ranges that are not mapped */
  holes: Array<[bigint, bigint]>
}

const zero = (): LeafCounts => ({1: 0, 2: 0, 3: 0})
const levelOf = (level: number): 1 | 2 | 3 => level as 1 | 2 | 3
/** The bits of a leaf that are neither its output address nor its type. */
const attributesOf = (descriptor: bigint): bigint => descriptor & ~ADDRESS_MASK & ~3n

/**
 * The plan's DynamicIdentityMapper grown up: a root (L1) table for 39-bit input addresses and tables
 * below it allocated from the heap on demand (L2 tables within a budget, L3 tables as the heap
 * allows). Maps use the largest descriptor that the alignment of input and output allows (1 GiB
 * blocks at L1, 2 MiB blocks at L2, 4 KiB pages at L3), identity by default. Unmap and protect split
 * a block that the range covers only in part, keeping the rest exactly as it was; coalesce folds a
 * table of uniform, contiguous leaves back into one block. The regime is stage 2 (VTTBR_EL2, the
 * default) or the hypervisor's own stage 1 (TTBR0_EL2), fixed at creation.
 *
 * Every operation is all or nothing: it runs in a TableTransaction and is committed only once
 * conflicts, the L2-table budget and the heap have all allowed it.
 */
export class IdentityMapper {
  private constructor(
    private readonly heap: Heap,
    readonly state: MapperState,
  ) {}

  /** Allocates and zeroes the L1 table. */
  static create(heap: Heap, options: MapperOptions = {}): IdentityMapper {
    const regime = options.regime ?? 'stage2'
    const vmid = options.vmid ?? 0
    const l2Budget = options.l2Budget ?? DEFAULT_L2_BUDGET
    checkVmid(vmid)
    if (regime === 'stage1' && vmid !== 0) throw new HvmemError('input', 'a VMID applies to stage-2 tables only; the stage-1 (EL2) regime has none')
    checkBudget(l2Budget)
    const [root] = heap.allocZeroedPages(1)
    return new IdentityMapper(heap, {regime, root: root!, vmid, l2Budget, orphanedTables: 0})
  }

  /** Re-binds a mapper loaded from a snapshot, checking that its root table is readable. */
  static attach(heap: Heap, state: MapperState): IdentityMapper {
    checkVmid(state.vmid)
    checkBudget(state.l2Budget)
    if (state.regime === 'stage1' && state.vmid !== 0) throw new HvmemError('snapshot-invalid', `a stage-1 mapper has VMID ${state.vmid}`)
    if (state.root % PAGE_SIZE !== 0n || !heap.memory.contains(state.root, PAGE_SIZE)) {
      throw new HvmemError('snapshot-invalid', `mapper root table ${hex(state.root)} is not a page inside RAM`)
    }
    return new IdentityMapper(heap, {...state})
  }

  get root(): bigint {
    return this.state.root
  }

  get regime(): Regime {
    return REGIMES[this.state.regime]
  }

  /** The plan's vttbr(), with the VMID: for stage-2 tables only. */
  vttbr(): bigint {
    return this.stage2Register('VTTBR_EL2')
  }

  vtcr(): bigint {
    return this.stage2Register('VTCR_EL2')
  }

  /** The registers that install these tables, decoded (VTTBR/VTCR/HCR for stage 2; TTBR0/TCR/MAIR/SCTLR/HCR for stage 1). */
  registers(): Register[] {
    return registersFor(this.state.regime, this.state.root, this.state.vmid)
  }

  /** The L2 tables the L1 table points at, in L1 index order. */
  l2Tables(read: (address: bigint) => bigint = (a) => this.heap.memory.readU64(a)): bigint[] {
    return l2TablesAt(this.regime, this.state.root, read)
  }

  /** Maps [ipa, ipa + size) to [pa, pa + size) with `attr`. Refuses to change an existing mapping unless `replace`. */
  mapRegion(ipa: bigint, size: bigint, attr: Attr, options: MapOptions = {}): MapResult {
    const pa = options.pa ?? ipa
    const maxLeaf = GRANULARITY_SIZE[options.granularity ?? '1G']
    checkRange(ipa, size)
    if (pa % PAGE !== 0n || pa < 0n) throw new HvmemError('input', `PA ${hex(pa)} is not 4 KiB aligned`)
    if (pa + size > PA_LIMIT) throw new HvmemError('input', `output ${hex(pa)}-${hex(pa + size)} ends past the 40-bit physical address space (${hex(PA_LIMIT)}, PS = 40 bits)`)
    const attrBits = this.regime.attrBits[attr]
    const state = this.run(ipa, size, {op: 'map', ipa, pa, attrBits, maxLeaf, replace: options.replace ?? false}, (s) => {
      const c = mergeConflicts(s.conflicts)[0]
      if (c !== undefined) {
        throw new HvmemError(
          'mapping-conflict',
          `cannot map ${hex(ipa)}-${hex(ipa + size)} as ${attr}: ${hex(c.start)}-${hex(c.end)} is already mapped ${describeExisting(this.regime, c)}; unmap it first, or pass --replace`,
        )
      }
    })
    const descriptor = this.leafAt(ipa)
    return {...state.result, pa, attr, descriptor}
  }

  /** Removes every mapping in [ipa, ipa + size); a block the range covers in part is split first. */
  unmap(ipa: bigint, size: bigint): EditResult {
    checkRange(ipa, size)
    return this.run(ipa, size, {op: 'unmap'}).result
  }

  /** Changes the attributes or permissions of every mapping in [ipa, ipa + size), which must be mapped throughout. */
  protect(ipa: bigint, size: bigint, protection: Protection): EditResult {
    checkRange(ipa, size)
    const change = 'attr' in protection ? this.withAttr(protection.attr) : this.withPermission(protection.perm)
    return this.run(ipa, size, {op: 'protect', change}, (s) => {
      const hole = s.holes[0]
      if (hole !== undefined) throw new HvmemError('input', `cannot protect ${hex(ipa)}-${hex(ipa + size)}: ${hex(hole[0])}-${hex(hole[1])} is not mapped`)
    }).result
  }

  /**
   * Folds every table whose 512 entries are valid leaves with identical attributes and physically
   * contiguous, block-aligned output into one block of the level above (L3 tables first, then L2).
   * The folded tables become unreachable: the bump allocator cannot free them.
   */
  coalesce(): CoalesceResult {
    const tx = new TableTransaction(this.heap)
    const blocks: CoalesceResult['blocks'] = []
    let orphaned = 0
    const fold = (entryAddress: bigint, level: number, ipa: bigint): void => {
      const d = this.regime.decode(tx.read(entryAddress), level)
      if (d.kind !== 'table') return
      if (level === 1) for (let i = 0; i < ENTRIES; i++) fold(d.nextTable! + BigInt(8 * i), 2, ipa + BigInt(i) * LEVEL_SIZE[2]!)
      const block = this.foldable(tx, d.nextTable!, level + 1)
      if (block === undefined) return
      tx.write(entryAddress, block)
      orphaned++
      blocks.push({ipa, level, descriptor: block})
    }
    for (let i = 0; i < ENTRIES; i++) fold(this.state.root + BigInt(8 * i), 1, BigInt(i) * GiB)
    tx.commit()
    this.state.orphanedTables += orphaned
    blocks.sort((a, b) => (a.ipa < b.ipa ? -1 : a.ipa > b.ipa ? 1 : 0))
    return {blocks, orphanedTables: orphaned}
  }

  /** The leaf descriptor that maps `ipa`, or 0 if none does. */
  leafAt(ipa: bigint): bigint {
    let table = this.state.root
    for (let level = START_LEVEL; level <= 3; level++) {
      const d = this.regime.decode(this.heap.memory.readU64(table + BigInt(8 * index(ipa, level))), level)
      if (d.kind !== 'table') return d.leaf === undefined ? 0n : d.raw
      table = d.nextTable!
      if (!this.heap.memory.contains(table, PAGE_SIZE)) return 0n
    }
    return 0n
  }

  private stage2Register(name: string): bigint {
    if (this.state.regime !== 'stage2') throw new HvmemError('input', `${name} applies to stage-2 tables; these are stage-1 tables under TTBR0_EL2`)
    return this.registers().find((r) => r.name === name)!.value
  }

  /** Runs an edit in a transaction; `check` may refuse it before the budget check and the commit. */
  private run(ipa: bigint, size: bigint, edit: Edit, check?: (s: EditState) => void): EditState {
    const tx = new TableTransaction(this.heap)
    const result: EditResult = {ipa, size, written: zero(), unchanged: zero(), cleared: zero(), splits: 0, newTables: tx.newTables, orphanedTables: 0}
    const s: EditState = {tx, edit, result, conflicts: [], holes: []}
    this.editTable(s, this.state.root, START_LEVEL, 0n, ipa, ipa + size)
    check?.(s)
    const tables = this.l2Tables((a) => tx.read(a)).length
    if (tables > this.state.l2Budget) {
      const before = this.l2Tables().length
      const verb = {map: 'mapping', unmap: 'unmapping', protect: 'protecting'}[edit.op]
      throw new HvmemError(
        'mapping-limit',
        `${verb} ${hex(ipa)}-${hex(ipa + size)} needs ${tables - before} new L2 table(s) but ${before} of the budget of ${this.state.l2Budget} are in use; the budget is set when the mapper is created (--l2-budget)`,
      )
    }
    tx.commit()
    this.state.orphanedTables += result.orphanedTables
    return s
  }

  /** Applies the edit to the part of [start, end) that the table at `level`, covering from `base`, translates. */
  private editTable(s: EditState, table: bigint, level: number, base: bigint, start: bigint, end: bigint): void {
    const size = LEVEL_SIZE[level]!
    const from = start > base ? start : base
    const first = Number((from - base) / size)
    const last = Number((end - 1n - base) / size)
    for (let i = first; i <= last && i < ENTRIES; i++) {
      const entryStart = base + BigInt(i) * size
      const entryEnd = entryStart + size
      const s0 = start > entryStart ? start : entryStart
      const e0 = end < entryEnd ? end : entryEnd
      this.editEntry(s, table + BigInt(8 * i), level, entryStart, s0, e0)
    }
  }

  private editEntry(s: EditState, entry: bigint, level: number, entryStart: bigint, start: bigint, end: bigint): void {
    const {tx, edit, result} = s
    const size = LEVEL_SIZE[level]!
    const full = start === entryStart && end === entryStart + size
    const raw = tx.read(entry)
    const d = this.regime.decode(raw, level)
    const isLeaf = d.leaf !== undefined
    if (d.kind === 'table' && !this.heap.memory.contains(d.nextTable!, PAGE_SIZE)) {
      throw new HvmemError('snapshot-invalid', `the L${level} entry at ${hex(entry)} (${hex(raw)}) points at ${hex(d.nextTable!)}, outside RAM: the tables are damaged`)
    }

    if (edit.op === 'map') {
      const oa = edit.pa + (entryStart - edit.ipa) // output address for entryStart, were the whole entry mapped
      const leafFits = full && size <= edit.maxLeaf && oa % size === 0n
      const wanted = leafFits ? (oa & ADDRESS_MASK) | edit.attrBits | VALID | (level === 3 ? TABLE_OR_PAGE : 0n) : undefined
      if (d.kind === 'invalid' || d.kind === 'reserved') {
        if (wanted !== undefined) {
          tx.write(entry, wanted)
          result.written[levelOf(level)]++
        } else this.fillNewTable(s, edit, this.newTable(s, entry, level), level + 1, entryStart, start, end)
        return
      }
      if (isLeaf) {
        const existingOa = d.leaf!.outputAddress + (start - entryStart)
        if (attributesOf(raw) === edit.attrBits && existingOa === edit.pa + (start - edit.ipa)) {
          result.unchanged[levelOf(level)]++ // this part is mapped exactly as asked already
          return
        }
        if (!edit.replace) {
          s.conflicts.push({start, end, existing: raw, oa: existingOa})
          return
        }
        if (wanted !== undefined) {
          tx.write(entry, wanted)
          result.written[levelOf(level)]++
        } else this.editTable(s, this.split(s, entry, level, raw), level + 1, entryStart, start, end)
        return
      }
      // a table: replace it whole with a block, or edit inside it
      if (edit.replace && wanted !== undefined) {
        result.orphanedTables += this.tablesUnder(tx, d.nextTable!, level + 1)
        tx.write(entry, wanted)
        result.written[levelOf(level)]++
      } else this.editTable(s, d.nextTable!, level + 1, entryStart, start, end)
      return
    }

    if (edit.op === 'unmap') {
      if (d.kind === 'invalid') return
      if (d.kind === 'reserved') {
        tx.write(entry, 0n) // a reserved encoding maps nothing; clear it with the rest of the range
        return
      }
      if (full) {
        if (isLeaf) result.cleared[levelOf(level)]++
        else result.orphanedTables += this.tablesUnder(tx, d.nextTable!, level + 1)
        tx.write(entry, 0n)
      } else this.editTable(s, isLeaf ? this.split(s, entry, level, raw) : d.nextTable!, level + 1, entryStart, start, end)
      return
    }

    // protect
    if (d.kind === 'invalid' || d.kind === 'reserved') {
      s.holes.push([start, end])
      return
    }
    if (!isLeaf) {
      this.editTable(s, d.nextTable!, level + 1, entryStart, start, end)
      return
    }
    const changed = edit.change(raw)
    if (changed === raw) result.unchanged[levelOf(level)]++
    else if (full) {
      tx.write(entry, changed)
      result.written[levelOf(level)]++
    } else this.editTable(s, this.split(s, entry, level, raw), level + 1, entryStart, start, end)
  }

  /**
   * A map into a table this edit just made (all its entries invalid): what editTable would do there,
   * without reading or decoding an entry. Runs of whole entries that take leaves are written as two
   * 32-bit halves a descriptor (exact: output addresses are below 2^48), so mapping 262,144 pages or
   * blocks makes no bigint per descriptor.
   */
  private fillNewTable(s: EditState, edit: Extract<Edit, {op: 'map'}>, table: bigint, level: number, base: bigint, start: bigint, end: bigint): void {
    const size = LEVEL_SIZE[level]!
    const from = start > base ? start : base
    const first = Number((from - base) / size)
    const last = Math.min(ENTRIES - 1, Number((end - 1n - base) / size))
    /** the last entry that lies wholly inside [start, end) */
    const lastWhole = Math.min(last, Number((end - base) / size) - 1)
    const leafBits = edit.attrBits | VALID | (level === 3 ? TABLE_OR_PAGE : 0n)
    const bitsLo = Number(leafBits & 0xffff_ffffn)
    const bitsHi = Number(leafBits >> 32n)
    for (let i = first; i <= last; ) {
      const entryStart = base + BigInt(i) * size
      const entryEnd = entryStart + size
      const oa = edit.pa + (entryStart - edit.ipa)
      if (entryStart >= start && entryEnd <= end && size <= edit.maxLeaf && oa % size === 0n) {
        // entries i..lastWhole all take leaves (their output addresses step by `size`, so stay aligned)
        const view = s.tx.pageView(table)
        const step = Number(size)
        let address = Number(oa & ADDRESS_MASK)
        for (let j = i; j <= lastWhole; j++, address += step) {
          view.setUint32(8 * j, ((address % 0x1_0000_0000) | bitsLo) >>> 0, true)
          view.setUint32(8 * j + 4, (Math.floor(address / 0x1_0000_0000) | bitsHi) >>> 0, true)
        }
        s.result.written[levelOf(level)] += lastWhole - i + 1
        i = lastWhole + 1
        continue
      }
      const s0 = start > entryStart ? start : entryStart
      const e0 = end < entryEnd ? end : entryEnd
      this.fillNewTable(s, edit, this.newTable(s, table + BigInt(8 * i), level), level + 1, entryStart, s0, e0)
      i++
    }
  }

  /** A new, empty next-level table hung at `entry`. */
  private newTable(s: EditState, entry: bigint, level: number): bigint {
    if (level >= 3) throw new Error('unreachable: no tables below level 3')
    const table = s.tx.allocTable()
    s.tx.write(entry, tableDescriptor(table))
    return table
  }

  /** Replaces the block at `entry` by a next-level table of 512 leaves mapping exactly what it mapped. */
  private split(s: EditState, entry: bigint, level: number, block: bigint): bigint {
    const childSize = LEVEL_SIZE[level + 1]!
    const oa = this.regime.decode(block, level).leaf!.outputAddress
    const bits = attributesOf(block) | VALID | (level + 1 === 3 ? TABLE_OR_PAGE : 0n)
    const table = this.newTable(s, entry, level)
    for (let j = 0; j < ENTRIES; j++) s.tx.write(table + BigInt(8 * j), (oa + BigInt(j) * childSize) | bits)
    s.result.splits++
    return table
  }

  /** How many tables hang at and below the table at `level` (they become unreachable with it). */
  private tablesUnder(tx: TableTransaction, table: bigint, level: number): number {
    let count = 1
    if (level < 3 && this.heap.memory.contains(table, PAGE_SIZE)) {
      for (let i = 0; i < ENTRIES; i++) {
        const d = this.regime.decode(tx.read(table + BigInt(8 * i)), level)
        if (d.kind === 'table') count += this.tablesUnder(tx, d.nextTable!, level + 1)
      }
    }
    return count
  }

  /** The block that can replace the table at `level`, if its entries are uniform and contiguous. */
  private foldable(tx: TableTransaction, table: bigint, level: number): bigint | undefined {
    if (!this.heap.memory.contains(table, PAGE_SIZE)) return undefined
    const childSize = LEVEL_SIZE[level]!
    const first = tx.read(table)
    const d0 = this.regime.decode(first, level)
    if (d0.leaf === undefined) return undefined
    const oa = d0.leaf.outputAddress
    if (oa % (childSize * BigInt(ENTRIES)) !== 0n) return undefined
    const bits = attributesOf(first)
    for (let j = 1; j < ENTRIES; j++) {
      const raw = tx.read(table + BigInt(8 * j))
      const d = this.regime.decode(raw, level)
      if (d.leaf === undefined || attributesOf(raw) !== bits || d.leaf.outputAddress !== oa + BigInt(j) * childSize) return undefined
    }
    return oa | bits | VALID
  }

  private withAttr(attr: Attr): (descriptor: bigint) => bigint {
    const bits = this.regime.attrBits[attr]
    return (descriptor) => (descriptor & ADDRESS_MASK) | bits | (descriptor & 3n)
  }

  /** Access and execute bits only: S2AP and XN at stage 2, AP[2] and XN at stage 1; the memory type stays. */
  private withPermission(perm: Permission): (descriptor: bigint) => bigint {
    const write = perm.includes('w')
    const exec = perm.includes('x')
    if (this.regime.stage === 2) {
      const s2ap = (write ? 3n : 1n) << 6n
      return (d) => (d & ~(3n << 6n) & ~XN_BITS) | s2ap | (exec ? 0n : XN)
    }
    const ap2 = 1n << 7n
    return (d) => (d & ~ap2 & ~XN_BITS) | (write ? 0n : ap2) | (exec ? 0n : XN)
  }
}

function index(ipa: bigint, level: number): number {
  return Number((ipa >> LEVEL_SHIFT[level]!) & 0x1ffn)
}

function checkBudget(budget: number): void {
  if (!Number.isInteger(budget) || budget < 1 || budget > MAX_L2_BUDGET) {
    throw new HvmemError('input', `L2 table budget must be 1..${MAX_L2_BUDGET} (got ${budget})`)
  }
}

function checkRange(ipa: bigint, size: bigint): void {
  if (size <= 0n) throw new HvmemError('input', `size must be > 0 (got ${size})`)
  if (ipa < 0n || ipa % PAGE !== 0n) throw new HvmemError('input', `IPA ${hex(ipa)} is not 4 KiB aligned`)
  if (size % PAGE !== 0n) throw new HvmemError('input', `size ${hex(size)} is not a multiple of 4 KiB`)
  if (ipa + size > IPA_LIMIT) throw new HvmemError('input', `${hex(ipa)}-${hex(ipa + size)} ends past the 39-bit input address space (${hex(IPA_LIMIT)}, T0SZ = 25)`)
}

/** Joins neighbouring conflicts where one existing mapping continues, so the message names it whole. */
function mergeConflicts(conflicts: Conflict[]): Conflict[] {
  const out: Conflict[] = []
  for (const c of conflicts) {
    const last = out.at(-1)
    if (last !== undefined && last.end === c.start && attributesOf(last.existing) === attributesOf(c.existing) && last.oa + (last.end - last.start) === c.oa) last.end = c.end
    else out.push({...c})
  }
  return out
}

function describeExisting(regime: Regime, c: Conflict): string {
  const attr = regime.attrOf(c.existing)
  return `${attr ?? 'with other attributes'} to ${hex(c.oa)} (${formatSize(c.end - c.start)}, descriptor ${hex(c.existing)})`
}

/** The L2 tables the L1 table at `root` points at, one per table entry: what counts against a mapper's L2 budget. */
export function l2TablesAt(regime: Regime, root: bigint, read: (address: bigint) => bigint): bigint[] {
  const out: bigint[] = []
  for (let i = 0; i < ENTRIES; i++) {
    const d = regime.decode(read(root + BigInt(8 * i)), 1)
    if (d.kind === 'table') out.push(d.nextTable!)
  }
  return out
}
