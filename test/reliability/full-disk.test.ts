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

  // A version-5 snapshot (HVMEM_JOURNAL_THRESHOLD lowers the 4 MiB) whose next change is appended;
  // `fs` is then filled but for one page, which the lock's owner file takes: the record's write fills
  // what is left of the file's last page and fails.
  it.each([
    ['ending in its last record', ''],
    [
      'ending in an unfinished append (cut away first, then put back)',
      'end=$(stat -c %s fs/v.snap)\nhvmem mem write 0x50000000 5 -s fs/v.snap > /dev/null || exit 98\ntruncate -s $((end + 30)) fs/v.snap\n',
    ],
  ])('while appending to a snapshot %s: exit 9, and the file byte-identical', async (_what, before) => {
    const r = await onTmpfs(
      dir,
      '1m',
      `hvmem heap init -s fs/v.snap > /dev/null && hvmem map region 0x40000000 64M --granularity page -s fs/v.snap > /dev/null 2>&1 || exit 98
[ "$(od -An -tu4 -j8 -N4 fs/v.snap)" -eq 5 ] || exit 97
${before}cp fs/v.snap before.snap
${FILL}truncate -s -4096 fs/fill
hvmem mem write 0x50001000 6 -s fs/v.snap; echo "rc $?"
ls -A fs; cmp fs/v.snap before.snap && echo unchanged`,
      {HVMEM_JOURNAL_THRESHOLD: '65536'},
    )
    expect(r.stderr).toBe('hvmem: no space left to save fs/v.snap; the snapshot was not changed\n')
    expect(r.stdout).toBe('rc 9\nfill\nv.snap\nunchanged\n')
    expect(r.code).toBe(0)
  })
})
