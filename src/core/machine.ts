import {BumpAllocator, type AllocatorState} from './allocator.js'
import {HvmemError} from './errors.js'
import {Heap, checkLayout} from './heap.js'
import {IdentityMapper, type MapperOptions, type MapperState} from './mapper.js'
import {PhysicalMemory} from './memory.js'
import {FINAL_LEVEL, type Geometry, MEMORY_PAGE, granuleName} from './geometry.js'
import {hex} from './u64.js'
import {type ScanSink, TableWalker, type Unfollowed, type WalkCursor, type WalkEntry, peekingAccess, skippingAccess, walkEntries, walkTables} from './walker.js'

export interface Layout {
  ramBase: bigint
  ramSize: bigint
  heapBase: bigint
  heapSize: bigint
}

/** Everything a snapshot holds, apart from memory contents. */
export interface MachineState {
  ram: {base: bigint; size: bigint}
  heap: AllocatorState
  mapper: MapperState | undefined
  /** system registers recorded with the memory (snapshot capture), by architectural name; none if absent */
  registers?: readonly RecordedRegister[]
}

/** A system register's value as recorded when the snapshot was captured from a running guest. */
export interface RecordedRegister {
  /** the architectural name, upper case: TTBR1_EL1, TCR_EL1, VTTBR_EL2, CPSR... */
  name: string
  value: bigint
}

export interface HeapResetResult {
  /** the mapper's table pages that were zeroed, when --discard-mapper dropped it */
  discardedTables: bigint[]
}

/** SCTLR_ELx.M (the stage-1 MMU enabled) and HCR_EL2.VM (stage 2 enabled): bit 0 of each. */
const SCTLR_M = 1n
const HCR_VM = 1n

/** A point a machine can return to (Machine.checkpoint). */
export interface Checkpoint {
  rollback(): void
  release(): void
  /** the frames (address >> 12) changed since the checkpoint, ascending */
  changedFrames(): number[]
  /** the machine as it was at the checkpoint (read-only, until the machine changes again) */
  before(): Machine
}

/**
 * The emulated machine a snapshot holds: RAM, the heap in it, and the stage-2 mapper whose tables
 * live in the heap. Commands load one, change it, and save it; the rules that span the parts
 * (creating the mapper on first use, resetting a heap that holds live tables) live here.
 */
export class Machine {
  private mapperInstance: IdentityMapper | undefined

  private constructor(
    readonly memory: PhysicalMemory,
    readonly heap: Heap,
    mapper: MapperState | undefined,
    /** the system registers recorded with the memory (snapshot capture), in the order read */
    readonly registers: readonly RecordedRegister[] = [],
  ) {
    this.mapperInstance = mapper === undefined ? undefined : IdentityMapper.attach(heap, mapper)
  }

  static create(layout: Layout): Machine {
    checkLayout(layout.ramBase, layout.ramSize, layout.heapBase, layout.heapSize)
    const memory = new PhysicalMemory(layout.ramBase, layout.ramSize)
    return new Machine(memory, new Heap(memory, new BumpAllocator(layout.heapBase, layout.heapSize)), undefined)
  }

  /** Rebuilds a machine from a snapshot's state; `memory` already holds the pages. */
  static restore(state: MachineState, memory: PhysicalMemory): Machine {
    if (memory.base !== state.ram.base || memory.size !== state.ram.size) throw new HvmemError('snapshot-invalid', 'memory does not match the RAM layout')
    return new Machine(memory, new Heap(memory, BumpAllocator.fromState(state.heap)), state.mapper, state.registers ?? [])
  }

  /**
   * The translation regime the recorded registers (snapshot capture) say was running: EL1&0 if
   * SCTLR_EL1.M is set (and TCR_EL1 recorded), else the EL2 stage 1 if SCTLR_EL2.M is (and TCR_EL2,
   * TTBR0_EL2 recorded), else stage 2 if HCR_EL2.VM is (and VTTBR_EL2 recorded); undefined otherwise.
   */
  runningRegime(): 'el1' | 'stage1' | 'stage2' | undefined {
    const has = (name: string): boolean => this.register(name) !== undefined
    const on = (name: string, bit: bigint): boolean => ((this.register(name) ?? 0n) & bit) !== 0n
    if (has('TCR_EL1') && on('SCTLR_EL1', SCTLR_M)) return 'el1'
    if (has('TCR_EL2') && has('TTBR0_EL2') && on('SCTLR_EL2', SCTLR_M)) return 'stage1'
    if (has('VTTBR_EL2') && on('HCR_EL2', HCR_VM)) return 'stage2'
    return undefined
  }

  /** A recorded register's value, by name (upper case), if the snapshot holds it. */
  register(name: string): bigint | undefined {
    return this.registers.find((r) => r.name === name)?.value
  }

  get mapper(): IdentityMapper | undefined {
    return this.mapperInstance
  }

  state(): MachineState {
    return {
      ram: {base: this.memory.base, size: this.memory.size},
      heap: this.heap.allocator.state(),
      mapper: this.mapperInstance?.state,
      ...(this.registers.length > 0 ? {registers: this.registers} : {}),
    }
  }

