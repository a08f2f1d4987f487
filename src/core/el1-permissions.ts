/**
 * Stage-1 permissions of the EL1&0 regime (Arm ARM DDI 0487, D8.4 "Memory access control": the
 * AArch64 stage 1 access permissions, execute-never controls, hierarchical permissions and PAN),
 * as QEMU's get_S1prot reads them for a regime with two VA ranges:
 * - AP[2:1] (bits 7:6): AP[2] read-only, AP[1] EL0 has access (the same read/write as EL1);
 * - UXN (bit 54) stops EL0 executing, PXN (bit 53) stops EL1; EL1 never executes a page EL0 can
 *   write (the "PXN or EL0-writable" rule of regimes with two privilege levels);
 * - PSTATE.PAN: EL1 has no data access to a page EL0 can read or write (execution unaffected);
 * - table descriptors' PXNTable (bit 59), UXNTable (60) and APTable (62:61) restrict every leaf
 *   below them, unless TCR_EL1.HPDn disables them: APTable[0] clears AP[1], APTable[1] sets AP[2].
 * SCTLR_EL1.WXN, EPAN (PAN3) and FEAT_PAN2's AT S1E1RP/WP variants are not modelled (WXN and EPAN
 * taken as 0).
 */
import type {Access} from './descriptor.js'

/**
 * What the walk is for: EL0 or EL1, with PSTATE.PAN; whether TCR_EL1.HPDn drops the table
 * attributes; TCR_EL1.HA (an access flag of 0 is set by the walk, not a fault) and HD (a write to a
 * leaf with DBM, bit 51, clears its AP[2] first: it is writable).
 */
export interface El1Context {
  el0: boolean
  pan: boolean
  hpd: boolean
  ha?: boolean
  hd?: boolean
}

/** DBM, the dirty bit modifier: bit 51 of a leaf. */
export const DBM = 1n << 51n

/** The hierarchical attribute bits 62:59 of a table descriptor (its high word's bits 30:27): bit 0 PXNTable, 1 UXNTable, 2 APTable[0], 3 APTable[1]. */
export function tableAttrBits(hi: number): number {
  return (hi >>> 27) & 0xf
}

export const PXN_TABLE = 1
export const UXN_TABLE = 2
export const AP_TABLE_NO_EL0 = 4
export const AP_TABLE_READ_ONLY = 8

export interface El1Permissions {
  read: boolean
  write: boolean
  execute: boolean
  /** the effective AP[2:1], PXN and UXN after the table attributes */
  ap: number
  pxn: boolean
  uxn: boolean
  /** the table attributes changed something */
  restrictedByTables: boolean
  /** HD: the write sets the leaf dirty (clears AP[2], DBM set) */
  dirty: boolean
  /** why a read, write or execution is refused, by the kind of access */
  denied: {read?: string; write?: string; execute?: string}
}

function accessOf(ap: number, el0: boolean): Access {
  if (el0 && (ap & 1) === 0) return 'none'
  return (ap & 2) !== 0 ? 'RO' : 'RW'
}

/**
 * The permissions of a leaf `descriptor` under the accumulated table attribute bits `tables`
 * (tableAttrBits, ORed down the walk), for a read or (`write`) a write access.
 */
export function el1Permissions(descriptor: bigint, tables: number, context: El1Context, write = false): El1Permissions {
  let ap = Number((descriptor >> 6n) & 3n)
  // HD: the write makes the leaf dirty (AP[2] cleared) before the permission check; APTable still applies
  if (write && context.hd === true && (descriptor & DBM) !== 0n) ap &= ~2
  let pxn = ((descriptor >> 53n) & 1n) === 1n
  let uxn = ((descriptor >> 54n) & 1n) === 1n
  const before = {ap, pxn, uxn}
  const dirty = ap !== Number((descriptor >> 6n) & 3n)
  if (!context.hpd) {
    if ((tables & AP_TABLE_NO_EL0) !== 0) ap &= ~1
    if ((tables & AP_TABLE_READ_ONLY) !== 0) ap |= 2
    pxn ||= (tables & PXN_TABLE) !== 0
    uxn ||= (tables & UXN_TABLE) !== 0
  }
  const restrictedByTables = ap !== before.ap || pxn !== before.pxn || uxn !== before.uxn
  const byAp = ap !== before.ap ? ' (with APTable)' : ''
  const byPxn = pxn !== before.pxn ? ' (PXNTable)' : ''
  const byUxn = uxn !== before.uxn ? ' (UXNTable)' : ''
  const el0Access = accessOf(ap, true)
  const denied: El1Permissions['denied'] = {}
  let data: Access
  let execute: boolean
  if (context.el0) {
    data = el0Access
    execute = !uxn
    if (data === 'none') denied.read = denied.write = `EL0 has no access (AP[1] 0)${byAp}`
    if (!execute) denied.execute = `EL0 execution is not allowed (UXN)${byUxn}`
  } else {
    const pan = context.pan && el0Access !== 'none'
    data = pan ? 'none' : accessOf(ap, false)
    execute = !pxn && el0Access !== 'RW'
    if (pan) denied.read = denied.write = `PAN is set and EL0 can access the page${byAp}`
    if (!execute) denied.execute = `EL1 execution is not allowed (${pxn ? `PXN${byPxn}` : 'the page is EL0-writable'})${pxn ? '' : byAp}`
  }
  const read = data !== 'none'
  const canWrite = data === 'RW'
  if (read && !canWrite) denied.write = `the page is read-only (AP[2] 1)${byAp}`
  return {read, write: canWrite, execute, ap, pxn, uxn, restrictedByTables, dirty, denied}
}
