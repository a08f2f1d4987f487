/**
 * The entry's choice (src/cli/execute.ts): a line naming one of hvmem's own commands runs without the
 * help and autocomplete plugins, and a snapshot command's line (batch's too) starts directly, without
 * oclif's configuration load (src/cli/direct.ts: checked here against a loaded oclif Config); anything
 * that may need the plugins (help, a topic, an unknown word, a flag first, completion) loads them. The
 * behaviour of both paths is what the CLI tests run.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Config, type Interfaces} from '@oclif/core'
import {normalizeArgv} from '@oclif/core/help'
import {beforeAll, describe, expect, it} from 'vitest'

import {type CommandClass, type CommandConfig, commandConfig, splitCommand} from '../../src/cli/direct.js'
import {directLine, ownCommand} from '../../src/cli/execute.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const IDS = new Set(['heap:init', 'heap:status', 'alloc:page', 'map:region', 'dump:map', 'dump:tables', 'batch', 'completion', 'snapshot:diff'])

describe('ownCommand', () => {
  it.each([
    [['heap', 'status'], 'heap:status'],
    [['heap', 'init', '2T', '8', '-h'], 'heap:init'],
    [['map', 'region', '0x4000_0000', '1G', '--granularity', 'page'], 'map:region'],
    [['alloc', 'page', 'extra'], 'alloc:page'],
    [['heap:init', '--force'], 'heap:init'],
    [['dump', 'tables', 'map'], 'dump:tables'],
    [['batch', 'script.txt'], 'batch'],
  ])('%j names %s', (argv, id) => {
    expect(ownCommand(argv, IDS)).toBe(id)
  })

  it.each([[[]], [['--version']], [['-h']], [['help']], [['help', 'heap']], [['heap']], [['heap', '--help']], [['hepa', 'status']], [['autocomplete', 'bash']], [['--json', 'heap', 'status']]])(
    '%j names none of them',
    (argv) => {
      expect(ownCommand(argv, IDS)).toBeUndefined()
    },
  )
})

/** hvmem's commands by id, as the bundle gives them to execute(): the classes under src/commands. */
async function ownCommands(): Promise<Record<string, CommandClass>> {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, unknown>}
  const commands: Record<string, CommandClass> = {}
  for (const id of Object.keys(manifest.commands)) {
    const base = join(ROOT, 'src/commands', ...id.split(':'))
    const file = existsSync(`${base}.ts`) ? `${base}.ts` : join(base, 'index.ts')
    commands[id] = ((await import(/* @vite-ignore */ file)) as {default: CommandClass}).default
  }
  return commands
}

/** hvmem's package.json, as execute() reads it for one of hvmem's commands: without the plugins. */
function packageJson(): Interfaces.PJSON {
  const pjson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Interfaces.PJSON
  delete pjson.oclif.plugins
  return pjson
}

