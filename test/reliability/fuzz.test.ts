/**
 * Property-based fuzzing (fast-check): the number parser with many runs in-process, the snapshot
 * loader with random bytes and random mutations of valid snapshots (in memory and through files),
 * and a sample of random command lines through the real binary. Never an uncaught exception, a hang,
 * a stack trace, or an error that is not one line with a documented exit code.
 */
import {readFile, readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import fc from 'fast-check'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {oneLine} from '../../src/cli/base.js'
import {EXIT_CODES} from '../../src/cli/exit-codes.js'
import {parseInteger, parseU64, quote} from '../../src/cli/numbers.js'
import {HvmemError} from '../../src/core/errors.js'
import {Machine} from '../../src/core/machine.js'
import {U64_MAX} from '../../src/core/u64.js'
import {bufferSource, decodeSnapshot, decodeSource, encodeSnapshot} from '../../src/snapshot/format.js'
import {loadSnapshot, tempFilePattern, updateSnapshot} from '../../src/snapshot/store.js'
import {encodeV1, patched} from '../snapshot/fixtures.js'
import {SOAK, hvmem, pool, scratch, stackLines} from './proc.js'

/** Counts of cases run, reported at the end (and in the closing note of the reliability work). */
const counts: Record<string, number> = {}
const count = (name: string): void => {
  counts[name] = (counts[name] ?? 0) + 1
}

/** Nothing a user could see as more than one line (newlines, other control characters, line separators). */
const ONE_LINE = /^[^\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]*$/

function isInputError(error: unknown, what: string): boolean {
  return error instanceof HvmemError && error.kind === 'input' && error.message.startsWith(`${what}: `) && ONE_LINE.test(oneLine(error.message))
}

describe('fuzz: numbers (src/cli/numbers.ts)', () => {
  const what = '--size'

  it('any string: a value below 2^64 or an input error naming the flag (20000 runs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({unit: 'binary', maxLength: 40}), fc.string({unit: fc.constantFrom(...'0123456789abcdefxX_KMGTiB -+.'), maxLength: 30})), (text) => {
        count('numbers: any string')
        try {
          const value = parseU64(text, what)
          return value >= 0n && value <= U64_MAX
        } catch (error) {
          return isInputError(error, what)
        }
      }),
      {numRuns: 20_000},
    )
  })

  it('well-formed numbers (decimal or hex, underscores, any suffix) parse to exactly their value, or "does not fit" past 64 bits (10000 runs)', () => {
    const suffixes: Array<[string, bigint]> = [
      ['', 0n],
      ['K', 10n],
      ['M', 20n],
      ['G', 30n],
      ['T', 40n],
      ['KiB', 10n],
      ['MiB', 20n],
      ['GiB', 30n],
      ['TiB', 40n],
    ]
    fc.assert(
      fc.property(
        fc.oneof(fc.bigInt({min: 0n, max: 0xffffn}), fc.bigInt({min: 0n, max: U64_MAX}), fc.bigInt({min: 0n, max: 1n << 80n})),
        fc.boolean(),
        fc.array(fc.nat(), {maxLength: 4}),
        fc.nat({max: 3}),
        fc.constantFrom(...suffixes),
        (value, asHex, cuts, zeros, [suffix, shift]) => {
          count('numbers: well-formed')
          let digits = '0'.repeat(zeros) + value.toString(asHex ? 16 : 10)
          // underscores between digits, at distinct cut points
          for (const cut of [...new Set(cuts.map((c) => 1 + (c % Math.max(1, digits.length - 1))))].sort((a, b) => b - a)) {
            if (cut < digits.length && digits[cut - 1] !== '_' && digits[cut] !== '_') digits = `${digits.slice(0, cut)}_${digits.slice(cut)}`
          }
          const text = `${asHex ? '0x' : ''}${digits}${suffix}`
          const expected = value << shift
          if (expected > U64_MAX) {
            try {
              parseU64(text, what)
              return false
            } catch (error) {
              return isInputError(error, what) && (error as HvmemError).message.includes('does not fit in 64 bits')
            }
          }
          // whitespace around a number is refused, never trimmed (issue 14)
          let spaced = true
          try {
            parseU64(` ${text} `, what)
          } catch (error) {
            spaced = !isInputError(error, what)
          }
          return parseU64(text, what) === expected && !spaced
        },
      ),
      {numRuns: 10_000},
    )
  })

  it('small edits of valid numbers never crash and never give a value out of range (10000 runs)', () => {
    const valid = fc.constantFrom('0', '4096', '0x4100_0000', '16M', '2MiB', '0xffff_ffff_ffff_ffff', '18446744073709551615', '1_000_000', '0x7f_ffe0_0000')
    const edit = fc.record({at: fc.nat(), char: fc.string({unit: 'binary', minLength: 0, maxLength: 2}), remove: fc.nat({max: 2})})
    fc.assert(
      fc.property(valid, fc.array(edit, {minLength: 1, maxLength: 3}), (text, edits) => {
        count('numbers: edited')
        let mutated = text
        for (const e of edits) {
          const at = e.at % (mutated.length + 1)
          mutated = mutated.slice(0, at) + e.char + mutated.slice(at + e.remove)
        }
        try {
          const value = parseU64(mutated, what)
          return value >= 0n && value <= U64_MAX
        } catch (error) {
          return isInputError(error, what)
        }
      }),
      {numRuns: 10_000},
    )
  })

  it('parseInteger stays within its bounds (5000 runs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({maxLength: 12}), fc.bigInt({min: 0n, max: 1n << 70n}).map(String)), fc.nat({max: 1000}), fc.nat({max: 100_000}), (text, min, span) => {
        count('numbers: parseInteger')
        try {
          const value = parseInteger(text, '--count', min, min + span)
          return Number.isSafeInteger(value) && value >= min && value <= min + span
        } catch (error) {
          return isInputError(error, '--count')
        }
      }),
      {numRuns: 5000},
    )
  })

  it('quote and oneLine: any text shows as one line; short text round-trips through quote (5000 runs)', () => {
    fc.assert(
      fc.property(fc.string({unit: 'binary', maxLength: 60}), (text) => {
        count('numbers: quote/oneLine')
        const quoted = quote(text)
        if (!ONE_LINE.test(oneLine(`x ${quoted} ${text}`))) return false
        return text.length > 40 ? quoted.endsWith(`... (${text.length} characters)`) : JSON.parse(quoted) === text
      }),
      {numRuns: 5000},
    )
  })
})

