/**
 * What stage-1 and stage-2 VMSAv8-64 descriptors share, in any granule (Arm ARM DDI 0487, D8.3
 * "Translation table descriptor formats"), and the Regime that gives the attribute bits their meaning.
 */
import {HvmemError} from './errors.js'
import {ADDRESS_MASK, DEFAULT_STAGE2, FINAL_LEVEL, type Geometry} from './geometry.js'
import {hex} from './u64.js'

export {ADDRESS_MASK} from './geometry.js'

export const VALID = 1n << 0n
/** bit 1: table (L0-L2) or page (L3); clear for a block (L1, L2). */
export const TABLE_OR_PAGE = 1n << 1n
export const AF = 1n << 10n
export const CONTIGUOUS = 1n << 52n
/** XN (stage 2: XN[1]; stage 1 EL2: XN), bit 54. */
export const XN = 1n << 54n

/** hvmem's named attribute sets; each regime encodes them its own way. */
export type Attr = 'normal' | 'device' | 'readonly'
export const ATTRS: readonly Attr[] = ['normal', 'device', 'readonly']

export type DescriptorKind = 'invalid' | 'table' | 'block' | 'page' | 'reserved'
export type Access = 'none' | 'RO' | 'WO' | 'RW'
export type Shareability = 'NS' | 'reserved' | 'OS' | 'IS'
export const SHAREABILITY: readonly Shareability[] = ['NS', 'reserved', 'OS', 'IS']

export interface LeafFields {
  outputAddress: bigint
  memType: string
  /** the access the leaf allows: stage 2 to the guest, stage 1 to EL2 */
  access: Access
  sh: number
  shareability: Shareability
  af: boolean
  executable: boolean
  contiguous: boolean
  /** bits 58:55, ignored by hardware */
  software: number
  /** stage 2: MemAttr[3:0] (bits 5:2), S2AP (bits 7:6), XN[1:0] (bits 54:53; without FEAT_XNX only bit 54 counts) */
  memAttr?: number
  s2ap?: number
  xn?: number
  /** stage 1: AttrIndx (bits 4:2), the MAIR_EL2 byte it selects, AP[2:1] (bits 7:6) */
  attrIndx?: number
  mairAttr?: number
  ap?: number
  /**
   * stage 1 of EL1&0 only, from the descriptor alone (table attributes not applied): `access` is
   * EL1's, `el0Access` EL0's (AP[1]); PXN (bit 53), UXN (bit 54), nG (bit 11); `executable` is EL1's
   * (PXN clear and not EL0-writable) and `el0Executable` EL0's (UXN clear).
   */
  el0Access?: Access
  el0Executable?: boolean
  pxn?: boolean
  uxn?: boolean
  ng?: boolean
}

export interface Decoded {
  raw: bigint
  level: number
  kind: DescriptorKind
  /** next-level table address, for kind 'table' */
  nextTable?: bigint
  /** for kinds 'block' and 'page' */
  leaf?: LeafFields
}

/**
 * What a descriptor at `level` is, from its low 32 bits: bit 0 valid, bit 1 table (levels 0-2) or page
 * (level 3); a block only where the geometry has blocks (Geometry.canBlock), reserved elsewhere.
 */
export function kindOfLow(lo: number, level: number, geometry: Geometry): DescriptorKind {
  if ((lo & 1) === 0) return 'invalid'
  const typeBit = (lo & 2) !== 0
  if (level === FINAL_LEVEL) return typeBit ? 'page' : 'reserved'
  if (typeBit) return 'table'
  return geometry.canBlock(level) ? 'block' : 'reserved'
}

/** Whether a descriptor (its low 32 bits) at `level` is a leaf: a block or a page. */
export function isLeafLow(lo: number, level: number, geometry: Geometry): boolean {
  const kind = kindOfLow(lo, level, geometry)
  return kind === 'block' || kind === 'page'
}

export function kindOf(descriptor: bigint, level: number, geometry: Geometry = DEFAULT_STAGE2): DescriptorKind {
  return kindOfLow(Number(descriptor & 3n), level, geometry)
}

/** A table descriptor: the next table's address | 0b11. Neither regime's table descriptors carry hvmem attributes. */
export function tableDescriptor(nextTable: bigint): bigint {
  return (nextTable & ADDRESS_MASK) | VALID | TABLE_OR_PAGE
}

