/**
 * Loading and saving snapshot files. Reads need no lock: saves replace the file by an atomic rename
 * (write-file-atomic: temp file, fsync, rename), so a reader sees the old file or the new one, whole.
 * Every change runs load -> change -> save under an exclusive inter-process lock (proper-lockfile,
 * a `<snapshot>.lock` directory), so concurrent commands never lose an update. A change that throws
 * saves nothing: the file stays byte-identical.
 */
import {readFile, stat} from 'node:fs/promises'
import {dirname} from 'node:path'
import lockfile from 'proper-lockfile'
import writeFileAtomic from 'write-file-atomic'

import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import {decodeSnapshot, encodeSnapshot} from './format.js'

export const DEFAULT_SNAPSHOT = './hvmem.snap'

/** Lock waits: up to about 30 s in all; a lock whose holder died is taken over after 10 s. */
const LOCK_OPTIONS = {
  realpath: false,
  stale: 10_000,
  retries: {retries: 600, factor: 1.5, minTimeout: 5, maxTimeout: 50, randomize: true},
}

export async function loadSnapshot(path: string): Promise<Machine> {
  let info
  try {
    info = await stat(path)
  } catch (error) {
    throw fsError(error, path)
  }
  if (!info.isFile()) throw new HvmemError('snapshot-invalid', `${path} is not a regular file; pass a snapshot file with --snapshot`)
  let data: Buffer
  try {
    data = await readFile(path)
  } catch (error) {
    throw fsError(error, path)
  }
  return decodeSnapshot(data, path)
}

/** Loads, lets `change` modify the machine, and saves it: all under the lock, and only if `change` returns. */
export async function updateSnapshot<T>(path: string, change: (machine: Machine) => T): Promise<T> {
  return withLock(path, false, async () => {
    const machine = await loadSnapshot(path)
    const result = change(machine)
    await save(path, machine)
    return result
  })
}

/** Writes a new snapshot; an existing file is replaced only with `force` (and must be a snapshot or a regular file). */
export async function createSnapshot(path: string, machine: Machine, force: boolean): Promise<void> {
  await withLock(path, true, async () => {
    const info = await stat(path).catch((error: unknown) => {
      if (isCode(error, 'ENOENT')) return undefined
      throw fsError(error, path)
    })
    if (info !== undefined) {
      if (!info.isFile()) throw new HvmemError('snapshot-invalid', `${path} exists and is not a regular file; choose another --snapshot`)
      if (!force) throw new HvmemError('snapshot-exists', `${path} already exists; pass --force to replace it, or choose another --snapshot`)
    }
    await save(path, machine)
  })
}

async function save(path: string, machine: Machine): Promise<void> {
  try {
    await writeFileAtomic(path, encodeSnapshot(machine), {fsync: true})
  } catch (error) {
    throw fsError(error, path)
  }
}

async function withLock<T>(path: string, creating: boolean, body: () => Promise<T>): Promise<T> {
  let release: () => Promise<void>
  let compromised = false
  try {
    release = await lockfile.lock(path, {
      ...LOCK_OPTIONS,
      // Another process took the lock over, thinking this one dead; reported once the body ends.
      onCompromised: () => {
        compromised = true
      },
    })
  } catch (error) {
    if (isCode(error, 'ELOCKED')) throw new HvmemError('io', `${path} is locked by another hvmem command that has not finished in 30 s; try again, or remove ${path}.lock if no hvmem command is running`)
    if (creating && isCode(error, 'ENOENT')) throw new HvmemError('io', `cannot create ${path}: its directory ${dirname(path)} does not exist`)
    throw fsError(error, path)
  }
  try {
    const result = await body()
    if (compromised) throw new HvmemError('io', `the lock on ${path} was taken over by another command while this one ran; check the snapshot with "hvmem heap status"`)
    return result
  } finally {
    await release().catch(() => undefined)
  }
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as {code?: unknown}).code === code
}

/** Maps a file-system error to a one-line HvmemError; anything else passes through. */
function fsError(error: unknown, path: string): unknown {
  if (error instanceof HvmemError) return error
  if (isCode(error, 'ENOENT')) return new HvmemError('snapshot-missing', `no snapshot at ${path}; create one with "hvmem heap init", or pass --snapshot / set HVMEM_SNAPSHOT`)
  if (isCode(error, 'EISDIR')) return new HvmemError('snapshot-invalid', `${path} is a directory, not a snapshot file`)
  if (isCode(error, 'EACCES') || isCode(error, 'EPERM') || isCode(error, 'EROFS')) return new HvmemError('io', `permission denied for ${path}; check the file and its directory`)
  if (error instanceof Error) return new HvmemError('io', `cannot access ${path}: ${error.message}`)
  return error
}
