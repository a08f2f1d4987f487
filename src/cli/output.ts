/**
 * Standard output that cannot be written: a full disk, /dev/full, a reader that closed the pipe.
 *
 * oclif's own listener rethrows every stdout error but EPIPE (a 33 KB stack trace for ENOSPC) and
 * swallows EPIPE (a command whose output was lost exits 0 in silence). hvmem's instead notes the error
 * and, as the process exits, says in one line on stderr what happened and whether the snapshot was
 * changed, with exit 9 (io) (snapshot diff: 2, its code for any trouble). Output is written after the save, so a change whose output is lost is
 * kept, and the line says so: the user can look at it with `heap status` or `dump tables`. A command
 * that changed nothing and whose reader went away (EPIPE: `hvmem dump tables | head`) ends quietly,
 * as other Unix tools do.
 *
 * A file as stdout (or a device that is not a terminal: /dev/full) is written by Node's
 * SyncWriteStream with one fs.writeSync a chunk, whose count it drops: a short write (a disk that
 * fills part-way through a chunk, a file-size limit) is no error there, and the rest of the chunk is
 * lost in silence. guardStdout makes each chunk written whole or fail: the rest is written again, and
 * that write fails with the cause (ENOSPC, EFBIG), reported as above. A chunk of no bytes is not
 * written at all: oclif writes '' as it ends, which /dev/full would fail (a run that printed nothing,
 * a comment-only batch, then exited 9). (Node ignores SIGXFSZ, so a
 * file-size limit is the error EFBIG, not a signal that kills the process.)
 *
 * Written directly: a process's own command line (src/cli/execute.ts) whose standard output is a
 * file or a memory device (/dev/null, /dev/full) writes it with fs.writeSync, each chunk whole, as
 * Node's SyncWriteStream would, without making process.stdout: making it loads Node's stream modules
 * (3-5 ms of every start-up, docs/performance.md). Whoever makes process.stdout later (oclif's help,
 * a plugin) gets it guarded as above, and hvmem's own writes then go through it, after the ones
 * already written. A terminal or a pipe is written through the stream, as before.
 *
 * Also: Node warnings oclif emits when it cannot read its data directory (HOME or XDG_DATA_HOME not a
 * directory; hvmem has no user plugins there) are dropped, and Node's warning that NO_COLOR is ignored when
 * FORCE_COLOR is set (which is hvmem's rule too).
 */
import {fstatSync, writeSync} from 'node:fs'

import {flush} from '@oclif/core'

import {savedSnapshots} from '../snapshot/store.js'
import {EXIT_CODES} from './exit-codes.js'

type ErrnoError = Error & {code?: unknown; path?: unknown}

let installed = false
let failure: ErrnoError | undefined
/** hvmem writes standard output with fs.writeSync (process.stdout not made) */
let direct = false

/**
 * Installs the stdout error policy (once per process): by the entry (src/cli/execute.ts) for every
 * command line, with `direct` (write a file or a memory device directly), and by each command for
 * in-process runs, whose stdout is the test's stream.
 */
export function guardStdout(options: {direct?: boolean} = {}): void {
  if (installed) return
  installed = true
  process.on('exit', reportAtExit)
  // Node's own: a getter that makes the stream at the first read
  const node = Object.getOwnPropertyDescriptor(process, 'stdout')
  if (options.direct === true && node?.get !== undefined && node.configurable === true && plainOutput(1)) {
    direct = true
    // the stream, if something makes it: guarded, and hvmem's own writes go through it from then on
    Object.defineProperty(process, 'stdout', {
      ...node,
      get() {
        Object.defineProperty(process, 'stdout', node)
        const stream = process.stdout
        direct = false
        guardStream(stream)
        return stream
      },
    })
    return
  }
  guardStream(process.stdout)
}

/**
 * Whether descriptor `fd` is a regular file or a memory device (Linux's character devices of major 1:
 * /dev/null, /dev/zero, /dev/full): written by plain writes that never wait on a reader, and never a
 * terminal. Anything else (a terminal, a pipe, a socket, another device) is not.
 */
function plainOutput(fd: number): boolean {
  try {
    const stat = fstatSync(fd)
    return stat.isFile() || (process.platform === 'linux' && stat.isCharacterDevice() && ((stat.rdev >> 8) & 0xfff) === 1)
  } catch {
    return false
  }
}

/** Whether standard output is a terminal (without making process.stdout when it is written directly, and so is none). */
export function stdoutIsTerminal(): boolean {
  return !direct && process.stdout.isTTY === true
}

/**
 * Writes `chunk` to standard output (nothing once it has failed: the failure is reported at exit);
 * true when it is written through and the caller may reuse its bytes (false: the stream holds them).
 */
export function writeStdout(chunk: string | Uint8Array): boolean {
  if (!direct) return process.stdout.write(chunk)
  if (failure === undefined) {
    try {
      writeAll(1, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk)
    } catch (error) {
      failure = error as ErrnoError
    }
  }
  return true
}

/** Whether standard output holds bytes it has not written yet (its reader is behind). */
export function stdoutHolds(): boolean {
  return !direct && process.stdout.writableLength > 0 && stdoutError() === undefined
}

/** Waits until what standard output was given is written (oclif's flush, for the stream: written directly, it is). */
export async function flushStdout(): Promise<void> {
  if (!direct) await flush()
}

