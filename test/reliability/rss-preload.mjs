// Preloaded (node --import) into a command under test: at exit, writes its peak resident set size
// in kilobytes (process.resourceUsage().maxRSS) to the file named by HVMEM_RSS_OUT.
import {writeFileSync} from 'node:fs'

process.on('exit', () => {
  if (process.env.HVMEM_RSS_OUT) writeFileSync(process.env.HVMEM_RSS_OUT, String(process.resourceUsage().maxRSS))
})
