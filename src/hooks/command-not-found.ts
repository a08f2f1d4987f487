import type {Hook} from '@oclif/core'

import {EXIT_CODES} from '../cli/exit-codes.js'
import {quote} from '../cli/numbers.js'

/**
 * An unknown command: one line and exit 2, like every other hvmem error (oclif's own message wraps
 * long words over several lines).
 */
const hook: Hook<'command_not_found'> = async function (options) {
  process.stderr.write(`hvmem: unknown command ${quote(options.id.replaceAll(':', ' '))}; see "hvmem --help" for the commands\n`)
  process.exitCode = EXIT_CODES.input
}

export default hook
