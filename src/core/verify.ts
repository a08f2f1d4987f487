/**
 * What `snapshot verify` counts as damage in a snapshot's tables and registers, given what was read
 * (the walk's entries, the mapper's registers): pure, no I/O. The pages' own checksums are checked
 * where they are read (src/snapshot/verify.ts).
 */
import {ADDRESS_MASK, CONTIGUOUS, kindOfLow} from './descriptor.js'
import {FINAL_LEVEL, FIRST_LEVEL, type Geometry, granuleName, sl0Of, tg0Of} from './geometry.js'
import type {Machine} from './machine.js'
import type {Register} from './registers.js'
import {psOf} from './registers.js'
import {formatSize, hex} from './u64.js'
import {type WalkCursor, type WalkEntry, rawOf} from './walker.js'

/** How a table entry is damaged. */
export type EntryDamageKind = 'outside-ram' | 'aliased' | 'misaligned' | 'reserved' | 'contiguous'

export interface EntryDamage {
  kind: EntryDamageKind
  level: number
  /** the entry's index in its table (the root's spans all its concatenated tables) */
  index: number
  /** the table holding the entry */
  table: bigint
  /** the entry's own physical address: table + 8 * index */
  address: bigint
  /** the first input address the entry translates */
  ipa: bigint
  descriptor: bigint
  /** a table entry's next-level table (as the walk reads it: bits 47:granule) */
  next?: bigint
  message: string
}

export interface TableCheck {
  /** tables the walk went through (the root included) */
  tables: number
  /** valid entries the walk found */
  entries: number
  damage: EntryDamage[]
}

export interface RamRange {
  base: bigint
  size: bigint
}

/** What TableChecker reads of an entry: a walkTables cursor's numbers, and the problem of a table entry the walk did not follow. */
export type CheckedEntry = Pick<WalkCursor, 'level' | 'index' | 'table' | 'addr' | 'lo' | 'hi' | 'problem'>

/**
 * The damaged entries among a walk's (walkTables): a table entry the walk could not follow, its next
 * table outside RAM or reached already (a loop back up the tree, or two entries sharing a table); a
 * next-table address with bits set below the granule (16K or 64K: bits 13:12 or 15:12, RES0); a
 * reserved encoding (bit 1 clear at level 3, or a block at a level the granule has none); the
 * contiguous bit (52) on a run whose entries disagree (see closeRun). An entry may be damaged in more
 * than one way: one finding each. The damage is listed in walk order, the contiguous runs after the
 * rest, in the walk order of their first entries.
 *
 * It checks as the walk goes (Machine.visitTables): `visit` each entry, in walk order, then
 * finish(). Nothing is kept per entry: the damage found, and at each level the contiguous run the
 * walk is in (a walk enters each table once and lists its entries in order, so a run's entries come
 * together, with only deeper tables' entries between them).
 */
export class TableChecker {
  private tables = 1
  private entries = 0
  private readonly damage: EntryDamage[] = []
  /** damaged contiguous runs, with the walk ordinal of each run's first entry */
  private readonly runDamage: Array<{at: number; damage: EntryDamage}> = []
  /** the open run at each level (index: level - FIRST_LEVEL), where the bit makes runs */
  private readonly runs: Array<ContiguousRun | undefined> = []
  /** a next-table address's bits below the granule, in the descriptor's low half */
  private readonly lowBits: number

  constructor(
    private readonly geometry: Geometry,
    private readonly ram: RamRange,
  ) {
    this.lowBits = Number((BigInt(geometry.granule) - 1n) & ADDRESS_MASK)
    for (let level = FIRST_LEVEL; level <= FINAL_LEVEL; level++) {
      const n = geometry.contiguousEntries(level)
      this.runs.push(n === 0 ? undefined : new ContiguousRun(level, n))
    }
  }

