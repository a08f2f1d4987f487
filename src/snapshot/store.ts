/**
 * Loading and saving snapshot files.
 *
 * Reads need no lock: saves replace the file by an atomic rename, so a reader sees the old file or
 * the new one, whole; and a reader keeps the file it opened, so a save that lands while it reads
 * pages on demand does not mix two snapshots. A read-only load (loadSnapshot) checks the header and
 * page index, and each page as it is first used; a change (updateSnapshot) loads and checks every page.
 *
 * Every change runs load -> change -> save under an exclusive inter-process lock (proper-lockfile,
 * a `<snapshot>.lock` directory), so concurrent commands never lose an update. A change that throws
 * saves nothing: the file stays byte-identical.
 *
 * A save writes `<snapshot>.hvmem-tmp.<pid>.<random>` in the same directory, fsyncs it, renames it
 * over the snapshot and fsyncs the directory. A command killed mid-save leaves the old snapshot and
 * at most such a temp file, which nothing reads; the next save of that snapshot removes it.
 *
 * `hvmem batch` runs many commands under one session (withSnapshotSession): one lock, one full load,
 * and one save at the end; meanwhile loadSnapshot and updateSnapshot of that snapshot use the
 * session's machine. Outside a session they behave as described above.
 */
import {type Stats, closeSync, constants, existsSync, fstatSync, mkdir, openSync, readSync, rmdir, stat as statCallback, statSync, utimes} from 'node:fs'
import {type FileHandle, open, readdir, realpath, rename, stat, unlink} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {crc32} from 'node:zlib'

import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import {checkDeclaredSize} from './declared-size.js'
import {type DecodeMode, type Decoded, HEADER_BYTES, type SnapshotSource, bufferSource, decodeSource, snapshotBatches} from './format.js'

export const DEFAULT_SNAPSHOT = './hvmem.snap'

/** A lock untouched this long is taken to be left by a command that died, and taken over. */
export const LOCK_STALE_MS = 10_000
/** How long a command waits for another's lock before giving up (exit 9). */
export const LOCK_WAIT_MS = 30_000

/** Warnings (a stale lock taken over) go to stderr as one line, like errors (control characters in a path shown escaped). */
export let warn = (message: string): void => {
  process.stderr.write(`hvmem: ${message.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`)
}

/** Replaces the warning sink (for tests); returns the previous one. */
export function setWarn(sink: (message: string) => void): (message: string) => void {
  const previous = warn
  warn = sink
  return previous
}

/** Closes the file a lazily loaded snapshot reads from once its machine is gone. */
const openFiles = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd)
  } catch {
    // already closed
  }
})

/**
 * Loads a snapshot for reading: the header and page index now (checked), each page when first used
 * (checked then; a damaged page is a 'snapshot-invalid' error naming the file and the page). Memory
 * stays proportional to the pages used. Version-1 files are read whole.
 */
export async function loadSnapshot(path: string): Promise<Machine> {
  checkPath(path)
  const session = sessionFor(path)
  if (session !== undefined) return session.machine
  return openAndDecode(path, 'lazy')
}

/** A snapshot opened read-only with what its file says about itself (format version, size, checksum, page index). */
export interface SnapshotFile extends Decoded {
  /** the file's size in bytes */
  size: number
}

/**
 * Opens a snapshot file read-only, like loadSnapshot (no lock, pages read and checked on first use),
 * keeping the file-level facts `snapshot info` and `snapshot diff` show.
 */
export async function openSnapshotFile(path: string): Promise<SnapshotFile> {
  checkPath(path)
  return openDecoded(path, 'lazy')
}

/**
 * Decodes a snapshot held in memory (read from standard input, say) named `name` in errors: the header
 * and index are checked now, each page when first used. Nothing is locked or written.
 */
export function loadSnapshotBytes(data: Uint8Array, name: string): SnapshotFile {
  // (a header that declares another size: refused before decode reads past it)
  checkDeclaredSize(data.subarray(0, HEADER_BYTES), data.length, name)
  return {...decodeSource(bufferSource(data), name, 'lazy'), size: data.length}
}

