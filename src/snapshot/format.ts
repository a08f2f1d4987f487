/**
 * The snapshot file format. All integers little-endian. hvmem writes version 3, or 4 for a snapshot
 * that needs it (recorded registers, or no heap), or 5 for a large one (a save given `journalFrom`:
 * version 4's layout, then appended records, described at the end of this file), and reads 1 to 5.
 *
 * Version 4 is version 3 plus two things a version-3 reader would misread, so it is written only when
 * one is present: recorded system registers (snapshot capture) and a heap of size 0 (no heap: a whole
 * RAM image). Header bytes 94..95 are the register count R; after the pages come R records of 24
 * bytes, the register's name (16 bytes ASCII, NUL-padded) and its value (8). The header-and-index
 * CRC covers them too (bytes 0..123, the index, then the records). The file is 128 + 4112N + 24R bytes.
 *
 * Version 3 is version 2 with the mapper's geometry in two header bytes that version 2 keeps zero:
 * byte 92 is log2 of the granule (12, 14 or 16) and byte 93 the input bits (25..48); the start
 * level, concatenation and PA size follow from them and the regime (geometry.ts). Both are zero
 * without a mapper. A version-2 file's mapper is 4 KiB / 39-bit (what hvmem then built); it is
 * rewritten as version 3 only when a command changes it.
 *
 * Version 2: a header and a page index, both covered by one CRC-32 checked on every load, then the
 * pages, each with its own CRC-32 in the index, checked when the page is first read. A command that
 * only reads can so load the header and index and read just the pages it uses.
 *
 *   offset  size  field
 *        0     8  magic "HVMEMSNP"
 *        8     4  format version (2)
 *       12     4  header length (128)
 *       16     8  RAM base                24     8  RAM size
 *       32     8  heap start              40     8  heap size
 *       48     8  heap next               56     8  heap allocated bytes
 *       64     1  mapper present (0 or 1) 65     1  regime (1 = stage 2, 2 = stage 1 EL2)
 *       66     2  VMID                    68     4  L2-table budget
 *       72     8  mapper root table       80     8  page count N
 *       88     4  mapper's unreachable (orphaned) table pages
 *       92     1  (version 3) log2 of the mapper's granule
 *       93     1  (version 3) the mapper's input bits
 *       94    30  reserved, zero (version 2: bytes 92..123)
 *      124     4  CRC-32 (zlib) of bytes 0..123 followed by the whole index
 *      128   16N  index, one entry a page, addresses strictly ascending:
 *                 physical address (8), CRC-32 of the page's 4096 bytes (4), reserved zero (4)
 * 128+16N 4096N  the pages' bytes, in index order (only pages holding a non-zero byte)
 *
 * The file is exactly 128 + 4112N bytes.
 *
 * Version 1 (still read, whole): the same header up to byte 88, bytes 88..127 reserved zero, then N
 * addresses (8 bytes each), the N pages, and a CRC-32 of everything before it in the last 4 bytes.
 */
import {combineCrc32} from '../core/crc32.js'
import {REGIME_NAMES, type RegimeName} from '../core/descriptor.js'
import {HvmemError} from '../core/errors.js'
import {DEFAULT_INPUT_BITS, GRANULES} from '../core/geometry.js'
import {Machine, type MachineState, type RecordedRegister} from '../core/machine.js'
import {PAGE_BYTES, PhysicalMemory, isZeroPage} from '../core/memory.js'
import {LITTLE_ENDIAN} from '../core/walker.js'
import {type PageList, pageIndex} from '../core/page-list.js'
import {hex} from '../core/u64.js'
import {crc32} from './checksum.js'

export const MAGIC = Buffer.from('HVMEMSNP', 'latin1')
/** The newest format version this hvmem reads (and writes, when a snapshot needs it: see above). */
export const FORMAT_VERSION = 5
/** Version 5: version 4's layout, then appended records (a large snapshot's small changes). */
export const JOURNAL_FORMAT_VERSION = 5
/** Version 4: registers, or no heap. */
const FORMAT_V4 = 4
/** The version written for a snapshot with no registers and a heap: older hvmem reads it. */
export const PLAIN_FORMAT_VERSION = 3
/** Bytes of one recorded register (version 4): name (16, ASCII, NUL-padded), value (8). */
export const REGISTER_RECORD_BYTES = 24

/** A snapshot's bytes without appended records: the header, `pages` index entries and pages, and `registers` register records. */
export function baseBytes(pages: number | bigint, registers: number): bigint {
  return BigInt(HEADER_BYTES) + BigInt(pages) * BigInt(PAGE_RECORD_BYTES) + BigInt(registers * REGISTER_RECORD_BYTES)
}
const REGISTER_NAME_BYTES = 16
/** The oldest format version this hvmem reads. */
const OLDEST_FORMAT_VERSION = 1
export const HEADER_BYTES = 128
export const INDEX_ENTRY_BYTES = 16
/** Bytes a stored page costs in a version-2 file: its index entry and its data. */
export const PAGE_RECORD_BYTES = INDEX_ENTRY_BYTES + PAGE_BYTES
/** Offset of the header-and-index CRC in a version-2 header. */
export const META_CRC_OFFSET = 124
const V1_CRC_BYTES = 4
const REGIME_CODE: Record<RegimeName, number> = {stage2: 1, stage1: 2}
/** Pages read or written per chunk when a snapshot is loaded whole or streamed out (1 MiB). */
const CHUNK_PAGES = 256
/** Index entries a load reads at once (256 KiB). */
const INDEX_CHUNK_ENTRIES = 16_384

