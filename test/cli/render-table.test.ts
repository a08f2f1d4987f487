import {Chalk} from 'chalk'
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {renderTable, table} from '../../src/cli/style.js'

const colours = new Chalk({level: 1})
const paint = [(s: string): string => s, colours.red, colours.dim, colours.bold, colours.cyan]

/** A cell: printable ASCII, sometimes coloured (as dump tables colours "reserved" and problems). */
const cell = fc
  .tuple(fc.string({unit: fc.integer({min: 0x20, max: 0x7e}).map((c) => String.fromCharCode(c)), maxLength: 24}), fc.integer({min: 0, max: paint.length - 1}))
  .map(([text, p]) => paint[p]!(text))

type Align = 'left' | 'right' | 'center'

function viaCliTable3(head: string[], rows: string[][], align?: Align[]): string {
  const t = table(head, align === undefined ? {} : {align})
  for (const row of rows) t.push(row)
  return t.toString()
}

describe('renderTable', () => {
  it('draws exactly what cli-table3 draws, for random ASCII and coloured cells', () => {
    fc.assert(
      fc.property(
        fc
          .integer({min: 1, max: 6})
          .chain((columns) => fc.tuple(fc.array(cell, {minLength: columns, maxLength: columns}), fc.array(fc.array(cell, {minLength: columns, maxLength: columns}), {maxLength: 12}))),
        ([head, rows]) => {
          expect(renderTable(head, rows)).toBe(viaCliTable3(head, rows))
        },
      ),
      {numRuns: 300},
    )
  })

  it('aligns columns left or right as cli-table3 does (heads too), and leaves a centred one to it', () => {
    const alignment = fc.constantFrom<Align>('left', 'right', 'center')
    fc.assert(
      fc.property(
        fc
          .integer({min: 1, max: 5})
          .chain((columns) =>
            fc.tuple(
              fc.array(cell, {minLength: columns, maxLength: columns}),
              fc.array(fc.array(cell, {minLength: columns, maxLength: columns}), {maxLength: 8}),
              fc.array(alignment, {minLength: columns, maxLength: columns}),
            ),
          ),
        ([head, rows, align]) => {
          expect(renderTable(head, rows, {align})).toBe(viaCliTable3(head, rows, align))
        },
      ),
      {numRuns: 300},
    )
    // heap status's: the values right-aligned under a right-aligned heading
    expect(
      renderTable(
        ['heap', 'value'],
        [
          ['start', '0x41000000'],
          ['allocated', '0'],
        ],
        {align: ['left', 'right']},
      ).split('\n'),
    ).toEqual(['┌───────────┬────────────┐', '│ heap      │      value │', '├───────────┼────────────┤', '│ start     │ 0x41000000 │', '│ allocated │          0 │', '└───────────┴────────────┘'])
  })

  it('leaves other characters and ragged rows to cli-table3', () => {
    for (const rows of [[['wide 表', 'x']], [['a\nb', 'x']], [['only one']]]) expect(renderTable(['h1', 'h2'], rows)).toBe(viaCliTable3(['h1', 'h2'], rows))
  })

  // Not timed (the suite runs on busy machines): cli-table3's layout, quadratic in its rows, overflows
  // the stack past about 120,000 rows, so 200,000 rows drawn whole are drawn by the one-pass renderer.
  it('draws 200,000 rows in one pass (cli-table3 would overflow the stack)', () => {
    const rows = Array.from({length: 200_000}, (_, i) => [`L3[${i % 512}]`, `0x${i.toString(16)}`, 'page'])
    const text = renderTable(['entry', 'IPA', 'type'], rows)
    const lines = text.split('\n')
    expect(lines).toHaveLength(200_000 + 4)
    expect(lines.at(-2)).toContain(`0x${(200_000 - 1).toString(16)}`)
  })
})
