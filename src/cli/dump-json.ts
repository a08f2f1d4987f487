/**
 * `dump tables --json` written as it is produced: the same text as JSON.stringify(document, null, 2)
 * (docs/scripting.md, "JSON output"), without an object per entry or the whole document as one string. A tree of
 * 262,144 entries is about 135 MB of JSON; built as objects and stringified whole it takes seconds
 * and hundreds of MB.
 *
 * Each entry's text comes from a template: the first entry of each kind (level, descriptor type and
 * attribute bits) is rendered by entryJson and JSON.stringify with marker values in the fields that
 * vary (index, addresses, descriptor), and later entries of that kind fill the markers in. So the
 * text is JSON.stringify's by construction. Most entries are not even filled in: an entry whose fields
 * take as many digits as those of the last entry of its kind is that entry's text with the digits that
 * differ written again (a digit or two a field: neighbours differ in a few low digits), copied out whole.
 * And most entries come in runs (a page of leaves, or the blocks between two table entries, one call
 * each): an entry that goes on from the one before it (the same kind, its descriptor one entry size
 * more) is that entry's text counted on by hand, its index by one and its addresses by the size.
 */
import type {Decoded} from '../core/descriptor.js'
import type {IdentityMapper} from '../core/mapper.js'
import type {PhysicalMemory} from '../core/memory.js'
import {RangeMerger, ScanCursor, type TableWalker, type Unfollowed, peekingAccess, rawOf, type WalkEntry, describeUnfollowed} from '../core/walker.js'
import type {DotOptions} from './dot.js'
import {type MapperJson, entryJson, mapperJson, rangeJson} from './json.js'
import {OutputSink, drive} from './sink.js'
import {type TreeTarget, writeDotLines} from './table-dump.js'

/** The fields that differ between entries of one kind, in the order FIELD_NAMES names them. */
const INDEX = 0
const TABLE = 1
const IPA = 2
const DESCRIPTOR = 3
const OUTPUT = 4
const FIELD_NAMES = ['index', 'table', 'ipa', 'descriptor', 'output'] as const
/** A marker value, and how JSON.stringify writes it (quoted, its NULs escaped). */
const marker = (field: number): string => `\u0000${FIELD_NAMES[field]}\u0000`
const MARKER_TEXT = new Map(FIELD_NAMES.map((_, f) => [JSON.stringify(marker(f)), f]))
const MARKER_PATTERN = new RegExp(`(${[...MARKER_TEXT.keys()].map((t) => t.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')).join('|')})`)

/**
 * An entry's text: literals[0], fields[0], literals[1], ... as UTF-8, and the most bytes it can take.
 * `last` is the last entry written from it (with the separator before it): the next entry whose
 * fields take as many digits is that entry with the digits that differ written again.
 */
interface Template {
  literals: Uint8Array[]
  fields: number[]
  maxBytes: number
  last: Uint8Array | undefined
  /** in `last`, each field's value as 32-bit halves (as int32: see HIGHS) and where its digits start and end */
  highs: Int32Array
  lows: Int32Array
  starts: Int32Array
  ends: Int32Array
  /** `last` was stepped on (runOn()) since highs and lows were written: patched() cannot go from them */
  stepped: boolean
  /** `last` is half stepped (a field outgrew its digits in runOn()): render() must write it anew */
  torn: boolean
}

const QUOTE = 0x22
const ZERO = 0x30
const NINE = 0x39
const X = 0x78
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0))
/** A hex digit's value by its character code (the digits HEX_DIGITS writes). */
const HEX_VALUES = new Uint8Array(128)
for (const [v, c] of HEX_DIGITS.entries()) HEX_VALUES[c] = v
const FIRST_SEPARATOR = Buffer.from('\n    ')
const SEPARATOR = Buffer.from(',\n    ')

/** How many hex digits a 32-bit `v` has (1 for 0; 8 for a negative int32, the halves' form here). */
const hexDigits = (v: number): number => Math.max(1, (35 - Math.clz32(v)) >> 2)

/** Writes the hex digits of a 32-bit `v` (at least `width` of them, zero-padded) at `at`; returns the end. */
function putDigits(out: Uint8Array, at: number, v: number, width: number): number {
  const digits = Math.max(width, hexDigits(v))
  for (let shift = 4 * (digits - 1); shift >= 0; shift -= 4) out[at++] = HEX_DIGITS[(v >>> shift) & 15]!
  return at
}

/** How many decimal digits a table index takes. */
const decimalDigits = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length)