  /** The walk's next entry. */
  visit(e: CheckedEntry): void {
    const at = this.entries++
    const level = e.level
    const lo = e.lo
    const kind = kindOfLow(lo, level, this.geometry)
    if (kind === 'table') this.tableEntry(e)
    else if (kind === 'reserved') this.reservedEntry(e)
    const run = this.runs[level - FIRST_LEVEL]
    if (run === undefined) return
    const n = run.n
    const index = e.index
    const first = index - (index % n)
    if (e.table !== run.table || first !== run.first) {
      this.closeRun(run)
      run.open(e.table, first, e.addr - index * this.geometry.entryBytes(level), at)
    }
    run.add(index - first, lo, e.hi, (kind === 'block' || kind === 'page') && (e.hi & CONTIGUOUS_HI) !== 0)
  }

  /** What the walk found: the runs still open are checked now. */
  finish(): TableCheck {
    for (const run of this.runs) if (run !== undefined) this.closeRun(run)
    const runs = this.runDamage.sort((a, b) => a.at - b.at).map((r) => r.damage)
    return {tables: this.tables, entries: this.entries, damage: [...this.damage, ...runs]}
  }

  private where(e: CheckedEntry): Omit<EntryDamage, 'kind' | 'message'> {
    const table = BigInt(e.table)
    return {level: e.level, index: e.index, table, address: table + 8n * BigInt(e.index), ipa: BigInt(e.addr), descriptor: rawOf(e.lo, e.hi)}
  }

  private reservedEntry(e: CheckedEntry): void {
    const g = this.geometry
    const why = e.level === FINAL_LEVEL ? 'bit 1 clear at level 3 (neither a page nor a table)' : `a block at level ${e.level}, which the ${granuleName(g.granule)} granule does not have`
    this.damage.push({kind: 'reserved', ...this.where(e), message: `reserved encoding: ${why}`})
  }

  private tableEntry(e: CheckedEntry): void {
    const misaligned = (e.lo & this.lowBits) !== 0
    if (!misaligned && e.problem === undefined) {
      this.tables++
      return
    }
    const g = this.geometry
    const where = this.where(e)
    const raw = where.descriptor
    const next = g.tableAddress(raw)
    const found = {...where, next}
    if (misaligned) {
      this.damage.push({
        kind: 'misaligned',
        ...found,
        message: `next-level table address ${hex(raw & ADDRESS_MASK)} is not aligned to the ${granuleName(g.granule)} granule (the walk reads ${hex(next)})`,
      })
    }
    if (e.problem === undefined) {
      this.tables++
      return
    }
    const ram = this.ram
    const inRam = next >= ram.base && next + BigInt(g.granule) <= ram.base + ram.size
    this.damage.push({kind: inRam ? 'aliased' : 'outside-ram', ...found, message: e.problem})
  }

  /**
   * A run of the contiguous bit (Geometry.contiguousEntries) where an entry has the bit but the run's
   * entries disagree: each must be a valid leaf with the bit and the same attributes, the output
   * contiguous from an address aligned to the run's size (Arm ARM D8.6.1: otherwise the TLB's result
   * is CONSTRAINED UNPREDICTABLE). One finding a run, at its first entry with the bit.
   */
  private closeRun(run: ContiguousRun): void {
    if (!run.marked) return
    run.marked = false
    const g = this.geometry
    const {level, n} = run
    const size = g.entrySize(level)
    const isLeaf = (k: number): boolean => {
      const kind = kindOfLow(run.lo[k]!, level, g)
      return kind === 'block' || kind === 'page'
    }
    const raw = (k: number): bigint => rawOf(run.lo[k]!, run.hi[k]!)
    let f = 0
    while (!(run.has(f) && isLeaf(f) && (run.hi[f]! & CONTIGUOUS_HI) !== 0)) f++
    const firstRaw = raw(f)
    const base = g.outputAddress(firstRaw, level) - BigInt(f) * size
    const attrs = firstRaw & ~ADDRESS_MASK
    const problem = ((): string | undefined => {
      for (let k = 0; k < n; k++) {
        const name = `L${level}[${run.first + k}]`
        if (!run.has(k)) return `${name} is not valid`
        if (!isLeaf(k)) return `${name} is not a leaf`
        const descriptor = raw(k)
        if ((descriptor & CONTIGUOUS) === 0n) return `${name} does not have the bit`
        if ((descriptor & ~ADDRESS_MASK) !== attrs) return `${name} has other attributes`
        const output = g.outputAddress(descriptor, level)
        if (output !== base + BigInt(k) * size) return `${name}'s output ${hex(output)} does not continue the run's`
      }
      return base % (BigInt(n) * size) === 0n ? undefined : `its output ${hex(base)} is not aligned to the run's ${formatSize(BigInt(n) * size)}`
    })()
    if (problem === undefined) return
    const index = run.first + f
    const table = BigInt(run.table)
    const where = {level, index, table, address: table + 8n * BigInt(index), ipa: BigInt(run.base) + BigInt(index) * size, descriptor: firstRaw}
    this.runDamage.push({
      at: run.at,
      damage: {kind: 'contiguous', ...where, message: `the contiguous bit (52) on a run of ${n} entries (L${level}[${run.first}..${run.first + n - 1}]) that disagree: ${problem}`},
    })
  }
}

