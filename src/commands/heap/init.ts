import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {u64Flag} from '../../cli/flags.js'
import {type HeapJson, heapJson} from '../../cli/json.js'
import {DEFAULT_HEAP_BASE, DEFAULT_HEAP_SIZE, DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE} from '../../core/heap.js'
import {Machine} from '../../core/machine.js'
import {formatSize, hex} from '../../core/u64.js'
import {createSnapshot} from '../../snapshot/store.js'

export interface HeapInitJson {
  snapshot: string
  ram: {base: string; size: number; end: string}
  heap: HeapJson
}

export default class HeapInit extends HvmemCommand {
  static override summary = 'Create a snapshot: emulated RAM with an empty bump-allocated heap in it.'
  static override description = `RAM defaults to QEMU virt's 0x40000000 + 1 GiB; the heap to 16 MiB at 0x41000000. The heap must lie inside RAM, and RAM below 2^40 (the 40-bit PA size in VTCR_EL2). An existing snapshot is replaced only with --force.`
  static override examples = [
    '<%= config.bin %> heap init',
    '<%= config.bin %> heap init --size 64M --force',
    '<%= config.bin %> heap init -s vm1.snap --ram-base 0x8000_0000 --ram-size 2G --base 0x8000_0000',
  ]

  static override flags = {
    base: u64Flag({summary: 'Heap start address (4 KiB aligned).', default: DEFAULT_HEAP_BASE}),
    size: u64Flag({summary: 'Heap size (multiple of 4 KiB).', default: DEFAULT_HEAP_SIZE}),
    'ram-base': u64Flag({summary: 'RAM start address (4 KiB aligned).', default: DEFAULT_RAM_BASE}),
    'ram-size': u64Flag({summary: 'RAM size (multiple of 4 KiB).', default: DEFAULT_RAM_SIZE}),
    force: Flags.boolean({summary: 'Replace an existing snapshot.', default: false}),
  }

  async run(): Promise<HeapInitJson> {
    const {flags} = await this.parse(HeapInit)
    const machine = Machine.create({ramBase: flags['ram-base'], ramSize: flags['ram-size'], heapBase: flags.base, heapSize: flags.size})
    await createSnapshot(flags.snapshot, machine, flags.force)
    const heap = machine.heap.status()
    this.log(
      `Created ${flags.snapshot}: RAM ${hex(machine.memory.base)}-${hex(machine.memory.end)} (${formatSize(machine.memory.size)}), heap ${hex(heap.start)}-${hex(heap.end)} (${formatSize(heap.size)})`,
    )
    return {snapshot: flags.snapshot, ram: {base: hex(machine.memory.base), size: Number(machine.memory.size), end: hex(machine.memory.end)}, heap: heapJson(heap)}
  }
}