/** Where a snapshot's bytes come from: a file held in memory, or an open file read on demand. */
export interface SnapshotSource {
  /** the file's size in bytes */
  readonly length: number
  /** exactly `length` bytes at `offset` (which lie inside the file) */
  read(offset: number, length: number): Uint8Array
  /** optionally, the same into `target` (all of it): a caller reading much can so reuse one buffer */
  readInto?(offset: number, target: Uint8Array): void
  /** true if every read returns new bytes of its own, which the caller may keep (no copy needed) */
  readonly fresh?: boolean
}

export function bufferSource(data: Uint8Array): SnapshotSource {
  return {length: data.length, read: (offset, length) => data.subarray(offset, offset + length)}
}

/** How to decode: 'full' reads and checks every page now; 'lazy' reads a page (checking it) when it is first used. */
export type DecodeMode = 'full' | 'lazy'

export interface Decoded {
  machine: Machine
  version: number
  /** true if the machine's memory still reads pages from the source (a lazy version-2 load with pages) */
  usesSource: boolean
  /** the checksum stored in the file: version 2, the CRC-32 of the header and index (bytes 0-123, then the index); version 1, of the whole file */
  checksum: number
  /** a lazy version-2 load: the stored pages by index entry, in address order, each read (and checked) on demand and not kept */
  pages?: StoredPages
  /** version 5: the base's bytes, the records appended after it, and the unfinished append after them (ignored) */
  journal?: JournalFacts
}

/** What a version-5 file holds after its base. */
export interface JournalFacts {
  /** bytes of the base (header, index, pages, registers): where the first record starts */
  baseBytes: number
  /** complete records, applied in order */
  records: number
  /** their bytes */
  recordBytes: number
  /** where the last complete record ends: the next record is appended here */
  end: number
  /** bytes after `end`: an append cut short (a crash), ignored, and cut away by the next save */
  unfinished: number
}

/**
 * A version-2 file's page index: what `snapshot diff` compares without loading pages into the
 * machine. Its CRCs are the index's; `read` and a checked `readRun` check pages against them (a
 * mismatch is a 'snapshot-invalid' error); `checkRun` checks a run with one CRC of the whole run,
 * and only if that fails page by page, so the error names the damaged page.
 */
export type StoredPages = Required<PageList>

/** The whole version-2 file for `machine`, in memory. */
export function encodeSnapshot(machine: Machine): Buffer {
  return Buffer.concat([...snapshotBatches(machine)].flat())
}

/**
 * The file's bytes as batches of views (the header and index, then up to
 * CHUNK_PAGES pages a batch) for a vectored write, without copying the pages into chunks.
 */
export function* snapshotBatches(machine: Machine, options: {journalFrom?: number} = {}): Generator<Uint8Array[]> {
  const state = machine.state()
  const memory = machine.memory
  // First pass: addresses and checksums, for the index that precedes the pages. A page unchanged
  // since it was loaded (and checked) keeps the checksum it was stored with (memory.pageTag).
  const addresses: bigint[] = []
  const crcs: number[] = []
  /** pages held in memory, as the first pass saw them: the second pass need not checksum them again */
  const seen: Array<Uint8Array | undefined> = []
  for (const [address, bytes] of memory.readNonZeroPages()) {
    addresses.push(address)
    crcs.push(memory.pageTag(address) ?? crc32(bytes))
    seen.push(memory.isResident(address) ? bytes : undefined)
  }
  const n = addresses.length
  const head = Buffer.alloc(HEADER_BYTES + n * INDEX_ENTRY_BYTES)
  const registers = encodeRegisters(state.registers ?? [])
  const fileBytes = Number(baseBytes(n, registers.length / REGISTER_RECORD_BYTES))
  const journal = options.journalFrom !== undefined && fileBytes >= options.journalFrom
  encodeHeader(state, n, registers.length / REGISTER_RECORD_BYTES, journal ? JOURNAL_FORMAT_VERSION : undefined).copy(head, 0)
  for (let i = 0; i < n; i++) {
    head.writeBigUInt64LE(addresses[i]!, HEADER_BYTES + INDEX_ENTRY_BYTES * i)
    head.writeUInt32LE(crcs[i]!, HEADER_BYTES + INDEX_ENTRY_BYTES * i + 8)
  }
  head.writeUInt32LE(metaCrc(head.subarray(0, HEADER_BYTES), head.subarray(HEADER_BYTES), registers), META_CRC_OFFSET)
  yield [head]

  // Second pass: the pages, which must be the ones just indexed.
  let i = 0
  let chunk: Uint8Array[] = []
  for (const [address, bytes] of memory.readNonZeroPages()) {
    if (i >= n || address !== addresses[i] || (bytes !== seen[i] && crc32(bytes) !== crcs[i])) throw new Error(`memory changed while the snapshot was being written (page ${hex(address)})`)
    chunk.push(bytes)
    i++
    if (chunk.length === CHUNK_PAGES) {
      yield chunk
      chunk = []
    }
  }
  if (i !== n) throw new Error(`memory changed while the snapshot was being written (${i} of ${n} pages)`)
  if (chunk.length > 0) yield chunk
  if (registers.length > 0) yield [registers]
}

/**
 * A header (128 bytes, its CRC field zero) for `state` with `n` pages and `registerCount` register
 * records: version 3, or 4 when registers or no heap need it, or `version` if given (5).
 */
