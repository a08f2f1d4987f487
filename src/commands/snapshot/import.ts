import {resolve} from 'node:path'
import {Flags} from '@oclif/core'

import {HvmemCommand} from '../../cli/base.js'
import {intFlag, textArg, u64Flag} from '../../cli/flags.js'
import {type HeapJson, type MapperJson, heapJson, mapperJson} from '../../cli/json.js'
import {progress} from '../../cli/progress.js'
import {HvmemError} from '../../core/errors.js'
import {type ImageScan, adoptedMapperState, checkImage, checkInsideRam, imageEnd, newSnapshotLayout} from '../../core/image.js'
import {REGIME_NAMES, type RegimeName} from '../../core/descriptor.js'
import {Machine} from '../../core/machine.js'
import {MAX_L2_BUDGET} from '../../core/mapper.js'
import {MAX_VMID} from '../../core/registers.js'
import {PAGE_BYTES, PhysicalMemory} from '../../core/memory.js'
import {formatSize, hex} from '../../core/u64.js'
import {type RawImage, forEachImagePage, imagePageReader, openRawImageOrStdin, scanImage} from '../../snapshot/raw-image.js'
import {checkPath, createSnapshot, refuseExistingSnapshot, updateSnapshot} from '../../snapshot/store.js'

export interface ImportJson {
  snapshot: string
  /** the raw image file */
  file: string
  /** true: a new snapshot was made; false: the image was written into an existing one (--into) */
  created: boolean
  base: string
  /** base + bytes (exclusive) */
  end: string
  bytes: number
  /** 4 KiB pages the image covers (a short last page counts) */
  pages: number
  /** pages holding a non-zero byte, stored in the snapshot */
  pagesStored: number
  /** all-zero pages, not stored (with --into, they clear what the snapshot held there) */
  zeroPagesSkipped: number
  ram: {base: string; size: number; end: string}
  heap: HeapJson
  /** new snapshot: where the heap was put ("tail": the free tail of RAM; "given": --heap-start); --into: "kept" */
  heapPlacement: 'tail' | 'given' | 'kept' | 'none'
  /** --into: the snapshot mapper's table pages the image overwrote (they now hold the image's bytes) */
  tablesOverwritten: string[]
  /** the snapshot's mapper: the tables adopted with --adopt, the existing one with --into, else null */
  mapper: MapperJson | null
}

export default class SnapshotImport extends HvmemCommand {
  static override summary = 'Import a raw physical memory image (QEMU pmemsave, dump-guest-memory, "snapshot export --raw") whose first byte is at --base.'
  static override description = `The image is read in 1 MiB chunks and stored sparsely: all-zero 4 KiB pages are not stored. --base must be 4 KiB aligned; an image whose size is not a multiple of 4 KiB ends in a short page.

Without --into, a new snapshot is made at --snapshot (an existing file is replaced only with --force): RAM starts at --base and is the image rounded up to pages, or --ram-size. hvmem's heap must not overwrite imported data, so by default it is the free tail of RAM: the all-zero pages above the image's last non-zero page, at most --heap-size (default 16 MiB), ending at the end of RAM; or give --heap-start (and --heap-size) for a heap over all-zero pages. An image with data in its last page (a whole RAM image of a running kernel) and neither flag makes a snapshot without a heap: its tables can be read and walked, and commands that allocate (alloc, map region...) say there is no heap (add RAM above the image with --ram-size for one). Tables in the image are not adopted as hvmem's mapper unless asked: inspect them with "dump tables --root ADDR" and "translate ADDR --root ADDR" (with --vtcr or --tcr); or --adopt ROOT makes them the snapshot's mapper (with --regime, --vmid and --l2-budget as for "map region"; the budget defaults to 4, or to the L2 tables already reachable if more), so "map", "translate" and "regs" work on them. --vtcr (stage 2) or --tcr (stage 1) gives their geometry, default hvmem's own (VTCR_EL2 0x80023559 / TCR_EL2 0x80823519: 4 KiB, 39-bit inputs, level-1 root); a geometry hvmem's mapper does not build (another start level for that granule and input size, another PA size) is refused, naming the difference: walk such tables with --root instead.

With --into, the image is written into the existing snapshot at --snapshot, under its lock: it must lie inside the snapshot's RAM, every byte it covers is replaced (its zero pages clear what was there), and the heap and mapper are kept as they are. An image over the mapper's own tables overwrites them, as "mem write" would; the tables overwritten are listed.

RAW - reads the image from standard input (copied first to a temp file in TMPDIR, removed after).

A progress bar is drawn on stderr for images of 16 MiB and more when stderr is a terminal (never with --json).`