/** Loads, lets `change` modify the machine, and saves it: all under the lock, and only if `change` returns. */
export function updateSnapshot<T>(path: string, change: (machine: Machine) => T): Promise<T> {
  // Not async itself: inside a batch's session (every line of 10,000 `alloc page`) the change is
  // made at once, and its result comes back as a settled promise, with no async frame of its own.
  try {
    checkPath(path)
    const session = sessionFor(path)
    if (session !== undefined) {
      const result = change(session.machine)
      session.changed = true
      return Promise.resolve(result)
    }
  } catch (error) {
    return Promise.reject(error)
  }
  return updateFile(path, change)
}

/** updateSnapshot outside a session: lock, load, change, save. */
async function updateFile<T>(path: string, change: (machine: Machine) => T): Promise<T> {
  // Refuse a missing file, a directory or a device before making a lock next to it.
  await checkRegular(path, false)
  return withLock(path, false, async (stillOurs) => {
    const machine = await openAndDecode(path, 'full')
    const result = change(machine)
    await stillOurs()
    await save(path, machine)
    return result
  })
}

/** Writes a new snapshot; an existing file is replaced only with `force` (and must be a snapshot or a regular file). */
export async function createSnapshot(path: string, machine: Machine, force: boolean): Promise<void> {
  checkPath(path)
  if (active !== undefined) throw new HvmemError('input', `cannot create ${path} inside a batch, which works on ${active.path}; create it before the batch`)
  await checkRegular(path, true)
  await withLock(path, true, async (stillOurs) => {
    const info = await stat(path).catch((error: unknown) => {
      if (isCode(error, 'ENOENT')) return undefined
      throw fsError(error, path)
    })
    if (info !== undefined) {
      if (!info.isFile()) throw new HvmemError('snapshot-invalid', `${path} exists and is not a regular file; choose another --snapshot`)
      if (!force) throw new HvmemError('snapshot-exists', `${path} already exists; pass --force to replace it, or choose another --snapshot`)
    }
    await stillOurs()
    await save(path, machine)
  })
}

/** A snapshot held open by `withSnapshotSession`. */
export interface SnapshotSession {
  /** the snapshot's path, as given */
  readonly path: string
  /** the snapshot's machine, loaded whole: loadSnapshot and updateSnapshot of `path` use it meanwhile */
  readonly machine: Machine
  /** true once an updateSnapshot of `path` has returned during the session (its owner may reset it when it undoes a change) */
  changed: boolean
}

let active: (SnapshotSession & {readonly resolved: string}) | undefined

/** The open session, if `path` is its snapshot; a session refuses every other snapshot. */
function sessionFor(path: string): SnapshotSession | undefined {
  if (active === undefined) return undefined
  if (path === active.path) return active
  if (resolve(path) !== active.resolved) throw new HvmemError('input', `cannot use ${path} inside a batch, which works on ${active.path}; run that command outside the batch`)
  return active
}

/**
 * Holds the snapshot at `path` open for many commands (hvmem batch): takes its lock once, loads it
 * whole once, and while `body` runs, loadSnapshot and updateSnapshot of that path use the loaded
 * machine (no locking, loading or saving of their own); any other snapshot is refused. When `body`
 * returns `commit: true` and some update changed the machine, the machine is saved once, atomically,
 * before the lock is released; otherwise (or if `body` throws) the file stays byte-identical. An
 * update that throws half-way is the caller's to undo (Machine.checkpoint). One session at a time.
 */
