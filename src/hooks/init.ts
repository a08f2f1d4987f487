import {type Hook, loadHelpClass} from '@oclif/core'

import {reportUnknownCommand} from '../cli/base.js'

/**
 * Help for an unknown command (`hvmem heap stauts --help`, `hvmem help nosuch`): oclif's help class
 * would answer in a format of its own (" ›   Error: Command heap:stauts not found."). Answered here as
 * every unknown command is, by the command_not_found hook's words (with the command likely meant),
 * before oclif shows help. Runs at every start: it only looks at the arguments unless help is asked for.
 */
const hook: Hook<'init'> = async function (options) {
  const {id, argv, config} = options
  if (id === undefined) return
  const all = [id, ...argv]
  const dashes = all.indexOf('--')
  const asked = all.slice(0, dashes === -1 ? undefined : dashes)
  if (id !== 'help' && !asked.includes('--help') && !asked.includes('-h')) return
  // the help subject, as oclif's help finds it: the words before the first flag, but "help" and help flags
  const typed = asked.filter((w) => w !== '--help' && w !== '-h' && w !== 'help')
  const first = typed.findIndex((w) => w.startsWith('-'))
  const subject = (first === -1 ? typed : typed.slice(0, first)).flatMap((w) => w.split(':'))
  if (subject.length === 0) return
  // a command or a topic: oclif's help answers; a command with arguments after it (`heap init 2T 8
  // --help`): its help, shown here, as oclif's would look for a command named by all the words
  for (let n = subject.length; n > 0; n--) {
    const command = config.findCommand(subject.slice(0, n).join(':'))
    if (command === undefined) continue
    if (n === subject.length) return
    const Help = await loadHelpClass(config)
    await new Help(config, config.pjson.oclif.helpOptions ?? {}).showCommandHelp(command, config.topics)
    // done: oclif would go on to its own help and fail on the arguments (once stdout has drained)
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()))
    process.exit(0)
  }
  if (config.findTopic(subject.join(':')) !== undefined) return
  reportUnknownCommand(subject.join(':'), argv, config)
  this.exit(Number(process.exitCode))
}

export default hook