  /**
   * The mapper, created (its L1 table allocated from the heap) on first use. Options given for an
   * existing mapper must match it: regime, VMID and budget are fixed at creation.
   */
  ensureMapper(options: MapperOptions = {}): {mapper: IdentityMapper; created: boolean} {
    const existing = this.mapperInstance
    if (existing === undefined) {
      this.mapperInstance = IdentityMapper.create(this.heap, options)
      return {mapper: this.mapperInstance, created: true}
    }
    for (const [name, flag, current] of [
      ['regime', '--regime', existing.state.regime],
      ['vmid', '--vmid', existing.state.vmid],
      ['l2Budget', '--l2-budget', existing.state.l2Budget],
      ['granule', '--granule', existing.state.granule],
      ['inputBits', existing.state.regime === 'stage2' ? '--ipa-bits' : '--va-bits', existing.state.inputBits],
    ] as const) {
      const wanted = options[name]
      if (wanted !== undefined && wanted !== current) {
        throw new HvmemError(
          'input',
          `the mapper already exists with ${flag} ${name === 'granule' ? granuleName(current as number) : current}; ${flag} applies only when the mapper is created (start over with "heap reset --discard-mapper")`,
        )
      }
    }
    return {mapper: existing, created: false}
  }

  /**
   * A point to return to: `rollback` puts memory, heap and mapper back as they were when it was
   * taken; `release` keeps every change since; `before` is the machine as it was then (read-only,
   * until the machine changes again) and `changedFrames` the pages changed since, for a diff of the
   * change that reads only what it touched. hvmem batch --keep-going takes one before each line, so
   * a line that fails half-way (a map region that created the mapper, then was refused) leaves the
   * machine as it found it. Checkpoints nest, the innermost closed first.
   */
  checkpoint(): Checkpoint {
    const memory = this.memory.beginUndo()
    const heapState = this.heap.allocator.state()
    const mapper = this.mapperInstance
    const mapperState = mapper === undefined ? undefined : {...mapper.state}
    const registers = this.registers
    return {
      rollback: () => {
        memory.rollback()
        this.heap.allocator.adopt(BumpAllocator.fromState(heapState))
        this.mapperInstance = mapper
        if (mapper !== undefined && mapperState !== undefined) Object.assign(mapper.state, mapperState)
      },
      release: () => memory.release(),
      changedFrames: () => memory.changedFrames(),
      before: () => Machine.restore({ram: {base: this.memory.base, size: this.memory.size}, heap: heapState, mapper: mapperState, registers}, memory.before()),
    }
  }

  /**
   * Every valid entry of the mapper's tables, in input-address order (none without a mapper); the
   * pages at `unreadable` frames (damaged in the file) are read as all zero.
   */
  walkTables(unreadable?: ReadonlySet<number>): WalkEntry[] {
    const m = this.mapperInstance
    if (m === undefined) return []
    const access = unreadable === undefined || unreadable.size === 0 ? undefined : skippingAccess(this.memory, unreadable)
    return walkEntries(this.memory, m.regime, m.root, m.geometry, access)
  }

  /**
   * walkTables (walker.ts) over the mapper's tables, nothing kept: `visit` gets one cursor for the
   * whole walk, on every valid entry in input-address order (as walkTables(unreadable) lists them),
   * and keeps what it copies. The pages are read without being kept (peekingAccess), so a read-only
   * pass over a large tree holds none of them; the pages at `unreadable` frames read as all zero.
   * Nothing is visited without a mapper.
   */
  visitTables(visit: (cursor: WalkCursor) => void, unreadable?: ReadonlySet<number>): void {
    const m = this.mapperInstance
    if (m === undefined) return
    const peeking = peekingAccess(this.memory)
    const access = unreadable === undefined || unreadable.size === 0 ? peeking : skippingAccess(this.memory, unreadable, peeking)
    walkTables(this.memory, m.regime, m.root, m.geometry, visit, access)
  }

  /**
   * tablePages(entries) made as a walk goes (visitTables): give its `visit` every entry, in walk
   * order, and `pages` is what tablePages gives for those entries; with `only`, it keeps those frames
   * alone (snapshot verify wants the levels of its damaged pages only), so it holds nothing a table.
   */
  tablePageSink(only?: ReadonlySet<number>): TablePageSink {
    const m = this.mapperInstance
    // no mapper, or a root outside RAM: a walk visits nothing, and no table is listed
    const walked = m !== undefined && this.memory.contains(m.root, BigInt(m.geometry.tableBytes(m.geometry.startLevel)))
    return new TablePageSink(walked ? m : undefined, only)
  }

