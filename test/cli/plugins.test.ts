/** Help topics (@oclif/plugin-help) and shell completion (@oclif/plugin-autocomplete) through the real binary. */
import {readFile} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {hvmem, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
})
afterAll(async () => cleanup())

// The completion cache goes under XDG_CACHE_HOME (or HOME): keep it in the scratch directory.
const env = (): Record<string, string> => ({HOME: dir, XDG_CACHE_HOME: `${dir}/cache`, XDG_DATA_HOME: `${dir}/data`, XDG_CONFIG_HOME: `${dir}/config`})

describe('help and completion', () => {
  it("`hvmem help TOPIC` lists the topic's commands", async () => {
    const r = await hvmem(dir, ['help', 'map'], env())
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('$ hvmem map COMMAND')
    for (const command of ['map coalesce', 'map protect', 'map region', 'map unmap']) expect(r.stdout).toContain(command)
  })

  it("`hvmem help COMMAND` shows the command's flags", async () => {
    const r = await hvmem(dir, ['help', 'alloc', 'page'], env())
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('$ hvmem alloc page')
    expect(r.stdout).toContain('--count')
  })

  it('`hvmem autocomplete script bash` prints a completion set-up naming hvmem', async () => {
    const r = await hvmem(dir, ['autocomplete', 'script', 'bash'], env())
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('HVMEM_AC_BASH_SETUP_PATH')
  })

  it("the completion cache lists hvmem's commands and their flags", async () => {
    const r = await hvmem(dir, ['autocomplete', '--refresh-cache'], env())
    expect(r.code).toBe(0)
    const bash = await readFile(`${dir}/cache/hvmem/autocomplete/functions/bash/hvmem.bash`, 'utf8')
    expect(bash).toContain('heap:status')
    expect(bash).toContain('--granularity')
  })
})

describe('start-up under NODE_ENV=development (oclif would look for tsx and ts-node at every start)', () => {
  const debugEnv = () => ({...env(), NODE_ENV: 'development', DEBUG: 'oclif:config:ts-path'})
  const lookups = (stderr: string) => stderr.split('\n').filter((line) => line.includes('oclif:config:ts-path'))

  it('hvmem ["help","heap"] skips the TypeScript lookup for every plugin it loads', async () => {
    const r = await hvmem(dir, ['help', 'heap'], debugEnv())
    expect(r.code).toBe(0)
    const lines = lookups(r.stderr)
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line).toMatch(/Skipping typescript path lookup for \S+ because enableAutoTranspile is explicitly set to false$/)
  })

  it('hvmem ["heap","init","-s","dev.snap","--force"] starts directly: no plugin loaded, nothing looked up', async () => {
    const r = await hvmem(dir, ['heap', 'init', '-s', 'dev.snap', '--force'], debugEnv())
    expect(r.code).toBe(0)
    expect(lookups(r.stderr)).toEqual([])
  })
})
