// Preloaded (node --import) into a benchmarked process: at exit, writes its peak resident set size in
// kilobytes (process.resourceUsage().maxRSS) to the file named by BENCH_RSS_OUT.
import {writeFileSync} from 'node:fs'

process.on('exit', () => {
  if (process.env.BENCH_RSS_OUT) writeFileSync(process.env.BENCH_RSS_OUT, String(process.resourceUsage().maxRSS))
})
