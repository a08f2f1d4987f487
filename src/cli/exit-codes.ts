import type {ErrorKind} from '../core/errors.js'

/** The documented exit codes (docs/scripting.md, "Exit codes"). */
export const EXIT_CODES: Record<ErrorKind | 'ok' | 'internal', number> = {
  ok: 0,
  internal: 1,
  input: 2,
  'snapshot-missing': 3,
  'snapshot-invalid': 4,
  'heap-exhausted': 5,
  'mapping-conflict': 6,
  'mapping-limit': 7,
  'snapshot-exists': 8,
  io: 9,
  gdb: 10,
}
