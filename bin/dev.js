#!/usr/bin/env node
// Runs the TypeScript sources directly (no bundle), for development: the commands under src/commands
// and the hooks under src/hooks are imported through tsx and handed to oclif in place of the bundle's
// (dist/commands.cjs, which package.json's explicit command discovery names, reads them from here).
import {join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {execute} from '@oclif/core'
import {register} from 'tsx/esm/api'

import {commandId, hookName, sources} from '../scripts/discover.mjs'

// tsx compiles the TypeScript sources as they are imported
register()

const root = fileURLToPath(new URL('../', import.meta.url))
const load = async (file) => (await import(pathToFileURL(join(root, file)).href)).default

const COMMANDS = {}
for (const file of sources('src/commands')) COMMANDS[commandId(file)] = await load(file)
const bundle = {COMMANDS}
for (const file of sources('src/hooks')) bundle[hookName(file)] = await load(file)
globalThis[Symbol.for('hvmem.bundle')] = bundle

await execute({development: true, dir: import.meta.url})
