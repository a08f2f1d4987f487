/**
 * translate --regime el1 --stage2 from the command line (in-process): a guest's stage-1 tables in
 * IPA space under the snapshot's stage-2 mapper, or --vttbr/--vtcr; both walks in the text and in
 * --json; a stage-2 fault on the output IPA and one on a stage-1 table fetch (S1PTW); the refusals.
 */
import {dirname, join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {TranslateJson} from '../../src/commands/translate.js'
import {expectOkInProcess, expectOkJsonInProcess, runInProcess} from './inprocess.js'
import {scratch} from './run.js'

let snap = ''
let cleanup: () => Promise<void> = async () => undefined

const run = (...args: string[]) => runInProcess([...args, '-s', snap])
const ok = (...args: string[]): Promise<string> => expectOkInProcess(dirname(snap), ...args, '-s', snap)
const okJson = <T>(...args: string[]): Promise<T> => expectOkJsonInProcess<T>(dirname(snap), ...args, '-s', snap)

const EL1 = ['--ttbr0', '0x42000000', '--tcr', '0x280190019', '--stage2']

beforeAll(async () => {
  const s = await scratch()
  snap = join(s.dir, 'two-stage.snap')
  cleanup = s.cleanup
  await ok('heap', 'init')
  // stage 2: IPA 0x4000_0000-0x4400_0000 identity, Normal WB, in 2M blocks (tables at 0x4100_0000, 0x4100_1000)
  await ok('map', 'region', '0x4000_0000', '64M')
  for (const [address, value] of [
    ['0x42000008', '0x42001003'], // stage 1 (at IPA = PA): L1[1] -> L2
    ['0x42001000', '0x42002003'], // L2[0] -> L3
    ['0x42002000', '0x4300074f'], // L3[0]: IPA 0x4300_0000, AP 01, AttrIndx 3 (Normal WB), IS, AF
    ['0x42002008', '0x5000074f'], // L3[1]: IPA 0x5000_0000, which stage 2 does not map
  ])
    await ok('mem', 'write', address, value)
})
afterAll(() => cleanup())

describe('translate --stage2', () => {
  it('shows both walks and the combined result', async () => {
    expect((await ok('translate', '0x4000_0010', ...EL1)).trimEnd().split('\n')).toEqual([
      'Two-stage (EL1&0, HCR_EL2.VM) walk of VA 0x40000010 for EL1 read',
      'Stage 1: TTBR0_EL1 0x42000000: 4K granule, start level 1, 39-bit VA from 0x0, 40-bit PA',
      '  L1[1]     in IPA 0x42000000 (PA 0x42000000): 0x0000000042001003  table',
      '  L2[0]     in IPA 0x42001000 (PA 0x42001000): 0x0000000042002003  table',
      '  L3[0]     in IPA 0x42002000 (PA 0x42002000): 0x000000004300074f  page',
      '  -> IPA 0x43000010  Normal-WB IS (4K page at L3)',
      'Stage 2: VTTBR_EL2 0x41000000 (VTCR_EL2 0x80023559: 4K granule, start level 1, 39-bit input, 40-bit PA)',
      '  L1[1]     in 0x41000000: 0x0000000041001003  table',
      '  L2[24]    in 0x41001000: 0x00000000430007fd  block',
      '  -> PA 0x43000010  Normal-WB IS RW (2M block at L2)',
      '-> 0x43000010  Normal-WB IS RW-  (both stages combined; 4K mapped alike)',
      'PAR_EL1 0xff00000043000b80',
    ])
  })

  it('gives both walks in --json, with --vttbr/--vtcr as well as the mapper', async () => {
    const j = await okJson<TranslateJson>('translate', '0x4000_1010', ...EL1, '--write', '--el0')
    expect(j.fault).toMatchObject({kind: 'translation', level: 2, stage: 2, fsc: '0x06'})
    expect(j.par).toBe('0xa0d')
    expect(j.twoStage?.stage1.output?.address).toBe('0x50000010')
    expect(j.twoStage?.tableFetches.map((f) => [f.level, f.ipa, f.pa])).toEqual([
      [1, '0x42000000', '0x42000000'],
      [2, '0x42001000', '0x42001000'],
      [3, '0x42002000', '0x42002000'],
    ])
    expect(j.twoStage?.stage2?.steps.map((s) => s.descriptor)).toEqual(['0x41001003', '0x0'])
    expect(j.twoStage?.stage2Walk.registers).toMatchObject({VTTBR_EL2: '0x41000000', VTCR_EL2: '0x80023559'})
    const foreign = await okJson<TranslateJson>('translate', '0x4000_0010', ...EL1, '--vttbr', '0x0005000041000000', '--vtcr', '0x80023559')
    expect(foreign.par).toBe('0xff00000043000b80')
    expect(foreign.twoStage?.stage2Walk.rootRegister).toMatchObject({vmid: 5})
  })

  it('reports a stage-2 fault on a stage-1 table fetch as S1PTW', async () => {
    await ok('map', 'unmap', '0x4200_2000', '4K')
    const text = (await ok('translate', '0x4000_0010', ...EL1)).trimEnd().split('\n')
    expect(text.slice(4)).toEqual([
      '  stage 2 of the level-3 table at IPA 0x42002000:',
      '    L1[1]     in 0x41000000: 0x0000000041001003  table',
      '    L2[16]    in 0x41001000: 0x0000000041002003  table',
      '    L3[2]     in 0x41002000: 0x0000000000000000  invalid',
      '-> translation fault, level 3, stage 2 on the stage-1 table walk (S1PTW) (FSC 0x07): the stage-1 level-3 table at IPA 0x42002000: L3[2] is not valid',
      'PAR_EL1 0xb0f',
    ])
    const j = await okJson<TranslateJson>('translate', '0x4000_0010', ...EL1)
    expect(j.fault).toMatchObject({s1ptw: true, stage: 2, level: 3})
    expect(j.twoStage?.tableFetches.at(-1)?.pa).toBeNull()
    expect(j.twoStage?.stage2).toBeNull()
  })

  it.each([
    [['translate', '0x1000', '--stage2'], '--stage2 is for --regime el1 (an EL1&0 walk)'],
    [['translate', '0x1000', '--ttbr0', '0x42000000', '--tcr', '0x280190019', '--ptw'], '--ptw (HCR_EL2.PTW) is for a two-stage walk: pass --stage2 too'],
    [['translate', '0x1000', ...EL1, '--pan'], '--pan does not apply to --stage2: AT S12E1R/W has no PAN form'],
    [
      ['translate', '0x1000', ...EL1, '--vtcr', '0x80023559'],
      "--vtcr describes the stage-2 tables at --vttbr; pass --vttbr too (without it the snapshot's stage-2 mapper is used, with its own settings)",
    ],
    [['translate', '0x1000', '--ttbr0', '0x42000000', '--tcr', '0x280190019', '--vttbr', '0x41000000'], '--vttbr is not for --regime el1, whose tables are at --ttbr0 and --ttbr1'],
  ])('refuses %j', async (args, message) => {
    const r = await run(...args)
    expect(r.code).toBe(2)
    expect(r.stderr.trim()).toBe(`hvmem: ${message}`)
  })
})
