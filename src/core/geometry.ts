/**
 * Translation geometry as data (Arm ARM DDI 0487, D8.2 "Translation process"): the granule, the
 * input and output sizes, the start level and how many tables the root concatenates. Every level
 * size, index width and table size in hvmem comes from here; nothing else holds a level table or a
 * granule constant.
 *
 * Without FEAT_LPA/FEAT_LPA2: inputs of 25..48 bits, outputs of at most 48 bits, levels 0..3,
 * blocks at level 1 and 2 (4 KiB granule) or level 2 only (16 KiB and 64 KiB granules), pages at level 3.
 * With FEAT_LPA2 (`ds`, TCR_ELx.DS / VTCR_EL2.DS = 1; 4 and 16 KiB granules; walks of given tables, not
 * the mapper's): inputs and
 * outputs of up to 52 bits, a level -1 root (4 KiB, inputs above 48 bits), blocks also at level 0
 * (4 KiB) or level 1 (16 KiB), and output/table address bits 51:50 in descriptor bits 9:8.
 */
import {HvmemError} from './errors.js'

/** Granule sizes in bytes. */
export type Granule = 4096 | 16384 | 65536
export const GRANULES: readonly Granule[] = [4096, 16384, 65536]

/** PS / IPS / PARange encodings 0..6: output sizes of 32, 36, 40, 42, 44, 48, 52 bits. */
export const PA_SIZES = [32, 36, 40, 42, 44, 48, 52] as const
/** Without FEAT_LPA the largest output size is 48 bits (a larger PS acts as 48). */
export const MAX_PA_BITS = 48
export const MIN_INPUT_BITS = 25
export const MAX_INPUT_BITS = 48
/** With FEAT_LPA2 (DS = 1): 52-bit inputs and outputs. */
export const LPA2_BITS = 52
/** The first level there can be: -1 (FEAT_LPA2, 4 KiB granule). Level arrays are indexed from it. */
export const FIRST_LEVEL = -1
/** Descriptors are 8 bytes: a table holds granule / 8 entries. */
const DESCRIPTOR_BYTES_LOG2 = 3
export const FINAL_LEVEL = 3
/** Bytes of the 4 KiB memory pages that tables are stored in (a 16 KiB table spans four). */
export const MEMORY_PAGE = 4096
/**
 * Bits 47:12 of a descriptor: the widest output/next-table address field (the 4 KiB granule's; a larger
 * granule's field is a part of it, Geometry.addressMask). What lies outside it are a leaf's
 * attributes. Never `~0xfff`: that keeps the upper attribute bits.
 */
export const ADDRESS_MASK = 0x0000_ffff_ffff_f000n
/** Stage 2 concatenates at most 16 tables at the start level (Arm ARM D8.2.7). */
const MAX_CONCATENATION_LOG2 = 4

export interface GeometrySpec {
  granule: Granule
  inputBits: number
  /** default: 40, or the smallest PS size that holds the input size when that is larger */
  paBits?: number
  /** default: derived (stage 2 as KVM does, stage 1 by AArch64.S1StartLevel) */
  startLevel?: number
  /** FEAT_LPA2 (TCR_ELx.DS / VTCR_EL2.DS = 1; 4 and 16 KiB granules): up to 52-bit inputs and outputs */
  ds?: boolean
}

/** `4K`, `16K`, `64K`. */
export function granuleName(granule: number): string {
  return `${granule / 1024}K`
}

/** The smallest PS output size of at least 40 bits that holds `inputBits`. */
export function defaultPaBits(inputBits: number): number {
  const wanted = Math.max(40, inputBits)
  return PA_SIZES.find((bits) => bits >= wanted) ?? MAX_PA_BITS
}

