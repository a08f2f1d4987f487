// Preloaded (node --import) into a benchmarked process: at exit, writes its peak resident set size in
// kilobytes to the file named by BENCH_RSS_OUT. On Linux that is VmHWM from /proc/self/status, the
// peak of this process's own memory: getrusage's maxRSS would also count the benchmark harness's,
// which a child inherits across fork and exec.
import {readFileSync, writeFileSync} from 'node:fs'

process.on('exit', () => {
  if (!process.env.BENCH_RSS_OUT) return
  let kb = process.resourceUsage().maxRSS
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    if (hwm) kb = Number(hwm[1])
  } catch {
    // not Linux: maxRSS
  }
  writeFileSync(process.env.BENCH_RSS_OUT, String(kb))
})
