import {ADDRESS_MASK, type Attr, type Regime, type RegimeName, XN, isLeafLow} from './descriptor.js'
import {HvmemError} from './errors.js'
import {DEFAULT_GRANULE, DEFAULT_INPUT_BITS, FINAL_LEVEL, type Geometry, type Granule, MEMORY_PAGE, geometryFor, granuleName} from './geometry.js'
import type {Heap} from './heap.js'
import {type Register, checkVmid, registersFor} from './registers.js'
import {STAGE1} from './stage1.js'
import {STAGE2} from './stage2.js'
import {TableTransaction} from './transaction.js'
import {GiB, MiB, formatSize, hex} from './u64.js'
import {TableWalker, type Unfollowed, type Visitor, memoryAccess, rawOf} from './walker.js'

export const DEFAULT_L2_BUDGET = 4
export const MAX_L2_BUDGET = 512
/** The level whose tables the budget counts: the sprint plan's on-demand L2 tables. */
const BUDGET_LEVEL = 2
const TWO_32 = 2 ** 32

export const REGIMES: Record<RegimeName, Regime> = {stage2: STAGE2, stage1: STAGE1}

/** What a snapshot stores of the mapper; the tables themselves are found by walking the root. */
export interface MapperState {
  regime: RegimeName
  root: bigint
  vmid: number
  l2Budget: number
  /** table pages that coalesce or a replacing map left unreachable (a bump allocator cannot free them) */
  orphanedTables: number
  /** the geometry: the rest (start level, concatenation, PA size) follows from these and the regime */
  granule: Granule
  inputBits: number
}

export interface MapperOptions {
  regime?: RegimeName
  vmid?: number
  l2Budget?: number
  granule?: Granule
  /** IPA bits (stage 2) or VA bits (stage 1) */
  inputBits?: number
}

/** The mapper's geometry, from its state. */
export function mapperGeometry(state: Pick<MapperState, 'regime' | 'granule' | 'inputBits'>): Geometry {
  return geometryFor(state.regime === 'stage2' ? 2 : 1, {granule: state.granule, inputBits: state.inputBits})
}

/** The largest leaf a map may use, by name (the original three) or as a size in bytes. */
export type Granularity = 'page' | '2M' | '1G'
export const GRANULARITIES: readonly Granularity[] = ['page', '2M', '1G']

export interface MapOptions {
  /** output address of `ipa` (default: `ipa`, an identity map) */
  pa?: bigint
  /** the largest leaf to use: a size the geometry has a leaf for ('page' is the granule); default the largest */
  granularity?: Granularity | bigint
  /** overwrite existing mappings instead of refusing */
  replace?: boolean
}

/** Leaf descriptors written, left or cleared, by level: a key for each level the geometry has leaves at (4 KiB: 1, 2, 3). */
export type LeafCounts = Record<number, number>

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

interface Conflict {
  start: number
  end: number
  lo: number
  hi: number
  /** the existing output address at `start` */
  oa: number
}

const zero = (g: Geometry): LeafCounts => Object.fromEntries(g.leafSizes().map((l) => [l.level, 0]))
/** The attribute bits of a leaf, as halves: everything but the output address and bits 1:0. */
const ATTR_LO = Number(~ADDRESS_MASK & 0xffff_fffcn)
const ATTR_HI = Number((~ADDRESS_MASK >> 32n) & 0xffff_ffffn)
const hi32 = (value: number): number => Math.floor(value / TWO_32)
const lo32 = (value: number): number => value - hi32(value) * TWO_32

/**
 * What every edit walk shares: the transaction it writes through, its result, and the moves that
 * change the tree's shape (a new table, a split, counting the tables a cleared entry drops).
 */
abstract class Edit implements Visitor {
  readonly result: EditResult
  constructor(
    protected readonly tx: TableTransaction,
    protected readonly geometry: Geometry,
    ipa: bigint,
    size: bigint,
  ) {
    this.result = {ipa, size, written: zero(geometry), unchanged: zero(geometry), cleared: zero(geometry), splits: 0, newTables: tx.newTables, orphanedTables: 0}
  }

  /** A new, empty next-level table hung at the current entry: the walk goes down into it. */
  protected newTable(w: TableWalker): number {
    const table = Number(this.tx.allocTable(this.geometry.granule, BigInt(this.geometry.granule)))
    w.set(lo32(table) | 3, hi32(table))
    return table
  }

