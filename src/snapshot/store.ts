/**
 * Loading and saving snapshot files.
 *
 * Reads need no lock: saves replace the file by an atomic rename, so a reader sees the old file or
 * the new one, whole; and a reader keeps the file it opened, so a save that lands while it reads
 * pages on demand does not mix two snapshots. A read-only load (loadSnapshot) checks the header and
 * page index, and each page as it is first used; a change (updateSnapshot) loads and checks every page.
 *
 * Every change runs load -> change -> save under an exclusive inter-process lock (a
 * `<snapshot>.lock` directory naming its owner), so concurrent commands never lose an update. A change that throws
 * saves nothing: the file stays byte-identical. A snapshot this user may not write is never changed
 * (refuseWriteProtected), though a rename would need only its directory to be writable.
 *
 * A save writes `<snapshot>.hvmem-tmp.<pid>.<random>` in the same directory, fsyncs it, renames it
 * over the snapshot and fsyncs the directory. A command killed mid-save leaves the old snapshot and
 * at most such a temp file, which nothing reads; the next save of that snapshot removes it.
 *
 * A snapshot of JOURNAL_THRESHOLD_BYTES or more is written as format version 5, and a change to it
 * (outside a batch) is loaded on demand and appended as one record instead (appendChange): the
 * record's bytes but its magic, fsync, the magic, fsync. A reader sees a record whole or not at all
 * (it reads the file's size once; a record without its magic, or passing that size, is ignored), and
 * appends never change bytes before the last complete record. Every so often a save rewrites the
 * file whole, as above (format.ts and docs/snapshot-format.md).
 *
 * `hvmem batch` runs many commands under one session (withSnapshotSession): one lock, one full load,
 * and one save at the end; meanwhile loadSnapshot and updateSnapshot of that snapshot use the
 * session's machine. Outside a session they behave as described above.
 */
import {
  type Stats,
  accessSync,
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  open,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  unlinkSync,
  utimes,
  writeFileSync,
  writeSync,
  writev,
  writevSync,
} from 'node:fs'
import {constants as osConstants, hostname} from 'node:os'
import {basename, dirname, join, resolve} from 'node:path'
import {promisify} from 'node:util'

import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import {crc32} from './checksum.js'
import {checkDeclaredSize, declaredSnapshotSize} from './declared-size.js'
import {
  type DecodeMode,
  type Decoded,
  HEADER_BYTES,
  JOURNAL_FORMAT_VERSION,
  type SnapshotSource,
  baseBytes,
  bufferSource,
  decodeSource,
  decodeSourcePaced,
  encodeRecord,
  snapshotBatches,
} from './format.js'

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
  if (session !== undefined) return breathe(session.machine)
  return openAndDecode(path, path, 'lazy')
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
  return openDecoded(path, path, 'lazy')
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
      return breathe(result)
    }
  } catch (error) {
    return Promise.reject(error)
  }
  return updateFile(path, change)
}

/** updateSnapshot outside a session: lock, load, change, save (all on the file a symlink points at). */
async function updateFile<T>(path: string, change: (machine: Machine) => T): Promise<T> {
  const file = snapshotTarget(path)
  // Refuse a missing file, a directory or a device before making a lock next to it.
  checkRegular(file, path, false)
  return withLock(file, path, false, async (held) => {
    refuseWriteProtected(file, path)
    // A version-5 file (a large snapshot) is read on demand, like a read-only load, and its change
    // appended as a record; any other is read and checked whole, and rewritten.
    const opened = await openDecoded(file, path, 'full', true)
    const machine = opened.machine
    const result = change(machine)
    stillOurs(held)
    if (!(await appendChange(file, path, opened, held))) await save(file, path, machine, held)
    return result
  })
}

/** The default size from which a snapshot is written as version 5, and its changes appended (4 MiB). */
export const JOURNAL_THRESHOLD_BYTES = 4 * 1024 * 1024
/** Appended records at most (more, and the next save rewrites the file whole). */
export const MAX_JOURNAL_RECORDS = 256
/** The records' bytes may reach this fraction of the base's before the next save rewrites the file whole. */
export const MAX_JOURNAL_FRACTION = 0.25

/**
 * The size from which a save writes version 5: JOURNAL_THRESHOLD_BYTES, or HVMEM_JOURNAL_THRESHOLD
 * (bytes, a whole number), which only tests set, to keep their snapshots small.
 */
export function journalThreshold(): number {
  const text = process.env.HVMEM_JOURNAL_THRESHOLD
  if (text !== undefined && /^\d{1,15}$/.test(text)) return Number(text)
  return JOURNAL_THRESHOLD_BYTES
}

