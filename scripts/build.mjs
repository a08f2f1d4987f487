#!/usr/bin/env node
/**
 * Builds the CLI as one esbuild bundle (docs/performance.md), in two steps:
 *
 *   node scripts/build.mjs               dist/hvmem.cjs: every command (discovered under src/commands, each
 *                                        evaluated only when it runs), the entry (src/cli/execute.ts),
 *                                        every hook (src/hooks), @oclif/core and the other dependencies,
 *                                        plus dist/commands.cjs, the module oclif's explicit command
 *                                        discovery reads (package.json oclif.commands and oclif.hooks).
 *   node scripts/build.mjs --code-cache  dist/hvmem.cjs.cache: V8's code cache for the bundle, taken
 *                                        after a training run of `heap status`, so bin/run.cjs neither
 *                                        parses nor compiles the functions a command start-up uses.
 *
 * `npm run build` runs tsc (type check only), the bundle, `oclif manifest`, then the code cache.
 *
 * The bundle is built into a fresh folder, `.dist-<pid>`, and swapped in whole (two renames: dist/ is
 * missing for the instant between them, not for the seconds a build takes): `npm test` and
 * `npm install -g .` rebuild through `pretest` and `prepare`, and an hvmem running from this checkout
 * meanwhile must keep working. The code cache is written beside the bundle with a temp file and a rename.
 */
import {build} from 'esbuild'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {crc32} from 'node:zlib'

