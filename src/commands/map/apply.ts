import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {textArg} from '../../cli/flags.js'
import {type SnapshotDiffJson, diffJson, diffLines} from '../../cli/diff-render.js'
import {type CountsJson, contiguousLine, countsJson, describeCounts, tablesWarning, total} from '../../cli/edit.js'
import {STDIN_NAME, inputChunks} from '../../cli/input.js'
import {type MapperJson, mapperJson, registerLine} from '../../cli/json.js'
import {parseLayout} from '../../cli/layout-file.js'
import {quote} from '../../cli/numbers.js'
import type {SnapshotDiff} from '../../core/diff.js'
import {HvmemError} from '../../core/errors.js'
import {type LayoutOutcome, applyLayoutWithDiff} from '../../core/layout.js'
import type {Machine} from '../../core/machine.js'
import {formatSize, hex} from '../../core/u64.js'
import {loadSnapshot, updateSnapshot, warn} from '../../snapshot/store.js'

export interface ApplyRegionJson {
  name: string
  line: number
  ipa: string
  end: string
  size: number
  pa: string
  attr: string
  descriptor: string
  written: number
  unchanged: number
  /** a region with contiguous: true: its runs whose entries carry the contiguous bit, by leaf size */
  contiguousRuns?: CountsJson
  /** the mapper's own table pages the region's output covers (each a warning) */
  coversTables: string[]
}

export interface MapApplyJson {
  /** LAYOUT as given: a file name, or "-" for standard input */
  layout: string
  /** --check: nothing was written */
  check: boolean
  /** whether applying the layout changes the snapshot */
  changed: boolean
  /** whether the snapshot was written (false with --check, or when nothing changes) */
  saved: boolean
  mapperCreated: boolean
  regions: ApplyRegionJson[]
  /** with --prune: leaf descriptors cleared between the regions */
  pruned: number
  /** the snapshot before and after, as snapshot diff --json gives it */
  diff: SnapshotDiffJson
  mapper: MapperJson
}

export default class MapApply extends HvmemCommand {
  static override summary = 'Make the tables map what a layout file describes: the mapper, then every region, all or nothing.'
  static override description = `LAYOUT is a YAML file (docs/layout.md), or - for standard input: a mapper section (regime, granule, ipa-bits or va-bits, preset, vmid, l2-budget; they create the mapper, or must match the existing one) and a list of regions, each with a name, ipa (va for stage1), size, and optionally pa (default identity), attr (a preset), mem, sh, perm, exec-at, granularity and contiguous (true: the contiguous bit on the aligned runs inside the region), as map region takes them. Regions may not overlap.

Each region is mapped as "map region --replace" would: inside its regions the layout wins; with --prune every mapping outside them is unmapped too. The whole layout is applied in one snapshot update: any error (a bad field, the budget, the heap) leaves the snapshot unchanged, and names the file (standard input for -), the line and the region. Applying a layout that is applied already changes nothing and says so; the snapshot is then not written.

--check applies the layout to the snapshot as loaded, prints what would change, as snapshot diff shows it, and undoes it, writing nothing. A region whose output covers the mapper's own table pages is applied with a warning.`
  static override examples = [
    '<%= config.bin %> map apply memmap.yaml --check',
    '<%= config.bin %> map apply memmap.yaml',
    '<%= config.bin %> map apply memmap.yaml --prune --json',
    'generate-layout | <%= config.bin %> map apply -',
  ]

  static override args = {
    layout: textArg({description: 'The layout file (YAML), or - for standard input.', required: true}),
  }

  static override flags = {
    check: Flags.boolean({summary: 'Print what applying would change (a snapshot diff) and write nothing.', default: false}),
    prune: Flags.boolean({summary: "Also unmap everything outside the layout's regions.", default: false}),
  }