  static override examples = [
    '<%= config.bin %> snapshot import guest.raw --base 0x4000_0000 -s guest.snap',
    '<%= config.bin %> snapshot import tables.bin --base 0x4100_0000 --ram-size 32M -s copy.snap --force',
    '<%= config.bin %> snapshot import ram.bin --base 0x4000_0000 --heap-start 0x7f00_0000 --heap-size 16M -s vm.snap',
    '<%= config.bin %> snapshot import patch.bin --base 0x4800_0000 --into',
    '<%= config.bin %> snapshot import tables.bin --base 0x4100_0000 --adopt 0x4100_1000 -s copy.snap',
  ]

  static override args = {
    raw: textArg({description: 'The raw image file (its first byte is at --base), or - for standard input.', required: true}),
  }

  static override flags = {
    base: u64Flag({summary: "Physical address of the image's first byte (4 KiB aligned).", required: true}),
    into: Flags.boolean({summary: 'Write the image into the existing snapshot instead of making a new one.', default: false}),
    force: Flags.boolean({summary: 'Replace an existing snapshot (new snapshot only).', default: false}),
    'ram-size': u64Flag({summary: 'RAM size of the new snapshot (default: the image rounded up to 4 KiB).'}),
    'heap-start': u64Flag({summary: 'Heap start in the new snapshot (default: the free tail of RAM).'}),
    'heap-size': u64Flag({summary: 'Heap size in the new snapshot (default: 16 MiB, or the free tail if smaller).'}),
    adopt: u64Flag({summary: "Make the tables at this root the new snapshot's mapper (hvmem's layout: 39-bit inputs, level-1 root)."}),
    regime: Flags.option({options: REGIME_NAMES, summary: 'With --adopt: the regime of the tables (default stage2).'})(),
    vmid: intFlag(0, MAX_VMID)({summary: 'With --adopt: the VMID for VTTBR_EL2 (stage 2; default 0).'}),
    'l2-budget': intFlag(1, MAX_L2_BUDGET)({summary: 'With --adopt: most L2 tables the mapper may have (default 4, or those reachable if more).'}),
    vtcr: u64Flag({summary: "With --adopt, stage 2: the tables' VTCR_EL2 (granule, input size, start level; default hvmem's 0x80023559)."}),
    tcr: u64Flag({summary: "With --adopt, stage 1: the tables' TCR_EL2 (granule, input size; default hvmem's 0x80823519)."}),
  }

  async run(): Promise<ImportJson> {
    const {args, flags} = await this.parse(SnapshotImport)
    if (flags.into) {
      for (const name of ['force', 'ram-size', 'heap-start', 'heap-size', 'adopt'] as const) {
        if (flags[name] !== undefined && flags[name] !== false)
          throw new HvmemError('input', `--${name} applies to a new snapshot; with --into the image goes into the existing one, whose RAM, heap and mapper are kept`)
      }
    }
    if (flags.adopt === undefined) {
      for (const name of ['regime', 'vmid', 'l2-budget', 'vtcr', 'tcr'] as const) {
        if (flags[name] !== undefined) throw new HvmemError('input', `--${name} describes the mapper --adopt makes of the image's tables; pass --adopt ROOT too`)
      }
    }
    // Before reading a large image: the same message loadSnapshot/createSnapshot give.
    checkPath(flags.snapshot)
    if (args.raw !== '-' && resolve(args.raw) === resolve(flags.snapshot)) throw new HvmemError('input', `RAW ${args.raw} is the snapshot itself; import a raw image from another file`)
    // before reading a large image: what createSnapshot would refuse after it
    refuseExistingSnapshot(flags.snapshot, flags.into || flags.force, '--into to write the image into it, ')
    const image = await openRawImageOrStdin(args.raw)
    try {
      checkImage({base: flags.base, length: BigInt(image.size)}, `RAW ${image.path}`)
      const result = flags.into ? await this.into(image, flags.base, flags.snapshot) : await this.create(image, flags)
      this.report(result)
      return result
    } finally {
      image.close()
    }
  }

