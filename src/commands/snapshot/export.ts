import {type Stats, lstatSync, readlinkSync, statSync} from 'node:fs'
import {dirname} from 'node:path'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {textArg, u64Flag} from '../../cli/flags.js'
import {stdoutError, stdoutIsTerminal, writeStdout} from '../../cli/output.js'
import {OutputSink, drive} from '../../cli/sink.js'
import {HvmemError} from '../../core/errors.js'
import type {Machine} from '../../core/machine.js'
import {registersFor} from '../../core/registers.js'
import {type TableImage, buildTableImage, misalignedTable, tableSpan} from '../../core/table-image.js'
import {renderAsm, renderC} from '../../core/table-source.js'
import {hex} from '../../core/u64.js'
import {loadSnapshot, snapshotTarget, writeOutputFile} from '../../snapshot/store.js'
import {registersJson} from '../../cli/json.js'

export interface ExportJson {
  file: string
  format: 'asm' | 'c' | 'bin'
  from: string
  to: string
  /** where the image is placed (table pointers rewritten for it): from unless --base */
  base: string
  size: number
  /** the tables in the image (null for a plain raw image of a range) */
  tables: number | null
  /** the QEMU option that loads the image at its physical address */
  qemuLoader: string
  /** the registers that install the tables, by name (null without a mapper) */
  registers: Record<string, string> | null
}

/** Bytes written per chunk, so a large export never holds the whole range in memory. */
const CHUNK = 1 << 20

export default class SnapshotExport extends HvmemCommand {
  static override summary = "Write the mapper's tables as GNU assembly, a C header or a raw image, or a physical range as a raw image for QEMU's loader."
  static override description = `--format bin (or --raw FILE) writes the bytes of a physical range (default: the heap) as a raw image; untouched memory is written as zeros. Load it with -device loader,file=FILE,addr=FROM,force-raw=on and the registers "hvmem regs" shows.

--format asm writes the mapper's tables as GNU assembly for aarch64: a section .rodata.hvmem_tables with a symbol for each table, every table pointer a relocation (symbol + attributes) so the link address decides where they go, the registers as .equs and a routine, hvmem_install_tables, that installs them. --format c writes a header with the same words as a static const uint64_t array aligned to the tables and the registers as #defines. Both take the span of memory that holds the tables unless --from/--to say otherwise.

--base ADDR places the image at ADDR instead of where the tables were built: every table pointer (not a leaf's output address) and the root in VTTBR_EL2/TTBR0_EL2 are rewritten for it. FILE - (or --raw -) writes to standard output (a raw image never to a terminal; not with --json) and what is said of it to stderr.

The file is written to a temp file beside FILE and renamed over it once complete: an existing FILE is replaced whole or not at all, and only with --force (also to write through a symbolic link). The snapshot itself, under any name, is refused; so are directories, FIFOs and sockets. A character device such as /dev/null is written directly.`
  static override examples = [
    '<%= config.bin %> snapshot export --raw tables.bin',
    '<%= config.bin %> snapshot export --raw low.bin --from 0x4000_0000 --to 0x4100_0000',
    '<%= config.bin %> snapshot export tables.S --format asm',
    '<%= config.bin %> snapshot export tables.h --format c --base 0x8000_0000',
  ]

  static override args = {
    file: textArg({description: 'File to write (- for stdout).'}),
  }

  static override flags = {
    format: Flags.option({options: ['asm', 'c', 'bin'] as const, summary: 'What to write (default bin).'})(),
    raw: Flags.string({summary: 'File to write the raw image to, or - for standard output (the same as FILE --format bin).'}),
    from: u64Flag({summary: 'First physical address (default: heap start for bin, the first table for asm and c).'}),
    to: u64Flag({summary: 'End of the range, exclusive (default: heap end for bin, the end of the last table for asm and c).'}),
    base: u64Flag({summary: 'Physical address to place the image at: table pointers are rewritten for it.'}),
    force: Flags.boolean({summary: 'Replace an existing file (or the file a symbolic link points at).', default: false}),
  }

