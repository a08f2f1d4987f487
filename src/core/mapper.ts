import {PAGE_SIZE} from './allocator.js'
import {HvmemError} from './errors.js'
import type {Heap} from './heap.js'
import {type Attr, LEVEL_SHIFT, LEVEL_SIZE, type Regime, type RegimeName, kindOf, tableDescriptor} from './descriptor.js'
import {IPA_LIMIT, PA_LIMIT, type Register, checkVmid, registersFor} from './registers.js'
import {STAGE1} from './stage1.js'
import {STAGE2} from './stage2.js'
import {hex} from './u64.js'

export const DEFAULT_L2_BUDGET = 4
export const MAX_L2_BUDGET = 512
const BLOCK = LEVEL_SIZE[2]!
const ENTRIES = 512

export const REGIMES: Record<RegimeName, Regime> = {stage2: STAGE2, stage1: STAGE1}

/** What a snapshot stores of the mapper; the L2 tables are found by walking the root. */
export interface MapperState {
  regime: RegimeName
  root: bigint
  vmid: number
  l2Budget: number
}

export interface MapperOptions {
  regime?: RegimeName
  vmid?: number
  l2Budget?: number
}

export interface MapResult {
  ipa: bigint
  size: bigint
  attr: Attr
  /** the block descriptor written for the first block */
  descriptor: bigint
  blocks: number
  written: number
  unchanged: number
  newTables: bigint[]
}

interface PlannedWrite {
  l1Index: number
  l2Index: number
  descriptor: bigint
}

/**
 * The plan's DynamicIdentityMapper: an L1 table (39-bit input addresses, walks from level 1) and L2
 * tables of 2 MiB block descriptors, allocated from the heap on demand within a budget. The regime is
 * stage 2 (VTTBR_EL2, the default) or the hypervisor's own stage 1 (TTBR0_EL2), fixed at creation.
 *
 * Fixed against the plan: aligned inputs only; stage-2 encodings; a plan is made and checked
 * (conflicts, budget, heap) before anything is written, so a failing map changes nothing;
 * an existing different entry is a conflict, the same entry a no-op; an L1 block is not taken for
 * "no table"; table addresses are masked with bits 47:12; the VTTBR carries the VMID.
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
    return new IdentityMapper(heap, {regime, root: root!, vmid, l2Budget})
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

  private stage2Register(name: string): bigint {
    if (this.state.regime !== 'stage2') throw new HvmemError('input', `${name} applies to stage-2 tables; these are stage-1 tables under TTBR0_EL2`)
    return this.registers().find((r) => r.name === name)!.value
  }

  /** The registers that install these tables, decoded (VTTBR/VTCR/HCR for stage 2; TTBR0/TCR/MAIR/SCTLR/HCR for stage 1). */
  registers(): Register[] {
    return registersFor(this.state.regime, this.state.root, this.state.vmid)
  }

  /** The L2 tables the L1 table points at, in L1 index order. */
  l2Tables(): bigint[] {
    const out: bigint[] = []
    for (let i = 0; i < ENTRIES; i++) {
      const d = this.regime.decode(this.l1Entry(i), 1)
      if (d.kind === 'table') out.push(d.nextTable!)
    }
    return out
  }

  /** Identity-maps [ipa, ipa + size) with 2 MiB blocks. All or nothing. */
  mapRegion(ipa: bigint, size: bigint, attr: Attr): MapResult {
    checkRange(ipa, size)
    const writes: PlannedWrite[] = []
    const newTableFor = new Set<number>()
    let unchanged = 0
    let conflict: {start: bigint; end: bigint; existing: bigint} | undefined

    for (let at = ipa; at < ipa + size; at += BLOCK) {
      const l1Index = index(at, 1)
      const l2Index = index(at, 2)
      const descriptor = this.regime.leafDescriptor(2, at, attr)
      const existing = this.existingL2Entry(l1Index, l2Index, at)
      if (existing === undefined) newTableFor.add(l1Index)
      if (existing === undefined || kindOf(existing, 2) === 'invalid') {
        writes.push({l1Index, l2Index, descriptor})
      } else if (existing === descriptor) {
        unchanged++
      } else if (conflict === undefined) {
        conflict = {start: at, end: at + BLOCK, existing}
      } else if (conflict.end === at && existing === conflict.existing + (at - conflict.start)) {
        conflict.end = at + BLOCK // the same mapping continues: report it as one range
      }
    }

    if (conflict !== undefined) {
      throw new HvmemError(
        'mapping-conflict',
        `cannot map ${hex(ipa)}-${hex(ipa + size)} as ${attr}: ${hex(conflict.start)}-${hex(conflict.end)} is already mapped ${describeExisting(this.regime, conflict.existing)}; hvmem never overwrites a mapping`,
      )
    }

    const tables = this.l2Tables().length
    if (tables + newTableFor.size > this.state.l2Budget) {
      throw new HvmemError(
        'mapping-limit',
        `mapping ${hex(ipa)}-${hex(ipa + size)} needs ${newTableFor.size} new L2 table(s) but ${tables} of the budget of ${this.state.l2Budget} are in use; the budget is set when the mapper is created (--l2-budget)`,
      )
    }

    // Everything is checked; from here nothing can fail but the heap, which allocates all tables or none.
    const newTables = newTableFor.size > 0 ? this.heap.allocZeroedPages(newTableFor.size) : []
    const tableOf = new Map<number, bigint>()
    ;[...newTableFor].forEach((l1Index, i) => {
      tableOf.set(l1Index, newTables[i]!)
      this.heap.memory.writeU64(this.state.root + BigInt(8 * l1Index), tableDescriptor(newTables[i]!))
    })
    for (const w of writes) {
      const table = tableOf.get(w.l1Index) ?? this.regime.decode(this.l1Entry(w.l1Index), 1).nextTable!
      this.heap.memory.writeU64(table + BigInt(8 * w.l2Index), w.descriptor)
    }

    return {ipa, size, attr, descriptor: this.regime.leafDescriptor(2, ipa, attr), blocks: Number(size / BLOCK), written: writes.length, unchanged, newTables}
  }

  private l1Entry(l1Index: number): bigint {
    return this.heap.memory.readU64(this.state.root + BigInt(8 * l1Index))
  }

  /** The L2 entry for `ipa`, or undefined when no L2 table exists yet. An L1 block is a conflict. */
  private existingL2Entry(l1Index: number, l2Index: number, ipa: bigint): bigint | undefined {
    const l1 = this.regime.decode(this.l1Entry(l1Index), 1)
    if (l1.kind === 'invalid') return undefined
    if (l1.kind === 'block') {
      const start = ipa & ~(LEVEL_SIZE[1]! - 1n)
      throw new HvmemError('mapping-conflict', `${hex(start)}-${hex(start + LEVEL_SIZE[1]!)} is already mapped by a 1 GiB block (L1[${l1Index}] = ${hex(l1.raw)}); hvmem never overwrites a mapping`)
    }
    const table = l1.nextTable!
    if (!this.heap.memory.contains(table, PAGE_SIZE)) {
      throw new HvmemError('snapshot-invalid', `L1[${l1Index}] = ${hex(l1.raw)} points at ${hex(table)}, outside RAM`)
    }
    return this.heap.memory.readU64(table + BigInt(8 * l2Index))
  }
}