export type RegimeName = 'stage2' | 'stage1'
export const REGIME_NAMES: readonly RegimeName[] = ['stage2', 'stage1']
/** The regimes hvmem can read tables of: its own two, and stage 1 of EL1&0 (foreign tables only). */
export type WalkRegimeName = RegimeName | 'el1'

export interface RegimeSpec {
  name: WalkRegimeName
  stage: 1 | 2
  /** leaf attribute bits for each named attribute set: everything but the output address and bits 1:0 */
  attrBits: Record<Attr, bigint>
  /** the regime's reading of a leaf's attribute bits */
  decodeLeaf(descriptor: bigint, outputAddress: bigint): LeafFields
}

/** How many distinct leaf attribute patterns a Regime keeps decoded (see Regime.leafFields). */
const LEAF_CACHE_SIZE = 4096

/** A translation regime: how leaf descriptors are written and read. */
export class Regime {
  constructor(private readonly spec: RegimeSpec) {}

  get name(): WalkRegimeName {
    return this.spec.name
  }

  get stage(): 1 | 2 {
    return this.spec.stage
  }

  get attrBits(): Record<Attr, bigint> {
    return this.spec.attrBits
  }

  /** A block or page descriptor at `level` for output address `pa`, which must be aligned to the level. */
  leafDescriptor(level: number, pa: bigint, attr: Attr, geometry: Geometry = DEFAULT_STAGE2): bigint {
    if (!geometry.canLeaf(level)) throw new HvmemError('input', `the ${geometry.granule / 1024}K granule has no leaf at level ${level}`)
    const size = geometry.entrySize(level)
    if ((pa & (size - 1n)) !== 0n || (pa & ~ADDRESS_MASK) !== 0n) throw new HvmemError('input', `output address ${hex(pa)} is not a ${size}-byte aligned 48-bit address`)
    return pa | this.spec.attrBits[attr] | VALID | (level === FINAL_LEVEL ? TABLE_OR_PAGE : 0n)
  }

  /** The named attribute set whose bits a leaf descriptor carries, if any. */
  attrOf(descriptor: bigint): Attr | undefined {
    const bits = descriptor & ~ADDRESS_MASK & ~3n
    return ATTRS.find((a) => this.spec.attrBits[a] === bits)
  }

  /** The descriptor at `level` read by this regime's rules in `geometry` (by default the 4 KiB granule's). */
  decode(descriptor: bigint, level: number, geometry: Geometry = DEFAULT_STAGE2): Decoded {
    const kind = kindOf(descriptor, level, geometry)
    if (kind === 'table') return {raw: descriptor, level, kind, nextTable: geometry.tableAddress(descriptor)}
    if (kind !== 'block' && kind !== 'page') return {raw: descriptor, level, kind}
    const outputAddress = geometry.outputAddress(descriptor, level)
    return {raw: descriptor, level, kind, leaf: this.leafFields(descriptor, outputAddress)}
  }

  /**
   * The regime's reading of a leaf. Everything but the output address depends only on the bits
   * outside 47:12, which a table of many leaves mostly shares: those readings are kept (up to
   * LEAF_CACHE_SIZE of them) and copied, so walking 262,144 blocks decodes a handful.
   */
  private leafFields(descriptor: bigint, outputAddress: bigint): LeafFields {
    const key = descriptor & ~ADDRESS_MASK
    const known = this.leaves.get(key)
    if (known !== undefined) return {...known, outputAddress}
    const leaf = this.spec.decodeLeaf(descriptor, outputAddress)
    if (this.leaves.size < LEAF_CACHE_SIZE) this.leaves.set(key, leaf)
    return {...leaf}
  }

  private readonly leaves = new Map<bigint, LeafFields>()
}

/**
 * The fields every leaf has, in either regime. `sh`: the shareability, where the descriptor's bits
 * 9:8 hold output address bits instead (FEAT_LPA2: it is TCR's or VTCR's SH then).
 */
export function commonLeafFields(descriptor: bigint, sh = Number((descriptor >> 8n) & 3n)): Pick<LeafFields, 'sh' | 'shareability' | 'af' | 'executable' | 'contiguous' | 'software'> {
  return {
    sh,
    shareability: SHAREABILITY[sh]!,
    af: (descriptor & AF) !== 0n,
    executable: (descriptor & XN) === 0n,
    contiguous: (descriptor & CONTIGUOUS) !== 0n,
    software: Number((descriptor >> 55n) & 0xfn),
  }
}