  /** Replaces the block at the current entry by a next-level table of leaves that map exactly what it mapped. */
  protected split(w: TableWalker): void {
    const g = this.geometry
    const childLevel = w.level + 1
    const childSize = g.entryBytes(childLevel)
    const attrLo = (w.lo & ATTR_LO) | 1 | (childLevel === FINAL_LEVEL ? 2 : 0)
    const attrHi = w.hi & ATTR_HI
    let oa = w.output
    const table = this.newTable(w)
    // one typed-array loop a 4 KiB page of the new table
    for (let page = 0; page < g.granule / MEMORY_PAGE; page++) {
      const view = this.tx.writable(table / MEMORY_PAGE + page)
      for (let j = 0; j < MEMORY_PAGE / 8; j++, oa += childSize) {
        view.setUint32(8 * j, (lo32(oa) | attrLo) >>> 0, true)
        view.setUint32(8 * j + 4, (hi32(oa) | attrHi) >>> 0, true)
      }
    }
    this.result.splits++
  }

  /** How many tables hang at and below the current table entry (they become unreachable with it). */
  protected tablesUnder(w: TableWalker): number {
    let count = 1
    new TableWalker(this.tx, this.geometry).walkFrom(w.next, w.level + 1, w.addr, w.addr, w.addr + w.size, {tablePre: () => void count++}, {validOnly: true})
    return count
  }

  /** Writes a leaf at the current entry for output `oa` with attribute halves. */
  protected writeLeaf(w: TableWalker, oa: number, attrLo: number, attrHi: number): void {
    w.set(lo32(oa) | attrLo | 1 | (w.level === FINAL_LEVEL ? 2 : 0), hi32(oa) | attrHi)
  }

  abstract leaf(w: TableWalker): void

  /** A table outside RAM or reached twice: hvmem never builds either, so the tables are damaged. */
  unfollowed(w: TableWalker, why: Unfollowed): void {
    const where = why === 'outside-ram' ? 'outside RAM' : 'a table the walk reached already (a loop or an alias)'
    throw new HvmemError('snapshot-invalid', `the L${w.level} entry at ${hex(BigInt(w.table + 8 * w.index))} (${hex(w.raw)}) points at ${hex(BigInt(w.next))}, ${where}: the tables are damaged`)
  }

  /** Whether the current non-table entry is a leaf (a block or a page) in this geometry. */
  protected isLeaf(w: TableWalker): boolean {
    return isLeafLow(w.lo, w.level, this.geometry)
  }
}

class MapEdit extends Edit {
  readonly conflicts: Conflict[] = []
  private readonly attrLo: number
  private readonly attrHi: number
  /** output minus input (may be negative) */
  private readonly delta: number
  /** per level: whether a leaf may be used there (its size is allowed and the output stays aligned) */
  private readonly leafOk: boolean[] = []

  constructor(
    tx: TableTransaction,
    geometry: Geometry,
    ipa: bigint,
    size: bigint,
    pa: bigint,
    attrBits: bigint,
    maxLeaf: bigint,
    private readonly replace: boolean,
  ) {
    super(tx, geometry, ipa, size)
    this.attrLo = Number(attrBits & 0xffff_ffffn)
    this.attrHi = Number(attrBits >> 32n)
    this.delta = Number(pa - ipa)
    for (let level = 0; level <= FINAL_LEVEL; level++) {
      const s = geometry.entrySize(level)
      this.leafOk.push(geometry.canLeaf(level) && s <= maxLeaf && (pa - ipa) % s === 0n)
    }
  }

  tablePre(w: TableWalker): boolean {
    if (!(this.replace && w.whole && this.leafOk[w.level]!)) return true
    // replace the whole table with one leaf
    this.result.orphanedTables += this.tablesUnder(w)
    this.writeLeaf(w, w.addr + this.delta, this.attrLo, this.attrHi)
    this.result.written[w.level]!++
    return false
  }

