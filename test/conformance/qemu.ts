/**
 * Runs translation tables under QEMU's Arm MMU model: loads raw memory images (the tables) and a
 * parameter block next to the EL2 probe program (el2/probe.S), which configures the MMU registers,
 * translates each probe address with AT (S12E1R/W for stage 2, S1E2R/W for the EL2 stage-1 regime,
 * S1E1R/W, S1E0R/W, S1E1RP/WP for EL1&0, S12E1R/W and S12E0R/W for both stages of EL1&0)
 * and prints PAR_EL1. How the suite uses QEMU, and where QEMU 7.2 departs from the architecture (the checks
 * allow for it): docs/qemu.md, docs/regimes.md.
 *
 * Memory the runner reserves in QEMU virt's RAM (0x4000_0000 + 1 GiB):
 *   0x4000_0000-0x400F_FFFF  QEMU's device tree (QEMU writes it; load nothing there)
 *   0x4020_0000-0x403F_FFFF  the probe program (code, data, stack)
 *   0x4040_0000-0x405F_FFFF  the parameter block (PARAMS)
 * Images may go anywhere else in RAM, e.g. hvmem's default heap at 0x4100_0000.
 */
import {execFile, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, rename, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

const execFileAsync = promisify(execFile)

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SOURCE = path.join(HERE, 'el2', 'probe.S')
/** The UART and semihosting helpers probe.S and export-stub.S share (assembled with -I el2). */
const UART_INCLUDE = path.join(HERE, 'el2', 'uart.inc')
const LINKER_SCRIPT = path.join(HERE, 'el2', 'probe.ld')

export const QEMU = 'qemu-system-aarch64'

/** hvmem's PAR_EL1 as QEMU 7.2 gives it, and the departure from the Arm ARM that made them differ, if one did. */
export interface Qemu72Par {
  par: bigint
  deviation?: string
}

/**
 * What QEMU 7.2 gives in PAR_EL1 after a stage-1 walk alone (AT S1E2*, S1E1*, S1E0*), from hvmem's
 * translation of the same address: PAR_EL1.SH holds the leaf descriptor's SH for every memory type,
 * where the Arm ARM's PAREncodeShareability gives 0b10 for Device and Normal inner and outer
 * Non-cacheable memory, as hvmem does (QEMU follows the Arm ARM from 8.0: "target/arm: Set
 * PAR_EL1.SH to 0b10 for Device or Normal-NC"). At stage 2, and for two stages, QEMU 7.2 already gives 0b10.
 */
export function qemu72Stage1(t: {par: bigint; output?: {attr: number; sh: number; leaf: {sh: number}}}): Qemu72Par {
  const o = t.output
  if (o === undefined || o.leaf.sh === o.sh) return {par: t.par}
  return {par: (t.par & ~(3n << 7n)) | (BigInt(o.leaf.sh) << 7n), deviation: "stage 1's SH of Device or Normal-NC"}
}

/** Counts `expected`'s deviation in `deviations` when QEMU gave the PAR it predicts. */
export function noteDeviation(deviations: Map<string, number>, expected: Qemu72Par, qemu: bigint): void {
  if (expected.deviation !== undefined && expected.par === qemu) deviations.set(expected.deviation, (deviations.get(expected.deviation) ?? 0) + 1)
}

/** The deviations counted, for a suite's report line. */
export function describeDeviations(deviations: Map<string, number>): string {
  return [...deviations].map(([k, v]) => `${v} of QEMU 7.2's deviation "${k}"`).join(', ') || 'no QEMU deviation'
}
/**
 * The CPU model: `max` (QEMU 7.2: ID_AA64MMFR0_EL1 0x0000_0323_1020_1126), for its 4K, 16K and 64K
 * granules at both stages. Tables must enable what they rely on in the registers (VTCR_EL2/TCR_EL2
 * HA, HD, DS stay clear), so the extra features of `max` do not show in the PARs; what does show is
 * its PA size (CPU_PA_BITS).
 */
export const QEMU_CPU = 'max'
/**
 * PAMax of QEMU_CPU: ID_AA64MMFR0_EL1.PARange 0b0110, 52 bits (cortex-a57 had 44). With EL1's MMU
 * off, AT S12E1R/W checks the address against this at its own (flat) stage 1 first: an address at or
 * above 2^CPU_PA_BITS is a stage-1 address size fault at level 0, before stage 2 sees it.
 */
export const CPU_PA_BITS = 52n
export const AS = 'aarch64-linux-gnu-as'
export const LD = 'aarch64-linux-gnu-ld'

export const RAM_RANGE = {start: 0x4000_0000n, end: 0x8000_0000n}
/** QEMU writes its device tree here at reset. */
export const DTB_RANGE = {start: 0x4000_0000n, end: 0x4010_0000n}
/**
 * The probe program (0x4020_0000-0x403F_FFFF) and the parameter block (0x4040_0000-0x405F_FFFF).
 * Stage 1: the program runs with the EL2 MMU on, so its tables must identity-map this range as
 * Normal, executable, read/write (4 MiB, 2 MiB aligned: two 4K-granule L2 blocks, or pages of any
 * granule, or part of one larger block).
 */
export const PROGRAM_RANGE = {start: 0x4020_0000n, end: 0x4060_0000n}
/** The PL011 UART the program prints on. Stage 1: must be identity-mapped as Device (2 MiB, 2 MiB aligned). */
export const UART_RANGE = {start: 0x0900_0000n, end: 0x0920_0000n}
export const PARAMS_ADDRESS = 0x4040_0000n
/** "HMVPROBE" read as a little-endian u64: the bytes 48 4d 56 50 52 4f 42 45. */
export const PARAMS_MAGIC = 0x4542_4f52_5056_4d48n
const PARAMS_BYTES = 0x20_0000
const HEADER_WORDS = 10
export const MAX_PROBES = PARAMS_BYTES / 8 - HEADER_WORDS

/** HCR_EL2 for stage-2 probes: VM (bit 0) | DC (bit 12, stage 1 off reads as Normal WB) | RW (bit 31). */
export const HCR_EL2_STAGE2 = (1n << 0n) | (1n << 12n) | (1n << 31n)
/** HCR_EL2 for two-stage EL1&0 probes: VM (bit 0) | RW (bit 31); DC clear, so the guest's stage 1 is its tables. */
export const HCR_EL2_TWO_STAGE = (1n << 0n) | (1n << 31n)
/** HCR_EL2 for stage-1 probes: RW only; stage 2 stays off. */
export const HCR_EL2_STAGE1 = 1n << 31n
/** SCTLR_EL2 bits the program ORs in for stage 1 unless the job says otherwise: M | C | I. */
export const SCTLR_EL2_MCI = (1n << 0n) | (1n << 2n) | (1n << 12n)

export const DEFAULT_TIMEOUT_MS = 60_000

export interface Probe {
  address: bigint
  write: boolean
  /** EL1&0 jobs only: AT S1E0R/W instead of S1E1R/W */
  el0?: boolean
  /** EL1&0 jobs only: AT S1E1RP/WP with PSTATE.PAN set */
  pan?: boolean
}

export interface QemuJob {
  /** el1: stage 1 of EL1&0, AT S1E1R/W, S1E0R/W, S1E1RP/WP from EL2 (HCR_EL2.E2H and TGE clear, stage 2 off) */
  /** el1-two-stage: both stages of EL1&0, AT S12E1R/W, S12E0R/W (HCR_EL2.VM set; vttbr, vtcr, ttbr0/ttbr1, tcr, mair) */
  regime: 'stage2' | 'stage1' | 'el1' | 'el1-two-stage'
  /** raw memory images to load (the translation tables) */
  images: Array<{address: bigint; data: Uint8Array}>
  vttbr?: bigint
  vtcr?: bigint
  /** default HCR_EL2_STAGE2 for stage 2, HCR_EL2_STAGE1 for stage 1 */
  hcr?: bigint
  /** TTBR0_EL2, or TTBR0_EL1 for el1 */
  ttbr0?: bigint
  /** el1: TTBR1_EL1 */
  ttbr1?: bigint
  /** TCR_EL2, or TCR_EL1 for el1 */
  tcr?: bigint
  /** MAIR_EL2, or MAIR_EL1 for el1 */
  mair?: bigint
  /** bits ORed into SCTLR_EL2 for stage 1 (default SCTLR_EL2_MCI), or into SCTLR_EL1 for el1 (default M) */
  sctlr?: bigint
  probes: Probe[]
}

export interface RunOptions {
  timeoutMs?: number
}

/** Both QEMU and the cross assembler (and linker) are on PATH. */
export function qemuAvailable(): boolean {
  return [QEMU, AS, LD].every(onPath)
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && existsSync(path.join(dir, command)))
}