/**
 * The fields of the entry being written, as 32-bit halves, kept as int32 (the bits are what counts):
 * always small integers to the JIT, where a half of 2^31 or more read from a Uint32Array is a double
 * that throws away code compiled for the smaller ones seen first.
 */
const HIGHS = new Int32Array(FIELD_NAMES.length)
const LOWS = new Int32Array(FIELD_NAMES.length)

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
  /** Writes the walker's current entry, not a table entry: from its kind's template. */
  const write = (w: TableWalker): void => {
    const {level, index, table, addr: ipa, lo, hi} = w
    // the kind: level, type bits and attribute bits (11:0 and 63:48), and the index's digits (so the
    // first entries of a table patch the last ones of the table before, not one of 3 digits), as one number
    const key = decimalDigits(index) * 2 ** 31 + level * 0x1000_0000 + (lo & 0xfff) * 0x1_0000 + (hi >>> 16)
    if (key !== lastKey) {
      template = templates.get(key)
      if (template === undefined) {
        template = makeTemplate(regime.decode(rawOf(lo, hi), level, geometry), level, index, table, ipa, geometry.entrySize(level))
        templates.set(key, template)
      }
      lastKey = key
    }
    const t = template!
    fill(t, w)
    const last = first ? undefined : patched(t)
    if (last !== undefined) {
      const at = sink.reserve(last.length)
      sink.bytes.set(last, at)
      sink.wrote(at + last.length)
    } else {
      const at = sink.reserve(t.maxBytes)
      sink.wrote(render(t, sink.bytes, at, first ? FIRST_SEPARATOR : SEPARATOR))
      first = false
    }
  }
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
    ranges.add(w)
    const {level, lo, hi} = w
    if ((lo & 3) === 3 && level < 3) {
      // a table entry (one in 512 or more) is rendered whole once the walk has said whether it follows it
      // (rawOf of the halves at hand rather than w.raw: a getter reached once in 513 entries may have
      // no type feedback when this is compiled, and reaching it then discards the compiled code)
      const {index, table, addr: ipa} = w
      held = {level, index, table: BigInt(table), ipa: BigInt(ipa), size: geometry.entrySize(level), decoded: regime.decode(rawOf(lo, hi), level, geometry)}
      return
    }
    write(w)
  }
  // most entries come a page of leaves (or a run of blocks) at a time, written in a loop of their own
  const page = (w: TableWalker, words: Uint32Array, from: number, to: number): void => {
    if (sink.behind) {
      cursor.stop(w)
      return
    }
    release()
    const size = w.size
    // Runs are followed in int32 arithmetic (runOn), so for entries of at most 1 GiB, which add a
    // positive int32 to the low word. What the size adds to the text of an address: `add` at hex
    // digit `nibble`.
    const runs = size <= 0x4000_0000
    const nibble = (31 - Math.clz32(size)) >> 2
    const add = size >>> (4 * nibble)
    const ints = new Int32Array(words.buffer, words.byteOffset, words.length)
    let i = from
    while (i <= to) {
      if ((ints[(i & 511) * 2]! & 1) === 0) {
        i++
        continue
      }
      w.at(i, words)
      write(w)
      if (!runs) {
        ranges.add(w)
        i++
        continue
      }
      const t = template!
      // room for the rest of the page's entries (at most 511, about 300 KB: less than the sink's 1 MiB)
      const at = sink.reserve((to - i) * t.last!.length)
      let wider = 10
      while (wider <= i) wider *= 10
      const k = (i & 511) * 2
      const next = runOn(t, sink.bytes, at, ints, i + 1, to, wider, ints[k]!, ints[k + 1]!, nibble, add, size | 0)
      sink.wrote(runEnd)
      ranges.addRun(w, next - i - 1)
      if (t.stepped && !t.torn) {
        // the values of the run's last entry, for patched()
        w.at(next - 1, words)
        fill(t, w)
        t.highs.set(HIGHS.subarray(0, t.fields.length))
        t.lows.set(LOWS.subarray(0, t.fields.length))
        t.stepped = false
      }
      i = next
    }
  }
  const step = (): boolean => cursor.run(visit, page)
  const finish = (): void => {
    release()
    emit(`${first ? ']' : '\n  ]'},\n  "ranges": ${nested(ranges.finish().ranges.map(rangeJson), 1)}`)
    if (tail.walk !== undefined) emit(`,\n  "walk": ${nested(tail.walk, 1)}`)
  }
  return {step, finish}
}

