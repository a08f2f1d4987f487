import {HvmemCommand} from '../../cli/base.js'
import {type MapperJson, mapperJson} from '../../cli/json.js'
import {requireMapper} from '../../cli/mapper.js'
import {formatSize, hex} from '../../core/u64.js'
import {updateSnapshot} from '../../snapshot/store.js'

export interface CoalesceJson {
  blocks: Array<{ipa: string; end: string; level: number; size: number; descriptor: string}>
  orphanedTables: number
  orphanedBytes: number
  mapper: MapperJson
}

export default class MapCoalesce extends HvmemCommand {
  static override summary = 'Fold every table whose entries are uniform, contiguous leaves back into one block (Hafnium\'s defrag).'
  static override description = `A table qualifies when all 512 entries are valid leaves with identical attributes and physically contiguous output, aligned to the block it becomes: an L3 table of pages becomes a 2 MiB block, then an L2 table of blocks a 1 GiB block. The bump allocator cannot free the folded tables: their bytes are reported here and in "heap status".`
  static override examples = ['<%= config.bin %> map coalesce', '<%= config.bin %> map coalesce --json']

  async run(): Promise<CoalesceJson> {
    const {flags} = await this.parse(MapCoalesce)
    const {result, mapper, geometry} = await updateSnapshot(flags.snapshot, (machine) => {
      const mapper = requireMapper(machine)
      return {result: mapper.coalesce(), mapper: mapperJson(mapper), geometry: mapper.geometry}
    })
    for (const b of result.blocks) this.log(`Folded ${hex(b.ipa)}-${hex(b.ipa + geometry.entrySize(b.level))} into one ${formatSize(geometry.entrySize(b.level))} L${b.level} block ${hex(b.descriptor)}`)
    const bytes = result.orphanedTables * geometry.granule
    this.log(result.blocks.length === 0 ? 'Nothing to coalesce.' : `${result.orphanedTables} table page(s) (${formatSize(BigInt(bytes))}) are now unreachable; the bump allocator cannot free them`)
    return {
      blocks: result.blocks.map((b) => ({ipa: hex(b.ipa), end: hex(b.ipa + geometry.entrySize(b.level)), level: b.level, size: Number(geometry.entrySize(b.level)), descriptor: hex(b.descriptor)})),
      orphanedTables: result.orphanedTables,
      orphanedBytes: bytes,
      mapper,
    }
  }
}
