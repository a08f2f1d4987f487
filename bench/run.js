#!/usr/bin/env node
/**
 * `npm run bench`: hvmem's performance cases (docs/performance.md), each timed against a reference
 * in the same run, target and reference alternating, every run a fresh process of the built binary.
 * Prints medians and ratios; never fails on time (machines are noisy): the exit code is 0 unless the
 * harness itself breaks.
 *
 *   node bench/run.js [--quick] [--runs N] [--only id,id,...] [--list]
 *
 * --quick: 3 timed runs a case instead of 11 (BENCH_RUNS sets the default too); --only: a subset by
 * case id (see --list); BENCH_KEEP=1 keeps the scratch inputs. A case whose command is not in this build prints "n/a (command not built)".
 *
 * Then the Rust anchor (bench/anchor.js, case id `anchor`): hvmem's core in-process against
 * aarch64-paging 0.12.1 built from ../shared/anchor-bench, in interleaved rounds (5, or 3 with
 * --quick; --anchor-rounds N, --anchor-iters N), printed as hvmem/Rust ratios after the whole-process
 * table. It runs in a child process of its own; without cargo or the folder it prints a note and
 * times the hvmem side alone.
 */
import {spawnSync} from 'node:child_process'
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {cpus, release, tmpdir, totalmem} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {performance} from 'node:perf_hooks'
import Table from 'cli-table3'

import {PAGE, patternPage, readSnapshot, writeSnapshot} from './snapfile.js'

const BIN = fileURLToPath(new URL('../bin/run.cjs', import.meta.url))
const RSS_PRELOAD = new URL('./rss-preload.mjs', import.meta.url).href

// ---- options -------------------------------------------------------------------------------------
const argv = process.argv.slice(2)
const option = (name) => {
  const i = argv.indexOf(name)
  return i === -1 ? undefined : argv[i + 1]
}
const quick = argv.includes('--quick')
const runs = Number(option('--runs') ?? process.env.BENCH_RUNS ?? (quick ? 3 : 11))
const only = option('--only')?.split(',')
const anchorRounds = Number(option('--anchor-rounds') ?? process.env.BENCH_ANCHOR_ROUNDS ?? (quick ? 3 : 5))
const anchorIters = Number(option('--anchor-iters') ?? process.env.BENCH_ANCHOR_ITERS ?? 10)
const ANCHOR = fileURLToPath(new URL('./anchor.js', import.meta.url))

// ---- processes -----------------------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'hvmem-bench-'))
const at = (name) => join(dir, name)
// BENCH_KEEP=1 keeps the inputs (for profiling a case by hand).
process.on('exit', () => (process.env.BENCH_KEEP ? console.error(`inputs kept in ${dir}`) : rmSync(dir, {recursive: true, force: true})))
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130))

