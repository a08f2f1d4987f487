import {Chalk, type ChalkInstance} from 'chalk'
import Table from 'cli-table3'

/** Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org) to anything non-empty. */
export function colorEnabled(): boolean {
  const noColor = process.env.NO_COLOR
  return process.stdout.isTTY === true && (noColor === undefined || noColor === '')
}

export const color: ChalkInstance = new Chalk({level: colorEnabled() ? 1 : 0})

/** A cli-table3 table with hvmem's look: bold headings, no colour of its own (plain when piped). */
export function table(head: string[], options: {align?: Array<'left' | 'right' | 'center'>} = {}): Table.Table {
  return new Table({
    head: head.map((h) => color.bold(h)),
    style: {head: [], border: [], compact: true},
    ...(options.align ? {colAligns: options.align} : {}),
  })
}

/** chalk's SGR escapes (`ESC [ ... m`), which take no width on a terminal. */
const SGR = /\u001b\[[0-9;]*m/g

/**
 * The text of `table(head)` with `rows` pushed, made in one pass: cli-table3 lays a table out in time
 * quadratic in its rows (10,000 rows take over 10 s, and past about 120,000 its toString overflows
 * the stack), which a table walk of a large tree needs. Cells of printable ASCII with chalk's colours
 * are drawn here, exactly as cli-table3 draws them (a test compares the two); anything else (a
 * newline, other characters, whose width cli-table3 measures) goes to cli-table3.
 */
export function renderTable(head: string[], rows: string[][]): string {
  const plainWidth = (cell: string): number => {
    const plain = cell.replace(SGR, '')
    return /^[\u0020-\u007e]*$/.test(plain) ? plain.length : -1
  }
  const heads = head.map((h) => color.bold(h))
  const widths = heads.map(plainWidth)
  let simple = widths.every((w) => w >= 0)
  for (let r = 0; simple && r < rows.length; r++) {
    const row = rows[r]!
    if (row.length !== head.length) simple = false
    for (let c = 0; simple && c < row.length; c++) {
      const w = plainWidth(row[c]!)
      if (w < 0) simple = false
      else if (w > widths[c]!) widths[c] = w
    }
  }
  if (!simple) {
    const t = table(head)
    for (const row of rows) t.push(row)
    return t.toString()
  }
  const rule = (left: string, middle: string, right: string): string => left + widths.map((w) => '─'.repeat(w + 2)).join(middle) + right
  const line = (cells: string[]): string => `│${cells.map((cell, c) => ` ${cell}${' '.repeat(widths[c]! - plainWidth(cell))} `).join('│')}│`
  const lines = [rule('┌', '┬', '┐'), line(heads)]
  if (rows.length > 0) lines.push(rule('├', '┼', '┤'))
  for (const row of rows) lines.push(line(row))
  lines.push(rule('└', '┴', '┘'))
  return lines.join('\n')
}
