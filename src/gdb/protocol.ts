/**
 * The GDB remote serial protocol's framing, as pure functions (no I/O): a packet is
 * `$payload#cc`, cc the modulo-256 sum of the payload's bytes in two hex digits; `}` escapes `$`, `#`,
 * `}` and `*` (the byte XOR 0x20); a reply may be run-length encoded (`X*n`: X repeated n - 29 more
 * times). src/gdb/client.ts speaks it over a socket. Reference: the GDB manual's "Remote Protocol"
 * appendix ("Overview", "Binary Data", "Standard Replies").
 */

/** The modulo-256 sum of the bytes. */
export function checksum(bytes: Uint8Array): number {
  let sum = 0
  for (const b of bytes) sum = (sum + b) & 0xff
  return sum
}

const ESCAPED = new Set([0x23, 0x24, 0x7d, 0x2a]) // # $ } *

/** `$payload#cc`, the payload's special bytes escaped. */
export function encodePacket(payload: string | Uint8Array): Buffer {
  const raw = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload
  const body: number[] = []
  for (const b of raw) {
    if (ESCAPED.has(b)) body.push(0x7d, b ^ 0x20)
    else body.push(b)
  }
  const bytes = Buffer.from(body)
  return Buffer.concat([Buffer.from('$', 'latin1'), bytes, Buffer.from(`#${checksum(bytes).toString(16).padStart(2, '0')}`, 'latin1')])
}

/** A packet's body as sent (checksummed), to its payload: escapes undone, runs expanded. */
export function decodeBody(body: Uint8Array): Buffer {
  const out: number[] = []
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!
    if (b === 0x7d) {
      if (i + 1 >= body.length) throw new ProtocolError('a packet ends in the escape byte "}"')
      out.push(body[++i]! ^ 0x20)
    } else if (b === 0x2a) {
      if (out.length === 0 || i + 1 >= body.length) throw new ProtocolError('a run-length "*" with nothing to repeat')
      const count = body[++i]! - 29
      if (count < 3 || count > 97) throw new ProtocolError(`a run-length count ${count} out of range`)
      const last = out[out.length - 1]!
      for (let k = 0; k < count; k++) out.push(last)
    } else out.push(b)
  }
  return Buffer.from(out)
}

export class ProtocolError extends Error {}

/** What the byte stream from a stub holds: acknowledgements and whole packets. */
export type StubEvent = {kind: 'ack'} | {kind: 'nak'} | {kind: 'packet'; payload: Buffer; checksumOk: boolean}

/**
 * Splits the stub's byte stream into events, across any chunking: `+`/`-` acknowledgements and
 * `$...#cc` packets (checksum checked over the body as sent). Bytes between packets are ignored, as
 * GDB does (a `%` notification's payload is reported as a packet).
 */
export class PacketDecoder {
  private pending = Buffer.alloc(0)

  feed(chunk: Uint8Array): StubEvent[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk])
    const events: StubEvent[] = []
    let at = 0
    while (at < this.pending.length) {
      const b = this.pending[at]!
      if (b === 0x2b) {
        events.push({kind: 'ack'})
        at++
      } else if (b === 0x2d) {
        events.push({kind: 'nak'})
        at++
      } else if (b === 0x24 || b === 0x25) {
        // find the '#' that ends the body: an escaped '#' is preceded by '}' (sent as '}' 0x03), so the first bare '#' ends it
        const hash = this.pending.indexOf(0x23, at + 1)
        if (hash === -1 || hash + 2 >= this.pending.length) break
        const body = this.pending.subarray(at + 1, hash)
        const sent = parseInt(this.pending.subarray(hash + 1, hash + 3).toString('latin1'), 16)
        events.push({kind: 'packet', payload: decodeBody(body), checksumOk: sent === checksum(body)})
        at = hash + 3
      } else at++
    }
    this.pending = this.pending.subarray(at)
    return events
  }
}

/** Hex text to bytes; refuses odd lengths and non-hex digits. */
export function fromHex(text: string): Buffer {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) throw new ProtocolError(`"${text.slice(0, 40)}" is not hex bytes`)
  return Buffer.from(text, 'hex')
}

