/**
 * Output written as it is made, for listings that can be larger than memory (dump tables, dump map of
 * a large tree): text goes into a 1 MiB buffer, which goes to stdout when full. A write to a pipe
 * whose reader is behind is queued by Node; `behind` then says so, and the writer stops (a ScanCursor
 * stops its walk) and awaits `caughtUp()` before making more, so at most a buffer or two is held.
 * Inside a batch, lines go to the batch's output (its own buffer) instead.
 *
 * A stdout that fails (closed pipe, full disk) is reported as output.ts says; `failed` tells the
 * writer to stop making output.
 */
import {stdoutError, stdoutHolds, writeStdout} from './output.js'

const CHUNK = 1 << 20

export class OutputSink {
  private buffer = Buffer.allocUnsafe(CHUNK)
  private used = 0
  /** lines of a batch (undefined: stdout) */
  private readonly lineSink: ((text: string) => void) | undefined
  private partial = ''
  /** set by a write stdout queued: `behind` asks the stream until it has caught up */
  private queued = false
  /** where bytes go instead of stdout (never behind): true if done with them (the buffer may be reused) */
  private readonly bytesSink: ((bytes: Uint8Array) => boolean | void) | undefined

  /** `to`: stdout (undefined), a batch's lines, or a function taking the bytes */
  constructor(to?: {lines: (text: string) => void} | {bytes: (bytes: Uint8Array) => boolean | void}) {
    this.lineSink = to !== undefined && 'lines' in to ? to.lines : undefined
    this.bytesSink = to !== undefined && 'bytes' in to ? to.bytes : undefined
  }

  /** `text` and a newline. */
  line(text: string): void {
    this.text(`${text}\n`)
  }

  /** `text` as it is (UTF-8). */
  text(text: string): void {
    if (this.lineSink !== undefined) {
      const lines = (this.partial + text).split('\n')
      this.partial = lines.pop()!
      for (const l of lines) this.lineSink(l)
      return
    }
    if (this.used + 3 * text.length > CHUNK) {
      this.flush()
      if (3 * text.length > CHUNK) {
        this.send(Buffer.from(text, 'utf8'))
        return
      }
    }
    this.used += this.buffer.write(text, this.used, 'utf8')
  }

  /** Room for `bytes` more bytes in the buffer (flushing it if need be): write them into `bytes` from the offset returned, then call `wrote(end)`. */
  reserve(bytes: number): number {
    if (this.used + bytes > CHUNK) this.flush()
    return this.used
  }

  /** The buffer reserve() made room in. */
  get bytes(): Buffer {
    return this.buffer
  }

  wrote(end: number): void {
    this.used = end
  }

  /** Writes out what is buffered. */
  flush(): void {
    if (this.lineSink !== undefined) {
      if (this.partial !== '') this.lineSink(this.partial)
      this.partial = ''
      return
    }
    if (this.used === 0) return
    const bytes = this.buffer.subarray(0, this.used)
    this.used = 0
    // written through (a file, a terminal, a pipe with room): the buffer can be reused; else the
    // stream holds it, and a new one is made
    if (this.bytesSink !== undefined) {
      if (this.bytesSink(bytes) !== true) this.buffer = Buffer.allocUnsafe(CHUNK)
      return
    }
    if (!this.send(bytes)) this.buffer = Buffer.allocUnsafe(CHUNK)
  }

  /** Writes `bytes` out; false if the stream keeps them (it holds bytes not written yet). */
  private send(bytes: Uint8Array): boolean {
    if (this.bytesSink !== undefined) return this.bytesSink(bytes) === true
    if (this.failed) return true
    const written = writeStdout(bytes) && !stdoutHolds()
    if (!written) this.queued = true
    return written
  }

  /**
   * stdout's reader is behind the writes made through this sink: stop making output and await
   * caughtUp(). Asked of the stream only after a write it queued (a walk asks at every entry).
   */
  get behind(): boolean {
    if (!this.queued) return false
    if (this.streamHolds()) return true
    this.queued = false
    return false
  }

  /** stdout holds bytes not written yet (whoever wrote them) and has not failed. */
  private streamHolds(): boolean {
    return this.lineSink === undefined && this.bytesSink === undefined && stdoutHolds()
  }

  /** stdout cannot be written (output.ts reports it at exit): stop making output. */
  get failed(): boolean {
    return this.lineSink === undefined && this.bytesSink === undefined && stdoutError() !== undefined
  }

  /** Resolves once stdout has written what it holds (also what was written to it directly), or has failed. */
  caughtUp(): Promise<void> {
    if (!this.streamHolds()) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        process.stdout.off('drain', done)
        process.stdout.off('error', done)
        process.stdout.off('close', done)
        resolve()
      }
      process.stdout.on('drain', done)
      process.stdout.on('error', done)
      process.stdout.on('close', done)
    })
  }
}

/**
 * Runs `step` (a part of a walk that stops when the sink is behind, and returns true when the walk is
 * done) until it is done or stdout has failed, awaiting the reader between parts.
 */
export async function drive(sink: OutputSink, step: () => boolean): Promise<boolean> {
  for (;;) {
    if (sink.failed) return false
    if (step()) return true
    sink.flush()
    await sink.caughtUp()
  }
}

/** Between two parts of the output: waits while stdout's reader is behind; false if stdout has failed. */
export async function keepUp(sink: OutputSink): Promise<boolean> {
  if (sink.behind) {
    sink.flush()
    await sink.caughtUp()
  }
  return !sink.failed
}
