/**
 * `dump tables --json` written as it is produced: the same text as JSON.stringify(document, null, 2)
 * (README "JSON output"), without an object per entry or the whole document as one string. A tree of
 * 262,144 entries is about 135 MB of JSON; built as objects and stringified whole it takes seconds
 * and hundreds of MB.
 *
 * Each entry's text comes from a template: the first entry of each kind (level, descriptor type and
 * attribute bits) is rendered by entryJson and JSON.stringify with marker values in the fields that
 * vary (index, addresses, descriptor), and later entries of that kind fill the markers in. So the
 * text is JSON.stringify's by construction.
 */
import type {Decoded} from '../core/descriptor.js'
import type {IdentityMapper} from '../core/mapper.js'
import type {PhysicalMemory} from '../core/memory.js'
import {type WalkEntry, addressOf, rawOf, scanTables, walkRanges} from '../core/walker.js'
import {hex} from '../core/u64.js'
import {entryJson, mapperJson, rangeJson} from './json.js'

type Field = 'index' | 'table' | 'ipa' | 'descriptor' | 'next' | 'output'
const FIELDS: readonly Field[] = ['index', 'table', 'ipa', 'descriptor', 'next', 'output']
/** A marker value, and how JSON.stringify writes it (quoted, its NULs escaped). */
const marker = (field: Field): string => `\u0000${field}\u0000`
const MARKER_TEXT = new Map(FIELDS.map((f) => [JSON.stringify(marker(f)), f]))
const MARKER_PATTERN = new RegExp(`(${[...MARKER_TEXT.keys()].map((t) => t.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')).join('|')})`)

/** Literal text, then a field, then literal text ... (odd positions are fields). */
type Template = Array<string | Field>

/** `value` as JSON.stringify(_, null, 2) writes it nested `depth` levels deep (its first line not indented). */
function nested(value: unknown, depth: number): string {
  return JSON.stringify(value, null, 2).replaceAll('\n', `\n${'  '.repeat(depth)}`)
}

/** Two hex digits for each byte value. */
const BYTE_HEX = Array.from({length: 256}, (_, i) => i.toString(16).padStart(2, '0'))
/** A 16-bit value as four hex digits. */
const hex4 = (v: number): string => BYTE_HEX[v >>> 8]! + BYTE_HEX[v & 0xff]!
/** A 32-bit value as eight hex digits. */
const hex8 = (v: number): string => hex4(v >>> 16) + hex4(v & 0xffff)

/**
 * `hex(BigInt(n))` for a whole number below 2^53, from 16-bit pieces: Number#toString(16) is slow for
 * values past 2^31, which most addresses are.
 */
function hexNumber(n: number): string {
  if (n < 0x4000_0000) return `0x${n.toString(16)}`
  const hi = Math.floor(n / 0x1_0000_0000)
  const lo = n % 0x1_0000_0000
  return hi === 0 ? `0x${(lo >>> 16).toString(16)}${hex4(lo & 0xffff)}` : `0x${hi.toString(16)}${hex8(lo)}`
}

/** `hex(rawOf(lo, hi))`: a 64-bit descriptor given as halves. */
const hexHalves = (lo: number, hi: number): string => (hi === 0 ? hexNumber(lo >>> 0) : `0x${(hi >>> 0).toString(16)}${hex8(lo >>> 0)}`)

/** Writes the `dump tables --json` document for `mapper`'s tables through `write`, as UTF-8 in chunks of up to 1 MiB. */
export function writeDumpJson(mapper: IdentityMapper, memory: PhysicalMemory, write: (bytes: Uint8Array) => void): void {
  const regime = mapper.regime
  const templates = new Map<string, Template>()
  // UTF-8 straight into 1 MiB buffers (a new one each time: `write` may keep the last)
  const CHUNK = 1 << 20
  let buffer = Buffer.allocUnsafe(CHUNK)
  let used = 0
  const flush = (): void => {
    if (used > 0) write(buffer.subarray(0, used))
    buffer = Buffer.allocUnsafe(CHUNK)
    used = 0
  }
  const emit = (text: string): void => {
    if (used + 3 * text.length > CHUNK) {
      flush()
      if (3 * text.length > CHUNK) {
        write(Buffer.from(text, 'utf8'))
        return
      }
    }
    used += buffer.write(text, used, 'utf8')
  }

  emit(`{\n  "mapper": ${nested(mapperJson(mapper), 1)},\n  "entries": [`)
  let first = true
  // the table of the entries just written, whose address repeats 512 times
  let tableNumber = -1
  let tableHex = ''
  scanTables(memory, mapper.root, {}, (level, index, table, ipa, lo, hi, tableOutsideRam) => {
    if (table !== tableNumber) {
      tableNumber = table
      tableHex = hexNumber(table)
    }
    emit(first ? '\n    ' : ',\n    ')
    first = false
    if (tableOutsideRam) {
      // rare: the entry with its problem, rendered whole
      const decoded = regime.decode(rawOf(lo, hi), level)
      const entry: WalkEntry = {level, index, table: BigInt(table), ipa: BigInt(ipa), size: SIZE[level]!, decoded, problem: `next-level table ${hex(decoded.nextTable!)} is outside RAM`}
      emit(nested(entryJson(entry), 2))
      return
    }
    // the kind: level, type bits and attribute bits (11:0 and 63:48)
    const key = `${level}:${lo & 0xfff}:${hi >>> 16}`
    let template = templates.get(key)
    if (template === undefined) {
      template = makeTemplate(regime.decode(rawOf(lo, hi), level), level, index, table, ipa)
      templates.set(key, template)
    }
    const address = addressOf(lo, hi)
    const size = SIZE_NUMBER[level]!
    let text = template[0] as string
    for (let i = 1; i < template.length; i += 2) {
      switch (template[i] as Field) {
        case 'index':
          text += index
          break
        case 'table':
          text += `"${table === tableNumber ? tableHex : hexNumber(table)}"`
          break
        case 'ipa':
          text += `"${hexNumber(ipa)}"`
          break
        case 'descriptor':
          text += `"${hexHalves(lo, hi)}"`
          break
        case 'next':
          text += `"${hexNumber(address)}"`
          break
        case 'output':
          text += `"${hexNumber(address - (address % size))}"`
          break
      }
      text += template[i + 1] as string
    }
    emit(text)
  })
  const ranges = walkRanges(memory, regime, mapper.root).ranges.map(rangeJson)
  emit(`${first ? ']' : '\n  ]'},\n  "ranges": ${nested(ranges, 1)}\n}\n`)
  flush()
}

/** Bytes an entry maps at each level (LEVEL_SIZE), as bigints and as numbers. */
const SIZE: readonly bigint[] = [512n << 30n, 1n << 30n, 2n << 20n, 4n << 10n]
const SIZE_NUMBER: readonly number[] = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12]

/** The text of an entry like this one, with markers where entries of its kind differ. */
function makeTemplate(decoded: Decoded, level: number, index: number, table: number, ipa: number): Template {
  const json = entryJson({level, index, table: BigInt(table), ipa: BigInt(ipa), size: SIZE[level]!, decoded})
  const marked: Record<string, unknown> = {...json, index: marker('index'), table: marker('table'), ipa: marker('ipa'), descriptor: marker('descriptor')}
  if (json.nextTable !== undefined) marked.nextTable = marker('next')
  if (json.leaf !== undefined) marked.leaf = {...json.leaf, outputAddress: marker('output')}
  return nested(marked, 2)
    .split(MARKER_PATTERN)
    .map((part, i) => (i % 2 === 0 ? part : MARKER_TEXT.get(part)!))
}
