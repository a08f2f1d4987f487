/**
 * Conformance end to end: tables built by the real hvmem binary, written out with `snapshot export
 * --raw`, installed with the registers `snapshot export --json` gives, and walked by QEMU; `translate --json` (in a batch)
 * must give the same PAR_EL1 as QEMU. Also: the sprint plan's stage-1 encoding installed in a stage-2
 * table faults on reads, in hvmem's walk and on QEMU alike.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ExportJson} from '../../src/commands/snapshot/export.js'
import type {TranslateJson} from '../../src/commands/translate.js'
import type {RegimeName} from '../../src/core/descriptor.js'
import {loadSnapshot} from '../../src/snapshot/store.js'
import {hvmem, hvmemJson, scratch} from '../cli/run.js'
import {compare, describeDisagreement, merge, type Outcome} from './compare.js'
import {describeDeviations, PROGRAM_RANGE, qemuAvailable, type QemuJob, runQemu, UART_RANGE} from './qemu.js'
import {Random, chooseProbes} from './scenarios.js'

const required = process.env.CI === 'true'
const BLOCK = 0x20_0000n
const GIB = 0x4000_0000n
const SCENARIOS_PER_REGIME = 4

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => ({dir, cleanup} = await scratch()))
afterAll(async () => cleanup())

async function ok(snap: string, args: string[]): Promise<void> {
  const r = await hvmem(dir, [...args, '-s', snap])
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
}

/** The QEMU job from what the CLI says: the exported image and the registers `snapshot export --json` gives for it. */
async function cliJob(snap: string, image: string, regime: RegimeName): Promise<Omit<QemuJob, 'probes'>> {
  const exported = await hvmemJson<ExportJson>(dir, ['snapshot', 'export', '--raw', image, '-s', snap])
  expect(exported.code).toBe(0)
  const reg = (name: string): bigint => BigInt(exported.json.registers![name]!)
  const images = [{address: BigInt(exported.json.from), data: new Uint8Array(await readFile(image))}]
  return regime === 'stage2' ? {regime, images, vttbr: reg('VTTBR_EL2'), vtcr: reg('VTCR_EL2')} : {regime, images, ttbr0: reg('TTBR0_EL2'), tcr: reg('TCR_EL2'), mair: reg('MAIR_EL2')}
}

describe.skipIf(!qemuAvailable() && !required).each(['stage2', 'stage1'] as RegimeName[])('conformance through the CLI, %s', (regime) => {
  // One case a scenario (about a dozen short CLI processes and two QEMU runs), then the totals.
  const total: Outcome = {compared: 0, disagreements: [], results: new Map(), deviations: new Map()}
  let cliChecked = 0
  it.each(Array.from({length: SCENARIOS_PER_REGIME}, (_, n) => n))('scenario %i: tables built by map region and exported raw translate on QEMU as translate --json says', async (n) => {
    const r = new Random(1000 + n + (regime === 'stage1' ? 500 : 0))
    const snap = join(dir, `${regime}-${n}.snap`)
    await ok(snap, ['heap', 'init'])
    const first = ['--regime', regime, '--l2-budget', '64']
    if (regime === 'stage1') {
      await ok(snap, ['map', 'region', `0x${PROGRAM_RANGE.start.toString(16)}`, `${PROGRAM_RANGE.end - PROGRAM_RANGE.start}`, ...first])
      await ok(snap, ['map', 'region', `0x${UART_RANGE.start.toString(16)}`, '2M', '--attr', 'device'])
    }
    for (let i = 0; i < 4; i++) {
      const ipa = r.big(512n) * GIB + r.big(512n) * BLOCK - (r.chance(0.3) ? BLOCK : 0n)
      const size = BigInt(1 + r.int(8)) * BLOCK
      // a refused map (conflict, or past the top) is fine: exit 2 or 6, snapshot unchanged
      await hvmem(dir, [
        'map',
        'region',
        `0x${ipa.toString(16)}`,
        `0x${size.toString(16)}`,
        '--attr',
        r.pick(['normal', 'device', 'readonly']),
        ...(regime === 'stage2' && i === 0 ? first : []),
        '-s',
        snap,
      ])
    }
    const job = await cliJob(snap, join(dir, `${regime}-${n}.bin`), regime)
    const machine = await loadSnapshot(snap)
    const mapper = machine.mapper!
    const probes = chooseProbes({name: '', regime, machine, mapper, probes: []}, r, 60)
    const outcome = await compare(`${regime} CLI #${n}`, machine.memory, mapper, job, probes)
    merge(total, outcome)
    expect(outcome.disagreements.map(describeDisagreement)).toEqual([])
    // and the CLI's own translate says what the walk just compared with QEMU said (four probes, one batch process)
    const checked = probes.slice(0, 4)
    const script = checked.map((p) => `translate 0x${p.address.toString(16)}${p.write ? ' --write' : ''}\n`).join('')
    const batch = await hvmem(dir, ['batch', '--json', '-s', snap], {}, script)
    expect(batch.code, batch.stderr).toBe(0)
    const lines = batch.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as {result?: TranslateJson})
    for (const [i, probe] of checked.entries()) {
      expect(BigInt(lines[i]!.result!.par), `translate ${probe.address.toString(16)}`).toBe(outcome.hvmem[i])
      cliChecked++
    }
  })

  it(`all ${SCENARIOS_PER_REGIME} scenarios together`, () => {
    console.log(
      `conformance via CLI ${regime}: ${SCENARIOS_PER_REGIME} scenarios, ${total.compared} addresses compared, ${total.disagreements.length} disagreements, ${describeDeviations(total.deviations)}, ${cliChecked} translate --json runs checked against hvmem's in-process walk`,
    )
    expect(total.disagreements.map(describeDisagreement)).toEqual([])
    expect(total.compared).toBeGreaterThan(100)
  })
})

describe.skipIf(!qemuAvailable() && !required)('a deliberately wrong encoding', () => {
  it("the plan's stage-1 0x405 installed as a stage-2 block: hvmem's translate and QEMU agree reads fault", async () => {
    const snap = join(dir, 'wrong.snap')
    await ok(snap, ['heap', 'init'])
    await ok(snap, ['map', 'region', '0x4000_0000', '4M'])
    // L1 at 0x41000000, its L2 table at 0x41001000; L2[1] maps 0x40200000: overwrite it with the plan's encoding
    await ok(snap, ['mem', 'write', '0x4100_1008', '0x4020_0405'])
    const wrong = await hvmemJson<TranslateJson>(dir, ['translate', '0x4020_0000', '-s', snap])
    expect(wrong.json.fault).toEqual({kind: 'permission', level: 2, stage: 2, fsc: '0x0e', reason: 'read is not allowed (none)'})
    expect(wrong.json.par).toBe('0xa1d')
    const right = await hvmemJson<TranslateJson>(dir, ['translate', '0x4000_0000', '-s', snap])
    expect(right.json.par).toBe('0xff00000040000b80')
    const job = await cliJob(snap, join(dir, 'wrong.bin'), 'stage2')
    const pars = await runQemu({
      ...job,
      probes: [
        {address: 0x4020_0000n, write: false},
        {address: 0x4000_0000n, write: false},
      ],
    })
    expect(pars).toEqual([0xa1dn, 0xff00000040000b80n])
  })
})