/**
 * Saves the change to a snapshot opened from a version-5 file by appending one record, if that is
 * how it should be saved (the file still as it was opened, with one link; the snapshot still at
 * least the threshold; the records within MAX_JOURNAL_RECORDS and MAX_JOURNAL_FRACTION of the base):
 * true if it did. The record is written from its 9th byte on, leaving 8 zero bytes where its magic
 * goes (an unfinished append, which loads ignore), fsynced, then the magic is written and fsynced:
 * a load sees the record whole or not at all. An unfinished append left by a killed command is cut
 * away first. An append that fails (ENOSPC) puts the file back as it was, that unfinished append
 * included, and throws.
 */
async function appendChange(file: string, name: string, opened: SnapshotFile, held: HeldLock): Promise<boolean> {
  const journal = opened.journal
  const pages = opened.pages
  if (journal === undefined || pages === undefined) return false
  const record = encodeRecord(opened.machine, pages)
  if (baseBytes(record.pages, opened.machine.registers.length) < journalThreshold()) return false
  if (journal.records + 1 > MAX_JOURNAL_RECORDS || journal.recordBytes + record.length > journal.baseBytes * MAX_JOURNAL_FRACTION) return false
  let fd: number
  try {
    fd = openSync(file, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK)
  } catch (error) {
    throw fsError(error, name)
  }
  try {
    const info = fstatSync(fd)
    // (another link shares the inode: a save replaces the file, as it always has, and so warns)
    if (!info.isFile() || info.nlink !== 1) return false
    if (info.size !== opened.size) throw new HvmemError('io', `${name} changed size while this command ran (another program writing it?); nothing was saved`)
    // An append that fails (a full disk) puts the file back as it was, byte for byte: the records'
    // end, and an unfinished append that it cut away.
    const tail = info.size > journal.end ? readAt(fd, journal.end, info.size - journal.end, name) : undefined
    const sync = record.length + (tail?.length ?? 0) <= SYNC_BYTES
    try {
      if (tail !== undefined) {
        ftruncateSync(fd, journal.end)
        await fsyncFile(fd, sync)
      }
      const [first, ...rest] = record.parts
      await writeAll(fd, [first!.subarray(8), ...rest], journal.end + 8, sync)
      await fsyncFile(fd, sync)
      // Synchronous, so a signal is handled before or after it, never while it is under way.
      writeSync(fd, first!.subarray(0, 8), 0, 8, journal.end)
      held.saved = true
      await fsyncFile(fd, sync)
    } catch (error) {
      held.saved = false
      try {
        ftruncateSync(fd, journal.end)
        if (tail !== undefined) await writeAll(fd, [tail], journal.end, sync)
        await fsyncFile(fd, sync)
      } catch {
        // (what is left past the records' end is an unfinished append, which loads ignore)
      }
      throw error
    }
  } catch (error) {
    throw fsError(error, name)
  } finally {
    closeSync(fd)
  }
  saved.push(name)
  return true
}

/** Writes a new snapshot; an existing file is replaced only with `force` (and must be a snapshot or a regular file). */
export async function createSnapshot(path: string, machine: Machine, force: boolean): Promise<void> {
  checkPath(path)
  if (active !== undefined) throw new HvmemError('input', `cannot create ${path} inside a batch, which works on ${active.path}; create it before the batch`)
  // A dangling symlink names the file it points at: that file is created, the link stays.
  const file = snapshotTarget(path)
  checkRegular(file, path, true)
  await withLock(file, path, true, async (held) => {
    let info: Stats | undefined
    try {
      info = statSync(file)
    } catch (error) {
      if (!isCode(error, 'ENOENT')) throw fsError(error, path)
    }
    if (info !== undefined) {
      if (!info.isFile()) throw new HvmemError('snapshot-invalid', `${path} exists and is not a regular file; choose another --snapshot`)
      if (!force) throw existsError(path)
    }
    stillOurs(held)
    await save(file, path, machine, held)
  })
}

/**
 * The file a snapshot path names, for locking and saving: the path itself, unless its last component
 * is a symbolic link; then the file the link points at, followed to the end (a dangling link gives the
 * path it points at, which a save creates). So `-s link.snap` and `-s real.snap` take the same lock and
 * replace the same file, and the link stays a link. Anything odd (a loop, a missing directory) gives
 * the path back, for the operations that follow to report against the name given.
 */
