/**
 * Reading a text input that a command names by its file, or `-` for standard input (docs/behaviour.md,
 * "CLI habits"): `batch`'s script and `map apply`'s layout.
 */
import {closeSync, createReadStream, fstatSync, openSync, readSync, statSync} from 'node:fs'

import {HvmemError} from '../core/errors.js'

/** What `-` names in messages. */
export const STDIN_NAME = 'standard input'

export interface InputNames {
  /** the input as messages name it: `the batch file "x.hvmem"`, or STDIN_NAME for `-` */
  name: string
  /** the message when standard input is a directory (`hvmem batch < .`) */
  stdinDirectory: string
  /** with `-`, the message when standard input is a terminal; absent: a terminal is read as any stdin */
  stdinTerminal?: string
}

/** How much of a regular file is read at a time (as a stream would). */
const CHUNK_BYTES = 1 << 16

/**
 * The bytes of `file`, or of standard input for `-`, a chunk at a time as they are read: the caller
 * may stop early (a limit), and the rest is not read. A file that cannot be read is an HvmemError
 * naming it: no such file or a directory (exit 2), anything else I/O (exit 9).
 *
 * A regular file (named, or redirected to standard input) is read with plain reads, a chunk at a
 * time; a stream (a pipe, a terminal, a FIFO) through Node's streams, whose set-up costs a batch's
 * start-up more than its reading (14 ms of a one-line batch on the machine issue 13 is measured on).
 */
export async function* inputChunks(file: string, names: InputNames): AsyncGenerator<Buffer> {
  // a regular file's descriptor (standard input's, 0, for -): read here without a stream
  let fd: number | undefined
  try {
    if (file === '-') {
      const info = (() => {
        try {
          return fstatSync(0)
        } catch {
          return undefined
        }
      })()
      if (info?.isDirectory() === true) throw new HvmemError('input', names.stdinDirectory)
      if (names.stdinTerminal !== undefined && process.stdin.isTTY === true) throw new HvmemError('input', names.stdinTerminal)
      if (info?.isFile() === true) fd = 0
    } else {
      // (A FIFO is not opened here: its open waits for a writer, which a stream's open does off the
      // main thread. A directory goes to the stream too, which says EISDIR.)
      if (statSync(file).isFile()) fd = openSync(file, 'r')
    }
    if (fd === undefined) {
      for await (const chunk of file === '-' ? process.stdin : createReadStream(file)) yield chunk as Buffer
      return
    }
    for (;;) {
      // a buffer a chunk: the caller may keep them (map apply joins them)
      const chunk = Buffer.allocUnsafe(CHUNK_BYTES)
      const read = readSync(fd, chunk)
      if (read === 0) return
      yield chunk.subarray(0, read)
    }
  } catch (error) {
    if (error instanceof HvmemError) throw error
    const code = (error as {code?: unknown}).code
    if (code === 'ENOENT') throw new HvmemError('input', `cannot read ${names.name}: there is no such file`)
    if (code === 'EISDIR') throw new HvmemError('input', `cannot read ${names.name}: it is a directory`)
    throw new HvmemError('io', `cannot read ${names.name}: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    if (fd !== undefined && file !== '-') closeSync(fd)
  }
}