export function encodeHeader(state: MachineState, n: number, registerCount: number, version?: number): Buffer {
  const head = Buffer.alloc(HEADER_BYTES)
  MAGIC.copy(head, 0)
  head.writeUInt32LE(version ?? (registerCount > 0 || state.heap.size === 0n ? FORMAT_V4 : PLAIN_FORMAT_VERSION), 8)
  head.writeUInt16LE(registerCount, 94)
  head.writeUInt32LE(HEADER_BYTES, 12)
  head.writeBigUInt64LE(state.ram.base, 16)
  head.writeBigUInt64LE(state.ram.size, 24)
  head.writeBigUInt64LE(state.heap.start, 32)
  head.writeBigUInt64LE(state.heap.size, 40)
  head.writeBigUInt64LE(state.heap.next, 48)
  head.writeBigUInt64LE(state.heap.allocated, 56)
  const mapper = state.mapper
  if (mapper !== undefined) {
    head.writeUInt8(1, 64)
    head.writeUInt8(REGIME_CODE[mapper.regime], 65)
    head.writeUInt16LE(mapper.vmid, 66)
    head.writeUInt32LE(mapper.l2Budget, 68)
    head.writeBigUInt64LE(mapper.root, 72)
    head.writeUInt32LE(mapper.orphanedTables ?? 0, 88)
    head.writeUInt8(Math.log2(mapper.granule), 92)
    head.writeUInt8(mapper.inputBits, 93)
  }
  head.writeBigUInt64LE(BigInt(n), 80)
  return head
}

/** The header-and-index CRC: the header up to the CRC's own bytes, then the index, then the registers (a load computes it chunk by chunk, with headerCrc and crcAfter). */
function metaCrc(header: Uint8Array, index: Uint8Array, registers?: Uint8Array): number {
  return crcAfter(crcAfter(headerCrc(header), index), registers)
}

function headerCrc(header: Uint8Array): number {
  return crc32(header.subarray(0, META_CRC_OFFSET))
}

/** `crc` continued over `bytes` (none or empty: `crc` as it is, for zlib.crc32 of an empty view over an empty ArrayBuffer ignores the running value). */
function crcAfter(crc: number, bytes: Uint8Array | undefined): number {
  return bytes === undefined || bytes.length === 0 ? crc : crc32(bytes, crc)
}

/** Version 4's register records: name (16 bytes ASCII, NUL-padded), value (8). */
export function encodeRegisters(registers: readonly RecordedRegister[]): Buffer {
  const out = Buffer.alloc(registers.length * REGISTER_RECORD_BYTES)
  registers.forEach((r, i) => {
    if (!/^[A-Z][A-Z0-9_]{0,15}$/.test(r.name)) throw new HvmemError('input', `register name ${JSON.stringify(r.name)} is not 1 to 16 upper-case letters, digits and underscores`)
    out.write(r.name, i * REGISTER_RECORD_BYTES, 'latin1')
    out.writeBigUInt64LE(r.value, i * REGISTER_RECORD_BYTES + REGISTER_NAME_BYTES)
  })
  return out
}

/** Parses version 4's register records; `bad` reports a malformed one. */
export function decodeRegisters(bytes: Buffer, bad: (why: string) => never): RecordedRegister[] {
  const registers: RecordedRegister[] = []
  for (let at = 0; at < bytes.length; at += REGISTER_RECORD_BYTES) {
    const field = bytes.subarray(at, at + REGISTER_NAME_BYTES)
    const end = field.indexOf(0)
    const name = field.subarray(0, end === -1 ? REGISTER_NAME_BYTES : end).toString('latin1')
    if (!/^[A-Z][A-Z0-9_]{0,15}$/.test(name) || (end !== -1 && !field.subarray(end).every((b) => b === 0))) bad(`register record ${at / REGISTER_RECORD_BYTES} has a malformed name`)
    if (registers.some((r) => r.name === name)) bad(`register ${name} is recorded twice`)
    registers.push({name, value: bytes.readBigUInt64LE(at + REGISTER_NAME_BYTES)})
  }
  return registers
}

/** Parses and checks a whole snapshot held in memory (every page); anything wrong is a 'snapshot-invalid' error naming the problem. */
export function decodeSnapshot(data: Uint8Array, name: string): Machine {
  return decodeSource(bufferSource(data), name, 'full').machine
}

/** Parses and checks a snapshot from `source`: header and index now, pages now ('full') or on first use ('lazy'; version 2 only). */
export function decodeSource(source: SnapshotSource, name: string, mode: DecodeMode): Decoded {
  const steps = decodeSteps(source, name, mode)
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
  }
}

/**
 * decodeSource, awaiting `pace` after each chunk of pages a full load reads (a megabyte): a command
 * loading a large snapshot so lets the event loop run, and answers a signal within a chunk.
 */
export async function decodeSourcePaced(source: SnapshotSource, name: string, mode: DecodeMode, pace: () => Promise<void>): Promise<Decoded> {
  const steps = decodeSteps(source, name, mode)
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
    await pace()
  }
}