let programPromise: Promise<string> | undefined

/**
 * Assembles and links el2/probe.S once; the ELF is cached in os.tmpdir() under a hash of the
 * sources, so later runs (and other processes) reuse it. Returns the ELF's path.
 */
export function buildProbeProgram(): Promise<string> {
  programPromise ??= build().catch((error: unknown) => {
    programPromise = undefined
    throw error
  })
  return programPromise
}

async function build(): Promise<string> {
  const [source, include, script] = await Promise.all([readFile(SOURCE), readFile(UART_INCLUDE), readFile(LINKER_SCRIPT)])
  const hash = createHash('sha256').update(source).update('\0').update(include).update('\0').update(script).digest('hex').slice(0, 16)
  const dir = path.join(os.tmpdir(), `hvmem-conformance-${hash}`)
  const elf = path.join(dir, 'probe.elf')
  if (existsSync(elf)) return elf
  await mkdir(dir, {recursive: true})
  // Build in a private directory and rename into place, so concurrent builders never see half an ELF.
  const work = await mkdtemp(path.join(dir, 'build-'))
  try {
    const object = path.join(work, 'probe.o')
    const output = path.join(work, 'probe.elf')
    await tool(AS, ['-I', path.dirname(SOURCE), SOURCE, '-o', object])
    await tool(LD, ['--no-warn-rwx-segments', '-T', LINKER_SCRIPT, object, '-o', output])
    await rename(output, elf)
  } finally {
    await rm(work, {recursive: true, force: true})
  }
  return elf
}

