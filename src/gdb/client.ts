/**
 * A GDB remote protocol client over TCP, enough to capture a QEMU guest: read the target description
 * and registers, switch QEMU's gdbstub between virtual and physical memory, and read memory. The
 * framing is src/gdb/protocol.ts's. One request is outstanding at a time; each reply is awaited
 * with a timeout, and a closed or reset connection fails the request in flight.
 */
import {Socket, connect} from 'node:net'

import {HvmemError} from '../core/errors.js'
import {
  type StubEvent,
  PacketDecoder,
  type TargetDocument,
  type TargetRegister,
  encodePacket,
  fromHex,
  isErrorReply,
  numberRegisters,
  parseTargetXml,
  rcmdPacket,
  registerValue,
  xferChunk,
} from './protocol.js'

/** How long one reply may take (QEMU under load can pause for seconds). */
export const REPLY_TIMEOUT_MS = 30_000
/** The most bytes one `m` packet reads: QEMU's gdbstub refuses more than its packet buffer's half (4096 / 2). */
export const MEMORY_CHUNK = 2048

export class GdbClient {
  private readonly decoder = new PacketDecoder()
  private readonly queue: StubEvent[] = []
  private waiter: (() => void) | undefined
  private failure: Error | undefined
  private noAck = false

  private constructor(
    private readonly socket: Socket,
    readonly where: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      try {
        this.queue.push(...this.decoder.feed(chunk))
      } catch (error) {
        this.failure = this.lost(error instanceof Error ? error.message : String(error))
      }
      this.wake()
    })
    socket.on('close', () => {
      this.failure ??= this.lost('the connection closed')
      this.wake()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // (a stub that goes away mid-transfer shows as a reset or a broken pipe, by timing)
      this.failure ??= this.lost(error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'the connection closed' : error.message)
      this.wake()
    })
  }

  /** Connects to HOST:PORT; a refused or unreachable stub is a one-line 'gdb' error. */
  static connect(host: string, port: number, timeoutMs = REPLY_TIMEOUT_MS): Promise<GdbClient> {
    const where = `${host}:${port}`
    return new Promise((resolve, reject) => {
      const socket = connect({host, port})
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new HvmemError('gdb', `could not connect to the gdbstub at ${where}: no answer in ${timeoutMs / 1000} s`))
      }, timeoutMs)
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        reject(
          new HvmemError('gdb', `could not connect to the gdbstub at ${where}: ${error.code === 'ECONNREFUSED' ? 'connection refused (is QEMU running with -gdb tcp::PORT or -s?)' : error.message}`),
        )
      })
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        socket.setNoDelay(true)
        resolve(new GdbClient(socket, where))
      })
    })
  }

  close(): void {
    this.socket.destroy()
  }

  private lost(why: string): HvmemError {
    return new HvmemError('gdb', `the gdbstub at ${this.where} stopped answering: ${why}`)
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  private async next(timeoutMs: number): Promise<StubEvent> {
    for (;;) {
      const event = this.queue.shift()
      if (event !== undefined) return event
      if (this.failure !== undefined) throw this.failure
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiter = undefined
          reject(new HvmemError('gdb', `the gdbstub at ${this.where} sent no reply in ${timeoutMs / 1000} s`))
        }, timeoutMs)
        this.waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  /** Sends one packet and returns the reply's payload (acknowledging it unless in no-ack mode). */
  async request(payload: string, timeoutMs = REPLY_TIMEOUT_MS, skipStops = false): Promise<Buffer> {
    if (this.failure !== undefined) throw this.failure
    const packet = encodePacket(payload)
    this.socket.write(packet)
    for (let tries = 0; ;) {
      const event = await this.next(timeoutMs)
      if (event.kind === 'ack') continue
      if (event.kind === 'nak') {
        if (++tries > 3) throw new HvmemError('gdb', `the gdbstub at ${this.where} rejected the packet ${payload.slice(0, 20)} three times`)
        this.socket.write(packet)
        continue
      }
      if (!event.checksumOk) {
        if (this.noAck) throw new HvmemError('gdb', `the gdbstub at ${this.where} sent a reply with a bad checksum`)
        this.socket.write('-')
        continue
      }
      if (!this.noAck) this.socket.write('+')
      // QEMU stops a running guest when gdb attaches and reports it unasked ("T02thread:01;")
      if (skipStops && /^[TS][0-9a-fA-F]{2}/.test(event.payload.toString('latin1'))) continue
      return event.payload
    }
  }

  private async text(payload: string): Promise<string> {
    return (await this.request(payload)).toString('latin1')
  }

  /** qSupported, then no-ack mode if offered; stops the target ("?": QEMU halts the guest when gdb attaches). */
  async handshake(): Promise<{features: string}> {
    const features = (await this.request('qSupported:multiprocess+;xmlRegisters=aarch64;qXfer:features:read+', REPLY_TIMEOUT_MS, true)).toString('latin1')
    if (features.includes('QStartNoAckMode+') && (await this.text('QStartNoAckMode')) === 'OK') this.noAck = true
    await this.text('?')
    return {features}
  }

  /** The registers of the target description (target.xml and what it includes), numbered. */
  async targetRegisters(): Promise<TargetRegister[]> {
    const documents: TargetDocument[] = []
    const read = async (annex: string): Promise<void> => {
      const doc = parseTargetXml(await this.xfer(annex))
      documents.push(doc)
      for (const include of doc.includes) await read(include)
    }
    await read('target.xml')
    return numberRegisters(documents)
  }

  private async xfer(annex: string): Promise<string> {
    const parts: Buffer[] = []
    for (let offset = 0; ;) {
      const reply = await this.request(`qXfer:features:read:${annex}:${offset.toString(16)},ffb`)
      if (reply.length === 0 || isErrorReply(reply.toString('latin1')))
        throw new HvmemError('gdb', `the gdbstub at ${this.where} has no target description ${annex} (reply ${JSON.stringify(reply.toString('latin1'))})`)
      const chunk = xferChunk(reply)
      parts.push(chunk.data)
      offset += chunk.data.length
      if (chunk.last) return Buffer.concat(parts).toString('utf8')
    }
  }

  /** A register's value by number (`p`), or undefined if the stub cannot read it. */
  async readRegister(regnum: number): Promise<bigint | undefined> {
    const reply = await this.text(`p${regnum.toString(16)}`)
    if (reply === '' || isErrorReply(reply) || /x/i.test(reply)) return undefined
    return registerValue(reply)
  }

  /** QEMU's memory mode: physical (`Qqemu.PhyMemMode:1`) or the current CPU's virtual addresses. */
  async setPhysicalMode(physical: boolean): Promise<void> {
    const reply = await this.text(`Qqemu.PhyMemMode:${physical ? 1 : 0}`)
    if (reply !== 'OK')
      throw new HvmemError('gdb', `the gdbstub at ${this.where} has no physical memory mode (Qqemu.PhyMemMode answered ${JSON.stringify(reply)}): it is not QEMU's, or QEMU is older than 4.0`)
  }

  /** `length` bytes at `address` (at most MEMORY_CHUNK), or undefined if the stub answers with an error (unmapped, or a fault). */
  async readMemory(address: bigint, length: number): Promise<Buffer | undefined> {
    const reply = await this.text(`m${address.toString(16)},${length.toString(16)}`)
    if (isErrorReply(reply)) return undefined
    const bytes = fromHex(reply)
    if (bytes.length !== length) throw new HvmemError('gdb', `the gdbstub at ${this.where} returned ${bytes.length} of ${length} bytes at 0x${address.toString(16)}`)
    return bytes
  }

  /**
   * `length` bytes from `address` in MEMORY_CHUNK pieces, `window` requests in flight at once (the
   * stub answers them in order), reporting the bytes read so far; a chunk the stub refuses is an error.
   */
  async readMemoryRange(address: bigint, length: number, onProgress: (done: number) => void, window = 32): Promise<Buffer> {
    const out = Buffer.alloc(length)
    const chunks = Math.ceil(length / MEMORY_CHUNK)
    const packet = (k: number): Buffer => {
      const size = Math.min(MEMORY_CHUNK, length - k * MEMORY_CHUNK)
      return encodePacket(`m${(address + BigInt(k * MEMORY_CHUNK)).toString(16)},${size.toString(16)}`)
    }
    let sent = 0
    for (; sent < Math.min(window, chunks); sent++) this.socket.write(packet(sent))
    for (let k = 0; k < chunks;) {
      const event = await this.next(REPLY_TIMEOUT_MS)
      if (event.kind !== 'packet') continue
      if (!event.checksumOk) throw new HvmemError('gdb', `the gdbstub at ${this.where} sent a reply with a bad checksum`)
      if (!this.noAck) this.socket.write('+')
      const reply = event.payload.toString('latin1')
      const at = address + BigInt(k * MEMORY_CHUNK)
      const size = Math.min(MEMORY_CHUNK, length - k * MEMORY_CHUNK)
      if (isErrorReply(reply)) throw new HvmemError('gdb', `the gdbstub at ${this.where} could not read physical memory at 0x${at.toString(16)} (${reply}): is it RAM?`)
      const bytes = fromHex(reply)
      if (bytes.length !== size) throw new HvmemError('gdb', `the gdbstub at ${this.where} returned ${bytes.length} of ${size} bytes at 0x${at.toString(16)}`)
      bytes.copy(out, k * MEMORY_CHUNK)
      k++
      if (sent < chunks) this.socket.write(packet(sent++))
      if (k % 64 === 0 || k === chunks) onProgress(Math.min(length, k * MEMORY_CHUNK))
    }
    return out
  }

  /** A monitor command (qRcmd) and its output; undefined if the stub has no monitor. */
  async monitor(command: string): Promise<string | undefined> {
    this.socket.write(encodePacket(rcmdPacket(command)))
    let output = ''
    for (;;) {
      const event = await this.next(REPLY_TIMEOUT_MS)
      if (event.kind !== 'packet') continue
      if (!this.noAck) this.socket.write('+')
      const reply = event.payload.toString('latin1')
      if (reply.startsWith('O') && reply !== 'OK') output += fromHex(reply.slice(1)).toString('utf8')
      else if (reply === 'OK') return output
      else return undefined
    }
  }
}