export function snapshotTarget(path: string): string {
  let current = path
  for (let hops = 0; hops < 40; hops++) {
    let link: Stats
    try {
      link = lstatSync(current)
    } catch {
      return current
    }
    if (!link.isSymbolicLink()) return current
    try {
      return realpathSync(current)
    } catch {
      // dangling: follow it by hand
    }
    try {
      current = resolve(dirname(current), readlinkSync(current))
    } catch {
      return current
    }
  }
  return path
}

/** One name for a file, to tell whether two paths are the same snapshot (symlinks and `..` resolved). */
function canonical(path: string): string {
  const file = snapshotTarget(path)
  try {
    return realpathSync(file)
  } catch {
    return resolve(file)
  }
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
  if (canonical(path) !== active.resolved) throw new HvmemError('input', `cannot use ${path} inside a batch, which works on ${active.path}; run that command outside the batch`)
  return active
}

/** When the event loop last had a turn during a session. */
let lastBreath = 0
let breaths = 0

/** One turn of the event loop (signals and timers run). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * Whether a session has computed for a while without a turn of the event loop: then it takes one
 * (sessionTurn), so that a long batch still keeps its lock fresh and answers SIGINT/SIGTERM/SIGHUP
 * within a fraction of a second (both run from the event loop), at a cost of one clock read in 64
 * calls. Asked once a line of a batch (here, or by the batch itself for a line it runs at once:
 * src/cli/batch.ts), or once for `steps` lines done together (a run of them: MachineCommand.runRepeatedIn).
 */
export function sessionDue(steps = 1): boolean {
  breaths += steps
  if (breaths < 64) return false
  breaths = 0
  return Date.now() - lastBreath >= 50
}

/** The turn of the event loop a session is due. */
export function sessionTurn(): Promise<void> {
  lastBreath = Date.now()
  return nextTurn()
}

/** A session's result, now or after the turn of the event loop it is due. */
function breathe<T>(value: T): Promise<T> {
  return sessionDue() ? sessionTurn().then(() => value) : Promise.resolve(value)
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
  const file = snapshotTarget(path)
  checkRegular(file, path, false)
  return withLock(file, path, false, async (held) => {
    const machine = await openAndDecode(file, path, 'full')
    const session = {path, resolved: canonical(path), machine, changed: false}
    active = session
    lastBreath = Date.now()
    let outcome: {result: T; commit: boolean}
    try {
      outcome = await body(session)
    } finally {
      active = undefined
    }
    const saved = outcome.commit && session.changed
    if (saved) {
      stillOurs(held)
      await save(file, path, machine, held)
    }
    return {result: outcome.result, saved}
  })
}

/** An empty path names nothing (and would resolve to the current directory): bad input. */
/** An existing snapshot that a create would replace; `ways` adds ways out besides --force (", --into to ..."). */
function existsError(path: string, ways = ''): HvmemError {
  return new HvmemError('snapshot-exists', `${path} already exists; pass --force to replace it, ${ways}or choose another --snapshot`)
}

/**
 * For a command that creates a snapshot after slow work (reading an image, or a guest's RAM):
 * refuses now what createSnapshot would refuse then (it checks again, under the lock): a path that
 * names no file, or an existing file without `force`. `ways` as for existsError.
 */
export function refuseExistingSnapshot(path: string, force: boolean, ways = ''): void {
  checkPath(path)
  if (force) return
  let existing: Stats | undefined
  try {
    existing = statSync(path, {throwIfNoEntry: false})
  } catch {
    existing = undefined // createSnapshot says what is wrong with the path
  }
  if (existing?.isFile()) throw existsError(path, ways)
}

/** Refuses a snapshot path that names no file: empty, or a directory's name. */
export function checkPath(path: string): void {
  if (path === '') throw new HvmemError('input', 'the snapshot path is empty; pass --snapshot FILE or set HVMEM_SNAPSHOT to a file name')
  // (a directory's name: no file to load, and its lock would be made beside the directory)
  if (path.endsWith('/')) throw new HvmemError('input', `the snapshot path ${JSON.stringify(path)} ends in "/", which names a directory; name a file, as ${JSON.stringify(`${path}hvmem.snap`)}`)
}

/** Refuses a path that is not a regular file (or, with `mayBeMissing`, nothing at all); errors name it `name`. */
function checkRegular(path: string, name: string, mayBeMissing: boolean): void {
  let info: Stats
  try {
    info = statSync(path)
  } catch (error) {
    if (mayBeMissing && isCode(error, 'ENOENT')) return
    throw fsError(error, name)
  }
  if (!info.isFile())
    throw new HvmemError('snapshot-invalid', mayBeMissing ? `${name} exists and is not a regular file; choose another --snapshot` : `${name} is not a regular file; name a snapshot file`)
}

