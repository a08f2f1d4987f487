/**
 * hvmem's direct start (src/cli/execute.ts chooses it): a command line naming one of hvmem's own
 * snapshot commands runs that command without oclif's configuration load and main loop. Those read
 * the manifest (100 KB of JSON) and the user's theme file, ask whether this is WSL, look up the shell,
 * set up plugins and run hooks, none of which an hvmem command uses, and their modules are half of
 * oclif: about 15 ms of every start-up on the machine issue 13 is measured on (docs/performance.md).
 *
 * What oclif does for such a line, this does too: the words naming the command are split from its
 * arguments as oclif splits them (splitCommand); the command class gets its id; `new Command(argv,
 * config)` runs as oclif's Command.run runs it (init, parse, run, catch, finally, the --json result);
 * an error goes to oclif's `handle` (its exit code); stdout is flushed. hvmem has no prerun, postrun
 * or finally hook, and its init hook only answers help, which never comes here.
 *
 * Left to oclif (execute.ts sends these lines there): help (`--help` or `-h` before `--`), anything
 * that is not one of hvmem's commands, `completion` (it lists the plugins' commands), `version` (it
 * prints oclif's platform, "wsl" on WSL), and JSON to a terminal (`--json` or HVMEM_CONTENT_TYPE=json:
 * oclif colours JSON there with the user's theme). `batch` starts directly, and loads oclif's
 * configuration with the plugins itself if a line names none of hvmem's commands (src/cli/batch.ts).
 *
 * The configuration the command gets is CommandConfig: the part of oclif's Config that oclif's
 * Command, hvmem's commands and batch read. test/cli/execute.test.ts checks that it answers as a
 * loaded Config does.
 */
import {type Command, type Config, type Errors, handle, type Interfaces} from '@oclif/core'

import type {HvmemCommand} from './base.js'
import {flushStdout} from './output.js'

/** What the direct start reads of a command class: the statics oclif's Command and argv split use. */
export type CommandClass = Command.Class

/** What CommandConfig.findCommand gives for one of hvmem's commands: the part of oclif's Command.Loadable its users read. */
export interface DirectCommand {
  readonly id: string
  /** hvmem's package name, as the root plugin's commands have it */
  readonly pluginName: string
  /** the class's own (loaded when read), as oclif's split of a line reads them */
  readonly strict: boolean | undefined
  readonly args: CommandClass['args']
  load(): Promise<CommandClass>
}

/** A topic as CommandConfig lists them: its name, and the description package.json gives it (if it declares it). */
export interface DirectTopic {
  readonly name: string
  readonly description?: string
}

/**
 * The part of oclif's Config that oclif's Command, hvmem's snapshot commands and `batch` read. Its
 * topics are oclif's: package.json's, and every command id and prefix of one (oclif also gives those
 * the description of a command under them, which nothing here reads).
 */
export interface CommandConfig extends Pick<
  Config,
  'bin' | 'commandIDs' | 'name' | 'pjson' | 'root' | 'runHook' | 'scopedEnvVar' | 'scopedEnvVarKey' | 'scopedEnvVarKeys' | 'scopedEnvVarTrue' | 'theme' | 'topicSeparator' | 'userAgent' | 'version'
> {
  findCommand(id: string): DirectCommand | undefined
  findTopic(name: string): DirectTopic | undefined
  readonly topics: DirectTopic[]
}

/**
 * The configuration a directly started command gets: `pjson` is hvmem's package.json, `root` its
 * folder, `commands` its command classes by id (each loaded when first asked for).
 */
