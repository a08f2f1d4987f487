/** Exact 64-bit helpers. Every address, size, descriptor and register is a bigint. */

export const U64_MAX = (1n << 64n) - 1n
export const KiB = 1n << 10n
export const MiB = 1n << 20n
export const GiB = 1n << 30n
export const TiB = 1n << 40n

export function isPowerOfTwo(value: bigint): boolean {
  return value > 0n && (value & (value - 1n)) === 0n
}

/** Rounds up to a power-of-two alignment. bigint arithmetic cannot wrap; callers compare the result with their limit. */
export function alignUp(value: bigint, align: bigint): bigint {
  return (value + align - 1n) & ~(align - 1n)
}

export function isAligned(value: bigint, align: bigint): boolean {
  return (value & (align - 1n)) === 0n
}

/** Lowercase `0x` hex; `digits` pads with zeros. */
export function hex(value: bigint, digits = 0): string {
  // (no padStart when no width is asked: it makes a string of its own, 10,000 of them in a batch)
  return digits === 0 ? '0x' + value.toString(16) : '0x' + value.toString(16).padStart(digits, '0')
}

const UNITS: Array<[bigint, string]> = [
  [TiB, 'T'],
  [GiB, 'G'],
  [MiB, 'M'],
  [KiB, 'K'],
]

/** A size in the largest binary unit that divides it exactly: 4K, 2M, 1G, 512G, 6K, 100B. */
export function formatSize(bytes: bigint): string {
  for (const [unit, suffix] of UNITS) {
    if (bytes >= unit && bytes % unit === 0n) return `${bytes / unit}${suffix}`
  }
  return `${bytes}B`
}
