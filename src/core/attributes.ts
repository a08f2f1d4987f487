/**
 * The full leaf attribute model, typed per regime (like aarch64-paging's Stage2Attributes and
 * Attributes): a request names a preset and overrides any of memory type, shareability, access and
 * execution; it resolves to a regime's fields, or is refused when the regime has no such encoding.
 *
 * Stage 2 (Arm ARM DDI 0487, D8.5.5, D8.4.5, "Stage 2 memory type and Cacheability attributes",
 * FEAT_S2FWB off): MemAttr[3:2] is the outer attribute, MemAttr[1:0] the inner; 0b00 in [3:2]
 * makes it Device, [1:0] then naming nGnRnE 00, nGnRE 01, nGRE 10, GRE 11; otherwise each half is
 * 01 Non-cacheable, 10 Write-through, 11 Write-back (an inner 00 under a Normal outer is reserved).
 * S2AP (bits 7:6): 00 none, 01 read, 10 write, 11 read/write. XN[1:0] (bits 54:53): without FEAT_XNX
 * only bit 54 counts; with FEAT_XNX 00 executable at EL1 and EL0, 01 at EL0 only, 10 at neither,
 * 11 at EL1 only (QEMU target/arm/ptw.c get_S2prot agrees).
 *
 * Stage 1 of EL2 (HCR_EL2.E2H = 0): AttrIndx (bits 4:2) selects a MAIR_EL2 byte, AP[2] (bit 7) makes
 * it read-only, XN (bit 54). One privilege level: there is no EL0 access (AP[1]), no PXN, no nG.
 * hvmem's MAIR_EL2 holds Device-nGnRnE (0), Normal-WB (1) and Device-nGnRE (2); other types are refused.
 *
 * Both: SH (bits 9:8) 00 non-shareable, 10 outer, 11 inner (01 reserved); AF (bit 10) always set.
 * Device memory is never executable here (KVM's stage2_set_prot_attr and hyp_set_prot_attr refuse
 * it too): a speculative instruction fetch may read a device register.
 */
import {AF, type Attr, type Regime, type RegimeName, XN} from './descriptor.js'
import {HvmemError} from './errors.js'
import {STAGE2, memTypeName} from './stage2.js'
import {MAIR_EL2, STAGE1, mairAttrAt, mairTypeName} from './stage1.js'

export type Cacheability = 'WB' | 'WT' | 'NC'
export type DeviceType = 'nGnRnE' | 'nGnRE' | 'nGRE' | 'GRE'
export type MemType = {kind: 'normal'; outer: Cacheability; inner: Cacheability} | {kind: 'device'; device: DeviceType}
export type Share = 'NS' | 'OS' | 'IS'
export const SHARES: readonly Share[] = ['NS', 'OS', 'IS']
/** Where a leaf is executable: both ELs, neither, or (stage 2 with FEAT_XNX) one of them. */
export type ExecAt = 'all' | 'none' | 'el0' | 'el1'
export const EXEC_AT: readonly ExecAt[] = ['all', 'none', 'el0', 'el1']

export interface Permissions {
  read: boolean
  write: boolean
  exec: boolean
}

/** What a user asks for: a preset (default normal) and any fields that override it. */
export interface AttributeRequest {
  preset?: Attr
  mem?: string
  share?: string
  /** r, rw, rx, rwx, w, wx, x, or none */
  perm?: string
  /** stage 2 with FEAT_XNX: el0 or el1 only; all and none as x in perm */
  execAt?: string
}

/** A resolved stage-2 leaf's attribute fields. */
export interface Stage2Attributes {
  regime: 'stage2'
  memAttr: number
  sh: number
  s2ap: number
  xn: number
}

/** A resolved stage-1 (EL2) leaf's attribute fields. */
export interface Stage1Attributes {
  regime: 'stage1'
  attrIndx: number
  sh: number
  readOnly: boolean
  xn: boolean
}

export type LeafAttributes = Stage2Attributes | Stage1Attributes

/** A leaf's attribute bits (everything but the output address and bits 1:0), and a name for them. */
export interface AttributeBits {
  bits: bigint
  /** the preset's name when the bits are a preset's, else the fields spelled out ("Normal-NC IS RW NX") */
  name: string
}

const CACHE_CODE: Record<Cacheability, number> = {NC: 1, WT: 2, WB: 3}
const DEVICE_CODE: Record<DeviceType, number> = {nGnRnE: 0, nGnRE: 1, nGRE: 2, GRE: 3}
const SH_CODE: Record<Share, number> = {NS: 0, OS: 2, IS: 3}

