/**
 * Reads and writes hvmem snapshot files (format versions 2 and 3, one layout: docs/snapshot-format.md) without hvmem's
 * own code, so the benchmark's large inputs (1 GiB of non-zero RAM, heaps full of distinct pages)
 * are made independently of the code under test, in seconds. Only whole (base) files: it reads the
 * small files hvmem writes (versions 2 and 3; hvmem writes version 5, with appended records, only
 * from 4 MiB), and hvmem reads what it writes; a large version-3 file becomes version 5 at its first
 * change, which rewrites it whole (the scale cases copy a fresh input before each run).
 */
import {closeSync, openSync, readFileSync, writeSync} from 'node:fs'
import {crc32} from 'node:zlib'

export const PAGE = 4096
const HEADER = 128
const ENTRY = 16

/**
 * Parses a version-2 or version-3 snapshot: its 128-byte header (as bytes) and its pages as frame number -> bytes
 * (frame = address / 4096, exact as a JS number).
 */
export function readSnapshot(path) {
  const data = readFileSync(path)
  if (data.toString('latin1', 0, 8) !== 'HVMEMSNP' || ![2, 3].includes(data.readUInt32LE(8))) throw new Error(`${path}: not a version-2 or -3 hvmem snapshot`)
  const n = Number(data.readBigUInt64LE(80))
  const pages = new Map()
  for (let i = 0; i < n; i++) {
    const frame = Number(data.readBigUInt64LE(HEADER + ENTRY * i) >> 12n)
    const start = HEADER + ENTRY * n + PAGE * i
    pages.set(frame, data.subarray(start, start + PAGE))
  }
  return {header: Buffer.from(data.subarray(0, HEADER)), pages}
}

/**
 * Writes a snapshot in the header's own version (2 or 3): `header` (128 bytes: layout, heap and mapper fields; page count and
 * CRC are filled in here) and `frames`, an ascending list of frame numbers whose bytes `pageAt(frame)`
 * gives (4096 bytes, not all zero). Written in 1 MiB chunks, so memory stays small however many pages.
 */
export function writeSnapshot(path, header, frames, pageAt) {
  const n = frames.length
  const head = Buffer.alloc(HEADER + ENTRY * n)
  header.copy(head, 0, 0, HEADER)
  head.writeBigUInt64LE(BigInt(n), 80)
  for (let i = 0; i < n; i++) {
    const page = pageAt(frames[i])
    head.writeBigUInt64LE(BigInt(frames[i]) << 12n, HEADER + ENTRY * i)
    head.writeUInt32LE(crc32(page), HEADER + ENTRY * i + 8)
  }
  head.writeUInt32LE(n === 0 ? crc32(head.subarray(0, 124)) : crc32(head.subarray(HEADER), crc32(head.subarray(0, 124))), 124)
  const fd = openSync(path, 'w')
  try {
    writeSync(fd, head)
    const chunk = Buffer.alloc(PAGE * 256)
    let used = 0
    for (const frame of frames) {
      pageAt(frame).copy(chunk, used)
      used += PAGE
      if (used === chunk.length) {
        writeSync(fd, chunk)
        used = 0
      }
    }
    if (used > 0) writeSync(fd, chunk.subarray(0, used))
  } finally {
    closeSync(fd)
  }
}

/** A page of non-zero bytes unique to `frame` and `seed`: its frame number and seed repeated (reused buffer). */
const scratch = Buffer.alloc(PAGE)
export function patternPage(frame, seed = 1) {
  for (let at = 0; at < PAGE; at += 16) {
    scratch.writeUInt32LE(frame >>> 0, at)
    scratch.writeUInt32LE(Math.floor(frame / 2 ** 32), at + 4)
    scratch.writeUInt32LE(seed >>> 0, at + 8)
    scratch.writeUInt32LE((0x9e3779b9 ^ at) >>> 0, at + 12)
  }
  return scratch
}
