/**
 * hvmem's entry (bin/run.cjs calls it through the bundle). A line that names one of hvmem's own
 * snapshot commands starts it directly (src/cli/direct.ts), without oclif's configuration load and
 * main loop; the rest goes to oclif's `execute`, loading the help and autocomplete plugins only when
 * the command line may need them. Loading a plugin means finding its package, reading its
 * package.json and manifest and importing its ESM index (which starts Node's ES module loader): 10-15
 * ms of every start-up (docs/performance.md), for commands no hvmem command uses. So a line that names
 * one of hvmem's own commands runs without them (oclif's core draws `--help` for a command itself;
 * `batch` loads them if one of its lines names no hvmem command); anything else (the root help,
 * `help`, `autocomplete`, a topic, an unknown word, `--version`) and `completion`, which lists every
 * command, load them as before.
 *
 * And oclif's TypeScript support is off: with NODE_ENV "development" or "test" oclif otherwise looks
 * for tsx and ts-node beside every plugin at every start (about half a second of CPU), though the
 * bundle is JavaScript; bin/dev.js, which runs the TypeScript sources, does not come through here.
 *
 * Standard output is guarded here, before anything runs (src/cli/output.ts): every path, oclif's own
 * help, --version and topic listings too, reports a full disk or a closed pipe in one line, exit 9.
 */
import {execute as oclifExecute, type Interfaces, settings} from '@oclif/core'
import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {type CommandClass, commandConfig, runDirect, splitCommand} from './direct.js'
import {guardStdout, stdoutIsTerminal} from './output.js'

/** hvmem's commands that list every command, the plugins' included. */
const NEEDS_PLUGINS: ReadonlySet<string> = new Set(['completion'])

/** hvmem's commands that read more of oclif's configuration than a direct start gives: version prints its platform ("wsl" on WSL). */
const NOT_DIRECT: ReadonlySet<string> = new Set(['version'])

/**
 * The id of the hvmem command the words start with (the longest run of words before a flag that is
 * a command id), or undefined. `ids` are hvmem's own command ids ("heap:init").
 */
export function ownCommand(argv: readonly string[], ids: ReadonlySet<string>): string | undefined {
  let id = ''
  let found: string | undefined
  for (const word of argv) {
    if (word.startsWith('-')) break
    id = id === '' ? word : `${id}:${word}`
    if (ids.has(id)) found = id
    else if (found !== undefined) break
  }
  return found
}

/**
 * `--version --json` (or `-v --json`) as `version --json`: oclif answers --version and -v from the
 * first word alone, in text, where every hvmem command line with --json prints JSON.
 */
export function versionJson(argv: readonly string[]): string[] {
  return (argv[0] === '--version' || argv[0] === '-v') && argv.includes('--json') ? ['version', ...argv.slice(1)] : [...argv]
}

/**
 * Runs the command line: `dir` is bin/run.cjs's URL (the package root is its folder's parent),
 * `commands` hvmem's command classes by id (each loaded when first asked for). A line naming one of
 * them (not NOT_DIRECT, no help flag, no JSON to a terminal) starts it directly (src/cli/direct.ts).
 */
export async function execute(dir: string, commands: Readonly<Record<string, CommandClass>>): Promise<unknown> {
  settings.enableAutoTranspile = false
  guardStdout({direct: true})
  const argv = versionJson(process.argv.slice(2))
  const id = ownCommand(argv, new Set(Object.keys(commands)))
  if (id === undefined || NEEDS_PLUGINS.has(id)) return oclifExecute({dir})
  const root = dirname(dirname(fileURLToPath(dir)))
  const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Interfaces.PJSON
  delete pjson.oclif.plugins
  const config = commandConfig(root, pjson, commands)
  const direct = NOT_DIRECT.has(id) || !directLine(argv) ? undefined : splitCommand(argv, config)
  if (direct !== undefined) return runDirect(commands[direct.id]!, direct.id, direct.argv, config)
  return oclifExecute({args: argv, loadOptions: {root, pjson}})
}

/**
 * Whether oclif's main loop has nothing to add to the line: no help flag (`--help`, `-h`: oclif's help
 * answers) and no JSON to a terminal (--json or HVMEM_CONTENT_TYPE=json: oclif colours JSON there
 * with the user's theme file).
 */
export function directLine(argv: readonly string[]): boolean {
  const end = argv.indexOf('--')
  const words = end === -1 ? argv : argv.slice(0, end)
  if (words.includes('--help') || words.includes('-h')) return false
  const json = words.includes('--json') || process.env.HVMEM_CONTENT_TYPE?.toLowerCase() === 'json'
  return !(json && stdoutIsTerminal())
}
