import {HvmemCommand, NO_SNAPSHOT_FLAGS} from '../cli/base.js'
import {FORMAT_VERSION} from '../snapshot/format.js'

/** `version --json` (docs/scripting.md, "JSON output"). */
export interface VersionJson {
  /** the package's name: "hvmem" */
  name: string
  /** hvmem's version: "0.1.0" */
  version: string
  /** the Node.js running it, as process.version: "v20.19.0" */
  node: string
  /** as in the text line: Node's os.platform() ("linux", "darwin", "win32"), or "wsl" under WSL */
  platform: string
  /** as in the text line: Node's os.arch() ("x64", "arm64"), "x86" for ia32 */
  arch: string
  /** the newest snapshot format version this hvmem reads (it reads every older one; a newer file is refused, exit 4) */
  snapshotFormat: number
}

export default class Version extends HvmemCommand {
  static override summary = "Print hvmem's version, and the Node.js and platform it runs on."
  static override description = `The text is one line, as hvmem --version (or -v) prints it: hvmem/VERSION PLATFORM-ARCH node-NODEVERSION. With --json: {"name", "version", "node", "platform", "arch", "snapshotFormat"}, snapshotFormat being the newest snapshot format version this hvmem reads (docs/snapshot-format.md).`

  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json']
  // No snapshot: the version is the program's own (--snapshot is accepted but hidden).
  static override baseFlags = NO_SNAPSHOT_FLAGS

  async run(): Promise<VersionJson> {
    await this.parse(Version)
    const {name, version, platform, arch, userAgent} = this.config
    // the line oclif prints for --version and -v
    this.log(userAgent)
    return {name, version, node: process.version, platform, arch, snapshotFormat: FORMAT_VERSION}
  }
}