async function tool(command: string, args: string[]): Promise<void> {
  try {
    await execFileAsync(command, args)
  } catch (error) {
    const e = error as {stderr?: string; message: string}
    throw new Error(`${command} ${args.join(' ')} failed:\n${e.stderr ?? e.message}`, {cause: error})
  }
}

/** The parameter block el2/probe.S reads at PARAMS_ADDRESS (layout documented there). */
export function paramBlock(job: QemuJob): Uint8Array {
  if (job.probes.length > MAX_PROBES) throw new Error(`${job.probes.length} probes do not fit in the parameter block (at most ${MAX_PROBES})`)
  let header: bigint[]
  if (job.regime === 'el1') {
    if (job.probes.length > MAX_PROBES / 2) throw new Error(`${job.probes.length} EL1&0 probes do not fit in the parameter block (at most ${MAX_PROBES / 2})`)
    header = [PARAMS_MAGIC, 3n, job.ttbr1 ?? 0n, job.sctlr ?? 1n, job.hcr ?? HCR_EL2_STAGE1, job.ttbr0 ?? 0n, required(job.tcr, 'tcr'), required(job.mair, 'mair'), 0n]
    const words = [...header, BigInt(job.probes.length)]
    for (const probe of job.probes) {
      if (probe.el0 === true && probe.pan === true) throw new Error('a probe is EL0 or PAN, not both')
      words.push(probe.address, BigInt((probe.pan === true ? 4 : probe.el0 === true ? 2 : 0) + (probe.write ? 1 : 0)))
    }
    return wordsToBytes(words)
  }
  if (job.regime === 'el1-two-stage') {
    if (job.probes.length > MAX_PROBES / 2) throw new Error(`${job.probes.length} EL1&0 probes do not fit in the parameter block (at most ${MAX_PROBES / 2})`)
    header = [
      PARAMS_MAGIC,
      4n,
      job.ttbr1 ?? 0n,
      required(job.vtcr, 'vtcr'),
      job.hcr ?? HCR_EL2_TWO_STAGE,
      job.ttbr0 ?? 0n,
      required(job.tcr, 'tcr'),
      required(job.mair, 'mair'),
      required(job.vttbr, 'vttbr'),
    ]
    const words = [...header, BigInt(job.probes.length)]
    for (const probe of job.probes) {
      if (probe.pan === true) throw new Error('AT S12E1 has no PAN form')
      words.push(probe.address, BigInt((probe.el0 === true ? 2 : 0) + (probe.write ? 1 : 0)))
    }
    return wordsToBytes(words)
  }
  if (job.regime === 'stage2') {
    const vttbr = required(job.vttbr, 'vttbr')
    const vtcr = required(job.vtcr, 'vtcr')
    header = [PARAMS_MAGIC, 2n, vttbr, vtcr, job.hcr ?? HCR_EL2_STAGE2, 0n, 0n, 0n, 0n]
  } else {
    const ttbr0 = required(job.ttbr0, 'ttbr0')
    const tcr = required(job.tcr, 'tcr')
    const mair = required(job.mair, 'mair')
    header = [PARAMS_MAGIC, 1n, 0n, 0n, job.hcr ?? HCR_EL2_STAGE1, ttbr0, tcr, mair, job.sctlr ?? SCTLR_EL2_MCI]
  }
  const words = [...header, BigInt(job.probes.length)]
  for (const probe of job.probes) {
    if (probe.address < 0n || probe.address >= 1n << 63n) throw new Error(`probe address 0x${probe.address.toString(16)} must be below 2^63 (bit 63 marks a write probe)`)
    words.push(probe.address | (probe.write ? 1n << 63n : 0n))
  }
  return wordsToBytes(words)
}

