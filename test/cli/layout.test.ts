/** map apply LAYOUT and map region's attribute flags, in-process: idempotence, --check, errors with file and line, the table-page warning; map apply - (the binary, with the layout on its stdin). */
import {spawnSync} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runInProcessAt} from './inprocess.js'
import {BIN, type Run, hvmem, hvmemEnv, scratch} from './run.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({dir, cleanup} = await scratch())
})
afterAll(async () => cleanup())

const hv = (...args: string[]) => runInProcessAt(dir, args)

const LAYOUT = `# guest RAM around the hypervisor's heap (0x4100_0000, 16M), which holds the tables
mapper:
  regime: stage2
  ipa-bits: 40
regions:
  - name: ram-low
    ipa: 0x4000_0000
    size: 16M
  - name: uart
    ipa: 0x0900_0000
    size: 4K
    attr: device
  - name: shared
    ipa: 0x1_0000_0000
    size: 2M
    pa: 0x8000_0000
    mem: Normal-NC
    sh: OS
    perm: rw
`

describe('map apply', () => {
  it('--check writes nothing; apply maps every region; a second apply changes nothing and writes nothing', async () => {
    await writeFile(join(dir, 'guest.yaml'), LAYOUT)
    expect((await hv('heap', 'init', '-s', 'a.snap')).code).toBe(0)
    const initial = await readFile(join(dir, 'a.snap'))
    const check = await hv('map', 'apply', 'guest.yaml', '--check', '-s', 'a.snap')
    expect(check.code).toBe(0)
    expect(check.stdout).toContain('Mappings: 3 added, 0 removed, 0 changed\n')
    expect(check.stdout).toContain('+ 0x0000000100000000-0x0000000100200000   2M  L2  RW NX Normal-NC OS AF BLK  -> 0x0080000000\n')
    expect((await readFile(join(dir, 'a.snap'))).equals(initial)).toBe(true)

    const applied = await hv('map', 'apply', 'guest.yaml', '-s', 'a.snap')
    expect(applied).toMatchObject({code: 0, stderr: ''})
    expect(applied.stdout).toContain('Applied guest.yaml: 3 region(s)\n')
    expect(applied.stdout).toContain('  uart: 0x9000000-0x9001000 (4K) device: 1 (1x 4K) written, 0 already so\n')
    expect(applied.stdout).toContain('  shared: 0x100000000-0x100200000 -> 0x80000000 (2M) Normal-NC OS RW NX: 1 (1x 2M) written, 0 already so\n')
    const once = await readFile(join(dir, 'a.snap'))

    const again = await hv('map', 'apply', 'guest.yaml', '-s', 'a.snap', '--json')
    expect(again.code).toBe(0)
    const json = JSON.parse(again.stdout) as {
      changed: boolean
      saved: boolean
      regions: Array<{name: string; line: number; descriptor: string; written: number; unchanged: number}>
      diff: {same: boolean}
    }
    expect(json).toMatchObject({changed: false, saved: false, diff: {same: true}})
    expect(json.regions.map((r) => [r.name, r.line, r.descriptor, r.written, r.unchanged])).toEqual([
      ['ram-low', 6, '0x400007fd', 0, 8],
      ['uart', 9, '0x400000090007c7', 0, 1],
      ['shared', 13, '0x400000800006d5', 0, 1],
    ])
    expect((await readFile(join(dir, 'a.snap'))).equals(once)).toBe(true)
  })

  it('all or nothing: an error names the file, the line and the region, and leaves the snapshot as it was', async () => {
    expect((await hv('heap', 'init', '-s', 'b.snap')).code).toBe(0)
    const before = await readFile(join(dir, 'b.snap'))
    const cases: Array<[string, number, string]> = [
      [LAYOUT.replace('    attr: device\n', '    attr: device\n    perm: rwx\n'), 2, 'bad.yaml:9: region uart: Device memory must be execute-never'],
      [LAYOUT.replace('size: 4K', 'size: 4Q'), 2, 'bad.yaml:11: region uart: size: "4Q" is not a number'],
      [LAYOUT.replace('0x0900_0000', '0x4080_0000'), 2, 'bad.yaml:9: region uart: 0x40800000-0x40801000 overlaps region ram-low (line 6, 0x40000000-0x41000000)'],
      [LAYOUT.replace('    pa: 0x8000_0000\n', '    pa: 0x8000_0000\n    colour: red\n'), 2, 'bad.yaml:17: regions[2]: unknown key "colour"'],
      [LAYOUT.replace('ipa-bits: 40', 'ipa-bits: 40\n  l2-budget: 1'), 7, 'bad.yaml:10: region uart: mapping 0x9000000-0x9001000 needs 1 new L2 table(s)'],
      ['regions: [\n', 2, 'bad.yaml:2: not valid YAML'],
    ]
    for (const [text, code, message] of cases) {
      await writeFile(join(dir, 'bad.yaml'), text)
      const r = await hv('map', 'apply', 'bad.yaml', '-s', 'b.snap')
      expect(r.code, message).toBe(code)
      expect(r.stderr, message).toContain(`hvmem: ${message}`)
      expect((await readFile(join(dir, 'b.snap'))).equals(before), message).toBe(true)
    }
  })

  it('in a batch with --keep-going (a checkpoint a line, map apply its own inside): a failing apply is undone whole, the next ones apply and find it applied', async () => {
    expect((await hv('heap', 'init', '-s', 'batch.snap')).code).toBe(0)
    await writeFile(join(dir, 'good.yaml'), LAYOUT)
    await writeFile(join(dir, 'over.yaml'), LAYOUT.replace('ipa-bits: 40', 'ipa-bits: 40\n  l2-budget: 1'))
    await writeFile(join(dir, 'lines.txt'), 'map apply over.yaml\nmap apply good.yaml --check\nmap apply good.yaml\nmap apply good.yaml\nalloc page\n')
    // (the binary: a batch runs its lines through oclif's command table)
    const r = await hvmem(dir, ['batch', 'lines.txt', '--keep-going', '-s', 'batch.snap'])
    expect(r.code).toBe(7)
    expect(r.stderr).toContain('hvmem: line 1 "map apply over.yaml": over.yaml:10: region uart: mapping 0x9000000-0x9001000 needs 1 new L2 table(s)')
    expect(r.stdout).toContain('Mappings: 3 added, 0 removed, 0 changed\n') // line 2: --check, with no trace of line 1
    expect(r.stdout).toContain('Applied good.yaml: 3 region(s)\n')
    expect(r.stdout).toContain('No change: good.yaml is applied already to batch.snap\n')
    // line 1 created the mapper and its tables before it failed: undone whole, so good.yaml's tables are the heap's first six pages, then line 5's page
    expect(r.stdout).toContain('Created the stage2 mapper (4K granule, 40-bit IPA, 40-bit PA, level-1 root of 2 concatenated tables): root at 0x41000000\n')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('0x41006000')
    expect((await hv('map', 'apply', 'good.yaml', '-s', 'batch.snap')).stdout).toBe('No change: good.yaml is applied already to batch.snap\n')
  })

  it("warns when a region maps the mapper's own tables (the README's old first example)", async () => {
    expect((await hv('heap', 'init', '-s', 'c.snap')).code).toBe(0)
    const r = await hv('map', 'region', '0x4000_0000', '1G', '-s', 'c.snap', '--json')
    expect(r.code).toBe(0)
    expect(r.stderr).toBe(
      "hvmem: warning: 0x40000000-0x80000000 maps 1 of the mapper's own table page(s) (0x41000000-0x41001000): the guest can read and rewrite its own stage-2 tables; keep the heap out of the region (docs/layout.md)\n",
    )
    expect((JSON.parse(r.stdout) as {coversTables: string[]}).coversTables).toEqual(['0x41000000'])
  })
})

