/**
 * A declarative memory map (docs/layout.md): the mapper's regime and geometry, then regions, each
 * mapped with its attributes. Applying one is map region for each region with --replace (the layout
 * wins inside its regions), and with `prune` an unmap of everything between them: run on a machine
 * inside one snapshot update, it is all or nothing, and applying it again changes nothing.
 */
import {type AttributeRequest, resolveAttributes} from './attributes.js'
import type {RegimeName} from './descriptor.js'
import {type SnapshotDiff, diffSinceCheckpoint} from './diff.js'
import {HvmemError} from './errors.js'
import type {Checkpoint, Machine} from './machine.js'
import type {EditResult, MapOptions, MapResult, MapperOptions} from './mapper.js'
import {hex} from './u64.js'

export interface LayoutRegion {
  name: string
  /** 1-based line of the region in its file */
  line: number
  ipa: bigint
  size: bigint
  /** default: ipa (identity) */
  pa?: bigint
  attributes: AttributeRequest
  granularity?: MapOptions['granularity']
  /** set the contiguous bit on the aligned runs inside the region (map region --contiguous) */
  contiguous?: boolean
}

export interface LayoutSpec {
  /** the file's name, as errors give it */
  file: string
  /** the line of the mapper section (1 when there is none) */
  mapperLine: number
  mapper: MapperOptions
  regions: LayoutRegion[]
}

export interface RegionOutcome {
  region: LayoutRegion
  result: MapResult
  /** the mapper's own table pages this region's output covers */
  coversTables: bigint[]
}

export interface LayoutOutcome {
  mapperCreated: boolean
  regime: RegimeName
  granule: number
  regions: RegionOutcome[]
  /** with prune: what the unmaps between the regions cleared */
  pruned: EditResult[]
}

/** Re-throws `error` with the file, line and region in front: "memmap.yaml:12: region uart: ...". */
function located<T>(where: string, body: () => T): T {
  try {
    return body()
  } catch (error) {
    if (error instanceof HvmemError) throw new HvmemError(error.kind, `${where}: ${error.summary}`)
    throw error
  }
}

const regionWhere = (spec: LayoutSpec, r: LayoutRegion): string => `${spec.file}:${r.line}: region ${r.name}`

/** Refuses two regions with one name, or whose input ranges overlap, naming both; returns the regions in input-address order. */
export function checkRegions(spec: LayoutSpec): LayoutRegion[] {
  const names = new Map<string, LayoutRegion>()
  for (const r of spec.regions) {
    const other = names.get(r.name)
    if (other !== undefined) throw new HvmemError('input', `${regionWhere(spec, r)}: the name is already used by the region at line ${other.line}`)
    names.set(r.name, r)
    if (r.size <= 0n) throw new HvmemError('input', `${regionWhere(spec, r)}: size must be > 0`)
  }
  const sorted = [...spec.regions].sort((a, b) => (a.ipa < b.ipa ? -1 : a.ipa > b.ipa ? 1 : 0))
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1]!, sorted[i]!]
    if (b.ipa < a.ipa + a.size) {
      throw new HvmemError('input', `${regionWhere(spec, b)}: ${hex(b.ipa)}-${hex(b.ipa + b.size)} overlaps region ${a.name} (line ${a.line}, ${hex(a.ipa)}-${hex(a.ipa + a.size)})`)
    }
  }
  return sorted
}

/**
 * applyLayout behind a checkpoint, with what it changed: the diff against the machine before it,
 * reading only the pages it touched (diffSinceCheckpoint). The checkpoint is left open: the caller
 * releases it (keeps the change) or rolls it back (a dry run); on an error it is rolled back here.
 */
export function applyLayoutWithDiff(machine: Machine, spec: LayoutSpec, options: {prune?: boolean} = {}): {outcome: LayoutOutcome; diff: SnapshotDiff; checkpoint: Checkpoint} {
  const checkpoint = machine.checkpoint()
  try {
    const outcome = applyLayout(machine, spec, options)
    return {outcome, diff: diffSinceCheckpoint(machine, checkpoint), checkpoint}
  } catch (error) {
    checkpoint.rollback()
    throw error
  }
}

/** Applies the layout to `machine`; throws (leaving the machine half-changed: run it where a failure saves nothing) on the first error. */
export function applyLayout(machine: Machine, spec: LayoutSpec, options: {prune?: boolean} = {}): LayoutOutcome {
  const inOrder = checkRegions(spec)
  const {mapper, created} = located(`${spec.file}:${spec.mapperLine}: mapper`, () => machine.ensureMapper(spec.mapper))
  const regions: RegionOutcome[] = []
  // every region's attributes first, so a bad one is reported before anything is mapped
  const resolved = spec.regions.map((r) => located(regionWhere(spec, r), () => resolveAttributes(mapper.state.regime, r.attributes)))
  spec.regions.forEach((r, i) => {
    const result = located(regionWhere(spec, r), () => mapper.mapRegion(r.ipa, r.size, resolved[i]!, {pa: r.pa, granularity: r.granularity, replace: true, contiguous: r.contiguous}))
    regions.push({region: r, result, coversTables: []})
  })
  const pruned: EditResult[] = []
  if (options.prune === true) {
    let at = 0n
    const limit = mapper.geometry.inputLimit
    for (const r of inOrder) {
      if (r.ipa > at) pruned.push(mapper.unmap(at, r.ipa - at))
      at = r.ipa + r.size
    }
    if (at < limit) pruned.push(mapper.unmap(at, limit - at))
  }
  // the tables as they are at the end: a later region may have made tables an earlier one covers
  for (const o of regions) o.coversTables = mapper.tablePagesIn(o.result.pa, o.result.size)
  return {mapperCreated: created, regime: mapper.state.regime, granule: mapper.geometry.granule, regions, pruned}
}
