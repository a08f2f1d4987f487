#!/usr/bin/env node
// Runs hvmem from its esbuild bundle, dist/hvmem.cjs (scripts/build.mjs), compiled with V8's code
// cache dist/hvmem.cjs.cache when that matches the bundle: start-up then skips parsing and compiling
// the bundle's start-up code (docs/performance.md). Without a usable cache it compiles as usual.
// CommonJS, as the bundle and dist/commands.cjs are: a start-up that never initialises Node's ES
// module loader (5-10 ms of every command, docs/performance.md).
'use strict'
const {readFileSync, renameSync, writeFileSync} = require('node:fs')
const {createRequire} = require('node:module')
const {dirname, join} = require('node:path')
const {pathToFileURL} = require('node:url')
const vm = require('node:vm')

const file = join(__dirname, '../dist/hvmem.cjs')
const cacheFile = `${file}.cache`
const source = readFileSync(file)
// The bundle's last line names its build: `//hvmem-build XXXXXXXX`, the CRC-32 of the text before it
// in hex (scripts/build.mjs), read here rather than computed (zlib and the CRC of 770 KB were 3-5 ms
// of every start-up). A bundle without it has no cache.
const build = /^\/\/hvmem-build ([0-9a-f]{8})\n$/.exec(source.toString('latin1', source.length - 23))
const buildId = build === null ? undefined : Number.parseInt(build[1], 16)
let cachedData
try {
  // The cache file: the build it was made for (4 bytes LE), then V8's data.
  const cache = readFileSync(cacheFile)
  if (cache.length > 4 && buildId !== undefined && cache.readUInt32LE(0) === buildId) cachedData = cache.subarray(4)
} catch {
  // no cache: compile as usual
}
// (The bundle is ASCII, checked by the build: latin1 decodes it by plain copy.)
// A CommonJS module wrapper, plus __hvmemImport: the bundle's dynamic imports (oclif loading a plugin's ESM
// commands) go through this module's import(), as vm.Script code has no loader of its own.
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __hvmemImport) {${source.toString('latin1')}\n})`, {filename: file, cachedData})
const bundle = {exports: {}}
script.runInThisContext()(bundle.exports, createRequire(file), bundle, file, dirname(file), (specifier) => import(specifier))
globalThis[Symbol.for('hvmem.bundle')] = bundle.exports
if (process.env.HVMEM_DEBUG_CODE_CACHE) process.stderr.write(`hvmem: code cache ${cachedData === undefined ? 'missing or stale' : script.cachedDataRejected ? 'rejected' : 'used'}\n`)

if (process.env.HVMEM_WRITE_CODE_CACHE) {
  // scripts/build.mjs --code-cache: save the cache once the command has run (its functions compiled).
  process.on('exit', () => {
    const header = Buffer.alloc(4)
    if (buildId === undefined) throw new Error('dist/hvmem.cjs has no build line: rebuild it (npm run bundle)')
    header.writeUInt32LE(buildId, 0)
    writeFileSync(`${cacheFile}.tmp`, Buffer.concat([header, script.createCachedData()]))
    renameSync(`${cacheFile}.tmp`, cacheFile)
  })
}

void bundle.exports.execute({dir: pathToFileURL(__filename).href})