export function commandConfig(root: string, pjson: Interfaces.PJSON, commands: Readonly<Record<string, CommandClass>>): CommandConfig {
  const bin = pjson.oclif.bin ?? pjson.name
  const {name, version} = pjson
  // oclif's Config: the environment variable BIN_KEY, bin upper-cased with '-' and '/' as '_'
  const scopedEnvVarKey = (key: string): string =>
    [bin, key]
      .map((part) => part.replaceAll('@', '').replaceAll(/[/-]/g, '_'))
      .join('_')
      .toUpperCase()
  const scopedEnvVar = (key: string): string | undefined => process.env[scopedEnvVarKey(key)] || undefined
  const ids = Object.keys(commands)
  const findCommand = (id: string): DirectCommand | undefined =>
    Object.hasOwn(commands, id)
      ? {
          id,
          pluginName: name,
          get strict() {
            return commands[id]!.strict
          },
          get args() {
            return commands[id]!.args
          },
          load: async () => commands[id]!,
        }
      : undefined
  const topics = new Map<string, DirectTopic>()
  for (const [topic, {description}] of Object.entries(pjson.oclif.topics ?? {})) topics.set(topic, {name: topic, description})
  for (const id of ids) for (let parts = id.split(':'); parts.length > 0; parts.pop()) if (!topics.has(parts.join(':'))) topics.set(parts.join(':'), {name: parts.join(':')})
  return {
    bin,
    name,
    version,
    root,
    pjson,
    topicSeparator: pjson.oclif.topicSeparator ?? ':',
    userAgent: `${name}/${version} ${process.platform}-${process.arch} node-${process.version}`,
    theme: undefined,
    commandIDs: ids,
    scopedEnvVarKey,
    scopedEnvVarKeys: (key) => [scopedEnvVarKey(key)],
    scopedEnvVar,
    scopedEnvVarTrue: (key) => ['1', 'true'].includes(scopedEnvVar(key) ?? ''),
    // hvmem defines no hook but init and command_not_found, which a direct start does not reach
    runHook: async () => ({failures: [], successes: []}),
    findCommand,
    findTopic: (topic) => topics.get(topic),
    topics: [...topics.values()],
  }
}

/**
 * The command id `argv` starts with and the arguments after it, as oclif's normalizeArgv splits a
 * line when topics are separated by spaces (help/util.js), from the same configuration: words are
 * taken while they extend a command id or topic, and then while they are neither a flag nor
 * `key=value` and the words so far do not name a command that takes arguments. Undefined when that
 * is not one of the configuration's commands.
 */
export function splitCommand(argv: readonly string[], config: Pick<CommandConfig, 'commandIDs' | 'findCommand'>): {id: string; argv: string[]} | undefined {
  // the command `id`, named by the first `words` words, if the configuration has it
  const named = (id: string, words: number): {id: string; argv: string[]} | undefined => (config.findCommand(id) === undefined ? undefined : {id, argv: argv.slice(words)})
  if (argv.length === 0) return undefined
  // one word, or a first word written with colons ("heap:status"): the id is that word
  if (argv.length === 1 || argv[0]!.includes(':')) return named(argv[0]!, 1)
  const usable = new Set(config.commandIDs.flatMap((id) => id.split(':').map((_, i, parts) => parts.slice(0, i + 1).join(':'))))
  const words: string[] = []
  const joined = (word?: string): string => (word ? [...words, word] : words).filter(Boolean).join(':')
  const takesArguments = (): boolean => {
    const command = config.findCommand(joined())
    return command !== undefined && (command.strict === false || Object.keys(command.args ?? {}).length > 0)
  }
  for (const word of argv) {
    if (usable.has(joined(word))) words.push(word)
    else if (word.includes('=') || word.startsWith('-') || takesArguments()) break
    else words.push(word)
  }
  const id = joined()
  return id === '' ? undefined : named(id, id.split(':').length)
}

/** Runs `command` (its id `id`) on `argv` as oclif would, with `config` (commandConfig). */
export async function runDirect(command: CommandClass, id: string, argv: string[], config: CommandConfig): Promise<unknown> {
  command.id = id
  // Command.Class is typed abstract; hvmem's command classes are concrete HvmemCommands. CommandConfig
  // is the part of Config they read (test/cli/execute.test.ts).
  const concrete = command as unknown as new (argv: string[], config: Config) => HvmemCommand
  try {
    const result = await new concrete(argv, config as unknown as Config).start()
    void flushStdout()
    return result
  } catch (error) {
    return handle(error as Errors.CLIError)
  }
}
