/** The batch line splitter (src/cli/words.ts): exact cases, and a POSIX shell as the oracle. */
import {execFileSync} from 'node:child_process'
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {ScriptSplitter, WordsError, splitScript, splitWords} from '../../src/cli/words.js'

function failure(line: string): {reason: string; column: number} {
  try {
    splitWords(line)
  } catch (error) {
    expect(error).toBeInstanceOf(WordsError)
    const e = error as WordsError
    return {reason: e.reason, column: e.column}
  }
  throw new Error(`${JSON.stringify(line)} split without an error`)
}

describe('splitWords', () => {
  it('splits on spaces and tabs, any number of them', () => {
    expect(splitWords('alloc page')).toEqual(['alloc', 'page'])
    expect(splitWords('  map\tregion \t 0x4000_0000   2M  ')).toEqual(['map', 'region', '0x4000_0000', '2M'])
    expect(splitWords('')).toEqual([])
    expect(splitWords(' \t ')).toEqual([])
  })

  it('single quotes keep everything literally, backslashes included', () => {
    expect(splitWords(`mem write 0x4100_0000 '0xdead_beef'`)).toEqual(['mem', 'write', '0x4100_0000', '0xdead_beef'])
    expect(splitWords(`a 'b c' 'd\\e' '"'`)).toEqual(['a', 'b c', 'd\\e', '"'])
    expect(splitWords(`''`)).toEqual([''])
    expect(splitWords(`a'b'c`)).toEqual(['abc'])
  })

  it('double quotes: a backslash escapes \\ " $ and ` only, and nothing is expanded', () => {
    expect(splitWords(`"a b"`)).toEqual(['a b'])
    expect(splitWords(`"say \\"hi\\""`)).toEqual(['say "hi"'])
    expect(splitWords(`"\\\\ \\$ \\\` \\n \\a"`)).toEqual(['\\ $ ` \\n \\a'])
    expect(splitWords(`"$HOME" $HOME '$HOME' ~ * \`id\``)).toEqual(['$HOME', '$HOME', '$HOME', '~', '*', '`id`'])
    expect(splitWords(`"" x`)).toEqual(['', 'x'])
  })

  it('a backslash outside quotes keeps the next character', () => {
    expect(splitWords('a\\ b c')).toEqual(['a b', 'c'])
    expect(splitWords('\\#not-a-comment \\; \\\\')).toEqual(['#not-a-comment', ';', '\\'])
    expect(splitWords('\\n')).toEqual(['n'])
  })

  it('# starts a comment only at the start of a word', () => {
    expect(splitWords('# a comment')).toEqual([])
    expect(splitWords('alloc page # one page')).toEqual(['alloc', 'page'])
    expect(splitWords('alloc page #')).toEqual(['alloc', 'page'])
    expect(splitWords('a#b "#c" \'#d\'')).toEqual(['a#b', '#c', '#d'])
    expect(splitWords('x #"unterminated')).toEqual(['x'])
  })

  it('refuses unterminated quotes, a trailing backslash and shell operators, naming the column', () => {
    expect(failure(`map region 'abc`)).toEqual({reason: "unterminated ' quote, opened", column: 12})
    expect(failure(`a "b\\"`)).toEqual({reason: 'unterminated " quote, opened', column: 3})
    expect(failure('alloc page \\')).toEqual({reason: 'a backslash ends the line (continuation lines are not supported)', column: 12})
    expect(failure('alloc page; heap status')).toEqual({reason: 'the shell operator ; is not supported (one command per line; quote it to pass it literally)', column: 11})
    for (const op of ['|', '&', '<', '>', '(', ')']) expect(failure(`a ${op} b`).column).toBe(3)
    expect(splitWords(`'a;b' "c|d"`)).toEqual(['a;b', 'c|d'])
    expect(new WordsError('x', 3).message).toBe('x at column 3')
  })

  // Characters whose meaning the splitter shares with sh: no expansion characters ($ ` * ? [ ~),
  // no operators; `#` and the quotes are in.
  const SHARED = ['a', 'b', '0', 'x', '_', '-', '.', '=', ' ', ' ', '\t', "'", "'", '"', '"', '\\', '\\', '#']

  it('splits like /bin/sh does (random lines of quotes, backslashes, blanks and #)', () => {
    let compared = 0
    const lines = fc.sample(
      fc.array(fc.constantFrom(...SHARED), {maxLength: 24}).map((cs) => cs.join('')),
      {numRuns: 150, seed: 20261124},
    )
    for (const line of lines) {
      let expected: string[] | 'error'
      try {
        const out = execFileSync('sh', ['-c', `eval "set -- $1" && for w in "$@"; do printf '%s\\0' "$w"; done`, 'sh', line], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']})
        expected = out === '' ? [] : out.slice(0, -1).split('\0')
      } catch {
        expected = 'error'
      }
      let actual: string[] | 'error'
      try {
        actual = splitWords(line)
      } catch (error) {
        if (!(error instanceof WordsError)) throw error
        // The one deliberate difference: sh keeps a backslash that ends the line; a batch refuses it.
        if (error.reason.startsWith('a backslash ends the line')) continue
        actual = 'error'
      }
      expect({line, words: actual}).toEqual({line, words: expected})
      compared++
    }
    expect(compared).toBeGreaterThan(100)
  })

  it('quoting any words (single quotes, double quotes or backslashes) and splitting gives them back', () => {
    const word = fc.string({unit: fc.constantFrom('a', 'Z', '0', ' ', '\t', "'", '"', '\\', '#', '$', '`', ';', '|', '(', 'é', '\u0001'), maxLength: 12})
    const style = fc.constantFrom('single', 'double', 'backslash')
    const quote = (w: string, s: string): string => {
      if (s === 'single') return `'${w.replaceAll("'", `'\\''`)}'`
      if (s === 'double') return `"${w.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`
      return w === '' ? "''" : w.replace(/./gsu, (c) => `\\${c}`)
    }
    fc.assert(
      fc.property(fc.array(fc.tuple(word, style), {maxLength: 6}), fc.constantFrom(' ', '\t', '  '), (words, gap) => {
        const line = words.map(([w, s]) => quote(w, s)).join(gap)
        expect(splitWords(line)).toEqual(words.map(([w]) => w))
      }),
      {numRuns: 500},
    )
  })
})

describe('splitScript', () => {
  it('numbers lines from 1, skips blank and comment lines, drops a leading hvmem and a CR', () => {
    const {lines, errors} = splitScript('alloc page\n\n# setup\n  hvmem heap status  \r\nmap region 0x4000_0000 2M # ram\n\t\nhvmem\n')
    expect(errors).toEqual([])
    expect(lines).toEqual([
      {line: 1, text: 'alloc page', words: ['alloc', 'page'], count: 1},
      {line: 4, text: 'hvmem heap status', words: ['heap', 'status'], count: 1},
      {line: 5, text: 'map region 0x4000_0000 2M # ram', words: ['map', 'region', '0x4000_0000', '2M'], count: 1},
    ])
  })

  it('reports every line that cannot be split, with its number', () => {
    const {lines, errors} = splitScript("alloc page\nmem write 'x\nheap status\nalloc page | cat")
    expect(lines.map((l) => l.line)).toEqual([1, 3])
    expect(errors).toEqual([
      {line: 2, text: "mem write 'x", message: "unterminated ' quote, opened at column 11"},
      {line: 4, text: 'alloc page | cat', message: 'the shell operator | is not supported (one command per line; quote it to pass it literally) at column 12'},
    ])
  })

  it('repeated lines (as in 10,000 "alloc page"): one ScriptLine and its count for each run of the same command on consecutive lines', () => {
    const {lines, errors} = splitScript(
      "alloc page\nalloc page\nalloc page\r\nalloc page\n\nalloc page\nalloc  page\nalloc page\nmem write 'x\nmem write 'x\nalloc page\nalloc page -n 2\nalloc page\nalloc page",
    )
    expect(lines.map((l) => [l.line, l.count, l.text, l.words.join(' ')])).toEqual([
      // (a CR does not make another command)
      [1, 4, 'alloc page', 'alloc page'],
      // (a blank line between: another run, numbered after it)
      [6, 1, 'alloc page', 'alloc page'],
      [7, 1, 'alloc  page', 'alloc page'],
      [8, 1, 'alloc page', 'alloc page'],
      [11, 1, 'alloc page', 'alloc page'],
      // (a line that starts with the one before it is not a repeat)
      [12, 1, 'alloc page -n 2', 'alloc page -n 2'],
      [13, 2, 'alloc page', 'alloc page'],
    ])
    expect(errors.map((e) => e.line)).toEqual([9, 10])
    // lines that repeat share one text and one words array
    expect(new Set(lines.filter((l) => l.text === 'alloc page').map((l) => l.words)).size).toBe(1)
  })

  it('runs of repeated lines found in one step give what adding the lines one by one gives (property)', () => {
    const line = fc.constantFrom('alloc page', 'alloc page\r', 'alloc pag', 'alloc page -n 2', 'alloc  page', '', '# note', "mem write 'x", 'heap status', '\uFEFFalloc page')
    fc.assert(
      fc.property(fc.array(fc.tuple(line, fc.integer({min: 1, max: 70})), {maxLength: 10}), fc.boolean(), (runs, finalNewline) => {
        const text = runs.flatMap(([l, n]) => Array<string>(n).fill(l)).join('\n') + (finalNewline ? '\n' : '')
        const oneByOne = new ScriptSplitter()
        const pieces = text.split('\n')
        if (text.endsWith('\n') || text === '') pieces.pop()
        for (const piece of pieces) oneByOne.add(piece)
        expect(splitScript(text)).toEqual({lines: oneByOne.lines, errors: oneByOne.errors})
      }),
      {numRuns: 300},
    )
  })

  it('repeats are added up to the line limit, and the text after them is left', () => {
    const splitter = new ScriptSplitter()
    splitter.add('alloc page')
    const text = `${'alloc page\n'.repeat(100)}heap status\n`
    expect(splitter.addRepeats(text, 0, 50)).toBe(49 * 11)
    expect(splitter.count).toBe(50)
    expect(splitter.lines).toEqual([{line: 1, text: 'alloc page', words: ['alloc', 'page'], count: 50}])
    // at the limit, none; past the run, none
    expect(splitter.addRepeats(text, 49 * 11, 50)).toBe(49 * 11)
    expect(splitter.addRepeats(text, 100 * 11, 1000)).toBe(100 * 11)
    expect(splitter.addRepeats(text, 49 * 11, 1000)).toBe(100 * 11)
    expect(splitter.commands).toBe(101)
  })

  it('a UTF-8 byte order mark starting a line (a script saved on Windows, CRLF too; scripts joined by cat) is dropped', () => {
    const {lines, errors} = splitScript('\uFEFFalloc page\r\n\uFEFFheap status\r\n')
    expect(lines).toEqual([
      {line: 1, text: 'alloc page', words: ['alloc', 'page'], count: 1},
      {line: 2, text: 'heap status', words: ['heap', 'status'], count: 1},
    ])
    expect(errors).toEqual([])
  })

  it('no final newline, only a newline, nothing', () => {
    expect(splitScript('alloc page').lines).toHaveLength(1)
    expect(splitScript('\n').lines).toEqual([])
    expect(splitScript('')).toEqual({lines: [], errors: []})
  })
})
