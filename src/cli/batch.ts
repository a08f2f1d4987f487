/**
 * Running many hvmem commands in one process (`hvmem batch`): each line is found among the real
 * oclif commands and run through the command's own class, flags, parser and run(), so its syntax,
 * validation, messages and results are exactly the CLI's; only where it reads and writes the snapshot
 * (the batch's session, src/snapshot/store.ts) and where its output goes (a buffer) differ.
 */
import {resolve} from 'node:path'
import {type Command, Config, type Interfaces} from '@oclif/core'

import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import {type SnapshotSession, sessionDue, sessionTurn} from '../snapshot/store.js'
import {type BatchHooks, HvmemCommand, describeError, suggestCommand, unknownCommand} from './base.js'
import {MachineCommand, type SnapshotParse} from './machine-command.js'
import {quote} from './numbers.js'
import {writeStdout} from './output.js'
import type {ScriptLine} from './words.js'

export interface BatchOptions {
  /** the batch's snapshot: every line works on it */
  snapshot: string
  json: boolean
  /** go on after a failing line (and save what the others did) */
  keepGoing: boolean
  /** text mode: a `# line N: ...` header before each line's output, and a closing summary line */
  verbose: boolean
}

/** --json: one of these a line run, in order, then a SummaryJson (docs/scripting.md, "Scripting with batch"). */
export interface LineResultJson {
  line: number
  command: string
  result: unknown
}

export interface LineErrorJson {
  line: number
  command: string
  /** the line as written */
  text: string
  error: {kind: string; message: string; exitCode: number}
}

export interface SummaryJson {
  summary: {lines: number; ok: number; failed: number; skipped: number; saved: boolean; exitCode: number}
}

/** Why a command cannot run inside a batch, or undefined if it can. */
export function refusal(id: string, pluginName: string | undefined, rootName: string): string | undefined {
  if (id === 'batch') return 'a batch cannot run another batch'
  if (id === 'completion') return 'it prints a shell script and touches no snapshot; run it outside the batch'
  if (id === 'version') return "it prints hvmem's version and touches no snapshot; run it outside the batch"
  if (id === 'heap:init') return 'it creates the snapshot the batch works on; run it before the batch'
  if (id === 'snapshot' || id.startsWith('snapshot:')) return "the snapshot commands work on snapshot files, not on the batch's snapshot in memory; run it before or after the batch"
  if (pluginName !== rootName) return `it is ${pluginName ?? 'a plugin'}'s, not one of hvmem's snapshot commands; run it outside the batch`
  return undefined
}

/**
 * stdout and stderr of a batch, written in large chunks (never once a line). stdout is gathered in a
 * byte buffer rather than as strings: 10,000 lines of strings kept until a write would outlive
 * several garbage collections each, and cost more to collect than to print. The lines commands log
 * (`line`) wait in a short list first and go into the buffer LINES at a time, joined: one string and
 * one copy for all of them, where a copy a line cost more than the rest of an `alloc page` line.
 */
export class BufferedOutput {
  static readonly CHUNK = 1 << 16
  static readonly LINES = 1024
  private buffer = Buffer.allocUnsafe(BufferedOutput.CHUNK)
  private used = 0
  /** lines (without their newlines) not yet in `buffer` */
  private readonly lines: string[] = []
  private err = ''

  /** `text` and a newline on stdout. */
  line(text: string): void {
    if (this.lines.push(text) >= BufferedOutput.LINES) this.drainLines()
  }

  stderr(text: string): void {
    this.err += text
  }

  /** Writes what is buffered: stdout, then stderr (a batch's errors come after its output). */
  flush(): void {
    this.flushStdout()
    if (this.err !== '') process.stderr.write(this.err)
    this.err = ''
  }

  private drainLines(): void {
    const text = `${this.lines.join('\n')}\n`
    this.lines.length = 0
    this.bytes(text)
  }