/**
 * The last entry written from `t` with the digits of the fields in HIGHS and LOWS (the entry being
 * written) where they differ, or undefined if a field takes more or fewer digits than there (the
 * fields before it may have been patched already: render() then writes `t.last` and its values anew).
 */
function patched(t: Template): Uint8Array | undefined {
  const {fields, last, highs, lows, ends} = t
  if (last === undefined || t.stepped) return undefined
  for (let i = 0; i < fields.length; i++) {
    const high = HIGHS[i]!
    const low = LOWS[i]!
    const oldHigh = highs[i]!
    const oldLow = lows[i]!
    const end = ends[i]!
    if (fields[i] === INDEX) {
      // as many digits: a template's entries have indexes of one width (their kind counts it)
      for (let at = end - 1, to = low, from = oldLow; to !== from; at--, to = (to / 10) | 0, from = (from / 10) | 0) last[at] = ZERO + (to % 10)
    } else {
      // As many digits: both high halves zero and the low ones as wide, or both non-zero and as wide
      // (the low half then takes 8). Two hex widths agree when their counts of leading zero bits do
      // in all but the lowest two bits. Every comparison is made every time, so the compiled code has
      // seen them all before the first address past 4 GiB (a call or comparison first made then,
      // with no type feedback, would discard it: --trace-deopt).
      const lowWidths = Math.clz32(low | 1) ^ Math.clz32(oldLow | 1)
      const highWidths = Math.clz32(high | 1) ^ Math.clz32(oldHigh | 1)
      if ((high === 0) !== (oldHigh === 0) || (high === 0 ? lowWidths : highWidths) > 3) return undefined
      // the digits from the lowest to the highest that differs, and no other
      let diff = low ^ oldLow
      if (diff !== 0) {
        const top = (31 - Math.clz32(diff)) >> 2
        for (let n = (31 - Math.clz32(diff & -diff)) >> 2; n <= top; n++) last[end - 1 - n] = HEX_DIGITS[(low >>> (4 * n)) & 15]!
      }
      diff = high ^ oldHigh
      if (diff !== 0) {
        const top = (31 - Math.clz32(diff)) >> 2
        for (let n = (31 - Math.clz32(diff & -diff)) >> 2; n <= top; n++) last[end - 9 - n] = HEX_DIGITS[(high >>> (4 * n)) & 15]!
      }
    }
    highs[i] = high
    lows[i] = low
  }
  return last
}

/**
 * Writes the entries of a page (`ints`, its words as int32) from `j` up to `to` that go on from the
 * one before `j` (just written from `t`, its words `lo` and `hi`), each the text of the one before it
 * counted on by hand: the index by one in decimal, the
 * addresses and the descriptor by the entry size in hex (`add` at digit `nibble`), each with its
 * carry. Returns the first entry that does not go on: invalid, of another kind, not contiguous, an
 * index a digit longer (`wider`: entries with longer indexes have templates of their own), or a field that
 * would need a digit more (`last` is then half stepped: `torn`, render() writes it anew). An entry
 * goes on from the one before it if its low word is the entry size more, without a carry into the
 * high word, and its high word the same, in int32 arithmetic: the words read as uint32 would be
 * doubles from 2^31 on (a heap number each in code not yet compiled, and code compiled for small
 * integers is thrown away there). One function with its loops, small, so that it is soon compiled;
 * its arguments are worked out by its caller, and what it reads of `t` is read in its loop, so that
 * its compiled code has seen everything it does (its first call runs before V8 keeps its type
 * feedback, and a compare or property read first made then, with none, would discard it).
 * Writes into `out` from `at` (room made for the page's entries); runEnd is where it stopped.
 */
function runOn(t: Template, out: Uint8Array, at: number, ints: Int32Array, j: number, to: number, wider: number, lo: number, hi: number, nibble: number, add: number, plus: number): number {
  for (; j <= to && j !== wider; j++) {
    const k = (j & 511) * 2
    const next = (lo + plus) | 0
    // a carry into the high word: the sign bit set in the low word and clear in the next (one
    // expression, evaluated whole: a comparison first made at the first low word of 2^31 or more,
    // after the loop was compiled, would have no type feedback and discard the compiled code)
    if ((lo & ~next) < 0 || ints[k] !== next || ints[k + 1] !== hi) break
    const {fields, starts, ends} = t
    const last = t.last!
    t.stepped = true
    let fits = true
    for (let f = 0; f < fields.length && fits; f++) {
      const field = fields[f]!
      if (field === TABLE) continue
      const start = starts[f]!
      let d = ends[f]! - 1
      if (field === INDEX) {
        while (last[d] === NINE) last[d--] = ZERO
        last[d]!++
      } else {
        d -= nibble
        let digit = d < start ? 16 : HEX_VALUES[last[d]!]! + add
        while (digit > 15 && d >= start) {
          last[d] = HEX_DIGITS[digit - 16]!
          digit = --d < start ? 16 : HEX_VALUES[last[d]!]! + 1
        }
        if (d < start) fits = false
        else last[d] = HEX_DIGITS[digit]!
      }
    }
    if (!fits) {
      t.torn = true
      break
    }
    out.set(last, at)
    at += last.length
    lo = next
  }
  runEnd = at
  return j
}