  leaf(w: TableWalker): void {
    const fits = this.leafOk[w.level]! && w.whole
    if (!this.isLeaf(w)) {
      // invalid or reserved: nothing is mapped here
      if (!fits) this.newTable(w)
      else if ((w.lo & 1) === 0) {
        // this and the invalid entries after it in the table, in one loop
        this.result.written[w.level]! += w.writeRun(w.addr + this.delta, this.attrLo | 1 | (w.level === FINAL_LEVEL ? 2 : 0), this.attrHi)
      } else {
        this.writeLeaf(w, w.addr + this.delta, this.attrLo, this.attrHi)
        this.result.written[w.level]!++
      }
      return
    }
    const existing = w.output + (w.start - w.addr)
    if ((w.lo & ATTR_LO) === this.attrLo && (w.hi & ATTR_HI) === this.attrHi && existing === w.start + this.delta) {
      this.result.unchanged[w.level]!++ // this part is mapped exactly as asked already
      return
    }
    if (!this.replace) {
      this.conflicts.push({start: w.start, end: w.end, lo: w.lo, hi: w.hi, oa: existing})
      return
    }
    if (fits) {
      this.writeLeaf(w, w.addr + this.delta, this.attrLo, this.attrHi)
      this.result.written[w.level]!++
    } else this.split(w)
  }
}

class UnmapEdit extends Edit {
  tablePre(w: TableWalker): boolean {
    if (!w.whole) return true
    this.result.orphanedTables += this.tablesUnder(w)
    w.set(0, 0)
    return false
  }

  leaf(w: TableWalker): void {
    if ((w.lo & 1) === 0) return
    if (!this.isLeaf(w)) w.set(0, 0) // a reserved encoding maps nothing; clear it with the rest of the range
    else if (w.whole) {
      this.result.cleared[w.level]!++
      w.set(0, 0)
    } else this.split(w)
  }
}

class ProtectEdit extends Edit {
  readonly holes: Array<[number, number]> = []

  constructor(
    tx: TableTransaction,
    geometry: Geometry,
    ipa: bigint,
    size: bigint,
    private readonly change: (descriptor: bigint) => bigint,
  ) {
    super(tx, geometry, ipa, size)
  }

  leaf(w: TableWalker): void {
    if (!this.isLeaf(w)) {
      this.holes.push([w.start, w.end])
      return
    }
    const raw = w.raw
    const changed = this.change(raw)
    if (changed === raw) this.result.unchanged[w.level]!++
    else if (w.whole) {
      w.set(Number(changed & 0xffff_ffffn), Number(changed >> 32n))
      this.result.written[w.level]!++
    } else this.split(w)
  }
}

/**
 * Folds each table whose entries are all valid leaves with identical attributes and contiguous
 * output, aligned to the block it becomes, into that block: after the walk comes back from the
 * table (table-post), so the lowest tables fold first and their parents can fold in turn.
 */
class CoalesceEdit implements Visitor {
  readonly blocks: CoalesceResult['blocks'] = []

  constructor(
    private readonly tx: TableTransaction,
    private readonly geometry: Geometry,
  ) {}

  tablePost(w: TableWalker): void {
    const g = this.geometry
    if (!g.canBlock(w.level) || !w.whole) return
    // the table's entries, read by a walk of it: all leaves, one set of attributes, contiguous output from an aligned start
    let uniform = true
    let attrLo = -1
    let attrHi = 0
    let blockOa = 0
    new TableWalker(this.tx, g).walkFrom(w.next, w.level + 1, w.addr, w.addr, w.addr + w.size, {
      tablePre: () => {
        uniform = false
        return false
      },
      leaf: (c) => {
        if (!uniform) return
        if (!isLeafLow(c.lo, c.level, g)) uniform = false
        else if (attrLo === -1) {
          attrLo = c.lo & ATTR_LO
          attrHi = c.hi & ATTR_HI
          blockOa = c.output
          uniform = blockOa % w.size === 0
        } else uniform = (c.lo & ATTR_LO) === attrLo && (c.hi & ATTR_HI) === attrHi && c.output === blockOa + (c.addr - w.addr)
      },
    })
    if (!uniform || attrLo === -1) return
    w.set(lo32(blockOa) | attrLo | 1, hi32(blockOa) | attrHi)
    this.blocks.push({ipa: BigInt(w.addr), level: w.level, descriptor: w.raw})
  }
}

