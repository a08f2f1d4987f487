#!/usr/bin/env node
/**
 * The Rust anchor (issue 13; docs/performance.md): hvmem's core in-process against Google's
 * aarch64-paging 0.12.1 on the same mapping work. `../shared/anchor-bench/` (beside the repository)
 * holds the crate, its vendored dependencies and a timing binary; this file copies it to a writable
 * cache folder, builds it offline with cargo, and runs it and hvmem's counterparts in interleaved
 * rounds, then reports the ratio of the minimums. It never fails on time.
 *
 *   node bench/anchor.js [--rounds N] [--iters N] [--json FILE]
 *
 * Standalone it prints its table; `bench/run.js` (npm run bench) runs it as a child process with
 * --json and prints the table beside the whole-process one. Rounds: 5 (3 with BENCH_QUICK=1, or
 * BENCH_ANCHOR_ROUNDS); each round runs the Rust binary once with --iters N (10, BENCH_ANCHOR_ITERS)
 * and hvmem's loops in this process with as many timed iterations, Rust first in even rounds and
 * hvmem first in odd ones. When cargo or the folder is missing, it prints one note and times the
 * hvmem side alone.
 *
 * hvmem's core is TypeScript: it is bundled here with esbuild (a dev dependency, as the CLI build
 * uses) from src/core into one ESM file in the scratch folder and imported, so it runs as plain JS
 * with no loader in between. The counterparts call only the core's public API: Machine.create,
 * machine.ensureMapper, mapper.mapRegion/unmap/protect, mapper.root, mapper.regime, mapper.geometry, scanTables,
 * walkRanges, walkTables.
 *
 * Environment: HVMEM_ANCHOR_DIR (the anchor-bench folder, default ../shared/anchor-bench from the
 * repository root), HVMEM_ANCHOR_CACHE (where built copies are kept, default
 * $TMPDIR/hvmem-anchor-bench), CARGO (the cargo binary).
 */
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {homedir, tmpdir} from 'node:os'
import {delimiter, dirname, join, relative} from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath, pathToFileURL} from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const GIB = 0x4000_0000
const MIB2 = 0x20_0000

// ---- the Rust side: find cargo, copy, build, run -----------------------------------------------

/** The cargo binary: $CARGO, then PATH, then ~/.cargo/bin (rustup's default, often not on PATH in a non-login shell). */
export function findCargo() {
  const candidates = []
  if (process.env.CARGO) candidates.push(process.env.CARGO)
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) candidates.push(join(dir, 'cargo'))
  candidates.push(join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'bin', 'cargo'))
  for (const c of candidates) {
    try {
      if (statSync(c).isFile() && spawnSync(c, ['--version'], {stdio: 'ignore'}).status === 0) return c
    } catch {
      // not there
    }
  }
  return undefined
}

/** Every file under `dir` (relative paths, sorted), leaving out what a build writes. */
function sourceFiles(dir) {
  const out = []
  const visit = (d) => {
    for (const e of readdirSync(d, {withFileTypes: true})) {
      const p = join(d, e.name)
      const rel = relative(dir, p)
      if (rel === join('rust', 'target') || rel === join('rust', 'Cargo.lock')) continue
      if (e.isDirectory()) visit(p)
      else if (e.isFile()) out.push(rel)
    }
  }
  visit(dir)
  return out.sort()
}

/**
 * The built anchor binary, or a note saying why there is none. The folder is copied (shared/ may be
 * read-only) to a cache folder named by a hash of its sources, so it is rebuilt only when they
 * change; cargo itself then finds nothing to do on later runs.
 */
