/** Starting test/snapshot/hold-lock.ts in another process, and watching this process wait for a lock. */
import {type ChildProcess, spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'

import {setLockWaitObserver} from '../../src/snapshot/store.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const HOLDER = fileURLToPath(new URL('./hold-lock.ts', import.meta.url))

/** Starts hold-lock.ts in another process, resolving once it printed `line`. */
export async function startHolder(args: string[], line: string): Promise<{child: ChildProcess; stderr: () => string; done: Promise<{code: number | null; signal: NodeJS.Signals | null}>}> {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, ...args], {cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  const done = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('close', (code, signal) => resolve({code, signal})))
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (stdout.split('\n').includes(line)) resolve()
    })
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    void done.then(() => reject(new Error(`the holder exited before printing ${line}: ${stderr}`)))
  })
  return {child, stderr: () => stderr, done}
}

/** Resolves the first time a command of this process finds a live lock and waits. */
export function firstWait(): {waiting: Promise<void>; stop: () => void} {
  let waited!: () => void
  const waiting = new Promise<void>((resolve) => (waited = resolve))
  const previous = setLockWaitObserver(() => waited())
  return {waiting, stop: () => setLockWaitObserver(previous)}
}
