/**
 * Importing a raw physical memory image (QEMU's pmemsave, dump-guest-memory written raw, or hvmem's
 * own `snapshot export --raw`): where it lies, which of its pages hold data, and the RAM and heap of
 * a new snapshot made from it. No I/O here: the snapshot layer reads the file and reports its pages.
 */
import {HvmemError} from './errors.js'
import {DEFAULT_HEAP_SIZE, checkLayout} from './heap.js'
import type {RegimeName} from './descriptor.js'
import {DEFAULT_GRANULE, DEFAULT_INPUT_BITS, type Geometry, granuleName} from './geometry.js'
import {foreignWalk} from './regime-config.js'
import {DEFAULT_L2_BUDGET, MAX_L2_BUDGET, type MapperState, l2TablesAt, mapperGeometry} from './mapper.js'
import {PAGE_BYTES, type PhysicalMemory} from './memory.js'
import {PA_LIMIT} from './registers.js'
import {alignUp, formatSize, hex, isAligned} from './u64.js'

const PAGE = BigInt(PAGE_BYTES)

/** An image: `length` bytes whose first byte is physical address `base`. */
export interface ImageExtent {
  base: bigint
  length: bigint
}

/** The physical range the image's pages cover: [base, base + length rounded up to 4 KiB). */
export function imageEnd(image: ImageExtent): bigint {
  return image.base + alignUp(image.length, PAGE)
}

/** Refuses an image that cannot be imported anywhere: unaligned base, empty, past the 40-bit PA space. */
export function checkImage(image: ImageExtent, name: string): void {
  if (!isAligned(image.base, PAGE)) throw new HvmemError('input', `--base ${hex(image.base)} is not 4 KiB aligned; an image is imported in whole 4 KiB pages, so its first byte must start a page`)
  if (image.length === 0n) throw new HvmemError('input', `${name} is empty: there is nothing to import`)
  if (imageEnd(image) > PA_LIMIT) {
    throw new HvmemError(
      'input',
      `${name} (${image.length} bytes at --base ${hex(image.base)}) would end at ${hex(image.base + image.length)}, past the 40-bit physical address space (${hex(PA_LIMIT)}) hvmem's RAM must lie in`,
    )
  }
}

/** What the file holds, page by page: the indices (from 0 at `base`) of pages holding a non-zero byte, ascending. */
export interface ImageScan extends ImageExtent {
  pages: number
  nonZero: readonly number[]
}

export interface NewSnapshotOptions {
  ramSize?: bigint
  heapStart?: bigint
  heapSize?: bigint
}

export interface NewSnapshotLayout {
  ramBase: bigint
  ramSize: bigint
  heapBase: bigint
  heapSize: bigint
  /** 'tail': in the all-zero pages at the top of RAM (the default); 'given': --heap-start; 'none': no heap (heapSize 0), the image fills RAM to its top */
  heapPlacement: 'tail' | 'given' | 'none'
}

/**
 * RAM and heap for a new snapshot holding the image. RAM starts at the image's base and is the
 * image's extent rounded up to pages, or `ramSize` (which must hold the image). The heap, where
 * hvmem allocates (and zeroes) tables, must not overwrite imported data: by default it is the free
 * tail of RAM, the all-zero pages above the image's last non-zero page, at most `heapSize` (default
 * 16 MiB) and ending at RAM's end; with `heapStart` it is [heapStart, heapStart + heapSize), which must
 * lie inside RAM over all-zero pages. An image whose last page holds data, with neither, has no heap
 * (heapSize 0, placement 'none'): its tables can be read, and nothing can be allocated.
 */
export function newSnapshotLayout(scan: ImageScan, options: NewSnapshotOptions, name: string): NewSnapshotLayout {
  const extent = alignUp(scan.length, PAGE)
  const ramBase = scan.base
  const ramSize = options.ramSize ?? extent
  if (!isAligned(ramSize, PAGE) || ramSize === 0n) throw new HvmemError('input', `--ram-size ${hex(ramSize)} must be a non-zero multiple of 4 KiB`)
  if (ramSize < extent) {
    throw new HvmemError(
      'input',
      `${name} (${scan.length} bytes, ${hex(scan.base)}-${hex(scan.base + scan.length)}) goes past RAM ${hex(ramBase)}-${hex(ramBase + ramSize)}; pass a --ram-size of at least ${hex(extent)}`,
    )
  }
  const ramEnd = ramBase + ramSize
  const lastData = scan.nonZero.length === 0 ? ramBase : ramBase + BigInt(scan.nonZero[scan.nonZero.length - 1]! + 1) * PAGE
  if (options.heapStart !== undefined) {
    const heapSize = options.heapSize ?? DEFAULT_HEAP_SIZE
    checkLayout(ramBase, ramSize, options.heapStart, heapSize)
    const overlap = firstPageIn(scan, options.heapStart, options.heapStart + heapSize)
    if (overlap !== undefined) {
      throw new HvmemError(
        'input',
        `the heap ${hex(options.heapStart)}-${hex(options.heapStart + heapSize)} would overlap imported data (page ${hex(overlap)}), which hvmem's allocations (tables are zeroed when allocated) would overwrite; place it over all-zero pages, or leave out --heap-start to use the free tail`,
      )
    }
    return {ramBase, ramSize, heapBase: options.heapStart, heapSize, heapPlacement: 'given'}
  }
  const free = ramEnd - lastData
  if (free === 0n) {
    // A whole RAM image (a kernel's memory is used to its top): no heap. Reading the image's tables
    // needs none; a command that allocates says so.
    if (options.heapSize !== undefined) {
      throw new HvmemError(
        'input',
        `${name} leaves no all-zero page at the top of RAM ${hex(ramBase)}-${hex(ramEnd)} for a --heap-size heap; pass --ram-size larger than ${hex(extent)} to add RAM above the image, or --heap-start`,
      )
    }
    return {ramBase, ramSize, heapBase: ramBase, heapSize: 0n, heapPlacement: 'none'}
  }
  const wanted = options.heapSize ?? DEFAULT_HEAP_SIZE
  if (options.heapSize !== undefined && (!isAligned(wanted, PAGE) || wanted === 0n)) throw new HvmemError('input', `--heap-size ${hex(wanted)} must be a non-zero multiple of 4 KiB`)
  if (options.heapSize !== undefined && wanted > free) {
    throw new HvmemError(
      'input',
      `--heap-size ${formatSize(wanted)} does not fit in the free tail of RAM (${hex(lastData)}-${hex(ramEnd)}, ${formatSize(free)} of all-zero pages above the image's data); pass a larger --ram-size, a smaller --heap-size, or --heap-start`,
    )
  }
  const heapSize = wanted < free ? wanted : free
  checkLayout(ramBase, ramSize, ramEnd - heapSize, heapSize)
  return {ramBase, ramSize, heapBase: ramEnd - heapSize, heapSize, heapPlacement: 'tail'}
}

