/** The contiguous bit through the real binary: map region --contiguous, dump tables, translate, unmap, a refused map, snapshot verify, a layout. */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {hvmem, scratch, snapshotBytes} from './run.js'

let dir: string
let snap: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, snap, cleanup} = await scratch())
})
afterAll(async () => cleanup())

const hv = (...args: string[]) => hvmem(dir, [...args, '-s', snap])

describe('map region --contiguous', () => {
  it('sets bit 52 on the aligned inner runs only; dump, translate and unmap show and keep it right; a refusal writes nothing', async () => {
    expect((await hv('heap', 'init')).code).toBe(0)
    // 4 pages, two aligned runs of 16 pages, 4 pages
    expect(await hv('map', 'region', '0x7fff_c000', '0x2_8000', '--contiguous')).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Created the stage2 mapper (4K granule, 39-bit IPA, 40-bit PA, level-1 root): root at 0x41000000, VMID 0, L2 budget 4',
        'Mapped 0x7fffc000-0x80024000 (160K) normal: 40 (40x 4K) written, 0 already so; descriptor at 0x7fffc000 0x7fffc7ff',
        'Contiguous bit (52): 2 run(s) (2x 16x 4K = 64K at L3)',
        'New table(s): 0x41001000, 0x41002000, 0x41003000, 0x41004000',
        'VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559',
        '',
      ].join('\n'),
    })
    expect(await hv('dump', 'tables', '--format', 'ranges')).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Stage 2, root 0x41000000: VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559',
        '0x000000007fffc000-0x0000000080000000  16K  L3  RW X Normal-WB IS AF PG',
        '0x0000000080000000-0x0000000080020000 128K  L3  RW X Normal-WB IS AF CON PG',
        '0x0000000080020000-0x0000000080024000  16K  L3  RW X Normal-WB IS AF PG',
        '44 valid entries, 40 leaves, 3 range(s)',
        '',
      ].join('\n'),
    })
    const t = await hv('translate', '0x8000_5123')
    expect(t.code).toBe(0)
    expect(t.stdout).toContain('  L3[5]     in 0x41004000: 0x00100000800057ff  page\n-> 0x80005123  Normal-WB IS RWX  (4K page at L3, contiguous bit set)\nPAR_EL1 0xff00000080005b80\n')
    const json = JSON.parse((await hv('translate', '0x8000_5123', '--json')).stdout) as {output: {contiguous: boolean}}
    expect(json.output.contiguous).toBe(true)

    const before = await snapshotBytes(snap)
    expect(await hv('map', 'region', '0x8000_0000', '128K', '--attr', 'device', '--contiguous')).toEqual({
      code: 6,
      stdout: '',
      stderr:
        'hvmem: cannot map 0x80000000-0x80020000 as device: 0x80000000-0x80020000 is already mapped normal to 0x80000000 (128K, descriptor 0x100000800007ff); unmap it first, or pass --replace\n',
    })
    expect((await snapshotBytes(snap)).equals(before)).toBe(true)

    // one page out of the first run: its 15 others lose the bit, the second run keeps it
    expect((await hv('map', 'unmap', '0x8000_5000', '4K')).code).toBe(0)
    expect((await hv('dump', 'tables', '--format', 'ranges')).stdout).toBe(
      [
        'Stage 2, root 0x41000000: VTTBR_EL2 0x41000000  VTCR_EL2 0x80023559',
        '0x000000007fffc000-0x0000000080005000  36K  L3  RW X Normal-WB IS AF PG',
        '0x0000000080006000-0x0000000080010000  40K  L3  RW X Normal-WB IS AF PG',
        '0x0000000080010000-0x0000000080020000  64K  L3  RW X Normal-WB IS AF CON PG',
        '0x0000000080020000-0x0000000080024000  16K  L3  RW X Normal-WB IS AF PG',
        '43 valid entries, 39 leaves, 4 range(s)',
        '',
      ].join('\n'),
    )

    // snapshot verify: intact, until one entry of the second run loses the bit by hand
    expect((await hv('snapshot', 'verify')).code).toBe(0)
    expect((await hv('mem', 'write', '0x4100_4098', '0x8001_37ff')).code).toBe(0) // L3[19], IPA 0x80013000
    const verify = await hv('snapshot', 'verify', '--json')
    expect(verify.code).toBe(4)
    expect((JSON.parse(verify.stdout) as {tables: {damaged: unknown[]}}).tables.damaged).toEqual([
      {
        kind: 'contiguous',
        level: 3,
        index: 16,
        table: '0x41004000',
        address: '0x41004080',
        ipa: '0x80010000',
        descriptor: '0x00100000800107ff',
        message: 'the contiguous bit (52) on a run of 16 entries (L3[16..31]) that disagree: L3[19] does not have the bit',
      },
    ])
  })

  it('a layout region with contiguous: true; a value other than true or false is refused with its line', async () => {
    const layout = join(dir, 'ram.yaml')
    await writeFile(layout, 'regions:\n  - name: ram\n    ipa: 0x9000_0000\n    size: 32M\n    contiguous: true\n')
    const applied = await hv('map', 'apply', layout)
    expect(applied.code).toBe(0)
    expect(applied.stdout).toContain('  ram: 0x90000000-0x92000000 (32M) normal: 16 (16x 2M) written, 0 already so\n    Contiguous bit (52): 1 run(s) (1x 16x 2M = 32M at L2)\n')
    expect((await hv('map', 'apply', layout)).stdout).toBe(`No change: ${layout} is applied already to ${snap}\n`)

    await writeFile(layout, 'regions:\n  - name: ram\n    ipa: 0x9000_0000\n    size: 32M\n    contiguous: yes\n')
    const before = await snapshotBytes(snap)
    expect(await hv('map', 'apply', layout)).toEqual({code: 2, stdout: '', stderr: `hvmem: ${layout}:5: region ram: contiguous: expected true or false\n`})
    expect((await snapshotBytes(snap)).equals(before)).toBe(true)
  })
})
