import {availableParallelism} from 'node:os'
import {defineConfig} from 'vitest/config'

const cores = Math.max(1, availableParallelism())

/*
 * Timing is never what a test checks, and the suite must pass on a busy machine (a 2-core CI runner
 * shared with other work): the timeouts only end a test that hangs, and are far above what any test
 * takes on an idle machine (the longest case a few seconds; QEMU conformance cases set their own).
 *
 * Two groups, one after the other:
 * - in-process: the core, the snapshot store and the CLI's in-process parts, CPU in the test worker
 *   itself: one worker a core.
 * - processes: the files that start the built binary (test/cli, test/reliability) and QEMU
 *   (test/conformance). Their CPU is in the processes they start (up to 8 at once in a race), so
 *   one worker on 2 cores, half the cores on larger machines: a file's processes get the cores
 *   instead of competing with another CPU-heavy file (the 1 GiB snapshot, 30 SIGKILLs, QEMU).
 */
const PROCESS_FILES = ['test/cli/**/*.test.ts', 'test/reliability/**/*.test.ts', 'test/conformance/**/*.test.ts']
const IN_PROCESS_FILES = ['test/core/**/*.test.ts', 'test/snapshot/**/*.test.ts', 'test/cli/batch-output.test.ts', 'test/cli/dump-json.test.ts', 'test/cli/progress.test.ts', 'test/cli/render-table.test.ts']

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 600_000,
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: {name: 'in-process', include: IN_PROCESS_FILES, maxWorkers: cores, sequence: {groupOrder: 0}},
      },
      {
        extends: true,
        test: {name: 'processes', include: PROCESS_FILES, exclude: IN_PROCESS_FILES, maxWorkers: Math.max(1, Math.floor(cores / 2)), sequence: {groupOrder: 1}},
      },
    ],
  },
})
