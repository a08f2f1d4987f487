import {Flags} from '@oclif/core'

import {HvmemCommand} from '../cli/base.js'
import {u64Arg} from '../cli/flags.js'
import {color} from '../cli/style.js'
import {type WalkJson, describeWalk, walkFlags, walkJson, walkTarget} from '../cli/walk.js'
import type {RegimeName} from '../core/descriptor.js'
import {type Fault, translate} from '../core/translate.js'
import {formatSize, hex} from '../core/u64.js'
import {loadSnapshot} from '../snapshot/store.js'

export interface TranslateJson {
  regime: RegimeName
  input: string
  access: {write: boolean; exec: boolean}
  steps: Array<{level: number; table: string; index: number; descriptor: string; kind: string}>
  output: {address: string; level: number; size: number; memType: string; attr: string; sh: number; shareability: string; read: boolean; write: boolean; execute: boolean} | null
  fault: (Omit<Fault, 'fsc'> & {fsc: string}) | null
  par: string
  /** with --root only: the walk's regime, root, start level, input and PA sizes, and registers */
  walk?: WalkJson
}

export default class Translate extends HvmemCommand {
  static override summary = 'Walk the tables for one input address, as the MMU would: each level visited, then the output address or the fault.'
  static override description = `Stage 2 walks an IPA as AT S12E1R/W does with HCR_EL2.DC set (the guest's stage 1 an identity map of Normal write-back memory); stage 1 walks an EL2 virtual address as AT S1E2R/W does. A fault is reported with its kind (translation, access flag, permission, address size; external abort when a table lies outside the snapshot's RAM), level, stage and fault status code, and PAR_EL1 is what the AT instruction would leave. A fault is a result, not an error: the exit code is 0. --exec also checks execute permission (which AT does not).

--root walks tables hvmem did not build (e.g. imported with "snapshot import"), whether or not the snapshot has a mapper: --regime says whose they are, and --vtcr (stage 2) or --tcr (stage 1, TCR_EL2) gives the start level, input size (T0SZ) and PA size (PS) as the MMU would take them; the defaults are hvmem's own 0x80023559 and 0x80823519.`
  static override examples = ['<%= config.bin %> translate 0x4020_1234', '<%= config.bin %> translate 0x1000_0000 --write', '<%= config.bin %> translate 0x0900_0000 --exec --json', '<%= config.bin %> translate 0x4000_1000 --root 0x4100_0000 --vtcr 0x80023558']

  static override args = {
    address: u64Arg({description: 'Input address: an IPA (stage 2) or an EL2 VA (stage 1).', required: true}),
  }

  static override flags = {
    write: Flags.boolean({summary: 'Translate for a write (default: a read).', default: false}),
    exec: Flags.boolean({summary: 'Also require execute permission.', default: false}),
    ...walkFlags,
  }

  async run(): Promise<TranslateJson> {
    const {args, flags} = await this.parse(Translate)
    const machine = await loadSnapshot(flags.snapshot)
    const target = walkTarget(machine, flags, true)
    const t = translate(machine.memory, target.regime, target.root, args.address, {write: flags.write, exec: flags.exec}, target.geometry)
    const what = [t.write ? 'write' : 'read', ...(t.exec ? ['execute'] : [])].join(' + ')
    const control = target.foreign ? ` (${target.registers[1]!.name} ${hex(target.registers[1]!.value)}: ${describeWalk(target.geometry)})` : ''
    this.log(`${target.regime.stage === 2 ? 'Stage-2 walk of IPA' : 'Stage-1 (EL2) walk of VA'} ${hex(t.input)} for ${what}, root ${hex(target.root)}${control}`)
    for (const s of t.steps) this.log(`  L${s.level}[${s.index}]`.padEnd(11) + ` in ${hex(s.table)}: ${hex(s.descriptor, 16)}  ${s.kind}`)
    const o = t.output
    if (o !== undefined) {
      const perms = `${o.read ? 'R' : '-'}${o.write ? 'W' : '-'}${o.execute ? 'X' : '-'}`
      this.log(`${color.green('->')} ${color.bold(hex(o.address))}  ${o.memType} ${o.shareability} ${perms}  (${formatSize(o.size)} ${o.level === 3 ? 'page' : 'block'} at L${o.level})`)
    } else {
      const f = t.fault!
      this.log(`${color.red('->')} ${color.bold(`${f.kind} fault`)}, level ${f.level}, stage ${f.stage} (FSC ${hex(BigInt(f.fsc), 2)}): ${f.reason}`)
    }
    this.log(`PAR_EL1 ${hex(t.par)}`)
    return {
      regime: target.regimeName,
      input: hex(t.input),
      access: {write: t.write, exec: t.exec},
      steps: t.steps.map((s) => ({level: s.level, table: hex(s.table), index: s.index, descriptor: hex(s.descriptor), kind: s.kind})),
      output:
        o === undefined
          ? null
          : {address: hex(o.address), level: o.level, size: Number(o.size), memType: o.memType, attr: hex(BigInt(o.attr), 2), sh: o.sh, shareability: o.shareability, read: o.read, write: o.write, execute: o.execute},
      fault: t.fault === undefined ? null : {...t.fault, fsc: hex(BigInt(t.fault.fsc), 2)},
      par: hex(t.par),
      ...(target.foreign ? {walk: walkJson(target)} : {}),
    }
  }
}
