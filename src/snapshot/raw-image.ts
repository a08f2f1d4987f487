/**
 * Reading raw physical memory images (QEMU's pmemsave, dump-guest-memory written raw, `snapshot export
 * --raw`) in chunks: a 1 GiB image is never held in one buffer. Pages are checked for zero with one
 * memcmp each (Buffer.compare against a zero page), not a JavaScript loop over bytes.
 */
import {type Stats, closeSync, constants, createWriteStream, fstatSync, mkdtempSync, openSync, readSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'

import {HvmemError} from '../core/errors.js'
import type {ImageScan} from '../core/image.js'
import {PAGE_BYTES} from '../core/memory.js'
import {removeOnStop} from './store.js'

/** Bytes read per chunk (256 pages). */
export const IMAGE_CHUNK = 1 << 20
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES)

export interface RawImage {
  path: string
  /** the file's size in bytes */
  size: number
  fd: number
  /** the image was piped to standard input (`-`); path is then STDIN_IMAGE */
  stdin?: boolean
  close(): void
}

function code(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? ((error as {code?: unknown}).code as string | undefined) : undefined
}

function openError(error: unknown, path: string): HvmemError {
  switch (code(error)) {
    case 'ENOENT':
      return new HvmemError('input', `RAW: no file at ${path}; pass the raw memory image to import`)
    case 'EACCES':
    case 'EPERM':
      return new HvmemError('io', `RAW: permission denied reading ${path}`)
    case 'ENOTDIR':
      return new HvmemError('input', `RAW: ${path} names no file (part of its directory is not a directory)`)
    case 'ELOOP':
      return new HvmemError('io', `RAW: cannot open ${path}: too many levels of symbolic links`)
    default:
      return new HvmemError('io', `RAW: cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * Opens a raw image for reading. It must be a non-empty regular file (a directory, device, FIFO or
 * socket is refused without opening it: opening some blocks or has effects).
 */
export function openRawImage(path: string): RawImage {
  const notRegular = (info: Stats): HvmemError =>
    new HvmemError('input', `RAW: ${path} is ${info.isDirectory() ? 'a directory' : 'not a regular file (a device, FIFO or socket)'}; pass a raw memory image file`)
  let info: Stats
  try {
    info = statSync(path)
  } catch (error) {
    throw openError(error, path)
  }
  if (!info.isFile()) throw notRegular(info)
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    throw openError(error, path)
  }
  const opened = fstatSync(fd)
  if (!opened.isFile()) {
    closeSync(fd)
    throw notRegular(opened)
  }
  let closed = false
  return {
    path,
    size: opened.size,
    fd,
    close() {
      if (!closed) closeSync(fd)
      closed = true
    },
  }
}

/** What `-` for the image names in messages. */
export const STDIN_IMAGE = 'standard input'

/**
 * Opens the image `path`, or with `-` the image piped to standard input: that is first copied to a
 * temp file in the system's temp directory (TMPDIR), as an import reads the image more than once;
 * close() removes it, as do SIGINT, SIGTERM and SIGHUP (the command then dies of the signal) and an
 * exit before it. Messages then name it "standard input".
 */
export async function openRawImageOrStdin(path: string, input: NodeJS.ReadableStream & {isTTY?: boolean} = process.stdin): Promise<RawImage> {
  if (path !== '-') return openRawImage(path)
  if (input.isTTY === true) throw new HvmemError('input', 'RAW -: standard input is a terminal; pipe the image in (hvmem snapshot import - --base ADDR < image.bin) or name the file')
  const dir = mkdtempSync(join(tmpdir(), 'hvmem-stdin-'))
  // (and a stop signal or an exit removes it meanwhile)
  const remove = removeOnStop(dir)
  const file = join(dir, 'image.raw')
  let image: RawImage
  try {
    await pipeline(input, createWriteStream(file))
    image = openRawImage(file)
  } catch (error) {
    remove()
    if (error instanceof HvmemError) throw error
    const why =
      code(error) === 'ENOSPC' || code(error) === 'EDQUOT'
        ? `the temp directory ${tmpdir()} is full (${code(error)}); set TMPDIR to a larger one`
        : error instanceof Error
          ? error.message
          : String(error)
    throw new HvmemError('io', `RAW -: cannot copy standard input to a temp file: ${why}`)
  }
  return {
    ...image,
    path: STDIN_IMAGE,
    stdin: true,
    close() {
      try {
        image.close()
      } finally {
        remove()
      }
    },
  }
}

/** Fills `buffer` from `position` (to the end of the file at most); returns the bytes read. */
function readFully(image: RawImage, buffer: Buffer, length: number, position: number): number {
  let done = 0
  while (done < length) {
    let got: number
    try {
      got = readSync(image.fd, buffer, done, length - done, position + done)
    } catch (error) {
      throw openError(error, image.path)
    }
    if (got === 0) break
    done += got
  }
  return done
}

/**
 * Streams the image through `visit`, page by page in address order, `IMAGE_CHUNK` bytes at a time.
 * `bytes` is the page's contents (the last page of an image whose size is not a multiple of 4 KiB is
 * shorter), valid only during the call; `zero` tells whether every byte is zero. `progress` is told
 * the pages done after each chunk.
 */
export function forEachImagePage(image: RawImage, visit: (index: number, bytes: Buffer, zero: boolean) => void, progress?: (pagesDone: number) => void): void {
  const buffer = Buffer.allocUnsafe(IMAGE_CHUNK)
  let index = 0
  for (let position = 0; position < image.size; position += IMAGE_CHUNK) {
    const want = Math.min(IMAGE_CHUNK, image.size - position)
    const got = readFully(image, buffer, want, position)
    if (got !== want) throw new HvmemError('io', `RAW: ${image.path} ended at byte ${position + got} while being read, not at ${image.size} (changed by another program?)`)
    for (let offset = 0; offset < got; offset += PAGE_BYTES, index++) {
      const end = Math.min(offset + PAGE_BYTES, got)
      const zero = buffer.compare(ZERO_PAGE, 0, end - offset, offset, end) === 0
      visit(index, buffer.subarray(offset, end), zero)
    }
    progress?.(index)
  }
}

/** Which pages of the image hold a non-zero byte (one pass over the file). */
export function scanImage(image: RawImage, base: bigint, progress?: (pagesDone: number) => void): ImageScan {
  const nonZero: number[] = []
  let pages = 0
  forEachImagePage(
    image,
    (index, _bytes, zero) => {
      pages = index + 1
      if (!zero) nonZero.push(index)
    },
    progress,
  )
  return {base, length: BigInt(image.size), pages, nonZero}
}

/**
 * A page source over the image for a lazily filled PhysicalMemory: page `index` as 4096 bytes (the
 * short last page padded with zeros). Pages are read a chunk at a time and served from it, since a
 * snapshot save asks for them in address order.
 */
export function imagePageReader(image: RawImage): (index: number) => Uint8Array {
  const window = Buffer.alloc(IMAGE_CHUNK)
  let windowStart = -1
  let windowLength = 0
  return (index: number): Uint8Array => {
    const position = index * PAGE_BYTES
    if (windowStart < 0 || position < windowStart || position >= windowStart + windowLength) {
      windowStart = position - (position % IMAGE_CHUNK)
      const want = Math.min(IMAGE_CHUNK, image.size - windowStart)
      windowLength = readFully(image, window, want, windowStart)
      if (windowLength !== want) throw new HvmemError('io', `RAW: ${image.path} ended at byte ${windowStart + windowLength} while being read, not at ${image.size} (changed by another program?)`)
    }
    const page = Buffer.alloc(PAGE_BYTES)
    window.copy(page, 0, position - windowStart, Math.min(position - windowStart + PAGE_BYTES, windowLength))
    return page
  }
}