export async function withSnapshotSession<T>(path: string, body: (session: SnapshotSession) => Promise<{result: T; commit: boolean}>): Promise<{result: T; saved: boolean}> {
  checkPath(path)
  if (active !== undefined) throw new HvmemError('input', `a batch is already running on ${active.path}`)
  await checkRegular(path, false)
  return withLock(path, false, async (stillOurs) => {
    const machine = await openAndDecode(path, 'full')
    const session = {path, resolved: resolve(path), machine, changed: false}
    active = session
    let outcome: {result: T; commit: boolean}
    try {
      outcome = await body(session)
    } finally {
      active = undefined
    }
    const saved = outcome.commit && session.changed
    if (saved) {
      await stillOurs()
      await save(path, machine)
    }
    return {result: outcome.result, saved}
  })
}

/** An empty path names nothing (and would resolve to the current directory): bad input. */
function checkPath(path: string): void {
  if (path === '') throw new HvmemError('input', 'the snapshot path is empty; pass --snapshot FILE or set HVMEM_SNAPSHOT to a file name')
  // (a directory's name: no file to load, and its lock would be made beside the directory)
  if (path.endsWith('/')) throw new HvmemError('input', `the snapshot path ${JSON.stringify(path)} ends in "/", which names a directory; name a file, as ${JSON.stringify(`${path}hvmem.snap`)}`)
}

/** Refuses a path that is not a regular file (or, with `mayBeMissing`, nothing at all). */
async function checkRegular(path: string, mayBeMissing: boolean): Promise<void> {
  let info: Stats
  try {
    info = await stat(path)
  } catch (error) {
    if (mayBeMissing && isCode(error, 'ENOENT')) return
    throw fsError(error, path)
  }
  if (!info.isFile()) throw new HvmemError('snapshot-invalid', mayBeMissing ? `${path} exists and is not a regular file; choose another --snapshot` : `${path} is not a regular file; pass a snapshot file with --snapshot`)
}

async function openAndDecode(path: string, mode: DecodeMode): Promise<Machine> {
  return (await openDecoded(path, mode)).machine
}

async function openDecoded(path: string, mode: DecodeMode): Promise<SnapshotFile> {
  // Never open a device, FIFO or socket: opening some has effects, or blocks.
  await checkRegular(path, false)
  let fd: number
  try {
    // A plain descriptor, not a FileHandle: it outlives this function when pages are read on demand (see openFiles).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    throw fsError(error, path)
  }
  let keep = false
  try {
    const opened = fstatSync(fd)
    // (replaced by something else between the check and the open)
    if (!opened.isFile()) throw new HvmemError('snapshot-invalid', `${path} is not a regular file; pass a snapshot file with --snapshot`)
    const source = fileSource(fd, opened.size, path)
    // The sizes the header declares, before decode reads past it.
    checkDeclaredSize(source.read(0, Math.min(HEADER_BYTES, opened.size)), opened.size, path)
    const decoded = decodeSource(source, path, mode)
    if (decoded.usesSource) {
      openFiles.register(decoded.machine.memory, fd)
      keep = true
    }
    return {...decoded, size: opened.size}
  } finally {
    if (!keep) closeSync(fd)
  }
}

/** Reads an open snapshot with fs.readSync (page sources are synchronous). */
function fileSource(fd: number, length: number, path: string): SnapshotSource {
  const readInto = (offset: number, out: Uint8Array): void => {
    const bytes = out.length
    let done = 0
    while (done < bytes) {
      let got: number
      try {
        got = readSync(fd, out, done, bytes - done, offset + done)
      } catch (error) {
        throw fsError(error, path)
      }
      if (got === 0) throw new HvmemError('snapshot-invalid', `${path} is not a valid hvmem snapshot: it ended at byte ${offset + done} while being read (changed in place by another program?)`)
      done += got
    }
  }
  return {
    length,
    // each read fills a new buffer (allocUnsafe of more than 4 KiB is not pooled: its own memory)
    fresh: true,
    read(offset: number, bytes: number): Uint8Array {
      const out = Buffer.allocUnsafe(bytes)
      readInto(offset, out)
      return out
    },
    readInto,
  }
}

