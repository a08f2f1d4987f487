/**
 * The CLI habits a new user tries (docs/behaviour.md, "CLI habits"): did-you-mean for commands and
 * flags, -h, -v and version, --help on an unknown command, --color and the colour variables, and `-`
 * for standard input and output. Most run in-process; what oclif's start-up decides (help, version,
 * the init hook) and binary output run the binary, once each.
 */
import {spawn, spawnSync} from 'node:child_process'
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {unknownFlags} from '../../src/cli/base.js'
import {refusal} from '../../src/cli/batch.js'
import {colorEnabled, terminalColumns, wrapItems} from '../../src/cli/style.js'
import {closest, editDistance} from '../../src/cli/suggest.js'
import {openRawImageOrStdin} from '../../src/snapshot/raw-image.js'
import {runInProcessAt} from './inprocess.js'
import {BIN, hvmem, hvmemEnv, scratch} from './run.js'

describe('did you mean', () => {
  it('editDistance counts a swap of neighbours as one edit', () => {
    expect(editDistance('stauts', 'status')).toBe(1)
    expect(editDistance('regoin', 'region')).toBe(1)
    expect(editDistance('', 'abc')).toBe(3)
    expect(editDistance('kitten', 'sitting')).toBe(3)
  })

  it('closest takes a near word or a unique abbreviation, and nothing far', () => {
    const commands = ['heap init', 'heap reset', 'heap status', 'map region', 'map protect', 'alloc page']
    expect(closest('heap stauts', commands)).toBe('heap status')
    expect(closest('map regoin', commands)).toBe('map region')
    expect(closest('alloc pag', commands)).toBe('alloc page')
    expect(closest('nosuch', commands)).toBeUndefined()
    expect(closest('heap', commands)).toBeUndefined() // three commands begin with it
    expect(closest('--ver', ['--verbose', '--json'])).toBe('--verbose')
  })

  it('unknownFlags checks every flag before the arguments are parsed, skipping flag values and what follows --', () => {
    const flags = {attr: {type: 'option' as const}, force: {type: 'boolean' as const, allowNo: true}, snapshot: {type: 'option' as const, char: 's'}}
    expect(unknownFlags(['0', '2M', '--attr', '--atr', '-s', '-x', '--no-force', '--', '--bogus'], flags)).toBeUndefined()
    expect(unknownFlags(['--atr', 'rw'], flags)?.message).toBe('Nonexistent flag: --atr; did you mean --attr? (see --help)')
    expect(unknownFlags(['--bogus', '-x'], flags)?.message).toBe('Nonexistent flags: --bogus, -x (see --help)')
  })
})

describe('colour', () => {
  it('follows --color, then FORCE_COLOR, NO_COLOR, TERM=dumb and the terminal', () => {
    const cases: Array<[Parameters<typeof colorEnabled>[0], NodeJS.ProcessEnv, boolean, boolean]> = [
      ['auto', {}, true, true],
      ['auto', {}, false, false],
      ['auto', {NO_COLOR: '1'}, true, false],
      ['auto', {NO_COLOR: ''}, true, true],
      ['auto', {TERM: 'dumb'}, true, false],
      ['auto', {FORCE_COLOR: '1'}, false, true],
      ['auto', {FORCE_COLOR: '1', NO_COLOR: '1', TERM: 'dumb'}, false, true],
      ['auto', {FORCE_COLOR: '0'}, true, false],
      ['auto', {FORCE_COLOR: 'false'}, true, false],
      ['always', {NO_COLOR: '1'}, false, true],
      ['never', {FORCE_COLOR: '1'}, true, false],
    ]
    for (const [mode, env, tty, expected] of cases) expect(colorEnabled(mode, env, tty), JSON.stringify([mode, env, tty])).toBe(expected)
  })
})

