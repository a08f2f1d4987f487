/**
 * The entry's choice (src/cli/execute.ts): a line naming one of hvmem's own commands runs without the
 * help and autocomplete plugins; anything that may need them (help, a topic, an unknown word, a flag
 * first, batch and completion) loads them. The behaviour of both paths is what the CLI tests run.
 */
import {describe, expect, it} from 'vitest'

import {ownCommand} from '../../src/cli/execute.js'

const IDS = new Set(['heap:init', 'heap:status', 'alloc:page', 'map:region', 'dump:map', 'dump:tables', 'batch', 'completion', 'snapshot:diff'])

describe('ownCommand', () => {
  it.each([
    [['heap', 'status'], 'heap:status'],
    [['heap', 'init', '2T', '8', '-h'], 'heap:init'],
    [['map', 'region', '0x4000_0000', '1G', '--granularity', 'page'], 'map:region'],
    [['alloc', 'page', 'extra'], 'alloc:page'],
    [['heap:init', '--force'], 'heap:init'],
    [['dump', 'tables', 'map'], 'dump:tables'],
    [['batch', 'script.txt'], 'batch'],
  ])('%j names %s', (argv, id) => {
    expect(ownCommand(argv, IDS)).toBe(id)
  })

  it.each([[[]], [['--version']], [['-h']], [['help']], [['help', 'heap']], [['heap']], [['heap', '--help']], [['hepa', 'status']], [['autocomplete', 'bash']], [['--json', 'heap', 'status']]])(
    '%j names none of them',
    (argv) => {
      expect(ownCommand(argv, IDS)).toBeUndefined()
    },
  )
})
