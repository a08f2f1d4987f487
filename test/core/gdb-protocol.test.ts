import {describe, expect, it} from 'vitest'

import {
  PacketDecoder,
  ProtocolError,
  checksum,
  decodeBody,
  encodePacket,
  fromHex,
  isErrorReply,
  numberRegisters,
  parseTargetXml,
  ramSizeFromMtree,
  rcmdPacket,
  registerValue,
  xferChunk,
} from '../../src/gdb/protocol.js'
import {parseGdbAddress} from '../../src/gdb/capture.js'

const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1')

describe('GDB remote protocol framing', () => {
  it('frames a packet with its modulo-256 checksum, escaping $ # } *', () => {
    expect(text(encodePacket('qSupported'))).toBe('$qSupported#37')
    expect(text(encodePacket('m40000000,800'))).toBe(`$m40000000,800#${checksum(Buffer.from('m40000000,800')).toString(16).padStart(2, '0')}`)
    expect(text(encodePacket(''))).toBe('$#00')
    expect(text(encodePacket('a$b#c}d*'))).toBe('$a}\u0004b}\u0003c}]d}\n#' + checksum(Buffer.from('a}\u0004b}\u0003c}]d}\n', 'latin1')).toString(16).padStart(2, '0'))
    expect(checksum(Buffer.from([0xff, 0x02]))).toBe(0x01)
  })

  it('undoes escapes and expands run-length encoding', () => {
    expect(text(decodeBody(Buffer.from('a}\u0004b}\u0003c}]d}\n', 'latin1')))).toBe('a$b#c}d*')
    // "0* " is "0" and 32 - 29 = 3 more: "0000"
    expect(text(decodeBody(Buffer.from('0* 1', 'latin1')))).toBe('00001')
    expect(text(decodeBody(Buffer.from('x*~', 'latin1')))).toBe('x'.repeat(1 + 126 - 29))
    expect(() => decodeBody(Buffer.from('*#', 'latin1'))).toThrow(ProtocolError)
    expect(() => decodeBody(Buffer.from('ab}', 'latin1'))).toThrow('escape byte')
  })

  it('splits a stream into acks and packets across any chunking, checking each checksum', () => {
    const stream = Buffer.concat([Buffer.from('+'), encodePacket('OK'), Buffer.from('-'), encodePacket('E14'), Buffer.from('$bad#00')])
    for (const size of [1, 2, 3, 7, stream.length]) {
      const d = new PacketDecoder()
      const events = []
      for (let at = 0; at < stream.length; at += size) events.push(...d.feed(stream.subarray(at, at + size)))
      expect(events.map((e) => (e.kind === 'packet' ? `${text(e.payload)}:${e.checksumOk}` : e.kind))).toEqual(['ack', 'OK:true', 'nak', 'E14:true', 'bad:false'])
    }
  })

  it('reads hex, register values (little-endian), error replies, qXfer chunks and qRcmd packets', () => {
    expect([...fromHex('00ff10')]).toEqual([0, 255, 16])
    expect(() => fromHex('abc')).toThrow(ProtocolError)
    expect(registerValue('0170854100000000')).toBe(0x4185_7001n)
    expect(registerValue('05004080')).toBe(0x8040_0005n)
    expect(() => registerValue('xxxxxxxx')).toThrow('unavailable')
    expect(isErrorReply('E14')).toBe(true)
    expect(isErrorReply('E.no such memory')).toBe(true)
    expect(isErrorReply('e1')).toBe(false)
    expect(isErrorReply('OK')).toBe(false)
    expect(xferChunk(Buffer.from('l<x/>'))).toEqual({data: Buffer.from('<x/>'), last: true})
    expect(xferChunk(Buffer.from('m<x')).last).toBe(false)
    expect(() => xferChunk(Buffer.from('T05thread:01;'))).toThrow(ProtocolError)
    expect(rcmdPacket('info mtree -f')).toBe('qRcmd,696e666f206d74726565202d66')
  })

  it('numbers the registers of a target description and its includes in order, regnum attributes restarting the count', () => {
    const target = parseTargetXml('<?xml version="1.0"?><target><architecture>aarch64</architecture><xi:include href="aarch64-core.xml"/><xi:include href="system-registers.xml"/></target>')
    expect(target.includes).toEqual(['aarch64-core.xml', 'system-registers.xml'])
    const core = parseTargetXml('<feature name="org.gnu.gdb.aarch64.core"><reg name="x0" bitsize="64"/><reg name="x1" bitsize="64"/><reg name="cpsr" bitsize="32"/></feature>')
    const sys = parseTargetXml('<feature name="org.qemu.gdb.arm.sys.regs"><reg name="SCTLR" bitsize="64" regnum="92" group="cp_regs"/><reg name="TTBR0_EL1" bitsize="64"/></feature>')
    expect(numberRegisters([target, core, sys])).toEqual([
      {name: 'x0', bitsize: 64, feature: 'org.gnu.gdb.aarch64.core', regnum: 0},
      {name: 'x1', bitsize: 64, feature: 'org.gnu.gdb.aarch64.core', regnum: 1},
      {name: 'cpsr', bitsize: 32, feature: 'org.gnu.gdb.aarch64.core', regnum: 2},
      {name: 'SCTLR', bitsize: 64, feature: 'org.qemu.gdb.arm.sys.regs', regnum: 92},
      {name: 'TTBR0_EL1', bitsize: 64, feature: 'org.qemu.gdb.arm.sys.regs', regnum: 93},
    ])
    expect(() => parseTargetXml('<feature name="f"><reg bitsize="64"/></feature>')).toThrow('without a name')
  })

  it('finds the RAM region at a base in QEMU\'s "info mtree -f"', () => {
    const mtree = '  0000000009000000-0000000009000fff (prio 0, i/o): pl011\n  0000000040000000-000000004fffffff (prio 0, ram): mach-virt.ram\n'
    expect(ramSizeFromMtree(mtree, 0x4000_0000n)).toBe(0x1000_0000n)
    expect(ramSizeFromMtree(mtree, 0x9000_000n)).toBeUndefined()
    expect(ramSizeFromMtree(mtree, 0x8000_0000n)).toBeUndefined()
  })

  it('parses --gdb HOST:PORT, :PORT, PORT and [IPv6]:PORT', () => {
    expect(parseGdbAddress('localhost:1234')).toEqual({host: 'localhost', port: 1234})
    expect(parseGdbAddress(':1234')).toEqual({host: '127.0.0.1', port: 1234})
    expect(parseGdbAddress('1234')).toEqual({host: '127.0.0.1', port: 1234})
    expect(parseGdbAddress('[::1]:1234')).toEqual({host: '::1', port: 1234})
    expect(() => parseGdbAddress('localhost')).toThrow('is not HOST:PORT')
    expect(() => parseGdbAddress('h:70000')).toThrow('is not HOST:PORT')
  })
})