  private bar(image: RawImage): {update: (pages: number) => void; finish: () => void} {
    return progress(`Importing ${image.path}`, Math.ceil(image.size / PAGE_BYTES), {json: this.jsonEnabled()})
  }

  private async create(
    image: RawImage,
    flags: {
      base: bigint
      snapshot: string
      force: boolean
      'ram-size'?: bigint
      'heap-start'?: bigint
      'heap-size'?: bigint
      adopt?: bigint
      regime?: string
      vmid?: number
      'l2-budget'?: number
      vtcr?: bigint
      tcr?: bigint
    },
  ): Promise<ImportJson> {
    const name = `RAW ${image.path}`
    const regime = (flags.regime ?? 'stage2') as RegimeName
    if (regime === 'stage1' && flags.vmid !== undefined) throw new HvmemError('input', '--vmid applies to stage-2 tables only; the stage-1 (EL2) regime has none')
    if (regime === 'stage1' && flags.vtcr !== undefined) throw new HvmemError('input', '--vtcr describes stage-2 tables; --regime stage1 tables take --tcr (TCR_EL2)')
    if (regime === 'stage2' && flags.tcr !== undefined) throw new HvmemError('input', '--tcr describes stage-1 (EL2) tables; stage-2 tables take --vtcr (VTCR_EL2), or pass --regime stage1')
    const bar = this.bar(image)
    let scan: ImageScan
    try {
      scan = scanImage(image, flags.base, (pages) => bar.update(pages))
    } finally {
      bar.finish()
    }
    const layout = newSnapshotLayout(scan, {ramSize: flags['ram-size'], heapStart: flags['heap-start'], heapSize: flags['heap-size']}, name)
    // The snapshot's memory reads the image's non-zero pages from the file as the save streams them out:
    // a large image is never held in memory.
    const readPage = imagePageReader(image)
    const pageBytes = BigInt(PAGE_BYTES)
    const memory = new PhysicalMemory(layout.ramBase, layout.ramSize, {
      storedPages: scan.nonZero.map((i) => flags.base + BigInt(i) * pageBytes),
      pageSource: (address) => readPage(Number((address - flags.base) / pageBytes)),
    })
    const ram = {base: layout.ramBase, size: layout.ramSize}
    const heap = {start: layout.heapBase, size: layout.heapSize, next: layout.heapBase, allocated: 0n}
    const mapper =
      flags.adopt === undefined
        ? undefined
        : adoptedMapperState(memory, {root: flags.adopt, regime, vmid: flags.vmid, l2Budget: flags['l2-budget'], control: regime === 'stage2' ? flags.vtcr : flags.tcr})
    const machine = Machine.restore({ram, heap, mapper}, memory)
    await createSnapshot(flags.snapshot, machine, flags.force)
    return this.json(flags.snapshot, image, flags.base, scan.nonZero.length, scan.pages, machine, true, layout.heapPlacement, [])
  }