  private bytes(text: string): void {
    // A character takes at most 3 bytes in UTF-8 (a surrogate pair, 4 for 2).
    if (this.used + text.length * 3 > BufferedOutput.CHUNK) {
      this.flushBytes()
      if (text.length * 3 > BufferedOutput.CHUNK) {
        writeStdout(text)
        return
      }
    }
    this.used += this.buffer.write(text, this.used)
  }

  /** Writes what is buffered for stdout (not stderr). */
  flushStdout(): void {
    if (this.lines.length > 0) this.drainLines()
    this.flushBytes()
  }

  private flushBytes(): void {
    // Written through, the buffer is free again; a stream may hold on to what it is given after
    // write() returns, and the rest goes into a new buffer. No copy either way: a copy is fresh
    // memory, and on this project's VMs touching a fresh page costs about 15 us (1-2 ms of a
    // 10,000-line batch, docs/performance.md).
    if (this.used > 0 && !writeStdout(this.buffer.subarray(0, this.used))) this.buffer = Buffer.allocUnsafe(BufferedOutput.CHUNK)
    this.used = 0
  }
}

interface Resolved {
  id: string
  /** the command's name as typed: "alloc page" */
  name: string
  argv: string[]
}

/**
 * What running a line needs is kept for this many distinct line texts at most (a cache, not a
 * record: a script of all-different lines would otherwise keep one command instance a line alive).
 */
const PREPARED_LIMIT = 1024

/** The most lines of a run a command does at once (runRepeatedIn) between two looks at the event loop. */
const REPEAT_LIMIT = 4096

/**
 * What running a line needs: its command, and for a MachineCommand its parse (made once), from which
 * the line runs at once (MachineCommand.runIn); any other command runs through its own run().
 */
type Prepared = {name: string; command: HvmemCommand; parsed: undefined} | RunsAtOnce

interface RunsAtOnce {
  name: string
  command: MachineCommand<SnapshotParse, unknown, unknown>
  parsed: SnapshotParse
}

/** What undoes a line that fails under --keep-going: the machine's checkpoint, and whether the session had changed before it. */
interface Undo {
  checkpoint: ReturnType<Machine['checkpoint']>
  changed: boolean
}

/** What a batch reads of a command oclif's configuration finds. */
interface BatchCommand {
  readonly pluginName?: string
  load(): Promise<Command.Class>
}

/**
 * What a batch reads of its configuration: oclif's Config, or the direct start's CommandConfig
 * (src/cli/direct.ts), which has hvmem's own commands and no plugin's.
 */
export interface BatchConfig extends Pick<Config, 'commandIDs' | 'name' | 'root'> {
  findCommand(id: string): BatchCommand | undefined
  findTopic(name: string): object | undefined
  readonly topics: ReadonlyArray<{readonly name: string}>
}

export class BatchRunner {
  ok = 0
  failed = 0
  skipped = 0
  /** the first failing line's exit code (0: none failed) */
  exitCode = 0
  private firstFailure: number | undefined
  /** a line failed without --keep-going: no more lines run */
  private stopped = false
  /** the session is due a turn of the event loop (sessionDue) before the next line */
  private turnDue = false
  private readonly classes = new Map<string, Command.Class>()
  /** per distinct line text: what running it needs that does not change from one run to the next */
  private readonly prepared = new Map<string, Prepared>()
  /** line texts run once, and not (yet) kept in `prepared` */
  private readonly seenOnce = new Set<string>()
  /** config.findCommand and findTopic, by id */
  private readonly lookups = new Map<string, {command: BatchCommand | undefined; topic: boolean}>()
  /** whether `config` has the plugins' commands too (withPlugins) */
  private plugins = false
  private readonly snapshot: string

  constructor(
    private config: BatchConfig,
    private readonly options: BatchOptions,
    private readonly out: BufferedOutput,
  ) {
    this.snapshot = resolve(options.snapshot)
  }