/** NAME_MAX: the longest file name, in bytes, on Linux and macOS file systems. */
const NAME_MAX = 255
/** What a temp name adds to its prefix, at most: `.hvmem-tmp.` (11), a pid (up to 7 digits), `.`, 8 hex digits. */
const TEMP_SUFFIX_MAX = 27

/**
 * The start of `base`'s temp names: `base` itself, or, when the whole name would pass NAME_MAX (a
 * 240-character snapshot name), its first bytes and `~` and the CRC-32 of the whole name in hex
 * (so the temp names of two long names that start alike still differ).
 */
function tempPrefix(base: string): string {
  if (Buffer.byteLength(base) + TEMP_SUFFIX_MAX <= NAME_MAX) return base
  const keep = NAME_MAX - TEMP_SUFFIX_MAX - 9
  let cut = ''
  for (const c of base) {
    if (Buffer.byteLength(cut + c) > keep) break
    cut += c
  }
  return `${cut}~${crc32(base).toString(16).padStart(8, '0')}`
}

/** The temp files of `base` a save writes: `<base>.hvmem-tmp.<pid>.<8 hex digits>`. */
export function tempFilePattern(base: string): RegExp {
  return new RegExp(`^${tempPrefix(base).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.hvmem-tmp\\.\\d+\\.[0-9a-f]{8}$`)
}

/**
 * Writes the snapshot atomically: a new temp file in the same directory (never an existing one),
 * written in chunks, fsynced, renamed over `path`, then the directory fsynced. Called under the lock,
 * so temp files of this snapshot left by a killed command are removed first.
 */
async function save(path: string, machine: Machine): Promise<void> {
  // A symlinked snapshot: replace the file it points at, not the link.
  const target = await realpath(path).catch(() => path)
  const dir = dirname(target)
  const base = basename(target)
  await removeStaleTemps(dir, base)
  const existing = await stat(target).catch(() => undefined)
  let temp = ''
  try {
    let handle
    for (let attempt = 0; handle === undefined; attempt++) {
      // Math.random, not crypto: the name only has to differ from other saves' ("wx" refuses an
      // existing file, and a clash is retried), and loading Web Crypto cost every save up to 1 ms.
      temp = join(dir, `${tempPrefix(base)}.hvmem-tmp.${process.pid}.${Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, '0')}`)
      try {
        // A new snapshot gets 0666 less the umask, like any new file; a replacement, the old file's mode (below).
        handle = await open(temp, 'wx', existing === undefined ? 0o666 : 0o600)
      } catch (error) {
        if (!isCode(error, 'EEXIST') || attempt >= 4) throw error
      }
    }
    try {
      for (const batch of snapshotBatches(machine)) await writeAll(handle, batch)
      if (existing !== undefined) {
        await handle.chmod(existing.mode & 0o7777)
        if (process.getuid?.() === 0) await handle.chown(existing.uid, existing.gid).catch(() => undefined)
      }
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, target)
  } catch (error) {
    if (temp !== '') await unlink(temp).catch(() => undefined)
    throw fsError(error, path)
  }
  await syncDirectory(dir)
  saved.push(path)
}

/** The snapshots this process has saved, as named: what a command whose output then fails says was kept (src/cli/output.ts). */
const saved: string[] = []

export function savedSnapshots(): readonly string[] {
  return saved
}

/** Writes the buffers in order with vectored writes, going on after a short write. */
async function writeAll(handle: FileHandle, buffers: Uint8Array[]): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0)
  while (pending.length > 0) {
    let written = (await handle.writev(pending)).bytesWritten
    while (pending.length > 0 && written >= pending[0]!.length) {
      written -= pending[0]!.length
      pending = pending.slice(1)
    }
    if (written > 0) pending = [pending[0]!.subarray(written), ...pending.slice(1)]
  }
}

