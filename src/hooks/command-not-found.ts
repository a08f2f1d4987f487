import type {Hook} from '@oclif/core'

import {reportUnknownCommand} from '../cli/base.js'

/**
 * An unknown command: one line (or the JSON error under --json) and exit 2, like every other hvmem
 * error (oclif's own message wraps long words over several lines).
 */
const hook: Hook<'command_not_found'> = async function (options) {
  reportUnknownCommand(options.id, options.argv ?? [], options.config)
}

export default hook
