import {availableParallelism} from 'node:os'
import {defineConfig} from 'vitest/config'

const cores = Math.max(1, availableParallelism())

/*
 * Timing is never what a test checks, and the suite must pass on a busy machine (a 2-core CI runner
 * shared with other work): the timeouts only end a test that hangs, and are far above what any test
 * takes on an idle machine (the longest case a few seconds; QEMU conformance cases set their own).
 *
 * Three groups, one after the other, each with one worker a core:
 * - in-process: the core, the snapshot store and the CLI's in-process parts, CPU in the test worker
 *   itself.
 * - processes: the files that start the built binary (test/cli, test/reliability) and QEMU
 *   (test/conformance). Most of their tests run one short process at a time, so a single worker
 *   leaves a core idle; two files side by side (up to 8 processes each in a race) only slow each
 *   other down, which no test measures.
 * - guests (not in `npm test`; `npm run guests`): real kernels and firmware booted in QEMU and
 *   captured, a few minutes of emulation that a newcomer's quick suite leaves out.
 * - package: the files that read dist/ whole (npm pack of it, oclif readme over it), last and alone:
 *   test/cli/build.test.ts rebuilds dist/ and swaps it in, which a run of hvmem survives but a copy
 *   of the folder taken meanwhile might not.
 *
 * In-process and processes run with isolate: false: a worker runs its files one after another in one
 * process and module graph (the runner, oclif's config and src/ are loaded once a worker, not once a
 * file: about a CPU-second a file). A test file that changes process-wide state (process.env, cwd,
 * console, spies) puts it back in its own after hooks (test/reliability/crash.test.ts, journal.test.ts,
 * test/cli/inprocess.ts); no file relies on modules fresh for it.
 */
const PROCESS_FILES = ['test/cli/**/*.test.ts', 'test/reliability/**/*.test.ts', 'test/conformance/**/*.test.ts']
/** Real guests booted in QEMU (Linux, U-Boot): `npm run guests`, which CI runs after `npm test`. */
const GUEST_FILES = ['test/conformance/guests.test.ts']
const PACKAGE_FILES = ['test/cli/install.test.ts', 'test/cli/docs.test.ts']
const IN_PROCESS_FILES = [
  'test/core/**/*.test.ts',
  'test/snapshot/**/*.test.ts',
  'test/cli/batch-output.test.ts',
  'test/cli/dump-json.test.ts',
  'test/cli/execute.test.ts',
  'test/cli/progress.test.ts',
  'test/cli/render-table.test.ts',
]

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 600_000,
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: {name: 'in-process', include: IN_PROCESS_FILES, isolate: false, maxWorkers: cores, sequence: {groupOrder: 0}},
      },
      {
        extends: true,
        test: {name: 'processes', include: PROCESS_FILES, exclude: [...IN_PROCESS_FILES, ...PACKAGE_FILES, ...GUEST_FILES], isolate: false, maxWorkers: cores, sequence: {groupOrder: 1}},
      },
      {
        extends: true,
        test: {name: 'package', include: PACKAGE_FILES, maxWorkers: cores, sequence: {groupOrder: 2}},
      },
      {
        extends: true,
        test: {name: 'guests', include: GUEST_FILES, maxWorkers: cores, sequence: {groupOrder: 3}},
      },
    ],
  },
})
