import {format, inspect} from 'node:util'
import {Command, type Config, Errors, type Interfaces, ux} from '@oclif/core'

import {HvmemError} from '../core/errors.js'
import {EXIT_CODES} from './exit-codes.js'
import {colorFlag, snapshotFlag} from './flags.js'
import {quote, shortWords} from './numbers.js'
import {guardStdout, setStdoutPolicy, stdoutIsTerminal, writeStdout} from './output.js'
import {type ColorMode, setColorMode} from './style.js'
import {closest} from './suggest.js'

export interface ErrorJson {
  error: {kind: string; message: string; exitCode: number}
}

/**
 * Every hvmem command: `--json`, `--snapshot`, and one error policy. An error becomes one line on
 * stderr (or `{"error": ...}` on stdout with --json) and its documented exit code; no stack trace
 * unless HVMEM_DEBUG is set. @oclif/core 4 would otherwise exit 1 under --json: this `catch` sets
 * the code itself.
 */
export abstract class HvmemCommand extends Command {
  static override enableJsonFlag = true
  static override baseFlags = {snapshot: snapshotFlag, color: colorFlag}

  /**
   * Set by `hvmem batch` (src/cli/batch.ts), which calls run() itself: errors then reach the batch
   * as exceptions (this class's `catch` is not involved), and output goes where the hooks say.
   */
  batch: BatchHooks | undefined

  /** A full disk or closed pipe on stdout: one line and exit 9 (src/cli/output.ts), not oclif's stack trace or silence. */
  override async init(): Promise<void> {
    if (this.batch === undefined) {
      guardStdout()
      setStdoutPolicy({
        snapshot: this.ctor.baseFlags !== NO_SNAPSHOT_FLAGS,
        exitCode: (code) => this.stdoutFailureExitCode(code),
      })
    }
    await super.init()
  }

  /** Runs this command as oclif's static Command.run does once it has a configuration (src/cli/direct.ts). */
  start(): Promise<unknown> {
    return this._run()
  }

  override jsonEnabled(): boolean {
    return this.batch === undefined ? super.jsonEnabled() : this.batch.json
  }

  /**
   * A line of output, as oclif's log makes it (a value not a string inspected, then formatted with
   * `args`), written to stdout itself: oclif's goes through console.log, whose first use makes
   * process.stderr to ask about colours (for a pipe that loads net: 3 ms of every start).
   */
  override log(message = '', ...args: unknown[]): void {
    if (this.jsonEnabled()) return
    const text = typeof message !== 'string' ? inspect(message) : message
    // (format() of a lone string returns it as it is: skipped, as the hot path of a batch)
    this.logLine(args.length === 0 ? text : text === '' ? format(...args) : format(text, ...args))
  }

  /** A line of output as it is (log's own, without its formatting or a rest array: a batch's hot path). */
  protected logLine(line: string): void {
    if (this.jsonEnabled()) return
    if (this.batch === undefined) writeStdout(`${line}\n`)
    else this.batch.log(line)
  }

  /** Set by a command that wrote its --json document itself, as it was produced (dump tables): oclif then writes nothing more. */
  protected jsonWritten = false

  /**
   * --json output, as oclif writes it (two-space indented) but without its colouring pass, which
   * tokenizes the text with regular expressions: seconds for a large document (`dump tables --json`
   * of 262,144 entries). oclif colours JSON only with a user theme, and then only for a terminal.
   */
  override logJson(json: unknown): void {
    if (this.jsonWritten) return
    const theme = this.config.theme?.json
    const text = theme !== undefined && stdoutIsTerminal() ? ux.colorizeJson(json, {pretty: true, theme}) : JSON.stringify(json, null, 2)
    if (this.batch === undefined) writeStdout(`${text}\n`)
    else this.batch.log(text)
  }

