/**
 * Importing whole RAM images (no free tail: a snapshot without a heap) and adopting tables of another
 * geometry by their control register (--vtcr / --tcr), or refusing them, naming why.
 */
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runInProcess} from './inprocess.js'

describe('snapshot import of whole RAM images and --adopt by --vtcr/--tcr', () => {
  let dir = ''
  const at = (name: string): string => path.join(dir, name)
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hvmem-import-full-'))
  })
  afterAll(async () => rm(dir, {recursive: true, force: true}))

  it('an image with data in its last page makes a snapshot with no heap: tables are read, allocations say there is no heap, the snapshot unchanged', async () => {
    const image = Buffer.alloc(2 << 20)
    image.writeBigUInt64LE(0x4000_0000n | 0x7fdn, 0x1008) // a 4K-granule level-1 root at 0x40001000: L1[1] a 1G block
    image[image.length - 1] = 0xaa
    await writeFile(at('ram.bin'), image)
    const r = await runInProcess(['snapshot', 'import', at('ram.bin'), '--base', '0x4000_0000', '-s', at('full.snap')])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.split('\n')[1]).toBe('RAM 0x40000000-0x40200000 (2M); no heap (the image holds data up to the top of RAM: its tables can be read, nothing allocated)')
    const json = await runInProcess(['snapshot', 'info', '--json', '-s', at('full.snap')])
    expect(JSON.parse(json.stdout)).toMatchObject({version: 4, heap: {size: 0}})
    const t = await runInProcess(['translate', '0x4000_1234', '--root', '0x4000_1000', '--json', '-s', at('full.snap')])
    expect((JSON.parse(t.stdout) as {output: {address: string}}).output.address).toBe('0x40001234')
    const before = await readFile(at('full.snap'))
    for (const args of [
      ['alloc', 'page'],
      ['map', 'region', '0x4000_0000', '2M'],
    ]) {
      const fail = await runInProcess([...args, '-s', at('full.snap')])
      expect(fail.code).toBe(5)
      expect(fail.stderr).toMatch(/^hvmem: the snapshot has no heap \(its RAM is a whole memory image\), so nothing can be allocated for \d+ bytes; [^\n]*\n$/)
    }
    expect((await readFile(at('full.snap'))).equals(before)).toBe(true)
    // --heap-size alone cannot be met without free pages
    const sized = await runInProcess(['snapshot', 'import', at('ram.bin'), '--base', '0x4000_0000', '--heap-size', '1M', '-s', at('sized.snap')])
    expect(sized.code).toBe(2)
    expect(sized.stderr).toContain('leaves no all-zero page at the top of RAM')
  })

  it('--adopt takes over tables of the geometry --vtcr gives (40-bit, two concatenated root tables), and refuses one hvmem does not build', async () => {
    const a = at('a.snap')
    expect((await runInProcess(['heap', 'init', '-s', a])).code).toBe(0)
    expect((await runInProcess(['map', 'region', '0x4000_0000', '64M', '--ipa-bits', '40', '-s', a])).code).toBe(0)
    expect((await runInProcess(['map', 'region', '0x80_4000_0000', '2M', '--pa', '0x4000_0000', '-s', a])).code).toBe(0)
    expect((await runInProcess(['snapshot', 'export', '--raw', at('heap.bin'), '-s', a])).code).toBe(0)
    const b = at('b.snap')
    const adopted = await runInProcess(['snapshot', 'import', at('heap.bin'), '--base', '0x4100_0000', '--adopt', '0x4100_0000', '--vtcr', '0x80023558', '-s', b, '--json'])
    expect(adopted.code, adopted.stderr).toBe(0)
    expect(JSON.parse(adopted.stdout)).toMatchObject({mapper: {regime: 'stage2', root: '0x41000000', registers: {VTCR_EL2: '0x80023558'}}})
    for (const ipa of ['0x4000_1000', '0x80_4000_0010']) {
      const x = JSON.parse((await runInProcess(['translate', ipa, '--json', '-s', a])).stdout) as {output: {address: string} | null}
      const y = JSON.parse((await runInProcess(['translate', ipa, '--json', '-s', b])).stdout) as {output: {address: string} | null}
      expect(x.output?.address).toMatch(/^0x4000[0-9a-f]{4}$/)
      expect(y.output).toEqual(x.output)
    }
    // 4K, 40-bit, SL0 2: a level-0 root, where hvmem's mapper concatenates two level-1 tables
    const refused = await runInProcess(['snapshot', 'import', at('heap.bin'), '--base', '0x4100_0000', '--adopt', '0x4100_0000', '--vtcr', '0x80023598', '-s', at('c.snap')])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toBe(
      'hvmem: cannot adopt the tables VTCR_EL2 0x80023598 describes (4K granule, 40-bit IPA, 40-bit PA, level-0 root): for a 4K granule and 40-bit inputs hvmem\'s mapper builds 4K granule, 40-bit IPA, 40-bit PA, level-1 root of 2 concatenated tables; walk them with "dump tables --root" instead\n',
    )
    const wrong = await runInProcess(['snapshot', 'import', at('heap.bin'), '--base', '0x4100_0000', '--adopt', '0x4100_0000', '--tcr', '0x80823519', '-s', at('d.snap')])
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toContain('--tcr describes stage-1 (EL2) tables')
  })
})