/**
 * Parses a memory type name, case-insensitively, as `dump tables` prints them: Normal-WB, Normal-WT,
 * Normal-NC (inner = outer), Normal-oWB-iNC (outer, inner), Device-nGnRnE, Device-nGnRE, Device-nGRE, Device-GRE.
 */
export function parseMemType(text: string): MemType {
  const t = text.trim().toLowerCase()
  const device = /^device-(ngnrne|ngnre|ngre|gre)$/.exec(t)
  if (device !== null) return {kind: 'device', device: (['nGnRnE', 'nGnRE', 'nGRE', 'GRE'] as const).find((d) => d.toLowerCase() === device[1])!}
  const same = /^normal-(wb|wt|nc)$/.exec(t)
  if (same !== null) {
    const c = same[1]!.toUpperCase() as Cacheability
    return {kind: 'normal', outer: c, inner: c}
  }
  const split = /^normal-o(wb|wt|nc)-i(wb|wt|nc)$/.exec(t)
  if (split !== null) return {kind: 'normal', outer: split[1]!.toUpperCase() as Cacheability, inner: split[2]!.toUpperCase() as Cacheability}
  throw new HvmemError('input', `unknown memory type "${text}": use Normal-WB, Normal-WT, Normal-NC, Normal-o<WB|WT|NC>-i<WB|WT|NC>, Device-nGnRnE, Device-nGnRE, Device-nGRE or Device-GRE`)
}

export function memTypeText(m: MemType): string {
  if (m.kind === 'device') return `Device-${m.device}`
  return m.outer === m.inner ? `Normal-${m.outer}` : `Normal-o${m.outer}-i${m.inner}`
}

export function parseShare(text: string): Share {
  const s = text.trim().toUpperCase()
  const found = SHARES.find((x) => x === s)
  if (found === undefined) throw new HvmemError('input', `unknown shareability "${text}": use NS (non-shareable), OS (outer) or IS (inner shareable)`)
  return found
}

/** r, rw, rx, rwx, w, wx, x (the letters in that order), or none. */
export function parsePermissions(text: string): Permissions {
  const t = text.trim().toLowerCase()
  const m = t === 'none' ? ['', '', '', ''] : /^(r?)(w?)(x?)$/.exec(t)
  if (m === null || t === '') throw new HvmemError('input', `unknown permissions "${text}": use r, rw, rx, rwx, w, wx, x or none`)
  return {read: m[1] === 'r', write: m[2] === 'w', exec: m[3] === 'x'}
}

export function parseExecAt(text: string): ExecAt {
  const t = text.trim().toLowerCase()
  const found = EXEC_AT.find((x) => x === t)
  if (found === undefined) throw new HvmemError('input', `unknown execute level "${text}": use all, none, el0 or el1`)
  return found
}

/** The fields a stage-2 attribute pattern holds. */
export function stage2Fields(bits: bigint): Stage2Attributes {
  return {regime: 'stage2', memAttr: Number((bits >> 2n) & 0xfn), s2ap: Number((bits >> 6n) & 3n), sh: Number((bits >> 8n) & 3n), xn: Number((bits >> 53n) & 3n)}
}

/** The fields a stage-1 (EL2) attribute pattern holds. */
export function stage1Fields(bits: bigint): Stage1Attributes {
  return {regime: 'stage1', attrIndx: Number((bits >> 2n) & 7n), readOnly: (bits & (1n << 7n)) !== 0n, sh: Number((bits >> 8n) & 3n), xn: (bits & XN) !== 0n}
}

export function encodeAttributes(a: LeafAttributes): bigint {
  if (a.regime === 'stage2') return (BigInt(a.memAttr) << 2n) | (BigInt(a.s2ap) << 6n) | (BigInt(a.sh) << 8n) | AF | (BigInt(a.xn) << 53n)
  return (BigInt(a.attrIndx) << 2n) | (a.readOnly ? 1n << 7n : 0n) | (BigInt(a.sh) << 8n) | AF | (a.xn ? XN : 0n)
}

/** The regimes whose presets (attrBits, attrOf) the attribute model names. */
const PRESETS: Record<RegimeName, Regime> = {stage2: STAGE2, stage1: STAGE1}

/** The preset whose bits these are, if any. */
export function presetOf(regime: RegimeName, bits: bigint): Attr | undefined {
  return PRESETS[regime].attrOf(bits)
}

