import {Command, Errors} from '@oclif/core'

import {HvmemError} from '../core/errors.js'
import {EXIT_CODES} from './exit-codes.js'
import {snapshotFlag} from './flags.js'

export interface ErrorJson {
  error: {kind: string; message: string; exitCode: number}
}

/**
 * Every hvmem command: `--json`, `--snapshot`, and one error policy. An error becomes one line on
 * stderr (or `{"error": ...}` on stdout with --json) and its documented exit code; no stack trace
 * unless HVMEM_DEBUG is set. @oclif/core 4 would otherwise exit 1 under --json: this `catch` sets
 * the code itself.
 */
export abstract class HvmemCommand extends Command {
  static override enableJsonFlag = true
  static override baseFlags = {snapshot: snapshotFlag}

  protected override async catch(err: Error & {oclif?: {exit?: number}; code?: string}): Promise<void> {
    if (err instanceof Errors.ExitError) throw err
    const {kind, message, exitCode} = describe(err)
    if (process.env.HVMEM_DEBUG) process.stderr.write(`${err.stack ?? String(err)}\n`)
    process.exitCode = exitCode
    if (this.jsonEnabled()) {
      this.logJson({error: {kind, message, exitCode}} satisfies ErrorJson)
      return
    }
    process.stderr.write(`hvmem: ${message}\n`)
    this.exit(exitCode)
  }
}

function describe(err: Error & {oclif?: {exit?: number}}): {kind: string; message: string; exitCode: number} {
  if (err instanceof HvmemError) return {kind: err.kind, message: err.summary, exitCode: EXIT_CODES[err.kind]}
  if (err instanceof Errors.CLIError && err.oclif?.exit !== undefined && err.oclif.exit !== 1) {
    // oclif's own parse errors (missing argument, unknown flag, bad option): exit 2, made one line.
    const [head = '', ...rest] = err.message
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('See more help'))
    // "Missing 2 required args:" is followed by one "name  description" line per argument.
    const text = head.endsWith(':') ? `${head} ${rest.map((line) => line.split(/\s+/)[0]!.toUpperCase()).join(', ')}` : [head, ...rest].join('; ')
    return {kind: 'input', message: `${text} (see --help)`, exitCode: EXIT_CODES.input}
  }
  return {kind: 'internal', message: `internal error: ${err.message} (set HVMEM_DEBUG=1 for a stack trace, and please report it)`, exitCode: EXIT_CODES.internal}
}