async function openAndDecode(path: string, name: string, mode: DecodeMode): Promise<Machine> {
  return (await openDecoded(path, name, mode)).machine
}

/** With `lazyJournal`, a version-5 file is decoded 'lazy' whatever `mode` says (a change appended to it reads only the pages it uses). */
async function openDecoded(path: string, name: string, mode: DecodeMode, lazyJournal = false): Promise<SnapshotFile> {
  // Never open a device, FIFO or socket: opening some has effects, or blocks.
  checkRegular(path, name, false)
  let fd: number
  try {
    // It outlives this function when pages are read on demand (see openFiles).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    throw fsError(error, name)
  }
  let keep = false
  try {
    const opened = fstatSync(fd)
    // (replaced by something else between the check and the open)
    if (!opened.isFile()) throw new HvmemError('snapshot-invalid', `${name} is not a regular file; name a snapshot file`)
    const source = fileSource(fd, opened.size, name)
    // The sizes the header declares, before decode reads past it.
    const head = source.read(0, Math.min(HEADER_BYTES, opened.size))
    checkDeclaredSize(head, opened.size, name)
    const how = lazyJournal && declaredSnapshotSize(head)?.version === JOURNAL_FORMAT_VERSION ? 'lazy' : mode
    // A full load (a command that changes the snapshot, under its lock) lets the event loop run
    // between chunks, so a signal is answered at once however large the file.
    const decoded = how === 'full' ? await decodeSourcePaced(source, name, how, nextTurn) : decodeSource(source, name, how)
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
 * written in chunks, fsynced, renamed over `file` (the snapshot, symlinks resolved: see
 * snapshotTarget), then the directory fsynced. Called under the lock, so temp files of this snapshot
 * left by a killed command are removed first. Errors name the snapshot `name`.
 */
async function save(file: string, name: string, machine: Machine, held: HeldLock): Promise<void> {
  const dir = dirname(file)
  removeStaleTemps(dir, basename(file))
  const existing = statIfAny(file)
  if (existing !== undefined) refuseWriteProtected(file, name)
  // The rename gives `file` a new inode: other hard links to the old one keep the old snapshot.
  if (existing !== undefined && existing.nlink > 1) {
    const others = existing.nlink === 2 ? 'another hard link, which keeps' : `${existing.nlink - 1} other hard links, which keep`
    warn(`${name} has ${others} the snapshot as it was: a save replaces the file (use a symbolic link to share a snapshot under two names)`)
  }
  try {
    await replaceFile(
      file,
      existing,
      async (fd) => {
        let bytes = 0
        for (const batch of snapshotBatches(machine, {journalFrom: journalThreshold()})) {
          for (const part of batch) bytes += part.length
          await writeAll(fd, batch, undefined, bytes <= SYNC_BYTES)
        }
        return bytes
      },
      {
        renamed: () => {
          held.saved = true
        },
      },
    )
  } catch (error) {
    throw fsError(error, name)
  }
  saved.push(name)
}

/**
 * Refuses to change the snapshot `file` (named `name`) if this user may not write it (access(2),
 * W_OK): a write-protected snapshot (chmod a-w) is never changed, whether its change would be appended
 * in place or the file replaced by a rename (which needs only its directory to be writable). Root
 * may write any file, as the kernel lets it.
 */
function refuseWriteProtected(file: string, name: string): void {
  try {
    accessSync(file, constants.W_OK)
  } catch (error) {
    if (isCode(error, 'EACCES') || isCode(error, 'EPERM'))
      throw new HvmemError('io', `${name} is write-protected (this user may not write it); nothing was saved: make it writable (chmod u+w) to change it, or work on a copy`)
    throw fsError(error, name)
  }
}

/**
 * Temp files being written (a save's or an export's), with what to call the output in a message
 * (undefined for a save, which the lock's message covers). A signal or an exit removes them.
 */
const unfinished = new Map<string, string | undefined>()

/**
 * Writes `target` whole or not at all: `write` fills a new temp file beside it (never an existing
 * file), which is fsynced and renamed over `target` (`beforeRename` may refuse at the last moment),
 * then the directory is fsynced. An existing file is never truncated or written in place; it keeps
 * its permission bits. On an error, SIGINT, SIGTERM or SIGHUP the temp file is removed. File-system
 * errors come back as they are.
 */
async function replaceFile(
  target: string,
  existing: Stats | undefined,
  write: (fd: number) => Promise<number | void>,
  options: {label?: string; beforeRename?: () => void; renamed?: () => void} = {},
): Promise<void> {
  const dir = dirname(target)
  const base = basename(target)
  let temp = ''
  let sync: boolean
  try {
    let fd: number | undefined
    for (let attempt = 0; fd === undefined; attempt++) {
      // Math.random, not crypto: the name only has to differ from other saves' ("wx" refuses an
      // existing file, and a clash is retried), and loading Web Crypto cost every save up to 1 ms.
      temp = join(
        dir,
        `${tempPrefix(base)}.hvmem-tmp.${process.pid}.${Math.floor(Math.random() * 0x1_0000_0000)
          .toString(16)
          .padStart(8, '0')}`,
      )
      unfinished.set(temp, options.label)
      guard()
      try {
        // A new file gets 0666 less the umask, like any new file; a replacement, the old file's mode (below).
        fd = openSync(temp, 'wx', existing === undefined ? 0o666 : 0o600)
      } catch (error) {
        // not ours to remove
        unfinished.delete(temp)
        temp = ''
        if (!isCode(error, 'EEXIST') || attempt >= 4) throw error
      }
    }
    try {
      // (how many bytes `write` wrote, if it says: a small file's fsyncs are synchronous)
      sync = ((await write(fd)) ?? Infinity) <= SYNC_BYTES
      if (existing !== undefined) {
        fchmodSync(fd, existing.mode & 0o7777)
        if (process.getuid?.() === 0) {
          try {
            fchownSync(fd, existing.uid, existing.gid)
          } catch {
            // (best effort, as root)
          }
        }
      }
      await fsyncFile(fd, sync)
    } finally {
      closeSync(fd)
    }
    options.beforeRename?.()
    // Synchronous, so a signal is handled before or after it, never while it is under way.
    renameSync(temp, target)
    unfinished.delete(temp)
    temp = ''
    options.renamed?.()
  } catch (error) {
    if (temp !== '') {
      unfinished.delete(temp)
      removeIfThere(temp)
    }
    throw error
  } finally {
    guard()
  }
  await syncDirectory(dir, sync)
}

/** The snapshots this process has saved, as named: what a command whose output then fails says was kept (src/cli/output.ts). */
const saved: string[] = []

export function savedSnapshots(): readonly string[] {
  return saved
}

/**
 * Writes `chunks` to the file `target`, whole or not at all (see replaceFile: a temp file renamed
 * over it), or, with `device`, straight to a character device such as /dev/null. `label` names the
 * output in a message if a signal stops the write; `beforeRename` may refuse at the last moment.
 * File-system errors (ENOSPC, EACCES, ...) come back as they are, for the caller to name.
 */
export async function writeOutputFile(target: string, chunks: Iterable<Uint8Array>, options: {device: boolean; label: string; beforeRename?: () => void}): Promise<void> {
  if (options.device) {
    // (a device's open may wait: asynchronous, so that a signal is still answered)
    const fd = await openAsync(target, constants.O_WRONLY | constants.O_NOCTTY)
    try {
      for (const chunk of chunks) await writeAll(fd, [chunk])
    } finally {
      closeSync(fd)
    }
    return
  }
  const existing = statIfAny(target)
  await replaceFile(
    target,
    existing,
    async (fd) => {
      for (const chunk of chunks) await writeAll(fd, [chunk])
    },
    {label: options.label, beforeRename: options.beforeRename},
  )
}

/**
 * Writes the buffers in order with vectored writes (at `position` if given, else at the file's
 * offset), going on after a short write; synchronously with `sync` (see SYNC_BYTES).
 */
async function writeAll(fd: number, buffers: Uint8Array[], position?: number, sync = false): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0)
  let at = position
  while (pending.length > 0) {
    let written = sync ? writevSync(fd, pending, at) : (await writevAsync(fd, pending, at)).bytesWritten
    if (at !== undefined) at += written
    while (pending.length > 0 && written >= pending[0]!.length) {
      written -= pending[0]!.length
      pending = pending.slice(1)
    }
    if (written > 0) pending = [pending[0]!.subarray(written), ...pending.slice(1)]
  }
}

