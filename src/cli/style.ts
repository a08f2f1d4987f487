import {Chalk, type ChalkInstance} from 'chalk'
import Table from 'cli-table3'

import {stdoutIsTerminal} from './output.js'

/** What --color asks for: auto (the environment and the terminal decide), always or never. */
export const COLOR_MODES = ['auto', 'always', 'never'] as const
export type ColorMode = (typeof COLOR_MODES)[number]

/**
 * Whether to colour standard output. --color always or never decides; with auto (the default), in
 * this order: FORCE_COLOR set to anything non-empty colours (even piped) unless it is 0 or false,
 * which turns colour off (as Node's own FORCE_COLOR does, it wins over NO_COLOR); NO_COLOR set to
 * anything non-empty turns it off (https://no-color.org); so does TERM=dumb; otherwise colour only
 * for a terminal. docs/behaviour.md, "Colour".
 */
export function colorEnabled(mode: ColorMode = 'auto', env: NodeJS.ProcessEnv = process.env, isTTY: boolean = stdoutIsTerminal()): boolean {
  if (mode !== 'auto') return mode === 'always'
  const force = env.FORCE_COLOR
  if (force !== undefined && force !== '') return !/^(0|false)$/i.test(force)
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.TERM === 'dumb') return false
  return isTTY
}

/**
 * The colours of all output: chalk's 16 colours or none, set by setColorMode once --color is parsed
 * (every command has it, `auto` by default; a batch's lines follow the batch's): none before, as no
 * output is made before (and asking then whether stdout is a terminal would make process.stdout
 * before the entry has chosen how to write it, src/cli/output.ts).
 */
export const color: ChalkInstance = new Chalk({level: 0})

/** Applies --color: `color` (and the tables' bold headings made after) colour or not. */
export function setColorMode(mode: ColorMode): void {
  color.level = colorEnabled(mode) ? 1 : 0
}

/** chalk's SGR escapes (`ESC [ ... m`), which take no width on a terminal. */
const SGR = /\u001b\[[0-9;]*m/g

/**
 * The width of the terminal standard output goes to, for output that can be as wide as it likes (the
 * strips of `dump map`); undefined when standard output is not a terminal (piped output stays the same
 * wherever it runs).
 */
export function terminalColumns(stdout: {isTTY?: boolean; columns?: number} = stdoutIsTerminal() ? process.stdout : {}): number | undefined {
  return stdout.isTTY === true && typeof stdout.columns === 'number' && stdout.columns > 0 ? stdout.columns : undefined
}

/** `items` joined by two spaces, on as many lines as keep each within `columns` (when given). */
export function wrapItems(items: readonly string[], columns: number | undefined): string {
  if (columns === undefined) return items.join('  ')
  const lines: string[] = []
  let line = ''
  let width = 0
  for (const item of items) {
    const w = item.replace(SGR, '').length
    if (line !== '' && width + 2 + w > columns) {
      lines.push(line)
      line = ''
      width = 0
    }
    line += line === '' ? item : `  ${item}`
    width += (width === 0 ? 0 : 2) + w
  }
  if (line !== '') lines.push(line)
  return lines.join('\n')
}

/** A cli-table3 table with hvmem's look: bold headings, no colour of its own (plain when piped). renderTable's fallback: commands draw their tables with renderTable. */
export function table(head: string[], options: {align?: Array<'left' | 'right' | 'center'>} = {}): Table.Table {
  return new Table({
    head: head.map((h) => color.bold(h)),
    style: {head: [], border: [], compact: true},
    ...(options.align ? {colAligns: options.align} : {}),
  })
}

/**
 * The text of `table(head, options)` with `rows` pushed, made in one pass: cli-table3 lays a table
 * out in time quadratic in its rows (10,000 rows take over 10 s, and past about 120,000 its toString
 * overflows the stack), which a table walk of a large tree needs, and a small table drawn once is
 * most of what a start-up spends on output (cli-table3's code runs once, not compiled: 4 ms of
 * `heap status`). Cells of printable ASCII with chalk's colours, aligned left or right, are drawn
 * here, exactly as cli-table3 draws them (a test compares the two); anything else (a newline, other
 * characters, whose width cli-table3 measures, a centred column) goes to cli-table3.
 */
export function renderTable(head: string[], rows: string[][], options: {align?: Array<'left' | 'right' | 'center'>} = {}): string {
  const align = options.align ?? []
  const plainWidth = (cell: string): number => {
    const plain = cell.replace(SGR, '')
    return /^[\u0020-\u007e]*$/.test(plain) ? plain.length : -1
  }
  const heads = head.map((h) => color.bold(h))
  const widths = heads.map(plainWidth)
  let simple = widths.every((w) => w >= 0) && !align.includes('center')
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
    const t = table(head, options)
    for (const row of rows) t.push(row)
    return t.toString()
  }
  const rule = (left: string, middle: string, right: string): string => left + widths.map((w) => '─'.repeat(w + 2)).join(middle) + right
  const padded = (cell: string, c: number): string => {
    const pad = ' '.repeat(widths[c]! - plainWidth(cell))
    return align[c] === 'right' ? ` ${pad}${cell} ` : ` ${cell}${pad} `
  }
  const line = (cells: string[]): string => `│${cells.map(padded).join('│')}│`
  const lines = [rule('┌', '┬', '┐'), line(heads)]
  if (rows.length > 0) lines.push(rule('├', '┼', '┤'))
  for (const row of rows) lines.push(line(row))
  lines.push(rule('└', '┴', '┘'))
  return lines.join('\n')
}
