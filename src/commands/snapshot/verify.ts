import {type ErrorJson, HvmemCommand, oneLine} from '../../cli/base.js'
import {EXIT_CODES} from '../../cli/exit-codes.js'
import {textArg} from '../../cli/flags.js'
import {progress} from '../../cli/progress.js'
import {color, renderTable} from '../../cli/style.js'
import {HvmemError} from '../../core/errors.js'
import {type EntryDamage, type EntryDamageKind, type RegisterDamage, checkRegisters, verifyTables} from '../../core/verify.js'
import {hex} from '../../core/u64.js'
import {type SnapshotFile, openSnapshotFile} from '../../snapshot/store.js'
import {type PageDamage, damagedPages} from '../../snapshot/verify.js'

export interface VerifyPageJson {
  address: string
  reason: PageDamage['reason']
  stored: string
  computed: string
  /** the level of the table the page holds (a table reachable from the mapper): its entries were not checked */
  tableLevel?: number
}

export interface VerifyEntryJson {
  kind: EntryDamageKind
  level: number
  index: number
  table: string
  /** the entry's own physical address */
  address: string
  ipa: string
  descriptor: string
  next?: string
  message: string
}

export interface SnapshotVerifyJson {
  file: string
  /** true when nothing below is damaged (exit 0; otherwise exit 4) */
  intact: boolean
  /** the header and page index (version 1: the whole file, one CRC-32): when damaged nothing else can be read, and the rest is null */
  header: {intact: boolean; version: number | null; problem?: string}
  /** every stored page against its CRC-32 (version 1: covered by the file's CRC-32, checked with the header) */
  pages: {checked: number; damaged: VerifyPageJson[]} | null
  /** every table reachable from the mapper's root (null without a mapper) */
  tables: {checked: number; entries: number; damaged: VerifyEntryJson[]} | null
  /** the registers that install the tables, against them (null without a mapper) */
  registers: {checked: string[]; damaged: RegisterDamage[]} | null
  /** present when anything is damaged (exit 4), as every failing command's JSON has it (docs/scripting.md) */
  error?: ErrorJson['error']
}

export default class SnapshotVerify extends HvmemCommand {
  static override summary = "Check a snapshot whole: every page's CRC-32, every table reachable from the mapper, and its registers."
  static override description = `Reads every stored page and checks it against the CRC-32 in the page index, reporting every damaged page by address (not only the first); walks every table reachable from the mapper's root (a damaged table page is not walked), reporting each entry that points outside RAM, at a table reached already (a loop or an alias), at a next-level table address not aligned to the granule, or holds a reserved encoding, or the contiguous bit (52) on a run whose entries disagree (some without it, other attributes or output, an output not aligned to the run); and checks the registers that install the tables (root, VMID, T0SZ, granule, PA size, start level) against them. Exit 0 when all is intact, 4 when anything is damaged (a damaged header or page index too: nothing else can then be read). FILE defaults to --snapshot. Read-only: nothing is locked or written.`
  static override examples = ['<%= config.bin %> snapshot verify', '<%= config.bin %> snapshot verify vm.snap --json']

  static override args = {
    file: textArg({description: 'Snapshot file (default: --snapshot).'}),
  }

  async run(): Promise<SnapshotVerifyJson> {
    const {args, flags} = await this.parse(SnapshotVerify)
    const path = args.file ?? flags.snapshot
    let file: SnapshotFile
    try {
      file = await openSnapshotFile(path)
    } catch (error) {
      if (!(error instanceof HvmemError) || error.kind !== 'snapshot-invalid') throw error
      return this.report({file: path, intact: false, header: {intact: false, version: null, problem: error.summary}, pages: null, tables: null, registers: null})
    }
    const machine = file.machine
    const ram = {base: machine.memory.base, size: machine.memory.size}

    // pages: version 2 and 3 page by page; version 1 was checked whole (one CRC-32) when it was read
    let pageDamage: PageDamage[] = []
    const stored = file.pages
    if (stored !== undefined) {
      const bar = progress('Verifying', stored.count, {json: this.jsonEnabled()})
      try {
        pageDamage = damagedPages(stored, (done) => bar.update(done))
      } finally {
        bar.finish()
      }
    }
    const checkedPages = stored?.count ?? machine.memory.nonZeroPages().length

    const mapper = machine.mapper
    let tables: SnapshotVerifyJson['tables'] = null
    let registers: SnapshotVerifyJson['registers'] = null
    let tableLevels = new Map<number, number>()
    const verified = verifyTables(machine, new Set(pageDamage.map((p) => Number(p.address >> 12n))))
    if (verified !== undefined) {
      const {check} = verified
      tableLevels = verified.unreadableTables
      tables = {checked: check.tables, entries: check.entries, damaged: check.damage.map(entryJson)}
    }
    if (mapper !== undefined) {
      const regs = mapper.registers()
      registers = {checked: regs.map((r) => r.name), damaged: checkRegisters(regs, mapper.state, mapper.geometry, ram)}
    }
    const pages = {
      checked: checkedPages,
      damaged: pageDamage.map((p): VerifyPageJson => {
        const level = tableLevels.get(Number(p.address >> 12n))
        return {address: hex(p.address), reason: p.reason, stored: hex(BigInt(p.stored), 8), computed: hex(BigInt(p.computed), 8), ...(level === undefined ? {} : {tableLevel: level})}
      }),
    }
    const intact = pages.damaged.length === 0 && (tables?.damaged.length ?? 0) === 0 && (registers?.damaged.length ?? 0) === 0
    return this.report({file: path, intact, header: {intact: true, version: file.version}, pages, tables, registers})
  }