/** `length` bytes of the snapshot `name` from `position`. */
function readAt(fd: number, position: number, length: number, name: string): Buffer {
  const out = Buffer.alloc(length)
  for (let done = 0; done < length;) {
    const bytesRead = readSync(fd, out, done, length - done, position + done)
    if (bytesRead === 0) throw new HvmemError('io', `${name} ended at byte ${position + done} while being read, not at ${position + length} (changed by another program?); nothing was saved`)
    done += bytesRead
  }
  return out
}

/** Makes the rename durable (`sync`: synchronously, after a small file); some file systems cannot fsync a directory, which is not an error. */
async function syncDirectory(dir: string, sync: boolean): Promise<void> {
  try {
    const fd = openSync(dir, constants.O_RDONLY)
    try {
      await fsyncFile(fd, sync)
    } finally {
      closeSync(fd)
    }
  } catch {
    // best effort
  }
}

function removeStaleTemps(dir: string, base: string): void {
  const pattern = tempFilePattern(base)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return
  }
  for (const name of names.filter((n) => pattern.test(n))) removeIfThere(join(dir, name))
}

/** Removes the file `path` if it can: one already gone, or that cannot be removed, is left as it is. */
function removeIfThere(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // gone already, or not ours to remove
  }
}

/*
 * The file operations of a save, an append and an export: the ones that wait for the disk (writes,
 * fsync; a device's open) asynchronously, so that a signal is answered while a large snapshot is
 * written; the others (a regular file's open, stat, chmod, truncate, close, a directory listing)
 * synchronously, as they take microseconds. Through fs's callbacks (promisified) rather than
 * fs/promises, which they would load (2-3 ms of every command that changes a snapshot). A save or
 * an append of at most SYNC_BYTES is written and fsynced synchronously: the first asynchronous
 * operation starts libuv's thread pool, 2-3 ms on this VM (docs/performance.md), more than such a
 * write and its fsyncs take; a signal is answered right after them.
 */