export function buildAnchor(log = (line) => console.error(line)) {
  const source = process.env.HVMEM_ANCHOR_DIR ?? join(ROOT, '..', 'shared', 'anchor-bench')
  if (!existsSync(join(source, 'rust', 'Cargo.toml'))) return {note: `Rust anchor skipped: ${source} not found (it lies beside the repository, as ../shared/anchor-bench)`}
  const cargo = findCargo()
  if (cargo === undefined) return {note: 'Rust anchor skipped: cargo not found (on PATH, $CARGO or ~/.cargo/bin)'}
  const hash = createHash('sha256')
  for (const rel of sourceFiles(source))
    hash
      .update(rel)
      .update('\0')
      .update(readFileSync(join(source, rel)))
      .update('\0')
  const key = hash.digest('hex').slice(0, 16)
  const cacheRoot = process.env.HVMEM_ANCHOR_CACHE ?? join(tmpdir(), 'hvmem-anchor-bench')
  const copy = join(cacheRoot, key)
  if (!existsSync(join(copy, 'rust', 'Cargo.toml'))) {
    mkdirSync(cacheRoot, {recursive: true})
    const scratch = mkdtempSync(join(cacheRoot, `${key}.tmp-`))
    cpSync(source, scratch, {recursive: true, filter: (p) => !relative(source, p).startsWith(join('rust', 'target'))})
    // the copy keeps the source's modes: make it writable (cargo writes target/ and Cargo.lock)
    const writable = (p) => {
      const dir = statSync(p).isDirectory()
      chmodSync(p, dir ? 0o755 : 0o644)
      if (dir) for (const e of readdirSync(p)) writable(join(p, e))
    }
    writable(scratch)
    try {
      renameSync(scratch, copy)
    } catch {
      rmSync(scratch, {recursive: true, force: true}) // another run put it there first
    }
  }
  const rustDir = join(copy, 'rust')
  const binary = join(rustDir, 'target', 'release', 'bench-rust')
  const fresh = existsSync(binary)
  if (!fresh) log(`anchor: building aarch64-paging's bench offline in ${rustDir} (once per change of its sources)`)
  const t0 = performance.now()
  // rustup's cargo finds rustc through PATH: put cargo's folder first
  const env = {...process.env, PATH: `${dirname(cargo)}${delimiter}${process.env.PATH ?? ''}`}
  const r = spawnSync(cargo, ['build', '--release', '--offline', '--quiet'], {cwd: rustDir, env, encoding: 'utf8', maxBuffer: 1 << 26})
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.status}`)
    return {note: `Rust anchor skipped: cargo build --release --offline failed in ${rustDir}: ${why}`}
  }
  if (!fresh) log(`anchor: built in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return {binary, cargo}
}

/**
 * glibc's malloc gives the top of its heap back to the kernel when more than 128 KiB is free there
 * (M_TRIM_THRESHOLD), so each iteration of the crate's map cases (514 tables, freed after the timer)
 * faults its 2 MiB of tables in afresh: on this VM that is most of their time (a_map_1g_pages about
 * 12 ms with it, 0.4 ms without). V8 keeps its heap between iterations, so the anchor's own figures
 * are taken with the threshold raised (1 GiB: freed memory is reused, as the JS side reuses it);
 * a second run with glibc's defaults is shown in the notes where it differs. Other C libraries
 * ignore the variable.
 */
