/**
 * `dump tables --json` written as it is produced: the same text as JSON.stringify(document, null, 2)
 * (docs/scripting.md, "JSON output"), without an object per entry or the whole document as one string. A tree of
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
import {RangeMerger, ScanCursor, type TableWalker, type Unfollowed, peekingAccess, type WalkEntry, describeUnfollowed} from '../core/walker.js'
import type {DotOptions} from './dot.js'
import {type MapperJson, entryJson, mapperJson, rangeJson} from './json.js'
import {OutputSink, drive} from './sink.js'
import {type TreeTarget, writeDotLines} from './table-dump.js'

type Field = 'index' | 'table' | 'ipa' | 'descriptor' | 'next' | 'output'
const FIELDS: readonly Field[] = ['index', 'table', 'ipa', 'descriptor', 'next', 'output']
/** A marker value, and how JSON.stringify writes it (quoted, its NULs escaped). */
const marker = (field: Field): string => `\u0000${field}\u0000`
const MARKER_TEXT = new Map(FIELDS.map((f) => [JSON.stringify(marker(f)), f]))
const MARKER_PATTERN = new RegExp(`(${[...MARKER_TEXT.keys()].map((t) => t.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')).join('|')})`)

/** An entry's text: literals[0], fields[0], literals[1], ... as UTF-8, and the most bytes it can take. */
interface Template {
  literals: Uint8Array[]
  fields: Field[]
  maxBytes: number
}

const QUOTE = 0x22
const ZERO = 0x30
const X = 0x78
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0))
const FIRST_SEPARATOR = Buffer.from('\n    ')
const SEPARATOR = Buffer.from(',\n    ')

/** Writes the hex digits of a 32-bit `v` (at least `width` of them, zero-padded) at `at`; returns the end. */
function putDigits(out: Uint8Array, at: number, v: number, width: number): number {
  const digits = Math.max(width, 1, (35 - Math.clz32(v)) >> 2)
  for (let shift = 4 * (digits - 1); shift >= 0; shift -= 4) out[at++] = HEX_DIGITS[(v >>> shift) & 15]!
  return at
}

/** Writes `0x` and the hex digits of `n`, a whole number below 2^53, as hex(BigInt(n)) spells it. */
function putHex(out: Uint8Array, at: number, n: number): number {
  out[at++] = ZERO
  out[at++] = X
  const high = Math.floor(n / 0x1_0000_0000)
  if (high === 0) return putDigits(out, at, n >>> 0, 0)
  return putDigits(out, putDigits(out, at, high, 0), n >>> 0, 8)
}

function putQuotedHex(out: Uint8Array, at: number, n: number): number {
  out[at++] = QUOTE
  at = putHex(out, at, n)
  out[at++] = QUOTE
  return at
}

/** The decimal digits of 0..511 (table indexes), ready to copy. */
const DECIMALS = Array.from({length: 512}, (_, i) => Buffer.from(String(i)))

/** Writes a whole number in decimal. */
function putDecimal(out: Uint8Array, at: number, n: number): number {
  const known = DECIMALS[n]
  if (known !== undefined) {
    out.set(known, at)
    return at + known.length
  }
  const text = String(n)
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i)
  return at
}

/** `value` as JSON.stringify(_, null, 2) writes it nested `depth` levels deep (its first line not indented). */
export function nested(value: unknown, depth: number): string {
  return JSON.stringify(value, null, 2).replaceAll('\n', `\n${'  '.repeat(depth)}`)
}

/** What follows `ranges` in the document: `walk` (with --root) and `dot` (with --format dot), each as JSON.stringify gives it. */
export interface DumpJsonTail {
  walk?: unknown
  /** the dot source of the same tables goes in `dot` (`dump tables --format dot --json`) */
  dot?: DotOptions
}

/**
 * Writes the `dump tables --json` document for `mapper`'s tables through `write`, as UTF-8 in chunks
 * of up to 1 MiB; `write` returns true if it is done with the bytes it was given (they may be reused).
 */
export function writeDumpJson(mapper: IdentityMapper, memory: PhysicalMemory, write: (bytes: Uint8Array) => boolean | void): void {
  const sink = new OutputSink({bytes: write})
  const parts = dumpJsonParts(mapperJson(mapper), mapper, memory, sink, {})
  while (!parts.step()) {
    // a sink of bytes is never behind: one step does it all
  }
  parts.finish()
  sink.text('\n}\n')
  sink.flush()
}

/**
 * Writes the `dump tables --json` document for the tables of `target` through `sink`, stopping the
 * walk while stdout's reader is behind. Returns false if stdout failed on the way.
 */
export async function streamDumpJson(mapper: MapperJson | null, target: TreeTarget, memory: PhysicalMemory, sink: OutputSink, tail: DumpJsonTail = {}): Promise<boolean> {
  const parts = dumpJsonParts(mapper, target, memory, sink, tail)
  if (!(await drive(sink, parts.step))) return false
  parts.finish()
  if (tail.dot !== undefined) {
    // the source's lines, each escaped as JSON.stringify escapes it, joined by an escaped newline
    sink.text(',\n  "dot": "')
    let first = true
    const emit = (line: string): void => {
      sink.text(`${first ? '' : '\\n'}${JSON.stringify(line).slice(1, -1)}`)
      first = false
    }
    if (!(await writeDotLines(sink, memory, target, tail.dot, emit))) return false
    sink.text('"')
  }
  sink.text('\n}\n')
  sink.flush()
  return !sink.failed
}