  /** Runs `lines` in the session, in order (each `count` times); without --keep-going, stops at the first failure. */
  async runAll(lines: ScriptLine[], session: SnapshotSession): Promise<void> {
    let remaining = 0
    for (const line of lines) remaining += line.count
    for (const line of lines) {
      let prepared = this.prepared.get(line.text)
      for (let k = 0; k < line.count;) {
        let ran = 1
        if (prepared?.parsed !== undefined) ran = this.runAtOnce(line, k, prepared, session)
        else {
          // the first of these lines (its parse), or a command that runs through its own run()
          const undo = this.begin(line, k, session)
          try {
            prepared ??= await this.prepare(line)
            this.lineSucceeded(line, k, prepared, undo, prepared.parsed === undefined ? await prepared.command.run() : prepared.command.runIn(session, prepared.parsed))
          } catch (error) {
            this.lineFailed(line, k, prepared, undo, session, error)
          }
          this.turnDue = sessionDue()
        }
        k += ran
        remaining -= ran
        if (this.stopped) {
          this.skipped = remaining
          return
        }
        if (this.turnDue) await sessionTurn()
      }
    }
  }

  /**
   * Runs the lines of `line` from its k-th on, its command one that runs at once (a MachineCommand,
   * parsed): one after the other with no turn of the event loop, until the run ends, a line stops
   * the batch, or the session is due a turn (sessionDue). Returns how many it ran.
   */
  private runAtOnce(line: ScriptLine, k: number, prepared: RunsAtOnce, session: SnapshotSession): number {
    const {command, parsed} = prepared
    let ran = 0
    if (!this.options.verbose) {
      // The run's lines at once where the command can: their output as the lines' own, in order, and
      // each a success (a line that would fail is left to the loop below, which reports it).
      ran = command.runRepeatedIn(session, parsed, Math.min(line.count - k, REPEAT_LIMIT))
      this.ok += ran
      this.turnDue = ran > 0 && sessionDue(ran)
      if (ran > 0) return ran
    }
    do {
      const undo = this.begin(line, k + ran, session)
      try {
        this.lineSucceeded(line, k + ran, prepared, undo, command.runIn(session, parsed))
      } catch (error) {
        this.lineFailed(line, k + ran, prepared, undo, session, error)
      }
      ran++
      this.turnDue = sessionDue()
    } while (k + ran < line.count && !this.stopped && !this.turnDue)
    return ran
  }

  /** Before the k-th line of `line`: its --verbose header; under --keep-going, what undoes it if it fails. */
  private begin(line: ScriptLine, k: number, session: SnapshotSession): Undo | undefined {
    const {json, keepGoing, verbose} = this.options
    if (verbose && !json) this.out.line(`# line ${line.line + k}: ${line.text}`)
    // Under --keep-going a line that fails must leave the machine as it found it, even half-way.
    return keepGoing ? {checkpoint: session.machine.checkpoint(), changed: session.changed} : undefined
  }

  /** After a line that succeeded with `result`: counted, and its result printed as the batch or the line asks. */
  private lineSucceeded(line: ScriptLine, k: number, prepared: Prepared, undo: Undo | undefined, result: unknown): void {
    undo?.checkpoint.release()
    this.ok++
    if (this.options.json) this.out.line(JSON.stringify({line: line.line + k, command: prepared.name, result: result ?? null} satisfies LineResultJson))
    // A line's own --json prints its result as JSON, as the command alone would.
    else if (result !== undefined && prepared.command.jsonEnabled()) prepared.command.logJson(result)
  }

  /** After a line that failed (the k-th of `line`): undone (--keep-going), counted and reported; without --keep-going the batch stops. */
  private lineFailed(line: ScriptLine, k: number, prepared: Prepared | undefined, undo: Undo | undefined, session: SnapshotSession, error: unknown): void {
    const {json, keepGoing} = this.options
    if (undo !== undefined) {
      undo.checkpoint.rollback()
      session.changed = undo.changed
    }
    const number = line.line + k
    const err = error instanceof Error ? error : new Error(String(error))
    if (process.env.HVMEM_DEBUG) this.out.stderr(`${err.stack ?? String(err)}\n`)
    const described = describeError(err)
    this.failed++
    if (this.firstFailure === undefined) {
      this.firstFailure = number
      this.exitCode = described.exitCode
    }
    // A line that names no known command is reported by its first words.
    const command =
      prepared?.name ??
      line.words
        .filter((w) => !w.startsWith('-'))
        .slice(0, 2)
        .join(' ')
    if (json) this.out.line(JSON.stringify({line: number, command, text: line.text, error: described} satisfies LineErrorJson))
    else this.out.stderr(`hvmem: line ${number} ${quote(line.text)}: ${described.message}${keepGoing ? '' : '; the batch stopped there and saved nothing'}\n`)
    if (!keepGoing) this.stopped = true
  }