describe('map apply - (the layout on standard input)', () => {
  it('applies a layout piped on stdin: the output names it "the layout from standard input"; a second apply changes nothing, and --json gives layout "-"', async () => {
    expect((await hv('heap', 'init', '-s', 'in1.snap')).code).toBe(0)
    expect(await hvmem(dir, ['map', 'apply', '-', '-s', 'in1.snap'], {}, LAYOUT)).toEqual({
      code: 0,
      stdout:
        'Created the stage2 mapper (4K granule, 40-bit IPA, 40-bit PA, level-1 root of 2 concatenated tables): root at 0x41000000\n' +
        'Applied the layout from standard input: 3 region(s)\n' +
        '  ram-low: 0x40000000-0x41000000 (16M) normal: 8 (8x 2M) written, 0 already so\n' +
        '  uart: 0x9000000-0x9001000 (4K) device: 1 (1x 4K) written, 0 already so\n' +
        '  shared: 0x100000000-0x100200000 -> 0x80000000 (2M) Normal-NC OS RW NX: 1 (1x 2M) written, 0 already so\n' +
        'VTTBR_EL2 0x41000000  VTCR_EL2 0x80023558\n',
      stderr: '',
    })
    const once = await readFile(join(dir, 'in1.snap'))
    const again = await hvmem(dir, ['map', 'apply', '-', '-s', 'in1.snap', '--json'], {}, LAYOUT)
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({layout: '-', check: false, changed: false, saved: false})
    expect((await readFile(join(dir, 'in1.snap'))).equals(once)).toBe(true)
  })

  it('--check - prints the diff against the layout from standard input and writes nothing', async () => {
    expect((await hv('heap', 'init', '-s', 'in2.snap')).code).toBe(0)
    const before = await readFile(join(dir, 'in2.snap'))
    const r = await hvmem(dir, ['map', 'apply', '-', '--check', '-s', 'in2.snap'], {}, LAYOUT)
    expect({code: r.code, stderr: r.stderr}).toEqual({code: 0, stderr: ''})
    expect(r.stdout.startsWith('--- in2.snap\n+++ in2.snap with the layout from standard input\n')).toBe(true)
    expect(r.stdout).toContain('Mappings: 3 added, 0 removed, 0 changed\n')
    expect((await readFile(join(dir, 'in2.snap'))).equals(before)).toBe(true)
  })

  it('an error in a layout on stdin names standard input and the line, and leaves the snapshot as it was', async () => {
    expect((await hv('heap', 'init', '-s', 'in3.snap')).code).toBe(0)
    const before = await readFile(join(dir, 'in3.snap'))
    const cases: Array<[string, number, string]> = [
      [
        LAYOUT.replace('    attr: device\n', '    attr: device\n    perm: rwx\n'),
        2,
        'standard input:9: region uart: Device memory must be execute-never (a speculative instruction fetch could read a device register); leave x out of the permissions',
      ],
      // (fails after the mapper and ram-low's tables were made: undone whole)
      [
        LAYOUT.replace('ipa-bits: 40', 'ipa-bits: 40\n  l2-budget: 1'),
        7,
        'standard input:10: region uart: mapping 0x9000000-0x9001000 needs 1 new L2 table(s) but 1 of the budget of 1 are in use; the budget is set when the mapper is created (--l2-budget)',
      ],
    ]
    for (const [text, code, message] of cases) {
      expect(await hvmem(dir, ['map', 'apply', '-', '--prune', '-s', 'in3.snap'], {}, text)).toEqual({code, stdout: '', stderr: `hvmem: ${message}\n`})
      expect((await readFile(join(dir, 'in3.snap'))).equals(before), message).toBe(true)
    }
  })

  it('a layout that cannot be read is refused naming it (exit 2): no such file, a directory, a directory or endless input on stdin', async () => {
    expect((await hv('heap', 'init', '-s', 'in5.snap')).code).toBe(0)
    const before = await readFile(join(dir, 'in5.snap'))
    const refused = (stderr: string): Run => ({code: 2, stdout: '', stderr: `hvmem: ${stderr}\n`})
    expect(await hvmem(dir, ['map', 'apply', 'nosuch.yaml', '-s', 'in5.snap'])).toEqual(refused('cannot read the layout "nosuch.yaml": there is no such file'))
    expect(await hvmem(dir, ['map', 'apply', '.', '-s', 'in5.snap'])).toEqual(refused('cannot read the layout ".": it is a directory'))
    // (a shell, for stdin a directory, and a writer that a refusal leaves with a closed pipe)
    const sh = (script: string): Run => {
      const r = spawnSync('sh', ['-c', script, process.execPath, BIN], {cwd: dir, env: hvmemEnv(), encoding: 'utf8'})
      return {code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr}
    }
    expect(sh('"$0" "$1" map apply - -s in5.snap < .')).toEqual(
      refused('cannot read the layout from standard input: it is a directory; redirect a layout file to it, or name the file: hvmem map apply LAYOUT'),
    )
    expect(sh('yes | "$0" "$1" map apply - -s in5.snap')).toEqual(refused('the layout from standard input is larger than 16 MiB (not a layout?); nothing was applied'))
    expect((await readFile(join(dir, 'in5.snap'))).equals(before)).toBe(true)
  })

  it('a batch line "map apply -" is refused (a batch\'s lines never read stdin), and nothing is saved', async () => {
    expect((await hv('heap', 'init', '-s', 'in4.snap')).code).toBe(0)
    const before = await readFile(join(dir, 'in4.snap'))
    await writeFile(join(dir, 'stdin-lines.txt'), 'alloc page\nmap apply -\n')
    expect(await hvmem(dir, ['batch', 'stdin-lines.txt', '-s', 'in4.snap'], {}, LAYOUT)).toEqual({
      code: 2,
      stdout: '0x41000000\n',
      stderr: 'hvmem: line 2 "map apply -": LAYOUT -: a batch\'s lines never read standard input; name the layout file; the batch stopped there and saved nothing\n',
    })
    expect((await readFile(join(dir, 'in4.snap'))).equals(before)).toBe(true)
  })
})

describe('map region attribute flags', () => {
  it('--mem, --sh, --perm and --exec-at give exact descriptors; impossible combinations are refused', async () => {
    expect((await hv('heap', 'init', '-s', 'd.snap')).code).toBe(0)
    const map = async (...args: string[]): Promise<string> => {
      const r = await hv('map', 'region', ...args, '-s', 'd.snap', '--json')
      expect(r.code, r.stderr).toBe(0)
      return (JSON.parse(r.stdout) as {mapped: {descriptor: string}}).mapped.descriptor
    }
    expect(await map('0x0800_0000', '64K', '--attr', 'device', '--mem', 'Device-nGnRnE', '--sh', 'OS')).toBe('0x400000080006c3')
    expect(await map('0x4200_0000', '2M', '--mem', 'Normal-WT', '--perm', 'w')).toBe('0x400000420007a9')
    expect(await map('0x4400_0000', '2M', '--exec-at', 'el0')).toBe('0x200000440007fd')
    const refused = await hv('map', 'region', '0x4600_0000', '2M', '--mem', 'Device-GRE', '--perm', 'rx', '-s', 'd.snap')
    expect(refused).toMatchObject({code: 2, stderr: expect.stringContaining('Device memory must be execute-never') as string})
  })
})
