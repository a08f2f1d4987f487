/**
 * Issue 15 item 2 on QEMU: the tables written by `snapshot export --format asm` are assembled with
 * aarch64-linux-gnu-as and linked into a small EL2 stub (el2/export-stub.S) with the tables' section
 * at 0x4800_0000, not where they were built (so every table pointer is the linker's relocation). The
 * stub installs them with the export's own hvmem_install_tables (and hvmem_enable_mmu for stage 1),
 * runs AT walks, and every PAR_EL1 must be the one hvmem's translate gives on the tables where they
 * were built. One QEMU boot per configuration, a few hundred probes each.
 */
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {describe, expect, it} from 'vitest'

import {DEFAULT_HEAP_BASE, DEFAULT_HEAP_SIZE, DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE} from '../../src/core/heap.js'
import {Machine} from '../../src/core/machine.js'
import type {MapperOptions} from '../../src/core/mapper.js'
import {registersFor} from '../../src/core/registers.js'
import {buildTableImage, tableSpan} from '../../src/core/table-image.js'
import {SECTION, renderAsm} from '../../src/core/table-source.js'
import {translate} from '../../src/core/translate.js'
import {AS, LD, PROGRAM_RANGE, type QemuJob, UART_RANGE, qemu72Stage1, qemuAvailable, runProgram} from './qemu.js'
import {Random, type Scenario, chooseProbes} from './scenarios.js'

const run = promisify(execFile)
const required = process.env.CI === 'true'
const BLOCK = 0x20_0000n
const GIB = 0x4000_0000n
/** Where export-stub.ld puts the tables: in QEMU virt's RAM, clear of the stub and the heap the tables were built in. */
const LINK_BASE = 0x4800_0000n
const STUB = fileURLToPath(new URL('el2/export-stub.S', import.meta.url))
const STUB_LD = fileURLToPath(new URL('el2/export-stub.ld', import.meta.url))

interface Config {
  name: string
  options: MapperOptions
}

const CONFIGS: Config[] = [
  {name: 'stage2, 4 KiB, 39-bit IPA', options: {regime: 'stage2', vmid: 5}},
  {name: 'stage2, 4 KiB, 40-bit IPA (2 concatenated L1 tables)', options: {regime: 'stage2', inputBits: 40}},
  {name: 'stage2, 16 KiB, 36-bit IPA', options: {regime: 'stage2', granule: 16384, inputBits: 36}},
  {name: 'stage1, 4 KiB, 39-bit VA', options: {regime: 'stage1'}},
]

function scenario(config: Config): Scenario {
  const machine = Machine.create({ramBase: DEFAULT_RAM_BASE, ramSize: DEFAULT_RAM_SIZE, heapBase: DEFAULT_HEAP_BASE, heapSize: DEFAULT_HEAP_SIZE})
  const {mapper} = machine.ensureMapper({l2Budget: 64, ...config.options})
  const regime = mapper.state.regime
  if (regime === 'stage1') {
    mapper.mapRegion(PROGRAM_RANGE.start, PROGRAM_RANGE.end - PROGRAM_RANGE.start, 'normal')
    mapper.mapRegion(UART_RANGE.start, UART_RANGE.end - UART_RANGE.start, 'device')
  }
  const granule = BigInt(mapper.geometry.granule)
  mapper.mapRegion(0x8000_0000n, 64n * granule, 'normal', {granularity: 'page'})
  mapper.mapRegion(0x8100_0000n, 16n * granule, 'device', {granularity: 'page', pa: 0x1_2340_0000n})
  mapper.mapRegion(0xa000_0000n, mapper.maxLeaf(undefined) * 2n, 'readonly')
  mapper.mapRegion(0x2_0000_0000n, 2n * BLOCK, 'normal', {pa: 0x4800_0000n})
  mapper.unmap(0x8000_0000n + 8n * granule, 2n * granule)
  mapper.protect(0x8000_0000n + 20n * granule, 4n * granule, {perm: 'r'})
  if (regime === 'stage2') mapper.mapRegion(GIB, GIB, 'normal')
  const s: Scenario = {name: config.name, regime, machine, mapper, probes: []}
  s.probes = chooseProbes(s, new Random(42), 300)
  return s
}

