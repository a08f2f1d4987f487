/**
 * "Did you mean": the known word closest to a mistyped one (a command, a flag). Hand-written rather
 * than @oclif/plugin-not-found, which would be loaded at every start; this runs only on the error path.
 */

/**
 * The optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * neighbouring characters each cost 1 (`stauts` is 1 from `status`, `regoin` from `region`).
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: number[] = new Array<number>(rows * cols).fill(0)
  for (let i = 0; i < rows; i++) d[i * cols] = i
  for (let j = 0; j < cols; j++) d[j] = j
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1)
      d[i * cols + j] = best
    }
  }
  return d[rows * cols - 1]!
}

/**
 * The candidate closest to `typed`, if it is close enough to be what was meant: at most a third of
 * the typed length away (at least 1, at most 3), or a candidate that starts with what was typed
 * (`--ver` for `--verbose`). Ties go to the first candidate. Undefined when nothing is that close.
 */
export function closest(typed: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(typed.length / 3)))
  const list = [...candidates]
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of list) {
    if (candidate === typed) continue
    const distance = editDistance(typed, candidate)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  if (best === undefined) return undefined
  if (bestDistance <= limit) return best
  // a unique candidate the typed text begins (an abbreviation), at least 2 characters typed
  if (typed.replace(/^-+/, '').length >= 2) {
    const prefixed = list.filter((c) => c.startsWith(typed))
    if (prefixed.length === 1) return prefixed[0]
  }
  return undefined
}