  /**
   * The 4 KiB memory pages of the tables reachable from the mapper's root (inside RAM), by frame
   * number, with their tables' levels, in walk order (the root first; a 16 KiB table is four pages,
   * a concatenated root all its tables'); `entries` is a walk already made (walkTables).
   */
  tablePages(entries?: readonly WalkEntry[]): Map<number, number> {
    const sink = this.tablePageSink()
    const m = this.mapperInstance
    // (no mapper or a root outside RAM: the sink lists nothing, and there is nothing to walk)
    if (m === undefined || sink.pages.size === 0) return sink.pages
    if (entries !== undefined) {
      for (const e of entries) if (e.decoded.kind === 'table' && e.problem === undefined) sink.addTable(e.decoded.nextTable!, e.level + 1)
      return sink.pages
    }
    // No walk made: a scan of the table entries alone (pages of leaves and runs of blocks are passed
    // over a page at a time: a 64 GiB map in pages has 16 million leaves), the pages read, not kept
    // (peekingAccess). A table reached again (an alias) is in the map already, with the level it was
    // first reached at, as a walk lists it; one outside RAM is not walked.
    const g = m.geometry
    const walker = new TableWalker(peekingAccess(this.memory), g)
    walker.scan(Number(m.root & g.addressMask), 0, 2 ** g.inputBits, sink)
    return sink.pages
  }

  /**
   * Returns the heap to its start. The mapper's tables live in the heap, so a reset with a mapper
   * would let new allocations overwrite live tables: it is refused unless `discardMapper`, which
   * zeroes the mapper's tables that lie in the heap and drops the mapper first. Other heap contents are left as they are, as on
   * real hardware.
   */
  resetHeap(discardMapper: boolean): HeapResetResult {
    const mapper = this.mapperInstance
    const discardedTables: bigint[] = []
    if (mapper !== undefined) {
      if (!discardMapper) {
        throw new HvmemError(
          'mapping-conflict',
          `the heap holds the ${mapper.state.regime === 'stage2' ? 'stage-2' : 'stage-1'} tables (root ${hex(mapper.root)}, ${mapper.l2Tables().length} L2 table(s)); resetting it would let new allocations overwrite them. Use --discard-mapper to drop the mapper and zero its tables`,
        )
      }
      // Every table the root reaches (L2 and L3 alike), the root first.
      const pages = [...this.tablePages().keys()].map((frame) => BigInt(frame) * BigInt(MEMORY_PAGE))
      // Only tables hvmem allocated, i.e. inside the heap: an entry written by hand may point anywhere.
      for (const page of pages.filter((t) => this.heap.contains(t))) {
        this.memory.zero(page, BigInt(MEMORY_PAGE))
        discardedTables.push(page)
      }
      this.mapperInstance = undefined
    }
    this.heap.allocator.reset()
    return {discardedTables}
  }
}

/** Sets the frames of the table at `table` (a `level` table: 4 KiB pages, or a concatenated root's) to `level` in `pages`. */
function addTablePages(pages: Map<number, number>, geometry: Geometry, table: bigint, level: number, only?: ReadonlySet<number>): void {
  const first = Number(table / BigInt(MEMORY_PAGE))
  for (let i = 0; i < geometry.tableBytes(level) / MEMORY_PAGE; i++) if (only === undefined || only.has(first + i)) pages.set(first + i, level)
}

/**
 * Machine.tablePageSink: the table pages of a walk, from its entries as they come (visit, from a
 * walkTables cursor), or of a scan's table entries (as a ScanSink: leaves pass by a page at a time).
 */
export class TablePageSink implements ScanSink {
  /** frame number -> the level of the table it holds, in walk order (the root first) */
  readonly pages = new Map<number, number>()
  private readonly geometry: Geometry | undefined

  /** `tree`: the tables walked (undefined: none, as without a mapper or with a root outside RAM) */
  constructor(
    tree: {root: bigint; geometry: Geometry} | undefined,
    private readonly only?: ReadonlySet<number>,
  ) {
    this.geometry = tree?.geometry
    if (tree !== undefined) addTablePages(this.pages, tree.geometry, tree.root, tree.geometry.startLevel, only)
  }

  /** The walk's next entry: a table entry the walk goes down into adds its table. */
  visit(c: WalkCursor): void {
    if (c.level < FINAL_LEVEL && (c.lo & 3) === 3 && c.problem === undefined) this.addTable(c.geometry.tableAddress(c.raw), c.level + 1)
  }

  /** As a scan's sink (tablePages, all frames kept): a table entry adds the table it leads to if it is in RAM and not reached before (an alias keeps the level it was first reached at). */
  entry(w: TableWalker, unfollowed?: Unfollowed): void {
    if (unfollowed !== undefined || w.level === FINAL_LEVEL || (w.lo & 3) !== 3) return
    const next = w.next
    if (w.access.inRam(next, w.geometry.granule) && !this.pages.has(next / MEMORY_PAGE)) this.addTable(BigInt(next), w.level + 1)
  }

  leafPage(): void {
    // no table entry among them
  }

  /** The table at `table`, a `level` table, that the walk went into. */
  addTable(table: bigint, level: number): void {
    if (this.geometry !== undefined) addTablePages(this.pages, this.geometry, table, level, this.only)
  }
}