/** Valid snapshots to mutate: version 2 (empty, pages, mapper) and version 1. */
function seeds(): Buffer[] {
  const make = (): Machine => Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: 0x4100_0000n, heapSize: 16n << 20n})
  const empty = make()
  const rich = make()
  const page = rich.heap.allocPage()
  rich.memory.write(page, 8, 0xdead_beefn)
  rich.ensureMapper({vmid: 2, l2Budget: 3}).mapper.mapRegion(0x4000_0000n, 4n << 20n, 'normal')
  rich.memory.write(0x7fff_fff8n, 8, 0x0102_0304_0506_0708n)
  return [encodeSnapshot(empty), encodeSnapshot(rich), encodeV1(rich)]
}

type Mutation = {op: 'set'; at: number; value: number} | {op: 'insert'; at: number; bytes: Uint8Array} | {op: 'delete'; at: number; length: number} | {op: 'truncate'; at: number}

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {weight: 6, arbitrary: fc.record({op: fc.constant('set' as const), at: fc.nat(), value: fc.nat({max: 255})})},
  {weight: 1, arbitrary: fc.record({op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({minLength: 1, maxLength: 32})})},
  {weight: 1, arbitrary: fc.record({op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({min: 1, max: 64})})},
  {weight: 1, arbitrary: fc.record({op: fc.constant('truncate' as const), at: fc.nat()})},
)

function mutate(data: Buffer, mutations: Mutation[]): Buffer {
  let out = Buffer.from(data)
  for (const m of mutations) {
    const at = m.at % (out.length + 1)
    if (m.op === 'set' && at < out.length) out[at] = m.value
    else if (m.op === 'insert') out = Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at)])
    else if (m.op === 'delete') out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.length)])
    else if (m.op === 'truncate') out = out.subarray(0, at)
  }
  return out
}

const NAME = 'fuzz.snap'

/** Decodes fully and lazily (reading every page): refused as snapshot-invalid named after the file, or a machine. */
function decodeBoth(data: Buffer): {machine?: Machine; problem?: string} {
  const outcomes = (['full', 'lazy'] as const).map((mode) => {
    try {
      const m = decodeSource(bufferSource(data), NAME, mode).machine
      m.memory.nonZeroPages()
      return {machine: m}
    } catch (error) {
      if (error instanceof HvmemError && error.kind === 'snapshot-invalid' && error.message.startsWith(`${NAME} `) && ONE_LINE.test(oneLine(error.message))) return {}
      return {problem: `${mode}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`}
    }
  })
  const problem = outcomes.find((o) => o.problem !== undefined)?.problem
  if (problem !== undefined) return {problem}
  if ((outcomes[0]!.machine === undefined) !== (outcomes[1]!.machine === undefined)) return {problem: 'full and lazy decoding disagree'}
  return outcomes[0]!
}