  /** The closing output: the JSON summary, or (text) a note of failures under --keep-going and a summary line with --verbose. */
  finish(lines: number, saved: boolean): void {
    const {json, keepGoing, verbose} = this.options
    if (json) {
      const summary: SummaryJson = {summary: {lines, ok: this.ok, failed: this.failed, skipped: this.skipped, saved, exitCode: this.exitCode}}
      this.out.line(JSON.stringify(summary))
      return
    }
    if (verbose) {
      const skipped = this.skipped > 0 ? `, ${this.skipped} not run` : ''
      this.out.line(`# ${lines} line(s): ${this.ok} ok, ${this.failed} failed${skipped}; ${saved ? `saved ${this.options.snapshot}` : `${this.options.snapshot} unchanged`}`)
    }
    if (keepGoing && this.failed > 0) {
      this.out.stderr(
        `hvmem: ${this.failed} of ${lines} line(s) failed (the first: line ${this.firstFailure}); ${saved ? "the snapshot holds the other lines' changes" : 'the snapshot is unchanged'}\n`,
      )
    }
  }

  /**
   * What running a line needs, kept for the lines with the same text: an instance of its command,
   * with hooks that parse it once. oclif's parse is a pure function of the argv and the command's flag
   * definitions (and of the environment, fixed for the batch), so identical lines share one parse.
   */
  private async prepare(line: ScriptLine): Promise<Prepared> {
    let resolved = this.resolve(line.words, this.plugins)
    if (resolved === undefined) {
      await this.withPlugins()
      resolved = this.resolve(line.words, true)
    }
    let cls = this.classes.get(resolved.id)
    if (cls === undefined) {
      const loaded = await this.config.findCommand(resolved.id)!.load()
      if (!(loaded.prototype instanceof HvmemCommand)) throw new HvmemError('input', `"${resolved.name}" cannot run inside a batch: it is not one of hvmem's snapshot commands`)
      cls = loaded
      this.classes.set(resolved.id, cls)
    }
    // Command.Class is typed abstract; the classes oclif loads are the concrete commands (checked above).
    const concrete = cls as unknown as new (argv: string[], config: Config) => HvmemCommand
    // One instance runs every line with this text: an hvmem command keeps nothing of a run on itself.
    // (the batch's configuration: oclif's, or the direct start's part of it, src/cli/direct.ts)
    const command = new concrete(resolved.argv, this.config as Config)
    // Whether the line has its own --json, as oclif tells it (argv, and HVMEM_CONTENT_TYPE).
    const lineJson = command.jsonEnabled()
    // The parse, once made: later lines get the same settled promise (no new one a line).
    let parsed: Promise<Interfaces.ParserOutput> | undefined
    const hooks: BatchHooks & {parsed: Promise<Interfaces.ParserOutput> | undefined} = {
      json: this.options.json || lineJson,
      parsed: undefined,
      log: (text) => this.out.line(text),
      parse: <T extends Interfaces.ParserOutput>(parse: () => Promise<T>): Promise<T> => {
        if (parsed === undefined) {
          const made = parse().then((output) => this.onBatchSnapshot(output))
          // A line that fails to parse is parsed again (and fails again) if it comes back.
          made.then(
            () => {
              if (parsed === made) hooks.parsed = made
            },
            () => {
              if (parsed === made) parsed = undefined
            },
          )
          parsed = made
        }
        return parsed as Promise<T>
      },
    }
    command.batch = hooks
    // A command whose work is on the machine alone runs each line at once, from its parse.
    const atOnce = command instanceof MachineCommand ? (command as MachineCommand<SnapshotParse, unknown, unknown>) : undefined
    const prepared: Prepared = atOnce === undefined ? {name: resolved.name, command, parsed: undefined} : {name: resolved.name, command: atOnce, parsed: await atOnce.parseLine()}
    // Kept from a text's second line on: a line seen once would only burden the garbage collector.
    if (this.seenOnce.delete(line.text)) {
      if (this.prepared.size >= PREPARED_LIMIT) this.prepared.clear()
      this.prepared.set(line.text, prepared)
    } else {
      if (this.seenOnce.size >= PREPARED_LIMIT) this.seenOnce.clear()
      this.seenOnce.add(line.text)
    }
    return prepared
  }

