/**
 * Reads a layout file (YAML 1.2, docs/layout.md) into a LayoutSpec: every number through the CLI's
 * own parser (0x4000_0000, 16M), taken from the text as written; every error names the file and the
 * line, and the region when there is one.
 */
import {LineCounter, type Node, type Pair, type Scalar, type YAMLMap, isMap, isScalar, isSeq, parseDocument} from 'yaml'

import {ATTRS, type Attr} from '../core/descriptor.js'
import {HvmemError} from '../core/errors.js'
import {GRANULES, type Granule, MAX_INPUT_BITS, MIN_INPUT_BITS, MIN_MAPPER_IPA_BITS, granuleName} from '../core/geometry.js'
import type {LayoutRegion, LayoutSpec} from '../core/layout.js'
import {KVM_PRESET, MAX_L2_BUDGET, type MapperOptions} from '../core/mapper.js'
import {MAX_VMID} from '../core/registers.js'
import {REGIME_NAMES, type RegimeName} from '../core/descriptor.js'
import {parseInteger, parseU64, quote} from './numbers.js'

const MAPPER_KEYS = ['regime', 'granule', 'ipa-bits', 'va-bits', 'preset', 'vmid', 'l2-budget'] as const
const REGION_KEYS = ['name', 'ipa', 'va', 'size', 'pa', 'attr', 'mem', 'sh', 'perm', 'exec-at', 'granularity', 'contiguous'] as const

export function parseLayout(text: string, file: string): LayoutSpec {
  const lines = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
  const lineOf = (node: Node | null | undefined): number => (node?.range === undefined || node.range === null ? 1 : lines.linePos(node.range[0]).line)
  const fail = (line: number, message: string): never => {
    throw new HvmemError('input', `${file}:${line}: ${message}`)
  }
  const syntax = doc.errors[0]
  if (syntax !== undefined) fail(lines.linePos(syntax.pos[0]).line, `not valid YAML: ${syntax.message.split('\n')[0]}`)
  const root = doc.contents
  if (!isMap(root)) return fail(lineOf(root), 'a layout is a mapping with "mapper" and "regions" (docs/layout.md)')
  const top = entries(root, ['mapper', 'regions'], fail, lineOf, 'the layout')

  const mapperNode = top.get('mapper')
  const mapperLine = mapperNode === undefined ? 1 : lineOf(mapperNode.key as Node)
  const options: MapperOptions = {}
  let regime: RegimeName = 'stage2'
  if (mapperNode !== undefined) {
    if (!isMap(mapperNode.value)) return fail(mapperLine, 'mapper: expected a mapping (regime, granule, ipa-bits or va-bits, preset, vmid, l2-budget)')
    const m = entries(mapperNode.value, MAPPER_KEYS, fail, lineOf, 'mapper')
    const text = (key: string): {value: string; line: number} | undefined => scalarText(m.get(key), fail, lineOf, `mapper ${key}`)
    const r = text('regime')
    if (r !== undefined) {
      const found = REGIME_NAMES.find((x) => x === r.value)
      if (found === undefined) fail(r.line, `mapper regime: ${quote(r.value)} is not stage2 or stage1`)
      regime = found!
      options.regime = regime
    }
    const g = text('granule')
    if (g !== undefined) {
      const found = GRANULES.find((x) => granuleName(x) === g.value.toUpperCase())
      if (found === undefined) fail(g.line, `mapper granule: ${quote(g.value)} is not 4K, 16K or 64K`)
      options.granule = found as Granule
    }
    const ipaBits = text('ipa-bits')
    const vaBits = text('va-bits')
    if (ipaBits !== undefined && regime === 'stage1') fail(ipaBits.line, 'mapper ipa-bits is for stage 2; a stage1 mapper takes va-bits')
    if (vaBits !== undefined && regime === 'stage2') fail(vaBits.line, 'mapper va-bits is for stage 1; a stage2 mapper takes ipa-bits')
    const bits = ipaBits ?? vaBits
    if (bits !== undefined) options.inputBits = at(bits.line, () => parseInteger(bits.value, 'input bits', regime === 'stage2' ? MIN_MAPPER_IPA_BITS : MIN_INPUT_BITS, MAX_INPUT_BITS))
    const preset = text('preset')
    if (preset !== undefined) {
      if (preset.value !== 'kvm') fail(preset.line, `mapper preset: ${quote(preset.value)} is not kvm`)
      if (regime === 'stage1') fail(preset.line, 'mapper preset kvm is a stage-2 geometry')
      if (g !== undefined || bits !== undefined) fail(preset.line, 'mapper preset kvm sets the granule and the IPA size: leave those out')
      options.granule = KVM_PRESET.granule
      options.inputBits = KVM_PRESET.inputBits
    }
    const vmid = text('vmid')
    if (vmid !== undefined) options.vmid = at(vmid.line, () => parseInteger(vmid.value, 'mapper vmid', 0, MAX_VMID))
    const budget = text('l2-budget')
    if (budget !== undefined) options.l2Budget = at(budget.line, () => parseInteger(budget.value, 'mapper l2-budget', 1, MAX_L2_BUDGET))
  }

  const regionsNode = top.get('regions')
  if (regionsNode === undefined) return fail(lineOf(root), 'the layout has no "regions" list')
  if (!isSeq(regionsNode.value)) return fail(lineOf(regionsNode.key as Node), 'regions: expected a list of regions')
  const regions: LayoutRegion[] = []
  regionsNode.value.items.forEach((item, index) => {
    const line = lineOf(item as Node)
    if (!isMap(item)) return fail(line, `regions[${index}]: expected a mapping (name, ipa or va, size, pa, attr, mem, sh, perm, exec-at, granularity, contiguous)`)
    const fields = entries(item, REGION_KEYS, fail, lineOf, `regions[${index}]`)
    const nameText = scalarText(fields.get('name'), fail, lineOf, `regions[${index}] name`)
    if (nameText === undefined) return fail(line, `regions[${index}] has no name`)
    const name = nameText.value
    const where = `region ${name}`
    const text = (key: string): {value: string; line: number} | undefined => scalarText(fields.get(key), fail, lineOf, `${where}: ${key}`)
    const number = (key: string): bigint | undefined => {
      const t = text(key)
      return t === undefined ? undefined : at(t.line, () => parseU64(t.value, `${where}: ${key}`))
    }
    const inputKey = regime === 'stage2' ? 'ipa' : 'va'
    const wrongKey = regime === 'stage2' ? 'va' : 'ipa'
    if (fields.has(wrongKey)) fail(lineOf(fields.get(wrongKey)!.key as Node), `${where}: a ${regime} layout gives each region's input address as ${inputKey}, not ${wrongKey}`)
    const input = number(inputKey)
    if (input === undefined) return fail(line, `${where} has no ${inputKey}`)
    const size = number('size')
    if (size === undefined) return fail(line, `${where} has no size`)
    const attr = text('attr')
    if (attr !== undefined && !ATTRS.includes(attr.value as Attr)) fail(attr.line, `${where}: attr ${quote(attr.value)} is not ${ATTRS.join(', ')}`)
    const granularity = text('granularity')
    const contiguous = flag(fields.get('contiguous'), fail, lineOf, `${where}: contiguous`)
    regions.push({
      name,
      line,
      ipa: input,
      size,
      pa: number('pa'),
      attributes: {preset: attr?.value as Attr | undefined, mem: text('mem')?.value, share: text('sh')?.value, perm: text('perm')?.value, execAt: text('exec-at')?.value},
      granularity:
        granularity === undefined || granularity.value === 'page' ? (granularity?.value as 'page' | undefined) : at(granularity.line, () => parseU64(granularity.value, `${where}: granularity`)),
      ...(contiguous === undefined ? {} : {contiguous}),
    })
  })
  return {file, mapperLine, mapper: options, regions}

  function at<T>(line: number, body: () => T): T {
    try {
      return body()
    } catch (error) {
      if (error instanceof HvmemError) fail(line, error.summary)
      throw error
    }
  }
}