/** Counts table entries at the budget's level - 1 (one per entry, as the sprint plan's L1 table holds them). */
function budgetTables(walker: TableWalker, root: number): bigint[] {
  const g = walker.geometry
  const out: bigint[] = []
  if (g.startLevel >= BUDGET_LEVEL) return out
  walker.walk(root, 0, 2 ** g.inputBits, {
    tablePre: (w) => {
      if (w.level < BUDGET_LEVEL - 1) return true
      out.push(BigInt(w.next))
      return false
    },
  }, {validOnly: true})
  return out
}

/**
 * The plan's DynamicIdentityMapper grown up: a root table in any geometry (granule, input size,
 * start level and concatenation from geometry.ts) and tables below it allocated from the heap on
 * demand (level-2 tables within a budget, the others as the heap allows). Maps use the largest leaf
 * that the alignment of input and output allows, identity by default. Unmap and protect split a
 * block that the range covers only in part, keeping the rest exactly as it was; coalesce folds a
 * table of uniform, contiguous leaves back into one block. The regime is stage 2 (VTTBR_EL2, the
 * default) or the hypervisor's own stage 1 (TTBR0_EL2), fixed at creation with the geometry.
 *
 * Every operation is an edit walk (walker.ts) in a TableTransaction, committed only once conflicts,
 * the level-2 table budget and the heap have all allowed it: all or nothing.
 */
export class IdentityMapper {
  readonly geometry: Geometry

  private constructor(
    private readonly heap: Heap,
    readonly state: MapperState,
  ) {
    this.geometry = mapperGeometry(state)
  }

  /** Allocates and zeroes the root table (all its concatenated tables, aligned to their size). */
  static create(heap: Heap, options: MapperOptions = {}): IdentityMapper {
    const regime = options.regime ?? 'stage2'
    const vmid = options.vmid ?? 0
    const l2Budget = options.l2Budget ?? DEFAULT_L2_BUDGET
    checkVmid(vmid)
    if (regime === 'stage1' && vmid !== 0) throw new HvmemError('input', 'a VMID applies to stage-2 tables only; the stage-1 (EL2) regime has none')
    checkBudget(l2Budget)
    const granule = options.granule ?? DEFAULT_GRANULE
    const inputBits = options.inputBits ?? DEFAULT_INPUT_BITS
    const geometry = mapperGeometry({regime, granule, inputBits})
    const bytes = geometry.tableBytes(geometry.startLevel)
    const root = heap.allocAligned(BigInt(bytes), geometry.rootAlign)
    heap.memory.zero(root, BigInt(bytes))
    return new IdentityMapper(heap, {regime, root, vmid, l2Budget, orphanedTables: 0, granule, inputBits})
  }

