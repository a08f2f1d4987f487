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
