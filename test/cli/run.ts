/** Runs the real, built binary (bin/run.cjs over dist/) in a scratch directory. */
import {spawn} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {expect} from 'vitest'

export const BIN = fileURLToPath(new URL('../../bin/run.cjs', import.meta.url))

export interface Run {
  code: number
  stdout: string
  stderr: string
}

export async function scratch(): Promise<{dir: string; snap: string; cleanup: () => Promise<void>}> {
  const dir = await mkdtemp(join(tmpdir(), 'hvmem-cli-'))
  return {dir, snap: join(dir, 'hvmem.snap'), cleanup: () => rm(dir, {recursive: true, force: true})}
}

/**
 * The environment a test's hvmem process gets: this one's, without HVMEM_SNAPSHOT and FORCE_COLOR
 * (a test names what it wants), without NODE_EXTRA_CA_CERTS (Node 20 reads that file of CA
 * certificates at every start, about 45 ms of CPU here, and hvmem makes no TLS connection), without
 * NODE_ENV (vitest sets it to "test" in its workers, and oclif behaves otherwise under "test" or
 * "development": a user's hvmem usually runs without it; test/cli/errors.test.ts runs it under both
 * values on purpose, and plugins.test.ts checks that the bundle skips oclif's TypeScript lookup,
 * which those values used to cost every start), and with `env` on top.
 */
export function hvmemEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = {...process.env}
  delete base.HVMEM_SNAPSHOT
  delete base.FORCE_COLOR
  delete base.NODE_EXTRA_CA_CERTS
  delete base.NODE_ENV
  return {...base, ...env}
}

/** Runs hvmem; `input`, when given, is written to its standard input (otherwise stdin is closed). */
export function hvmem(cwd: string, args: string[], env: Record<string, string> = {}, input?: string | Uint8Array): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {cwd, env: hvmemEnv(env), stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']})
    if (input !== undefined) child.stdin!.end(input)
    let stdout = ''
    let stderr = ''
    // Decoded as a stream: a character split between two reads of the pipe stays whole.
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code: code ?? -1, stdout, stderr}))
  })
}

/** Runs with --json and parses stdout. */
export async function hvmemJson<T>(cwd: string, args: string[]): Promise<{code: number; json: T; stderr: string}> {
  const r = await hvmem(cwd, [...args, '--json'])
  return {code: r.code, json: JSON.parse(r.stdout) as T, stderr: r.stderr}
}

export function snapshotBytes(path: string): Promise<Buffer> {
  return readFile(path)
}

/**
 * stderr without the warning for a mapping over the mapper's own table pages, which fixtures that map
 * all of the default RAM (the heap included, as the sprint plan did) get on purpose; test/cli/layout.test.ts
 * tests the warning itself.
 */
export function withoutTableWarning(stderr: string): string {
  return stderr.replace(/^hvmem: warning: (region \S+: )?0x[0-9a-f]+-0x[0-9a-f]+ maps \d+ of the mapper's own table page\(s\).*\n/gm, '')
}

/** Runs hvmem and expects success: exit 0 and nothing on stderr (but the table-page warning); returns stdout. */
export async function expectOk(cwd: string, ...args: string[]): Promise<string> {
  const r = await hvmem(cwd, args)
  expect(withoutTableWarning(r.stderr), args.join(' ')).toBe('')
  expect(r.code, args.join(' ')).toBe(0)
  return r.stdout
}

/** Runs hvmem with --json and expects success: exit 0 and nothing on stderr (but the table-page warning); returns the parsed document. */
export async function expectOkJson<T>(cwd: string, ...args: string[]): Promise<T> {
  const r = await hvmemJson<T>(cwd, args)
  expect(withoutTableWarning(r.stderr), args.join(' ')).toBe('')
  expect(r.code, args.join(' ')).toBe(0)
  return r.json
}
