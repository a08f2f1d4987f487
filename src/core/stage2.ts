/**
 * The stage-2 regime: tables under VTTBR_EL2 (Arm ARM DDI 0487, D8.5 "Stage 2 memory region
 * attributes", and D8.3 "Translation table descriptor formats" for the fields; hvmem's encodings are in
 * docs/regimes.md, "Stage-2 encodings").
 */
import {type Access, type LeafFields, Regime, commonLeafFields} from './descriptor.js'

/**
 * Leaf attribute bits, KVM-compatible:
 * - normal:   MemAttr 0b1111 Normal WB, S2AP 0b11 RW, SH 0b11 IS, AF, executable   -> block P | 0x7fd
 * - device:   MemAttr 0b0001 Device-nGnRE, S2AP RW, SH IS, AF, XN (bit 54)          -> block P | 0x0040_0000_0000_07c5
 * - readonly: MemAttr 0b1111 Normal WB, S2AP 0b01 RO, SH IS, AF, executable        -> block P | 0x77d
 * The plan's 0x405/0x409/0x485 are stage-1 encodings; under stage 2 they read as Device with no access
 * (0x405) or write-only (0x485).
 */
export const STAGE2_ATTR_BITS = {
  normal: 0x7fcn,
  device: 0x0040_0000_0000_07c4n,
  readonly: 0x77cn,
} as const

const S2AP: readonly Access[] = ['none', 'RO', 'WO', 'RW']
const CACHEABILITY = ['?', 'NC', 'WT', 'WB'] as const
const DEVICE = ['nGnRnE', 'nGnRE', 'nGRE', 'GRE'] as const

/** Names a stage-2 MemAttr: Device-nGnRE, Normal-WB, Normal-NC, or Normal-oWB-iNC when outer ([3:2]) and inner ([1:0]) differ. */
export function memTypeName(memAttr: number): string {
  const outer = (memAttr >> 2) & 3
  const inner = memAttr & 3
  if (outer === 0) return `Device-${DEVICE[inner]}`
  if (inner === 0) return `Normal-o${CACHEABILITY[outer]}-i(reserved)`
  return outer === inner ? `Normal-${CACHEABILITY[outer]}` : `Normal-o${CACHEABILITY[outer]}-i${CACHEABILITY[inner]}`
}

/**
 * The stage-2 regime; `sh` (with FEAT_LPA2, VTCR_EL2.DS = 1: VTCR_EL2.SH0) replaces descriptor bits
 * 9:8, which are then output address bits 51:50, as the shareability.
 */
export function stage2Regime(sh?: number): Regime {
  return new Regime({
    name: 'stage2',
    stage: 2,
    attrBits: STAGE2_ATTR_BITS,
    decodeLeaf(descriptor: bigint, outputAddress: bigint): LeafFields {
      const memAttr = Number((descriptor >> 2n) & 0xfn)
      const s2ap = Number((descriptor >> 6n) & 3n)
      return {
        outputAddress,
        memType: memTypeName(memAttr),
        access: S2AP[s2ap]!,
        ...commonLeafFields(descriptor, sh),
        memAttr,
        s2ap,
        xn: Number((descriptor >> 53n) & 3n),
      }
    },
  })
}

export const STAGE2 = stage2Regime()