const writevAsync = promisify(writev)
const openAsync = promisify(open)
const fsyncAsync = promisify(fsync)
const SYNC_BYTES = 4 << 20

/** fsync, synchronous with `sync` (an operation of at most SYNC_BYTES, see above). */
function fsyncFile(fd: number, sync: boolean): Promise<void> | void {
  if (!sync) return fsyncAsync(fd)
  fsyncSync(fd)
}

/** `path`'s stat, or undefined if there is none (or it cannot be read: the operation that needs it says why). */
function statIfAny(path: string): Stats | undefined {
  try {
    return statSync(path)
  } catch {
    return undefined
  }
}

/*
 * The lock: a `<snapshot>.lock` directory (mkdir is atomic), holding an `owner` file that says which
 * process holds it (pid, that process's start time, host, and a token of its own). Another command
 * finding the lock waits for it; it takes the lock over only if the owner is gone (that pid no longer
 * runs, or runs a process started at another time), or, for a lock that names no owner on this host
 * (made on another machine, or before its owner file was written), if it is untouched for
 * LOCK_STALE_MS (the holder refreshes its mtime). A live command's lock is never taken over, however
 * long it computes. On SIGINT, SIGTERM or SIGHUP the holder removes its lock and temp file, says so,
 * and dies of the signal.
 */

const OWNER_FILE = 'owner'

/** What a lock's owner file holds. */
interface LockOwner {
  pid: number
  /** the process's start time (field 22 of /proc/PID/stat), null where there is no /proc */
  start: string | null
  host: string
  token: string
}

/** A lock this process holds. */
interface HeldLock {
  /** the snapshot, as the user named it */
  readonly name: string
  readonly lockPath: string
  readonly token: string
  /** set once the save has replaced the snapshot (what a signal's message says) */
  saved: boolean
  released: boolean
  readonly refresh: NodeJS.Timeout
}

const heldLocks = new Set<HeldLock>()

/** Test hook: told each time a command finds a live lock and waits for it. */
let lockWaitObserver: ((lockPath: string) => void) | undefined

/** Sets the test hook told when a command waits for a live lock; returns the previous one. */
export function setLockWaitObserver(observer: ((lockPath: string) => void) | undefined): ((lockPath: string) => void) | undefined {
  const previous = lockWaitObserver
  lockWaitObserver = observer
  return previous
}

function processStart(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

let myStart: string | null | undefined

function readOwner(lockPath: string): LockOwner | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(join(lockPath, OWNER_FILE), 'utf8'))
    if (typeof value !== 'object' || value === null) return undefined
    const {pid, start, host, token} = value as Record<string, unknown>
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined
    if ((start !== null && typeof start !== 'string') || typeof host !== 'string' || typeof token !== 'string') return undefined
    return {pid, start, host, token}
  } catch {
    return undefined
  }
}

