/**
 * Reserved bits of the translation control registers (Arm ARM DDI 0487, D19.2: TCR_EL1, TCR_EL2 with
 * E2H = 0, VTCR_EL2), and fields hvmem does not model. A value with a RES1 bit clear or a RES0 bit
 * set is not a value of that register: often it is another register's (a TCR_EL1 given as TCR_EL2,
 * whose EPD1 is TCR_EL2's RES1 bit 23 and whose T1SZ covers RES0 bit 19), which the error names.
 */
import {HvmemError} from './errors.js'
import {hex} from './u64.js'

export type ControlRegister = 'TCR_EL1' | 'TCR_EL2' | 'VTCR_EL2'

type Bits = readonly [hi: number, lo: number]

interface ControlSpec {
  res0: readonly Bits[]
  res1: readonly number[]
  /** fields whose effect hvmem does not model: refused */
  unmodelled: ReadonlyArray<{bits: Bits; name: string; why: string}>
  /** the register a wrong value most likely is */
  lookalike?: ControlRegister
}

const SPECS: Record<ControlRegister, ControlSpec> = {
  TCR_EL1: {
    res0: [
      [6, 6],
      [35, 35],
      [63, 62],
    ],
    res1: [],
    unmodelled: [],
  },
  // bit 32 is DS (FEAT_LPA2)
  TCR_EL2: {
    res0: [
      [7, 6],
      [19, 19],
      [63, 34],
    ],
    res1: [23, 31],
    unmodelled: [],
    lookalike: 'TCR_EL1',
  },
  VTCR_EL2: {
    res0: [
      [20, 20],
      [24, 23],
      [39, 39],
      [43, 42],
      [63, 46],
    ],
    res1: [31],
    // bits 32 and 33 are DS and SL2 (FEAT_LPA2)
    unmodelled: [{bits: [45, 34], name: 'bits 45:34', why: 'AssuredOnly, TL1, S2PIE, S2POE, D128, GCSH, TL0, HAFT and HDBSS are not modelled'}],
  },
}

/** Fields of TCR_EL1, to name what a wrong TCR_EL2 value holds there. */
const TCR_EL1_FIELDS: ReadonlyArray<readonly [hi: number, lo: number, name: string]> = [
  [5, 0, 'T0SZ'],
  [7, 7, 'EPD0'],
  [9, 8, 'IRGN0'],
  [11, 10, 'ORGN0'],
  [13, 12, 'SH0'],
  [15, 14, 'TG0'],
  [21, 16, 'T1SZ'],
  [22, 22, 'A1'],
  [23, 23, 'EPD1'],
  [25, 24, 'IRGN1'],
  [27, 26, 'ORGN1'],
  [29, 28, 'SH1'],
  [31, 30, 'TG1'],
  [34, 32, 'IPS'],
  [36, 36, 'AS'],
  [37, 37, 'TBI0'],
  [38, 38, 'TBI1'],
  [39, 39, 'HA'],
  [40, 40, 'HD'],
  [41, 41, 'HPD0'],
  [42, 42, 'HPD1'],
  [50, 43, 'HWU'],
  [51, 51, 'TBID0'],
  [52, 52, 'TBID1'],
  [53, 53, 'NFD0'],
  [54, 54, 'NFD1'],
  [55, 55, 'E0PD0'],
  [56, 56, 'E0PD1'],
  [57, 57, 'TCMA0'],
  [58, 58, 'TCMA1'],
  [59, 59, 'DS'],
  [60, 60, 'MTX0'],
  [61, 61, 'MTX1'],
]

const bitsOf = (value: bigint, [hi, lo]: Bits): bigint => (value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n)
const describeBits = ([hi, lo]: Bits): string => (hi === lo ? `bit ${hi}` : `bits ${hi}:${lo}`)

function hint(spec: ControlSpec, bit: number): string {
  if (spec.lookalike !== 'TCR_EL1') return ''
  const field = TCR_EL1_FIELDS.find(([hi, lo]) => bit <= hi && bit >= lo)
  return field === undefined ? '' : ` (bit ${bit} is TCR_EL1's ${field[2]}: a TCR_EL1 value?)`
}

/** Throws, naming the bit or field, when `value` is not a value of `register` hvmem can read. */
export function checkControlBits(register: ControlRegister, value: bigint): void {
  const spec = SPECS[register]
  const name = `${register} ${hex(value)}`
  for (const bit of spec.res1) {
    if (bitsOf(value, [bit, bit]) === 0n) throw new HvmemError('input', `${name}: bit ${bit} is RES1 but clear${hint(spec, bit)}`)
  }
  for (const bits of spec.res0) {
    const set = bitsOf(value, bits)
    if (set === 0n) continue
    const highest = bits[1] + set.toString(2).length - 1
    const what = bits[0] === bits[1] ? `bit ${highest} is RES0 but set` : `bits ${bits[0]}:${bits[1]} are RES0 but bit ${highest} is set`
    throw new HvmemError('input', `${name}: ${what}${hint(spec, highest)}`)
  }
  for (const u of spec.unmodelled) {
    if (bitsOf(value, u.bits) !== 0n) throw new HvmemError('input', `${name}: ${u.name.startsWith('bits') ? `${u.name} are` : `${u.name} (${describeBits(u.bits)}) is`} set: ${u.why}`)
  }
}
