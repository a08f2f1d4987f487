import type {Hook} from '@oclif/core'

import {unknownCommand} from '../cli/base.js'
import {EXIT_CODES} from '../cli/exit-codes.js'

/**
 * An unknown command: one line and exit 2, like every other hvmem error (oclif's own message wraps
 * long words over several lines).
 */
const hook: Hook<'command_not_found'> = async function (options) {
  process.stderr.write(`hvmem: ${unknownCommand(options.id.replaceAll(':', ' '))}\n`)
  process.exitCode = EXIT_CODES.input
}

export default hook
