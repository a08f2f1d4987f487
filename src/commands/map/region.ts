import {Flags} from '@oclif/core'

import {type CountsJson, type Edited, type TableListJson, contiguousLine, countsJson, describeCounts, editJson, editLines, edited, tablesWarning, total, verboseFlag} from '../../cli/edit.js'
import {intFlag, u64Arg, u64Flag} from '../../cli/flags.js'
import {type MapperJson, registerLine} from '../../cli/json.js'
import {MachineCommand, type Parsed} from '../../cli/machine-command.js'
import {color} from '../../cli/style.js'
import {HvmemError} from '../../core/errors.js'
import {GRANULES, type Granule, MAX_INPUT_BITS, MIN_INPUT_BITS, MIN_MAPPER_IPA_BITS, granuleName} from '../../core/geometry.js'
import type {Machine} from '../../core/machine.js'
import {KVM_PRESET, MAX_L2_BUDGET, type MapResult, type MapperOptions} from '../../core/mapper.js'
import {MAX_VMID} from '../../core/registers.js'
import {type AttributeRequest, resolveAttributes} from '../../core/attributes.js'
import {ATTRS, type Attr, REGIME_NAMES, type RegimeName} from '../../core/descriptor.js'
import {formatSize, hex} from '../../core/u64.js'
import {parseU64} from '../../cli/numbers.js'
import {warn} from '../../snapshot/store.js'

export interface MapRegionJson {
  /** attr: the preset's name, or the attributes spelled out ("Normal-NC IS RW NX") */
  mapped: {ipa: string; end: string; size: number; pa: string; attr: string; descriptor: string}
  /** the mapper's own table pages the output range covers (see the warning) */
  coversTables: string[]
  /** leaf descriptors covering the range: written + unchanged */
  blocks: number
  written: number
  unchanged: number
  leaves: {written: CountsJson; unchanged: CountsJson}
  splits: number
  /** with --contiguous: the runs inside the range whose entries carry the contiguous bit, by leaf size */
  contiguousRuns?: CountsJson
  newTables: TableListJson
  orphanedTables: number
  mapperCreated: boolean
  mapper: MapperJson
}

const args = {
  ipa: u64Arg({description: 'First input address (4 KiB aligned).', required: true}),
  size: u64Arg({description: 'Bytes to map (a multiple of 4 KiB).', required: true}),
}

const flags = {
  attr: Flags.option({options: ATTRS, summary: 'Memory attributes.', default: 'normal' as Attr})(),
  mem: Flags.string({
    summary: 'Memory type, overriding the preset: Normal-WB, Normal-WT, Normal-NC, Normal-oWB-iNC ..., Device-nGnRnE, Device-nGnRE, Device-nGRE, Device-GRE.',
    helpGroup: 'ATTRIBUTES',
  }),
  sh: Flags.string({summary: 'Shareability, overriding the preset: NS, OS or IS.', helpGroup: 'ATTRIBUTES'}),
  perm: Flags.string({summary: 'Permissions, overriding the preset: r, rw, rx, rwx; stage 2 also none, w, wx, x.', helpGroup: 'ATTRIBUTES'}),
  'exec-at': Flags.option({options: ['all', 'none', 'el0', 'el1'] as const, summary: 'Stage 2 with FEAT_XNX: executable at EL0 only or EL1 only (XN[1:0] 01, 11).', helpGroup: 'ATTRIBUTES'})(),
  pa: u64Flag({summary: 'Output address of IPA (default: IPA, an identity map).'}),
  granularity: Flags.string({summary: 'Largest descriptor to use: page, or a leaf size of the geometry (4K, 2M, 1G; 16K, 32M; 64K, 512M).'}),
  replace: Flags.boolean({summary: 'Overwrite existing mappings in the range.', default: false}),
  contiguous: Flags.boolean({summary: 'Set the contiguous bit (52) on every aligned run of leaves wholly inside the range.', default: false}),
  regime: Flags.option({options: REGIME_NAMES, summary: 'Translation regime (when the mapper is created; default stage2).'})(),
  vmid: intFlag(0, MAX_VMID)({summary: 'VMID for VTTBR_EL2 (stage 2, when the mapper is created; default 0).'}),
  'l2-budget': intFlag(1, MAX_L2_BUDGET)({summary: 'Most L2 tables the mapper may allocate (when it is created; default 4).'}),
  granule: Flags.option({options: ['4K', '16K', '64K'] as const, summary: 'Translation granule (when the mapper is created; default 4K).', helpGroup: 'GEOMETRY'})(),
  'ipa-bits': intFlag(MIN_MAPPER_IPA_BITS, MAX_INPUT_BITS)({summary: 'Stage 2: IPA size in bits, 32..48 (when the mapper is created; default 39).', helpGroup: 'GEOMETRY', exclusive: ['va-bits']}),
  'va-bits': intFlag(MIN_INPUT_BITS, MAX_INPUT_BITS)({summary: 'Stage 1: VA size in bits, 25..48 (when the mapper is created; default 39).', helpGroup: 'GEOMETRY', exclusive: ['ipa-bits']}),
  preset: Flags.option({
    options: ['kvm'] as const,
    summary: "A named geometry: kvm is KVM's default stage 2 (40-bit IPA, 4K granule, two concatenated level-1 tables).",
    helpGroup: 'GEOMETRY',
    exclusive: ['granule', 'ipa-bits', 'va-bits'],
  })(),
  verbose: verboseFlag,
}
type Input = Parsed<typeof flags, typeof args>