  async run(): Promise<ExportJson> {
    const {args, flags} = await this.parse(SnapshotExport)
    if (flags.raw !== undefined && args.file !== undefined) throw new HvmemError('input', `both FILE (${args.file}) and --raw (${flags.raw}) name the output; pass one`)
    if (flags.raw !== undefined && flags.format !== undefined && flags.format !== 'bin')
      throw new HvmemError('input', `--raw writes a raw image, not --format ${flags.format}; pass FILE --format ${flags.format}`)
    const file = flags.raw ?? args.file
    const label = flags.raw !== undefined ? '--raw' : 'FILE'
    if (file === undefined) throw new HvmemError('input', 'no output file; pass FILE (- for stdout) with --format asm|c|bin, or --raw FILE')
    if (file === '') throw new HvmemError('input', label === '--raw' ? '--raw is empty; pass the file to write the image to' : 'FILE is empty; pass the file to write (- for stdout)')
    const format = flags.format ?? 'bin'
    const stdout = file === '-'
    if (stdout && this.jsonEnabled())
      throw new HvmemError('input', `${label} - writes the ${format === 'bin' ? 'image' : 'export'} to standard output, which --json needs for its document; write it to a file with --json`)
    if (stdout && format === 'bin' && this.batch === undefined && stdoutIsTerminal())
      throw new HvmemError('input', `${label} - would write the binary image to the terminal; redirect standard output to a file or a pipe`)
    const machine = await loadSnapshot(flags.snapshot)
    const mapper = machine.mapper
    if (mapper === undefined && (format !== 'bin' || flags.base !== undefined)) {
      throw new HvmemError('input', `the snapshot has no mapper, so no tables to ${format === 'bin' ? 'relocate' : `write as ${format}`}; map something first (hvmem map region)`)
    }

    let from: bigint
    let to: bigint
    let align = 0n
    if (format === 'bin') {
      const heap = machine.heap.status()
      from = flags.from ?? heap.start
      to = flags.to ?? heap.end
    } else {
      const span = tableSpan(machine.memory, mapper!.geometry, mapper!.root)
      from = flags.from ?? span.from
      to = flags.to ?? span.to
      align = span.align
    }
    if (to <= from) throw new HvmemError('input', `--to ${hex(to)} must be above --from ${hex(from)}`)
    machine.memory.checkRange(from, to - from)
    let image: TableImage | undefined
    if (mapper !== undefined && (format !== 'bin' || flags.base !== undefined)) {
      image = buildTableImage(machine.memory, mapper.geometry, mapper.root, from, to, flags.base ?? from)
      // the section (or array) is aligned to `align`: each table must sit at an offset aligned to what it needs
      const bad = format === 'bin' ? undefined : misalignedTable(image, mapper.geometry)
      if (bad !== undefined) {
        const {table: t, needs} = bad
        throw new HvmemError(
          'input',
          `the L${t.level} table at ${hex(t.address)} is ${hex(BigInt(t.offset))} bytes from --from ${hex(from)}, not a multiple of its alignment ${hex(needs)}; pass a --from aligned to ${hex(align)}`,
        )
      }
    }
    const base = image?.base ?? from
    const registers = mapper === undefined ? null : registersFor(mapper.state.regime, image?.root ?? mapper.root, mapper.state.vmid, mapper.geometry)
    const output: () => Iterable<Uint8Array> = () => {
      if (image === undefined) return chunks(machine, from, to)
      if (format === 'bin') return [image.bytes]
      const sourceOptions = {
        regime: mapper!.state.regime,
        geometry: mapper!.geometry,
        registers: registers!,
        align,
        command: `hvmem snapshot export --format ${format}${flags.base === undefined ? '' : ` --base ${hex(flags.base)}`}`,
      }
      return [Buffer.from(format === 'asm' ? renderAsm(image, sourceOptions) : renderC(image, sourceOptions), 'utf8')]
    }

    if (stdout) {
      await this.toStdout(output(), format)
    } else {
      const snapshot = statSync(flags.snapshot)
      const target = exportTarget(file, label, flags.snapshot, snapshot, flags.force)
      try {
        await writeOutputFile(target.path, output(), {
          device: target.device,
          label: file,
          // checked again right before the rename: the image never replaces the snapshot
          beforeRename: () => refuseSnapshot(statSync(target.path, {throwIfNoEntry: false}), file, label, flags.snapshot, snapshot),
        })
      } catch (error) {
        throw writeError(error, file, target)
      }
    }
    const qemuLoader = `-device loader,file=${file},addr=${hex(base)},force-raw=on`
    const registerMap = registers === null ? null : registersJson(registers)
    // with FILE - the summary goes to stderr: stdout holds the export
    const say = (line: string): void => {
      if (stdout) process.stderr.write(`${line}\n`)
      else this.log(line)
    }
    if (!stdout || (!this.jsonEnabled() && stdoutError() === undefined)) {
      say(
        `Wrote ${format === 'bin' ? `${to - from} bytes of ${hex(from)}-${hex(to)}` : `${image!.tables.length} table(s) from ${hex(from)}-${hex(to)} as ${format}`}${base === from ? '' : ` placed at ${hex(base)}`} to ${stdout ? 'standard output' : file}`,
      )
      if (format === 'bin') say(`QEMU: ${qemuLoader}`)
      if (registerMap !== null)
        say(
          `Registers: ${Object.entries(registerMap)
            .map(([n, v]) => `${n}=${v}`)
            .join(' ')}`,
        )
    }
    return {file, format, from: hex(from), to: hex(to), base: hex(base), size: Number(to - from), tables: image === undefined ? null : image.tables.length, qemuLoader, registers: registerMap}
  }