/** Where runOn() stopped writing in its buffer. */
let runEnd = 0

/** The values of the walker's current entry in HIGHS and LOWS, in the order of `t`'s fields. */
function fill(t: Template, w: TableWalker): void {
  const fields = t.fields
  const {index, table, addr: ipa, lo, hi} = w
  const output = w.output
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!
    if (field === INDEX) {
      HIGHS[i] = 0
      LOWS[i] = index
    } else if (field === DESCRIPTOR) {
      HIGHS[i] = hi
      LOWS[i] = lo
    } else {
      const n = field === TABLE ? table : field === IPA ? ipa : output
      HIGHS[i] = Math.floor(n / 0x1_0000_0000)
      LOWS[i] = n
    }
  }
}

/** Writes `separator` and the entry in HIGHS and LOWS from `t` at `at` in `out`; returns the end. Keeps it as `t.last`. */
function render(t: Template, out: Uint8Array, at: number, separator: Uint8Array): number {
  const {fields, literals, highs, lows, starts, ends} = t
  out.set(separator, at)
  at += separator.length
  const start = at
  out.set(literals[0]!, at)
  at += literals[0]!.length
  for (let i = 0; i < fields.length; i++) {
    const high = HIGHS[i]!
    const low = LOWS[i]!
    if (fields[i] === INDEX) {
      starts[i] = at
      at = putDecimal(out, at, low)
      ends[i] = at
    } else {
      out[at++] = QUOTE
      out[at++] = ZERO
      out[at++] = X
      starts[i] = at
      at = high === 0 ? putDigits(out, at, low, 0) : putDigits(out, putDigits(out, at, high, 0), low, 8)
      ends[i] = at
      out[at++] = QUOTE
    }
    highs[i] = high
    lows[i] = low
    out.set(literals[i + 1]!, at)
    at += literals[i + 1]!.length
  }
  // kept with the separator a later entry has before it
  const size = SEPARATOR.length + at - start
  if (t.last?.length !== size) t.last = new Uint8Array(size)
  t.last.set(SEPARATOR)
  t.last.set(out.subarray(start, at), SEPARATOR.length)
  for (let i = 0; i < fields.length; i++) {
    starts[i] += SEPARATOR.length - start
    ends[i] += SEPARATOR.length - start
  }
  t.stepped = false
  t.torn = false
  return at
}

/** The text of an entry like this one, with markers where entries of its kind differ. */
function makeTemplate(decoded: Decoded, level: number, index: number, table: number, ipa: number, size: bigint): Template {
  const json = entryJson({level, index, table: BigInt(table), ipa: BigInt(ipa), size, decoded})
  const marked: Record<string, unknown> = {...json, index: marker(INDEX), table: marker(TABLE), ipa: marker(IPA), descriptor: marker(DESCRIPTOR)}
  if (json.leaf !== undefined) marked.leaf = {...json.leaf, outputAddress: marker(OUTPUT)}
  const parts = nested(marked, 2).split(MARKER_PATTERN)
  const literals = parts.filter((_, i) => i % 2 === 0).map((part) => Buffer.from(part, 'utf8'))
  const fields = parts.filter((_, i) => i % 2 === 1).map((part) => MARKER_TEXT.get(part)!)
  // each field: at most 18 characters and its quotes ("0x" and 16 hex digits, or an index)
  const n = fields.length
  return {
    literals,
    fields,
    maxBytes: SEPARATOR.length + literals.reduce((sum, l) => sum + l.length, 0) + 20 * n,
    last: undefined,
    highs: new Int32Array(n),
    lows: new Int32Array(n),
    starts: new Int32Array(n),
    ends: new Int32Array(n),
    stepped: false,
    torn: false,
  }
}
