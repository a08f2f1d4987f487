/** The bundled build (scripts/build.mjs): every command file is found, and the bundle is what runs. */
import {readFile, readdir} from 'node:fs/promises'
import {describe, expect, it} from 'vitest'

import {hvmem, scratch} from './run.js'

const root = new URL('../../', import.meta.url)

describe('the build', () => {
  it('lists every command under src/commands in the manifest, by its file path', async () => {
    const files = (await readdir(new URL('src/commands/', root), {recursive: true})).filter((f) => f.endsWith('.ts'))
    const ids = files.map((f) => f.replace(/\.ts$/, '').split(/[\\/]/).filter((p) => p !== 'index').join(':')).sort()
    const manifest = JSON.parse(await readFile(new URL('oclif.manifest.json', root), 'utf8')) as {commands: Record<string, unknown>}
    expect(Object.keys(manifest.commands).sort()).toEqual(ids)
  })

  it('runs the ASCII bundle with a code cache made for it', async () => {
    const bundle = await readFile(new URL('dist/hvmem.cjs', root))
    expect(bundle.every((byte) => byte < 0x80)).toBe(true)
    const {crc32} = await import('node:zlib')
    const cache = await readFile(new URL('dist/hvmem.cjs.cache', root))
    expect(cache.readUInt32LE(0)).toBe(crc32(bundle))
    const {dir, snap, cleanup} = await scratch()
    try {
      expect((await hvmem(dir, ['heap', 'init', '-s', snap])).code).toBe(0)
      const r = await hvmem(dir, ['alloc', 'page', '-s', snap], {HVMEM_DEBUG_CODE_CACHE: '1'})
      expect(r).toEqual({code: 0, stdout: '0x41000000\n', stderr: 'hvmem: code cache used\n'})
    } finally {
      await cleanup()
    }
  })
})
