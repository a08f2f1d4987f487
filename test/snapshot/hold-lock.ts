/**
 * A helper process for tests (run with `node --import tsx`): holds a snapshot's lock, or writes an
 * output file slowly, until told to stop, printing a line once it is under way, so that tests wait on
 * what they can see rather than on time.
 *
 *   hold-lock.ts session SNAPSHOT   lock SNAPSHOT (a batch session), allocate a page, print "locked",
 *                                   and commit when standard input closes
 *   hold-lock.ts export FILE        write FILE through writeOutputFile a byte at a time (at most 16 MiB),
 *                                   printing "writing" once its temp file exists
 */
import {updateSnapshot, withSnapshotSession, writeOutputFile} from '../../src/snapshot/store.js'

const [mode, path] = process.argv.slice(2)
if (path === undefined) throw new Error('usage: hold-lock.ts session|export PATH')

function stdinClosed(): Promise<void> {
  return new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.resume()
  })
}

if (mode === 'session') {
  await withSnapshotSession(path, async () => {
    await updateSnapshot(path, (m) => m.heap.allocPage())
    process.stdout.write('locked\n')
    await stdinClosed()
    return {result: undefined, commit: true}
  })
  process.stdout.write('saved\n')
} else {
  function* slowly(): Generator<Uint8Array> {
    process.stdout.write('writing\n')
    for (let i = 0; i < 1 << 24; i++) yield new Uint8Array(1)
  }
  await writeOutputFile(path, slowly(), {device: false, label: path})
}