describe('fuzz: the snapshot loader', () => {
  const valid = seeds()

  it('random bytes, bare or behind a valid magic and version, are refused as snapshot-invalid (3000 runs)', () => {
    const prefix = fc.constantFrom(
      Buffer.alloc(0),
      Buffer.from('HVMEMSNP'),
      Buffer.from('HVMEMSNP\u0001\u0000\u0000\u0000\u0080\u0000\u0000\u0000', 'latin1'),
      Buffer.from('HVMEMSNP\u0002\u0000\u0000\u0000\u0080\u0000\u0000\u0000', 'latin1'),
    )
    fc.assert(
      fc.property(prefix, fc.uint8Array({maxLength: 600}), (head, tail) => {
        count('loader: random bytes')
        const {machine, problem} = decodeBoth(Buffer.concat([head, tail]))
        return problem === undefined && machine === undefined
      }),
      {numRuns: 3000},
    )
  })

  it('random mutations of valid snapshots are refused unless they changed nothing (2000 runs)', () => {
    fc.assert(
      fc.property(fc.nat({max: valid.length - 1}), fc.array(mutationArb, {minLength: 1, maxLength: 4}), (which, mutations) => {
        count('loader: mutations')
        const original = valid[which]!
        const data = mutate(original, mutations)
        const {machine, problem} = decodeBoth(data)
        if (problem !== undefined) throw new Error(problem)
        return machine === undefined || data.equals(original)
      }),
      {numRuns: 2000},
    )
  })

  it('mutations behind valid checksums: refused, or a machine that writes a valid snapshot of itself (2000 runs)', () => {
    const v2 = valid.slice(0, 2)
    fc.assert(
      fc.property(fc.nat({max: v2.length - 1}), fc.array(mutationArb, {minLength: 1, maxLength: 3}), (which, mutations) => {
        count('loader: mutations with valid checksums')
        const data = mutate(v2[which]!, mutations)
        const fixed = data.length >= 128 ? patched(data, () => undefined) : data
        const {machine, problem} = decodeBoth(fixed)
        if (problem !== undefined) throw new Error(problem)
        if (machine === undefined) return true
        // accepted: then it is a snapshot in every sense, and re-encodes to one that decodes the same
        const again = encodeSnapshot(machine)
        const back = decodeSnapshot(again, NAME)
        return (
          encodeSnapshot(back).equals(again) &&
          JSON.stringify(back.heap.status(), (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ===
            JSON.stringify(machine.heap.status(), (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
        )
      }),
      {numRuns: 2000},
    )
  })

  describe('through files and the store', () => {
    let dir: string
    let cleanup: () => Promise<void>
    beforeAll(async () => {
      ;({dir, cleanup} = await scratch())
    })
    afterAll(async () => cleanup())

    it('mutated snapshot files: both loads refuse them or accept them whole, and a refused file is never written (1000 runs)', async () => {
      const file = join(dir, NAME)
      await fc.assert(
        fc.asyncProperty(fc.nat({max: valid.length - 1}), fc.array(mutationArb, {minLength: 1, maxLength: 3}), fc.boolean(), async (which, mutations, fix) => {
          count('loader: mutated files')
          const mutated = mutate(valid[which]!, mutations)
          const data = fix && mutated.length >= 128 && mutated.readUInt32LE(8) === 2 ? patched(mutated, () => undefined) : mutated
          await writeFile(file, data)
          const expected = decodeBoth(data)
          if (expected.problem !== undefined) throw new Error(expected.problem)
          let lazyOk: boolean
          try {
            ;(await loadSnapshot(file)).memory.nonZeroPages()
            lazyOk = true
          } catch (error) {
            if (!(error instanceof HvmemError) || error.kind !== 'snapshot-invalid') throw error
            lazyOk = false
          }
          let updated: boolean
          try {
            await updateSnapshot(file, (m) => m.heap.alloc(4n))
            updated = true
          } catch (error) {
            if (!(error instanceof HvmemError) || (error.kind !== 'snapshot-invalid' && error.kind !== 'heap-exhausted')) throw error
            updated = false
          }
          const after = await readFile(file)
          if (!updated && !after.equals(data)) return false
          if (updated && expected.machine === undefined) return false
          return lazyOk === (expected.machine !== undefined) && (await readdir(dir)).length === 1
        }),
        {numRuns: 1000},
      )
    })
  })
})

describe('fuzz: random command lines through the binary', () => {
  interface ManifestFlag {
    char?: string
    type: 'boolean' | 'option'
    options?: string[]
  }
  interface Manifest {
    commands: Record<string, {args?: Record<string, unknown>; flags: Record<string, ManifestFlag>}>
  }

  let dir: string
  let cleanup: () => Promise<void>
  let manifest: Manifest
  beforeAll(async () => {
    ;({dir, cleanup} = await scratch())
    expect((await hvmem(dir, ['heap', 'init'])).code).toBe(0)
    expect((await hvmem(dir, ['map', 'region', '0x4000_0000', '2M'])).code).toBe(0)
    manifest = JSON.parse(await readFile(new URL('../../oclif.manifest.json', import.meta.url), 'utf8')) as Manifest
  })
  afterAll(async () => cleanup())

  /** Safe file names only: every path a command line can name stays inside the scratch directory. */
  const SAFE_FILES = ['hvmem.snap', 'other.snap', 'missing.snap', '.', '..x', 'sub.snap']
  const NUMBERS = [
    '0',
    '1',
    '7',
    '8',
    '64',
    '255',
    '513',
    '4096',
    '65536',
    '0x1000',
    '2M',
    '4M',
    '16M',
    '0x0900_0000',
    '0x4000_0000',
    '0x4100_0000',
    '0x4100_1008',
    '0x7f_ffe0_0000',
    '0x80_0000_0000',
    '2T',
    '0xffff_ffff_ffff_ffff',
    '0x1_0000_0000_0000_0000',
    '-1',
    '1.5',
    '0x',
    '12Q',
    '1__0',
    '',
    ' ',
  ]
  const JUNK_FLAGS = ['--bogus', '-x', '--json', '--help', '-h', '--', '--json=1', '--count=', '-n0']

  /** Random text that cannot name a path outside the directory or pass for a flag naming a file. */
  const junkText = fc.string({unit: 'binary', maxLength: 12}).map((s) => {
    const clean = s.replaceAll('/', '').replaceAll('\u0000', '')
    return clean.startsWith('-') ? `x${clean}` : clean
  })

  function argvArb(): fc.Arbitrary<string[]> {
    const ids = Object.keys(manifest.commands)
    const command = fc.oneof(
      {weight: 12, arbitrary: fc.constantFrom(...ids).map((id) => id.split(':'))},
      {weight: 1, arbitrary: fc.constantFrom(['heap'], ['map'], ['nosuch'], ['heap', 'nosuch'], [])},
      {weight: 1, arbitrary: fc.array(junkText, {maxLength: 2})},
    )
    return command.chain((words) => {
      const flags = manifest.commands[words.join(':')]?.flags ?? {}
      const flagTokens = Object.entries(flags)
        .filter(([name]) => name !== 'snapshot' && name !== 'raw')
        .map(([name, f]): fc.Arbitrary<string[]> => {
          const spelled = fc.constantFrom(`--${name}`, ...(f.char === undefined ? [] : [`-${f.char}`]))
          if (f.type === 'boolean') return spelled.map((s) => [s])
          const value = f.options === undefined ? fc.oneof(fc.constantFrom(...NUMBERS), junkText) : fc.oneof({weight: 4, arbitrary: fc.constantFrom(...f.options)}, {weight: 1, arbitrary: junkText})
          return fc.tuple(spelled, value).map(([s, v]) => [s, v])
        })
      const token: fc.Arbitrary<string[]> = fc.oneof(
        {weight: 6, arbitrary: fc.constantFrom(...NUMBERS).map((n) => [n])},
        ...flagTokens.map((arbitrary) => ({weight: 3, arbitrary})),
        {weight: 1, arbitrary: fc.constantFrom(...JUNK_FLAGS).map((f) => [f])},
        {weight: 1, arbitrary: fc.constantFrom(...SAFE_FILES).map((f) => ['-s', f])},
        {weight: 1, arbitrary: fc.constantFrom(...SAFE_FILES).map((f) => ['--raw', `${f}.bin`])},
        {weight: 1, arbitrary: junkText.map((t) => [t])},
      )
      return fc.array(token, {maxLength: 6}).map((tokens) => [...words, ...tokens.flat()])
    })
  }

  // The seed, printed before the run (set HVMEM_FUZZ_SEED to repeat it); the command lines (48, or
  // 480 in the soak run) are cases of four processes each (run side by side), so no test runs more
  // than four.
  const seed = Number(process.env.HVMEM_FUZZ_SEED ?? Date.now() % 2 ** 31)
  console.log(`fuzz: random command lines with seed ${seed} (set HVMEM_FUZZ_SEED=${seed} to repeat)`)
  const GROUPS = 12 * SOAK
  const documented = new Set(Object.values(EXIT_CODES).filter((code) => code !== EXIT_CODES.internal))

  it.each(Array.from({length: GROUPS}, (_, i) => i))(
    `random command lines, group %i of ${GROUPS} (4 processes): a documented exit code (never 1), at most one line on stderr, no stack trace, the snapshot always valid`,
    async (group) => {
      // all 4 * GROUPS from the seed, then this case's four: the same lines whatever cases run
      const samples = fc.sample(argvArb(), {numRuns: 4 * GROUPS, seed}).slice(4 * group, 4 * group + 4)
      const wrong: string[] = []
      const batch = 4 * group
      {
        const runs = await pool(
          4,
          samples.map((argv) => async () => ({argv, r: await hvmem(dir, argv)})),
        )
        for (const {argv, r} of runs) {
          count('argv: binary runs')
          const where = `${JSON.stringify(argv)} (seed ${seed}, set HVMEM_FUZZ_SEED to repeat)`
          // `snapshot diff` exits as diff(1) does: 1 means the snapshots differ (docs/diff.md)
          const diffDifferent = argv[0] === 'snapshot' && argv[1] === 'diff' && r.code === 1 && r.stderr === ''
          if (!documented.has(r.code) && !diffDifferent) wrong.push(`${where}: exit ${r.code}: ${r.stderr}`)
          if (stackLines(r.stderr).length > 0) wrong.push(`${where}: stack trace`)
          // an unknown command goes through hvmem's command_not_found hook: one line, exit 2
          if (r.stderr.startsWith('hvmem: unknown command ')) {
            count('argv: unknown commands')
            if (r.code !== 2) wrong.push(`${where}: unknown command with exit ${r.code}`)
          }
          const lines = r.stderr === '' ? [] : r.stderr.replace(/\n$/, '').split('\n')
          if (lines.length > 1) wrong.push(`${where}: ${lines.length} lines on stderr: ${JSON.stringify(r.stderr)}`)
          const dashes = argv.indexOf('--')
          const json = argv.includes('--json') && (dashes === -1 || argv.indexOf('--json') < dashes)
          if (r.code !== 0) {
            if (json) {
              // the error is the JSON document on stdout
              let exitCode: unknown
              try {
                exitCode = (JSON.parse(r.stdout) as {error?: {exitCode?: unknown}}).error?.exitCode
              } catch {
                exitCode = undefined
              }
              if (exitCode !== r.code && !(lines.length === 1 && lines[0]!.startsWith('hvmem: ')))
                wrong.push(`${where}: exit ${r.code} without a JSON error: ${JSON.stringify(r.stdout.slice(0, 200))}`)
            } else if (lines.length !== 1 || !lines[0]!.startsWith('hvmem: ')) wrong.push(`${where}: exit ${r.code} without a one-line "hvmem: " message: ${JSON.stringify(r.stderr)}`)
          }
        }
        const leftovers = (await readdir(dir)).filter((name) => name.endsWith('.lock') || tempFilePattern('hvmem.snap').test(name) || tempFilePattern('other.snap').test(name))
        if (leftovers.length > 0) wrong.push(`after batch ${batch / 4}: left ${leftovers.join(', ')} (seed ${seed})`)
        try {
          decodeSnapshot(await readFile(join(dir, 'hvmem.snap')), 'hvmem.snap')
        } catch (error) {
          wrong.push(`after batch ${batch / 4}: the snapshot no longer decodes: ${String(error)} (seed ${seed})`)
        }
      }
      expect(wrong).toEqual([])
    },
  )

  afterAll(() => {
    console.log(
      `fuzz cases: ${Object.entries(counts)
        .map(([name, n]) => `${name} ${n}`)
        .join('; ')}; total ${Object.entries(counts)
        .filter(([name]) => !name.includes('(oclif)'))
        .reduce((a, [, n]) => a + n, 0)}`,
    )
  })
})