/** The document in parts: `step` walks on until the sink is behind (true when the walk is done), `finish` writes the rest. */
function dumpJsonParts(mapper: MapperJson | null, target: TreeTarget, memory: PhysicalMemory, sink: OutputSink, tail: DumpJsonTail): {step: () => boolean; finish: () => void} {
  const regime = target.regime
  const templates = new Map<number, Template>()
  const emit = (text: string): void => sink.text(text)

  emit(`{\n  "mapper": ${mapper === null ? 'null' : nested(mapper, 1)},\n  "entries": [`)
  let first = true
  let lastKey = -1
  let template: Template | undefined
  const geometry = target.geometry
  const ranges = new RangeMerger(regime, geometry)
  // the table of the entries being written (512 in a row share it), and its text
  let tableNumber = -1
  let tableText = new Uint8Array(0)
  // an entry whose table the walk does not follow is written with its problem, so it waits for the walk's word
  let held: WalkEntry | undefined
  const release = (): void => {
    if (held === undefined) return
    emit(`${first ? '\n    ' : ',\n    '}${nested(entryJson(held), 2)}`)
    first = false
    lastKey = -1
    held = undefined
  }
  const cursor = new ScanCursor(memory, target.root, geometry, peekingAccess(memory))
  const visit = (w: TableWalker, unfollowed?: Unfollowed): void => {
    if (unfollowed !== undefined) {
      held!.problem = describeUnfollowed(w.next, unfollowed)
      release()
      return
    }
    if (sink.behind) {
      cursor.stop(w)
      return
    }
    release()
    const {level, index, table, addr: ipa, lo, hi} = w
    ranges.add(w)
    if ((lo & 3) === 3 && level < 3) {
      // a table entry (one in 512 or more) is rendered whole once the walk has said whether it follows it
      held = {level, index, table: BigInt(table), ipa: BigInt(ipa), size: geometry.entrySize(level), decoded: regime.decode(w.raw, level, geometry)}
      return
    }
    // the kind: level, type bits and attribute bits (11:0 and 63:48), as one number
    const key = level * 0x1000_0000 + (lo & 0xfff) * 0x1_0000 + (hi >>> 16)
    if (key !== lastKey) {
      template = templates.get(key)
      if (template === undefined) {
        template = makeTemplate(regime.decode(w.raw, level, geometry), level, index, table, ipa, geometry.entrySize(level))
        templates.set(key, template)
      }
      lastKey = key
    }
    const t = template!
    let at = sink.reserve(t.maxBytes)
    const out = sink.bytes
    const separator = first ? FIRST_SEPARATOR : SEPARATOR
    out.set(separator, at)
    at += separator.length
    first = false
    out.set(t.literals[0]!, at)
    at += t.literals[0]!.length
    for (let i = 0; i < t.fields.length; i++) {
      switch (t.fields[i]!) {
        case 'index':
          at = putDecimal(out, at, index)
          break
        case 'table':
          if (table !== tableNumber) {
            tableNumber = table
            // a copy: the buffer is reused once written out, and a concatenated root's entries (up
            // to 8,192 with one table address) outlast a buffer or more
            tableText = new Uint8Array(out.subarray(at, putQuotedHex(out, at, table)))
          }
          out.set(tableText, at)
          at += tableText.length
          break
        case 'ipa':
          at = putQuotedHex(out, at, ipa)
          break
        case 'descriptor':
          out[at++] = QUOTE
          if (hi === 0) at = putHex(out, at, lo >>> 0)
          else {
            out[at++] = ZERO
            out[at++] = X
            at = putDigits(out, at, hi >>> 0, 0)
            at = putDigits(out, at, lo >>> 0, 8)
          }
          out[at++] = QUOTE
          break
        case 'next':
          at = putQuotedHex(out, at, w.next)
          break
        case 'output':
          at = putQuotedHex(out, at, w.output)
          break
      }
      const literal = t.literals[i + 1]!
      out.set(literal, at)
      at += literal.length
    }
    sink.wrote(at)
  }
  const step = (): boolean => cursor.run(visit)
  const finish = (): void => {
    release()
    emit(`${first ? ']' : '\n  ]'},\n  "ranges": ${nested(ranges.finish().ranges.map(rangeJson), 1)}`)
    if (tail.walk !== undefined) emit(`,\n  "walk": ${nested(tail.walk, 1)}`)
  }
  return {step, finish}
}

/** The text of an entry like this one, with markers where entries of its kind differ. */
function makeTemplate(decoded: Decoded, level: number, index: number, table: number, ipa: number, size: bigint): Template {
  const json = entryJson({level, index, table: BigInt(table), ipa: BigInt(ipa), size, decoded})
  const marked: Record<string, unknown> = {...json, index: marker('index'), table: marker('table'), ipa: marker('ipa'), descriptor: marker('descriptor')}
  if (json.nextTable !== undefined) marked.nextTable = marker('next')
  if (json.leaf !== undefined) marked.leaf = {...json.leaf, outputAddress: marker('output')}
  const parts = nested(marked, 2).split(MARKER_PATTERN)
  const literals = parts.filter((_, i) => i % 2 === 0).map((part) => Buffer.from(part, 'utf8'))
  const fields = parts.filter((_, i) => i % 2 === 1).map((part) => MARKER_TEXT.get(part)!)
  // each field: at most 18 characters and its quotes ("0x" and 16 hex digits, or an index)
  return {literals, fields, maxBytes: SEPARATOR.length + literals.reduce((sum, l) => sum + l.length, 0) + 20 * fields.length}
}