async function tool(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args)).stdout
  } catch (error) {
    const e = error as {stderr?: string; message: string}
    throw new Error(`${command} ${args.join(' ')} failed:\n${e.stderr ?? e.message}`, {cause: error})
  }
}

describe.skipIf(!qemuAvailable() && !required)('snapshot export --format asm, linked elsewhere, on QEMU', () => {
  it.each(CONFIGS)('$name: every AT walk agrees with translate', async (config) => {
    const s = scenario(config)
    const {machine, mapper} = s
    const g = mapper.geometry
    const span = tableSpan(machine.memory, g, mapper.root)
    const image = buildTableImage(machine.memory, g, mapper.root, span.from, span.to)
    const registers = registersFor(mapper.state.regime, image.root, mapper.state.vmid, g)
    const asm = renderAsm(image, {regime: mapper.state.regime, geometry: g, registers, align: span.align, command: 'test'})
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hvmem-export-'))
    try {
      const file = (name: string): string => path.join(dir, name)
      await writeFile(file('t.S'), asm)
      await tool(AS, [file('t.S'), '-o', file('t.o')])
      await tool(AS, ['-I', path.dirname(STUB), STUB, '-o', file('stub.o')])
      await tool(LD, ['--no-warn-rwx-segments', '-T', STUB_LD, file('stub.o'), file('t.o'), '-o', file('stub.elf')])
      await tool(LD.replace(/ld$/, 'objcopy'), ['-O', 'binary', '-j', SECTION, file('stub.elf'), file('t.bin')])
      const symbols = new Map(
        (await tool(LD.replace(/ld$/, 'nm'), [file('stub.elf')]))
          .trim()
          .split('\n')
          .map((line) => {
            const [value, , name] = line.split(' ')
            return [name!, BigInt(`0x${value}`)] as const
          }),
      )
      const bytes = new Uint8Array(await readFile(file('t.bin')))
      expect(symbols.get('hvmem_tables')).toBe(LINK_BASE)
      expect(symbols.get('hvmem_root')).toBe(LINK_BASE + BigInt(image.tables[0]!.offset))
      // the linked section is the image placed at the link address, then the register word
      const placed = buildTableImage(machine.memory, g, mapper.root, span.from, span.to, LINK_BASE)
      expect(Buffer.from(bytes.subarray(0, placed.bytes.length)).equals(Buffer.from(placed.bytes))).toBe(true)
      const word = (name: string): bigint => new DataView(bytes.buffer).getBigUint64(Number(symbols.get(name)! - LINK_BASE), true)
      const value = (name: string): bigint => registers.find((r) => r.name === name)!.value
      // the stub ignores the register words of the parameter block: the routine installs the tables
      const job: Omit<QemuJob, 'probes'> =
        mapper.state.regime === 'stage2'
          ? {regime: 'stage2', images: [], vttbr: word('hvmem_vttbr_el2'), vtcr: value('VTCR_EL2')}
          : {regime: 'stage1', images: [], ttbr0: word('hvmem_ttbr0_el2'), tcr: value('TCR_EL2'), mair: value('MAIR_EL2')}
      if (mapper.state.regime === 'stage2') expect(job.vttbr).toBe((BigInt(mapper.state.vmid) << 48n) | symbols.get('hvmem_root')!)
      const pars = await runProgram(file('stub.elf'), {...job, probes: s.probes})
      const wrong: string[] = []
      const results = new Map<string, number>()
      s.probes.forEach((probe, i) => {
        const t = translate(machine.memory, mapper.regime, mapper.root, probe.address, {write: probe.write}, g)
        const key = t.fault === undefined ? 'ok' : t.fault.kind
        results.set(key, (results.get(key) ?? 0) + 1)
        const expected = mapper.regime.stage === 1 ? qemu72Stage1(t).par : t.par
        if (expected !== pars[i])
          wrong.push(`${probe.write ? 'W' : 'R'} 0x${probe.address.toString(16)}: translate 0x${t.par.toString(16)} (QEMU 7.2 expected 0x${expected.toString(16)}), QEMU 0x${pars[i]!.toString(16)}`)
      })
      expect(wrong).toEqual([])
      expect(s.probes.length).toBeGreaterThan(100)
      expect(results.get('ok')).toBeGreaterThan(20)
      expect(results.size).toBeGreaterThan(1)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