/** decodeSource's work, yielding after each chunk of pages a full load reads. */
function* decodeSteps(source: SnapshotSource, name: string, mode: DecodeMode): Generator<void, Decoded> {
  const bad = (why: string): never => {
    throw new HvmemError('snapshot-invalid', `${name} is not a valid hvmem snapshot: ${why}`)
  }
  const size = source.length
  if (size < MAGIC.length || !view(source.read(0, MAGIC.length)).equals(MAGIC)) bad('wrong magic (not a snapshot, or damaged)')
  if (size < 12) bad(`truncated (${size} bytes, too short for a header)`)
  const version = view(source.read(8, 4)).readUInt32LE(0)
  if (version > FORMAT_VERSION) {
    throw new HvmemError('snapshot-invalid', `${name} has snapshot format version ${version}, newer than this hvmem reads (version ${FORMAT_VERSION}); upgrade hvmem`)
  }
  if (version < OLDEST_FORMAT_VERSION) bad(`unknown format version ${version}`)
  if (version === 1) {
    const whole = view(source.read(0, size))
    const machine = decodeV1(whole, name, bad)
    return {machine, version, usesSource: false, checksum: whole.readUInt32LE(whole.length - V1_CRC_BYTES)}
  }

  if (size < HEADER_BYTES) bad(`truncated (${size} bytes, a header alone needs ${HEADER_BYTES})`)
  const header = view(source.read(0, HEADER_BYTES))
  if (header.readUInt32LE(12) !== HEADER_BYTES) bad(`header length ${header.readUInt32LE(12)}, expected ${HEADER_BYTES}`)
  const count = header.readBigUInt64LE(80)
  const registerCount = version >= 4 ? header.readUInt16LE(94) : 0
  const registerBytes = registerCount * REGISTER_RECORD_BYTES
  const expected = baseBytes(count, registerCount)
  // (version 5: records may follow the base)
  if (version >= JOURNAL_FORMAT_VERSION ? expected > BigInt(size) : expected !== BigInt(size))
    bad(`${size} bytes where the header's ${count} pages${registerCount > 0 ? ` and ${registerCount} registers` : ''} need ${expected} (truncated or damaged)`)
  const baseCount = Number(count)
  const baseEnd = Number(expected)
  const registerRecords = registerCount === 0 ? Buffer.alloc(0) : Buffer.from(source.read(baseEnd - registerBytes, registerBytes))
  const storedCrc = header.readUInt32LE(META_CRC_OFFSET)
  // The page index, read INDEX_CHUNK_ENTRIES at a time into one buffer (a 1 GiB image's index is 4 MB,
  // and every new page of memory costs a fault), and kept as what a load needs: each page's frame
  // number (address >> 12, exact below 2^52: 8 bytes, no bigint) and CRC. Its first problem is told
  // where the checks of the header allow (after its checksum is known to be right).
  const frames = new Float64Array(baseCount)
  const crcs = new Uint32Array(baseCount)
  let actualCrc = headerCrc(header)
  let indexProblem: string | undefined
  const chunk = new Uint8Array(Math.min(baseCount, INDEX_CHUNK_ENTRIES) * INDEX_ENTRY_BYTES)
  let previousHi = -1
  let previousLo = 0
  for (let first = 0; first < baseCount; first += INDEX_CHUNK_ENTRIES) {
    const n = Math.min(INDEX_CHUNK_ENTRIES, baseCount - first)
    const at = HEADER_BYTES + first * INDEX_ENTRY_BYTES
    let bytes: Uint8Array
    if (source.readInto === undefined) bytes = source.read(at, n * INDEX_ENTRY_BYTES)
    else {
      bytes = chunk.subarray(0, n * INDEX_ENTRY_BYTES)
      source.readInto(at, bytes)
    }
    actualCrc = crcAfter(actualCrc, bytes)
    const words = indexWords(view(bytes))
    for (let k = 0; k < n; k++) {
      const lo = words[4 * k]!
      const hi = words[4 * k + 1]!
      const disordered = hi < previousHi || (hi === previousHi && lo <= previousLo)
      if (indexProblem === undefined && (disordered || (lo & 0xfff) !== 0 || words[4 * k + 3] !== 0)) indexProblem = indexEntryProblem(first + k, hi, lo, disordered)
      previousHi = hi
      previousLo = lo
      // address >> 12 = hi * 2^20 + lo >>> 12: exact, as hi < 2^32
      frames[first + k] = hi * 0x10_0000 + (lo >>> 12)
      crcs[first + k] = words[4 * k + 2]!
    }
  }
  actualCrc = crcAfter(actualCrc, registerRecords)
  if (storedCrc !== actualCrc) bad(`header or page index checksum mismatch (stored ${hex(BigInt(storedCrc), 8)}, computed ${hex(BigInt(actualCrc), 8)}): the file is damaged`)
  if (!header.subarray(version >= 4 ? 96 : version >= 3 ? 94 : 92, META_CRC_OFFSET).every((b) => b === 0)) bad('reserved header bytes are not zero')
  let state = headerState(header, bad, header.readUInt32LE(88), version >= 3)
  if (state.heap.size === 0n && version < 4) bad('heap size 0 (a snapshot without a heap is version 4)')
  if (registerCount > 0) state.registers = decodeRegisters(registerRecords, bad)
  const journal = version >= JOURNAL_FORMAT_VERSION ? readJournal(source, baseEnd, bad) : undefined
  if (indexProblem !== undefined) bad(indexProblem)

  const dataStart = HEADER_BYTES + baseCount * INDEX_ENTRY_BYTES
  let pageCrc = (i: number): number => crcs[i]!
  let offsetOf = (i: number): number => dataStart + i * PAGE_BYTES
  let pageFrames: Float64Array = frames
  if (journal !== undefined && journal.records > 0) {
    // The records applied to the base: the pages as they are now, each where its bytes lie.
    const merged = mergeJournal(frames, pageCrc, offsetOf, journal, bad)
    state = journal.state!
    pageFrames = merged.frames
    pageCrc = (i) => merged.crcs[i]!
    offsetOf = (i) => merged.offsets[i]!
  }
  const total = pageFrames.length
  const addressOf = (i: number): bigint => BigInt(pageFrames[i]!) << 12n
  /** `count` pages from the i-th on, read at once where they lie one after the other in the file (into `into` if given) */
  const readSpan = (first: number, count: number, into?: Uint8Array): Uint8Array => {
    const bytes = count * PAGE_BYTES
    const start = offsetOf(first)
    let contiguous = true
    for (let k = 1; k < count && contiguous; k++) contiguous = offsetOf(first + k) === start + k * PAGE_BYTES
    if (contiguous) {
      if (into !== undefined && source.readInto !== undefined) {
        const run = into.subarray(0, bytes)
        source.readInto(start, run)
        return run
      }
      return source.read(start, bytes)
    }
    const run = into?.subarray(0, bytes) ?? new Uint8Array(bytes)
    for (let k = 0; k < count; k++) run.set(source.read(offsetOf(first + k), PAGE_BYTES), k * PAGE_BYTES)
    return run
  }
  /** `page`, the bytes of the i-th stored page, once checked. */
  const checkPage = (i: number, page: Uint8Array): Uint8Array => {
    const stored = pageCrc(i)
    const actual = crc32(page)
    if (stored !== actual) bad(`page ${hex(addressOf(i))} checksum mismatch (stored ${hex(BigInt(stored), 8)}, computed ${hex(BigInt(actual), 8)}): the file is damaged`)
    // (a page whose CRC is not the zero page's holds a non-zero byte)
    if (actual === ZERO_PAGE_CRC && isZeroPage(page)) bad(`page ${hex(addressOf(i))} is stored but all zero (only non-zero pages are stored)`)
    return page
  }
  /** The checked bytes of the i-th stored page. */
  const readPage = (i: number): Uint8Array => checkPage(i, source.read(offsetOf(i), PAGE_BYTES))
  const readRun = (first: number, count: number, into?: Uint8Array, unchecked = false): Uint8Array => {
    const run = readSpan(first, count, into !== undefined && into.length >= count * PAGE_BYTES ? into : undefined)
    if (!unchecked) for (let k = 0; k < count; k++) checkPage(first + k, run.subarray(k * PAGE_BYTES, (k + 1) * PAGE_BYTES))
    return run
  }
  const check = (i: number, page: Uint8Array): void => void checkPage(i, page)
  const checkRun = (first: number, count: number, run: Uint8Array): void => {
    let expected = pageCrc(first)
    for (let k = 1; k < count; k++) expected = combineCrc32(expected, pageCrc(first + k), PAGE_BYTES)
    const whole = crc32(run.subarray(0, count * PAGE_BYTES)) === expected
    for (let k = 0; k < count; k++) {
      // (the run checks: a page is then all zero only if its CRC is the zero page's)
      if (!whole || pageCrc(first + k) === ZERO_PAGE_CRC) checkPage(first + k, run.subarray(k * PAGE_BYTES, (k + 1) * PAGE_BYTES))
    }
  }
  const pages: StoredPages = {count: total, frame: (i) => pageFrames[i]!, crc: pageCrc, read: readPage, readRun, check, checkRun}
  const file = {
    version,
    checksum: storedCrc,
    ...(journal === undefined ? {} : {journal: {baseBytes: baseEnd, end: journal.end, records: journal.records, recordBytes: journal.end - baseEnd, unfinished: size - journal.end}}),
  }
  const n = total
  try {
    if (mode === 'full' || n === 0) {
      const memory = new PhysicalMemory(state.ram.base, state.ram.size)
      // Pages read CHUNK_PAGES at a time (not one read a page); each is checked, and keeps its
      // checksum as its tag, so a save need not compute it again unless the page changes.
      for (let first = 0; first < n; first += CHUNK_PAGES) {
        const count = Math.min(CHUNK_PAGES, n - first)
        // bytes the memory may keep: the source's own if fresh, else a copy (they may be a view of its buffer)
        const bytes = readSpan(first, count)
        const chunk = source.fresh === true ? bytes : new Uint8Array(bytes)
        for (let i = first; i < first + count; i++) {
          memory.loadPage(addressOf(i), checkPage(i, chunk.subarray((i - first) * PAGE_BYTES, (i - first + 1) * PAGE_BYTES)), pageCrc(i), {adopt: true})
        }
        yield
      }
      // (a full load may have closed its source: no page index to read from later, except an empty one)
      return {machine: Machine.restore(state, memory), usesSource: false, ...file, ...(n === 0 ? {pages} : {})}
    }
    // (from a source whose reads are new bytes of their own, each run the reader reads is too: memory
    // may keep its pages as they are; a file held whole in a caller's buffer is read in place, and
    // memory keeps copies)
    const memory = new PhysicalMemory(state.ram.base, state.ram.size, {storedFrames: pageFrames, pageSource: readingAhead(pageFrames, readRun, checkPage), givesPages: source.fresh === true})
    return {machine: Machine.restore(state, memory), usesSource: true, ...file, pages}
  } catch (error) {
    throw invalidError(name, error)
  }
}

