import {readFile} from 'node:fs/promises'
import {text as readStream} from 'node:stream/consumers'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../cli/base.js'
import {textArg} from '../cli/flags.js'
import {BatchRunner, BufferedOutput} from '../cli/batch.js'
import {quote} from '../cli/numbers.js'
import {splitScript} from '../cli/words.js'
import {HvmemError} from '../core/errors.js'
import {withSnapshotSession} from '../snapshot/store.js'

export default class Batch extends HvmemCommand {
  static override summary = 'Run many hvmem commands, one a line, in one process: one lock, one load, one atomic save at the end.'
  static override description = `Each line of FILE (or of standard input, for - or no FILE) is an hvmem command as you would type it, without or with "hvmem" in front: the same words, flags and numbers, split as a POSIX shell splits simple words (quotes and backslashes, no expansion), with # comments and blank lines ignored. Every line works on the batch's snapshot, which is locked once, loaded once and saved once, atomically, at the end, and only if a line changed it.

All or nothing: the first failing line stops the batch, nothing is saved, and the exit code is that line's. With --keep-going, failing lines are reported (each undone whole) and the rest run; the changes of the lines that succeeded are saved, and the exit code is the first failure's.

Output: each line's own output, in order (--verbose adds a "# line N: ..." header before each); with --json, one JSON object a line, {"line", "command", "result"} or {"line", "command", "text", "error"}, then {"summary": ...}.

Not inside a batch: batch, heap init, the snapshot commands (export, import, diff, ...), and other plugins' commands (help, autocomplete).`

  static override examples = [
    '<%= config.bin %> batch setup.hvmem',
    'seq 10000 | sed "s/.*/alloc page/" | <%= config.bin %> batch',
    "printf 'map region 0x4000_0000 1G\\nmap region 0x0900_0000 2M --attr device\\n' | <%= config.bin %> batch --json",
    '<%= config.bin %> batch --keep-going --verbose script.hvmem',
  ]

  static override args = {
    file: textArg({description: 'File of commands, one a line; - or nothing for standard input.', default: '-'}),
  }

  static override flags = {
    'keep-going': Flags.boolean({char: 'k', summary: 'Go on after a failing line, and save what the other lines did.', default: false}),
    verbose: Flags.boolean({char: 'v', summary: 'Text output: a "# line N: ..." header before each line\'s output, and a summary at the end.', default: false}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Batch)
    const {lines, errors} = splitScript(await readScript(args.file))
    const first = errors[0]
    if (first !== undefined) {
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more line(s) that cannot be split)` : ''
      throw new HvmemError('input', `line ${first.line} ${quote(first.text)}: ${first.message}${more}; nothing was run`)
    }
    const out = new BufferedOutput()
    const runner = new BatchRunner(this.config, {snapshot: flags.snapshot, json: this.jsonEnabled(), keepGoing: flags['keep-going'], verbose: flags.verbose}, out)
    let saved: boolean
    try {
      ;({saved} = await withSnapshotSession(flags.snapshot, async (session) => {
        await runner.runAll(lines, session)
        return {result: undefined, commit: runner.failed === 0 || flags['keep-going']}
      }))
    } catch (error) {
      // The batch itself failed (the snapshot, its lock, the save): what the lines printed, then the error.
      out.flush()
      throw error
    }
    runner.finish(lines.length, saved)
    out.flush()
    if (runner.exitCode !== 0) process.exitCode = runner.exitCode
  }

  /** JSON lines: the batch's own error, too, is one line. */
  override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json)}\n`)
  }
}

/** The script: FILE, or standard input for "-". */
async function readScript(file: string): Promise<string> {
  if (file === '-') return readStream(process.stdin)
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as {code?: unknown}).code
    if (code === 'ENOENT') throw new HvmemError('input', `cannot read the batch file ${quote(file)}: there is no such file`)
    if (code === 'EISDIR') throw new HvmemError('input', `cannot read the batch file ${quote(file)}: it is a directory`)
    throw new HvmemError('io', `cannot read the batch file ${quote(file)}: ${error instanceof Error ? error.message : String(error)}`)
  }
}