/** The stream made for standard output, guarded: each chunk written whole, no error thrown. */
function guardStream(stdout: NodeJS.WriteStream): void {
  writeWhole(stdout)
  // Every listener hears of the error (an OutputSink awaiting the stream), but none may throw it:
  // oclif's rethrows, and each copy of @oclif/core adds its own as it loads (the help and autocomplete
  // plugins import theirs from node_modules, after this guard is installed).
  const emit = stdout.emit.bind(stdout) as (event: string | symbol, ...args: unknown[]) => boolean
  stdout.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== 'error') return emit(event, ...args)
    failure ??= args[0] as ErrnoError
    for (const listener of stdout.rawListeners('error')) {
      try {
        ;(listener as (...a: unknown[]) => void).apply(stdout, args)
      } catch {
        // noted above: reported at exit
      }
    }
    return true
  }) as typeof stdout.emit
}

/** What writeWhole sees of Node's SyncWriteStream (lib/internal/fs/sync_write_stream.js). */
interface FileStream {
  fd: number
  _write(chunk: Buffer, encoding: string, callback: (error?: Error | null) => void): void
}

/** A file or device as `stream` (Node's SyncWriteStream): each chunk written whole, or its error given to the stream. */
function writeWhole(stream: NodeJS.WriteStream): void {
  if (stream.constructor.name !== 'SyncWriteStream' || typeof (stream as unknown as FileStream).fd !== 'number') return
  const file = stream as unknown as FileStream
  file._write = (chunk, _encoding, callback) => {
    try {
      writeAll(file.fd, chunk)
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }
}

/** Writes `bytes` whole to `fd` (a file or device), or throws the error that stopped it. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) {
    const wrote = writeSync(fd, bytes, done, bytes.length - done)
    // (never for a file or device with bytes to write: an error rather than a loop)
    if (wrote <= 0) throw Object.assign(new Error('standard output took no bytes'), {code: 'EIO'})
    done += wrote
  }
}

/** The error that stopped standard output, if one has (noted synchronously by the stream, before its 'error' event). */
export function stdoutError(): ErrnoError | undefined {
  return failure ?? (direct ? undefined : ((process.stdout.errored as ErrnoError | null | undefined) ?? undefined))
}

let discarded = false

/** What the command that runs says of a stdout failure (HvmemCommand.init); help and the version are none. */
export interface StdoutPolicy {
  /** it works on a snapshot: the line for a run that saved nothing says "the snapshot was not changed" (else "nothing was changed") */
  snapshot: boolean
  /** the exit code, given the one the run would end with (0, or snapshot diff's 1 for "different", or an error's) */
  exitCode(code: number): number
}

let policy: StdoutPolicy = {snapshot: false, exitCode: (code) => (code === EXIT_CODES.ok ? EXIT_CODES.io : code)}

export function setStdoutPolicy(command: StdoutPolicy): void {
  policy = command
}

/** Notes that changes were not saved because standard output failed (hvmem batch): the exit says so, even for EPIPE. */
export function noteChangesDiscarded(): void {
  discarded = true
}

/** What stdout's error codes mean, in the one line that reports one (any other: its code). */
const WHY: ReadonlyMap<string, string> = new Map([
  ['EPIPE', 'the reader closed it (EPIPE)'],
  ['ENOSPC', 'no space left on its device (ENOSPC)'],
  ['EDQUOT', 'no space left on its device (EDQUOT)'],
  ['EFBIG', 'the file is larger than the file-size limit (ulimit -f) or its file system allows (EFBIG)'],
])

/** The one line for a stdout error, given the snapshots saved (undefined: say nothing); `snapshot`: whether the command works on one. */
export function stdoutErrorLine(error: ErrnoError, saved: readonly string[], changesDiscarded = false, snapshot = true): string | undefined {
  const code = typeof error.code === 'string' ? error.code : undefined
  if (code === 'EPIPE' && saved.length === 0 && !changesDiscarded) return undefined
  const why = code === undefined ? error.message : (WHY.get(code) ?? code)
  const outcome =
    saved.length === 0
      ? changesDiscarded
        ? 'nothing was saved, the snapshot is unchanged'
        : snapshot
          ? 'the snapshot was not changed'
          : 'nothing was changed'
      : `the change to ${[...new Set(saved)].join(', ')} was saved (only this output of it is lost)`
  return `hvmem: cannot write to standard output: ${why}; ${outcome}`
}

function reportAtExit(): void {
  const error = stdoutError()
  if (error === undefined) return
  const line = stdoutErrorLine(error, savedSnapshots(), discarded, policy.snapshot)
  if (line === undefined) return
  try {
    process.stderr.write(`${line.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`)
  } catch {
    // stderr is gone too: the exit code still tells
  }
  process.exitCode = policy.exitCode(Number(process.exitCode ?? EXIT_CODES.ok))
}

/** File errors Node would print as warnings for oclif's data directory (ENOTDIR, EACCES, ...): dropped. */
const emitWarning = process.emitWarning.bind(process)
process.emitWarning = ((warning: string | Error, ...rest: unknown[]): void => {
  // Node's own, when both are set: hvmem documents that FORCE_COLOR wins (src/cli/style.ts), as Node's does
  if (typeof warning === 'string' && warning.startsWith("The 'NO_COLOR' env is ignored")) return
  if (
    typeof warning === 'object' &&
    typeof (warning as ErrnoError).code === 'string' &&
    typeof (warning as ErrnoError).path === 'string' &&
    /package\.json$/.test((warning as ErrnoError).path as string)
  )
    return
  ;(emitWarning as (warning: string | Error, ...rest: unknown[]) => void)(warning, ...rest)
}) as typeof process.emitWarning
