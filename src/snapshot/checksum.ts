/**
 * CRC-32 as zlib computes it, for the snapshot's checks (its header, index and pages) and its lock
 * names. Up to SMALL_BYTES the core's byte loop; above, zlib's own, loaded at its first use: zlib
 * loads Node's stream modules, 1-5 ms of a start-up that checks only a small snapshot's header and
 * index (docs/performance.md).
 */
import type * as Zlib from 'node:zlib'

import {crc32Bytes} from '../core/crc32.js'

/** Above this many bytes, zlib's (faster once loaded: a 4 KiB page at a few GB/s). */
export const SMALL_BYTES = 1024

let zlib: typeof Zlib | undefined

/** zlib's crc32(bytes, crc): the CRC-32 of `bytes` continuing `crc`; a string is its UTF-8 bytes. */
export function crc32(bytes: Uint8Array | string, crc = 0): number {
  if (typeof bytes === 'string') bytes = Buffer.from(bytes, 'utf8')
  if (bytes.length <= SMALL_BYTES) return crc32Bytes(bytes, crc)
  zlib ??= process.getBuiltinModule('node:zlib')
  return zlib.crc32(bytes, crc)
}