  // Not async: inside a batch, a line seen before gets its parse back without a new promise.
  protected override parse<F extends Record<string, unknown>, B extends Record<string, unknown>, A extends Record<string, unknown>>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const batch = this.batch
    if (batch === undefined || options === undefined) return this.parseKnown(options, argv)
    // A line whose text was parsed before: that parse (no closure made for a parse not needed).
    if (batch.parsed !== undefined) return batch.parsed as Promise<Interfaces.ParserOutput<F, B, A>>
    return batch.parse(() => this.parseKnown(options, argv))
  }

  /** oclif's parse, after a check that every flag typed exists (with the likely one named if not: `--atr`, did you mean `--attr`). */
  private parseKnown<F extends Record<string, unknown>, B extends Record<string, unknown>, A extends Record<string, unknown>>(
    options: Interfaces.Input<F, B, A> | undefined,
    argv: string[] = this.argv,
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    if (options !== undefined) {
      const defined: Record<string, FlagShape> = {...(options.baseFlags as Record<string, FlagShape> | undefined), ...(options.flags as Record<string, FlagShape> | undefined)}
      if (options.enableJsonFlag ?? this.ctor.enableJsonFlag) defined.json = {type: 'boolean'}
      const error = unknownFlags(argv, defined)
      if (error !== undefined) return Promise.reject(error)
    }
    // --color, as the command's own (a batch's lines follow the batch's: their default would undo it)
    if (this.batch !== undefined) return super.parse(options, argv)
    return super.parse(options, argv).then((output) => {
      const mode = (output.flags as {color?: ColorMode}).color
      if (mode !== undefined) setColorMode(mode)
      return output
    })
  }

  protected override async catch(err: Error & {oclif?: {exit?: number}; code?: string}): Promise<void> {
    if (err instanceof Errors.ExitError) throw err
    const {kind, message, exitCode: documented} = describeError(err)
    const exitCode = this.errorExitCode(documented)
    if (process.env.HVMEM_DEBUG) process.stderr.write(`${err.stack ?? String(err)}\n`)
    process.exitCode = exitCode
    if (this.jsonEnabled()) this.logJson({error: {kind, message, exitCode}} satisfies ErrorJson)
    else process.stderr.write(`hvmem: ${message}\n`)
    // Exit here in both modes: returning would let oclif go on (and, with NODE_ENV=development or
    // test, warn on stderr that a command whose parse failed "did not parse its arguments").
    this.exit(exitCode)
  }

  /**
   * The exit code for an error whose documented code is `code`. A command with its own convention
   * overrides it (`snapshot diff` exits 2 on any error, as diff(1) does).
   */
  protected errorExitCode(code: number): number {
    return code
  }

  /**
   * The exit code when standard output failed (src/cli/output.ts) and the run would end with `code`:
   * exit 9 (io) for a run that otherwise succeeded, an error's own code for one that failed anyway.
   * `snapshot diff` overrides it: 2, though it found the snapshots the same (0) or different (1).
   */
  protected stdoutFailureExitCode(code: number): number {
    return code === EXIT_CODES.ok ? this.errorExitCode(EXIT_CODES.io) : code
  }
}

/** The base flags of a command that touches no snapshot (completion, version): --snapshot is accepted, hidden and never read. */
export const NO_SNAPSHOT_FLAGS = {...HvmemCommand.baseFlags, snapshot: {...snapshotFlag, hidden: true}}

/**
 * A message as one printable line: input quoted into it (a path, an argument) may hold newlines or
 * terminal escapes, which are shown escaped (\n, \u001b) instead.
 */
export function oneLine(message: string): string {
  return message.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    if (c === '\n') return '\\n'
    if (c === '\r') return '\\r'
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  })
}

/** What unknownFlags reads of an oclif flag definition. */
interface FlagShape {
  type: 'boolean' | 'option'
  char?: string
  aliases?: string[]
  charAliases?: string[]
  allowNo?: boolean
}

/**
 * The flags in `argv` (before `--`) that `defined` does not have, as the input error oclif would give
 * ("Nonexistent flag: --atr"), with the closest defined flag suggested; undefined if all exist. Run
 * before oclif's parse, which reads the arguments first: `map region --atr rw` would otherwise be told
 * that "rw" is not an IPA. A token after a flag that takes a value is that value, not a flag.
 */
export function unknownFlags(argv: readonly string[], defined: Readonly<Record<string, FlagShape>>): HvmemError | undefined {
  const long = new Map<string, FlagShape>([['help', {type: 'boolean'}]])
  const short = new Map<string, FlagShape>([['h', {type: 'boolean'}]])
  for (const [name, flag] of Object.entries(defined)) {
    long.set(name, flag)
    for (const alias of flag.aliases ?? []) long.set(alias, flag)
    for (const char of [flag.char, ...(flag.charAliases ?? [])]) if (char !== undefined) short.set(char, flag)
  }
  const unknown: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!
    if (token === '--') break
    let flag: FlagShape | undefined
    let inline: boolean
    if (token.startsWith('--')) {
      const name = token.slice(2).split('=')[0]!
      flag = long.get(name) ?? (name.startsWith('no-') && long.get(name.slice(3))?.allowNo === true ? {type: 'boolean'} : undefined)
      inline = token.includes('=')
      if (flag === undefined) unknown.push(`--${name}`)
    } else if (/^-[A-Za-z]/.test(token)) {
      flag = short.get(token[1]!)
      inline = token.length > 2
      if (flag === undefined) unknown.push(token.slice(0, 2))
    } else continue
    if (flag?.type === 'option' && !inline) i++
  }
  if (unknown.length === 0) return undefined
  const names = [...long.keys()].map((n) => `--${n}`)
  const meant = unknown.map((typed) => (typed.startsWith('--') ? closest(typed, names) : undefined)).filter((m) => m !== undefined)
  const hint = meant.length === 0 ? '' : `; did you mean ${meant.join(', ')}?`
  return new HvmemError('input', `Nonexistent flag${unknown.length === 1 ? '' : 's'}: ${unknown.join(', ')}${hint} (see --help)`)
}