/** Whether a lock's owner runs: 'unknown' for another host's. */
function ownerState(owner: LockOwner): 'alive' | 'gone' | 'unknown' {
  if (owner.host !== hostname()) return 'unknown'
  try {
    process.kill(owner.pid, 0)
  } catch (error) {
    // EPERM: a process of another user has that pid
    if (isCode(error, 'ESRCH')) return 'gone'
  }
  if (owner.start !== null) {
    const now = processStart(owner.pid)
    if (now !== null && now !== owner.start) return 'gone'
  }
  return 'alive'
}

type LockVerdict = {state: 'gone'} | {state: 'live'} | {state: 'stale'; ino: bigint; why: string}

function inspectLock(lockPath: string): LockVerdict {
  const info = statSync(lockPath, {bigint: true, throwIfNoEntry: false})
  if (info === undefined) return {state: 'gone'}
  const owner = readOwner(lockPath)
  if (owner !== undefined) {
    const state = ownerState(owner)
    if (state === 'alive') return {state: 'live'}
    if (state === 'gone') return {state: 'stale', ino: info.ino, why: `its process ${owner.pid} is gone`}
  }
  const age = Date.now() - Number(info.mtimeMs)
  if (age < LOCK_STALE_MS) return {state: 'live'}
  return {state: 'stale', ino: info.ino, why: `untouched for ${Math.round(age / 1000)} s`}
}

/** Removes the stale lock directory `ino`; false if it is no longer there (another command took it). */
function takeOver(lockPath: string, ino: bigint): boolean {
  const now = statSync(lockPath, {bigint: true, throwIfNoEntry: false})
  if (now === undefined || now.ino !== ino) return false
  try {
    unlinkSync(join(lockPath, OWNER_FILE))
  } catch {
    // none
  }
  try {
    rmdirSync(lockPath)
    return true
  } catch {
    return false
  }
}

/**
 * Runs `body` holding the snapshot's lock (`file` being the snapshot, symlinks resolved; `name` what
 * the user called it). Waits up to LOCK_WAIT_MS for another command's lock, and takes over a stale one
 * (saying so on stderr). `body` should call stillOurs right before saving.
 */
async function withLock<T>(file: string, name: string, creating: boolean, body: (held: HeldLock) => Promise<T>): Promise<T> {
  const held = await acquire(file, name, creating)
  try {
    return await body(held)
  } finally {
    releaseLock(held)
  }
}

/** Throws if another command took the lock over meanwhile: a command that lost its lock saves nothing. */
function stillOurs(held: HeldLock): void {
  if (readOwner(held.lockPath)?.token !== held.token) {
    throw new HvmemError(
      'io',
      `the lock on ${held.name} was taken over by another command while this one ran (it was thought dead); nothing was saved: check the snapshot with "hvmem heap status" and try again`,
    )
  }
}

/** Removes the lock if it is still this command's (never another's that took it over). */
function releaseLock(held: HeldLock): void {
  if (held.released) return
  held.released = true
  clearInterval(held.refresh)
  heldLocks.delete(held)
  guard()
  if (readOwner(held.lockPath)?.token !== held.token) return
  try {
    unlinkSync(join(held.lockPath, OWNER_FILE))
    rmdirSync(held.lockPath)
  } catch {
    // gone already
  }
}