/** Makes the rename durable; some file systems cannot fsync a directory, which is not an error. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY)
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // best effort
  }
}

async function removeStaleTemps(dir: string, base: string): Promise<void> {
  const pattern = tempFilePattern(base)
  const names = await readdir(dir).catch(() => [] as string[])
  for (const name of names.filter((n) => pattern.test(n))) await unlink(join(dir, name)).catch(() => undefined)
}

/**
 * Runs `body` holding the snapshot's lock. Waits up to LOCK_WAIT_MS for another command's lock, and
 * takes over one untouched for LOCK_STALE_MS (saying so on stderr). `body` gets `stillOurs`, which
 * throws if another command took the lock over meanwhile (this one was thought dead, its event loop
 * blocked past the stale time): call it right before saving, so a command that lost its lock writes
 * nothing, and does not remove the lock that is now the other command's.
 */
async function withLock<T>(path: string, creating: boolean, body: (stillOurs: () => Promise<void>) => Promise<T>): Promise<T> {
  const lock = await acquire(path, creating)
  let lost = false
  const stillOurs = async (): Promise<void> => {
    if (await lock.lost()) {
      lost = true
      throw new HvmemError('io', `the lock on ${path} was taken over by another command while this one ran (it was thought dead); nothing was saved: check the snapshot with "hvmem heap status" and try again`)
    }
  }
  try {
    return await body(stillOurs)
  } finally {
    if (!lost) await lock.release().catch(() => undefined)
  }
}

interface HeldLock {
  release: () => Promise<void>
  /** true if the lock directory is no longer the one this command made (or refreshed) */
  lost: () => Promise<boolean>
}

/** What tells one lock directory from the next: a takeover removes it and makes another. */
interface LockIdentity {
  ino: bigint
  ctimeNs: bigint
}

function lockIdentity(lockPath: string): LockIdentity | undefined {
  const info = statSync(lockPath, {bigint: true, throwIfNoEntry: false})
  return info === undefined ? undefined : {ino: info.ino, ctimeNs: info.ctimeNs}
}

/** proper-lockfile, loaded by the first command that takes a lock (it patches `fs` through graceful-fs: read-only commands skip that). */
async function lockfileModule(): Promise<typeof import('proper-lockfile')> {
  return (await import('proper-lockfile')).default
}