export const KEEP_HEAP = {GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1073741824'}

/** One run of the anchor binary: its JSON lines by case. */
function runRust(binary, iters, env = {}) {
  const r = spawnSync(binary, ['--iters', String(iters)], {encoding: 'utf8', maxBuffer: 1 << 26, env: {...process.env, ...env}})
  if (r.error || r.status !== 0) throw new Error(`${binary} failed: ${r.error?.message ?? r.stderr.trim().split('\n').at(-1)}`)
  const out = new Map()
  for (const line of r.stdout.split('\n')) {
    if (!line.trim().startsWith('{')) continue
    const row = JSON.parse(line)
    out.set(row.case, row)
  }
  return out
}

// ---- the hvmem side --------------------------------------------------------------------------------

/** hvmem's core (src/core), bundled by esbuild into `dir` and imported. */
export async function loadCore(dir) {
  const {build} = await import('esbuild')
  const outfile = join(dir, 'hvmem-core.mjs')
  await build({
    absWorkingDir: ROOT,
    stdin: {
      contents: `export {Machine} from './src/core/machine.js'\nexport {scanTables, walkRanges, walkTables} from './src/core/walker.js'\n`,
      resolveDir: ROOT,
      sourcefile: 'anchor-entry.ts',
      loader: 'ts',
    },
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  })
  return import(pathToFileURL(outfile).href)
}

/**
 * (c)'s census as a ScanSink (src/core/walker.ts), hvmem's API for a consumer of every entry: the
 * valid leaves by level and the xor of their halves, as the crate's closure counts them. entry()
 * sees table entries; leafPage() a final-level page of entries, or a run of blocks, in one call,
 * counted in local variables (a callback per entry keeps its counts in memory: see the callback row).
 */
class Census {
  levels = [0, 0, 0, 0]
  acc = 0

  entry(w) {
    const {level, lo, hi} = w
    // a valid leaf: a block at levels 1-2, a page at level 3; table entries are followed, not counted
    if (level === 3 ? (lo & 2) !== 0 : (lo & 2) === 0) {
      this.levels[level]++
      this.acc ^= lo ^ hi
    }
  }

  leafPage(w, words, first, last) {
    // a valid leaf: a page at level 3, a block above it
    const bits = w.level === 3 ? 3 : 1
    let leaves = 0
    let acc = 0
    for (let i = first; i <= last; i++) {
      const k = (i & 511) * 2
      const lo = words[k]
      if ((lo & 3) === bits) {
        leaves++
        acc ^= lo ^ words[k + 1]
      }
    }
    this.levels[w.level] += leaves
    this.acc ^= acc
  }
}

/**
 * hvmem's counterpart of each Rust case: `rust` names the crate's case it is compared with, `run()`
 * does one iteration and returns {ms, check} (timing itself, like the crate's), `warm` and `scale`
 * follow the crate's warm-up and iteration counts (d: 50 warm-ups, 20x the iterations), `target` is
 * issue 13's goal for hvmem/Rust (none for the floors), `expect` is the check the crate must print
 * (when it prints one for the same count).
 */
export function hvmemCases(core) {
  const {Machine, scanTables, walkRanges, walkTables} = core
  // 1 GiB of RAM with a 16 MiB heap at 0x4100_0000 (hvmem's `heap init` default layout): memory is
  // sparse, so only the table pages exist; the largest case takes 514 of the heap's 4096 pages.
  const machine = () => Machine.create({ramBase: BigInt(GIB), ramSize: BigInt(GIB), heapBase: 0x4100_0000n, heapSize: 16n * 2n ** 20n})
  const G = BigInt(GIB)
  const M2 = BigInt(MIB2)

  /** (a): a new mapper on a fresh machine, 1 GiB at 0x4000_0000 as pages; the machine is made untimed. */
  const mapPages = () => {
    const m = machine()
    const t = performance.now()
    const {mapper} = m.ensureMapper()
    const r = mapper.mapRegion(G, G, 'normal', {granularity: 'page'})
    return {ms: performance.now() - t, check: r.written[3] === 262_144 && r.newTables.length === 513 ? 262_144 : -r.written[3], machine: m, mapper}
  }
  // the map (c) walks, made once
  let walked
  const pagesMap = () => (walked ??= mapPages())

  /** (d): a fresh machine with 1 GiB at 0x4000_0000 as one L1 block (untimed); `op` is timed alone. */
  const split = (op, ok) => () => {
    const m = machine()
    const {mapper} = m.ensureMapper()
    mapper.mapRegion(G, G, 'normal')
    const t = performance.now()
    const r = op(mapper)
    const ms = performance.now() - t
    return {ms, check: ok(r) ? r.splits : -1}
  }

  // Plain typed-array work, no hvmem code: JavaScript's floor for the same bytes (descriptors as 32-bit halves, as hvmem writes them).
  const buf = new Uint32Array(2 * 262_144)
  const filled = new Uint32Array(2 * 262_144)
  for (let i = 0, a = GIB; i < 262_144; i++, a += 4096) {
    filled[2 * i] = (a | 0x7ff) >>> 0
    filled[2 * i + 1] = 0
  }
  const bytes = new Uint8Array(2 << 20).fill(1)
  // eslint-disable-next-line no-unused-vars -- the floors' loops fold their reads into it so that they are not dead code; never read
  let sink = 0

  return [
    {id: 'a', rust: 'a_map_1g_pages', name: 'a: map 1 GiB as 4 KiB pages (262,144 L3 descriptors, 513 new tables)', target: 1.5, warm: 5, scale: 1, run: mapPages, expect: 262_144},
    {
      id: 'b',
      rust: 'b_map_512g_2m',
      name: 'b: map 512 GiB as 2 MiB blocks (262,144 L2 descriptors, 512 L2 tables)',
      target: 1.5,
      warm: 5,
      scale: 1,
      expect: 262_144,
      run: () => {
        const m = machine()
        const t = performance.now()
        const {mapper} = m.ensureMapper({l2Budget: 512})
        const r = mapper.mapRegion(0n, 512n * G, 'normal', {granularity: '2M'})
        return {ms: performance.now() - t, check: r.newTables.length === 512 ? r.written[2] : -1}
      },
    },
    {
      id: 'c-scan',
      rust: 'c_walk_1g_pages',
      name: "c: visit every descriptor of a's tables (scanTables with a ScanSink: entry() for tables and blocks, leafPage() a page of leaves a call)",
      target: 2,
      warm: 5,
      scale: 1,
      rustCheck: true,
      run: () => {
        const {machine: m, mapper} = pagesMap()
        const census = new Census()
        const t = performance.now()
        scanTables(m.memory, mapper.root, mapper.geometry, census)
        const ms = performance.now() - t
        sink ^= census.acc
        const {levels} = census
        return {ms, check: levels[0] + levels[1] + levels[2] === 0 ? levels[3] : -1}
      },
    },
    {
      id: 'c-scan-callback',
      rust: 'c_walk_1g_pages',
      name: "c: the same with a callback per entry (scanTables(..., (w) => ...)), no target: each visit's counts go through memory",
      info: true,
      warm: 5,
      scale: 1,
      rustCheck: true,
      run: () => {
        const {machine: m, mapper} = pagesMap()
        const levels = [0, 0, 0, 0]
        let acc = 0
        const t = performance.now()
        scanTables(m.memory, mapper.root, mapper.geometry, (w) => {
          const {level, lo, hi} = w
          // a valid leaf: a block at levels 1-2, a page at level 3 (the crate's walk visits leaves only)
          if (level === 3 ? (lo & 2) !== 0 : (lo & 2) === 0) {
            levels[level]++
            acc ^= lo ^ hi
          }
        })
        const ms = performance.now() - t
        sink ^= acc
        return {ms, check: levels[0] + levels[1] + levels[2] === 0 ? levels[3] : -1}
      },
    },
    {
      id: 'c-ranges',
      rust: 'c_debug_fmt_1g_pages',
      name: "c: a's tables as merged ranges (walkRanges) vs the crate's Debug text",
      target: 3,
      warm: 3,
      scale: 1,
      expect: 262_144,
      checkNote: "leaves (the crate's check is its text's length)",
      run: () => {
        const {machine: m, mapper} = pagesMap()
        const t = performance.now()
        const w = walkRanges(m.memory, mapper.regime, mapper.root, mapper.geometry)
        const ms = performance.now() - t
        return {ms, check: w.ranges.length === 1 && w.entries === 262_657 ? w.leaves : -1}
      },
    },
    {
      id: 'c-walkTables',
      rust: 'c_walk_1g_pages',
      name: "c: walkTables over a's tables (a cursor per walk, nothing per entry) vs the crate's walk",
      target: 3,
      warm: 5,
      scale: 1,
      rustCheck: true,
      run: () => {
        const {machine: m, mapper} = pagesMap()
        let entries = 0
        let leaves = 0
        let acc = 0
        const t = performance.now()
        walkTables(m.memory, mapper.regime, mapper.root, mapper.geometry, (c) => {
          entries++
          // a page (the crate's walk visits leaves only; a's tables have no blocks)
          if (c.level === 3 && (c.lo & 3) === 3) {
            leaves++
            acc ^= c.lo ^ c.hi
          }
        })
        const ms = performance.now() - t
        sink ^= acc
        return {ms, check: entries === 262_657 ? leaves : -1}
      },
    },
    {
      id: 'd-unmap',
      rust: 'd_unmap_2m_in_1g',
      name: 'd: unmap 2 MiB inside a 1 GiB block (a split), timed alone',
      target: 5,
      warm: 50,
      scale: 20,
      expect: 1,
      checkNote: 'one split, one block cleared',
      run: split(
        (mapper) => mapper.unmap(G + M2, M2),
        (r) => r.splits === 1 && r.cleared[2] === 1,
      ),
    },
    {
      id: 'd-protect',
      rust: 'd_protect_2m_in_1g',
      name: 'd: protect (perm r) 2 MiB inside a 1 GiB block (a split), timed alone',
      target: 5,
      warm: 50,
      scale: 20,
      expect: 1,
      checkNote: 'one split, one block changed',
      run: split(
        (mapper) => mapper.protect(G + M2, M2, {perm: 'r'}),
        (r) => r.splits === 1 && r.written[2] === 1,
      ),
    },
    // ---- floors: plain JS (typed arrays) against plain Rust, for scale; no target ----
    {
      id: 'floor-write',
      rust: 'floor_write_262144_u64',
      name: 'floor: write 262,144 descriptors into one array (plain JS)',
      warm: 5,
      scale: 1,
      run: () => {
        const t = performance.now()
        let lo = GIB
        let hi = 0
        for (let i = 0; i < buf.length; i += 2) {
          buf[i] = (lo | 0x7ff) >>> 0
          buf[i + 1] = hi
          lo = (lo + 4096) >>> 0
          if (lo === 0) hi++
        }
        return {ms: performance.now() - t, check: 0}
      },
    },
    {
      id: 'floor-alloc',
      rust: 'floor_alloc512pages_write_262144_u64',
      name: 'floor: allocate 512 zeroed pages and write 262,144 descriptors (plain JS)',
      warm: 5,
      scale: 1,
      run: () => {
        const t = performance.now()
        const pages = []
        let lo = GIB
        let hi = 0
        for (let p = 0; p < 512; p++) {
          const page = new Uint32Array(1024)
          for (let j = 0; j < 1024; j += 2) {
            page[j] = (lo | 0x7ff) >>> 0
            page[j + 1] = hi
            lo = (lo + 4096) >>> 0
            if (lo === 0) hi++
          }
          pages.push(page)
        }
        const ms = performance.now() - t
        sink ^= pages[511][0]
        return {ms, check: 0}
      },
    },
    {
      id: 'floor-memset',
      rust: 'floor_memset_2mib',
      name: 'floor: zero 2 MiB (plain JS fill)',
      warm: 5,
      scale: 1,
      run: () => {
        const t = performance.now()
        bytes.fill(0)
        return {ms: performance.now() - t, check: 0}
      },
    },
    {
      id: 'floor-read',
      rust: 'floor_read_262144_u64',
      name: 'floor: read 262,144 descriptors, count the valid ones (plain JS)',
      warm: 5,
      scale: 1,
      rustCheck: true,
      run: () => {
        const t = performance.now()
        let n = 0
        let acc = 0
        for (let i = 0; i < filled.length; i += 2) {
          const lo = filled[i]
          if ((lo & 1) !== 0) {
            n++
            acc ^= lo ^ filled[i + 1]
          }
        }
        const ms = performance.now() - t
        sink ^= acc
        return {ms, check: n}
      },
    },
    {
      id: 'floor-split',
      rust: 'floor_split_512_u64',
      name: 'floor: a new page with 512 block descriptors (plain JS)',
      warm: 50,
      scale: 20,
      run: () => {
        const t = performance.now()
        const page = new Uint32Array(1024)
        for (let j = 0, a = GIB; j < 1024; j += 2, a += MIB2) {
          page[j] = (a | 0x7fd) >>> 0
          page[j + 1] = 0
        }
        const ms = performance.now() - t
        sink ^= page[2]
        return {ms, check: 0}
      },
    },
  ]
}

// ---- rounds --------------------------------------------------------------------------------------

/**
 * Runs the anchor: `rounds` rounds, each one run of the Rust binary (--iters `iters`) and one loop of
 * every hvmem counterpart, their order alternating; the minimum of each side over all rounds.
 * Returns {note?, rust: boolean, rows: [{id, name, rust, target, info, hvmemMs, rustMs, ratio, hvmemCheck, rustCheck, expect, checkOk}]}.
 */
export async function anchor({rounds = 5, iters = 10, log = (line) => console.error(line)} = {}) {
  // a note (no cargo, no folder) is the caller's to print, once
  const built = buildAnchor(log)
  const scratch = mkdtempSync(join(tmpdir(), 'hvmem-anchor-'))
  let core
  try {
    core = await loadCore(scratch)
  } finally {
    rmSync(scratch, {recursive: true, force: true})
  }
  const cases = hvmemCases(core)
  const hv = new Map(cases.map((c) => [c.id, {min: Infinity, check: undefined}]))
  const rust = new Map()
  const rustDefault = new Map()

  const hvmemRound = (first) => {
    for (const c of cases) {
      const s = hv.get(c.id)
      // warm-ups: every round for the quick cases (as the crate does each run); a case with its own `iters` (a slow one) only in the first
      if (first || c.iters === undefined) for (let i = 0; i < c.warm; i++) s.check = c.run().check
      const n = (c.iters ?? iters) * c.scale
      for (let i = 0; i < n; i++) {
        const {ms, check} = c.run()
        if (ms < s.min) s.min = ms
        s.check = check
      }
    }
  }
  const rustRound = () => {
    for (const [into, env] of [
      [rust, KEEP_HEAP],
      [rustDefault, {GLIBC_TUNABLES: ''}],
    ]) {
      for (const [name, row] of runRust(built.binary, iters, env)) {
        const prev = into.get(name)
        if (prev === undefined || row.min_ms < prev.min) into.set(name, {min: row.min_ms, check: row.check})
      }
    }
  }

  const t0 = performance.now()
  for (let r = 0; r < rounds; r++) {
    const rt = performance.now()
    if (built.binary && r % 2 === 0) rustRound()
    hvmemRound(r === 0)
    if (built.binary && r % 2 === 1) rustRound()
    log(`  anchor round ${r + 1}/${rounds}: ${((performance.now() - rt) / 1000).toFixed(1)} s`)
  }

  const rows = cases.map((c) => {
    const h = hv.get(c.id)
    const r = rust.get(c.rust)
    const expect = c.rustCheck ? r?.check : c.expect
    return {
      id: c.id,
      name: c.name,
      rust: c.rust,
      target: c.target,
      info: c.info,
      hvmemMs: h.min,
      rustMs: r?.min,
      rustDefaultMs: rustDefault.get(c.rust)?.min,
      ratio: r === undefined ? undefined : h.min / r.min,
      hvmemCheck: h.check,
      rustCheck: r?.check,
      expect,
      checkNote: c.checkNote,
      checkOk: expect === undefined ? undefined : h.check === expect,
    }
  })
  return {note: built.note, rounds, iters, seconds: (performance.now() - t0) / 1000, rows}
}

const ms = (x) => (x === undefined ? '' : x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(4))
const count = (x) => (x === undefined ? '' : x.toLocaleString('en-US'))

/** The results as a table (cli-table3, the whole-process table's style). */
export async function anchorTable(result) {
  const {default: Table} = await import('cli-table3')
  const table = new Table({
    head: ['#', 'case (in-process, min over rounds)', 'hvmem ms', 'Rust ms', 'hvmem / Rust', 'target', 'check (hvmem / Rust)', 'note'],
    style: {head: [], border: [], compact: true},
    colAligns: ['right', 'left', 'right', 'right', 'right', 'right', 'right', 'left'],
    wordWrap: true,
    colWidths: [null, 52, null, null, null, null, 22, 30],
  })
  for (const row of result.rows) {
    const notes = []
    if (row.ratio !== undefined && row.target !== undefined) notes.push(row.ratio <= row.target ? 'meets target' : 'above target')
    if (row.target === undefined) notes.push(row.info ? 'no target: the row above in another form' : 'floor: no target')
    // glibc's default trim: shown where it changes the crate's time by more than a third
    if (row.rustDefaultMs !== undefined && row.rustMs !== undefined && Math.abs(row.rustDefaultMs / row.rustMs - 1) > 1 / 3) {
      notes.push(`Rust with glibc's default heap trim: ${ms(row.rustDefaultMs)} ms (${(row.hvmemMs / row.rustDefaultMs).toFixed(2)}x)`)
    }
    if (row.checkOk === false) notes.push(`CHECK MISMATCH: hvmem ${row.hvmemCheck}, expected ${row.expect}`)
    else if (row.checkNote && row.checkOk) notes.push(`check: ${row.checkNote}`)
    const check = row.checkOk === undefined ? '' : `${count(row.hvmemCheck)} / ${row.rustCheck !== undefined && row.expect === row.rustCheck ? count(row.rustCheck) : 'ok'}`
    table.push([
      row.target === undefined ? '' : 13,
      `${row.name}\n(Rust: ${row.rust})`,
      ms(row.hvmemMs),
      ms(row.rustMs),
      row.ratio === undefined ? 'n/a' : `${row.ratio >= 100 ? row.ratio.toFixed(0) : row.ratio.toFixed(2)}x`,
      row.target === undefined ? '' : `<= ${row.target}x`,
      check,
      notes.join('; '),
    ])
  }
  return table.toString()
}

// ---- standalone ----------------------------------------------------------------------------------
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2)
  const option = (name) => {
    const i = argv.indexOf(name)
    return i === -1 ? undefined : argv[i + 1]
  }
  const rounds = Number(option('--rounds') ?? process.env.BENCH_ANCHOR_ROUNDS ?? (process.env.BENCH_QUICK ? 3 : 5))
  const iters = Number(option('--iters') ?? process.env.BENCH_ANCHOR_ITERS ?? 10)
  const result = await anchor({rounds, iters})
  const json = option('--json')
  if (json)
    writeFileSync(
      json,
      JSON.stringify(result, (_k, v) => (v === Infinity ? null : v)),
    )
  else {
    if (result.note) console.log(result.note)
    console.log(`Rust anchor: ${rounds} interleaved rounds, ${iters} timed iterations a case a round (d and its floor: 20x); minimums in ms; Rust with ${KEEP_HEAP.GLIBC_TUNABLES}`)
    console.log(await anchorTable(result))
  }
  if (result.rows.some((r) => r.checkOk === false)) process.exitCode = 1
}