/** The most pages a sequential reader reads ahead at once (256 KiB). */
const READ_AHEAD_PAGES = 64

/**
 * A page source over stored pages (`frames` in address order; `readRun` reads pages i.. unchecked,
 * `check` checks one) that reads ahead while the reads are sequential, as a walk of tables built one
 * after another reads them: one page at first, then twice as many each time a read starts where the
 * last one ended, up to READ_AHEAD_PAGES; a read elsewhere starts again at one. A page is checked
 * when it is asked for, never for having been read ahead, so a damaged page nobody asks for is no
 * error (as it was with one read a page).
 */
function readingAhead(
  frames: Float64Array,
  readRun: (first: number, count: number, into: undefined, unchecked: true) => Uint8Array,
  check: (i: number, page: Uint8Array) => Uint8Array,
): (pageAddress: bigint) => Uint8Array | undefined {
  let first = -1
  let count = 0
  let run: Uint8Array = new Uint8Array(0)
  let span = 1
  const list = {count: frames.length, frame: (i: number) => frames[i]!}
  return (pageAddress) => {
    const i = pageIndex(list, Number(pageAddress >> 12n))
    if (i === -1) return undefined
    if (i < first || i >= first + count) {
      span = i === first + count ? Math.min(span * 2, READ_AHEAD_PAGES) : 1
      first = i
      count = Math.min(span, frames.length - i)
      run = readRun(i, count, undefined, true)
    }
    return check(i, run.subarray((i - first) * PAGE_BYTES, (i - first + 1) * PAGE_BYTES))
  }
}

