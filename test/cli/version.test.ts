/**
 * `hvmem version` is an hvmem command (src/commands/version.ts): the line oclif's --version and -v
 * print, --json like every command, no snapshot needed; --version and -v are still oclif's (with
 * --json, the command's).
 */
import {readFile, readdir} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {FORMAT_VERSION} from '../../src/snapshot/format.js'
import {hvmem, scratch} from './run.js'

const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {name: string; version: string}

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
})
afterAll(async () => cleanup())

describe('hvmem version', () => {
  it('prints the line --version and -v print (name/version platform-arch node-version), exit 0, in a folder with no snapshot', async () => {
    const flag = await hvmem(dir, ['--version'])
    expect(flag).toMatchObject({code: 0, stderr: ''})
    expect(flag.stdout).toMatch(new RegExp(`^${pkg.name}/${pkg.version.replaceAll('.', '\\.')} \\S+-\\S+ node-${process.version.replaceAll('.', '\\.')}\\n$`))
    expect(await hvmem(dir, ['-v'])).toEqual(flag)
    expect(await hvmem(dir, ['version'])).toEqual(flag)
    // --snapshot is accepted (hidden) and never read: the file need not exist, and none is made
    expect(await hvmem(dir, ['version', '-s', 'nosuch.snap'])).toEqual(flag)
    expect(await readdir(dir)).toEqual([])
  })

  it('--json: name, version, node, platform, arch (the text line in parts) and snapshotFormat', async () => {
    const text = (await hvmem(dir, ['version'])).stdout
    const r = await hvmem(dir, ['version', '--json'])
    expect({code: r.code, stderr: r.stderr}).toEqual({code: 0, stderr: ''})
    const json = JSON.parse(r.stdout) as {name: string; version: string; node: string; platform: string; arch: string; snapshotFormat: number}
    expect(Object.keys(json)).toEqual(['name', 'version', 'node', 'platform', 'arch', 'snapshotFormat'])
    expect(json).toMatchObject({name: 'hvmem', version: pkg.version, node: process.version, snapshotFormat: FORMAT_VERSION})
    expect(`${json.name}/${json.version} ${json.platform}-${json.arch} node-${json.node}\n`).toBe(text)
  })

  it.each([['--version'], ['-v']])('%s --json prints what version --json prints', async (flag) => {
    const r = await hvmem(dir, [flag, '--json'])
    expect(r).toEqual(await hvmem(dir, ['version', '--json']))
    expect(r.code).toBe(0)
  })

  it('is listed by the root help, and an argument is refused (exit 2)', async () => {
    const help = await hvmem(dir, ['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("\n  version       Print hvmem's version, and the Node.js and platform it runs on.\n")
    const extra = await hvmem(dir, ['version', '--json', 'extra'])
    expect(extra).toEqual({code: 2, stdout: '{\n  "error": {\n    "kind": "input",\n    "message": "Unexpected argument: extra (see --help)",\n    "exitCode": 2\n  }\n}\n', stderr: ''})
  })
})