describe('habits, tried as a user', () => {
  let dir: string
  let snap: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, snap, cleanup} = await scratch())
    expect((await runInProcessAt(dir, ['heap', 'init'])).code).toBe(0)
    expect((await runInProcessAt(dir, ['map', 'region', '0x4000_0000', '2M'])).code).toBe(0)
  })
  afterAll(async () => cleanup())

  it('a mistyped flag is named with the one meant, before the arguments are read; the snapshot is unchanged', async () => {
    const before = await readFile(snap)
    expect(await runInProcessAt(dir, ['map', 'region', '--atr', 'rw'])).toEqual({code: 2, stdout: '', stderr: 'hvmem: Nonexistent flag: --atr; did you mean --attr? (see --help)\n'})
    expect(await runInProcessAt(dir, ['heap', 'status', '--colr', 'never'])).toEqual({code: 2, stdout: '', stderr: 'hvmem: Nonexistent flag: --colr; did you mean --color? (see --help)\n'})
    expect((await runInProcessAt(dir, ['heap', 'status', '--bogus', '--json'])).stdout).toBe(
      `${JSON.stringify({error: {kind: 'input', message: 'Nonexistent flag: --bogus (see --help)', exitCode: 2}}, null, 2)}\n`,
    )
    expect(await readFile(snap)).toEqual(before)
  })

  it('--color always colours piped output; never and the default (not a terminal) do not', async () => {
    const esc = (text: string): boolean => text.includes('\u001b[')
    expect(esc((await runInProcessAt(dir, ['heap', 'status', '--color', 'always'])).stdout)).toBe(true)
    expect(esc((await runInProcessAt(dir, ['heap', 'status', '--color=never'])).stdout)).toBe(false)
    expect(esc((await runInProcessAt(dir, ['heap', 'status'])).stdout)).toBe(false)
    // a batch's lines follow the batch's --color (the binary: in this process a batch runs the bundle's commands, with their own colours)
    expect(esc((await hvmem(dir, ['batch', '--color', 'always'], {}, 'heap status\n')).stdout)).toBe(true)
    expect((await runInProcessAt(dir, ['heap', 'status', '--color', 'pink'])).stderr).toBe('hvmem: Expected --color=pink to be one of: auto, always, never (see --help)\n')
    // a long value is not repeated whole (a file's worth pasted into a flag)
    expect((await runInProcessAt(dir, ['heap', 'status', '--color', 'p'.repeat(100_000)])).stderr).toBe(
      `hvmem: Expected --color=${'p'.repeat(32)}... (100008 characters) to be one of: auto, always, never (see --help)\n`,
    )
  })

  it('an unknown command names the one meant, also when asked for its help (exit 2, one line)', async () => {
    const message = 'unknown command "heap stauts" (did you mean "heap status"?); see "hvmem --help" for the commands'
    expect(await hvmem(dir, ['heap', 'stauts', '--help'])).toEqual({code: 2, stdout: '', stderr: `hvmem: ${message}\n`})
    const json = await hvmem(dir, ['help', 'heap', 'stauts', '--json'])
    expect(json.code).toBe(2)
    expect(JSON.parse(json.stdout)).toEqual({error: {kind: 'input', message, exitCode: 2}})
  })

  it('-h is --help; -v and version are --version; help for a command with its arguments still works', async () => {
    const help = await hvmem(dir, ['mem', 'read', '0x4100_0000', '-h'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('USAGE\n  $ hvmem mem read')
    expect(help.stdout).toContain('--color=<option>')
    // two arguments before -h (found by the fuzz test, seed 805312332): oclif's help looked for a command "heap:init:2T:8"
    const two = await hvmem(dir, ['heap', 'init', '2T', '8', '-h', '--bogus'])
    expect({code: two.code, stderr: two.stderr}).toEqual({code: 0, stderr: ''})
    expect(two.stdout).toContain('USAGE\n  $ hvmem heap init')
    const version = await hvmem(dir, ['-v'])
    expect(version.stdout).toMatch(/^hvmem\/\d+\.\d+\.\d+ \S+ node-v\d+/)
    expect(await hvmem(dir, ['version'])).toEqual({code: 0, stdout: version.stdout, stderr: ''})
  })

  it('snapshot export --raw - writes the image to stdout and what it says to stderr; snapshot import - reads it back', async () => {
    const image = await new Promise<{code: number; stdout: Buffer; stderr: string}>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'snapshot', 'export', '--raw', '-', '--from', '0x4100_0000', '--to', '0x4100_4000'], {cwd: dir, env: hvmemEnv(), stdio: ['ignore', 'pipe', 'pipe']})
      const out: Buffer[] = []
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => out.push(d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      child.on('error', reject)
      child.on('close', (code) => resolve({code: code ?? -1, stdout: Buffer.concat(out), stderr}))
    })
    expect(image.code).toBe(0)
    expect(image.stderr.split('\n')[0]).toBe('Wrote 16384 bytes of 0x41000000-0x41004000 to standard output')
    expect(image.stdout.length).toBe(0x4000)
    // the stage-2 root table: its entry for 0x4000_0000 (index 1) is the L2 table at 0x41001000 (valid, table)
    expect(image.stdout.readBigUInt64LE(8)).toBe(0x4100_1003n)

    const imported = await hvmem(dir, ['snapshot', 'import', '-', '--base', '0x4100_0000', '-s', 'copy.snap', '--json'], {}, image.stdout)
    expect(imported.code).toBe(0)
    expect(JSON.parse(imported.stdout)).toMatchObject({file: '-', base: '0x41000000', bytes: 0x4000, pagesStored: 2})
    expect(JSON.parse((await runInProcessAt(dir, ['mem', 'read', '0x4100_0008', '8', '-s', 'copy.snap', '--json'])).stdout)).toEqual({address: '0x41000008', length: 8, bytes: '0310004100000000'})
    expect(await runInProcessAt(dir, ['snapshot', 'export', '--raw', '-', '--json'])).toEqual({
      code: 2,
      stdout: `${JSON.stringify({error: {kind: 'input', message: '--raw - writes the image to standard output, which --json needs for its document; write it to a file with --json', exitCode: 2}}, null, 2)}\n`,
      stderr: '',
    })
    await expect(readFile(join(dir, '-'))).rejects.toThrow(/ENOENT/)
  })

  it('snapshot import - spools standard input to a temp file it removes, and refuses a terminal', async () => {
    // a temp directory of this test's own (TMPDIR, which os.tmpdir() reads at each call): the shared
    // one may hold other processes' spools, coming and going
    const own = mkdtempSync(join(tmpdir(), 'hvmem-habits-'))
    const saved = process.env.TMPDIR
    process.env.TMPDIR = own
    try {
      const spools = (): string[] => readdirSync(own)
      const empty = await openRawImageOrStdin('-', Readable.from([]))
      expect(spools()).toEqual([expect.stringMatching(/^hvmem-stdin-/)]) // the spool, while the image is open
      expect(empty.size).toBe(0) // which the import refuses: "RAW standard input is empty: there is nothing to import"
      empty.close()
      await expect(openRawImageOrStdin('-', Object.assign(Readable.from([]), {isTTY: true}))).rejects.toThrow('RAW -: standard input is a terminal')
      const image = await openRawImageOrStdin('-', Readable.from([Buffer.alloc(5000, 1)]))
      expect({path: image.path, size: image.size, stdin: image.stdin}).toEqual({path: 'standard input', size: 5000, stdin: true})
      image.close()
      expect(spools()).toEqual([])
    } finally {
      if (saved === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = saved
      rmSync(own, {recursive: true, force: true})
    }
  })

  it('completion bash prints a script that completes commands, flags, flag values and file names', async () => {
    const r = await runInProcessAt(dir, ['completion', 'bash'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("'map') echo 'apply coalesce protect region unmap' ;;")
    const script = join(dir, 'completion.bash')
    await writeFile(script, r.stdout)
    // one bash: the syntax, then the completions bash would offer for each line typed so far
    const probe = `source ${JSON.stringify(script)}
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _hvmem_complete; echo "\${COMPREPLY[*]}"; }
t hvmem he; t hvmem heap st; t hvmem map region 0 2M --at; t hvmem map region 0 2M --attr ''; t hvmem map region 0 2M --attr = d
t hvmem heap status --color ''; t hvmem heap status -s hvm; t hvmem snapshot diff hvmem.s; t hvmem map region 0 ''`
    const bash = spawnSync('bash', ['-c', probe], {cwd: dir, encoding: 'utf8'})
    expect(bash.stderr).toBe('')
    expect(bash.stdout.split('\n')).toEqual(['heap help', 'status', '--attr', 'normal device readonly', 'device', 'auto always never', 'hvmem.snap', 'hvmem.snap', '', ''])
    expect(spawnSync('bash', ['-n', script]).status).toBe(0)
    const zsh = await runInProcessAt(dir, ['completion', 'zsh'])
    expect(zsh.stdout.startsWith('# zsh: the bash completion below, through bashcompinit\nautoload -U +X bashcompinit && bashcompinit\n')).toBe(true)
    expect(refusal('completion', 'hvmem', 'hvmem')).toBe('it prints a shell script and touches no snapshot; run it outside the batch')
    expect((await runInProcessAt(dir, ['completion', 'fish'])).stderr).toBe('hvmem: Expected fish to be one of: bash, zsh (see --help)\n')
  })

  it('dump map is as wide as the terminal (its strips and legends), and 64 cells when piped or with --json', async () => {
    expect(terminalColumns({isTTY: true, columns: 120})).toBe(120)
    expect(terminalColumns({isTTY: false, columns: 120})).toBeUndefined()
    expect(wrapItems(['aaaa', '\u001b[32mbb\u001b[39m', 'cc'], 8)).toBe('aaaa  \u001b[32mbb\u001b[39m\ncc')
    expect(wrapItems(['aaaa', 'bb', 'cc'], undefined)).toBe('aaaa  bb  cc')
    const strips = (text: string): number[] =>
      text
        .split('\n')
        .filter((line) => /^[█▓▒▚▄░]+$/.test(line))
        .map((line) => [...line].length)
    expect(strips((await runInProcessAt(dir, ['dump', 'map'])).stdout)).toEqual([64, 64])
    const stdout = process.stdout as {isTTY?: boolean; columns?: number}
    const saved = {isTTY: stdout.isTTY, columns: stdout.columns}
    Object.assign(stdout, {isTTY: true, columns: 100})
    try {
      const wide = (await runInProcessAt(dir, ['dump', 'map', '--color', 'never'])).stdout
      // the IPA strip's cells are a power-of-two size: 64 of 32K cover the 2 MiB mapped; the heap's are 100
      expect(strips(wide)).toEqual([64, 100])
      expect(Math.max(...wide.split('\n').map((line) => [...line].length))).toBeLessThanOrEqual(100)
      expect((JSON.parse((await runInProcessAt(dir, ['dump', 'map', '--json'])).stdout) as {heap: {cells: unknown[]}}).heap.cells).toHaveLength(64)
    } finally {
      Object.assign(stdout, saved)
    }
  })
})