/** How `hvmem batch` runs a command in-process (see HvmemCommand.batch). */
export interface BatchHooks {
  /** what jsonEnabled() answers: the batch reports JSON, or the line has its own --json (the command renders nothing) */
  readonly json: boolean
  /** takes each line of output the command logs (without its newline) */
  log(text: string): void
  /** the parse of this command's argv once it has succeeded (what `parse` then returns) */
  readonly parsed: Promise<Interfaces.ParserOutput> | undefined
  /** parses the command's arguments; `parse` is the command's own (oclif's) parse */
  parse<T extends Interfaces.ParserOutput>(parse: () => Promise<T>): Promise<T>
}

/** An error as hvmem reports it: its kind, one-line message and exit code (shared with hvmem batch). */
export function describeError(err: Error & {oclif?: {exit?: number}}): {kind: string; message: string; exitCode: number} {
  const described = describeRaw(err)
  return {...described, message: oneLine(described.message)}
}

function describeRaw(err: Error & {oclif?: {exit?: number}}): {kind: string; message: string; exitCode: number} {
  if (err instanceof HvmemError) return {kind: err.kind, message: err.summary, exitCode: EXIT_CODES[err.kind]}
  if (err instanceof Errors.CLIError && err.oclif?.exit !== undefined && err.oclif.exit !== 1) {
    // oclif's own parse errors (missing argument, unknown flag, bad option): exit 2, made one line.
    const [head = '', ...rest] = err.message
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('See more help'))
    let text: string
    // "Missing 2 required args:" is followed by one "name  description" line per argument.
    if (/^Missing \d+ required args?:$/.test(head)) text = `${head} ${rest.map((line) => line.split(/\s+/)[0]!.toUpperCase()).join(', ')}`
    // "The following error(s) occurred:" is followed by the errors themselves.
    else if (/^The following errors? occurred:$/.test(head) && rest.length > 0) text = rest.join('; ')
    else text = [head, ...rest].join('; ')
    return {kind: 'input', message: `${shortWords(text)} (see --help)`, exitCode: EXIT_CODES.input}
  }
  return {kind: 'internal', message: `internal error: ${err.message} (set HVMEM_DEBUG=1 for a stack trace, and please report it)`, exitCode: EXIT_CODES.internal}
}

/** What an unknown command is told (the command_not_found hook, and a batch line), with the command it was likely meant to be. */
export function unknownCommand(words: string, suggestion?: string): string {
  const meant = suggestion === undefined ? '' : ` (did you mean ${quote(suggestion)}?)`
  return `unknown command ${quote(words)}${meant}; see "hvmem --help" for the commands`
}

/** The command (or topic) closest to the words typed, space-separated, if one is close enough (src/cli/suggest.ts). */
export function suggestCommand(words: readonly string[], config: {readonly commandIDs: readonly string[]; readonly topics: ReadonlyArray<{readonly name: string}>}): string | undefined {
  const names = [...config.commandIDs, ...config.topics.map((t) => t.name)].map((id) => id.replaceAll(':', ' '))
  return closest(words.join(' '), names)
}

/**
 * The command_not_found hook: oclif found no command for `id` (the words typed, joined by ":"). Words
 * after a command that takes no arguments land here too (`alloc page extra`): that is said so. One
 * line on stderr, or under --json (or HVMEM_CONTENT_TYPE=json) the JSON error on stdout, as every
 * other error; exit 2.
 */
export function reportUnknownCommand(id: string, argv: readonly string[], config: Pick<Config, 'commandIDs' | 'findCommand' | 'scopedEnvVar' | 'topics'>): void {
  const words = id.split(':')
  let message = unknownCommand(words.join(' '), suggestCommand(words, config))
  for (let n = words.length - 1; n > 0; n--) {
    if (config.findCommand(words.slice(0, n).join(':')) === undefined) continue
    const extra = words.slice(n)
    message = `"${words.slice(0, n).join(' ')}" takes no arguments: unexpected ${extra.map((w) => quote(w)).join(' ')} (see --help)`
    break
  }
  message = oneLine(message)
  guardStdout()
  const dashes = argv.indexOf('--')
  const flag = argv.indexOf('--json')
  const json = (flag !== -1 && (dashes === -1 || flag < dashes)) || config.scopedEnvVar('CONTENT_TYPE')?.toLowerCase() === 'json'
  const exitCode = EXIT_CODES.input
  if (json) writeStdout(`${JSON.stringify({error: {kind: 'input', message, exitCode}} satisfies ErrorJson, null, 2)}\n`)
  else process.stderr.write(`hvmem: ${message}\n`)
  process.exitCode = exitCode
}
