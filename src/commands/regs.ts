import {type Parsed, ReadCommand} from '../cli/machine-command.js'
import {requireMapper} from '../cli/mapper.js'
import {color, renderTable} from '../cli/style.js'
import type {RegimeName} from '../core/descriptor.js'
import type {Machine} from '../core/machine.js'
import {hex} from '../core/u64.js'
import {registersJson} from '../cli/json.js'

export interface RegsJson {
  /** the mapper's regime; null in a captured snapshot without one */
  regime: RegimeName | null
  /** the registers recorded by snapshot capture, by name (absent when none) */
  recorded?: Record<string, string>
  registers: Array<{name: string; value: string; purpose: string; fields: Array<{name: string; bits: string; value: string; meaning: string}>}>
}

export default class Regs extends ReadCommand<Parsed, RegsJson> {
  static override summary = "The system-register values that install the snapshot's tables, decoded field by field."
  static override description = `Stage 2: VTTBR_EL2 (root and VMID), VTCR_EL2, and the HCR_EL2 bits stage 2 needs. Stage 1 (EL2): TTBR0_EL2, TCR_EL2, MAIR_EL2, SCTLR_EL2 with the MMU on, and HCR_EL2.E2H clear. A captured snapshot (snapshot capture) lists the registers it recorded first; without a mapper, only those.`
  static override examples = ['<%= config.bin %> regs', '<%= config.bin %> regs --json']

  protected report(machine: Machine): RegsJson {
    const recorded = machine.registers.length === 0 ? {} : {recorded: registersJson(machine.registers)}
    if (machine.registers.length > 0) {
      this.log(color.bold('Recorded by snapshot capture:'))
      this.log(
        renderTable(
          ['register', 'value'],
          machine.registers.map((r) => [r.name, hex(r.value)]),
          {align: ['left', 'right']},
        ),
      )
      if (machine.mapper === undefined) return {regime: null, ...recorded, registers: []}
    }
    const mapper = requireMapper(machine)
    const registers = mapper.registers()
    for (const r of registers) {
      this.log(`${color.bold(r.name)} = ${hex(r.value)}  ${color.dim(r.purpose)}`)
      this.log(
        renderTable(
          ['field', 'bits', 'value', 'meaning'],
          r.fields.map((f) => [f.name, f.bits, hex(f.value), f.meaning]),
          {align: ['left', 'right', 'right', 'left']},
        ),
      )
    }
    return {
      regime: mapper.state.regime,
      ...recorded,
      registers: registers.map((r) => ({name: r.name, value: hex(r.value), purpose: r.purpose, fields: r.fields.map((f) => ({...f, value: hex(f.value)}))})),
    }
  }
}
