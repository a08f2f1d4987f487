/**
 * What `snapshot verify` counts as damage in a snapshot's tables and registers, given what was read
 * (the walk's entries, the mapper's registers): pure, no I/O. The pages' own checksums are checked
 * where they are read (src/snapshot/verify.ts).
 */
import {ADDRESS_MASK, CONTIGUOUS} from './descriptor.js'
import {FINAL_LEVEL, type Geometry, granuleName, sl0Of, tg0Of} from './geometry.js'
import type {Register} from './registers.js'
import {psOf} from './registers.js'
import {formatSize, hex} from './u64.js'
import type {WalkEntry} from './walker.js'

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

/**
 * The damaged entries among a walk's (Machine.walkTables): a table entry the walk could not follow,
 * its next table outside RAM or reached already (a loop back up the tree, or two entries sharing a
 * table); a next-table address with bits set below the granule (16K or 64K: bits 13:12 or 15:12,
 * RES0); a reserved encoding (bit 1 clear at level 3, or a block at a level the granule has none);
 * the contiguous bit (52) on a run whose entries disagree (contiguousDamage).
 * An entry may be damaged in more than one way: one finding each.
 */
export function checkTables(entries: readonly WalkEntry[], geometry: Geometry, ram: RamRange): TableCheck {
  const damage: EntryDamage[] = []
  let tables = 1
  const lowBits = (BigInt(geometry.granule) - 1n) & ADDRESS_MASK
  for (const e of entries) {
    const raw = e.decoded.raw
    const where = {level: e.level, index: e.index, table: e.table, address: e.table + 8n * BigInt(e.index), ipa: e.ipa, descriptor: raw}
    if (e.decoded.kind === 'reserved') {
      const why = e.level === FINAL_LEVEL ? 'bit 1 clear at level 3 (neither a page nor a table)' : `a block at level ${e.level}, which the ${granuleName(geometry.granule)} granule does not have`
      damage.push({kind: 'reserved', ...where, message: `reserved encoding: ${why}`})
      continue
    }
    if (e.decoded.kind !== 'table') continue
    const next = e.decoded.nextTable!
    const found = {...where, next}
    if ((raw & lowBits) !== 0n) {
      damage.push({
        kind: 'misaligned',
        ...found,
        message: `next-level table address ${hex(raw & ADDRESS_MASK)} is not aligned to the ${granuleName(geometry.granule)} granule (the walk reads ${hex(next)})`,
      })
    }
    if (e.problem === undefined) {
      tables++
      continue
    }
    const inRam = next >= ram.base && next + BigInt(geometry.granule) <= ram.base + ram.size
    damage.push({kind: inRam ? 'aliased' : 'outside-ram', ...found, message: e.problem})
  }
  damage.push(...contiguousDamage(entries, geometry))
  return {tables, entries: entries.length, damage}
}

/**
 * The aligned runs of the contiguous bit (Geometry.contiguousEntries) where an entry has the bit but
 * the run's entries disagree: each must be a valid leaf with the bit and the same attributes, the
 * output contiguous from an address aligned to the run's size (Arm ARM D8.6.1: otherwise the TLB's
 * result is CONSTRAINED UNPREDICTABLE). One finding a run, at its first entry with the bit.
 */
export function contiguousDamage(entries: readonly WalkEntry[], geometry: Geometry): EntryDamage[] {
  const keyOf = (e: WalkEntry): string | undefined => {
    const n = geometry.contiguousEntries(e.level)
    return n === 0 || e.decoded.kind === 'table' ? undefined : `${e.table}:${e.level}:${Math.floor(e.index / n)}`
  }
  const marked = new Set<string>()
  for (const e of entries) if (e.decoded.leaf !== undefined && (e.decoded.raw & CONTIGUOUS) !== 0n) marked.add(keyOf(e)!)
  if (marked.size === 0) return []
  const runs = new Map<string, WalkEntry[]>()
  for (const e of entries) {
    const n = geometry.contiguousEntries(e.level)
    if (n === 0) continue
    // a table entry in a run breaks it too
    const key = `${e.table}:${e.level}:${Math.floor(e.index / n)}`
    if (marked.has(key)) runs.set(key, [...(runs.get(key) ?? []), e])
  }
  const damage: EntryDamage[] = []
  for (const run of runs.values()) {
    const level = run[0]!.level
    const n = geometry.contiguousEntries(level)
    const size = geometry.entrySize(level)
    const first = run.find((e) => e.decoded.leaf !== undefined && (e.decoded.raw & CONTIGUOUS) !== 0n)!
    const start = first.index - (first.index % n)
    const base = first.decoded.leaf!.outputAddress - BigInt(first.index - start) * size
    const attrs = first.decoded.raw & ~ADDRESS_MASK
    const problem = ((): string | undefined => {
      for (let k = 0; k < n; k++) {
        const e = run.find((x) => x.index === start + k)
        const name = `L${level}[${start + k}]`
        if (e === undefined) return `${name} is not valid`
        if (e.decoded.leaf === undefined) return `${name} is not a leaf`
        if ((e.decoded.raw & CONTIGUOUS) === 0n) return `${name} does not have the bit`
        if ((e.decoded.raw & ~ADDRESS_MASK) !== attrs) return `${name} has other attributes`
        if (e.decoded.leaf.outputAddress !== base + BigInt(k) * size) return `${name}'s output ${hex(e.decoded.leaf.outputAddress)} does not continue the run's`
      }
      return base % (BigInt(n) * size) === 0n ? undefined : `its output ${hex(base)} is not aligned to the run's ${formatSize(BigInt(n) * size)}`
    })()
    if (problem === undefined) continue
    const where = {level, index: first.index, table: first.table, address: first.table + 8n * BigInt(first.index), ipa: first.ipa, descriptor: first.decoded.raw}
    damage.push({kind: 'contiguous', ...where, message: `the contiguous bit (52) on a run of ${n} entries (L${level}[${start}..${start + n - 1}]) that disagree: ${problem}`})
  }
  return damage
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
