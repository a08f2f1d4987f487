/**
 * Splitting a batch line into words as a POSIX shell splits simple words (XCU 2.2, Quoting; 2.3,
 * Token Recognition), without any expansion: what `hvmem batch` reads is what a shell script would
 * pass to hvmem, minus the shell.
 *
 * - Words are separated by spaces and tabs.
 * - A backslash outside quotes keeps the next character literally.
 * - Single quotes keep everything up to the next single quote literally (no escapes inside).
 * - Double quotes keep everything literally up to the next unescaped double quote, except that a
 *   backslash escapes `\`, `"`, `$` and a backquote there (before anything else it stays a backslash).
 * - `#` at the start of a word starts a comment that runs to the end of the line (`a#b` is one word).
 * - Nothing is expanded: `$HOME`, `*`, `~` and backquotes are kept as written.
 * - The shell's operators (`|`, `&`, `;`, `<`, `>`, `(`, `)`) are refused outside quotes: a batch runs
 *   one command per line, and quoting passes them literally.
 *
 * Written by hand: the npm splitters either expand (`shell-quote`: $VAR, operators), add Bash syntax
 * (`shlex`: $'...' strings) or ignore comments, and none reports where an unterminated quote began.
 */

/** A line that cannot be split: `column` (1-based) is where the problem starts. */
export class WordsError extends Error {
  constructor(
    readonly reason: string,
    readonly column: number,
  ) {
    super(`${reason} at column ${column}`)
    this.name = 'WordsError'
  }
}

const NOT_PLAIN = /[\\'"#|&;<>()]/
const BLANKS = /[ \t]+/
const OPERATORS = new Set(['|', '&', ';', '<', '>', '(', ')'])
const DOUBLE_QUOTE_ESCAPES = new Set(['\\', '"', '$', '`'])

/** The words of one line (which holds no newline). Throws WordsError for an unterminated quote, a trailing backslash or an operator. */
export function splitWords(line: string): string[] {
  // Most lines are plain words: split them at once.
  if (!NOT_PLAIN.test(line)) return line.split(BLANKS).filter((w) => w !== '')
  const words: string[] = []
  let word = ''
  let inWord = false
  let i = 0
  const n = line.length
  while (i < n) {
    const c = line[i]!
    if (c === ' ' || c === '\t') {
      if (inWord) {
        words.push(word)
        word = ''
        inWord = false
      }
      i++
    } else if (c === '#' && !inWord) {
      break
    } else if (c === '\\') {
      if (i + 1 >= n) throw new WordsError('a backslash ends the line (continuation lines are not supported)', i + 1)
      word += line[i + 1]
      inWord = true
      i += 2
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1)
      if (close < 0) throw new WordsError("unterminated ' quote, opened", i + 1)
      word += line.slice(i + 1, close)
      inWord = true
      i = close + 1
    } else if (c === '"') {
      let j = i + 1
      for (;;) {
        if (j >= n) throw new WordsError('unterminated " quote, opened', i + 1)
        const d = line[j]!
        if (d === '"') break
        if (d === '\\' && j + 1 < n && DOUBLE_QUOTE_ESCAPES.has(line[j + 1]!)) {
          word += line[j + 1]
          j += 2
        } else {
          word += d
          j++
        }
      }
      inWord = true
      i = j + 1
    } else if (OPERATORS.has(c)) {
      throw new WordsError(`the shell operator ${c} is not supported (one command per line; quote it to pass it literally)`, i + 1)
    } else {
      // the run of ordinary characters up to the next special one, at once
      let j = i + 1
      while (j < n && !SPECIAL.has(line[j]!)) j++
      word += line.slice(i, j)
      inWord = true
      i = j
    }
  }
  if (inWord) words.push(word)
  return words
}

const NEWLINE = 10

/** Characters that end a run of ordinary ones inside a word (`#` does not: it starts a comment only at a word's start). */
const SPECIAL = new Set([' ', '\t', '\\', "'", '"', ...OPERATORS])

/**
 * One command of a batch script: its 1-based line number, the line as written, and its words; and
 * `count`, how many lines in a row have that same text (numbered line, line + 1, ...). A script of
 * 10,000 "alloc page" is one ScriptLine: its memory does not grow with repetition.
 */
