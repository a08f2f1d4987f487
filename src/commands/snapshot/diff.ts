import {fstatSync} from 'node:fs'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {textArg} from '../../cli/flags.js'
import {type SnapshotDiffJson, diffJson, diffLines} from '../../cli/diff-render.js'
import {progress} from '../../cli/progress.js'
import {type ByteRange, type DiffSide, bytesAt, diffMachines} from '../../core/diff.js'
import {memoryPages} from '../../core/page-list.js'
import {HvmemError} from '../../core/errors.js'
import {MAX_READ_BYTES, declaredSnapshotSize} from '../../snapshot/declared-size.js'
import {HEADER_BYTES, MAGIC} from '../../snapshot/format.js'
import {type SnapshotFile, loadSnapshotBytes, openSnapshotFile} from '../../snapshot/store.js'

/** diff(1)'s exit codes: 0 the same, 1 different, 2 trouble. */
const DIFF_EXIT = {same: 0, different: 1, trouble: 2} as const

/** What `-` names in messages. */
const STDIN_NAME = 'standard input'

export default class SnapshotDiff extends HvmemCommand {
  static override summary = 'Compare two snapshots: layout, heap, mapper, mappings, page tables and other memory.'
  static override description = `Exit codes as diff(1): 0 the same, 1 different, 2 trouble (any error: a missing or damaged file, a bad flag). Mappings are compared per input address, so a block split into pages that map the same is no change. Memory outside the translation tables is compared byte for byte and shown as ranges of changed bytes (runs fewer than 8 equal bytes apart are one range); --bytes adds a hexdump of each range's old and new bytes. A or B may be "-" for standard input (not both); --snapshot is not used. Nothing is locked or written.`
  static override examples = [
    '<%= config.bin %> snapshot diff before.snap after.snap',
    '<%= config.bin %> snapshot diff before.snap after.snap --bytes',
    'git show HEAD:vm.snap | <%= config.bin %> snapshot diff - vm.snap --json',
  ]

  static override args = {
    a: textArg({description: 'The old snapshot file, or - for standard input.', required: true}),
    b: textArg({description: 'The new snapshot file, or - for standard input.', required: true}),
  }

  static override flags = {
    bytes: Flags.boolean({summary: 'Also show the old and new bytes of each changed memory range (a hexdump; hex digits under --json).'}),
  }

  protected override errorExitCode(): number {
    return DIFF_EXIT.trouble
  }

  /** Output lost (a full disk, /dev/full): trouble, whether it found the snapshots the same or different. */
  protected override stdoutFailureExitCode(): number {
    return DIFF_EXIT.trouble
  }

  async run(): Promise<SnapshotDiffJson | void> {
    const {args, flags} = await this.parse(SnapshotDiff)
    if (args.a === '-' && args.b === '-') throw new HvmemError('input', 'A and B cannot both be "-": standard input holds one snapshot; name the other file')
    const fileA = await open(args.a)
    const fileB = await open(args.b)
    const sideA = side(fileA)
    const sideB = side(fileB)
    const bar = progress('Comparing', sideA.pages.count + sideB.pages.count, {json: this.jsonEnabled()})
    let result
    try {
      result = diffMachines(sideA, sideB, {onProgress: (done) => bar.update(done)})
    } finally {
      bar.finish()
    }
    const names = {a: args.a, b: args.b}
    const bytes = flags.bytes ? (r: ByteRange) => ({old: bytesAt(sideA.pages, r.address, r.length), new: bytesAt(sideB.pages, r.address, r.length)}) : undefined
    process.exitCode = result.same ? DIFF_EXIT.same : DIFF_EXIT.different
    if (this.jsonEnabled()) return diffJson(result, names, bytes)
    // (no document without --json, as `snapshot show`: thousands of changed ranges make it cost)
    this.log(diffLines(result, names, bytes).join('\n'))
  }
}

async function open(path: string): Promise<SnapshotFile> {
  if (path === '') throw new HvmemError('input', 'a snapshot file name is empty; name two snapshot files (or - for standard input)')
  if (path !== '-') return openSnapshotFile(path)
  return loadSnapshotBytes(await readStdinSnapshot(), STDIN_NAME)
}

/**
 * A snapshot's bytes from standard input, read no further than its header says: the header first
 * (wrong magic stops the read at once: `yes | hvmem snapshot diff -`, `< /dev/zero`), then the size
 * it declares (at most MAX_READ_BYTES), and not a chunk past it (more is an error).
 */
async function readStdinSnapshot(): Promise<Buffer> {
  let info
  try {
    info = fstatSync(0)
  } catch {
    info = undefined
  }
  if (info?.isDirectory() === true) throw new HvmemError('input', `${STDIN_NAME} is a directory; redirect a snapshot file to it, or name the file instead of -`)
  const chunks: Buffer[] = []
  let got = 0
  let declared: bigint | undefined
  try {
    for await (const chunk of process.stdin) {
      chunks.push(chunk as Buffer)
      got += (chunk as Buffer).length
      if (declared === undefined) {
        const head = Buffer.concat(chunks).subarray(0, HEADER_BYTES)
        // not a snapshot: what was read is enough for the error
        if (!MAGIC.subarray(0, Math.min(head.length, MAGIC.length)).equals(head.subarray(0, MAGIC.length))) break
        if (head.length < HEADER_BYTES) continue
        const facts = declaredSnapshotSize(head)
        // a version hvmem does not read: the header is enough for the error
        if (facts === undefined) break
        // (version 5: records may follow the base; at most what hvmem reads at once)
        const size = facts.version === 5 ? BigInt(MAX_READ_BYTES) : facts.size
        if (size > BigInt(MAX_READ_BYTES)) {
          throw new HvmemError(
            'snapshot-invalid',
            `${STDIN_NAME}: its header declares a snapshot of ${size} bytes, more than hvmem reads from standard input (${MAX_READ_BYTES}); save it to a file and name the file`,
          )
        }
        declared = size
      }
      if (BigInt(got) > declared) {
        throw new HvmemError('snapshot-invalid', `${STDIN_NAME} is not a valid hvmem snapshot: it holds more than the ${declared} bytes its header declares (damaged, or more than one file?)`)
      }
    }
  } catch (error) {
    if (error instanceof HvmemError) throw error
    throw new HvmemError('io', `cannot read ${STDIN_NAME}: ${error instanceof Error ? error.message : String(error)}`)
  }
  return Buffer.concat(chunks)
}

function side(file: SnapshotFile): Required<DiffSide> {
  return {machine: file.machine, pages: file.pages ?? memoryPages(file.machine.memory)}
}
