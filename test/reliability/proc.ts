/** Starting the built binary with more control than test/cli/run.ts gives: a handle to kill, another user. */
import {type ChildProcess, spawn} from 'node:child_process'

import {BIN, type Run, hvmemEnv} from '../cli/run.js'

export {BIN, hvmem, hvmemEnv, hvmemJson, scratch} from '../cli/run.js'

export {SOAK} from '../soak.js'

export interface Started {
  child: ChildProcess
  /** resolves when the process has exited (and its output is complete) */
  done: Promise<Run & {signal: NodeJS.Signals | null}>
}

export interface StartOptions {
  env?: Record<string, string>
  /** run as this user and group (tests running as root use it to meet permissions) */
  uid?: number
  gid?: number
  /** extra arguments for node itself, before the script */
  nodeArgs?: string[]
}

export function start(cwd: string, args: string[], options: StartOptions = {}): Started {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), BIN, ...args], {
    cwd,
    env: hvmemEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : {uid: options.uid, gid: options.gid ?? options.uid}),
  })
  let stdout = ''
  let stderr = ''
  // Decoded as a stream: a character split between two reads of the pipe stays whole.
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const done = new Promise<Run & {signal: NodeJS.Signals | null}>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({code: code ?? -1, signal, stdout, stderr}))
  })
  return {child, done}
}

/** Every line of stderr that looks like a stack frame: there must never be one. */
export function stackLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => /^\s+at /.test(line))
}

/** Runs `tasks` with at most `limit` at a time, results in order. */
export async function pool<T>(limit: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results = new Array<T>(tasks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await tasks[i]!()
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, tasks.length)}, worker))
  return results
}