function wordsToBytes(words: bigint[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 8)
  const view = new DataView(bytes.buffer)
  words.forEach((word, i) => {
    if (word < 0n || word >= 1n << 64n) throw new Error(`parameter word ${i} (0x${word.toString(16)}) is not a u64`)
    view.setBigUint64(i * 8, word, true)
  })
  return bytes
}

function required(value: bigint | undefined, name: string): bigint {
  if (value === undefined) throw new Error(`a job of this regime needs ${name}`)
  return value
}

function checkImages(images: QemuJob['images']): void {
  const reserved = [
    {name: "QEMU's device tree", ...DTB_RANGE},
    {name: 'the probe program and parameter block', ...PROGRAM_RANGE},
  ]
  const sorted = [...images].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
  sorted.forEach((image, i) => {
    const start = image.address
    const end = start + BigInt(image.data.length)
    const where = `image 0x${start.toString(16)}-0x${end.toString(16)}`
    if (image.data.length === 0) throw new Error(`${where} is empty`)
    if (start < RAM_RANGE.start || end > RAM_RANGE.end) throw new Error(`${where} is outside QEMU virt's RAM 0x40000000-0x80000000`)
    for (const r of reserved) {
      if (start < r.end && end > r.start) throw new Error(`${where} overlaps ${r.name} (0x${r.start.toString(16)}-0x${r.end.toString(16)})`)
    }
    const next = sorted[i + 1]
    if (next !== undefined && next.address < end) throw new Error(`${where} overlaps the image at 0x${next.address.toString(16)}`)
  })
}