type Fail = (line: number, message: string) => never

/** A mapping's pairs by key, refusing keys outside `known` and keys that are not plain text. */
function entries(map: YAMLMap, known: readonly string[], fail: Fail, lineOf: (n: Node | null | undefined) => number, what: string): Map<string, Pair> {
  const out = new Map<string, Pair>()
  for (const pair of map.items) {
    const key = pair.key as Node | null
    if (!isScalar(key) || typeof key.value !== 'string') fail(lineOf(key), `${what}: keys are plain words`)
    const name = (key as Scalar<string>).value
    if (!known.includes(name)) fail(lineOf(key), `${what}: unknown key ${quote(name)} (known: ${known.join(', ')})`)
    out.set(name, pair)
  }
  return out
}

/** A true or false value; undefined when the key is absent. */
function flag(pair: Pair | undefined, fail: Fail, lineOf: (n: Node | null | undefined) => number, what: string): boolean | undefined {
  if (pair === undefined) return undefined
  const value = pair.value as Node | null
  if (!isScalar(value) || typeof value.value !== 'boolean') return fail(lineOf(value ?? (pair.key as Node)), `${what}: expected true or false`)
  return value.value
}

/** A value as it is written in the file (numbers keep their 0x and _), with its line; undefined when the key is absent. */
function scalarText(pair: Pair | undefined, fail: Fail, lineOf: (n: Node | null | undefined) => number, what: string): {value: string; line: number} | undefined {
  if (pair === undefined) return undefined
  const value = pair.value as Node | null
  const line = lineOf(value ?? (pair.key as Node))
  if (!isScalar(value) || value.value === null) return fail(line, `${what}: expected a value`)
  if (typeof value.value === 'boolean') return fail(line, `${what}: expected a word or a number, not ${String(value.value)}`)
  const source = (value as Scalar & {source?: string}).source
  if (typeof value.value === 'string') return {value: value.value, line}
  if (typeof value.value !== 'number' && typeof value.value !== 'bigint') return fail(line, `${what}: expected a word or a number`)
  return {value: source ?? value.value.toString(), line}
}