  /**
   * hvmem starts a batch without its plugins (help, autocomplete), as any of its own commands: loading
   * them is a tenth of a batch of 10,000 lines. A line that names none of hvmem's commands loads them
   * once (config with the plugins, as the package declares them), to be told what it names.
   */
  private async withPlugins(): Promise<void> {
    if (this.plugins) return
    this.config = await Config.load({root: this.config.root})
    this.plugins = true
    this.lookups.clear()
  }

  /**
   * The command a line names: the longest run of leading words that is a command id, through topics;
   * when there is none, undefined (the plugins may know it), or with `final` an error.
   */
  private resolve(words: string[], final: true): Resolved
  private resolve(words: string[], final: boolean): Resolved | undefined
  private resolve(words: string[], final: boolean): Resolved | undefined {
    const prefix: string[] = []
    let found: {id: string; length: number; pluginName: string | undefined} | undefined
    let id = ''
    for (const word of words) {
      if (word.startsWith('-')) break
      prefix.push(word)
      id = id === '' ? word : `${id}:${word}`
      let lookup = this.lookups.get(id)
      if (lookup === undefined) {
        lookup = {command: this.config.findCommand(id), topic: this.config.findTopic(id) !== undefined}
        this.lookups.set(id, lookup)
      }
      if (lookup.command !== undefined) found = {id, length: prefix.length, pluginName: lookup.command.pluginName}
      if (!lookup.topic) break
    }
    if (prefix.length === 0) throw new HvmemError('input', `the line names no command: it starts with ${quote(words[0] ?? '')}; write the command first, as "alloc page --count 2"`)
    if (found === undefined) {
      if (!final) return undefined
      const topic = prefix.join(':')
      if (this.lookups.get(topic)?.topic === true) {
        const commands = this.config.commandIDs.filter((c) => c.startsWith(`${topic}:`)).map((c) => c.replaceAll(':', ' '))
        throw new HvmemError('input', `${quote(prefix.join(' '))} is a topic, not a command: write one of its commands (${commands.join(', ')})`)
      }
      throw new HvmemError('input', unknownCommand(prefix.join(' '), suggestCommand(prefix, this.config)))
    }
    const name = found.id.replaceAll(':', ' ')
    const why = refusal(found.id, found.pluginName, this.config.name)
    if (why !== undefined) throw new HvmemError('input', `"${name}" cannot run inside a batch: ${why}`)
    return {id: found.id, name, argv: words.slice(found.length)}
  }

  /**
   * A line's parse, made to work on the batch's snapshot (a line may name it with --snapshot, but no
   * other), and frozen: the lines with the same text share it.
   */
  private onBatchSnapshot<T extends Interfaces.ParserOutput>(parsed: T): T {
    for (const token of parsed.raw) {
      if (token.type === 'flag' && token.flag === 'snapshot' && resolve(token.input) !== this.snapshot) {
        throw new HvmemError(
          'input',
          `--snapshot ${quote(token.input)}: every line works on the batch's snapshot ${quote(this.options.snapshot)}; drop the flag, or give the file to "hvmem batch --snapshot"`,
        )
      }
    }
    return Object.freeze({...parsed, args: Object.freeze({...parsed.args}), flags: Object.freeze({...parsed.flags, snapshot: this.options.snapshot})})
  }
}