export class Geometry {
  /** log2 of the granule: 12, 14 or 16 */
  readonly granuleBits: number
  /** index bits a full table resolves: 9, 11 or 13 */
  readonly stride: number
  /** entries in one (non-root) table */
  readonly entries: number
  /** entries in the root: one table's worth or fewer, or up to 16 concatenated tables' */
  readonly rootEntries: number
  /** how many granule-sized tables the root is made of */
  readonly rootTables: number
  /** output and table address bits 47:granuleBits */
  readonly addressMask: bigint
  /** the same for the low 32-bit half of a descriptor */
  readonly addressMaskLo: number
  /** FEAT_LPA2 (DS = 1): address bits 49:granuleBits in place, 51:50 in descriptor bits 9:8 */
  readonly ds: boolean
  /**
   * By level from FIRST_LEVEL, for reads on a descriptor's 32-bit halves: a leaf's output address
   * bits in the low half (`outputLo`) and the high half (`outputHi`, bits 47:32, with DS 49:32), and
   * the low two bits of a leaf (`leafBits`: 0b11 a page, 0b01 a block, -1 no leaf at that level).
   */
  readonly outputLo: readonly number[]
  readonly outputHi: readonly number[]
  readonly leafBits: readonly number[]
  private readonly shifts: number[] = []
  private readonly bytes: number[] = []
  private readonly sizes: bigint[] = []
  /** entriesAt by level: a lookup the same for every level (see entriesAt) */
  private readonly tableEntries: number[] = []

  constructor(
    readonly stage: 1 | 2,
    readonly granule: Granule,
    readonly inputBits: number,
    readonly paBits: number,
    readonly startLevel: number,
    ds = false,
  ) {
    this.ds = ds
    this.granuleBits = Math.log2(granule)
    this.stride = this.granuleBits - DESCRIPTOR_BYTES_LOG2
    this.entries = 2 ** this.stride
    for (let level = FIRST_LEVEL; level <= FINAL_LEVEL; level++) {
      const shift = this.granuleBits + this.stride * (FINAL_LEVEL - level)
      this.shifts.push(shift)
      this.bytes.push(2 ** shift)
      this.sizes.push(1n << BigInt(shift))
    }
    const rootBits = inputBits - this.shift(startLevel)
    this.rootEntries = 2 ** rootBits
    for (let level = FIRST_LEVEL; level <= FINAL_LEVEL; level++) this.tableEntries.push(level === startLevel ? this.rootEntries : this.entries)
    this.rootTables = Math.max(1, 2 ** (rootBits - this.stride))
    this.addressMask = ((1n << BigInt(ds ? 50 : MAX_PA_BITS)) - 1n) & ~(BigInt(granule) - 1n)
    this.addressMaskLo = Number(this.addressMask & 0xffff_ffffn)
    const mask = this.addressMask
    const outputLo: number[] = []
    const outputHi: number[] = []
    const leafBits: number[] = []
    for (let level = FIRST_LEVEL; level <= FINAL_LEVEL; level++) {
      const shift = this.shift(level)
      outputLo.push(shift >= 32 ? 0 : Number(mask & 0xffff_ffffn & ~((1n << BigInt(shift)) - 1n)))
      outputHi.push(Number((mask >> 32n) & ~((1n << BigInt(Math.max(0, shift - 32))) - 1n)))
      leafBits.push(level === FINAL_LEVEL ? 3 : this.canBlock(level) ? 1 : -1)
    }
    this.outputLo = outputLo
    this.outputHi = outputHi
    this.leafBits = leafBits
  }

  /** The input-address bit where a level's index starts. */
  shift(level: number): number {
    return this.shifts[level - FIRST_LEVEL]!
  }

  /** Bytes one entry at `level` maps. */
  entrySize(level: number): bigint {
    return this.sizes[level - FIRST_LEVEL]!
  }

  /** The same as a number (exact: at most 2^51). */
  entryBytes(level: number): number {
    return this.bytes[level - FIRST_LEVEL]!
  }

  /** The index of `address` in the table at `level` (at the start level: the whole, concatenated root). */
  index(address: bigint, level: number): number {
    const shift = this.shift(level)
    const bits = level === this.startLevel ? this.inputBits - shift : this.stride
    return Number((address >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n))
  }