/** The machine state in header bytes 16..87 (the same in versions 1 and 2), and with `geometry` (version 3) bytes 92..93. */
function headerState(header: Buffer, bad: (why: string) => never, orphanedTables: number, geometry = false): MachineState {
  const hasMapper = header.readUInt8(64)
  if (hasMapper > 1) bad(`mapper flag ${hasMapper}`)
  const regime = REGIME_NAMES.find((r) => REGIME_CODE[r] === header.readUInt8(65))
  if (hasMapper === 1 && regime === undefined) bad(`unknown regime ${header.readUInt8(65)}`)
  const granuleBits = geometry ? header.readUInt8(92) : 12
  const inputBits = geometry ? header.readUInt8(93) : DEFAULT_INPUT_BITS
  if (hasMapper === 0 && (!header.subarray(65, 80).every((b) => b === 0) || orphanedTables !== 0 || (geometry && (granuleBits !== 0 || inputBits !== 0)))) bad('mapper fields set without a mapper')
  const granule = GRANULES.find((g) => g === 2 ** granuleBits)
  if (hasMapper === 1 && granule === undefined) bad(`granule 2^${granuleBits} bytes is not 4, 16 or 64 KiB`)
  const mapper = {regime: regime!, vmid: header.readUInt16LE(66), l2Budget: header.readUInt32LE(68), root: header.readBigUInt64LE(72), orphanedTables, granule: granule!, inputBits}
  return {
    ram: {base: header.readBigUInt64LE(16), size: header.readBigUInt64LE(24)},
    heap: {start: header.readBigUInt64LE(32), size: header.readBigUInt64LE(40), next: header.readBigUInt64LE(48), allocated: header.readBigUInt64LE(56)},
    mapper: hasMapper === 1 ? mapper : undefined,
  }
}

/** A version-1 file: one CRC over everything, so it is read and checked whole. */
function decodeV1(data: Buffer, name: string, bad: (why: string) => never): Machine {
  if (data.length < HEADER_BYTES + V1_CRC_BYTES) bad(`truncated (${data.length} bytes, a header alone needs ${HEADER_BYTES + V1_CRC_BYTES})`)
  if (data.readUInt32LE(12) !== HEADER_BYTES) bad(`header length ${data.readUInt32LE(12)}, expected ${HEADER_BYTES}`)
  const count = data.readBigUInt64LE(80)
  const expected = BigInt(HEADER_BYTES + V1_CRC_BYTES) + count * BigInt(8 + PAGE_BYTES)
  if (expected !== BigInt(data.length)) bad(`${data.length} bytes where the header's ${count} pages need ${expected} (truncated or damaged)`)
  const stored = data.readUInt32LE(data.length - V1_CRC_BYTES)
  const actual = crc32(data.subarray(0, data.length - V1_CRC_BYTES))
  if (stored !== actual) bad(`checksum mismatch (stored ${hex(BigInt(stored), 8)}, computed ${hex(BigInt(actual), 8)}): the file is damaged`)
  if (!data.subarray(88, HEADER_BYTES).every((b) => b === 0)) bad('reserved header bytes are not zero')
  const state = headerState(data, bad, 0)

  return asInvalid(name, () => {
    const memory = new PhysicalMemory(state.ram.base, state.ram.size)
    const n = Number(count)
    const dataStart = HEADER_BYTES + 8 * n
    let previous = -1n
    for (let i = 0; i < n; i++) {
      const address = data.readBigUInt64LE(HEADER_BYTES + 8 * i)
      if (address <= previous) bad(`page addresses out of order at entry ${i} (${hex(address)})`)
      previous = address
      const page = data.subarray(dataStart + i * PAGE_BYTES, dataStart + (i + 1) * PAGE_BYTES)
      if (isZeroPage(page)) bad(`page ${hex(address)} is stored but all zero (only non-zero pages are stored)`)
      memory.loadPage(address, page)
    }
    return Machine.restore(state, memory)
  })
}

/**
 * The index as little-endian 32-bit words: a typed array over its bytes where the host is
 * little-endian (three times faster to scan than Buffer's readers), copied first if unaligned.
 */
function indexWords(index: Buffer): Uint32Array {
  if (LITTLE_ENDIAN) {
    const aligned = index.byteOffset % 4 === 0 ? index : Buffer.from(index)
    return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4)
  }
  const words = new Uint32Array(index.length / 4)
  for (let w = 0; w < words.length; w++) words[w] = index.readUInt32LE(4 * w)
  return words
}

/** What is wrong with index entry `i` (address `hi`:`lo`), which is `disordered` (not after the one before), not aligned, or has reserved bits set. */
function indexEntryProblem(i: number, hi: number, lo: number, disordered: boolean): string {
  const address = hex((BigInt(hi) << 32n) | BigInt(lo))
  if (disordered) return `page addresses out of order at entry ${i} (${address})`
  if ((lo & 0xfff) !== 0) return `page address ${address} at entry ${i} is not 4 KiB aligned`
  return `reserved bytes of index entry ${i} are not zero`
}

/** A Buffer over the same bytes (no copy), for Buffer's readers. */
function view(bytes: Uint8Array): Buffer {
  return bytes.length === 0 ? Buffer.alloc(0) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
}

