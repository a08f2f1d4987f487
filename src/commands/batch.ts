import {StringDecoder} from 'node:string_decoder'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../cli/base.js'
import {textArg} from '../cli/flags.js'
import {BatchRunner, BufferedOutput} from '../cli/batch.js'
import {STDIN_NAME, inputChunks} from '../cli/input.js'
import {quote} from '../cli/numbers.js'
import {noteChangesDiscarded, stdoutError, writeStdout} from '../cli/output.js'
import {type ScriptError, type ScriptLine, ScriptSplitter} from '../cli/words.js'
import {HvmemError} from '../core/errors.js'
import {withSnapshotSession} from '../snapshot/store.js'

export default class Batch extends HvmemCommand {
  static override summary = 'Run many hvmem commands, one a line, in one process: one lock, one load, one atomic save at the end.'
  static override description = `Each line of FILE (or of standard input, for - or no FILE) is an hvmem command as you would type it, without or with "hvmem" in front: the same words, flags and numbers, split as a POSIX shell splits simple words (quotes and backslashes, no expansion), with # comments and blank lines ignored. Every line works on the batch's snapshot, which is locked once, loaded once and saved once, atomically, at the end, and only if a line changed it.

All or nothing: the first failing line stops the batch, nothing is saved, and the exit code is that line's. With --keep-going, failing lines are reported (each undone whole) and the rest run; the changes of the lines that succeeded are saved, and the exit code is the first failure's.

Output: each line's own output, in order (--verbose adds a "# line N: ..." header before each); with --json, one JSON object a line, {"line", "command", "result"} or {"line", "command", "text", "error"}, then {"summary": ...}.

Not inside a batch: batch, heap init, the snapshot commands (export, import, diff, ...), completion, version, and other plugins' commands (help, autocomplete).`

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
    const {lines, commands, errors} = await readScript(args.file)
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
        // The lines' output before the save: if standard output cannot take it (a full disk, a
        // closed pipe), nothing is saved, and the exit says so (src/cli/output.ts).
        out.flushStdout()
        const commit = runner.failed === 0 || flags['keep-going']
        if (commit && session.changed && stdoutError() !== undefined) {
          noteChangesDiscarded()
          return {result: undefined, commit: false}
        }
        return {result: undefined, commit}
      }))
    } catch (error) {
      // The batch itself failed (the snapshot, its lock, the save): what the lines printed, then the error.
      out.flush()
      throw error
    }
    runner.finish(commands, saved)
    out.flush()
    if (runner.exitCode !== 0) process.exitCode = runner.exitCode
  }

  /** JSON lines: the batch's own error, too, is one line. */
  override logJson(json: unknown): void {
    writeStdout(`${JSON.stringify(json)}\n`)
  }
}

/** The most lines a batch script may have (docs/scripting.md, "Scripting with batch"): past it the batch is refused, nothing run. */
export const MAX_SCRIPT_LINES = 1_000_000
/** The longest line a batch script may have, in characters. */
export const MAX_LINE_CHARS = 1 << 20

/**
 * The script (FILE, or standard input for "-"), split as it is read: a line at a time, never the
 * whole text in one string, and refused past MAX_SCRIPT_LINES lines or a line of MAX_LINE_CHARS (so
 * `yes 'alloc page' | hvmem batch` stops with one line, in bounded memory).
 */
async function readScript(file: string): Promise<{lines: ScriptLine[]; commands: number; errors: ScriptError[]}> {
  const name = file === '-' ? STDIN_NAME : `the batch file ${quote(file)}`
  const splitter = new ScriptSplitter()
  const tooLong = (): never => {
    throw new HvmemError('input', `${name} has more than ${MAX_SCRIPT_LINES.toLocaleString('en-US')} lines; nothing was run: split the script into several batches`)
  }
  const lineTooLong = (): never => {
    throw new HvmemError('input', `line ${splitter.count + 1} of ${name} is longer than ${MAX_LINE_CHARS.toLocaleString('en-US')} characters (not a script of commands?); nothing was run`)
  }
  const decoder = new StringDecoder('utf8')
  let pending = ''
  const chunks = inputChunks(file, {
    name,
    stdinDirectory: 'cannot read the batch script from standard input: it is a directory; redirect a file of commands, or name it: hvmem batch FILE',
  })
  for await (const chunk of chunks) {
    const text = pending + decoder.write(chunk)
    let start = 0
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      if (end - start > MAX_LINE_CHARS) lineTooLong()
      if (splitter.count >= MAX_SCRIPT_LINES) tooLong()
      splitter.add(text.slice(start, end))
      // the lines after it that repeat it, in one step
      start = splitter.addRepeats(text, end + 1, MAX_SCRIPT_LINES)
    }
    pending = text.slice(start)
    if (pending.length > MAX_LINE_CHARS) lineTooLong()
  }
  pending += decoder.end()
  if (pending !== '') {
    if (pending.length > MAX_LINE_CHARS) lineTooLong()
    if (splitter.count >= MAX_SCRIPT_LINES) tooLong()
    splitter.add(pending)
  }
  return {lines: splitter.lines, commands: splitter.commands, errors: splitter.errors}
}