async function acquire(path: string, creating: boolean): Promise<HeldLock> {
  const lockPath = `${path}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  let delay = 5
  for (;;) {
    // proper-lockfile's own file-system calls, watched to learn when it removes a stale lock, and to
    // follow its refreshes of the lock (each changes the directory's ctime).
    let acquiring = true
    let staleMtime: Date | undefined
    let tookOver = false
    let compromised = false
    let identity: LockIdentity | undefined
    let refreshing = 0
    const fs = {
      mkdir,
      utimes: (file: string, atime: Date, mtime: Date, callback: (error: NodeJS.ErrnoException | null) => void) => {
        refreshing++
        utimes(file, atime, mtime, (error) => {
          // Just refreshed, so not stale: nobody can have taken it over in between.
          if (error === null && !acquiring) identity = lockIdentity(file)
          refreshing--
          callback(error)
        })
      },
      stat: (file: string, callback: (error: NodeJS.ErrnoException | null, stats: Stats) => void) =>
        statCallback(file, (error, stats) => {
          // the lock found in place (not the one proper-lockfile then makes and probes)
          if (acquiring && !tookOver && error === null) staleMtime = stats.mtime
          callback(error, stats)
        }),
      rmdir: (file: string, callback: (error: NodeJS.ErrnoException | null) => void) => {
        if (acquiring) tookOver = true
        rmdir(file, callback)
      },
    }
    try {
      const release = await (await lockfileModule()).lock(path, {
        realpath: false,
        stale: LOCK_STALE_MS,
        retries: 0,
        fs,
        onCompromised: () => {
          compromised = true
        },
      })
      acquiring = false
      identity = lockIdentity(lockPath)
      if (tookOver) {
        const age = staleMtime === undefined ? '' : `, untouched for ${Math.round((Date.now() - staleMtime.getTime()) / 1000)} s`
        warn(`took over a stale lock on ${path} left by a command that did not finish (${lockPath}${age})`)
      }
      const lost = async (): Promise<boolean> => {
        // let a refresh under way finish (it updates `identity`)
        await new Promise((resolve) => setImmediate(resolve))
        for (let i = 0; refreshing > 0 && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 5))
        const now = lockIdentity(lockPath)
        return compromised || now === undefined || identity === undefined || now.ino !== identity.ino || now.ctimeNs !== identity.ctimeNs
      }
      return {release, lost}
    } catch (error) {
      acquiring = false
      if (isCode(error, 'ELOCKED')) {
        if (isRegularFile(lockPath)) throw lockFileError(path, lockPath)
        if (Date.now() >= deadline) throw new HvmemError('io', `${path} is locked by another hvmem command that has not finished in ${LOCK_WAIT_MS / 1000} s; try again, or remove ${lockPath} if no hvmem command is running`)
        await new Promise((resolve) => setTimeout(resolve, delay + Math.random() * delay))
        delay = Math.min(delay * 1.5, 50)
        continue
      }
      throw lockError(error, path, lockPath, creating)
    }
  }
}

/** The lock directory could not be made: say why, in terms of the snapshot's directory. */
function lockError(error: unknown, path: string, lockPath: string, creating: boolean): unknown {
  const dir = dirname(path)
  if (isCode(error, 'ENOTDIR') && isRegularFile(lockPath)) return lockFileError(path, lockPath)
  if (isCode(error, 'ENOENT')) {
    if (!creating) return fsError(error, path)
    return existsSync(dir) ? new HvmemError('io', `cannot create ${path}: ${dir} does not take new files (ENOENT)`) : new HvmemError('io', `cannot create ${path}: its directory ${dir} does not exist`)
  }
  if (isCode(error, 'EACCES') || isCode(error, 'EPERM') || isCode(error, 'EROFS')) {
    return new HvmemError('io', `cannot lock ${path}: the directory ${dir} is not writable (${(error as {code: string}).code}); hvmem creates ${basename(lockPath)} and a temp file next to the snapshot`)
  }
  return fsError(error, path)
}

function isRegularFile(path: string): boolean {
  return statSync(path, {throwIfNoEntry: false})?.isFile() === true
}

/** A regular file where the lock (a directory) goes: not hvmem's, so never removed. */
function lockFileError(path: string, lockPath: string): HvmemError {
  return new HvmemError('io', `cannot lock ${path}: ${lockPath} is a regular file, not an hvmem lock (a directory); remove or rename it if no hvmem command made it`)
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as {code?: unknown}).code === code
}

/** Maps a file-system error to a one-line HvmemError; anything else passes through. */
function fsError(error: unknown, path: string): unknown {
  if (error instanceof HvmemError) return error
  if (isCode(error, 'ENOENT')) return new HvmemError('snapshot-missing', `no snapshot at ${path}; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT`)
  if (isCode(error, 'EISDIR')) return new HvmemError('snapshot-invalid', `${path} is a directory, not a snapshot file`)
  if (isCode(error, 'ENOTDIR')) return new HvmemError('io', `cannot use ${path}: part of its directory ${dirname(path)} is not a directory`)
  if (isCode(error, 'ELOOP')) return new HvmemError('io', `cannot use ${path}: too many levels of symbolic links`)
  if (isCode(error, 'ENAMETOOLONG')) return new HvmemError('io', `cannot use the snapshot path: it is too long (${path.length} characters)`)
  if (isCode(error, 'EACCES') || isCode(error, 'EPERM') || isCode(error, 'EROFS')) return new HvmemError('io', `permission denied for ${path}; check the file and its directory`)
  if (isCode(error, 'ENOSPC') || isCode(error, 'EDQUOT')) return new HvmemError('io', `no space left to save ${path}; the snapshot was not changed`)
  if (error instanceof Error) return new HvmemError('io', `cannot access ${path}: ${error.message}`)
  return error
}