/** The CRC-32 of an all-zero page (4 KiB of zero bytes; checked by a test): a page with any other CRC is not all zero. */
export const ZERO_PAGE_CRC = 0xc71c0011

/** Reports a core error raised while rebuilding the machine as an invalid snapshot, naming the file. */
function asInvalid<T>(name: string, build: () => T): T {
  try {
    return build()
  } catch (error) {
    throw invalidError(name, error)
  }
}

/** An HvmemError raised while a snapshot is built from its file, as the file's fault. */
function invalidError(name: string, error: unknown): unknown {
  if (error instanceof HvmemError && !error.message.startsWith(name)) {
    return new HvmemError('snapshot-invalid', `${name} is not a valid hvmem snapshot: ${error.message}`)
  }
  return error
}

/*
 * Version 5: appended records. A version-5 file is a version-4 file (its "base", version field 5)
 * followed by zero or more records, each the change one save made:
 *
 *   offset  size  field
 *        0     8  magic "HVMEMREC" (written last: 8 zero bytes here mark an append not finished)
 *        8     8  record length L in bytes, all of it
 *       16     4  CRC-32 of bytes 8..15, then of bytes 20 .. 152 + 24R + 16M
 *       20     4  entry count M
 *       24   128  the header as it now is (as a base header: magic, version 5, 128, state, page
 *                 count N after this record, register count R; bytes 124..127 zero)
 *      152   24R  the registers now (as in version 4)
 * 152+24R    16M  entries, addresses strictly ascending: page address (8), CRC-32 of its bytes (4),
 *                 kind (4: 0 = stored here, 1 = now all zero, no bytes; its CRC field then zero)
 *     ...  4096S  the bytes of the S stored pages, in entry order
 *
 * L = 152 + 24R + 16M + 4096S. The record CRC covers all but the page bytes, which the entries' CRCs
 * cover (checked when a page is read, as a base page is). Records are read in order from the end of
 * the base; where fewer than 24 bytes remain, the magic is 8 zero bytes, or the record would pass the
 * end of the file, an append was cut short: that tail is ignored. Any other magic, a bad length, a bad
 * CRC, or a malformed record is damage (snapshot-invalid).
 */

export const RECORD_MAGIC = Buffer.from('HVMEMREC', 'latin1')
export const RECORD_HEADER_BYTES = 24
export const RECORD_ENTRY_BYTES = 16
/** Bytes of a record before its registers: its own header and the machine header. */
export const RECORD_FIXED_BYTES = RECORD_HEADER_BYTES + HEADER_BYTES
const ENTRY_STORED = 0
const ENTRY_ZERO = 1

/** The CRC a record's header stores: of its length field, then of bytes 20 up to its page bytes. */
function recordCrc(meta: Uint8Array): number {
  return crc32(meta.subarray(20), crc32(meta.subarray(8, 16)))
}

/** One record to append: `parts` (the first starts with the magic) of `length` bytes in all, and the page count after it. */
export interface EncodedRecord {
  parts: Uint8Array[]
  length: number
  pages: number
}

/**
 * The record saving `machine`'s changes since it was loaded (memory.changedFrames) on top of
 * `previous`, the pages the file holds now (a version-5 file's page list).
 */
export function encodeRecord(machine: Machine, previous: Pick<StoredPages, 'count' | 'frame'>): EncodedRecord {
  const state = machine.state()
  const memory = machine.memory
  const had = (frame: number): boolean => pageIndex(previous, frame) !== -1
  const entries: Array<{frame: number; page: Uint8Array | undefined}> = []
  let count = previous.count
  for (const frame of memory.changedFrames()) {
    const page = memory.pageOfFrame(frame)
    const stored = page !== undefined && !isZeroPage(page) ? page : undefined
    const existed = had(frame)
    if (stored === undefined && !existed) continue
    if (stored !== undefined && !existed) count++
    if (stored === undefined) count--
    entries.push({frame, page: stored})
  }
  const registers = encodeRegisters(state.registers ?? [])
  const metaBytes = RECORD_FIXED_BYTES + registers.length + entries.length * RECORD_ENTRY_BYTES
  const meta = Buffer.alloc(metaBytes)
  const pages: Uint8Array[] = []
  entries.forEach((e, i) => {
    const at = RECORD_FIXED_BYTES + registers.length + i * RECORD_ENTRY_BYTES
    meta.writeBigUInt64LE(BigInt(e.frame) << 12n, at)
    if (e.page === undefined) meta.writeUInt32LE(ENTRY_ZERO, at + 12)
    else {
      meta.writeUInt32LE(crc32(e.page), at + 8)
      pages.push(e.page)
    }
  })
  const length = metaBytes + pages.length * PAGE_BYTES
  RECORD_MAGIC.copy(meta, 0)
  meta.writeBigUInt64LE(BigInt(length), 8)
  meta.writeUInt32LE(entries.length, 20)
  encodeHeader(state, count, registers.length / REGISTER_RECORD_BYTES, JOURNAL_FORMAT_VERSION).copy(meta, RECORD_HEADER_BYTES)
  registers.copy(meta, RECORD_FIXED_BYTES)
  meta.writeUInt32LE(recordCrc(meta), 16)
  return {parts: [meta, ...pages], length, pages: count}
}

/** The records of a version-5 file, read: the state after the last, and where each changed page now lies (undefined: all zero). */
interface Journal {
  records: number
  end: number
  state?: MachineState
  count: number
  changes: Map<number, {offset: number; crc: number} | undefined>
}

