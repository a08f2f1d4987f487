/**
 * A full disk (ENOSPC) while a command changes a snapshot: exit 9 in one line, the snapshot
 * byte-identical, and nothing left beside it (no lock, no temp file), so the next command runs at
 * once. Each case is a shell script run with a small tmpfs mounted on `fs` in a new user and mount
 * namespace (proc.ts, onTmpfs); skipped where that cannot be done.
 */
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {canMountTmpfs, onTmpfs, scratch} from './proc.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  ;({dir, cleanup} = await scratch())
})
afterEach(async () => cleanup())

/** Fills the tmpfs (the error of the write that finds it full is not the test's). */
const FILL = 'cat /dev/zero > fs/fill 2>/dev/null\n'

describe.skipIf(!canMountTmpfs)('a full disk', () => {
  it('while taking the lock: exit 9, no lock left (its owner file made but not written), and the next command does not wait', async () => {
    const r = await onTmpfs(
      dir,
      '200k',
      `hvmem heap init -s fs/t.snap > /dev/null || exit 98
cp fs/t.snap before.snap
${FILL}hvmem alloc page -s fs/t.snap; echo "rc $?"
hvmem heap init -s fs/new.snap; echo "rc $?"
ls -A fs; cmp fs/t.snap before.snap && echo unchanged
rm fs/fill
hvmem alloc page -s fs/t.snap`,
    )
    expect(r.stderr).toBe('hvmem: no space left to save fs/t.snap; the snapshot was not changed\nhvmem: no space left to save fs/new.snap; the snapshot was not changed\n')
    // (a lock left behind: listed here, and the last command took it over, after 10 s, saying so on stderr)
    expect(r.stdout).toBe('rc 9\nrc 9\nfill\nt.snap\nunchanged\n0x41000000\n')
    expect(r.code).toBe(0)
  })
})