async function acquire(file: string, name: string, creating: boolean): Promise<HeldLock> {
  const lockPath = `${file}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  let delay = 5
  for (;;) {
    try {
      mkdirSync(lockPath)
    } catch (error) {
      if (!isCode(error, 'EEXIST')) throw lockError(error, name, lockPath, creating)
      if (isRegularFile(lockPath)) throw lockFileError(name, lockPath)
      let verdict: LockVerdict
      try {
        verdict = inspectLock(lockPath)
      } catch (inspectError) {
        throw lockError(inspectError, name, lockPath, creating)
      }
      if (verdict.state === 'gone') continue
      if (verdict.state === 'stale' && takeOver(lockPath, verdict.ino)) {
        warn(`took over a stale lock on ${name} left by a command that did not finish (${lockPath}, ${verdict.why})`)
        continue
      }
      lockWaitObserver?.(lockPath)
      if (Date.now() >= deadline)
        throw new HvmemError('io', `${name} is locked by another hvmem command that has not finished in ${LOCK_WAIT_MS / 1000} s; try again, or remove ${lockPath} if no hvmem command is running`)
      await new Promise((resolve) => setTimeout(resolve, delay + Math.random() * delay))
      delay = Math.min(delay * 1.5, 50)
      continue
    }
    myStart ??= processStart(process.pid)
    const token = `${process.pid}.${Math.floor(Math.random() * 0x1_0000_0000).toString(16)}.${Date.now().toString(16)}`
    const owner: LockOwner = {pid: process.pid, start: myStart, host: hostname(), token}
    // Keeps the mtime fresh for whoever cannot check the owner (another host); unref: never keeps the process alive.
    const refresh = setInterval(() => {
      const now = new Date()
      utimes(lockPath, now, now, () => undefined)
    }, LOCK_STALE_MS / 4)
    refresh.unref()
    const held: HeldLock = {name, lockPath, token, saved: false, released: false, refresh}
    // Listen for the stop signals before the owner file shows the lock as this process's: whoever
    // sees it and signals then finds the handler that removes the lock (no signal is handled
    // between here and the return: this is one synchronous stretch).
    heldLocks.add(held)
    guard()
    const ownerPath = join(lockPath, OWNER_FILE)
    let created = false
    try {
      const fd = openSync(ownerPath, 'wx')
      created = true
      try {
        writeFileSync(fd, JSON.stringify(owner))
      } finally {
        closeSync(fd)
      }
    } catch (error) {
      held.released = true
      clearInterval(refresh)
      heldLocks.delete(held)
      guard()
      // (a full disk: the owner file was made but not written; it goes first, or the directory stays
      // and the next command waits LOCK_STALE_MS for a lock nobody holds)
      try {
        if (created) unlinkSync(ownerPath)
        rmdirSync(lockPath)
      } catch {
        // leave it
      }
      throw lockError(error, name, lockPath, creating)
    }
    return held
  }
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
let guarding = false

/** Temp directories (the spool of `snapshot import -`) that a stop signal or an exit removes, whole. */
const tempDirectories = new Set<string>()

/**
 * Has the temp directory `dir` removed, whole, by a stop signal (SIGINT, SIGTERM, SIGHUP: the command
 * then dies of it, as while it holds a lock) or an exit before the function returned is called; that
 * function removes it at once, for its owner to call when done with it.
 */
export function removeOnStop(dir: string): () => void {
  tempDirectories.add(dir)
  guard()
  return () => {
    rmSync(dir, {recursive: true, force: true})
    tempDirectories.delete(dir)
    guard()
  }
}

/** Listens for the stop signals and exit exactly while a lock is held, a temp file is being written or a temp directory is kept. */
function guard(): void {
  const want = heldLocks.size > 0 || unfinished.size > 0 || tempDirectories.size > 0
  if (want === guarding) return
  guarding = want
  for (const signal of STOP_SIGNALS) {
    if (want) process.on(signal, onStopSignal)
    else process.removeListener(signal, onStopSignal)
  }
  if (want) process.on('exit', cleanUp)
  else process.removeListener('exit', cleanUp)
}

/** Removes the temp files being written and the temp directories kept, and releases the locks held (synchronously: on exit too). */
function cleanUp(): void {
  for (const temp of unfinished.keys()) removeIfThere(temp)
  unfinished.clear()
  for (const dir of tempDirectories) {
    try {
      rmSync(dir, {recursive: true, force: true})
    } catch {
      // cannot be removed
    }
  }
  tempDirectories.clear()
  for (const held of [...heldLocks]) releaseLock(held)
  guard()
}

/**
 * SIGINT, SIGTERM or SIGHUP while a lock is held, a file written or a temp directory kept: remove the
 * temp file, the temp directory and the lock, say in one line what became of the snapshot, and die
 * of the signal (the shell sees 128+N).
 */
function onStopSignal(signal: NodeJS.Signals): void {
  const locks = [...heldLocks]
  const outputs = [...unfinished.values()].filter((label): label is string => label !== undefined)
  const said = [...locks.map((held) => (held.saved ? `the change to ${held.name} was saved` : `${held.name} was not changed`)), ...outputs.map((label) => `${label} was not written`)]
  cleanUp()
  warn(`stopped by ${signal}${said.length > 0 ? `; ${said.join('; ')}` : ''}`)
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  process.exit(128 + (osConstants.signals[signal] ?? 0))
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
    return new HvmemError(
      'io',
      `cannot lock ${path}: the directory ${dir} is not writable (${(error as {code: string}).code}); hvmem creates ${basename(lockPath)} and a temp file next to the snapshot`,
    )
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
  if (isCode(error, 'EFBIG'))
    return new HvmemError('io', `${path} would be larger than the file-size limit (ulimit -f) or its file system allows (EFBIG); the snapshot was not changed: raise the limit, or save it elsewhere`)
  if (error instanceof Error) return new HvmemError('io', `cannot access ${path}: ${error.message}`)
  return error
}
