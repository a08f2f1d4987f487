import {type Stats, lstatSync, readlinkSync, statSync} from 'node:fs'
import {dirname} from 'node:path'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {u64Flag} from '../../cli/flags.js'
import {HvmemError} from '../../core/errors.js'
import type {Machine} from '../../core/machine.js'
import {hex} from '../../core/u64.js'
import {loadSnapshot, snapshotTarget, writeOutputFile} from '../../snapshot/store.js'

export interface ExportJson {
  file: string
  from: string
  to: string
  size: number
  /** the QEMU option that loads the image at its physical address */
  qemuLoader: string
  /** the registers that install the tables, by name (null without a mapper) */
  registers: Record<string, string> | null
}

/** Bytes written per chunk, so a large export never holds the whole range in memory. */
const CHUNK = 1 << 20

export default class SnapshotExport extends HvmemCommand {
  static override summary = 'Write the bytes of a physical range (default: the heap) as a raw image, ready for QEMU\'s loader.'
  static override description = `Untouched memory is written as zeros. Load the image with -device loader,file=FILE,addr=FROM,force-raw=on and the registers "hvmem regs" shows.

The image is written to a temp file beside FILE and renamed over it once complete: an existing FILE is replaced whole or not at all, and only with --force (also to write through a symbolic link). The snapshot itself, under any name, is refused; so are directories, FIFOs and sockets. A character device such as /dev/null is written directly.`
  static override examples = ['<%= config.bin %> snapshot export --raw tables.bin', '<%= config.bin %> snapshot export --raw low.bin --from 0x4000_0000 --to 0x4100_0000']

  static override flags = {
    raw: Flags.string({summary: 'File to write the raw image to.', required: true}),
    from: u64Flag({summary: 'First physical address (default: heap start).'}),
    to: u64Flag({summary: 'End of the range, exclusive (default: heap end).'}),
    force: Flags.boolean({summary: 'Replace an existing file (or the file a symbolic link points at).', default: false}),
  }

  async run(): Promise<ExportJson> {
    const {flags} = await this.parse(SnapshotExport)
    if (flags.raw === '') throw new HvmemError('input', '--raw is empty; pass the file to write the image to')
    const machine = await loadSnapshot(flags.snapshot)
    const heap = machine.heap.status()
    const from = flags.from ?? heap.start
    const to = flags.to ?? heap.end
    if (to <= from) throw new HvmemError('input', `--to ${hex(to)} must be above --from ${hex(from)}`)
    machine.memory.checkRange(from, to - from)
    const snapshot = statSync(flags.snapshot)
    const target = exportTarget(flags.raw, flags.snapshot, snapshot, flags.force)
    try {
      await writeOutputFile(target.path, chunks(machine, from, to), {
        device: target.device,
        label: flags.raw,
        // checked again right before the rename: the image never replaces the snapshot
        beforeRename: () => refuseSnapshot(statSync(target.path, {throwIfNoEntry: false}), flags.raw, flags.snapshot, snapshot),
      })
    } catch (error) {
      throw writeError(error, flags.raw, target)
    }
    const qemuLoader = `-device loader,file=${flags.raw},addr=${hex(from)},force-raw=on`
    const registers = machine.mapper === undefined ? null : Object.fromEntries(machine.mapper.registers().map((r) => [r.name, hex(r.value)]))
    this.log(`Wrote ${to - from} bytes of ${hex(from)}-${hex(to)} to ${flags.raw}`)
    this.log(`QEMU: ${qemuLoader}`)
    if (registers !== null) this.log(`Registers: ${Object.entries(registers).map(([n, v]) => `${n}=${v}`).join(' ')}`)
    return {file: flags.raw, from: hex(from), to: hex(to), size: Number(to - from), qemuLoader, registers}
  }
}

function* chunks(machine: Machine, from: bigint, to: bigint): Generator<Uint8Array> {
  for (let at = from; at < to; at += BigInt(CHUNK)) {
    const length = Number(to - at < BigInt(CHUNK) ? to - at : BigInt(CHUNK))
    yield machine.memory.readBytes(at, length)
  }
}

interface ExportTarget {
  /** the file to write (a symbolic link followed, with --force) */
  path: string
  /** a character device, written directly */
  device: boolean
}

/** The same file as the snapshot (device and inode: a symlink, a hard link, a /proc/self/cwd path to it): never written. */
function refuseSnapshot(info: Stats | undefined, raw: string, snapshotName: string, snapshot: Stats): void {
  if (info !== undefined && info.dev === snapshot.dev && info.ino === snapshot.ino) {
    throw new HvmemError('input', `--raw ${raw} is the snapshot ${snapshotName} itself (the same file); write the image to another file`)
  }
}

/** Where the image goes, or why it may not (see the command's description). */
function exportTarget(raw: string, snapshotName: string, snapshot: Stats, force: boolean): ExportTarget {
  let link: Stats | undefined
  let info: Stats | undefined
  try {
    link = lstatSync(raw, {throwIfNoEntry: false})
    info = link?.isSymbolicLink() ? statSync(raw, {throwIfNoEntry: false}) : link
  } catch (error) {
    throw writeError(error, raw, {path: raw, device: false})
  }
  refuseSnapshot(info, raw, snapshotName, snapshot)
  if (info?.isDirectory()) throw new HvmemError('input', `--raw ${raw} is a directory; pass the name of the image file to write`)
  if (info?.isCharacterDevice()) return {path: raw, device: true}
  if (info !== undefined && !info.isFile()) throw new HvmemError('input', `--raw ${raw} is not a regular file (a FIFO, socket or block device); pass the name of the image file to write`)
  if (link?.isSymbolicLink() && !force) {
    throw new HvmemError('snapshot-exists', `--raw ${raw} is a symbolic link (to ${readlinkSync(raw)}); pass --force to replace the file it points at, or choose another file`)
  }
  if (info !== undefined && !force) throw new HvmemError('snapshot-exists', `--raw ${raw} already exists; pass --force to replace it, or choose another file`)
  return {path: link?.isSymbolicLink() ? snapshotTarget(raw) : raw, device: false}
}

function code(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? ((error as {code?: unknown}).code as string | undefined) : undefined
}

/** A failed write as one line naming the file (and, for a full disk, the directory whose file system is full). */
function writeError(error: unknown, raw: string, target: ExportTarget): unknown {
  if (error instanceof HvmemError) return error
  const left = target.device ? '' : '; no image was written'
  switch (code(error)) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new HvmemError('io', target.device ? `cannot write ${raw}: no space left on the device (${code(error)})` : `cannot write ${raw}: the file system holding ${dirname(target.path)} is full (${code(error)})${left}; free some space or write elsewhere`)
    case 'EFBIG':
      return new HvmemError('io', `cannot write ${raw}: the image is larger than the file system or the file-size limit allows (EFBIG)${left}`)
    case 'ENOENT':
      return new HvmemError('io', `cannot write ${raw}: its directory ${dirname(target.path)} does not exist`)
    case 'ENOTDIR':
      return new HvmemError('io', `cannot write ${raw}: part of its directory ${dirname(target.path)} is not a directory`)
    case 'ELOOP':
      return new HvmemError('io', `cannot write ${raw}: too many levels of symbolic links`)
    case 'ENAMETOOLONG':
      return new HvmemError('io', `cannot write ${raw}: the name is too long`)
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new HvmemError('io', `cannot write ${raw}: permission denied (${code(error)}); hvmem writes a temp file in ${dirname(target.path)} and renames it`)
    default:
      return new HvmemError('io', `cannot write ${raw}: ${error instanceof Error ? error.message : String(error)}${left}`)
  }
}
