/**
 * Conformance of FEAT_LPA2 at stage 2 (VTCR_EL2.DS = 1) with QEMU: stage-2 tables written here with
 * 52-bit output addresses (bits 51:50 in descriptor bits 9:8, shareability from VTCR_EL2.SH0), in a
 * 4K walk from level -1 (SL2), a 16K walk from level 1 and a 4K 43-bit walk with a 44-bit PS
 * (outputs above it: address-size faults); level-0 (4K) and level-1 (16K) blocks, 1G, 2M
 * and 32M blocks, pages, read-only, access flag clear and invalid entries. Every leaf is probed with
 * AT S12E1R and S12E1W (HCR_EL2.DC: the guest's stage 1 flat), one QEMU boot a configuration; every
 * PAR_EL1 must equal translate's. Level -1 faults are not probed: QEMU 7.2 aborts on one (an
 * assertion in arm_fi_to_lfsc); test/core/lpa2-el2.test.ts checks their codes against the Arm ARM.
 */
import {describe, expect, it} from 'vitest'

import {FINAL_LEVEL, type Geometry} from '../../src/core/geometry.js'
import {Machine} from '../../src/core/machine.js'
import type {PhysicalMemory} from '../../src/core/memory.js'
import {foreignWalk} from '../../src/core/regime-config.js'
import {translate} from '../../src/core/translate.js'
import {type Probe, qemuAvailable, runQemu} from './qemu.js'

const required = process.env.CI === 'true'
const TABLES = 0x4400_0000n

/** A descriptor's address field with DS: bits 49:12 in place, 51:50 in bits 9:8. */
const ds = (oa: bigint): bigint => (oa & 0x0003_ffff_ffff_f000n) | (((oa >> 50n) & 3n) << 8n)
/** stage-2 leaf attributes (no SH: with DS bits 9:8 are address bits): MemAttr WB, S2AP RW, AF */
const RW = (0xfn << 2n) | (3n << 6n) | 0x400n
const RO = (0xfn << 2n) | (1n << 6n) | 0x400n
const DEVICE = (0x1n << 2n) | (3n << 6n) | 0x400n
const NO_AF = RW & ~0x400n

class Tables {
  next = TABLES
  constructor(
    readonly memory: PhysicalMemory,
    readonly g: Geometry,
    readonly root: bigint,
  ) {}

  alloc(): bigint {
    const at = this.next
    this.next += BigInt(this.g.granule)
    return at
  }

  /** A leaf at `level` for `ipa` (output `oa`, attributes `attrs`), or a raw descriptor with `raw`. */
  leaf(ipa: bigint, level: number, oa: bigint, attrs: bigint, raw?: bigint): void {
    const g = this.g
    let table = this.root
    for (let l = g.startLevel; l < level; l++) {
      const slot = table + 8n * BigInt(g.index(ipa, l))
      let d = this.memory.readU64(slot)
      if ((d & 3n) !== 3n) {
        d = this.alloc() | 3n
        this.memory.writeU64(slot, d)
      }
      table = d & 0x0000_ffff_ffff_f000n
    }
    this.memory.writeU64(table + 8n * BigInt(g.index(ipa, level)), raw ?? ds(oa) | attrs | (level === FINAL_LEVEL ? 3n : 1n))
  }
}

interface Config {
  name: string
  vtcr: bigint
  /** output addresses of the pages, and of the blocks */
  outputs: bigint[]
  block: bigint
}

const WIDE = [0xd_0000_0000_0000n, 0x4_0000_0000_0000n, 0x1_0000_0000_0000n, 0x8_0000_0000_0000n, 0x7654_3210_0000n]

/**
 * Left out, as QEMU 7.2 departs from the architecture there (test/core/lpa2-el2.test.ts checks hvmem
 * against the Arm ARM): a 16K walk starting at level 0 (SL0 3 with DS), which QEMU's
 * check_s2_mmu_setup refuses for any 16K level-0 start; and with DS and a PS of 48 bits or more, an
 * output address above 2^48, which QEMU does not check (it checks only bits PS..47); and a table
 * address above the PS, which QEMU 7.2 fetches (an external abort, taken as an exception) instead of
 * reporting an address-size fault.
 */
const CONFIGS: Config[] = [
  // 4K, T0SZ 12 (52-bit IPA), SL2 1 SL0 0 (level -1), PS 52, SH0 inner, DS
  {name: '4K/52 from level -1 (SL2)', vtcr: 0x3_8006_350cn, outputs: WIDE, block: 0xd_0000_0000_0000n},
  // 16K, T0SZ 17 (47-bit IPA), SL0 2 (level 1), PS 52, SH0 outer, DS: 64G blocks at level 1
  {name: '16K/47 from level 1, PS 52', vtcr: 0x1_8006_a591n, outputs: WIDE, block: 0xd_0000_0000_0000n},
  // 4K, T0SZ 21 (43-bit IPA), SL0 1 (level 1, 16 concatenated tables), PS 44, SH0 inner, DS: outputs above 2^44 fault
  {
    name: '4K/43 with PS 44',
    vtcr: 0x1_8004_3555n,
    outputs: [0x0fff_1234_0000n, 0x7654_3210_0000n, 0x0abc_0000_0000n, 0x1000_0000_0000n, 0x0123_4567_8000n],
    block: 0x0a00_0000_0000n,
  },
]

