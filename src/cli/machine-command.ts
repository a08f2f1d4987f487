import type {Interfaces} from '@oclif/core'

import type {Machine} from '../core/machine.js'
import {type SnapshotSession, loadSnapshot, updateSnapshot} from '../snapshot/store.js'
import {HvmemCommand} from './base.js'

/** The parse of a command with flags F and arguments A (and hvmem's base flags), as oclif gives it. */
export type Parsed<F extends object = Record<never, never>, A extends object = Record<never, never>> = Interfaces.ParserOutput<
  Interfaces.InferredFlags<F & typeof HvmemCommand.baseFlags>,
  Record<never, never>,
  Interfaces.InferredArgs<A> & Record<never, never>
>

/** What every command's parse has: the snapshot it works on. */
export interface SnapshotParse {
  readonly flags: {readonly snapshot: string}
}

/**
 * A command whose work is on its snapshot's machine and nothing else: `work` reads or (when
 * `changes`) changes the machine, and `report` prints and returns the result once that is done (for a
 * change: saved). run() parses, loads or updates the snapshot around `work`, and reports.
 *
 * Inside a batch, a line runs as `runIn` on the session's machine once its parse is known: no
 * promise, no await, no load or save (src/cli/batch.ts). What a line does is the same code either way.
 */
export abstract class MachineCommand<P extends SnapshotParse, O, R> extends HvmemCommand {
  /** whether `work` changes the machine (made under the snapshot's lock, then saved) or only reads it */
  protected abstract readonly changes: boolean

  /** the work on the machine; throws to fail (a change that throws is undone whole by its caller) */
  protected abstract work(machine: Machine, parsed: P): O

  /** the output of `work`, printed (this.log) and returned as the --json result */
  protected abstract report(outcome: O, parsed: P): R

  /** Checks of the parse alone (flags that go together, a value's range), made before the snapshot is loaded. */
  protected check(_parsed: P): void {}

  /** The command's parse: its own flags and arguments (oclif's, through HvmemCommand.parse), checked. */
  async parseLine(): Promise<P> {
    // The class's statics are the parse's input (as `this.parse(TheCommand)`); P is that parse's
    // type, which a subclass names (Parsed<typeof flags, typeof args>) and TypeScript cannot relate here.
    const parsed = (await this.parse(this.ctor)) as unknown as P
    this.check(parsed)
    return parsed
  }

  async run(): Promise<R> {
    const parsed = await this.parseLine()
    const path = parsed.flags.snapshot
    const outcome = this.changes ? await updateSnapshot(path, (machine) => this.work(machine, parsed)) : this.work(await loadSnapshot(path), parsed)
    return this.report(outcome, parsed)
  }

  /**
   * The command `times` times over on a batch's session, as that many lines of the same text run one
   * after the other would do it and print it, where it can do them at once; returns how many it ran,
   * each a success (0: it cannot, and the batch runs the lines one by one). It stops before a line
   * that would fail, leaving it to the batch, which runs it alone and reports it.
   */
  runRepeatedIn(_session: SnapshotSession, _parsed: P, _times: number): number {
    return 0
  }

  /** The command on a batch's session, at once (its parse settled): what run() does there, without a promise. */
  runIn(session: SnapshotSession, parsed: P): R {
    const outcome = this.work(session.machine, parsed)
    if (this.changes) session.changed = true
    return this.report(outcome, parsed)
  }
}

/** A MachineCommand that only reads the machine: its report is made from the machine itself. */
export abstract class ReadCommand<P extends SnapshotParse, R> extends MachineCommand<P, Machine, R> {
  protected readonly changes = false

  protected work(machine: Machine): Machine {
    return machine
  }
}
