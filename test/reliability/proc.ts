/** Starting the built binary with more control than test/cli/run.ts gives: a handle to kill, another user. */
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'

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

/** Whether a tmpfs can be mounted in a new user and mount namespace (unshare -Urm): how tests fill a disk. */
export const canMountTmpfs = process.platform === 'linux' && spawnSync('unshare', ['-Urm', 'sh', '-c', 'mkdir -p /tmp/.hvmem-probe && mount -t tmpfs -o size=64k tmpfs /tmp/.hvmem-probe']).status === 0

/**
 * Runs the shell script `script` in `cwd`, in a new user and mount namespace with a tmpfs of `size`
 * (`200k`) mounted on `cwd/fs` (gone when the script ends), where `hvmem` runs the built binary; exit
 * 99 if the mount fails.
 */
export function onTmpfs(cwd: string, size: string, script: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const setup = `mkdir -p fs && mount -t tmpfs -o size=${size} tmpfs fs || exit 99\nhvmem() { "$TEST_NODE" "$TEST_BIN" "$@"; }\n`
    const child = spawn('unshare', ['-Urm', 'sh', '-c', setup + script], {cwd, env: hvmemEnv({...env, TEST_NODE: process.execPath, TEST_BIN: BIN}), stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code: code ?? -1, stdout, stderr}))
  })
}