  private async into(image: RawImage, base: bigint, snapshot: string): Promise<ImportJson> {
    const name = `RAW ${image.path}`
    const pageBytes = BigInt(PAGE_BYTES)
    return updateSnapshot(snapshot, (machine) => {
      const memory = machine.memory
      checkInsideRam({base, length: BigInt(image.size)}, memory.base, memory.end, name)
      const end = imageEnd({base, length: BigInt(image.size)})
      // The mapper's table pages the image covers: found before they are overwritten.
      const tables = [...machine.tablePages().keys()].map((frame) => BigInt(frame) << 12n)
      const overwritten = tables.filter((t) => t >= base && t < end).sort((a, b) => (a < b ? -1 : 1))
      let stored = 0
      let pages = 0
      const bar = this.bar(image)
      try {
        forEachImagePage(
          image,
          (index, bytes, zero) => {
            const address = base + BigInt(index) * pageBytes
            pages = index + 1
            if (bytes.length === PAGE_BYTES) {
              if (zero) memory.zero(address, pageBytes)
              else memory.loadPage(address, bytes)
            } else memory.writeBytes(address, bytes) // the short last page: only the image's bytes
            if (!zero) stored++
          },
          (done) => bar.update(done),
        )
      } finally {
        bar.finish()
      }
      return this.json(snapshot, image, base, stored, pages, machine, false, 'kept', overwritten)
    })
  }

  private json(
    snapshot: string,
    image: RawImage,
    base: bigint,
    stored: number,
    pages: number,
    machine: Machine,
    created: boolean,
    heapPlacement: ImportJson['heapPlacement'],
    overwritten: bigint[],
  ): ImportJson {
    return {
      snapshot,
      file: image.stdin === true ? '-' : image.path,
      created,
      base: hex(base),
      end: hex(base + BigInt(image.size)),
      bytes: image.size,
      pages,
      pagesStored: stored,
      zeroPagesSkipped: pages - stored,
      ram: {base: hex(machine.memory.base), size: Number(machine.memory.size), end: hex(machine.memory.end)},
      heap: heapJson(machine.heap.status()),
      heapPlacement,
      tablesOverwritten: overwritten.map((t) => hex(t)),
      mapper: machine.mapper === undefined ? null : mapperJson(machine.mapper),
    }
  }

  private report(r: ImportJson): void {
    const into = r.created ? `new snapshot ${r.snapshot}` : r.snapshot
    this.log(
      `Imported ${r.bytes} bytes at ${r.base}-${r.end} from ${r.file === '-' ? 'standard input' : r.file} into ${into}: ${r.pagesStored} page(s) stored, ${r.zeroPagesSkipped} all-zero page(s) ${r.created ? 'skipped' : 'cleared'}`,
    )
    const heapWhere = {tail: ' (the free tail of RAM)', given: ' (--heap-start)', kept: ' (kept)', none: ''}[r.heapPlacement]
    const heap =
      r.heapPlacement === 'none'
        ? 'no heap (the image holds data up to the top of RAM: its tables can be read, nothing allocated)'
        : `heap ${r.heap.start}-${r.heap.end} (${formatSize(BigInt(r.heap.size))})${heapWhere}`
    this.log(`RAM ${r.ram.base}-${r.ram.end} (${formatSize(BigInt(r.ram.size))}); ${heap}`)
    if (r.created && r.mapper !== null)
      this.log(
        `Adopted the tables at ${r.mapper.root} as hvmem's ${r.mapper.regime === 'stage2' ? 'stage-2' : 'stage-1 (EL2)'} mapper: ${r.mapper.l2Tables.length} L2 table(s), budget ${r.mapper.l2Budget}; ${Object.entries(
          r.mapper.registers,
        )
          .map(([n, v]) => `${n}=${v}`)
          .join(' ')}`,
      )
    else if (r.created) this.log('Tables in the image are not adopted as hvmem\'s mapper: walk them with "hvmem dump tables --root ADDR" (and --vtcr or --tcr), or import with --adopt ROOT')
    if (r.tablesOverwritten.length > 0)
      this.log(`The image overwrote ${r.tablesOverwritten.length} of the mapper's table page(s): ${r.tablesOverwritten.join(', ')}; check them with "hvmem dump tables"`)
  }
}
