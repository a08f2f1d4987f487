/**
 * Runs an hvmem command in this (the test's) process: the command's own class from src/commands,
 * through oclif's Command.run (init, parse, run, catch: the whole life of a command as bin/run.cjs
 * gives it), with stdout, stderr and the exit code captured. For tests that run many commands one
 * after another where a process a command adds nothing but start-up time (the reference runs a batch
 * is compared with). Each call loads and saves the snapshot itself, as a separate hvmem process does.
 *
 * Not for what a process is the point of: concurrency, signals, kills, exit at a closed pipe, the
 * built binary's start-up. test/cli/run.ts runs the real binary.
 */
import {existsSync} from 'node:fs'
import {format} from 'node:util'
import {fileURLToPath} from 'node:url'
import {type Command, Config, Errors} from '@oclif/core'
import {expect} from 'vitest'

import {type Run, withoutTableWarning} from './run.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const COMMANDS = fileURLToPath(new URL('../../src/commands', import.meta.url))

let config: Promise<Config> | undefined

/** The command the leading words name (the longest that is a file under src/commands), and its argv. */
async function resolveCommand(args: string[]): Promise<{id: string; cls: Command.Class; argv: string[]}> {
  for (let n = Math.min(args.length, 3); n > 0; n--) {
    const words = args.slice(0, n)
    if (words.some((w) => !/^[a-z]+$/.test(w))) continue
    const file = `${COMMANDS}/${words.join('/')}.ts`
    if (!existsSync(file)) continue
    const module = (await import(/* @vite-ignore */ file)) as {default: Command.Class}
    return {id: words.join(':'), cls: module.default, argv: args.slice(n)}
  }
  throw new Error(`runInProcess: no command in src/commands for ${JSON.stringify(args)}`)
}

let running = false

/** Runs `hvmem ...args` in this process; the same Run as test/cli/run.ts's hvmem() gives for it. */
export async function runInProcess(args: string[]): Promise<Run> {
  if (running) throw new Error('runInProcess: one command at a time (stdout is captured process-wide)')
  running = true
  config ??= Config.load(ROOT)
  const loaded = await config
  const {id, cls, argv} = await resolveCommand(args)
  cls.id = id
  const stdoutWrite = process.stdout.write
  const stderrWrite = process.stderr.write
  const savedSnapshotVar = process.env.HVMEM_SNAPSHOT
  const savedExitCode = process.exitCode
  delete process.env.HVMEM_SNAPSHOT
  process.exitCode = undefined
  let stdout = ''
  let stderr = ''
  const capture =
    (append: (text: string) => void) =>
    (chunk: string | Uint8Array, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void): boolean => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString(typeof encoding === 'string' ? encoding : 'utf8'))
      const done = typeof encoding === 'function' ? encoding : callback
      if (done) queueMicrotask(() => done())
      return true
    }
  process.stdout.write = capture((text) => (stdout += text)) as typeof process.stdout.write
  process.stderr.write = capture((text) => (stderr += text)) as typeof process.stderr.write
  // oclif's this.log goes through console.log, which the test runner has replaced with its own.
  const {log, error: logError} = console
  console.log = (...args: unknown[]) => void (stdout += `${format(...args)}\n`)
  console.error = (...args: unknown[]) => void (stderr += `${format(...args)}\n`)
  let code: number
  try {
    await cls.run(argv, loaded)
    code = Number(process.exitCode ?? 0)
  } catch (error) {
    if (error instanceof Errors.ExitError) code = error.oclif.exit ?? 1
    else throw error
  } finally {
    process.stdout.write = stdoutWrite
    process.stderr.write = stderrWrite
    console.log = log
    console.error = logError
    if (savedSnapshotVar === undefined) delete process.env.HVMEM_SNAPSHOT
    else process.env.HVMEM_SNAPSHOT = savedSnapshotVar
    process.exitCode = savedExitCode
    running = false
  }
  return {code, stdout, stderr}
}

let queue: Promise<unknown> = Promise.resolve()

/**
 * runInProcess in the directory `cwd` (as test/cli/run.ts's hvmem(cwd, args) runs the binary there),
 * one call at a time even when tests run concurrently: calls wait their turn.
 */
export function runInProcessAt(cwd: string, args: string[]): Promise<Run> {
  const turn = queue.then(async () => {
    const previous = process.cwd()
    process.chdir(cwd)
    try {
      return await runInProcess(args)
    } finally {
      process.chdir(previous)
    }
  })
  queue = turn.catch(() => undefined)
  return turn
}

/** runInProcessAt for a set-up step or a reference reading: exit 0 and nothing on stderr (but the table-page warning); returns stdout. */
export async function expectOkInProcess(cwd: string, ...args: string[]): Promise<string> {
  const r = await runInProcessAt(cwd, args)
  expect(withoutTableWarning(r.stderr), args.join(' ')).toBe('')
  expect(r.code, args.join(' ')).toBe(0)
  return r.stdout
}

/** expectOkInProcess with --json: returns the parsed document. */
export async function expectOkJsonInProcess<T>(cwd: string, ...args: string[]): Promise<T> {
  return JSON.parse(await expectOkInProcess(cwd, ...args, '--json')) as T
}
