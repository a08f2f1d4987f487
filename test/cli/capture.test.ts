/**
 * snapshot capture against a fake gdbstub (a TCP server in the test speaking the GDB remote
 * protocol as QEMU's does): a capture, the registers it records and the walks that default to them;
 * a refused connection; a connection dropped in the middle of the RAM read.
 */
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {type Server, type Socket, createServer} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {DumpMapJson} from '../../src/commands/dump/map.js'
import {PacketDecoder, encodePacket} from '../../src/gdb/protocol.js'
import {runInProcess} from './inprocess.js'

const RAM_BASE = 0x4000_0000
const RAM_BYTES = 0x4_0000 // 256 KiB
/** TTBR1_EL1's root: one level-1 table whose entry 0 is a 1 GiB block of VA 0xffffff8000000000 at PA 0x4000_0000 */
const ROOT = RAM_BASE + 0x1000
/** T0SZ 25, EPD0, T1SZ 25, TG1 4K, IPS 40-bit */
const TCR_EL1 = 0x2_8019_0099n
const REGISTERS: Record<string, bigint> = {cpsr: 0x3c5n, TTBR0_EL1: 0n, TTBR1_EL1: BigInt(ROOT) | (5n << 48n), TCR_EL1, MAIR_EL1: 0xffn, SCTLR: 0x30d0_1805n}

function ram(): Buffer {
  const bytes = Buffer.alloc(RAM_BYTES)
  bytes.writeBigUInt64LE(0x4000_0000n | (1n << 10n) | 1n, ROOT - RAM_BASE) // block, AF, AttrIndx 0
  bytes.write('hvmem', 0x3000, 'latin1')
  return bytes
}

const XML: Record<string, string> = {
  'target.xml':
    '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target><architecture>aarch64</architecture><xi:include href="aarch64-core.xml"/><xi:include href="system-registers.xml"/></target>',
  'aarch64-core.xml': `<feature name="org.gnu.gdb.aarch64.core">${Array.from({length: 31}, (_, i) => `<reg name="x${i}" bitsize="64"/>`).join('')}<reg name="sp" bitsize="64"/><reg name="pc" bitsize="64"/><reg name="cpsr" bitsize="32"/></feature>`,
  'system-registers.xml': `<feature name="org.qemu.gdb.arm.sys.regs">${Object.keys(REGISTERS)
    .filter((n) => n !== 'cpsr')
    .map((n, i) => `<reg name="${n}" bitsize="64" regnum="${100 + i}" group="cp_regs"/>`)
    .join('')}</feature>`,
}
const regnums = new Map<number, string>([
  [33, 'cpsr'],
  ...Object.keys(REGISTERS)
    .filter((n) => n !== 'cpsr')
    .map((n, i): [number, string] => [100 + i, n]),
])