/** Runs a command line ([program, ...args]; 'hvmem' is the built binary) and times it. */
function run(cmd, {stdout = 'ignore', rss = false} = {}) {
  const [program, ...args] = cmd
  const env = {...process.env, NO_COLOR: '1'}
  delete env.HVMEM_SNAPSHOT
  let file = process.execPath
  let full = args
  if (program === 'hvmem') full = [...(rss ? ['--import', RSS_PRELOAD] : []), BIN, ...args]
  else if (program === 'node') full = [...(rss ? ['--import', RSS_PRELOAD] : []), ...args]
  else file = program
  const rssFile = at('rss.txt')
  if (rss) {
    env.BENCH_RSS_OUT = rssFile
    rmSync(rssFile, {force: true})
  }
  const start = performance.now()
  const r = spawnSync(file, full, {cwd: dir, env, stdio: ['ignore', stdout, 'pipe'], maxBuffer: 1 << 30})
  const ms = performance.now() - start
  if (r.error) throw r.error
  let rssKb
  if (rss) {
    if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed under the RSS probe (exit ${r.status}): ${r.stderr.toString().trim()}`)
    rssKb = Number(readFileSync(rssFile, 'utf8'))
  }
  return {ms, code: r.status, stderr: r.stderr?.toString() ?? '', stdout: r.stdout?.toString() ?? '', rssKb}
}

/** Runs an hvmem command that must succeed (setup). */
function hv(...args) {
  const r = run(['hvmem', ...args], {stdout: 'pipe'})
  if (r.code !== 0) throw new Error(`setup: hvmem ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const notBuilt = (r) => r.code !== 0 && /unknown command|command .* not found/i.test(r.stderr)

// ---- inputs --------------------------------------------------------------------------------------
const HEAP = 0x4100_0000
const setups = new Map()
/** Builds an input once, the first time a case needs it. */
function input(name) {
  if (!setups.has(name)) setups.set(name, SETUPS[name]())
  return setups.get(name)
}

/** A snapshot whose 16 MiB heap is allocated and every heap page holds distinct non-zero bytes (seed), the last `changed` pages with another seed. */
function fullHeap(name, seed, changed = 0, next = HEAP + 16 * 2 ** 20) {
  const base = at(`${name}.base.snap`)
  hv('heap', 'init', '-s', base)
  const {header} = readSnapshot(base)
  header.writeBigUInt64LE(BigInt(next), 48)
  header.writeBigUInt64LE(BigInt(next - HEAP), 56)
  const first = HEAP / PAGE
  const frames = Array.from({length: 4096}, (_, i) => first + i)
  writeSnapshot(at(name), header, frames, (frame) => patternPage(frame, frame - first >= 4096 - changed ? seed + 1 : seed))
  return at(name)
}

const SETUPS = {
  small() {
    hv('heap', 'init', '-s', at('small.snap'))
    return at('small.snap')
  },
  /** small, with a mapper: guest RAM as one 1 GiB block and a UART page */
  smallMapped() {
    hv('heap', 'init', '-s', at('small-mapped.snap'))
    hv('map', 'region', '0x4000_0000', '1G', '-s', at('small-mapped.snap'))
    hv('map', 'region', '0x0900_0000', '4K', '--attr', 'device', '-s', at('small-mapped.snap'))
    return at('small-mapped.snap')
  },
  heap64() {
    hv('heap', 'init', '--size', '64M', '-s', at('heap64.snap'))
    const lines = Array.from({length: 10_000}, () => 'alloc page').join('\n') + '\n'
    writeFileSync(at('alloc-10000.txt'), lines)
    return at('heap64.snap')
  },
  map512g() {
    hv('heap', 'init', '-s', at('map512g.snap'))
    hv('map', 'region', '0', '512G', '--granularity', '2M', '--l2-budget', '512', '-s', at('map512g.snap'))
    return at('map512g.snap')
  },
  fullA: () => fullHeap('full-a.snap', 1),
  fullB: () => fullHeap('full-b.snap', 1, 16),
  /** a full heap with 4 MiB of it free, for commands that allocate */
  fullFree: () => fullHeap('full-free.snap', 3, 0, HEAP + 12 * 2 ** 20),
  raws() {
    hv('snapshot', 'export', '--raw', at('a.raw'), '-s', input('fullA'))
    hv('snapshot', 'export', '--raw', at('b.raw'), '-s', input('fullB'))
    return [at('a.raw'), at('b.raw')]
  },
  /** 1 GiB of guest RAM mapped as 4 KiB pages (262,144 entries) */
  pagesA() {
    hv('heap', 'init', '-s', at('pages-a.snap'))
    hv('map', 'region', '0x4000_0000', '1G', '--granularity', 'page', '-s', at('pages-a.snap'))
    return at('pages-a.snap')
  },
  /** pagesA with 64 KiB made read-only and 8 KiB unmapped */
  pagesB() {
    copyFileSync(input('pagesA'), at('pages-b.snap'))
    hv('map', 'protect', '0x4800_0000', '64K', '--perm', 'r', '-s', at('pages-b.snap'))
    hv('map', 'unmap', '0x5000_0000', '8K', '-s', at('pages-b.snap'))
    return at('pages-b.snap')
  },
  /** big, once changed (so it is a format-5 file): each timed write appends one record */
  /** fullFree as hvmem itself would have written it: in the current format (5, page records appended), converted once by a first change (a byte of RAM below the heap) */
  fullFreeCurrent() {
    copyFileSync(input('fullFree'), at('full-free-current.snap'))
    hv('mem', 'write', '0x4000_0ff0', '0x5', '--width', '1', '-s', at('full-free-current.snap'))
    return at('full-free-current.snap')
  },
  image() {
    copyFileSync(input('big'), at('image.snap'))
    hv('mem', 'write', '0x4000_0010', '0x5', '--width', '1', '-s', at('image.snap'))
    return at('image.snap')
  },
  /** smallMapped's pages, plus every other page of its 1 GiB of RAM filled with non-zero bytes (262,144 pages stored) */
  big() {
    const {header, pages} = readSnapshot(input('smallMapped'))
    const ramBase = Number(header.readBigUInt64LE(16)) / PAGE
    const ramPages = Number(header.readBigUInt64LE(24)) / PAGE
    const frames = Array.from({length: ramPages}, (_, i) => ramBase + i)
    writeSnapshot(at('big.snap'), header, frames, (frame) => pages.get(frame) ?? patternPage(frame, 7))
    return at('big.snap')
  },
}

// ---- cases ---------------------------------------------------------------------------------------
/**
 * A case: a target and a reference command (functions of the inputs), `before` each target run (a
 * fresh copy of a snapshot the command changes), the goal for target/reference, whether to report
 * peak RSS, and the target's successful exit codes (okCodes, default [0]).
 */
const fresh = (from, name) => () => {
  copyFileSync(input(from), at(name))
  return at(name)
}
const CASES = [
  // goals: issue 13's where it sets one (start-up 1.4, batch 1.25, dump --json 1.5, the 1 GiB page-map
  // diff 2, the 1-byte write into a 1 GiB image 1.5 with RSS 1.3), otherwise the first issues'
  {id: 'startup', issue: 13, name: 'start-up: heap status (small) vs node -e 0', target: () => ['hvmem', 'heap', 'status', '-s', input('small')], reference: () => ['node', '-e', '0'], goal: 1.4},
  {
    id: 'batch',
    issue: 13,
    name: 'batch: 10,000 alloc page (64 MiB heap) vs heap status',
    setup: () => input('heap64'),
    before: fresh('heap64', 'heap64-run.snap'),
    target: () => ['hvmem', 'batch', at('alloc-10000.txt'), '-s', at('heap64-run.snap')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('heap64')],
    goal: 1.25,
  },
  {
    id: 'map-2m',
    issue: 3,
    name: 'map region 0 512G --granularity 2M (262,144 blocks, 512 L2) vs heap status',
    setup: () => input('small'),
    before: fresh('small', 'map-run.snap'),
    target: () => ['hvmem', 'map', 'region', '0', '512G', '--granularity', '2M', '--l2-budget', '512', '-s', at('map-run.snap')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('small')],
    goal: 1.5,
  },
  {
    id: 'map-4k',
    issue: 3,
    name: 'map region 0x4000_0000 1G --granularity page (262,144 pages) vs heap status',
    setup: () => input('small'),
    before: fresh('small', 'map-run.snap'),
    target: () => ['hvmem', 'map', 'region', '0x4000_0000', '1G', '--granularity', 'page', '-s', at('map-run.snap')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('small')],
    goal: 1.5,
  },
  {
    id: 'dump-ranges',
    issue: 4,
    name: 'dump tables --format ranges (512 GiB in 2 MiB blocks) vs heap status',
    target: () => ['hvmem', 'dump', 'tables', '--format', 'ranges', '-s', input('map512g')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('map512g')],
    goal: 2.0,
  },
  {
    id: 'dump-json',
    issue: 13,
    name: 'dump tables --json (512 GiB in 2 MiB blocks) vs heap status',
    target: () => ['hvmem', 'dump', 'tables', '--json', '-s', input('map512g')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('map512g')],
    goal: 1.5,
  },
  {
    id: 'diff',
    issue: 5,
    name: 'snapshot diff of two full 16 MiB heaps vs heap status (small)',
    setup: () => [input('fullA'), input('fullB'), input('raws')],
    target: () => ['hvmem', 'snapshot', 'diff', input('fullA'), input('fullB')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('small')],
    extra: {label: 'cmp of the two raw 16 MiB heap images', cmd: () => ['cmp', ...input('raws')]},
    // like cmp and diff, snapshot diff exits 1 when the snapshots differ (they do here)
    okCodes: [0, 1],
    goal: 1.5,
  },
  {
    id: 'diff-pages',
    issue: 13,
    name: 'snapshot diff of two 1 GiB maps in 4 KiB pages (64 KiB protected, 8 KiB unmapped) vs heap status of one',
    setup: () => input('pagesB'),
    target: () => ['hvmem', 'snapshot', 'diff', input('pagesA'), input('pagesB')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('pagesA')],
    okCodes: [0, 1],
    goal: 2.0,
  },
  {
    id: 'write-1g',
    issue: 13,
    name: 'a 1-byte mem write into a 1 GiB image (format 5: one record appended) vs heap status of it',
    setup: () => input('image'),
    target: () => ['hvmem', 'mem', 'write', '0x4000_0010', '0x5', '--width', '1', '-s', input('image')],
    reference: () => ['hvmem', 'heap', 'status', '-s', input('image')],
    goal: 1.5,
    rss: true,
    rssGoal: 1.3,
  },
  ...['heap status', 'translate 0x4000_1000', 'dump tables'].map((command) => ({
    id: `scale-${command.split(' ')[0]}`,
    issue: 6,
    name: `scale: ${command}, 1 GiB of non-zero RAM vs small`,
    setup: () => [input('big'), input('smallMapped')],
    target: () => ['hvmem', ...command.split(' '), '-s', input('big')],
    reference: () => ['hvmem', ...command.split(' '), '-s', input('smallMapped')],
    goal: 1.3,
    rss: true,
  })),
  ...['alloc page', 'mem write 0x4000_0000 0x1234'].map((command) => ({
    id: `scale-${command.split(' ')[0]}`,
    issue: 6,
    name: `scale: ${command}, full 16 MiB heap (format 5, as hvmem writes it) vs small`,
    setup: () => [input('fullFreeCurrent'), input('small')],
    before: () => {
      copyFileSync(input('fullFreeCurrent'), at('full-run.snap'))
      copyFileSync(input('small'), at('small-run.snap'))
    },
    target: () => ['hvmem', ...command.split(' '), '-s', at('full-run.snap')],
    reference: () => ['hvmem', ...command.split(' '), '-s', at('small-run.snap')],
    goal: 2.0,
  })),
]

if (argv.includes('--list')) {
  for (const c of CASES) console.log(`${c.id.padEnd(16)} ${c.name}`)
  console.log(`${'anchor'.padEnd(16)} in-process: hvmem's core vs the Rust crate aarch64-paging (issue 13), hvmem/Rust ratios`)
  process.exit(0)
}

// ---- running -------------------------------------------------------------------------------------
const fmt = (ms) => (ms === undefined ? '' : ms >= 100 ? ms.toFixed(0) : ms.toFixed(1))
const mb = (kb) => (kb === undefined || Number.isNaN(kb) ? '?' : `${(kb / 1024).toFixed(0)}`)

function measure(c) {
  const t0 = performance.now()
  c.before?.()
  // Warm-up (also checks the command works in this build).
  const first = run(c.target())
  if (notBuilt(first)) return {status: 'n/a (command not built)'}
  if (!(c.okCodes ?? [0]).includes(first.code)) return {status: `error: exit ${first.code}: ${first.stderr.trim().split('\n')[0]}`}
  const ref0 = run(c.reference())
  if (ref0.code !== 0) return {status: `reference failed: exit ${ref0.code}: ${ref0.stderr.trim().split('\n')[0]}`}
  const target = []
  const reference = []
  const extra = []
  for (let i = 0; i < runs; i++) {
    c.before?.()
    target.push(run(c.target()).ms)
    reference.push(run(c.reference()).ms)
    if (c.extra) extra.push(run(c.extra.cmd()).ms)
  }
  const out = {target: median(target), reference: median(reference), extra: c.extra ? median(extra) : undefined}
  if (c.rss) {
    const t = []
    const r = []
    for (let i = 0; i < 3; i++) {
      c.before?.()
      t.push(run(c.target(), {rss: true}).rssKb)
      r.push(run(c.reference(), {rss: true}).rssKb)
    }
    out.rssTarget = median(t)
    out.rssReference = median(r)
  }
  out.seconds = (performance.now() - t0) / 1000
  return out
}

const cpu = cpus()
console.log(`hvmem bench: ${runs} timed runs a case after a warm-up, target and reference alternating; medians in ms`)
console.log(`machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, Node ${process.version}`)

const table = new Table({
  head: ['#', 'case', 'target ms', 'reference ms', 'ratio', 'goal', 'peak RSS MB (target / ref)', 'note'],
  style: {head: [], border: [], compact: true},
  colAligns: ['right', 'left', 'right', 'right', 'right', 'right', 'right', 'left'],
  wordWrap: true,
  colWidths: [null, 52, null, null, null, null, 14, 34],
})
// Every input first, then the page cache written back (a 1 GiB file being flushed to disk would
// slow whichever case ran meanwhile).
const selected = CASES.filter((c) => !only || only.includes(c.id))
const setupErrors = new Map()
const t0 = performance.now()
for (const c of selected) {
  try {
    c.setup?.()
  } catch (error) {
    setupErrors.set(c.id, error)
  }
}
spawnSync('sync')
console.log(`inputs ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

const summary = []
for (const c of selected) {
  let m
  try {
    if (setupErrors.has(c.id)) throw setupErrors.get(c.id)
    m = measure(c)
  } catch (error) {
    m = {status: `harness error: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`}
  }
  if (m.status !== undefined) {
    table.push([c.issue, c.name, '', '', m.status.startsWith('n/a') ? 'n/a' : 'error', `<= ${c.goal}`, '', m.status])
    console.error(`  ${c.id}: ${m.status}`)
    summary.push({id: c.id, status: m.status})
    continue
  }
  const ratio = m.target / m.reference
  const rssRatio = m.rssTarget !== undefined ? m.rssTarget / m.rssReference : undefined
  const notes = []
  notes.push(ratio <= c.goal ? 'meets goal' : 'above goal')
  if (rssRatio !== undefined) notes.push(`RSS ${rssRatio.toFixed(2)}x (goal ${c.rssGoal === undefined ? '< 2' : `<= ${c.rssGoal}`})`)
  if (m.extra !== undefined) notes.push(`${c.extra.label}: ${fmt(m.extra)} ms`)
  table.push([c.issue, c.name, fmt(m.target), fmt(m.reference), ratio.toFixed(2), `<= ${c.goal}`, rssRatio === undefined ? '' : `${mb(m.rssTarget)} / ${mb(m.rssReference)}`, notes.join('; ')])
  console.error(`  ${c.id}: ${fmt(m.target)} / ${fmt(m.reference)} ms = ${ratio.toFixed(2)} (${m.seconds.toFixed(1)} s)`)
  summary.push({id: c.id, target: m.target, reference: m.reference, ratio, goal: c.goal, rssTarget: m.rssTarget, rssReference: m.rssReference, extra: m.extra})
}
console.log(table.toString())

// ---- the Rust anchor (bench/anchor.js) -------------------------------------------------------------
let anchorResult
if (!only || only.includes('anchor')) {
  // A child process of its own: hvmem's loops run in a heap that holds nothing of this harness's.
  const out = at('anchor.json')
  const r = spawnSync(process.execPath, [ANCHOR, '--rounds', String(anchorRounds), '--iters', String(anchorIters), '--json', out], {stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8'})
  if (r.stderr) process.stderr.write(r.stderr)
  let result
  try {
    result = JSON.parse(readFileSync(out, 'utf8'))
  } catch {
    // no results: the harness broke
  }
  console.log()
  if (result === undefined) {
    console.log(`Rust anchor: harness error (exit ${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').at(-1) ?? ''}`)
    process.exitCode = 1
  } else {
    anchorResult = result
    const {KEEP_HEAP, anchorTable} = await import('./anchor.js')
    console.log(
      `Rust anchor (issue 13): hvmem's core in-process vs aarch64-paging 0.12.1, ${result.rounds} interleaved rounds of ${result.iters} timed iterations a case (d and the split floor: 20x), minimum of each side over the rounds, in ms (${result.seconds.toFixed(0)} s); Rust runs with ${KEEP_HEAP.GLIBC_TUNABLES} (bench/anchor.js)`,
    )
    if (result.note) console.log(result.note)
    console.log(await anchorTable(result))
    if (result.rows.some((row) => row.checkOk === false)) process.exitCode = 1
  }
}
if (process.env.BENCH_JSON)
  writeFileSync(process.env.BENCH_JSON, JSON.stringify({runs, machine: {cpu: cpu[0]?.model, cores: cpu.length, node: process.version}, cases: summary, anchor: anchorResult}, null, 2))
