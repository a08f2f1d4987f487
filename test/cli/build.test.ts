/** The bundled build (scripts/build.mjs): every command file is found, and the bundle is what runs. */
import {execFile, spawnSync} from 'node:child_process'
import {copyFile, cp, mkdir, readFile, readdir, stat, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

import {BIN, type Run, hvmem, hvmemEnv, scratch} from './run.js'

const root = new URL('../../', import.meta.url)

describe('the build', () => {
  it('builds into a fresh folder and swaps it in: an hvmem run from the checkout meanwhile keeps working', async () => {
    // a file only the old dist/ holds
    await writeFile(new URL('dist/old-build-marker', root), '')
    const build = (args: string[]): Promise<void> =>
      new Promise((resolve, reject) =>
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an ExecFileException is an Error; its Omit<> type hides that from the rule
        execFile(process.execPath, [fileURLToPath(new URL('scripts/build.mjs', root)), ...args], {cwd: fileURLToPath(root)}, (error) => (error ? reject(error) : resolve())),
      )
    let building = true
    const bundled = build([]).finally(() => {
      building = false
    })
    const {dir, cleanup} = await scratch()
    const failures: string[] = []
    try {
      // runs while the bundle is built (at least one): each must find dist/ whole
      do {
        const r = await hvmem(dir, ['--version'])
        if (r.code !== 0) failures.push(r.stderr.split('\n')[0]!)
      } while (building)
      await bundled
    } finally {
      await cleanup()
    }
    expect(failures).toEqual([])
    // a new folder in dist/'s place, and nothing left beside it
    await expect(stat(new URL('dist/old-build-marker', root))).rejects.toMatchObject({code: 'ENOENT'})
    expect((await readdir(root)).filter((name) => name.startsWith('.dist-'))).toEqual([])
    // the code cache for the new bundle, as `npm run build` makes it (the next test checks it)
    await build(['--code-cache'])
  })

  it('lists every command under src/commands in the manifest, by its file path', async () => {
    const files = (await readdir(new URL('src/commands/', root), {recursive: true})).filter((f) => f.endsWith('.ts'))
    const ids = files
      .map((f) =>
        f
          .replace(/\.ts$/, '')
          .split(/[\\/]/)
          .filter((p) => p !== 'index')
          .join(':'),
      )
      .sort()
    const manifest = JSON.parse(await readFile(new URL('oclif.manifest.json', root), 'utf8')) as {commands: Record<string, unknown>}
    expect(Object.keys(manifest.commands).sort()).toEqual(ids)
  })

  it('runs the ASCII bundle with a code cache made for it', async () => {
    const bundle = await readFile(new URL('dist/hvmem.cjs', root))
    expect(bundle.every((byte) => byte < 0x80)).toBe(true)
    // its last line names the build (the CRC-32 of the text before it), and the cache is for that build
    const {crc32} = await import('node:zlib')
    const text = bundle.toString('latin1')
    const line = text.lastIndexOf('//hvmem-build ')
    const id = crc32(bundle.subarray(0, line))
    expect(text.slice(line)).toBe(`//hvmem-build ${id.toString(16).padStart(8, '0')}\n`)
    const cache = await readFile(new URL('dist/hvmem.cjs.cache', root))
    expect(cache.readUInt32LE(0)).toBe(id)
    const {dir, snap, cleanup} = await scratch()
    try {
      expect((await hvmem(dir, ['heap', 'init', '-s', snap])).code).toBe(0)
      const r = await hvmem(dir, ['alloc', 'page', '-s', snap], {HVMEM_DEBUG_CODE_CACHE: '1'})
      expect(r).toEqual({code: 0, stdout: '0x41000000\n', stderr: 'hvmem: code cache used\n'})
    } finally {
      await cleanup()
    }
  })

  // a cache for another build, or a bundle with no build line (edited, or built another way), is not used
  it.each([
    ['names another build', (text: string) => text.replace(/\/\/hvmem-build [0-9a-f]{8}\n$/, '//hvmem-build 00000000\n')],
    ['has no build line', (text: string) => text.replace(/\/\/hvmem-build [0-9a-f]{8}\n$/, '')],
  ])('runs a bundle that %s without the code cache', async (_, edit) => {
    const {dir, snap, cleanup} = await scratch()
    try {
      const copy = join(dir, 'copy')
      await mkdir(join(copy, 'bin'), {recursive: true})
      await cp(new URL('dist/', root), join(copy, 'dist'), {recursive: true})
      for (const file of ['bin/run.cjs', 'package.json', 'oclif.manifest.json']) await copyFile(new URL(file, root), join(copy, file))
      await symlink(fileURLToPath(new URL('node_modules', root)), join(copy, 'node_modules'))
      const bundle = join(copy, 'dist/hvmem.cjs')
      await writeFile(bundle, edit(await readFile(bundle, 'latin1')), 'latin1')
      const run = (args: string[]): Run => {
        const r = spawnSync(process.execPath, [join(copy, 'bin/run.cjs'), ...args], {cwd: dir, env: hvmemEnv({HVMEM_DEBUG_CODE_CACHE: '1'}), encoding: 'utf8'})
        return {code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr}
      }
      expect(run(['heap', 'init', '-s', snap]).code).toBe(0)
      expect(run(['alloc', 'page', '-s', snap])).toEqual({code: 0, stdout: '0x41000000\n', stderr: 'hvmem: code cache missing or stale\n'})
    } finally {
      await cleanup()
    }
  })

  // chalk's supports-color in the bundle asks whether stdout is a terminal without Node's tty module
  // unless it is a character device (scripts/build.mjs, DEPENDENCY_PATCHES): a terminal (script(1)
  // gives the command one) still gets colour, and a pipe from the same terminal does not
  it.each([
    ['a terminal', true, ''],
    ['a pipe', false, ' | cat'],
  ])('heap status on %s (from a terminal): coloured %s', async (_, coloured, pipe) => {
    const {dir, snap, cleanup} = await scratch()
    try {
      expect((await hvmem(dir, ['heap', 'init', '-s', snap])).code).toBe(0)
      const env = hvmemEnv({TERM: 'xterm'})
      delete env.NO_COLOR
      const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} heap status -s ${JSON.stringify(snap)}${pipe}`
      const r = spawnSync('script', ['-qec', command, '/dev/null'], {cwd: dir, env, encoding: 'utf8'})
      expect(r.status).toBe(0)
      expect(r.stdout).toContain('0x41000000')
      expect(r.stdout.includes('\u001b[')).toBe(coloured)
    } finally {
      await cleanup()
    }
  })

  // the bundle's oclif loads the debug package only when DEBUG is set (scripts/build.mjs, DEPENDENCY_PATCHES)
  it.each([
    ['oclif:*', /oclif:hvmem:heap:status init version: @oclif\/core@[\d.]+ argv: \[ '-s', '[^']*' \]\n/],
    ['hvmem:other', /^$/],
    ['', /^$/],
  ])('logs oclif debug lines with DEBUG=%j as the debug package does', async (debug, stderr) => {
    const {dir, snap, cleanup} = await scratch()
    try {
      expect((await hvmem(dir, ['heap', 'init', '-s', snap])).code).toBe(0)
      const r = await hvmem(dir, ['heap', 'status', '-s', snap], {DEBUG: debug})
      expect(r.code).toBe(0)
      expect(r.stderr).toMatch(stderr)
    } finally {
      await cleanup()
    }
  })
})
