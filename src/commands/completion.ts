import {Args} from '@oclif/core'

import {HvmemCommand, NO_SNAPSHOT_FLAGS} from '../cli/base.js'
import {COMPLETION_SHELLS, type CompletionCommand, completionScript} from '../cli/completion.js'
import {writeStdout} from '../cli/output.js'

export interface CompletionJson {
  shell: string
  script: string
}

export default class Completion extends HvmemCommand {
  static override summary = 'Print the shell completion script for bash or zsh: commands, flags, flag values and file names.'
  static override description = `The script is made from the commands' own definitions, so it matches this version of hvmem: it completes commands and topics, each command's flags, the values of flags that take one of a fixed set (--attr normal|device|readonly, --regime, --color, ...), and file names for --snapshot (-s), --raw and the arguments that name a file (a snapshot, a raw image, a batch file).

Load it in the running shell with: source <(hvmem completion bash). To keep it, add that line to ~/.bashrc (or ~/.zshrc with zsh, where it runs through bashcompinit). It needs no cache and no set-up step; run it again after an upgrade only if you saved its output to a file.`

  static override examples = ['<%= config.bin %> completion bash', 'source <(<%= config.bin %> completion bash)', '<%= config.bin %> completion zsh > ~/.hvmem-completion.zsh']
  // No snapshot: the script is made from the commands alone (--snapshot is accepted but hidden).
  static override baseFlags = NO_SNAPSHOT_FLAGS

  static override args = {
    shell: Args.string({description: 'The shell: bash or zsh.', options: [...COMPLETION_SHELLS], required: true, ignoreStdin: true}),
  }

  async run(): Promise<CompletionJson> {
    const {args} = await this.parse(Completion)
    const shell = args.shell as (typeof COMPLETION_SHELLS)[number]
    const commands = this.config.commands as unknown as CompletionCommand[]
    const script = completionScript(shell, this.config.bin, commands)
    if (!this.jsonEnabled()) writeStdout(script)
    return {shell, script}
  }
}