  /** The next-level table address of a table descriptor (with DS, bits 51:50 from bits 9:8). */
  tableAddress(descriptor: bigint): bigint {
    return (descriptor & this.addressMask) | (this.ds ? ((descriptor >> 8n) & 3n) << 50n : 0n)
  }

  /** The output address of a block or page descriptor at `level` (with DS, bits 51:50 from bits 9:8). */
  outputAddress(descriptor: bigint, level: number): bigint {
    return this.tableAddress(descriptor) & ~(this.entrySize(level) - 1n)
  }

  /**
   * Entries of the table at `level`. Looked up by level rather than chosen by a comparison: a walk's
   * loop compiled with this inlined had no type feedback for the root's side (its only calls at a
   * root came before V8 kept feedback for it), and reaching that side discarded the compiled code
   * (--trace-deopt: in every `dump tables --json`).
   */
  entriesAt(level: number): number {
    return this.tableEntries[level - FIRST_LEVEL]!
  }

  /** Bytes of the table at `level` (the root: all its concatenated tables). */
  tableBytes(level: number): number {
    return level === this.startLevel ? this.rootTables * this.granule : this.granule
  }

  /** Whether an entry at `level` may be a block (4 KiB granule: levels 1 and 2; 16 and 64 KiB: level 2; with DS also 4 KiB level 0 and 16 KiB level 1). */
  canBlock(level: number): boolean {
    if (level === 2 || (level === 1 && this.granule === 4096)) return true
    return this.ds && ((level === 0 && this.granule === 4096) || (level === 1 && this.granule === 16384))
  }

  /** Whether an entry at `level` may be a leaf: a block, or a page at level 3. */
  canLeaf(level: number): boolean {
    return level === FINAL_LEVEL || this.canBlock(level)
  }

  /**
   * How many entries a run of the contiguous bit (bit 52) spans at `level`, or 0 where the bit makes
   * no run: the Arm ARM's ContiguousSize (DDI 0487, D8.6.1 "The Contiguous bit"; FEAT_D128 off):
   * 4 KiB granule 16 at levels 1, 2 and 3 (16 GiB, 32 MiB, 64 KiB); 16 KiB 32 at level 2 (1 GiB) and
   * 128 at level 3 (2 MiB); 64 KiB 32 at levels 2 and 3 (16 GiB, 2 MiB).
   */
  contiguousEntries(level: number): number {
    if (this.granule === 4096) return level >= 1 && level <= FINAL_LEVEL ? 16 : 0
    if (level === 2) return 32
    if (level === FINAL_LEVEL) return this.granule === 16384 ? 128 : 32
    return 0
  }

  /** The leaf sizes this geometry has, largest first, with their levels. */
  leafSizes(): Array<{level: number; size: bigint}> {
    const out: Array<{level: number; size: bigint}> = []
    for (let level = this.startLevel; level <= FINAL_LEVEL; level++) if (this.canLeaf(level)) out.push({level, size: this.entrySize(level)})
    return out
  }

  get inputLimit(): bigint {
    return 1n << BigInt(this.inputBits)
  }

  get paLimit(): bigint {
    return 1n << BigInt(this.paBits)
  }

  /** Alignment of the root: its concatenated tables are aligned to their total size. */
  get rootAlign(): bigint {
    return BigInt(this.rootTables * this.granule)
  }

  /** `4K granule, 39-bit IPA, 40-bit PA, level-1 root` (and ` of 2 concatenated tables`); `input` names the input address (default IPA or VA by stage). */
  describe(input: string = this.stage === 2 ? 'IPA' : 'VA'): string {
    const concatenated = this.rootTables > 1 ? ` of ${this.rootTables} concatenated tables` : ''
    return `${granuleName(this.granule)} granule, ${this.inputBits}-bit ${input}, ${this.paBits}-bit PA, level-${this.startLevel} root${concatenated}`
  }

  equals(other: Geometry): boolean {
    return (
      this.stage === other.stage && this.granule === other.granule && this.inputBits === other.inputBits && this.paBits === other.paBits && this.startLevel === other.startLevel && this.ds === other.ds
    )
  }
}

