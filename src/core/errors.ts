/**
 * The one error type the core throws. `kind` says what went wrong in terms a caller can act on;
 * the CLI maps each kind to a documented exit code.
 */
export type ErrorKind =
  | 'input' // a bad number, address, size, alignment or combination of options
  | 'snapshot-missing' // no snapshot file where one was expected
  | 'snapshot-invalid' // truncated, corrupt, newer format, or not a regular file
  | 'snapshot-exists' // heap init over an existing snapshot without --force
  | 'heap-exhausted' // the bump allocator cannot satisfy the request
  | 'mapping-conflict' // the range is mapped differently, or live tables would be destroyed
  | 'mapping-limit' // the L2-table budget is used up
  | 'io' // the snapshot could not be locked, read or written
  | 'gdb' // the gdbstub (snapshot capture) refused the connection, stopped answering or lacks what is needed

export class HvmemError extends Error {
  /** The message as first written; a caller (oclif's flag parser) may decorate `message` later. */
  readonly summary: string

  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message)
    this.name = 'HvmemError'
    this.summary = message
  }
}
