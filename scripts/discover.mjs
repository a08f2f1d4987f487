/**
 * Where hvmem's commands and hooks are found (scripts/build.mjs for the bundle, bin/dev.js for the
 * TypeScript sources): every .ts file under src/commands and src/hooks, named by its path.
 */
import {readdirSync} from 'node:fs'
import {join, relative, sep} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Every .ts file under `dir`, relative to the project root, sorted. */
export function sources(dir) {
  return readdirSync(join(root, dir), {withFileTypes: true, recursive: true})
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) =>
      relative(root, join(e.parentPath ?? e.path, e.name))
        .split(sep)
        .join('/'),
    )
    .sort()
}

/** oclif's command id for a file under src/commands: heap/status.ts -> heap:status (index.ts names its directory). */
export function commandId(file) {
  const parts = file
    .replace(/^src\/commands\//, '')
    .replace(/\.ts$/, '')
    .split('/')
  if (parts.at(-1) === 'index') parts.pop()
  return parts.join(':')
}

/** A hook's export name: command-not-found.ts -> commandNotFound. */
export function hookName(file) {
  return file
    .replace(/^src\/hooks\//, '')
    .replace(/\.ts$/, '')
    .replace(/[-/]([a-z0-9])/g, (_, c) => c.toUpperCase())
}
