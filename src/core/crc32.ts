/**
 * CRC-32 (zlib's, the reflected polynomial 0xedb88320) arithmetic: the CRC of a few bytes, a byte at
 * a time, and the CRC of two pieces of data one after the other from the CRCs of the pieces, as
 * zlib's crc32_combine computes it. A reader that has each page's CRC can so check a run of pages
 * with one CRC of the whole run.
 */

const POLY = 0xedb88320

let byteTable: Int32Array | undefined

/** The CRC of each byte value (made at the first use). */
function makeByteTable(): Int32Array {
  const t = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? POLY ^ (c >>> 1) : c >>> 1
    t[n] = c
  }
  return t
}

/**
 * zlib's crc32(bytes, crc): the CRC-32 of `bytes`, continuing `crc` (the CRC of what came before
 * them), a byte at a time: for a few hundred bytes, where zlib's own would first have to be loaded.
 */
export function crc32Bytes(bytes: Uint8Array, crc = 0): number {
  const t = (byteTable ??= makeByteTable())
  let c = ~crc
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** a * b modulo the CRC polynomial, both reflected (bit 31 is x^0). */
function multiplyModP(a: number, b: number): number {
  let m = 0x8000_0000
  let p = 0
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b
      if ((a & (m - 1)) === 0) break
    }
    m >>>= 1
    b = (b & 1) !== 0 ? (b >>> 1) ^ POLY : b >>> 1
  }
  return p >>> 0
}

/** x^(8 * bytes) modulo the polynomial: the operator that shifts a CRC past `bytes` bytes. */
function shiftOperator(bytes: number): number {
  // x^(2^k), k = 0, 1, ...: squaring the previous; x^1 reflected is bit 30
  let power = 0x4000_0000
  let p = 0x8000_0000 // x^0
  let n = bytes * 8
  while (n > 0) {
    if (n % 2 === 1) p = multiplyModP(power, p)
    power = multiplyModP(power, power)
    n = Math.floor(n / 2)
  }
  return p
}

/**
 * Shifting a CRC past a fixed length is linear in the CRC's bits: as four tables, one a byte of the
 * CRC, each entry the shifted image of that byte (32 multiplications to make, four lookups to use).
 */
function shiftTables(bytes: number): Uint32Array {
  const op = shiftOperator(bytes)
  const tables = new Uint32Array(4 * 256)
  for (let k = 0; k < 4; k++) {
    const t = tables.subarray(256 * k, 256 * (k + 1))
    for (let bit = 0; bit < 8; bit++) t[1 << bit] = multiplyModP(op, (1 << (8 * k + bit)) >>> 0)
    for (let b = 3; b < 256; b++) if ((b & (b - 1)) !== 0) t[b] = t[b & (b - 1)]! ^ t[b & -b]!
  }
  return tables
}

const shifts = new Map<number, Uint32Array>()

/** The CRC-32 of A followed by B, from crcA, crcB and the length of B in bytes (zlib's crc32_combine). */
export function combineCrc32(crcA: number, crcB: number, lengthB: number): number {
  let t = shifts.get(lengthB)
  if (t === undefined) {
    t = shiftTables(lengthB)
    shifts.set(lengthB, t)
  }
  return (t[crcA & 0xff]! ^ t[256 + ((crcA >>> 8) & 0xff)]! ^ t[512 + ((crcA >>> 16) & 0xff)]! ^ t[768 + (crcA >>> 24)]! ^ crcB) >>> 0
}