  /** FILE -: the bytes to stdout, or a batch's output (text only). */
  private async toStdout(parts: Iterable<Uint8Array>, format: string): Promise<void> {
    const batch = this.batch
    if (batch !== undefined && format === 'bin') throw new HvmemError('input', "a raw image cannot go to a batch's output; write it to a file")
    const sink = new OutputSink(batch === undefined ? undefined : {lines: (text) => batch.log(text)})
    for (const part of parts) {
      if (batch !== undefined) sink.text(Buffer.from(part).toString('utf8'))
      else {
        // a reader that went away ends the export (src/cli/output.ts reports it at exit: quietly for EPIPE)
        if (stdoutError() !== undefined) break
        sink.flush()
        if (!writeStdout(part)) await sink.caughtUp()
      }
    }
    await drive(sink, () => true)
    sink.flush()
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
function refuseSnapshot(info: Stats | undefined, raw: string, label: string, snapshotName: string, snapshot: Stats): void {
  if (info !== undefined && info.dev === snapshot.dev && info.ino === snapshot.ino) {
    throw new HvmemError('input', `${label === '--raw' ? '--raw ' : ''}${raw} is the snapshot ${snapshotName} itself (the same file); write the image to another file`)
  }
}

/** Where the image goes, or why it may not (see the command's description). */
function exportTarget(raw: string, label: string, snapshotName: string, snapshot: Stats, force: boolean): ExportTarget {
  const name = label === '--raw' ? `--raw ${raw}` : raw
  let link: Stats | undefined
  let info: Stats | undefined
  try {
    link = lstatSync(raw, {throwIfNoEntry: false})
    info = link?.isSymbolicLink() ? statSync(raw, {throwIfNoEntry: false}) : link
  } catch (error) {
    throw writeError(error, raw, {path: raw, device: false})
  }
  refuseSnapshot(info, raw, label, snapshotName, snapshot)
  if (info?.isDirectory()) throw new HvmemError('input', `${name} is a directory; pass the name of the image file to write`)
  if (info?.isCharacterDevice()) return {path: raw, device: true}
  if (info !== undefined && !info.isFile()) throw new HvmemError('input', `${name} is not a regular file (a FIFO, socket or block device); pass the name of the image file to write`)
  if (link?.isSymbolicLink() && !force) {
    throw new HvmemError('snapshot-exists', `${name} is a symbolic link (to ${readlinkSync(raw)}); pass --force to replace the file it points at, or choose another file`)
  }
  if (info !== undefined && !force) throw new HvmemError('snapshot-exists', `${name} already exists; pass --force to replace it, or choose another file`)
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
      return new HvmemError(
        'io',
        target.device
          ? `cannot write ${raw}: no space left on the device (${code(error)})`
          : `cannot write ${raw}: the file system holding ${dirname(target.path)} is full (${code(error)})${left}; free some space or write elsewhere`,
      )
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
