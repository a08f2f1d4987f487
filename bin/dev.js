#!/usr/bin/env node
// Runs the TypeScript sources directly (no bundle), for development: the commands under src/commands
// and the hooks under src/hooks are imported through tsx and handed to oclif in place of the bundle's
// (dist/commands.js, which package.json's explicit command discovery names, reads them from here).
import {readdirSync} from 'node:fs'
import {join, relative, sep} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {execute} from '@oclif/core'
import {register} from 'tsx/esm/api'

// tsx compiles the TypeScript sources as they are imported
register()

const src = fileURLToPath(new URL('../src/', import.meta.url))
const files = (dir) =>
  readdirSync(join(src, dir), {withFileTypes: true, recursive: true})
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath ?? e.path, e.name))
const load = async (file) => (await import(pathToFileURL(file).href)).default

const COMMANDS = {}
for (const file of files('commands')) {
  const parts = relative(join(src, 'commands'), file).replace(/\.ts$/, '').split(sep)
  if (parts.at(-1) === 'index') parts.pop()
  COMMANDS[parts.join(':')] = await load(file)
}
const bundle = {COMMANDS}
for (const file of files('hooks')) bundle[relative(join(src, 'hooks'), file).replace(/\.ts$/, '').replace(/[-/\\]([a-z0-9])/g, (_, c) => c.toUpperCase())] = await load(file)
globalThis[Symbol.for('hvmem.bundle')] = bundle

await execute({development: true, dir: import.meta.url})