export interface ScriptLine {
  line: number
  text: string
  words: string[]
  count: number
}

/** A line that cannot be split: its number, its text, and why. */
export interface ScriptError {
  line: number
  text: string
  message: string
}

/**
 * Splits a batch script a line at a time, as it is read (hvmem batch streams its script): `add` each
 * line without its newline, in order. Blank and comment-only lines are skipped, a trailing CR (a
 * CRLF file) dropped, a UTF-8 byte order mark starting a line (an editor's on Windows, before the first
 * line; files joined by cat, before others) dropped, and a leading `hvmem` word (as the line would be typed in a shell) dropped too.
 * Lines that cannot be split go to `errors`, with their line numbers.
 */
export class ScriptSplitter {
  readonly lines: ScriptLine[] = []
  readonly errors: ScriptError[] = []
  /** lines added so far (blank and comment lines too) */
  count = 0
  // Scripts repeat lines (10,000 "alloc page"): identical lines share their text and words, and a
  // line that repeats the one just before it is counted into that one's ScriptLine.
  private readonly seen = new Map<string, {text: string; words: string[]}>()
  /** the last line added (the last of `lines`), as written, while the next line may repeat it */
  private previousRaw: string | undefined

  /** command lines added so far (the sum of the lines' counts) */
  get commands(): number {
    let commands = 0
    for (const line of this.lines) commands += line.count
    return commands
  }

  /**
   * Adds the lines at text[start...] that repeat the line just added (each as written, with its
   * newline), up to `limit` lines in all, and returns where they end. However many there are, they
   * are found in a few comparisons of the text with itself (a run of n repeats doubled while the next
   * n equal it, then the rest by halves): a script of 10,000 "alloc page" is not read line by line.
   */
  addRepeats(text: string, start: number, limit: number): number {
    const raw = this.previousRaw
    const most = limit - this.count
    if (raw === undefined || most < 1) return start
    if (!text.startsWith(raw, start) || text.charCodeAt(start + raw.length) !== NEWLINE) return start
    const unit = raw.length + 1
    // whether the `count` units after the first n repeats are repeats too (equal the first `count`)
    const repeats = (n: number, count: number): boolean => text.startsWith(text.slice(start, start + count * unit), start + n * unit)
    let n = 1
    while (2 * n <= most && repeats(n, n)) n *= 2
    for (let step = n >> 1; step >= 1; step >>= 1) if (n + step <= most && repeats(n, step)) n += step
    this.count += n
    this.lines.at(-1)!.count += n
    return start + n * unit
  }

  add(raw: string): void {
    const number = ++this.count
    this.previousRaw = undefined
    const unmarked = raw.startsWith('\uFEFF') ? raw.slice(1) : raw
    const text = unmarked.endsWith('\r') ? unmarked.slice(0, -1) : unmarked
    let known = this.seen.get(text)
    if (known === undefined) {
      let words: string[]
      try {
        words = splitWords(text)
      } catch (error) {
        if (!(error instanceof WordsError)) throw error
        this.errors.push({line: number, text, message: error.message})
        return
      }
      if (words[0] === 'hvmem') words = words.slice(1)
      known = {text: text.trim(), words}
      if (words.length > 0) this.seen.set(text, known)
    }
    if (known.words.length === 0) return
    // the same command as the line just before (a repeat, or written otherwise: a CR, a byte order mark) counts into it
    const last = this.lines.at(-1)
    if (last !== undefined && last.words === known.words && last.line + last.count === number) last.count++
    else this.lines.push({line: number, text: known.text, words: known.words, count: 1})
    this.previousRaw = raw
  }
}

/** The commands of a whole batch script held in one string (see ScriptSplitter). */
export function splitScript(text: string): {lines: ScriptLine[]; errors: ScriptError[]} {
  const splitter = new ScriptSplitter()
  const n = text.length
  // Each line runs up to its newline; a final newline ends the last line rather than starting an empty one.
  for (let start = 0; start < n;) {
    let end = text.indexOf('\n', start)
    if (end < 0) end = n
    splitter.add(text.slice(start, end))
    start = splitter.addRepeats(text, end + 1, Infinity)
  }
  return {lines: splitter.lines, errors: splitter.errors}
}
