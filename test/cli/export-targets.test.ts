/**
 * Issue 14, items 1 and 7: where `snapshot export --raw` may write. The snapshot itself, under any
 * name (symlink, hard link, /proc/self/cwd path), is refused (exit 2) and left byte-identical; an
 * existing file or a symlink needs --force (exit 8); a FIFO, a directory or an empty name is refused
 * at once (exit 2); a full disk or a file-size limit is one line, exit 9, and leaves no partial image
 * (an existing file keeps its old content: the image is written beside it and renamed).
 */
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {link, lstat, readFile, readdir, readlink, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, type Run, hvmem, hvmemEnv, scratch} from './run.js'
import {canMountTmpfs} from '../reliability/proc.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
let original: Buffer
beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
  expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
  expect((await hvmem(dir, ['mem', 'write', '0x4100_0000', '0x1122334455667788'])).code).toBe(0)
  original = await readFile(snap)
})
afterAll(async () => cleanup())

const exportTo = (raw: string, ...flags: string[]): Promise<Run> => hvmem(dir, ['snapshot', 'export', '--raw', raw, ...flags])

/** The one line an error gives, and the snapshot untouched. */
async function refused(r: Run, code: number, message: string | RegExp): Promise<void> {
  expect(r.code, r.stderr).toBe(code)
  expect(r.stdout).toBe('')
  expect(r.stderr.split('\n')).toHaveLength(2)
  if (typeof message === 'string') expect(r.stderr).toBe(`hvmem: ${message}\n`)
  else expect(r.stderr).toMatch(message)
  expect((await readFile(snap)).equals(original)).toBe(true)
}

const leftovers = async (): Promise<string[]> => (await readdir(dir)).filter((name) => name.includes('hvmem-tmp'))

describe('the snapshot itself, under another name, is never written (exit 2, even with --force)', () => {
  beforeAll(async () => {
    await symlink('hvmem.snap', join(dir, 'sym.snap'))
    await link(snap, join(dir, 'hard.snap'))
  })

  it.each([
    ['a symbolic link to it', 'sym.snap'],
    ['a hard link to it', 'hard.snap'],
    ['a /proc/self/cwd path to it', '/proc/self/cwd/hvmem.snap'],
    ['its own name, spelled otherwise', 'ABSOLUTE'],
  ])('%s', async (_what, name) => {
    const raw = name === 'ABSOLUTE' ? snap : name
    for (const force of [[], ['--force']]) await refused(await exportTo(raw, ...force), 2, `--raw ${raw} is the snapshot ./hvmem.snap itself (the same file); write the image to another file`)
    expect((await lstat(join(dir, 'sym.snap'))).isSymbolicLink()).toBe(true)
  })
})

describe('existing files and symbolic links need --force', () => {
  it('an existing file: exit 8 and left alone; with --force replaced whole (a new file, renamed over it)', async () => {
    await writeFile(join(dir, 'old.bin'), 'old contents')
    await refused(await exportTo('old.bin'), 8, '--raw old.bin already exists; pass --force to replace it, or choose another file')
    expect(await readFile(join(dir, 'old.bin'), 'utf8')).toBe('old contents')
    expect((await exportTo('old.bin', '--force')).code).toBe(0)
    const image = await readFile(join(dir, 'old.bin'))
    expect(image.length).toBe(16 << 20)
    expect(image.readBigUInt64LE(0)).toBe(0x1122_3344_5566_7788n)
  })

  it('a symbolic link: exit 8 naming its target; with --force the file it points at is written and the link stays', async () => {
    await symlink('target.bin', join(dir, 'link.bin'))
    await refused(await exportTo('link.bin'), 8, '--raw link.bin is a symbolic link (to target.bin); pass --force to replace the file it points at, or choose another file')
    expect(await readdir(dir)).not.toContain('target.bin')
    expect((await exportTo('link.bin', '--force')).code).toBe(0)
    expect(await readlink(join(dir, 'link.bin'))).toBe('target.bin')
    expect((await readFile(join(dir, 'target.bin'))).length).toBe(16 << 20)
  })
})

describe('targets that are not files', () => {
  it('--raw "" is a usage error (exit 2)', async () => {
    await refused(await exportTo(''), 2, '--raw is empty; pass the file to write the image to')
  })

  it('a directory (exit 2)', async () => {
    await refused(await exportTo('.'), 2, '--raw . is a directory; pass the name of the image file to write')
  })

  it('a FIFO with no reader is refused at once, never opened (exit 2; it used to hang)', async () => {
    execFileSync('mkfifo', [join(dir, 'pipe')])
    await refused(await exportTo('pipe'), 2, '--raw pipe is not a regular file (a FIFO, socket or block device); pass the name of the image file to write')
  })

  it('/dev/full: one line, exit 9 (I/O), no stack trace', async () => {
    await refused(await exportTo('/dev/full'), 9, 'cannot write /dev/full: no space left on the device (ENOSPC)')
  })
})

/** Runs hvmem under a shell prefix (prlimit, unshare) in `dir`. */
function wrapped(command: string[], args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), process.execPath, BIN, ...args], {cwd: dir, env: hvmemEnv(), stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code: code ?? -1, stdout, stderr}))
  })
}

const hasPrlimit = spawnSync('prlimit', ['--fsize=1000000', 'true']).status === 0

describe('a write that fails half-way leaves no partial image, and an existing file as it was', () => {
  it.skipIf(!hasPrlimit)('past the file-size limit (EFBIG): exit 9, the old file untouched, no temp file', async () => {
    await writeFile(join(dir, 'keep.bin'), 'keep me')
    const r = await wrapped(['prlimit', '--fsize=1000000'], ['snapshot', 'export', '--raw', 'keep.bin', '--force'])
    await refused(r, 9, 'cannot write keep.bin: the image is larger than the file system or the file-size limit allows (EFBIG); no image was written')
    expect(await readFile(join(dir, 'keep.bin'), 'utf8')).toBe('keep me')
    expect(await leftovers()).toEqual([])
  })

  it.skipIf(!canMountTmpfs)('a full disk (a 1 MiB tmpfs, ENOSPC): exit 9 naming the directory, and nothing left there', async () => {
    const mount = join(dir, 'small')
    const r = await wrapped(
      ['unshare', '-Urm', 'sh', '-c', `mkdir -p "${mount}" && mount -t tmpfs -o size=1m tmpfs "${mount}" || exit 99; "$@"; code=$?; ls -A "${mount}"; exit $code`, 'sh'],
      ['snapshot', 'export', '--raw', 'small/image.bin'],
    )
    // (refused() also checks stdout is empty: `ls -A` of the tmpfs, run after hvmem in its namespace, printed nothing)
    await refused(r, 9, 'cannot write small/image.bin: the file system holding small is full (ENOSPC); no image was written; free some space or write elsewhere')
  })
})