function index(ipa: bigint, level: 1 | 2): number {
  return Number((ipa >> LEVEL_SHIFT[level]!) & 0x1ffn)
}

function checkBudget(budget: number): void {
  if (!Number.isInteger(budget) || budget < 1 || budget > MAX_L2_BUDGET) {
    throw new HvmemError('input', `L2 table budget must be 1..${MAX_L2_BUDGET} (got ${budget})`)
  }
}

function checkRange(ipa: bigint, size: bigint): void {
  if (size <= 0n) throw new HvmemError('input', `size must be > 0 (got ${size})`)
  if (ipa % BLOCK !== 0n) throw new HvmemError('input', `IPA ${hex(ipa)} is not 2 MiB aligned (identity maps use 2 MiB blocks)`)
  if (size % BLOCK !== 0n) throw new HvmemError('input', `size ${hex(size)} is not a multiple of 2 MiB (identity maps use 2 MiB blocks)`)
  const limit = IPA_LIMIT < PA_LIMIT ? IPA_LIMIT : PA_LIMIT
  if (ipa + size > limit) {
    throw new HvmemError('input', `${hex(ipa)}-${hex(ipa + size)} ends past the 39-bit input address space (${hex(limit)}, T0SZ = 25)`)
  }
}

function describeExisting(regime: Regime, descriptor: bigint): string {
  const attr = regime.attrOf(descriptor)
  const d = regime.decode(descriptor, 2)
  if (d.kind === 'table') return `through an L3 table at ${hex(d.nextTable!)}`
  const target = d.leaf ? ` to ${hex(d.leaf.outputAddress)}` : ''
  return `${attr ?? 'with other attributes'}${target} (descriptor ${hex(descriptor)})`
}
