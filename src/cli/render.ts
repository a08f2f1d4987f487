/** Human renderings shared by commands. */
import type {HeapStatus} from '../core/heap.js'
import type {LeafFields} from '../core/descriptor.js'
import {formatSize, hex} from '../core/u64.js'
import type {Range} from '../core/walker.js'
import {color} from './style.js'

/** A proportional bar: `[████░░░░]`, allocated then padding then free. */
export function usageBar(s: HeapStatus, width = 32): string {
  const cells = (bytes: bigint): number => Number((bytes * BigInt(width) + s.size - 1n) / s.size)
  const used = Math.min(width, cells(s.allocated))
  const padding = Math.min(width - used, cells(s.next - s.start) - used)
  return `[${color.cyan('█'.repeat(used))}${color.yellow('▒'.repeat(Math.max(0, padding)))}${color.dim('░'.repeat(width - used - Math.max(0, padding)))}]`
}

export function percent(part: bigint, whole: bigint): string {
  return `${(Number((part * 10000n) / whole) / 100).toFixed(2)}%`
}

/** ptdump-style attribute words: `RW X Normal-WB IS AF BLK`, `RW X Normal-WB IS AF CON PG` with the contiguous bit. */
export function attributeWords(leaf: LeafFields, kind: string): string {
  const access = leaf.access === 'none' ? '--' : leaf.access
  const size = kind === 'page' ? 'PG' : 'BLK'
  // the contiguous bit (52): CON, as Linux's ptdump marks it
  const cont = leaf.contiguous ? ['CON'] : []
  if (leaf.el0Access !== undefined) {
    // EL1&0: EL1/EL0 access, then the execute-never bits that are set (PXN, UXN), nG
    const el0 = leaf.el0Access === 'none' ? '--' : leaf.el0Access
    const xn = [...(leaf.pxn === true ? ['PXN'] : []), ...(leaf.uxn === true ? ['UXN'] : [])]
    return [`${access}/${el0}`, ...xn, leaf.memType, leaf.shareability, leaf.af ? 'AF' : '--', ...(leaf.ng === true ? ['nG'] : []), ...cont, size].join(' ')
  }
  return [access, leaf.executable ? 'X' : 'NX', leaf.memType, leaf.shareability, leaf.af ? 'AF' : '--', ...cont, size].join(' ')
}

/** One ptdump line: `0x0000000040000000-0x0000000080000000   1G  L2  RW X Normal-WB IS AF BLK`. */
export function rangeLine(r: Range): string {
  const leaf = r.decoded.leaf!
  const identity = r.outputStart === r.start ? '' : `  -> ${hex(r.outputStart, 10)}`
  return `${hex(r.start, 16)}-${hex(r.end, 16)} ${formatSize(r.end - r.start).padStart(4)}  L${r.level}  ${attributeWords(leaf, r.decoded.kind)}${identity}`
}

/** Classic hexdump, 16 bytes a line: address, bytes in two groups of eight, ASCII. `dim` paints the address (pass `(s) => s` for none). */
export function hexdump(address: bigint, bytes: Uint8Array, dim: (text: string) => string = color.dim): string {
  const lines: string[] = []
  for (let offset = 0; offset < bytes.length; offset += 16) lines.push(hexdumpRow(address + BigInt(offset), bytes, offset, dim))
  return lines.join('\n')
}

/** Each byte's two hex digits, and its character in a hexdump's text column ('.' if not printable ASCII). */
const HEX_BYTE = Array.from({length: 256}, (_, b) => b.toString(16).padStart(2, '0'))
const PRINTABLE = Array.from({length: 256}, (_, b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.'))

/**
 * One hexdump line: the 16 bytes of `bytes` from `start` (fewer at its end) at `address`. Made from
 * tables, one string a part: `snapshot show` prints millions of them.
 */
export function hexdumpRow(address: bigint, bytes: Uint8Array, start: number, dim: (text: string) => string = color.dim): string {
  const end = Math.min(start + 16, bytes.length)
  let left = ''
  let right = ''
  let text = ''
  for (let i = start; i < end; i++) {
    const b = bytes[i]!
    const k = i - start
    if (k < 8) left = k === 0 ? HEX_BYTE[b]! : `${left} ${HEX_BYTE[b]}`
    else right = k === 8 ? HEX_BYTE[b]! : `${right} ${HEX_BYTE[b]}`
    text += PRINTABLE[b]
  }
  return `${dim(hex(address, 10))}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|`
}
