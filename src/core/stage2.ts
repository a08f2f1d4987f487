/**
 * Stage-2 translation table descriptors, 4 KiB granule (Arm ARM DDI 0487, D8.3 "Translation table
 * descriptor formats" and D8.5 "Stage 2 memory region attributes"; the field table is in
 * shared/reference/architecture-notes.md). The tables hang off VTTBR_EL2.
 */
import {HvmemError} from './errors.js'
import {GiB, KiB, MiB} from './u64.js'

/** Output/next-table address bits 47:12. Never `~0xfff`: that keeps the upper attribute bits. */
export const ADDRESS_MASK = 0x0000_ffff_ffff_f000n

export const VALID = 1n << 0n
/** bit 1: table (L0-L2) or page (L3); clear for a block (L1, L2). */
export const TABLE_OR_PAGE = 1n << 1n
export const AF = 1n << 10n
export const CONTIGUOUS = 1n << 52n
export const XN = 1n << 54n

/** Bytes mapped by one leaf descriptor at each level (4 KiB granule). */
export const LEVEL_SIZE: Record<number, bigint> = {0: 512n * GiB, 1: GiB, 2: 2n * MiB, 3: 4n * KiB}

/** The input-address bit where each level's 9-bit index starts. */
export const LEVEL_SHIFT: Record<number, bigint> = {0: 39n, 1: 30n, 2: 21n, 3: 12n}

export type Stage2Attr = 'normal' | 'device' | 'readonly'
export const STAGE2_ATTRS: readonly Stage2Attr[] = ['normal', 'device', 'readonly']

/**
 * Leaf attribute bits (everything but the output address and bits 1:0), KVM-compatible:
 * - normal:   MemAttr 0b1111 Normal WB, S2AP 0b11 RW, SH 0b11 IS, AF, executable   -> block P | 0x7fd
 * - device:   MemAttr 0b0001 Device-nGnRE, S2AP RW, SH IS, AF, XN (bit 54)          -> block P | 0x0040_0000_0000_07c5
 * - readonly: MemAttr 0b1111 Normal WB, S2AP 0b01 RO, SH IS, AF, executable        -> block P | 0x77d
 * The plan's 0x405/0x409/0x485 are stage-1 encodings; under stage 2 they read as Device with no access
 * (0x405) or write-only (0x485).
 */
export const ATTR_BITS: Record<Stage2Attr, bigint> = {
  normal: 0x7fcn,
  device: 0x0040_0000_0000_07c4n,
  readonly: 0x77cn,
}

export function parseAttr(text: string): Stage2Attr {
  if ((STAGE2_ATTRS as readonly string[]).includes(text)) return text as Stage2Attr
  throw new HvmemError('input', `unknown attribute "${text}" (use ${STAGE2_ATTRS.join(', ')})`)
}

/** A block (L1, L2) or page (L3) descriptor for output address `pa`, which must be aligned to the level. */
export function leafDescriptor(level: 1 | 2 | 3, pa: bigint, attr: Stage2Attr): bigint {
  const size = LEVEL_SIZE[level]!
  if ((pa & (size - 1n)) !== 0n || (pa & ~ADDRESS_MASK) !== 0n) throw new HvmemError('input', `output address 0x${pa.toString(16)} is not a ${size}-byte aligned 48-bit address`)
  return pa | ATTR_BITS[attr] | VALID | (level === 3 ? TABLE_OR_PAGE : 0n)
}

export function tableDescriptor(nextTable: bigint): bigint {
  return (nextTable & ADDRESS_MASK) | VALID | TABLE_OR_PAGE
}

/** The named attribute whose bits a leaf descriptor carries, if any. */
export function attrOf(descriptor: bigint): Stage2Attr | undefined {
  const bits = descriptor & ~ADDRESS_MASK & ~3n
  return STAGE2_ATTRS.find((a) => ATTR_BITS[a] === bits)
}

export type DescriptorKind = 'invalid' | 'table' | 'block' | 'page' | 'reserved'
export type Access = 'none' | 'RO' | 'WO' | 'RW'
export type Shareability = 'NS' | 'reserved' | 'OS' | 'IS'

export interface LeafFields {
  outputAddress: bigint
  memAttr: number
  memType: string
  s2ap: number
  access: Access
  sh: number
  shareability: Shareability
  af: boolean
  /** XN[1:0], bits 54:53. Without FEAT_XNX only bit 54 counts: set = not executable at EL1 and EL0. */
  xn: number
  executable: boolean
  contiguous: boolean
  /** bits 58:55, ignored by hardware */
  software: number
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

const ACCESS: readonly Access[] = ['none', 'RO', 'WO', 'RW']
const SHAREABILITY: readonly Shareability[] = ['NS', 'reserved', 'OS', 'IS']
const CACHEABILITY = ['?', 'NC', 'WT', 'WB'] as const
const DEVICE = ['nGnRnE', 'nGnRE', 'nGRE', 'GRE'] as const

/** Names a stage-2 MemAttr[3:2]/[1:0] pair: Device-nGnRE, Normal-WB, Normal-NC, or Normal-oWB-iNC when outer and inner differ. */
export function memTypeName(memAttr: number): string {
  const outer = (memAttr >> 2) & 3
  const inner = memAttr & 3
  if (outer === 0) return `Device-${DEVICE[inner]}`
  if (inner === 0) return `Normal-o${CACHEABILITY[outer]}-i(reserved)`
  return outer === inner ? `Normal-${CACHEABILITY[outer]}` : `Normal-o${CACHEABILITY[outer]}-i${CACHEABILITY[inner]}`
}

export function kindOf(descriptor: bigint, level: number): DescriptorKind {
  if ((descriptor & VALID) === 0n) return 'invalid'
  const typeBit = (descriptor & TABLE_OR_PAGE) !== 0n
  if (level === 3) return typeBit ? 'page' : 'reserved'
  if (typeBit) return 'table'
  // 4 KiB granule without FEAT_LPA2: no blocks at level 0.
  return level === 0 ? 'reserved' : 'block'
}

export function decode(descriptor: bigint, level: number): Decoded {
  const kind = kindOf(descriptor, level)
  if (kind === 'table') return {raw: descriptor, level, kind, nextTable: descriptor & ADDRESS_MASK}
  if (kind !== 'block' && kind !== 'page') return {raw: descriptor, level, kind}
  const size = LEVEL_SIZE[level]!
  const memAttr = Number((descriptor >> 2n) & 0xfn)
  const s2ap = Number((descriptor >> 6n) & 3n)
  const sh = Number((descriptor >> 8n) & 3n)
  const xn = Number((descriptor >> 53n) & 3n)
  return {
    raw: descriptor,
    level,
    kind,
    leaf: {
      outputAddress: descriptor & ADDRESS_MASK & ~(size - 1n),
      memAttr,
      memType: memTypeName(memAttr),
      s2ap,
      access: ACCESS[s2ap]!,
      sh,
      shareability: SHAREABILITY[sh]!,
      af: (descriptor & AF) !== 0n,
      xn,
      executable: (descriptor & XN) === 0n,
      contiguous: (descriptor & CONTIGUOUS) !== 0n,
      software: Number((descriptor >> 55n) & 0xfn),
    },
  }
}
