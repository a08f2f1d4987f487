/**
 * hvmem never reads a missing argument from standard input (oclif's default whenever stdin is a pipe):
 * in a script's `while read` loop, a command would otherwise swallow the loop's input.
 */
import {readdirSync} from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {expectOk, hvmem, scratch} from './run.js'

const commandFiles = readdirSync(new URL('../../src/commands', import.meta.url), {recursive: true, encoding: 'utf8'}).filter((f) => f.endsWith('.ts'))

describe('standard input', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    await expectOk(dir, 'heap', 'init')
  })
  afterAll(async () => cleanup())

  it('every argument of every command is marked ignoreStdin', async () => {
    expect(commandFiles.length).toBeGreaterThan(20)
    for (const file of commandFiles) {
      const command = (await import(/* @vite-ignore */ `../../src/commands/${file}`)) as {default: {args?: Record<string, {ignoreStdin?: boolean}>}}
      for (const [name, arg] of Object.entries(command.default.args ?? {})) expect(arg.ignoreStdin, `${file}: ${name}`).toBe(true)
    }
  })

  it('`mem read ADDR` with a pipe on stdin reads its default 64 bytes, and leaves the pipe alone', async () => {
    const r = await hvmem(dir, ['mem', 'read', '0x4100_0000'], {}, '5\n')
    expect(r.code).toBe(0)
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(4)
  })

  it('`snapshot info` with a pipe on stdin reads --snapshot, not a file named by stdin', async () => {
    const r = await hvmem(dir, ['snapshot', 'info', '--json'], {}, 'no-such-file.snap\n')
    expect(r.code).toBe(0)
    expect((JSON.parse(r.stdout) as {file: string}).file).toBe('./hvmem.snap')
  })
})