import {commandId, hookName, sources} from './discover.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/**
 * Start-up costs of dependencies that do nothing for hvmem, cut from their bundled copies (each only
 * if its text is found; the build says so otherwise). In @oclif/core:
 * - index.js checks the Node version against the engines of the package.json next to it: in a bundle
 *   that is hvmem's own, which npm checks at install; it costs a semver evaluation and a file read.
 * - plugin.js sorts each plugin's manifest commands with localeCompare, whose first call loads ICU's
 *   collator (4-5 ms). hvmem's command ids sort the same by code units (checked below), and the
 *   help and autocomplete plugins' ids too.
 * - logger.js loads the debug package for every logger it makes (each command's init makes one),
 *   and debug loads tty, util, os and supports-color. Its loggers print only namespaces the DEBUG
 *   variable names (hvmem never enables one in code), so without DEBUG they are functions that do
 *   nothing, and debug is not loaded.
 * - command.js adds a listener to process.stdout as it loads (to swallow EPIPE), which makes the
 *   stream (3-5 ms: Node's stream modules): hvmem's own guard (src/cli/output.ts) reports stdout's
 *   errors, and writes a file or /dev/null without the stream.
 * - ux/index.js makes its action (a spinner, or plain text when stderr is no terminal) as it loads,
 *   which makes process.stderr: for a pipe that loads net (3 ms with the stream). hvmem shows no
 *   action; oclif stops it after an error. It is made at its first use instead.
 * In chalk, its copy of supports-color asks tty.isatty(1) and isatty(2) as it loads (hvmem decides its
 * colours itself, src/cli/style.ts, but imports chalk), and Node's tty module loads net (2 ms). The
 * same answers without it, unless a descriptor may be a terminal: one that is not a character device
 * (a pipe, a file) is not one, and stdout and stderr are asked of the streams Node makes for them,
 * which load tty only for a terminal; and a memory device (/dev/null) is none, without asking the stream.
 */
const DEPENDENCY_PATCHES = [
  {file: /@oclif[\\/]core[\\/]lib[\\/]index\.js$/, from: '\ncheckNodeVersion();\n', to: '\n/* hvmem: engines are checked by npm */\n'},
  {
    file: /@oclif[\\/]core[\\/]lib[\\/]command\.js$/,
    from: `process.stdout.on('error', (err) => {
    if (err && err.code === 'EPIPE')
        return;
    throw err;
});`,
    to: '/* hvmem: stdout errors are reported by src/cli/output.ts, which guards process.stdout when it is made */',
  },
  {file: /@oclif[\\/]core[\\/]lib[\\/]config[\\/]plugin\.js$/, from: '.sort((a, b) => a.id.localeCompare(b.id));', to: '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));'},
  {
    file: /@oclif[\\/]core[\\/]lib[\\/]logger\.js$/,
    from: 'const debug_1 = __importDefault(require("debug"));',
    to: '/* hvmem: the debug package logs only what DEBUG names; without it, its loggers do nothing */\nconst debug_1 = __importDefault(process.env.DEBUG ? require("debug") : () => () => {});',
  },
  {
    file: /@oclif[\\/]core[\\/]lib[\\/]ux[\\/]index\.js$/,
    from: `const ACTION_TYPE = (Boolean(process.stderr.isTTY) &&
    !process.env.CI &&
    !['dumb', 'emacs-color'].includes(process.env.TERM) &&
    'spinner') ||
    'simple';
exports.action = ACTION_TYPE === 'spinner' ? new spinner_1.default() : new simple_1.default();`,
    to: `/* hvmem: the action is made at its first use (making it makes process.stderr) */
let action;
const makeAction = () => (action ??= ((Boolean(process.stderr.isTTY) &&
    !process.env.CI &&
    !['dumb', 'emacs-color'].includes(process.env.TERM) &&
    'spinner') ||
    'simple') === 'spinner' ? new spinner_1.default() : new simple_1.default());
Object.defineProperty(exports, 'action', { enumerable: true, get: makeAction });`,
  },
  {file: /@oclif[\\/]core[\\/]lib[\\/]ux[\\/]index\.js$/, from: '    action: exports.action,\n', to: '    get action() {\n        return makeAction();\n    },\n'},
  {
    file: /chalk[\\/]source[\\/]vendor[\\/]supports-color[\\/]index\.js$/,
    from: "import tty from 'node:tty';",
    to: `import {fstatSync} from 'node:fs';
/* hvmem: tty.isatty without Node's tty module unless the descriptor may be a terminal */
const tty = {
\tisatty(fd) {
\t\ttry {
\t\t\tconst stat = fstatSync(fd);
\t\t\tif (!stat.isCharacterDevice()) return false;
\t\t\t/* a memory device (Linux's major 1: /dev/null, /dev/full) is no terminal */
\t\t\tif (process.platform === 'linux' && ((stat.rdev >> 8) & 0xfff) === 1) return false;
\t\t} catch {
\t\t\treturn false;
\t\t}
\t\tif (fd === 1) return process.stdout.isTTY === true;
\t\tif (fd === 2) return process.stderr.isTTY === true;
\t\treturn require('node:tty').isatty(fd);
\t},
};`,
  },
]

/**
 * Modules that running one of hvmem's commands does not use, but that @oclif/core's own modules
 * require at their top, so that a bundle evaluates them (and V8's code cache holds them) at every
 * start-up. Each `require` named here, at the top of the oclif module it is listed for, becomes
 * `__hvmemLazy(() => require(...))` (LAZY_HELPER): a stand-in that requires the module when first
 * used, so `--help`, an error's text or a glob still get the real one (docs/performance.md).
 * - index.js: every module of its own (`./...`), which it re-exports: hvmem's direct start
 *   (src/cli/direct.ts) reads Command, Flags, Args, Errors and ux, never Config, execute or help.
 * - command.js: ./config, for the static `Command.run`, which hvmem's direct start does not call.
 * - anywhere in oclif: the help renderer and its templates (ejs), globbing for pattern-discovered
 *   commands and plugins (tinyglobby, minimatch), rc files (lilconfig), spinners, error text
 *   wrapping, Node's readline (for a `-` argument read from stdin), Node's fs/promises (its
 *   file and directory flag checks; loading it loads Node's streams and readline), and the terminal
 *   widths for wrapping (screen.js: it makes process.stderr to ask, which loads net for a pipe).
 * - ux/theme.js: ansis and oclif's supports-color, for colouring with a theme (an error's text, JSON
 *   to a terminal); supports-color loads tty and os. ux/action/spinner.js: ansis, for the spinner
 *   (ansis asks process.stdout.isTTY as it loads, which makes the stream: src/cli/output.ts).
 */
const LAZY_OCLIF_REQUIRES = [
  {file: /@oclif[\\/]core[\\/]lib[\\/]index\.js$/, specifiers: (specifier) => specifier.startsWith('./')},
  {file: /@oclif[\\/]core[\\/]lib[\\/]command\.js$/, specifiers: ['./config']},
  {
    file: /@oclif[\\/]core[\\/]lib[\\/]/,
    specifiers: [
      './help',
      '../help/index',
      '../help/util',
      './help/util',
      'ejs',
      'tinyglobby',
      'minimatch',
      'lilconfig',
      'cli-spinners',
      'wrap-ansi',
      'indent-string',
      'clean-stack',
      'node:readline',
      'node:fs/promises',
      '../screen',
      '../../screen',
    ],
  },
  {file: /@oclif[\\/]core[\\/]lib[\\/]ux[\\/]theme\.js$/, specifiers: ['ansis', './supports-color']},
  {file: /@oclif[\\/]core[\\/]lib[\\/]ux[\\/]action[\\/]spinner\.js$/, specifiers: ['ansis']},
]
const LAZY_REQUIRE = /^(const|var) (\w+) = (__importDefault\(|__importStar\()?require\("([^"]+)"\)(\)?);$|^exports\.(\w+) = (__importStar\()require\("([^"]+)"\)\);$/gm

/**
 * The stand-in: a Proxy over the module, loaded at the first property read, call or key listing (an
 * arrow function as target, so that the Proxy may be called and has no non-configurable keys).
 */
const LAZY_HELPER = `function __hvmemLazy(load) {
  let loaded
  const m = () => (loaded ??= load())
  return new Proxy(() => {}, {
    get: (_, key) => Reflect.get(m(), key),
    has: (_, key) => Reflect.has(m(), key),
    set: (_, key, value) => Reflect.set(m(), key, value),
    ownKeys: () => Reflect.ownKeys(m()),
    getOwnPropertyDescriptor: (_, key) => {
      const d = Reflect.getOwnPropertyDescriptor(m(), key)
      return d && {...d, configurable: true}
    },
    apply: (_, self, args) => Reflect.apply(m(), self, args),
  })
}`

/** The rule of LAZY_OCLIF_REQUIRES that makes `specifier`, required at the top of the module at `path`, lazy, if one does. */
function lazyRule(path, specifier) {
  return LAZY_OCLIF_REQUIRES.find((rule) => rule.file.test(path) && (typeof rule.specifiers === 'function' ? rule.specifiers(specifier) : rule.specifiers.includes(specifier)))
}

/** `text`, the module at `path`, with the requires LAZY_OCLIF_REQUIRES names made lazy; `seen` maps each rule used to the specifiers it made lazy. */
function lazyRequires(path, text, seen) {
  return text.replace(LAZY_REQUIRE, (line, decl, name, wrap = '', spec, close = '', exported, starWrap, exportedSpec) => {
    const specifier = spec ?? exportedSpec
    const rule = lazyRule(path, specifier)
    if (rule === undefined) return line
    seen.set(rule, (seen.get(rule) ?? new Set()).add(specifier))
    return exported === undefined
      ? `${decl} ${name} = __hvmemLazy(() => ${wrap}require(${JSON.stringify(specifier)})${close});`
      : `exports.${exported} = __hvmemLazy(() => ${starWrap}require(${JSON.stringify(specifier)})));`
  })
}

/**
 * Rewrites dependencies as they are bundled: their dynamic imports (oclif's module loader) call
 * `__hvmemImport`, as code compiled by vm.Script (how bin/run.cjs loads the bundle, to use a code
 * cache) has no module loader of its own for `import()`: bin/run.cjs passes its own in. And
 * DEPENDENCY_PATCHES.
 */
function dependencyRewrites(patches, lazySeen) {
  return {
    name: 'hvmem-dependency-rewrites',
    setup(b) {
      b.onLoad({filter: /node_modules[\\/].*\.[cm]?js$/}, async ({path}) => {
        let text = await readFile(path, 'utf8')
        let changed = false
        for (const patch of patches) {
          if (!patch.file.test(path)) continue
          if (text.includes(patch.from)) {
            text = text.replace(patch.from, patch.to)
            changed = true
          } else console.warn(`build: ${path} no longer holds ${JSON.stringify(patch.from)}; not patched`)
        }
        if (/@oclif[\\/]core[\\/]lib[\\/]/.test(path)) {
          const lazy = lazyRequires(path, text, lazySeen)
          changed ||= lazy !== text
          text = lazy
        }
        if (/\bawait\s+import\s*\(/.test(text)) {
          text = text.replace(/\bawait\s+import\s*\((?!\s*['"`])/g, 'await __hvmemImport(')
          changed = true
        }
        return changed ? {contents: text, loader: 'js'} : undefined
      })
    },
  }
}

async function bundle() {
  const commands = sources('src/commands')
  const hooks = sources('src/hooks')
  const lines = [`import {execute as run} from './src/cli/execute.js'`]
  // Each command is a getter that require()s its module: esbuild wraps a module reached only by
  // require() in a lazy initialiser, so a start-up evaluates the one command it runs and what that
  // imports, not all of them (oclif's explicit discovery reads just the id it runs, given the manifest).
  lines.push(`export const COMMANDS = {${commands.map((file) => `get ${JSON.stringify(commandId(file))}() { return require('./${file.replace(/\.ts$/, '.js')}').default }`).join(', ')}}`)
  for (const file of hooks) lines.push(`export {default as ${hookName(file)}} from './${file.replace(/\.ts$/, '.js')}'`)
  // bin/run.cjs's entry: oclif's execute, with the plugins loaded only when the line may need them (src/cli/execute.ts)
  lines.push(`export const execute = ({dir}) => run(dir, COMMANDS)`)
  const ids = commands.map(commandId)
  const byUnits = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const byLocale = [...ids].sort((a, b) => a.localeCompare(b))
  const patches = byUnits.join() === byLocale.join() ? DEPENDENCY_PATCHES : DEPENDENCY_PATCHES.filter((p) => !p.from.includes('localeCompare'))
  if (patches !== DEPENDENCY_PATCHES) console.warn("build: command ids sort differently by code units and by locale; keeping oclif's localeCompare")
  removeLeftovers()
  const lazySeen = new Map()
  const out = `.dist-${process.pid}`
  rmSync(join(root, out), {recursive: true, force: true})
  await build({
    absWorkingDir: root,
    stdin: {contents: lines.join('\n'), resolveDir: root, sourcefile: 'hvmem-entry.ts', loader: 'ts'},
    outfile: `${out}/hvmem.cjs`,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    minify: !process.env.HVMEM_NO_MINIFY,
    legalComments: 'none',
    // oclif's optional TypeScript support (linked plugins in development) must not be bundled: TypeScript alone is 10 MB.
    external: ['typescript', 'ts-node', 'tsx'],
    logLevel: 'warning',
    logOverride: {'empty-import-meta': 'silent'},
    plugins: [dependencyRewrites(patches, lazySeen)],
    banner: {js: LAZY_HELPER},
    // ASCII only (esbuild's default, stated): bin/run.cjs reads the bundle as latin1, a plain copy
    charset: 'ascii',
  })
  for (const rule of LAZY_OCLIF_REQUIRES) {
    const made = lazySeen.get(rule) ?? new Set()
    const missing = typeof rule.specifiers === 'function' ? (made.size === 0 ? ['any module'] : []) : rule.specifiers.filter((specifier) => !made.has(specifier))
    if (missing.length > 0) console.warn(`build: oclif's ${rule.file} no longer requires ${missing.join(', ')} as expected; not made lazy`)
  }
  // esbuild leaves a few non-ASCII characters in regular expression literals: escaped here (\uXXXX
  // means the same in strings, templates and regular expressions, which is where they can be).
  const bundled = readFileSync(join(root, out, 'hvmem.cjs'), 'utf8')
  // An import() left in the bundle would fail under vm.Script (see dependencyRewrites): src/ must not
  // import() a module esbuild leaves external (a Node builtin); bundled ones become require()s.
  const left = /(?<![\w$.])import\((?!\))/.exec(bundled)
  if (left) throw new Error(`dist/hvmem.cjs has a dynamic import() at ${left.index}: ${bundled.slice(left.index - 40, left.index + 60)}`)
  // Its last line names the build, for bin/run.cjs to match the code cache to it without computing
  // a CRC of the whole bundle at every start-up: the CRC-32 of the text before it.
  const ascii = bundled.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const text = ascii.endsWith('\n') ? ascii : `${ascii}\n`
  writeFileSync(join(root, out, 'hvmem.cjs'), `${text}//hvmem-build ${crc32(Buffer.from(text, 'latin1')).toString(16).padStart(8, '0')}\n`)
  // What oclif requires to find commands and hooks: the bundle bin/run.cjs loaded (with its code
  // cache), or, for other tools (oclif manifest, oclif readme), the bundle required afresh. CommonJS,
  // so that oclif require()s it: an import() would start Node's ES module loader at every start-up.
  writeFileSync(
    join(root, out, 'commands.cjs'),
    `// Generated by scripts/build.mjs: the commands and hooks of dist/hvmem.cjs, for oclif's explicit discovery.
'use strict'
const bundle = globalThis[Symbol.for('hvmem.bundle')] ?? require('./hvmem.cjs')
module.exports = {COMMANDS: bundle.COMMANDS, ${hooks.map((file) => `${hookName(file)}: bundle.${hookName(file)}`).join(', ')}}
`,
  )
  swapIn(out)
  console.log(`bundled ${commands.length} commands and ${hooks.length} hook(s) into dist/hvmem.cjs`)
}

/** Puts the fresh folder `out` in dist/'s place: the old dist/ is moved aside, then removed. */
function swapIn(out) {
  const dist = join(root, 'dist')
  const old = join(root, `.dist-old-${process.pid}`)
  let moved = false
  try {
    renameSync(dist, old)
    moved = true
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
  }
  renameSync(join(root, out), dist)
  if (moved) rmSync(old, {recursive: true, force: true})
}

/** Folders left by a build that was killed (their process gone). */
function removeLeftovers() {
  for (const name of readdirSync(root)) {
    const pid = Number(/^\.dist-(?:old-)?(\d+)$/.exec(name)?.[1])
    if (!pid || pid === process.pid) continue
    try {
      process.kill(pid, 0)
    } catch {
      rmSync(join(root, name), {recursive: true, force: true})
    }
  }
}

/** Trains the code cache: `heap status` on a scratch snapshot, with bin/run.cjs told to save the cache at exit. */
function codeCache() {
  const dir = mkdtempSync(join(tmpdir(), 'hvmem-build-'))
  try {
    const run = (args, env = {}) => execFileSync(process.execPath, [join(root, 'bin/run.cjs'), ...args], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'ignore', 'inherit']})
    run(['heap', 'init', '-s', 'train.snap'])
    run(['heap', 'status', '-s', 'train.snap'], {HVMEM_WRITE_CODE_CACHE: '1'})
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
  console.log('wrote dist/hvmem.cjs.cache')
}

if (process.argv.includes('--code-cache')) codeCache()
else await bundle()