  async run(): Promise<MapApplyJson> {
    const {args, flags} = await this.parse(MapApply)
    const stdin = args.layout === '-'
    // Lines of a batch never read standard input (docs/scripting.md): the batch's script may be on it.
    if (stdin && this.batch !== undefined) throw new HvmemError('input', "LAYOUT -: a batch's lines never read standard input; name the layout file")
    // what messages call the layout: parse errors "standard input:3: ...", the summary "the layout from standard input"
    const file = stdin ? STDIN_NAME : args.layout
    const shown = stdin ? `the layout from ${STDIN_NAME}` : args.layout
    const spec = parseLayout(await readLayout(args.layout), file)
    const names = {a: flags.snapshot, b: `${flags.snapshot} with ${shown}`}
    const options = {prune: flags.prune}
    const json = (outcome: LayoutOutcome, diff: SnapshotDiff, machine: Machine, saved: boolean): MapApplyJson => ({
      layout: args.layout,
      check: flags.check,
      changed: !diff.same,
      saved,
      mapperCreated: outcome.mapperCreated,
      regions: outcome.regions.map(({region, result, coversTables}) => ({
        name: region.name,
        line: region.line,
        ipa: hex(result.ipa),
        end: hex(result.ipa + result.size),
        size: Number(result.size),
        pa: hex(result.pa),
        attr: result.attr,
        descriptor: hex(result.descriptor),
        written: total(result.written),
        unchanged: total(result.unchanged),
        ...(result.contiguousRuns === undefined ? {} : {contiguousRuns: countsJson(result.contiguousRuns, machine.mapper!.geometry)}),
        coversTables: coversTables.map((t) => hex(t)),
      })),
      pruned: outcome.pruned.reduce((n, r) => n + total(r.cleared), 0),
      diff: diffJson(diff, names),
      mapper: mapperJson(machine.mapper!),
    })
    // A dry run on the snapshot as loaded (read on demand: a large one costs only the pages the
    // layout touches), then undone: what would change, and whether anything would.
    const current = await loadSnapshot(flags.snapshot)
    const trial = applyLayoutWithDiff(current, spec, options)
    if (flags.check || trial.diff.same) {
      if (trial.diff.same) this.log(`No change: ${shown} is applied already to ${flags.snapshot}`)
      else for (const line of diffLines(trial.diff, names)) this.log(line)
      this.warnTables(trial.outcome)
      const report = json(trial.outcome, trial.diff, current, false)
      trial.checkpoint.rollback()
      return report
    }
    trial.checkpoint.rollback()
    // the change itself, under the lock, on the snapshot as it is then
    const {outcome, diff, machine} = await updateSnapshot(flags.snapshot, (machine) => {
      const applied = applyLayoutWithDiff(machine, spec, options)
      applied.checkpoint.release()
      return {...applied, machine}
    })
    const g = machine.mapper!.geometry
    if (outcome.mapperCreated) this.log(`Created the ${machine.mapper!.state.regime} mapper (${g.describe()}): root at ${hex(machine.mapper!.root)}`)
    this.log(`Applied ${shown}: ${outcome.regions.length} region(s)`)
    for (const {region, result} of outcome.regions) {
      const target = result.pa === result.ipa ? '' : ` -> ${hex(result.pa)}`
      this.log(
        `  ${region.name}: ${hex(result.ipa)}-${hex(result.ipa + result.size)}${target} (${formatSize(result.size)}) ${result.attr}: ${describeCounts(result.written, g)} written, ${describeCounts(result.unchanged, g)} already so`,
      )
      if (result.contiguousRuns !== undefined) this.log(`    ${contiguousLine(result.contiguousRuns, g)}`)
    }
    if (flags.prune) this.log(`Pruned: ${outcome.pruned.reduce((n, r) => n + total(r.cleared), 0)} descriptor(s) outside the regions cleared`)
    this.warnTables(outcome)
    this.log(registerLine(machine.mapper!))
    return json(outcome, diff, machine, true)
  }

  private warnTables(outcome: LayoutOutcome): void {
    for (const {region, result, coversTables} of outcome.regions) {
      if (coversTables.length > 0) warn(`warning: region ${region.name}: ${tablesWarning(outcome.regime, result.ipa, result.size, coversTables, outcome.granule)}`)
    }
  }
}

/** The most bytes a layout may have (a real one is a few kilobytes): `yes | hvmem map apply -` stops there. */
export const MAX_LAYOUT_BYTES = 16 << 20

/** The layout's text: the file, or standard input for "-"; an unreadable file is an error naming it. */
async function readLayout(path: string): Promise<string> {
  const name = path === '-' ? `the layout from ${STDIN_NAME}` : `the layout ${quote(path)}`
  const chunks: Buffer[] = []
  let bytes = 0
  const input = inputChunks(path, {
    name,
    stdinDirectory: 'cannot read the layout from standard input: it is a directory; redirect a layout file to it, or name the file: hvmem map apply LAYOUT',
    stdinTerminal: 'cannot read the layout from standard input: it is a terminal; pipe the layout in (hvmem map apply - < guest.yaml) or name the file',
  })
  for await (const chunk of input) {
    bytes += chunk.length
    if (bytes > MAX_LAYOUT_BYTES) throw new HvmemError('input', `${name} is larger than ${MAX_LAYOUT_BYTES >> 20} MiB (not a layout?); nothing was applied`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