/** A register as the stub sends it (`p` reply: target byte order, little-endian on AArch64) to its value. */
export function registerValue(text: string): bigint {
  if (/x/i.test(text)) throw new ProtocolError('the register is unavailable (the stub sent "xx")')
  const bytes = fromHex(text)
  let value = 0n
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!)
  return value
}

/** `Enn` (or `E.text`): the stub refused the request. */
export function isErrorReply(payload: string): boolean {
  return /^E([0-9a-fA-F]{2}|\..*)$/.test(payload)
}

/** One register a target description declares. */
export interface TargetRegister {
  name: string
  bitsize: number
  /** the number `p` reads it by */
  regnum: number
  /** the feature it belongs to (org.gnu.gdb.aarch64.core, ...) */
  feature: string
}

/** A target description document: its registers (numbered), and the documents it includes, in order. */
export interface TargetDocument {
  registers: Array<Omit<TargetRegister, 'regnum'> & {regnum?: number}>
  includes: string[]
}

const attribute = (tag: string, name: string): string | undefined => new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1]

/** The `<feature>`s' `<reg>`s and the `<xi:include href>`s of one XML target description (GDB's "Target Descriptions" appendix). */
export function parseTargetXml(xml: string): TargetDocument {
  const registers: TargetDocument['registers'] = []
  const includes: string[] = []
  let feature = ''
  for (const match of xml.matchAll(/<(xi:include|feature|reg)\b[^>]*>/g)) {
    const tag = match[0]
    if (match[1] === 'xi:include') {
      const href = attribute(tag, 'href')
      if (href !== undefined) includes.push(href)
    } else if (match[1] === 'feature') feature = attribute(tag, 'name') ?? ''
    else {
      const name = attribute(tag, 'name')
      const bitsize = Number(attribute(tag, 'bitsize'))
      const regnum = attribute(tag, 'regnum')
      if (name === undefined || !Number.isInteger(bitsize)) throw new ProtocolError(`a <reg> without a name or bitsize: ${tag.slice(0, 80)}`)
      registers.push({name, bitsize, feature, ...(regnum === undefined ? {} : {regnum: Number(regnum)})})
    }
  }
  return {registers, includes}
}

/**
 * Numbers registers over the documents in the order GDB reads them: a `<reg>` without regnum is one
 * more than the register before it (in any document), the first 0.
 */
export function numberRegisters(documents: TargetDocument[]): TargetRegister[] {
  const out: TargetRegister[] = []
  let next = 0
  for (const d of documents) {
    for (const r of d.registers) {
      const regnum = r.regnum ?? next
      out.push({name: r.name, bitsize: r.bitsize, feature: r.feature, regnum})
      next = regnum + 1
    }
  }
  return out
}

/** `qXfer:features:read` reply: `m` + data (more follows) or `l` + data (the last). */
export function xferChunk(payload: Buffer): {data: Buffer; last: boolean} {
  const kind = payload[0]
  if (kind !== 0x6d && kind !== 0x6c) throw new ProtocolError(`a qXfer reply starting with ${JSON.stringify(payload.subarray(0, 8).toString('latin1'))}`)
  return {data: payload.subarray(1), last: kind === 0x6c}
}

/** Monitor command text as qRcmd sends it: hex of its bytes. */
export function rcmdPacket(command: string): string {
  return `qRcmd,${Buffer.from(command, 'utf8').toString('hex')}`
}

/** The size of the RAM region at `base` in QEMU's `info mtree -f` text (`0000000040000000-000000005fffffff (prio 0, ram): mach-virt.ram`), if listed. */
export function ramSizeFromMtree(text: string, base: bigint): bigint | undefined {
  for (const m of text.matchAll(/^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, ram\)/gim)) {
    const start = BigInt(`0x${m[1]}`)
    const end = BigInt(`0x${m[2]}`)
    if (start === base && end >= start) return end - start + 1n
  }
  return undefined
}
