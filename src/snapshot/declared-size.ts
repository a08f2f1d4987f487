/**
 * The sizes a snapshot header declares, checked against the file before anything past the header is
 * read (src/snapshot/store.ts calls it before decoding): a 12-byte header in a file sparse to
 * gigabytes is refused without being read, and nothing is read in one piece larger than Node can.
 */
import {HvmemError} from '../core/errors.js'
import {HEADER_BYTES, MAGIC, baseBytes} from './format.js'

/**
 * The most bytes hvmem reads in one piece: a whole version-1 file, a version-2 page index, a snapshot
 * on standard input (2 GiB - 1, Node's limit for one read).
 */
export const MAX_READ_BYTES = 2 ** 31 - 1

/**
 * What a snapshot header (its first 88 bytes or more) declares: its format version, page count, and
 * so the file's size in bytes; undefined if the header is not one hvmem reads (wrong magic, an unknown
 * version, too short), which decoding it reports.
 */
export function declaredSnapshotSize(head: Uint8Array): {version: number; pages: bigint; size: bigint} | undefined {
  if (head.length < 88 || !MAGIC.equals(head.subarray(0, MAGIC.length))) return undefined
  const view = Buffer.from(head.buffer, head.byteOffset, head.length)
  const version = view.readUInt32LE(8)
  const pages = view.readBigUInt64LE(80)
  // version 1: header, 8-byte addresses and pages, a 4-byte CRC; versions 2 and 3: header, 16-byte index entries and pages
  if (version === 1) return {version, pages, size: BigInt(HEADER_BYTES + 4) + pages * BigInt(8 + 4096)}
  if (version === 2 || version === 3) return {version, pages, size: baseBytes(pages, 0)}
  // version 4: the same, then the register records (their count at bytes 94..95)
  // version 5: the same as 4, then appended records (the file may be longer: see format.ts)
  if ((version === 4 || version === 5) && head.length >= 96) return {version, pages, size: baseBytes(pages, view.readUInt16LE(94))}
  return undefined
}

/**
 * Checks the file's size against the size its header declares before anything past the header is
 * read (a 12-byte header in a file sparse to gigabytes must not be read whole), and refuses what
 * would be read in one piece larger than MAX_READ_BYTES: 'snapshot-invalid', naming `name`.
 */
export function checkDeclaredSize(head: Uint8Array, size: number, name: string): void {
  const declared = declaredSnapshotSize(head)
  // (shorter than a whole header: decoding says it is truncated)
  if (declared === undefined || (declared.version >= 2 && size < HEADER_BYTES)) return
  const bad = (why: string): never => {
    throw new HvmemError('snapshot-invalid', `${name} is not a valid hvmem snapshot: ${why}`)
  }
  if (declared.version === 5 ? declared.size > BigInt(size) : declared.size !== BigInt(size))
    bad(`${size} bytes where the header's ${declared.pages} pages need ${declared.size} (truncated or damaged)`)
  if (declared.version === 1 && size > MAX_READ_BYTES)
    bad(`a version-1 snapshot is read whole, and this one is ${size} bytes, more than hvmem reads at once (${MAX_READ_BYTES}); no hvmem wrote one that large`)
  if (declared.version >= 2 && declared.pages * 16n > BigInt(MAX_READ_BYTES)) bad(`its index of ${declared.pages} pages is larger than hvmem reads at once (${MAX_READ_BYTES} bytes)`)
}