describe('the direct start (src/cli/direct.ts)', () => {
  let commands: Record<string, CommandClass>
  let config: Config
  let direct: CommandConfig
  beforeAll(async () => {
    commands = await ownCommands()
    // oclif's own configuration of hvmem, loaded as execute() has oclif load it for one of hvmem's commands
    config = await Config.load({root: ROOT, pjson: packageJson()})
    direct = commandConfig(ROOT, packageJson(), commands)
  })

  it("configures a command as oclif does, in everything oclif's Command and hvmem's commands read", async () => {
    expect(Object.keys(commands)).toHaveLength(28)
    const read = (c: CommandConfig | Config) => ({
      bin: c.bin,
      name: c.name,
      version: c.version,
      root: c.root,
      topicSeparator: c.topicSeparator,
      userAgent: c.userAgent,
      theme: c.theme,
      commandIDs: [...c.commandIDs].sort(),
      key: c.scopedEnvVarKey('CONTENT_TYPE'),
      keys: c.scopedEnvVarKeys('CONTENT_TYPE'),
      pjsonName: c.pjson.name,
    })
    expect(read(direct)).toEqual(read(config))
    expect(read(direct)).toMatchObject({bin: 'hvmem', key: 'HVMEM_CONTENT_TYPE', topicSeparator: ' '})
    expect(await direct.runHook('preparse', {argv: ['x'], options: {}})).toEqual(await config.runHook('preparse', {argv: ['x'], options: {}}))
  })

  it("has oclif's topics, and finds commands and topics as oclif does", async () => {
    const names = (topics: ReadonlyArray<{name: string}>) => topics.map((t) => t.name).sort()
    expect(names(direct.topics)).toEqual(names(config.topics))
    for (const topic of direct.topics) expect(direct.findTopic(topic.name)).toBeDefined()
    for (const declared of ['heap', 'alloc', 'map', 'dump', 'mem', 'snapshot']) expect(direct.findTopic(declared)?.description).toBe(config.findTopic(declared)?.description)
    for (const word of ['nosuch', 'heap:nosuch', 'help']) expect([word, direct.findTopic(word)]).toEqual([word, config.findTopic(word)])
    for (const id of [...config.commandIDs, 'heap', 'nosuch', 'heap:status:extra']) {
      const [ours, oclifs] = [direct.findCommand(id), config.findCommand(id)]
      expect([id, ours?.id, ours?.pluginName, ours?.strict, Object.keys(ours?.args ?? {})]).toEqual([id, oclifs?.id, oclifs?.pluginName, oclifs?.strict, Object.keys(oclifs?.args ?? {})])
      if (oclifs !== undefined) expect(await ours!.load()).toBe(commands[id])
    }
  })

  it("knows every setting of package.json's oclif section (a new one, such as exitCodes or theme, may need the direct start to honour it)", () => {
    const pjson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Interfaces.PJSON
    // (plugins: execute.ts drops them for hvmem's own commands) bin and topicSeparator: CommandConfig; commands, hooks, topics, help flags and plugins: oclif's alone (execute.ts sends help there)
    expect(Object.keys(pjson.oclif).sort()).toEqual(['additionalHelpFlags', 'additionalVersionFlags', 'bin', 'commands', 'dirname', 'hooks', 'plugins', 'topicSeparator', 'topics'])
    // hooks a direct start would have to run: none (init answers help only; command_not_found an unknown command)
    expect(Object.keys(pjson.oclif.hooks ?? {}).sort()).toEqual(['command_not_found', 'init'])
  })

  it.each([
    ['HVMEM_CONTENT_TYPE', 'json'],
    ['HVMEM_DEBUG', 'true'],
    ['HVMEM_DEBUG', '1'],
    ['HVMEM_DEBUG', '0'],
    ['HVMEM_DEBUG', ''],
  ])('reads %s=%j as oclif does', (variable, value) => {
    const saved = process.env[variable]
    process.env[variable] = value
    try {
      const key = variable.slice('HVMEM_'.length)
      expect([direct.scopedEnvVar(key), direct.scopedEnvVarTrue(key)]).toEqual([config.scopedEnvVar(key), config.scopedEnvVarTrue(key)])
    } finally {
      if (saved === undefined) delete process.env[variable]
      else process.env[variable] = saved
    }
  })

  it.each([
    [['heap', 'status']],
    [['heap', 'status', '-s', 'x.snap']],
    [['heap', 'status', 'extra']],
    [['heap', 'status', 'extra', 'more']],
    [['heap', 'status', 'a=b']],
    [['heap:status', '--json']],
    [['heap:init', '2T']],
    [['heap', 'init', '0x4100_0000', '16M', '--force']],
    [['map', 'region', '0x4000_0000', '1G', '--granularity', 'page']],
    [['alloc', 'page', '--count', '4']],
    [['snapshot', 'info', 'vm.snap']],
    [['snapshot', 'diff', 'a.snap', 'b.snap', '--bytes']],
    [['dump', 'tables', 'map']],
    [['mem', 'write', '0x4000_0000', '0x12']],
    [['translate', '0x4000_1000', '--write']],
    [['translate']],
    [['heap']],
    [['heap', 'nosuch', 'x']],
    [['hepa', 'status']],
    [['', 'heap', 'status']],
    [['heap', '', 'status']],
    [['--json', 'heap', 'status']],
  ])('splits %j into command and arguments as oclif does', (argv) => {
    const [id, ...rest] = normalizeArgv(config, [...argv])
    const expected = id !== undefined && Object.hasOwn(commands, id) ? {id, argv: rest} : undefined
    expect(splitCommand(argv, direct)).toEqual(expected)
  })

  it.each([
    [['heap', 'status'], false, true],
    [['heap', 'status', '--json'], false, true],
    [['heap', 'status', '--json'], true, false],
    [['heap', 'status'], true, true],
    [['heap', 'status', '--help'], false, false],
    [['heap', 'init', '2T', '-h'], false, false],
    [['mem', 'write', '--', '-h'], false, true],
    [['mem', 'write', '--', '--json'], true, true],
    [['heap', 'status'], true, false, 'JSON'],
    [['heap', 'status'], false, true, 'json'],
  ])('%j, stdout a terminal: %s, is started directly: %s (HVMEM_CONTENT_TYPE %s)', (argv, tty, expected, contentType?: string) => {
    const saved = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY')
    const savedType = process.env.HVMEM_CONTENT_TYPE
    Object.defineProperty(process.stdout, 'isTTY', {value: tty, configurable: true})
    if (contentType === undefined) delete process.env.HVMEM_CONTENT_TYPE
    else process.env.HVMEM_CONTENT_TYPE = contentType
    try {
      expect(directLine(argv)).toBe(expected)
    } finally {
      if (saved === undefined) delete (process.stdout as {isTTY?: boolean}).isTTY
      else Object.defineProperty(process.stdout, 'isTTY', saved)
      if (savedType === undefined) delete process.env.HVMEM_CONTENT_TYPE
      else process.env.HVMEM_CONTENT_TYPE = savedType
    }
  })
})