/** The command line runQemu uses, for a program, a parameter file and image files. */
export function qemuArgs(elf: string, paramsFile: string, images: Array<{address: bigint; file: string}>): string[] {
  return [
    '-machine',
    'virt,virtualization=on',
    '-cpu',
    QEMU_CPU,
    '-m',
    '1G',
    '-nographic',
    '-nic',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-semihosting-config',
    'enable=on,target=native',
    '-kernel',
    elf,
    '-device',
    `loader,file=${paramsFile},addr=0x${PARAMS_ADDRESS.toString(16)},force-raw=on`,
    ...images.flatMap((image) => ['-device', `loader,file=${image.file},addr=0x${image.address.toString(16)},force-raw=on`]),
  ]
}

/**
 * Runs one job: one QEMU boot, every probe translated in order. Returns one PAR_EL1 per probe.
 * Throws with QEMU's output when the program reports an exception or error, the output does not
 * hold exactly one PAR per probe and "DONE <N>", QEMU exits non-zero, or the timeout passes.
 */
export async function runQemu(job: QemuJob, options: RunOptions = {}): Promise<bigint[]> {
  checkImages(job.images)
  paramBlock(job)
  return runProgram(await buildProbeProgram(), job, options)
}

/**
 * runQemu with another program than el2/probe.S: one that reads the same parameter block and prints
 * the same lines (the export test's stub, which installs the tables with the exported routine).
 */
export async function runProgram(elf: string, job: QemuJob, options: RunOptions = {}): Promise<bigint[]> {
  checkImages(job.images)
  const params = paramBlock(job)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hvmem-qemu-'))
  try {
    const paramsFile = path.join(dir, 'params.bin')
    await writeFile(paramsFile, params)
    const images = await Promise.all(
      job.images.map(async (image, i) => {
        const file = path.join(dir, `img${i}.bin`)
        await writeFile(file, image.data)
        return {address: image.address, file}
      }),
    )
    const args = qemuArgs(elf, paramsFile, images)
    const result = await spawnQemu(args, options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    return parseOutput(result, job.probes.length, args)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

interface QemuResult {
  stdout: string
  stderr: string
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
}

function spawnQemu(args: string[], timeoutMs: number): Promise<QemuResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU, args, {stdio: ['ignore', 'pipe', 'pipe']})
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`cannot start ${QEMU}: ${error.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({stdout: Buffer.concat(stdout).toString('latin1'), stderr: Buffer.concat(stderr).toString('latin1'), code, signal, timedOut})
    })
  })
}

const PAR_LINE = /^[0-9a-f]{16}$/

function parseOutput(result: QemuResult, count: number, args: string[]): bigint[] {
  const lines = result.stdout.split('\n').map((line) => line.replace(/\r$/, ''))
  const fail = (what: string): never => {
    const tail = (text: string): string => (text.length > 4000 ? `...${text.slice(-4000)}` : text)
    throw new Error(
      `QEMU probe run failed: ${what}\n` +
        `exit: ${result.timedOut ? 'killed after timeout' : result.signal !== null ? `signal ${result.signal}` : `status ${result.code}`}\n` +
        `command: ${QEMU} ${args.join(' ')}\n` +
        `--- serial output ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`,
    )
  }
  const problem = lines.find((line) => line.startsWith('EXC ') || line.startsWith('ERR '))
  if (problem !== undefined) fail(`the probe program reported "${problem}"`)
  if (result.timedOut) fail('timed out')
  const pars: bigint[] = []
  let done: string | undefined
  for (const line of lines) {
    if (line === '' && done !== undefined) continue
    if (done !== undefined) fail(`unexpected output after "${done}": "${line}"`)
    if (PAR_LINE.test(line)) pars.push(BigInt(`0x${line}`))
    else if (line.startsWith('DONE ')) done = line
    else if (line !== '') fail(`unexpected output line "${line}"`)
  }
  if (done === undefined) fail('no "DONE" line')
  if (done !== `DONE ${count}`) fail(`"${done}" but ${count} probes were sent`)
  if (pars.length !== count) fail(`${pars.length} PAR lines for ${count} probes`)
  if (result.code !== 0) fail('QEMU exited with a non-zero status')
  return pars
}
