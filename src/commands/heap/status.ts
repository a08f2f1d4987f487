import {type HeapJson, type MapperJson, heapJson, mapperJson, registerLine} from '../../cli/json.js'
import {percent, usageBar} from '../../cli/render.js'
import {color, renderTable} from '../../cli/style.js'
import {type Parsed, ReadCommand} from '../../cli/machine-command.js'
import type {Machine} from '../../core/machine.js'
import {formatSize, hex} from '../../core/u64.js'

export interface HeapStatusJson {
  ram: {base: string; size: number; end: string}
  heap: HeapJson
  mapper: MapperJson | null
}

export default class HeapStatus extends ReadCommand<Parsed, HeapStatusJson> {
  static override summary = 'Show the heap: start, end, next free address, allocated, remaining, and bytes lost to alignment padding.'
  static override examples = ['<%= config.bin %> heap status', '<%= config.bin %> heap status --json']

  protected report(machine: Machine): HeapStatusJson {
    const s = machine.heap.status()
    const mapper = machine.mapper
    const rows = [
      ['start', hex(s.start)],
      ['end', hex(s.end)],
      ['next', hex(s.next)],
      ['allocated', `${s.allocated}`],
      ['padding', `${s.padding}`],
      ['remaining', `${s.remaining}`],
    ]
    this.log(renderTable(['heap', 'value'], rows, {align: ['left', 'right']}))
    // (no heap: a whole RAM image, size 0, no bar to draw)
    if (s.size === 0n) this.log('No heap: the snapshot is a whole RAM image, and nothing can be allocated.')
    else this.log(`${usageBar(s)} ${percent(s.next - s.start, s.size)} of ${formatSize(s.size)} used  ${color.cyan('█')} allocated ${color.yellow('▒')} padding ${color.dim('░')} free`)
    if (mapper === undefined) this.log('No mapper yet: "hvmem map region" creates one.')
    else {
      const vmid = mapper.state.regime === 'stage2' ? `, VMID ${mapper.state.vmid}` : ''
      const orphans = mapper.state.orphanedTables
      const orphaned = orphans > 0 ? `, ${orphans} unreachable table page(s) (${formatSize(BigInt(orphans) * 4096n)} lost)` : ''
      this.log(`Mapper: ${mapper.state.regime}, root ${hex(mapper.root)}${vmid}, ${mapper.l2Tables().length}/${mapper.state.l2Budget} L2 tables${orphaned}; ${registerLine(mapper)}`)
    }
    return {ram: {base: hex(machine.memory.base), size: Number(machine.memory.size), end: hex(machine.memory.end)}, heap: heapJson(s), mapper: mapper === undefined ? null : mapperJson(mapper)}
  }
}