  /** Re-binds a mapper loaded from a snapshot, checking that its root table is readable. */
  static attach(heap: Heap, state: MapperState): IdentityMapper {
    checkVmid(state.vmid)
    checkBudget(state.l2Budget)
    if (state.regime === 'stage1' && state.vmid !== 0) throw new HvmemError('snapshot-invalid', `a stage-1 mapper has VMID ${state.vmid}`)
    let geometry: Geometry
    try {
      geometry = mapperGeometry(state)
    } catch (error) {
      if (error instanceof HvmemError) throw new HvmemError('snapshot-invalid', `the mapper's geometry is not valid: ${error.message}`)
      throw error
    }
    const bytes = BigInt(geometry.tableBytes(geometry.startLevel))
    if (state.root % geometry.rootAlign !== 0n || !heap.memory.contains(state.root, bytes)) {
      throw new HvmemError('snapshot-invalid', `mapper root table ${hex(state.root)} is not a ${formatSize(geometry.rootAlign)}-aligned table inside RAM`)
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
    return registersFor(this.state.regime, this.state.root, this.state.vmid, this.geometry)
  }

  /** The level-2 tables, one per table entry at level 1, in input-address order: what counts against the budget. */
  l2Tables(): bigint[] {
    return budgetTables(new TableWalker(memoryAccess(this.heap.memory), this.geometry), Number(this.state.root))
  }

  /** The largest leaf size a map may use for `granularity`, checked against the geometry. */
  maxLeaf(granularity: Granularity | bigint | undefined): bigint {
    const g = this.geometry
    const sizes = g.leafSizes()
    if (granularity === undefined) return sizes[0]!.size
    const size = granularity === 'page' ? BigInt(g.granule) : granularity === '2M' ? 2n * MiB : granularity === '1G' ? GiB : granularity
    if (!sizes.some((s) => s.size === size)) {
      throw new HvmemError('input', `the ${granuleName(g.granule)} granule has no ${formatSize(size)} leaf; its leaves are ${sizes.map((s) => `${formatSize(s.size)} (L${s.level})`).join(', ')}`)
    }
    return size
  }

  /** Maps [ipa, ipa + size) to [pa, pa + size) with `attr`. Refuses to change an existing mapping unless `replace`. */
  mapRegion(ipa: bigint, size: bigint, attr: Attr, options: MapOptions = {}): MapResult {
    const g = this.geometry
    const pa = options.pa ?? ipa
    const maxLeaf = this.maxLeaf(options.granularity)
    this.checkRange(ipa, size)
    if (pa % BigInt(g.granule) !== 0n || pa < 0n) throw new HvmemError('input', `PA ${hex(pa)} is not aligned to the ${g.granule / 1024} KiB granule`)
    if (pa + size > g.paLimit) throw new HvmemError('input', `output ${hex(pa)}-${hex(pa + size)} ends past the ${g.paBits}-bit physical address space (${hex(g.paLimit)})`)
    const attrBits = this.regime.attrBits[attr]
    const {result} = this.run(ipa, size, (tx) => new MapEdit(tx, g, ipa, size, pa, attrBits, maxLeaf, options.replace ?? false), (edit) => {
      const c = mergeConflicts(edit.conflicts)[0]
      if (c !== undefined) {
        throw new HvmemError(
          'mapping-conflict',
          `cannot map ${hex(ipa)}-${hex(ipa + size)} as ${attr}: ${hex(BigInt(c.start))}-${hex(BigInt(c.end))} is already mapped ${this.describeExisting(c)}; unmap it first, or pass --replace`,
        )
      }
    })
    return {...result, pa, attr, descriptor: this.leafAt(ipa)}
  }

  /** Removes every mapping in [ipa, ipa + size); a block the range covers in part is split first. */
  unmap(ipa: bigint, size: bigint): EditResult {
    this.checkRange(ipa, size)
    return this.run(ipa, size, (tx) => new UnmapEdit(tx, this.geometry, ipa, size)).result
  }

  /** Changes the attributes or permissions of every mapping in [ipa, ipa + size), which must be mapped throughout. */
  protect(ipa: bigint, size: bigint, protection: Protection): EditResult {
    this.checkRange(ipa, size)
    const change = 'attr' in protection ? this.withAttr(protection.attr) : this.withPermission(protection.perm)
    return this.run(ipa, size, (tx) => new ProtectEdit(tx, this.geometry, ipa, size, change), (edit) => {
      const hole = mergeHoles(edit.holes)[0]
      if (hole !== undefined) throw new HvmemError('input', `cannot protect ${hex(ipa)}-${hex(ipa + size)}: ${hex(BigInt(hole[0]))}-${hex(BigInt(hole[1]))} is not mapped`)
    }).result
  }

  /**
   * Folds every table whose entries are valid leaves with identical attributes and physically
   * contiguous, block-aligned output into one block of the level above (the lowest tables first).
   * The folded tables become unreachable: the bump allocator cannot free them.
   */
  coalesce(): CoalesceResult {
    const tx = new TableTransaction(this.heap)
    const edit = new CoalesceEdit(tx, this.geometry)
    new TableWalker(tx, this.geometry).walk(Number(this.state.root), 0, 2 ** this.geometry.inputBits, edit, {validOnly: true})
    tx.commit()
    const orphaned = edit.blocks.length
    this.state.orphanedTables += orphaned
    // every fold, in input-address order (a parent's after its children's, which it took in)
    const blocks = [...edit.blocks]
    blocks.sort((a, b) => (a.ipa < b.ipa ? -1 : a.ipa > b.ipa ? 1 : 0))
    return {blocks, orphanedTables: orphaned}
  }

  /** The leaf descriptor that maps `ipa`, or 0 if none does. */
  leafAt(ipa: bigint): bigint {
    let found = 0n
    const g = this.geometry
    const at = Number(ipa)
    new TableWalker(memoryAccess(this.heap.memory), g).walk(Number(this.state.root), at, at + 1, {
      leaf: (w) => {
        if (isLeafLow(w.lo, w.level, g)) found = w.raw
      },
    }, {validOnly: true})
    return found
  }

  private stage2Register(name: string): bigint {
    if (this.state.regime !== 'stage2') throw new HvmemError('input', `${name} applies to stage-2 tables; these are stage-1 tables under TTBR0_EL2`)
    return this.registers().find((r) => r.name === name)!.value
  }

  /** Runs an edit walk in a transaction; `check` may refuse it before the budget check and the commit. */
  private run<E extends Edit>(ipa: bigint, size: bigint, make: (tx: TableTransaction) => E, check?: (edit: E) => void): {result: EditResult; edit: E} {
    const tx = new TableTransaction(this.heap)
    const edit = make(tx)
    const walker = new TableWalker(tx, this.geometry)
    walker.walk(Number(this.state.root), Number(ipa), Number(ipa + size), edit)
    check?.(edit)
    if (tx.newTables.length > 0 && this.geometry.startLevel < BUDGET_LEVEL) {
      // only an edit that made tables can have grown the count
      const tables = budgetTables(walker, Number(this.state.root)).length
      if (tables > this.state.l2Budget) {
        const before = this.l2Tables().length
        const verb = edit instanceof MapEdit ? 'mapping' : edit instanceof UnmapEdit ? 'unmapping' : 'protecting'
        throw new HvmemError(
          'mapping-limit',
          `${verb} ${hex(ipa)}-${hex(ipa + size)} needs ${tables - before} new L2 table(s) but ${before} of the budget of ${this.state.l2Budget} are in use; the budget is set when the mapper is created (--l2-budget)`,
        )
      }
    }
    tx.commit()
    this.state.orphanedTables += edit.result.orphanedTables
    return {result: edit.result, edit}
  }

  private checkRange(ipa: bigint, size: bigint): void {
    const g = this.geometry
    const granule = BigInt(g.granule)
    const name = `${g.granule / 1024} KiB`
    if (size <= 0n) throw new HvmemError('input', `size must be > 0 (got ${size})`)
    if (ipa < 0n || ipa % granule !== 0n) throw new HvmemError('input', `IPA ${hex(ipa)} is not aligned to the ${name} granule`)
    if (size % granule !== 0n) throw new HvmemError('input', `size ${hex(size)} is not a multiple of the ${name} granule`)
    if (ipa + size > g.inputLimit) throw new HvmemError('input', `${hex(ipa)}-${hex(ipa + size)} ends past the ${g.inputBits}-bit input address space (${hex(g.inputLimit)}, T0SZ = ${64 - g.inputBits})`)
  }

  private describeExisting(c: Conflict): string {
    const existing = rawOf(c.lo, c.hi)
    const attr = this.regime.attrOf(existing)
    return `${attr ?? 'with other attributes'} to ${hex(BigInt(c.oa))} (${formatSize(BigInt(c.end - c.start))}, descriptor ${hex(existing)})`
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

function checkBudget(budget: number): void {
  if (!Number.isInteger(budget) || budget < 1 || budget > MAX_L2_BUDGET) {
    throw new HvmemError('input', `L2 table budget must be 1..${MAX_L2_BUDGET} (got ${budget})`)
  }
}

/** Joins neighbouring conflicts where one existing mapping continues, so the message names it whole. */
function mergeConflicts(conflicts: Conflict[]): Conflict[] {
  const out: Conflict[] = []
  for (const c of conflicts) {
    const last = out.at(-1)
    if (last !== undefined && last.end === c.start && (last.lo & ATTR_LO) === (c.lo & ATTR_LO) && (last.hi & ATTR_HI) === (c.hi & ATTR_HI) && last.oa + (last.end - last.start) === c.oa) last.end = c.end
    else out.push({...c})
  }
  return out
}

/** Joins neighbouring holes, so the message names each unmapped stretch whole. */
function mergeHoles(holes: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const [start, end] of holes) {
    const last = out.at(-1)
    if (last !== undefined && last[1] === start) last[1] = end
    else out.push([start, end])
  }
  return out
}

/** The level-2 tables the tree at `root` holds, one per table entry at level 1: what counts against a mapper's L2 budget. */
export function l2TablesAt(memory: Heap['memory'], geometry: Geometry, root: bigint): bigint[] {
  return budgetTables(new TableWalker(memoryAccess(memory), geometry), Number(root))
}