/** The contiguous bit (52) in a descriptor's high half. */
const CONTIGUOUS_HI = Number(CONTIGUOUS >> 32n)

/** The aligned run of the contiguous bit a walk is in at one level: the descriptors' halves it has met. */
class ContiguousRun {
  /** the table holding the run, -1 before the first */
  table = -1
  /** the run's first index, its table's first input address, and the walk ordinal of its first entry met */
  first = -1
  base = 0
  at = 0
  /** whether a leaf of the run has the bit: it is checked when it ends */
  marked = false
  readonly lo: Uint32Array
  readonly hi: Uint32Array
  /** for each entry of the run, the run it was last met in (`stamp`): valid entries are met, invalid ones not */
  private readonly met: Float64Array
  private stamp = 0

  constructor(
    readonly level: number,
    readonly n: number,
  ) {
    this.lo = new Uint32Array(n)
    this.hi = new Uint32Array(n)
    this.met = new Float64Array(n)
  }

  open(table: number, first: number, base: number, at: number): void {
    this.table = table
    this.first = first
    this.base = base
    this.at = at
    this.marked = false
    this.stamp++
  }

  /** The run's k-th entry, valid; `marked`: a leaf with the bit. */
  add(k: number, lo: number, hi: number, marked: boolean): void {
    this.met[k] = this.stamp
    this.lo[k] = lo
    this.hi[k] = hi
    if (marked) this.marked = true
  }

  /** Whether the run's k-th entry is valid (met by the walk). */
  has(k: number): boolean {
    return this.met[k] === this.stamp
  }
}

/**
 * The mapper's tables checked in one walk that keeps nothing per entry (Machine.visitTables; a 64 GiB
 * map in pages has 16 million), the pages at `unreadable` frames read as all zero, and the levels of
 * those of them that hold tables (a damaged page's report names its table level). Undefined without a mapper.
 */
export function verifyTables(machine: Machine, unreadable: ReadonlySet<number>): {check: TableCheck; unreadableTables: Map<number, number>} | undefined {
  const mapper = machine.mapper
  if (mapper === undefined) return undefined
  const checker = new TableChecker(mapper.geometry, {base: machine.memory.base, size: machine.memory.size})
  const tablePages = machine.tablePageSink(unreadable)
  machine.visitTables((c) => {
    checker.visit(c)
    tablePages.visit(c)
  }, unreadable)
  return {check: checker.finish(), unreadableTables: tablePages.pages}
}

/**
 * TableChecker over a walk's entries already made (Machine.walkTables).
 */