function checkGranule(granule: number): asserts granule is Granule {
  if (!GRANULES.includes(granule as Granule)) throw new HvmemError('input', `the granule must be 4K, 16K or 64K (got ${granule} bytes)`)
}

function checkSizes(inputBits: number, paBits: number, what: string): void {
  if (!Number.isInteger(inputBits) || inputBits < MIN_INPUT_BITS || inputBits > MAX_INPUT_BITS) {
    throw new HvmemError('input', `${what} must be ${MIN_INPUT_BITS}..${MAX_INPUT_BITS} bits (got ${inputBits})`)
  }
  if (!PA_SIZES.includes(paBits as (typeof PA_SIZES)[number]) || paBits > MAX_PA_BITS) {
    throw new HvmemError('input', `the physical address size must be one of ${PA_SIZES.filter((b) => b <= MAX_PA_BITS).join(', ')} bits (got ${paBits})`)
  }
}

function checkLpa2Sizes(inputBits: number, paBits: number, what: string): void {
  if (!Number.isInteger(inputBits) || inputBits < MIN_INPUT_BITS || inputBits > LPA2_BITS)
    throw new HvmemError('input', `${what} must be ${MIN_INPUT_BITS}..${LPA2_BITS} bits with FEAT_LPA2 (got ${inputBits})`)
  if (!PA_SIZES.includes(paBits as (typeof PA_SIZES)[number])) throw new HvmemError('input', `the physical address size must be one of ${PA_SIZES.join(', ')} bits (got ${paBits})`)
}

/**
 * AArch64.S1StartLevel: the level whose index takes the input bits the lower levels leave, at most
 * a full table: 3 - floor((inputBits - 1 - granuleBits) / stride).
 */
function stage1StartLevel(granule: Granule, inputBits: number): number {
  const granuleBits = Math.log2(granule)
  return FINAL_LEVEL - Math.floor((inputBits - 1 - granuleBits) / (granuleBits - DESCRIPTOR_BYTES_LOG2))
}

/**
 * KVM's stage-2 start level (arch/arm64/include/asm/stage2_pgtable.h): the fewest levels, the root
 * concatenating up to 16 tables: levels = floor((inputBits - 4 - 4) / stride).
 */
function stage2StartLevel(granule: Granule, inputBits: number): number {
  const stride = Math.log2(granule) - DESCRIPTOR_BYTES_LOG2
  return FINAL_LEVEL + 1 - Math.floor((inputBits - 4 - 4) / stride)
}

/**
 * AArch64.S2InconsistentSL: the root at the start level resolves at least one input bit and at most
 * a full table's plus the 16-table concatenation.
 */
export function rootBitsProblem(granule: Granule, inputBits: number, startLevel: number, ds = false): string | undefined {
  const granuleBits = Math.log2(granule)
  const stride = granuleBits - DESCRIPTOR_BYTES_LOG2
  const min = stride * (FINAL_LEVEL - startLevel) + granuleBits + 1
  const max = min + stride - 1 + MAX_CONCATENATION_LOG2
  if (inputBits < min || inputBits > max)
    return `a level-${startLevel} start with the ${granuleName(granule)} granule needs a ${Math.max(min, MIN_INPUT_BITS)}- to ${Math.min(max, ds ? LPA2_BITS : MAX_INPUT_BITS)}-bit input`
  return undefined
}

/** Checks a spec's granule and sizes (`what`: the input size's name), with DS FEAT_LPA2's; returns the PA size (given, or the default for the input size). */
function checkSpec(spec: GeometrySpec, what: string): number {
  checkGranule(spec.granule)
  const paBits = spec.paBits ?? defaultPaBits(spec.inputBits)
  if (spec.ds === true) {
    if (spec.granule === 65536) throw new HvmemError('input', 'FEAT_LPA2 (DS) applies to the 4K and 16K granules only')
    checkLpa2Sizes(spec.inputBits, paBits, what)
  } else checkSizes(spec.inputBits, paBits, what)
  return paBits
}