/** What a map region did, as its report needs it. */
interface Mapped extends Edited<MapResult> {
  created: boolean
  registers: string
  covered: bigint[]
}

export default class MapRegion extends MachineCommand<Input, Mapped, MapRegionJson> {
  static override summary = 'Map [IPA, IPA+SIZE) in the translation tables, identity or to --pa, with the largest descriptors that fit.'
  static override description = `Creates the mapper (its root table, from the heap) on first use; --regime, --vmid, --l2-budget and the geometry (--granule, --ipa-bits or --va-bits, or --preset) apply then. By default: 4 KiB granule, 39-bit input, a level-1 root, 40-bit PA (VTCR_EL2 0x80023559). The start level follows from granule and input size: at stage 2 as KVM derives it (the fewest levels, the root concatenating up to 16 tables), at stage 1 by the architecture's rule; the PA size is 40 bits, or the smallest larger one that holds the input size (42, 44, 48). --preset kvm is KVM's default: a 40-bit IPA, 4 KiB granule, two concatenated level-1 tables.

Any granule-aligned range maps: hvmem uses the largest leaves the alignment of IPA and PA allows (4 KiB granule: 1 GiB blocks at L1, 2 MiB at L2, 4 KiB pages at L3; 16 KiB: 32 MiB blocks at L2, 16 KiB pages; 64 KiB: 512 MiB blocks at L2, 64 KiB pages), smaller ones at the edges; --granularity caps the size (2M: 2 MiB blocks and pages, never a 1 GiB block) and must be a leaf size of the geometry. The L2 budget counts the tables at level 2 below the root, one per level-1 entry, made when a mapping first needs it; a geometry whose root is at level 2 or 3 has none to count. Other tables only need heap. The range must end inside the input space and its output inside the physical space.

An existing mapping with other output or attributes is refused (exit 6), naming it, unless --replace; mapping a range again as it is changes nothing. All or nothing: a conflict, the budget (exit 7) or the heap (exit 5) fails the whole command and the snapshot is unchanged.

Attributes, stage 2 (the default; KVM-compatible; block at P): normal = P | 0x7fd (Normal WB, RW, executable), device = P | 0x0040_0000_0000_07c5 (Device-nGnRE, RW, execute-never), readonly = P | 0x77d (Normal WB, RO, executable); pages have bit 1 set as well (0x7ff ...).

With --regime stage1 the tables are the hypervisor's own (EL2, TTBR0_EL2, MAIR_EL2 0x0004ff00) and the presets are the sprint plan's AttrIndx and AP made safe: normal = P | 0x705 (AttrIndx 1 Normal WB, RW, inner shareable), device = P | 0x0040_0000_0000_0709 (AttrIndx 2 Device-nGnRE, RW, execute-never), readonly = P | 0x785 (AttrIndx 1, AP[2] read-only).

--mem, --sh, --perm and --exec-at override the preset's fields (docs/regimes.md lists every encoding): --mem Normal-WB|WT|NC, Normal-o<WB|WT|NC>-i<WB|WT|NC> or Device-nGnRnE|nGnRE|nGRE|GRE (stage 1: the types in MAIR_EL2); --sh NS|OS|IS; --perm r, rw, rx, rwx, and at stage 2 also none, w, wx, x; --exec-at el0|el1 (stage 2, FEAT_XNX). Device memory is never executable. A combination the regime cannot encode is refused.

--contiguous sets the contiguous bit (52, a TLB hint) on every aligned run of leaves wholly inside the range whose output is aligned to the run (Arm ARM D8.6.1: 4 KiB granule 16 entries at L1, L2 and L3, 64K of pages, 32M of 2M blocks, 16G of 1G blocks; 16 KiB 128 pages (2M) and 32 blocks (1G); 64 KiB 32 pages (2M) and 32 blocks (16G)); other leaves are written without it. Unmap, protect and a --replace map first clear the bit on every run they cut, so no run is left with entries that disagree.

A mapping whose output covers the mapper's own table pages is made, with a warning: the guest (stage 2) could then read and rewrite its own translation tables.`
  static override examples = [
    '<%= config.bin %> map region 0x4000_0000 1G',
    '<%= config.bin %> map region 0x0900_0000 4K --attr device',
    '<%= config.bin %> map region 0x8000_0000 64M --pa 0x4800_0000',
    '<%= config.bin %> map region 0x4000_0000 1G --granularity 2M --vmid 5 --l2-budget 8',
    '<%= config.bin %> map region 0x4000_0000 1G --regime stage1',
    '<%= config.bin %> map region 0x5000_0000 2M --mem Normal-NC --perm rw',
    '<%= config.bin %> map region 0x0800_0000 64K --attr device --mem Device-nGnRnE --sh OS',
    '<%= config.bin %> map region 0x4000_0000 1G --preset kvm',
    '<%= config.bin %> map region 0x4000_0000 64M --granule 16K --ipa-bits 47',
    '<%= config.bin %> map region 0x4000_0000 1G --granule 64K --ipa-bits 42 --granularity 64K',
    '<%= config.bin %> map region 0x8000_0000 1G --regime stage1 --va-bits 48',
    '<%= config.bin %> map region 0x4000_0000 64M --granularity page --contiguous',
  ]

