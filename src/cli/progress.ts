/**
 * A progress bar for long operations (importing a large image, diffing large snapshots), drawn on
 * stderr only when stderr is a terminal, never under --json and never when piped, so scripts and
 * JSON consumers see nothing of it. It redraws at most ten times a second and erases itself when done.
 */
export interface Progress {
  /** `done` of `total` units are finished */
  update(done: number): void
  /** erases the bar */
  finish(): void
}

const NONE: Progress = {update() {}, finish() {}}

/** Operations shorter than this many units draw nothing (they finish before a bar would help). */
export const PROGRESS_THRESHOLD = 4096

export function progress(label: string, total: number, options: {json: boolean; stream?: NodeJS.WriteStream}): Progress {
  const stream = options.stream ?? process.stderr
  if (options.json || stream.isTTY !== true || total < PROGRESS_THRESHOLD) return NONE
  let last = 0
  let drawn = false
  const draw = (done: number): void => {
    const width = 30
    const filled = Math.min(width, Math.floor((done / total) * width))
    const pct = Math.min(100, Math.floor((done / total) * 100))
    stream.write(`\r${label} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(pct).padStart(3)}%`)
    drawn = true
  }
  return {
    update(done: number): void {
      const now = Date.now()
      if (now - last < 100) return
      last = now
      draw(done)
    },
    finish(): void {
      if (drawn) stream.write('\r\u001b[2K')
    },
  }
}