/** The address of the first non-zero image page in [start, end), if any. */
function firstPageIn(scan: ImageScan, start: bigint, end: bigint): bigint | undefined {
  const pages = scan.nonZero
  // binary search for the first page whose address is >= start
  let low = 0
  let high = pages.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (scan.base + BigInt(pages[mid]!) * PAGE < start) low = mid + 1
    else high = mid
  }
  if (low === pages.length) return undefined
  const address = scan.base + BigInt(pages[low]!) * PAGE
  return address < end ? address : undefined
}

/** Refuses an image that does not lie inside an existing snapshot's RAM (`--into`). */
export function checkInsideRam(image: ImageExtent, ramBase: bigint, ramEnd: bigint, name: string): void {
  const end = image.base + image.length
  if (image.base < ramBase || end > ramEnd) {
    throw new HvmemError(
      'input',
      `${name} (${image.length} bytes at ${hex(image.base)}-${hex(end)}) does not lie inside the snapshot's RAM ${hex(ramBase)}-${hex(ramEnd)}; check --base, or import into a new snapshot (leave out --into)`,
    )
  }
}

export interface AdoptOptions {
  root: bigint
  regime: RegimeName
  vmid?: number
  l2Budget?: number
  /** the tables' VTCR_EL2 (stage 2) or TCR_EL2 (stage 1): their granule, input size, start level and PA size; default hvmem's own */
  control?: bigint
}

/**
 * The mapper state that makes tables found in an image (in hvmem's layout: a level-1 root, 39-bit
 * inputs) the snapshot's mapper. Its L2 budget must cover the L2 tables the root already reaches;
 * by default it is 4, or that many if more.
 */
export function adoptedMapperState(memory: PhysicalMemory, options: AdoptOptions): MapperState {
  const {root, regime} = options
  if ((root & 0xfffn) !== 0n || !memory.contains(root, BigInt(PAGE_BYTES))) {
    throw new HvmemError('input', `--adopt ${hex(root)} must be a 4 KiB-aligned table inside RAM ${hex(memory.base)}-${hex(memory.end)}`)
  }
  const geometry = adoptedGeometry(options)
  // counted as the mapper counts them against its budget
  const reachableL2 = l2TablesAt(memory, geometry, root).length
  if (options.l2Budget !== undefined && options.l2Budget < reachableL2) {
    throw new HvmemError('input', `--l2-budget ${options.l2Budget} is below the ${reachableL2} L2 tables the root ${hex(root)} already reaches`)
  }
  const l2Budget = options.l2Budget ?? Math.min(MAX_L2_BUDGET, Math.max(DEFAULT_L2_BUDGET, reachableL2))
  return {regime, root, vmid: options.vmid ?? 0, l2Budget, orphanedTables: 0, granule: geometry.granule, inputBits: geometry.inputBits}
}

/**
 * The geometry of the tables to adopt: hvmem's own (4 KiB, 39-bit) without a control register; with
 * one, the walk it describes, which must be one hvmem's mapper builds (for that granule and input
 * size: its start level, concatenation and 40-bit PA size), or it is refused, naming the difference.
 */
function adoptedGeometry(options: AdoptOptions): Geometry {
  const {regime, control} = options
  if (control === undefined) return mapperGeometry({regime, granule: DEFAULT_GRANULE, inputBits: DEFAULT_INPUT_BITS})
  const register = regime === 'stage2' ? 'VTCR_EL2' : 'TCR_EL2'
  const walk = foreignWalk(regime, options.root, control, regime === 'stage2' ? options.vmid : undefined)
  const g = walk.geometry
  if (walk.root !== options.root) throw new HvmemError('input', `--adopt ${hex(options.root)} must be the root table's address (no VMID, ASID or CnP bits)`)
  let own: Geometry
  try {
    own = mapperGeometry({regime, granule: g.granule, inputBits: g.inputBits})
  } catch (error) {
    throw new HvmemError(
      'input',
      `cannot adopt the tables ${register} ${hex(control)} describes (${g.describe()}): hvmem's mapper has no such geometry (${error instanceof HvmemError ? error.summary : String(error)}); walk them with --root instead`,
    )
  }
  if (!g.equals(own)) {
    throw new HvmemError(
      'input',
      `cannot adopt the tables ${register} ${hex(control)} describes (${g.describe()}): for a ${granuleName(g.granule)} granule and ${g.inputBits}-bit inputs hvmem's mapper builds ${own.describe()}; walk them with "dump tables --root" instead`,
    )
  }
  return g
}
