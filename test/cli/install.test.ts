/**
 * The package as a user installs it: `npm pack` of this checkout (its built dist/, as `npm test` builds
 * it first), then `npm install -g` of the tarball into a scratch prefix, and the installed `hvmem` run
 * from that prefix's bin/ with nothing of the checkout on PATH. Needs the npm registry (or npm's cache)
 * for the runtime dependencies, as any install does.
 */
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {delimiter, dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

const root = fileURLToPath(new URL('../../', import.meta.url))

interface Result {
  code: number
  stdout: string
  stderr: string
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve) =>
    execFile(file, args, {cwd, env, maxBuffer: 64 << 20}, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({code, stdout, stderr})
    }),
  )
}

let dir: string
let prefix: string
/** The environment the installed hvmem runs in: PATH is the prefix's bin/ and Node's own folder only. */
let userEnv: NodeJS.ProcessEnv

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvmem-install-'))
  prefix = join(dir, 'prefix')
  // npm's own settings from an enclosing `npm test` (npm_config_*) must not reach the install
  const npmEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')))
  // --ignore-scripts: pack the dist/ that is there (built by `npm test`'s pretest), not rebuild it under the other tests
  const pack = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], root, npmEnv)
  expect(pack.code, pack.stderr).toBe(0)
  const [{filename}] = JSON.parse(pack.stdout) as [{filename: string}]
  const install = await run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', join(dir, filename)], dir, npmEnv)
  expect(install.code, install.stderr).toBe(0)
  const home = join(dir, 'home')
  userEnv = {
    PATH: [join(prefix, 'bin'), dirname(process.execPath)].join(delimiter),
    HOME: home,
    XDG_CACHE_HOME: join(home, 'cache'),
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
  }
})

afterAll(async () => {
  if (dir) await rm(dir, {recursive: true, force: true})
})

describe('npm pack, then npm install -g of the tarball', () => {
  it('puts a working hvmem on PATH, with the runtime dependencies only', async () => {
    const {version} = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {version: string}
    const r = await run('hvmem', ['--version'], dir, userEnv)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^hvmem/${version.replaceAll('.', '\\.')} `))
    // what was installed beside it: no dev dependency (the bundle in dist/ holds the code it needs)
    const installed = await readdir(join(prefix, 'lib', 'node_modules', 'hvmem', 'node_modules'))
    for (const dev of ['typescript', 'esbuild', 'vitest', 'oclif', 'tsx', 'fast-check']) expect(installed).not.toContain(dev)
  })

  it('runs real commands from the installed package, the help plugin included', async () => {
    const snap = join(dir, 'vm.snap')
    const steps: string[][] = [
      ['heap', 'init', '-s', snap],
      ['map', 'region', '0x4000_0000', '16M', '-s', snap], // below the heap: no warning about mapping its tables
      ['translate', '0x4000_1000', '-s', snap],
      ['help', 'map', 'region'],
    ]
    const out: string[] = []
    for (const args of steps) {
      const r = await run('hvmem', args, dir, userEnv)
      expect(r.stderr, args.join(' ')).toBe('')
      expect(r.code, args.join(' ')).toBe(0)
      out.push(r.stdout)
    }
    expect(out[2]).toContain('-> 0x40001000')
    expect(out[3]).toContain('$ hvmem map region IPA SIZE')
  })
})
