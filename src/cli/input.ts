/**
 * Reading a text input that a command names by its file, or `-` for standard input (docs/behaviour.md,
 * "CLI habits"): `batch`'s script and `map apply`'s layout.
 */
import {createReadStream, fstatSync} from 'node:fs'

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

/**
 * The bytes of `file`, or of standard input for `-`, a chunk at a time as they are read: the caller
 * may stop early (a limit), and the rest is not read. A file that cannot be read is an HvmemError
 * naming it: no such file or a directory (exit 2), anything else I/O (exit 9).
 */
export async function* inputChunks(file: string, names: InputNames): AsyncGenerator<Buffer> {
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
  }
  try {
    for await (const chunk of file === '-' ? process.stdin : createReadStream(file)) yield chunk as Buffer
  } catch (error) {
    const code = (error as {code?: unknown}).code
    if (code === 'ENOENT') throw new HvmemError('input', `cannot read ${names.name}: there is no such file`)
    if (code === 'EISDIR') throw new HvmemError('input', `cannot read ${names.name}: it is a directory`)
    throw new HvmemError('io', `cannot read ${names.name}: ${error instanceof Error ? error.message : String(error)}`)
  }
}