  /** Renders the report (text), sets the exit code, and returns it (the --json document). */
  private report(json: SnapshotVerifyJson): SnapshotVerifyJson {
    process.exitCode = json.intact ? EXIT_CODES.ok : EXIT_CODES['snapshot-invalid']
    if (this.jsonEnabled()) return json.intact ? json : {...json, error: {kind: 'snapshot-invalid', message: damageSummary(json), exitCode: EXIT_CODES['snapshot-invalid']}}
    this.log(reportText(json))
    // the report is the output; a damaged snapshot is also the command's error, one line on stderr as every failing command's (docs/scripting.md)
    if (!json.intact) process.stderr.write(`hvmem: ${damageSummary(json)}\n`)
    return json
  }
}

/**
 * The text report: a summary table, a table of the damaged pages and one of the damaged entries
 * (drawn in one pass, renderTable: they have a row a damaged page or entry, any number of them), the
 * damaged register fields, and a last line.
 */
export function reportText(json: SnapshotVerifyJson): string {
  const none = color.green('none damaged')
  const count = (n: number, one: string, many: string): string => color.red(damaged(n, one, many))
  const summary: string[][] = []
  summary.push(['header and index', json.header.intact ? `intact (format version ${json.header.version})` : color.red(`damaged: ${oneLine(json.header.problem ?? '')}`)])
  if (json.pages !== null) {
    const how = json.header.version === 1 ? "by the whole file's CRC-32" : 'each by its CRC-32'
    summary.push(['pages', `${json.pages.checked} checked ${how}: ${json.pages.damaged.length === 0 ? none : count(json.pages.damaged.length, 'page', 'pages')}`])
  }
  if (json.header.intact) {
    summary.push([
      'tables',
      json.tables === null
        ? 'no mapper'
        : `${json.tables.checked} tables, ${json.tables.entries} valid entries: ${json.tables.damaged.length === 0 ? none : count(json.tables.damaged.length, 'entry', 'entries')}`,
    ])
    summary.push([
      'registers',
      json.registers === null ? 'no mapper' : `${json.registers.checked.join(', ')}: ${json.registers.damaged.length === 0 ? none : count(json.registers.damaged.length, 'field', 'fields')}`,
    ])
  }
  const out = [renderTable(['snapshot', json.file], summary)]
  if (json.pages !== null && json.pages.damaged.length > 0) {
    const rows = json.pages.damaged.map((d) => {
      const why = d.reason === 'checksum' ? `checksum mismatch (stored ${d.stored}, computed ${d.computed})` : 'stored but all zero'
      return [d.address, d.tableLevel === undefined ? why : `${why}; holds a level-${d.tableLevel} table, whose entries were not checked`]
    })
    out.push(renderTable(['damaged page', 'problem'], rows))
  }
  if (json.tables !== null && json.tables.damaged.length > 0) {
    const rows = json.tables.damaged.map((d) => [`L${d.level}[${d.index}] of table ${d.table} (input ${d.ipa})`, d.address, d.descriptor, d.message])
    out.push(renderTable(['damaged entry', 'at', 'descriptor', 'problem'], rows))
  }
  if (json.registers !== null && json.registers.damaged.length > 0) {
    out.push(
      renderTable(
        ['register', 'problem'],
        json.registers.damaged.map((d) => [d.register, d.message]),
      ),
    )
  }
  out.push(json.intact ? `${json.file}: intact` : color.red(`${json.file}: damaged`))
  return out.join('\n')
}

/** One line: what is damaged (the error's message, on stderr or in the JSON). */
function damageSummary(json: SnapshotVerifyJson): string {
  if (!json.header.intact) return `${json.file}: damaged header or page index: ${oneLine(json.header.problem ?? '')}`
  const parts = [
    damaged(json.pages?.damaged.length ?? 0, 'page', 'pages'),
    damaged(json.tables?.damaged.length ?? 0, 'table entry', 'table entries'),
    damaged(json.registers?.damaged.length ?? 0, 'register field', 'register fields'),
  ]
  return `${json.file}: ${parts.filter((part) => !part.startsWith('0 ')).join(', ')}`
}

/** "2 damaged pages", "1 damaged page" */
function damaged(n: number, one: string, many: string): string {
  return `${n} damaged ${n === 1 ? one : many}`
}

/** A damaged entry as --json reports it. */
export function entryJson(d: EntryDamage): VerifyEntryJson {
  return {
    kind: d.kind,
    level: d.level,
    index: d.index,
    table: hex(d.table),
    address: hex(d.address),
    ipa: hex(d.ipa),
    descriptor: hex(d.descriptor, 16),
    ...(d.next === undefined ? {} : {next: hex(d.next)}),
    message: d.message,
  }
}