/** A fake QEMU gdbstub; `dropAfter` memory reads, it closes the connection. */
function fakeStub(options: {dropAfter?: number} = {}): Promise<{server: Server; port: number}> {
  const memory = ram()
  const server = createServer((socket: Socket) => {
    const decoder = new PacketDecoder()
    let reads = 0
    const reply = (payload: string): void => void socket.write(Buffer.concat([Buffer.from('+'), encodePacket(payload)]))
    socket.on('data', (chunk) => {
      for (const event of decoder.feed(chunk)) {
        if (event.kind !== 'packet') continue
        const p = event.payload.toString('latin1')
        let m: RegExpExecArray | null
        if (p.startsWith('qSupported')) reply('PacketSize=1000;qXfer:features:read+')
        else if (p === '?') reply('T05thread:01;')
        else if ((m = /^qXfer:features:read:([^:]+):([0-9a-f]+),([0-9a-f]+)$/.exec(p))) {
          const doc = XML[m[1]!]
          if (doc === undefined) reply('E00')
          else {
            const offset = parseInt(m[2]!, 16)
            const part = doc.slice(offset, offset + parseInt(m[3]!, 16))
            reply((offset + part.length >= doc.length ? 'l' : 'm') + part)
          }
        } else if ((m = /^p([0-9a-f]+)$/.exec(p))) {
          const name = regnums.get(parseInt(m[1]!, 16))
          const b = Buffer.alloc(name === 'cpsr' ? 4 : 8)
          if (name === 'cpsr') b.writeUInt32LE(Number(REGISTERS.cpsr))
          else if (name !== undefined) b.writeBigUInt64LE(REGISTERS[name]!)
          reply(name === undefined ? 'E00' : b.toString('hex'))
        } else if (p.startsWith('Qqemu.PhyMemMode:')) reply('OK')
        else if (p.startsWith('qRcmd,')) {
          reply(`O${Buffer.from('  0000000040000000-000000004003ffff (prio 0, ram): mach-virt.ram\n').toString('hex')}`)
          reply('OK')
        } else if ((m = /^m([0-9a-f]+),([0-9a-f]+)$/.exec(p))) {
          if (options.dropAfter !== undefined && reads++ >= options.dropAfter) {
            socket.destroy()
            return
          }
          const at = parseInt(m[1]!, 16) - RAM_BASE
          const length = parseInt(m[2]!, 16)
          reply(at < 0 || at + length > RAM_BYTES ? 'E14' : memory.subarray(at, at + length).toString('hex'))
        } else reply('')
      }
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({server, port: (server.address() as {port: number}).port})))
}

describe('snapshot capture --gdb (a fake gdbstub)', () => {
  let dir = ''
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hvmem-capture-'))
  })
  afterAll(async () => rm(dir, {recursive: true, force: true}))

  it('records the registers and the RAM (its size from the monitor); translate, dump tables, info and regs use them; alloc says there is no heap', async () => {
    const {server, port} = await fakeStub()
    const snap = path.join(dir, 'ok.snap')
    try {
      const r = await runInProcess(['snapshot', 'capture', '--gdb', `127.0.0.1:${port}`, '-s', snap, '--json'])
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(JSON.parse(r.stdout)).toEqual({
        snapshot: snap,
        gdb: `127.0.0.1:${port}`,
        ram: {base: '0x40000000', size: RAM_BYTES, end: '0x40040000'},
        ramSizeFrom: 'monitor',
        pagesStored: 2,
        zeroPagesSkipped: 62,
        registers: {CPSR: '0x3c5', TTBR0_EL1: '0x0', TTBR1_EL1: '0x5000040001000', TCR_EL1: '0x280190099', MAIR_EL1: '0xff', SCTLR_EL1: '0x30d01805'},
      })
    } finally {
      server.close()
    }
    const t = await runInProcess(['translate', '0xffffff8000001234', '-s', snap, '--json'])
    expect(t.code, t.stderr).toBe(0)
    const walk = JSON.parse(t.stdout) as {regime: string; output: {address: string}; el1: {range: string; asid: number}}
    // (the ASID is TTBR0_EL1's, 0, as TCR_EL1.A1 is clear)
    expect([walk.regime, walk.output.address, walk.el1.range, walk.el1.asid]).toEqual(['el1', '0x40001234', 'TTBR1_EL1', 0])
    // the recorded TCR_EL1's EPD0 disables the lower range
    const lower = await runInProcess(['translate', '0x1234', '-s', snap, '--json'])
    expect((JSON.parse(lower.stdout) as {fault: {kind: string; level: number}}).fault).toMatchObject({kind: 'translation', level: 0})
    // a flag given wins over the recorded value: an all-zero table at TTBR1_EL1
    const given = await runInProcess(['translate', '0xffffff8000001234', '--ttbr1', '0x40002000', '-s', snap, '--json'])
    expect((JSON.parse(given.stdout) as {fault: {kind: string; level: number}}).fault).toMatchObject({kind: 'translation', level: 1})
    const tables = await runInProcess(['dump', 'tables', '-s', snap, '--format', 'ranges'])
    expect(tables.stdout).toContain('0xffffff8000000000-0xffffff8040000000   1G  L1  RW/-- Normal-WB NS AF BLK  -> 0x0040000000')
    // dump map draws both EL1&0 ranges with the recorded registers, and no heap
    const map = await runInProcess(['dump', 'map', '-s', snap, '--width', '8'])
    expect(map.code, map.stderr).toBe(0)
    expect(map.stdout.split('\n')).toEqual([
      'Stage-1 (EL1&0) lower VA range: walks disabled (TCR_EL1.EPD0)',
      'Stage-1 (EL1&0) upper VA range 0xffffff8000000000-0xffffff8040000000 (TTBR1_EL1 0x5000040001000: ASID 5), 8 cells of 128M:',
      '████████',
      '█ Normal RWX  ▓ Normal RW, execute-never  ▒ Normal read-only  ▚ Device  ▄ mapped, reads fault (no access or AF clear)  ░ unmapped',
      "TCR_EL1 0x280190099  MAIR_EL1 0xff; EL1's access and PXN as in the leaf descriptors (table attributes not applied)",
      "Heap: none (the snapshot's RAM is a whole memory image)",
      '',
    ])
    const mapJson = JSON.parse((await runInProcess(['dump', 'map', '-s', snap, '--width', '8', '--json'])).stdout) as DumpMapJson
    expect([mapJson.ipa, mapJson.el1?.halves.map((h) => [h.ttbr, h.enabled, h.root, h.cells.length]), mapJson.heap]).toEqual([
      null,
      [
        ['TTBR0_EL1', false, '0x0', 0],
        ['TTBR1_EL1', true, '0x40001000', 8],
      ],
      {start: '0x40000000', end: '0x40000000', cellSize: 0, cells: [], ranges: [], tablePages: [], orphanedTables: 0},
    ])
    // mem search --through-tables walks the recorded tables too: TTBR1_EL1's 1 GiB block maps RAM from its start
    const hits = await runInProcess(['mem', 'search', '--string', 'hvmem', '--through-tables', '-s', snap, '--json'])
    expect(hits.code, hits.stderr).toBe(0)
    expect(JSON.parse(hits.stdout)).toMatchObject({regime: 'el1', hits: [{address: '0x40003000', inputs: ['0xffffff8000003000']}], truncated: false})
    const info = await runInProcess(['snapshot', 'info', '-s', snap, '--json'])
    expect(JSON.parse(info.stdout)).toMatchObject({version: 4, heap: {size: 0}, registers: {TCR_EL1: '0x280190099'}})
    const regs = await runInProcess(['regs', '-s', snap, '--json'])
    expect(JSON.parse(regs.stdout)).toMatchObject({regime: null, recorded: {SCTLR_EL1: '0x30d01805'}, registers: []})
    const before = await readFile(snap)
    const alloc = await runInProcess(['alloc', 'page', '-s', snap])
    expect(alloc.code).toBe(5)
    expect(alloc.stderr).toMatch(/^hvmem: the snapshot has no heap \(its RAM is a whole memory image\)[^\n]*\n$/)
    expect((await readFile(snap)).equals(before)).toBe(true)
  })

  it('a refused connection is one line, exit 10, and no snapshot', async () => {
    const {server, port} = await fakeStub()
    await new Promise((resolve) => server.close(resolve))
    const snap = path.join(dir, 'refused.snap')
    const r = await runInProcess(['snapshot', 'capture', '--gdb', `127.0.0.1:${port}`, '--ram-size', '256K', '-s', snap])
    expect(r.code).toBe(10)
    expect(r.stderr).toBe(`hvmem: could not connect to the gdbstub at 127.0.0.1:${port}: connection refused (is QEMU running with -gdb tcp::PORT or -s?)\n`)
    expect(existsSync(snap)).toBe(false)
  })

  it('a connection dropped in the middle of the RAM read leaves no snapshot, and an existing one unchanged under --force', async () => {
    const {server, port} = await fakeStub({dropAfter: 40})
    try {
      const snap = path.join(dir, 'dropped.snap')
      const r = await runInProcess(['snapshot', 'capture', '--gdb', `127.0.0.1:${port}`, '--ram-size', '256K', '-s', snap])
      expect(r.code).toBe(10)
      expect(r.stderr).toBe(`hvmem: the gdbstub at 127.0.0.1:${port} stopped answering: the connection closed\n`)
      expect(existsSync(snap)).toBe(false)
      const existing = path.join(dir, 'existing.snap')
      expect((await runInProcess(['heap', 'init', '-s', existing])).code).toBe(0)
      const before = await readFile(existing)
      const again = await runInProcess(['snapshot', 'capture', '--gdb', `127.0.0.1:${port}`, '--ram-size', '256K', '-s', existing, '--force'])
      expect(again.code).toBe(10)
      expect((await readFile(existing)).equals(before)).toBe(true)
    } finally {
      server.close()
    }
  })
})