/** A stage-2 geometry: the start level as KVM derives it unless given. */
export function stage2Geometry(spec: GeometrySpec): Geometry {
  const paBits = checkSpec(spec, 'the IPA size')
  const ds = spec.ds === true
  const startLevel = spec.startLevel ?? stage2StartLevel(spec.granule, spec.inputBits)
  // level -1 only with DS and the 4 KiB granule
  const first = ds && spec.granule === 4096 ? FIRST_LEVEL : 0
  const problem = startLevel < first || startLevel > FINAL_LEVEL ? `level ${startLevel} is not a start level` : rootBitsProblem(spec.granule, spec.inputBits, startLevel, ds)
  if (problem !== undefined) throw new HvmemError('input', `a ${spec.inputBits}-bit IPA cannot start at level ${startLevel}: ${problem}`)
  return new Geometry(2, spec.granule, spec.inputBits, paBits, startLevel, ds)
}

/** A stage-1 geometry: the start level is the architecture's (a stage-1 root never concatenates). */
export function stage1Geometry(spec: GeometrySpec): Geometry {
  const paBits = checkSpec(spec, 'the VA size')
  if (spec.ds === true) return new Geometry(1, spec.granule, spec.inputBits, paBits, stage1StartLevel(spec.granule, spec.inputBits), true)
  const startLevel = stage1StartLevel(spec.granule, spec.inputBits)
  if (spec.startLevel !== undefined && spec.startLevel !== startLevel) {
    throw new HvmemError('input', `a ${spec.inputBits}-bit VA with the ${granuleName(spec.granule)} granule starts at level ${startLevel}, not ${spec.startLevel}`)
  }
  return new Geometry(1, spec.granule, spec.inputBits, paBits, startLevel)
}

/** hvmem's original geometry, and what a version-2 snapshot holds: 4 KiB granule, 39-bit input, level-1 root, 40-bit PA. */
export const DEFAULT_INPUT_BITS = 39
export const DEFAULT_GRANULE: Granule = 4096
export const DEFAULT_STAGE2 = stage2Geometry({granule: DEFAULT_GRANULE, inputBits: DEFAULT_INPUT_BITS})
export const DEFAULT_STAGE1 = stage1Geometry({granule: DEFAULT_GRANULE, inputBits: DEFAULT_INPUT_BITS})

/** The smallest IPA a mapper's stage 2 is made with (KVM's smallest, 32 bits); a walk of foreign tables takes down to MIN_INPUT_BITS. */
export const MIN_MAPPER_IPA_BITS = 32

/** TG0 of VTCR_EL2, TCR_EL2 and TCR_EL1: 0 = 4 KiB, 1 = 64 KiB, 2 = 16 KiB, 3 reserved. (TCR_EL1.TG1 is encoded otherwise.) */
const TG0_GRANULE: ReadonlyArray<Granule | undefined> = [4096, 65536, 16384, undefined]

export function tg0Of(granule: Granule): number {
  return TG0_GRANULE.indexOf(granule)
}

export function granuleOfTg0(tg0: number): Granule | undefined {
  return TG0_GRANULE[tg0]
}

/**
 * VTCR_EL2.SL0 and the start level: 4 KiB granule, level = 2 - SL0 (SL0 3 = level 3 needs FEAT_TTST);
 * 16 and 64 KiB, level = 3 - SL0 (16 KiB SL0 3 = level 0 needs FEAT_LPA2; 64 KiB SL0 3 is reserved).
 */
export function sl0Of(granule: Granule, startLevel: number): number {
  return (granule === 4096 ? 2 : 3) - startLevel
}

export function startLevelOfSl0(granule: Granule, sl0: number): number {
  return (granule === 4096 ? 2 : 3) - sl0
}

export function geometryFor(stage: 1 | 2, spec: GeometrySpec): Geometry {
  return stage === 2 ? stage2Geometry(spec) : stage1Geometry(spec)
}
