import {HvmemCommand} from '../../cli/base.js'
import {textArg} from '../../cli/flags.js'
import {type HeapJson, type MapperJson, heapJson, mapperJson, registerLine, registersJson} from '../../cli/json.js'
import {renderTable} from '../../cli/style.js'
import {storedTableCount} from '../../core/diff.js'
import {memoryPages} from '../../core/page-list.js'
import {formatSize, hex} from '../../core/u64.js'
import {openSnapshotFile} from '../../snapshot/store.js'

export interface SnapshotInfoJson {
  file: string
  /** the file's format version (1 or 2) */
  version: number
  /** the file's size in bytes */
  size: number
  ram: {base: string; size: number; end: string}
  heap: HeapJson
  mapper: MapperJson | null
  /** pages stored in the file (those holding a non-zero byte), and how many of them hold translation tables */
  pages: {stored: number; tables: number}
  /** the CRC-32 the file stores: version 2 and later, of the (base's) header and page index (which holds every page's CRC); version 1, of the whole file */
  checksum: {crc32: string; covers: 'header+index' | 'file'}
  /** the system registers snapshot capture recorded, by name (version 4; absent when none) */
  registers?: Record<string, string>
  /** version 5: the base's bytes, the records appended after it (count, bytes), and the bytes of an unfinished append after them (ignored) */
  journal?: {base: number; records: number; recordBytes: number; unfinished: number}
}

export default class SnapshotInfo extends HvmemCommand {
  static override summary = 'Describe a snapshot file: format version, size, layout, heap, mapper, stored pages and checksum.'
  static override description = `Reads the header, the page index and the table pages only, never every page: the checksum shown is the one the file stores (version 2: the CRC-32 of the header and page index, which holds each page's own CRC-32; version 1: the CRC-32 of the whole file). FILE defaults to --snapshot. Read-only: nothing is locked or written.`
  static override examples = ['<%= config.bin %> snapshot info', '<%= config.bin %> snapshot info vm.snap --json']

  static override args = {
    file: textArg({description: 'Snapshot file (default: --snapshot).'}),
  }

  async run(): Promise<SnapshotInfoJson> {
    const {args, flags} = await this.parse(SnapshotInfo)
    const path = args.file ?? flags.snapshot
    const file = await openSnapshotFile(path)
    const machine = file.machine
    const memory = machine.memory
    // version 2: the index lists the stored pages; version 1 was read whole, so its memory holds them all
    const stored = file.pages ?? memoryPages(memory)
    const tableCount = storedTableCount(stored, machine.tablePages())
    const mapper = machine.mapper
    const s = machine.heap.status()
    const covers = file.version === 1 ? 'file' : 'header+index'
    const json: SnapshotInfoJson = {
      file: path,
      version: file.version,
      size: file.size,
      ram: {base: hex(memory.base), size: Number(memory.size), end: hex(memory.end)},
      heap: heapJson(s),
      mapper: mapper === undefined ? null : mapperJson(mapper),
      pages: {stored: stored.count, tables: tableCount},
      checksum: {crc32: hex(BigInt(file.checksum), 8), covers},
      ...(machine.registers.length === 0 ? {} : {registers: registersJson(machine.registers)}),
      ...(file.journal === undefined ? {} : {journal: {base: file.journal.baseBytes, records: file.journal.records, recordBytes: file.journal.recordBytes, unfinished: file.journal.unfinished}}),
    }
    const j = json.journal
    const rows: string[][] = [
      ['format', `version ${file.version}`],
      ['size', `${file.size} bytes`],
      ...(j === undefined
        ? []
        : [['records', `${j.records} appended (${j.recordBytes} bytes) after a base of ${j.base} bytes${j.unfinished > 0 ? `; ${j.unfinished} bytes of an unfinished append ignored` : ''}`]]),
      ['RAM', `${hex(memory.base)}-${hex(memory.end)} (${formatSize(memory.size)})`],
      ...(s.size === 0n
        ? [['heap', 'none (a whole RAM image: nothing can be allocated)']]
        : [
            ['heap', `${hex(s.start)}-${hex(s.end)} (${formatSize(s.size)})`],
            ['heap next', `${hex(s.next)}: ${s.allocated} allocated, ${s.padding} padding, ${s.remaining} remaining`],
          ]),
      [
        'mapper',
        mapper === undefined
          ? 'none'
          : `${mapper.state.regime}, root ${hex(mapper.root)}, VMID ${mapper.state.vmid}, ${mapper.l2Tables().length}/${mapper.state.l2Budget} L2 tables, ${mapper.state.orphanedTables} orphaned`,
      ],
      ...(mapper === undefined ? [] : [['geometry', mapper.geometry.describe()]]),
      ...(mapper === undefined ? [] : [['registers', registerLine(mapper)]]),
      ['pages', `${stored.count} stored (${tableCount} holding tables)`],
      ...machine.registers.map((r) => [`${r.name}`, `${hex(r.value)} (recorded)`]),
      ['checksum', `${json.checksum.crc32} (CRC-32 of the ${covers === 'file' ? 'whole file' : 'header and page index'})`],
    ]
    this.log(renderTable(['snapshot', path], rows))
    return json
  }
}
