/**
 * The stage-1 regime of the hypervisor itself: EL2 (HCR_EL2.E2H = 0), tables under TTBR0_EL2
 * (Arm ARM DDI 0487, D8.4 "Stage 1 memory region attributes"; MAIR_EL2, TCR_EL2). One privilege
 * level and one VA range: AP[1] and PXN do not apply, AP[2] (bit 7) makes a leaf read-only,
 * XN (bit 54) execute-never.
 */
import {type LeafFields, Regime, commonLeafFields} from './descriptor.js'

/**
 * MAIR_EL2 = 0x0000_0000_0004_ff00:
 * index 0 = 0x00 Device-nGnRnE, index 1 = 0xff Normal write-back (RA, WA), index 2 = 0x04 Device-nGnRE.
 */
export const MAIR_EL2 = 0x0000_0000_0004_ff00n

/**
 * hvmem's stage-1 presets: the sprint plan's AttrIndx and AP choices (0x405 / 0x409 / 0x485), made
 * safe: inner shareable (SH 0b11, bits 9:8) as Linux and KVM map normal memory (the plan's
 * non-shareable normal memory is not coherent with other CPUs), and Device execute-never (XN, bit 54;
 * the plan's device mapping was executable):
 * - normal:   AttrIndx 1 (Normal WB), RW, IS, executable           -> block P | 0x705
 * - device:   AttrIndx 2 (Device-nGnRE), RW, IS, execute-never     -> block P | 0x0040_0000_0000_0709
 * - readonly: AttrIndx 1 (Normal WB), AP[2] read-only, IS          -> block P | 0x785
 */
export const STAGE1_ATTR_BITS = {
  normal: 0x704n,
  device: 0x0040_0000_0000_0708n,
  readonly: 0x784n,
} as const

const DEVICE = ['nGnRnE', 'nGnRE', 'nGRE', 'GRE'] as const

/** A Normal-memory MAIR nibble: 0b0100 NC; 0b00RW and 0b10RW write-through; 0b01RW and 0b11RW write-back (RW != 0). */
function cacheability(nibble: number): string {
  if (nibble === 0b0100) return 'NC'
  if (nibble === 0) return '(reserved)'
  return (nibble & 0b0100) !== 0 ? 'WB' : 'WT'
}

/** Names a MAIR attribute byte: Device-nGnRE, Normal-WB, Normal-NC, or Normal-oWB-iNC when outer and inner differ. */
export function mairTypeName(attr: number): string {
  const outer = attr >> 4
  const inner = attr & 0xf
  if (outer === 0) return (inner & 3) === 0 ? `Device-${DEVICE[inner >> 2]}` : `reserved-0x${attr.toString(16).padStart(2, '0')}`
  const [o, i] = [cacheability(outer), cacheability(inner)]
  return o === i ? `Normal-${o}` : `Normal-o${o}-i${i}`
}

export function mairAttrAt(mair: bigint, index: number): number {
  return Number((mair >> BigInt(8 * index)) & 0xffn)
}

/**
 * A stage-1 leaf's fields as every stage-1 regime reads them: AttrIndx through `mair`, AP[2] as
 * read-only, and the fields common to both stages (the EL1&0 regime adds its own to these); `sh` as
 * for commonLeafFields.
 */
export function stage1LeafFields(descriptor: bigint, outputAddress: bigint, mair: bigint, sh?: number): LeafFields {
  const attrIndx = Number((descriptor >> 2n) & 7n)
  const mairAttr = mairAttrAt(mair, attrIndx)
  const ap = Number((descriptor >> 6n) & 3n)
  return {
    outputAddress,
    memType: mairTypeName(mairAttr),
    access: (ap & 2) !== 0 ? 'RO' : 'RW',
    ...commonLeafFields(descriptor, sh),
    attrIndx,
    mairAttr,
    ap,
  }
}

/**
 * The EL2 stage-1 regime reading AttrIndx through `mair` (hvmem's own MAIR_EL2, or a foreign
 * hypervisor's); `sh` (with FEAT_LPA2, TCR_EL2.DS = 1: TCR_EL2.SH0) replaces descriptor bits 9:8 as
 * the shareability.
 */
export function stage1Regime(mair: bigint, sh?: number): Regime {
  return new Regime({
    name: 'stage1',
    stage: 1,
    attrBits: STAGE1_ATTR_BITS,
    decodeLeaf: (descriptor: bigint, outputAddress: bigint): LeafFields => stage1LeafFields(descriptor, outputAddress, mair, sh),
  })
}

export const STAGE1 = stage1Regime(MAIR_EL2)