  static override args = args
  static override flags = flags
  protected readonly changes = true

  protected work(machine: Machine, {args, flags}: Input): Mapped {
    const request: AttributeRequest = {preset: flags.attr, mem: flags.mem, share: flags.sh, perm: flags.perm, execAt: flags['exec-at']}
    const {mapper, created} = machine.ensureMapper(mapperOptions(flags))
    const attributes = resolveAttributes(mapper.state.regime, request)
    const result = mapper.mapRegion(args.ipa, args.size, attributes, {pa: flags.pa, granularity: parseGranularity(flags.granularity), replace: flags.replace, contiguous: flags.contiguous})
    return {...edited(mapper, result), created, registers: registerLine(mapper), covered: mapper.tablePagesIn(result.pa, result.size)}
  }

  protected report({result, created, mapper, registers, geometry, covered}: Mapped, {flags}: Input): MapRegionJson {
    if (covered.length > 0) warn('warning: ' + tablesWarning(mapper.regime, result.ipa, result.size, covered, geometry.granule))
    const end = result.ipa + result.size
    const target = result.pa === result.ipa ? '' : ` -> ${hex(result.pa)}`
    if (created)
      this.log(`Created the ${mapper.regime} mapper (${geometry.describe()}): root at ${mapper.root}${mapper.regime === 'stage2' ? `, VMID ${mapper.vmid}` : ''}, L2 budget ${mapper.l2Budget}`)
    this.log(
      `Mapped ${color.bold(`${hex(result.ipa)}-${hex(end)}`)}${target} (${formatSize(result.size)}) ${result.attr}: ${describeCounts(result.written, geometry)} written, ${describeCounts(result.unchanged, geometry)} already so; descriptor at ${hex(result.ipa)} ${hex(result.descriptor)}`,
    )
    if (result.contiguousRuns !== undefined) this.log(contiguousLine(result.contiguousRuns, geometry))
    for (const line of editLines(result, geometry, flags.verbose)) this.log(line)
    this.log(registers)
    const json = editJson(result, geometry, flags.verbose)
    return {
      mapped: {ipa: hex(result.ipa), end: hex(end), size: Number(result.size), pa: hex(result.pa), attr: result.attr, descriptor: hex(result.descriptor)},
      coversTables: covered.map((t) => hex(t)),
      blocks: total(result.written) + total(result.unchanged),
      written: total(result.written),
      unchanged: total(result.unchanged),
      leaves: {written: json.written, unchanged: json.unchanged},
      splits: result.splits,
      ...(result.contiguousRuns === undefined ? {} : {contiguousRuns: countsJson(result.contiguousRuns, geometry)}),
      newTables: json.newTables,
      orphanedTables: result.orphanedTables,
      mapperCreated: created,
      mapper,
    }
  }
}

/** The mapper options the flags give (they apply when the mapper is created). */
function mapperOptions(flags: {regime?: string; vmid?: number; 'l2-budget'?: number; granule?: string; 'ipa-bits'?: number; 'va-bits'?: number; preset?: string}): MapperOptions {
  const regime = flags.regime as RegimeName | undefined
  if (flags['ipa-bits'] !== undefined && regime === 'stage1') throw new HvmemError('input', '--ipa-bits is for stage 2; a --regime stage1 mapper takes --va-bits')
  if (flags['va-bits'] !== undefined && regime !== 'stage1') throw new HvmemError('input', '--va-bits is for --regime stage1; a stage-2 mapper takes --ipa-bits')
  if (flags.preset === 'kvm') {
    if (regime === 'stage1') throw new HvmemError('input', '--preset kvm is a stage-2 geometry; leave out --regime stage1')
    return {regime, vmid: flags.vmid, l2Budget: flags['l2-budget'], ...KVM_PRESET}
  }
  const granule = flags.granule === undefined ? undefined : GRANULES.find((g) => granuleName(g) === flags.granule)
  return {regime, vmid: flags.vmid, l2Budget: flags['l2-budget'], granule: granule as Granule | undefined, inputBits: flags['ipa-bits'] ?? flags['va-bits']}
}

/** --granularity: page, or a size (checked against the geometry by the mapper). */
function parseGranularity(text: string | undefined): 'page' | bigint | undefined {
  if (text === undefined || text === 'page') return text
  return parseU64(text, '--granularity')
}
