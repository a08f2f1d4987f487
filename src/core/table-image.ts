/**
 * The mapper's tables as a relocatable image: the bytes of a physical range holding every table of
 * the tree, with each table descriptor's pointer known (where it is, which table it names, its
 * attribute bits), so the image can be placed at another base (`snapshot export --base`) or written
 * as assembly whose pointers the linker fills in, like arm64-pgtable-tool's output. Leaf output
 * addresses are not touched: they name the memory the tables map, not the tables.
 */
import {HvmemError} from './errors.js'
import type {Geometry} from './geometry.js'
import type {PhysicalMemory} from './memory.js'
import {hex} from './u64.js'
import {kindOfLow} from './descriptor.js'
import {scanTables} from './walker.js'

/**
 * The span of physical memory holding every table of the tree at `root`: from the lowest table
 * (rounded down to `align`, the largest alignment a table needs, so each keeps its alignment at a
 * base aligned to `align`) to the end of the highest.
 */
export function tableSpan(memory: PhysicalMemory, geometry: Geometry, root: bigint): {from: bigint; to: bigint; align: bigint} {
  let low = root
  let high = root + BigInt(geometry.tableBytes(geometry.startLevel))
  let align = geometry.rootAlign > BigInt(geometry.granule) ? geometry.rootAlign : BigInt(geometry.granule)
  scanTables(memory, root, geometry, (w, unfollowed) => {
    if (unfollowed !== undefined || kindOfLow(w.lo, w.level, geometry) !== 'table') return
    const target = BigInt(w.next)
    const bytes = BigInt(geometry.tableBytes(w.level + 1))
    if (target < low) low = target
    if (target + bytes > high) high = target + bytes
    if (bytes > align) align = bytes
  })
  return {from: low - (low % align), to: high, align}
}

export interface ImageTable {
  /** where the table is in the snapshot */
  address: bigint
  /** byte offset of the table in the image */
  offset: number
  level: number
  bytes: number
}

export interface ImagePointer {
  /** byte offset, in the image, of the table descriptor */
  offset: number
  /** the table it points at (its address in the snapshot) */
  target: bigint
  /** the descriptor without its address bits (what the asm output adds to the symbol) */
  attributes: bigint
}

export interface TableImage {
  /** the range of the snapshot the image holds */
  from: bigint
  to: bigint
  /** where the image is placed: its first byte's physical address */
  base: bigint
  /** the image's bytes, table pointers already rewritten for `base` */
  bytes: Uint8Array
  /** the root first, then the others in address order */
  tables: ImageTable[]
  /** every table descriptor, in image order */
  pointers: ImagePointer[]
  /** the root table's address once placed */
  root: bigint
}

/**
 * Reads [from, to) of `memory` and finds the table descriptors of the tree at `root` (every one,
 * aliases included: each is rewritten). Every table of the tree must lie inside the range, and
 * `base` must keep each table aligned to its size and inside the geometry's physical address space.
 */
export function buildTableImage(memory: PhysicalMemory, geometry: Geometry, root: bigint, from: bigint, to: bigint, base: bigint = from): TableImage {
  if (to <= from) throw new HvmemError('input', `the range ${hex(from)}-${hex(to)} is empty`)
  const rootBytes = geometry.tableBytes(geometry.startLevel)
  const inside = (address: bigint, bytes: number): boolean => address >= from && address + BigInt(bytes) <= to
  if (!inside(root, rootBytes)) throw new HvmemError('input', `the root table ${hex(root)} is not inside the exported range ${hex(from)}-${hex(to)}`)
  const length = Number(to - from)
  const bytes = new Uint8Array(length)
  const chunk = 1 << 20
  for (let at = 0; at < length; at += chunk) bytes.set(memory.readBytes(from + BigInt(at), Math.min(chunk, length - at)), at)
  const view = new DataView(bytes.buffer)

  const tables = new Map<bigint, ImageTable>()
  tables.set(root, {address: root, offset: Number(root - from), level: geometry.startLevel, bytes: rootBytes})
  const pointers: ImagePointer[] = []
  scanTables(memory, root, geometry, (w, unfollowed) => {
    if (unfollowed !== undefined || kindOfLow(w.lo, w.level, geometry) !== 'table') return
    const target = BigInt(w.next)
    const level = w.level + 1
    const size = geometry.tableBytes(level)
    if (!inside(target, size)) {
      throw new HvmemError(
        'input',
        `the L${w.level} table entry at ${hex(BigInt(w.table + w.index * 8))} points at ${hex(target)}, outside the exported range ${hex(from)}-${hex(to)}; export a range that holds every table`,
      )
    }
    if (!tables.has(target)) tables.set(target, {address: target, offset: Number(target - from), level, bytes: size})
    pointers.push({offset: w.table + w.index * 8 - Number(from), target, attributes: w.raw & ~geometry.addressMask})
  })

  const placed = (address: bigint): bigint => address - from + base
  if (base < 0n || placed(to) > geometry.paLimit) {
    throw new HvmemError('input', `the tables placed at ${hex(base)} would end at ${hex(placed(to))}, past the ${geometry.paBits}-bit physical address space (${hex(geometry.paLimit)})`)
  }
  for (const t of tables.values()) {
    const align = tableAlign(geometry, t, t.address === root)
    if (placed(t.address) % align !== 0n) {
      throw new HvmemError(
        'input',
        `base ${hex(base)} puts the table at ${hex(t.address)} at ${hex(placed(t.address))}, not ${hex(align)}-aligned; choose a base that is a multiple of ${hex(align)} away from ${hex(from)}`,
      )
    }
  }
  for (const p of pointers) view.setBigUint64(p.offset, p.attributes | placed(p.target), true)
  pointers.sort((a, b) => a.offset - b.offset)
  const rest = [...tables.values()].filter((t) => t.address !== root).sort((a, b) => (a.address < b.address ? -1 : 1))
  return {from, to, base, bytes, tables: [tables.get(root)!, ...rest], pointers, root: placed(root)}
}

/** The alignment a table needs: the root's (concatenated roots are aligned to their whole size), or its own size. */
function tableAlign(geometry: Geometry, table: ImageTable, isRoot: boolean): bigint {
  return isRoot ? geometry.rootAlign : BigInt(table.bytes)
}

/**
 * The first table whose offset in the image is not a multiple of the alignment it needs (so an image
 * placed at an address aligned to tableSpan's `align` would misplace it), or undefined.
 */
export function misalignedTable(image: TableImage, geometry: Geometry): {table: ImageTable; needs: bigint} | undefined {
  for (const [i, table] of image.tables.entries()) {
    const needs = tableAlign(geometry, table, i === 0)
    if (BigInt(table.offset) % needs !== 0n) return {table, needs}
  }
  return undefined
}