/** Reads and checks the records after a version-5 base that ends at `start` (see the layout above). */
function readJournal(source: SnapshotSource, start: number, bad: (why: string) => never): Journal {
  const size = source.length
  const journal: Journal = {records: 0, end: start, count: 0, changes: new Map()}
  let at = start
  for (;;) {
    if (size - at < RECORD_HEADER_BYTES) break
    const head = view(source.read(at, RECORD_HEADER_BYTES))
    const magic = head.subarray(0, 8)
    if (magic.every((b) => b === 0)) break
    const where = `record ${journal.records + 1} (at byte ${at})`
    if (!magic.equals(RECORD_MAGIC)) bad(`${where} has a wrong magic (damaged)`)
    const length = head.readBigUInt64LE(8)
    if (length > BigInt(size - at)) break
    const entries = head.readUInt32LE(20)
    const minimum = BigInt(RECORD_FIXED_BYTES) + BigInt(entries) * BigInt(RECORD_ENTRY_BYTES)
    if (length < minimum) bad(`${where} is ${length} bytes, too short for its ${entries} entries (damaged)`)
    const fixed = view(source.read(at, RECORD_FIXED_BYTES))
    const registerCount = fixed.readUInt16LE(RECORD_HEADER_BYTES + 94)
    const metaBytes = RECORD_FIXED_BYTES + registerCount * REGISTER_RECORD_BYTES + entries * RECORD_ENTRY_BYTES
    if (BigInt(metaBytes) > length) bad(`${where} is ${length} bytes, too short for its ${entries} entries (damaged)`)
    const meta = view(source.read(at, metaBytes))
    const stored = meta.readUInt32LE(16)
    const actual = recordCrc(meta)
    if (stored !== actual) bad(`${where} checksum mismatch (stored ${hex(BigInt(stored), 8)}, computed ${hex(BigInt(actual), 8)}): the file is damaged`)
    const header = meta.subarray(RECORD_HEADER_BYTES, RECORD_FIXED_BYTES)
    if (!header.subarray(0, 8).equals(MAGIC) || header.readUInt32LE(8) !== JOURNAL_FORMAT_VERSION || header.readUInt32LE(12) !== HEADER_BYTES) bad(`${where} has a malformed header`)
    if (!header.subarray(96).every((b) => b === 0)) bad(`${where} has reserved header bytes that are not zero`)
    const recordBad = (why: string): never => bad(`${where}: ${why}`)
    const state = headerState(header, recordBad, header.readUInt32LE(88), true)
    const registerEnd = RECORD_FIXED_BYTES + registerCount * REGISTER_RECORD_BYTES
    if (registerCount > 0) state.registers = decodeRegisters(meta.subarray(RECORD_FIXED_BYTES, registerEnd), recordBad)
    const count = header.readBigUInt64LE(80)
    let pageAt = at + metaBytes
    let previous = -1n
    for (let i = 0; i < entries; i++) {
      const e = registerEnd + i * RECORD_ENTRY_BYTES
      const address = meta.readBigUInt64LE(e)
      const crc = meta.readUInt32LE(e + 8)
      const kind = meta.readUInt32LE(e + 12)
      if (address <= previous) recordBad(`page addresses out of order at entry ${i} (${hex(address)})`)
      if ((address & 0xfffn) !== 0n) recordBad(`page address ${hex(address)} at entry ${i} is not 4 KiB aligned`)
      if (address < state.ram.base || address + BigInt(PAGE_BYTES) > state.ram.base + state.ram.size) recordBad(`page ${hex(address)} is outside RAM`)
      previous = address
      if (kind === ENTRY_STORED) {
        journal.changes.set(Number(address >> 12n), {offset: pageAt, crc})
        pageAt += PAGE_BYTES
      } else if (kind === ENTRY_ZERO && crc === 0) journal.changes.set(Number(address >> 12n), undefined)
      else recordBad(`entry ${i} has kind ${kind}`)
    }
    if (BigInt(pageAt - at) !== length) bad(`${where} is ${length} bytes where its entries need ${pageAt - at} (damaged)`)
    at = pageAt
    journal.records++
    journal.end = at
    journal.state = state
    journal.count = Number(count)
  }
  return journal
}

/** The base's pages with the records applied: frames ascending, each page's CRC and offset in the file. */
function mergeJournal(
  frames: Float64Array,
  crcOf: (i: number) => number,
  offsetOf: (i: number) => number,
  journal: Journal,
  bad: (why: string) => never,
): {frames: Float64Array; crcs: Uint32Array; offsets: Float64Array} {
  const changed = [...journal.changes.keys()].sort((a, b) => a - b)
  if (journal.count > frames.length + changed.length) bad(`the last record says ${journal.count} pages, more than the base and the records hold`)
  const outFrames = new Float64Array(journal.count)
  const crcs = new Uint32Array(journal.count)
  const offsets = new Float64Array(journal.count)
  let n = 0
  const push = (frame: number, crc: number, offset: number): void => {
    if (n >= journal.count) bad(`the last record says ${journal.count} pages, and its records give more`)
    outFrames[n] = frame
    crcs[n] = crc
    offsets[n] = offset
    n++
  }
  let j = 0
  for (let i = 0; i <= frames.length; i++) {
    const frame = i < frames.length ? frames[i]! : Infinity
    while (j < changed.length && changed[j]! <= frame) {
      const c = journal.changes.get(changed[j]!)
      if (c !== undefined) push(changed[j]!, c.crc, c.offset)
      j++
    }
    if (i < frames.length && !journal.changes.has(frame)) push(frame, crcOf(i), offsetOf(i))
  }
  if (n !== journal.count) bad(`the last record says ${journal.count} pages, and its records give ${n}`)
  return {frames: outFrames, crcs, offsets}
}