/** Spelled out: "Normal-WB IS RW X", "Device-nGnRE OS RO NX", "Normal-NC NS WO X@EL0". */
export function describeAttributes(regime: RegimeName, bits: bigint): string {
  const sh = ['NS', 'SH01', 'OS', 'IS'][Number((bits >> 8n) & 3n)]!
  if (regime === 'stage2') {
    const f = stage2Fields(bits)
    const access = ['none', 'RO', 'WO', 'RW'][f.s2ap]!
    const exec = ['X', 'X@EL0', 'NX', 'X@EL1'][f.xn]!
    return `${memTypeName(f.memAttr)} ${sh} ${access} ${exec}`
  }
  const f = stage1Fields(bits)
  return `${mairTypeName(mairAttrAt(MAIR_EL2, f.attrIndx))} ${sh} ${f.readOnly ? 'RO' : 'RW'} ${f.xn ? 'NX' : 'X'}`
}

/** The bits and name of `bits` in `regime`: the preset's name, or the fields spelled out. */
export function namedBits(regime: RegimeName, bits: bigint): AttributeBits {
  return {bits, name: presetOf(regime, bits) ?? describeAttributes(regime, bits)}
}

/**
 * Resolves a request in a regime: the preset's fields (normal by default), then each field given.
 * Changing the memory type to Device without saying the permissions drops execute; asking for
 * Device and execute is refused, as is any field the regime cannot encode.
 */
export function resolveAttributes(regime: RegimeName, request: AttributeRequest): AttributeBits {
  const preset = request.preset ?? 'normal'
  const base = PRESETS[regime].attrBits[preset]
  const mem = request.mem === undefined ? undefined : parseMemType(request.mem)
  const share = request.share === undefined ? undefined : parseShare(request.share)
  const perm = request.perm === undefined ? undefined : parsePermissions(request.perm)
  const execAt = request.execAt === undefined ? undefined : parseExecAt(request.execAt)
  const a = regime === 'stage2' ? stage2Resolve(base, mem, perm, execAt) : stage1Resolve(base, mem, perm, execAt)
  if (share !== undefined) a.sh = SH_CODE[share]
  const device = a.regime === 'stage2' ? (a.memAttr & 0b1100) === 0 : (mairAttrAt(MAIR_EL2, a.attrIndx) & 0xf0) === 0
  const executable = a.regime === 'stage2' ? a.xn !== 2 : !a.xn
  if (device && executable) {
    throw new HvmemError('input', 'Device memory must be execute-never (a speculative instruction fetch could read a device register); leave x out of the permissions')
  }
  return namedBits(regime, encodeAttributes(a))
}

function stage2Resolve(base: bigint, mem: MemType | undefined, perm: Permissions | undefined, execAt: ExecAt | undefined): Stage2Attributes {
  const a = stage2Fields(base)
  if (mem !== undefined) {
    a.memAttr = mem.kind === 'device' ? DEVICE_CODE[mem.device] : (CACHE_CODE[mem.outer] << 2) | CACHE_CODE[mem.inner]
    if (mem.kind === 'device' && perm === undefined && execAt === undefined) a.xn = 2
  }
  if (perm !== undefined) {
    a.s2ap = (perm.read ? 1 : 0) | (perm.write ? 2 : 0)
    a.xn = perm.exec ? 0 : 2
  }
  if (execAt !== undefined) {
    if (perm !== undefined && !perm.exec && execAt !== 'none') throw new HvmemError('input', `execute at ${execAt} contradicts permissions without x`)
    a.xn = {all: 0, el0: 1, none: 2, el1: 3}[execAt]
  }
  return a
}

function stage1Resolve(base: bigint, mem: MemType | undefined, perm: Permissions | undefined, execAt: ExecAt | undefined): Stage1Attributes {
  const a = stage1Fields(base)
  if (mem !== undefined) {
    const name = memTypeText(mem)
    const index = [0, 1, 2, 3, 4, 5, 6, 7].find((i) => mairTypeName(mairAttrAt(MAIR_EL2, i)) === name)
    if (index === undefined) throw new HvmemError('input', `${name} is not in hvmem's MAIR_EL2 (0x0004ff00: Device-nGnRnE, Normal-WB, Device-nGnRE); stage 1 selects a memory type through it`)
    a.attrIndx = index
    if (mem.kind === 'device' && perm === undefined) a.xn = true
  }
  if (perm !== undefined) {
    if (!perm.read) throw new HvmemError('input', `stage 1 (EL2) has no ${perm.write ? 'write-only' : 'no-access'} encoding: AP[2] gives read/write or read-only`)
    a.readOnly = !perm.write
    a.xn = !perm.exec
  }
  if (execAt === 'el0' || execAt === 'el1') throw new HvmemError('input', `execute at ${execAt} only is stage 2 with FEAT_XNX; the EL2 stage-1 regime has one privilege level`)
  if (execAt !== undefined) a.xn = execAt === 'none'
  return a
}