function build(c: Config): {machine: Machine; probes: Probe[]; vttbr: bigint; image: {address: bigint; data: Uint8Array}} {
  const machine = Machine.create({ramBase: 0x4000_0000n, ramSize: 1n << 30n, heapBase: 0x7000_0000n, heapSize: 1n << 20n})
  const g = foreignWalk('stage2', TABLES, c.vtcr).geometry
  const t = new Tables(machine.memory, g, TABLES)
  t.next = TABLES + BigInt(g.tableBytes(g.startLevel) > g.granule ? g.tableBytes(g.startLevel) : g.granule)
  const probes: Probe[] = []
  const probe = (ipa: bigint): void => void probes.push({address: ipa, write: false}, {address: ipa, write: true})
  const page = BigInt(g.granule)
  // the top input-address regions: the root's first, middle and last entries (with a level -1 root, only under valid entries)
  const top = g.entrySize(g.startLevel)
  const regions = [0n, top * BigInt(g.rootEntries >> 1), top * BigInt(g.rootEntries - 1)]
  const outputs = c.outputs
  regions.forEach((base, r) => {
    // pages: every output variant, read-only, Device, access flag clear; an invalid page
    outputs.forEach((oa, k) => {
      const ipa = base + page * BigInt(k + 1)
      t.leaf(ipa, FINAL_LEVEL, oa + page * BigInt(r), RW)
      probe(ipa + 0x18n)
    })
    for (const [k, attrs] of [RO, DEVICE, NO_AF].entries()) {
      const ipa = base + page * BigInt(k + 10)
      t.leaf(ipa, FINAL_LEVEL, outputs[k]!, attrs)
      probe(ipa)
    }
    probe(base + page * 20n)
    // blocks at level 2 and 1 (4K: 2M, 1G; 16K: 32M, and with DS 64G at level 1), and 4K level 0 (512G)
    for (const level of [2, 1, 0]) {
      if (!g.canBlock(level) || level < g.startLevel) continue
      const size = g.entrySize(level)
      // a block at the start level takes a root entry of its own
      const ipa = level === g.startLevel ? top * BigInt((g.rootEntries >> 2) + r) : base + size * 3n
      if (level > g.startLevel && g.index(ipa, g.startLevel) !== g.index(base, g.startLevel)) continue
      t.leaf(ipa, level, c.block & ~(size - 1n), RW)
      probe(ipa + size / 2n + 0x1234n)
    }
  })
  const image = {address: TABLES, data: machine.memory.readBytes(TABLES, Number(t.next - TABLES))}
  return {machine, probes, vttbr: TABLES, image}
}

const hex = (v: bigint): string => `0x${v.toString(16)}`

describe.skipIf(!qemuAvailable() && !required)('conformance of FEAT_LPA2 at stage 2 with QEMU', () => {
  it.each(CONFIGS)('$name: every probed address agrees', {timeout: 600_000}, async (c) => {
    expect(qemuAvailable(), 'qemu-system-aarch64 and aarch64-linux-gnu binutils are needed (see README)').toBe(true)
    const {machine, probes, vttbr, image} = build(c)
    const w = foreignWalk('stage2', vttbr, c.vtcr)
    const pars = await runQemu({regime: 'stage2', images: [image], vttbr, vtcr: c.vtcr, probes})
    const results = new Map<string, number>()
    const disagreements: string[] = []
    probes.forEach((p, i) => {
      const t = translate(machine.memory, w.decoder, w.root, p.address, {write: p.write}, w.geometry)
      const key = t.fault === undefined ? `ok L${t.output!.level}` : `${t.fault.kind} L${t.fault.level}`
      results.set(key, (results.get(key) ?? 0) + 1)
      if (t.par !== pars[i]) disagreements.push(`${p.write ? 'W' : 'R'} ${hex(p.address)}: hvmem ${hex(t.par)} QEMU ${hex(pars[i]!)} ${t.fault?.reason ?? ''}`)
    })
    console.log(`conformance LPA2 stage 2 ${c.name}: ${probes.length} AT probes, ${disagreements.length} disagreements; ${[...results].map(([k, v]) => `${k}: ${v}`).join(', ')}`)
    expect(disagreements.slice(0, 20)).toEqual([])
    expect(probes.length).toBeGreaterThanOrEqual(50)
  })
})