export function checkTables(entries: readonly WalkEntry[], geometry: Geometry, ram: RamRange): TableCheck {
  const checker = new TableChecker(geometry, ram)
  for (const e of entries) {
    const raw = e.decoded.raw
    checker.visit({level: e.level, index: e.index, table: Number(e.table), addr: Number(e.ipa), lo: Number(raw & 0xffff_ffffn), hi: Number(raw >> 32n), problem: e.problem})
  }
  return checker.finish()
}

export interface RegisterDamage {
  register: string
  message: string
}

export interface MapperFacts {
  regime: 'stage1' | 'stage2'
  root: bigint
  vmid: number
}

/**
 * The registers that install the tables (Mapper.registers) checked against the tables walked: the
 * root register names an aligned root table inside RAM and the PA size, with CnP clear; VTTBR_EL2
 * holds the VMID (VTCR_EL2.VS set past 255); VTCR_EL2 / TCR_EL2 describe the walk's geometry (T0SZ,
 * TG0, PS, stage 2's SL0) with RES1 bit 31 set.
 */
export function checkRegisters(registers: readonly Register[], mapper: MapperFacts, geometry: Geometry, ram: RamRange): RegisterDamage[] {
  const damage: RegisterDamage[] = []
  const bad = (register: string, message: string): void => void damage.push({register, message})
  const fieldOf = (r: Register, name: string): bigint | undefined => r.fields.find((f) => f.name === name)?.value
  const rootName = mapper.regime === 'stage2' ? 'VTTBR_EL2' : 'TTBR0_EL2'
  const controlName = mapper.regime === 'stage2' ? 'VTCR_EL2' : 'TCR_EL2'
  const rootRegister = registers.find((r) => r.name === rootName)
  const control = registers.find((r) => r.name === controlName)
  if (rootRegister === undefined) bad(rootName, 'missing')
  else {
    const baddr = (fieldOf(rootRegister, 'BADDR') ?? 0n) << 1n
    const bytes = BigInt(geometry.tableBytes(geometry.startLevel))
    if (baddr !== mapper.root) bad(rootName, `BADDR ${hex(baddr)} is not the mapper's root ${hex(mapper.root)}`)
    if (baddr % geometry.rootAlign !== 0n) bad(rootName, `root table ${hex(baddr)} is not ${hex(geometry.rootAlign)}-aligned`)
    if (baddr < ram.base || baddr + bytes > ram.base + ram.size) bad(rootName, `root table ${hex(baddr)}-${hex(baddr + bytes)} is not inside RAM`)
    if (baddr + bytes > geometry.paLimit) bad(rootName, `root table ${hex(baddr)} lies past the ${geometry.paBits}-bit PA size`)
    if (fieldOf(rootRegister, 'CnP') !== 0n) bad(rootName, 'CnP is set')
    if (mapper.regime === 'stage2' && fieldOf(rootRegister, 'VMID') !== BigInt(mapper.vmid)) bad(rootName, `VMID field ${fieldOf(rootRegister, 'VMID')} is not the mapper's VMID ${mapper.vmid}`)
  }
  if (control === undefined) bad(controlName, 'missing')
  else {
    const expect = (name: string, wanted: number, what: string): void => {
      const value = fieldOf(control, name)
      if (value !== BigInt(wanted)) bad(controlName, `${name} ${value} does not give the tables' ${what} (${name} ${wanted})`)
    }
    expect('T0SZ', 64 - geometry.inputBits, `${geometry.inputBits}-bit input`)
    expect('TG0', tg0Of(geometry.granule), `${granuleName(geometry.granule)} granule`)
    expect('PS', psOf(geometry.paBits), `${geometry.paBits}-bit PA`)
    if (mapper.regime === 'stage2') {
      expect('SL0', sl0Of(geometry.granule, geometry.startLevel), `level-${geometry.startLevel} start`)
      if (mapper.vmid > 0xff) expect('VS', 1, `16-bit VMID ${mapper.vmid}`)
    }
    if (((control.value >> 31n) & 1n) !== 1n) bad(controlName, 'RES1 bit 31 is clear')
  }
  return damage
}
