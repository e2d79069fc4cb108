// Received metadata (issue 13) between two network namespaces these tests make for themselves,
// A and B, joined by a veth pair: ECN marks sent per message from A, read back in B and checked
// on the wire in a pcap that tcpdump writes on B's interface; packet info on an interface with
// two addresses of each family (through every receive path: 'messages' + 'message', the async
// iterator, tryRecv, onBatch, tryRecvBatch); kernel receive timestamps against the wall clock and
// process.hrtime; and what a socket reports with metadata off. The sender and the receiver are
// Node processes run inside A and B (the test process stays in the root namespace); CPython's
// socket module is the independent peer. Addresses: 10.242.1.0/24 and fd00:242:1::/64, only
// inside the tests' own namespaces.
import test from 'ava'
import { execFile, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { hasCommand, isRoot, sleep } from './helpers'
import { NetnsLab } from './netns'

const canRun = isRoot() && hasCommand('ip')
const canCapture = hasCommand('tcpdump', '--version')
const hasPython = hasCommand('python3', '--version')
/** Namespace tests (root and iproute2 needed; skipped without, saying so in the title). */
const netnsTest = canRun ? test.serial : test.serial.skip
const netnsSuffix = canRun ? '' : ' (skipped: needs root and iproute2)'
/** Tests that also check the wire with tcpdump. */
const wireTest = canRun && canCapture ? test.serial : test.serial.skip
const wireSuffix = canRun && canCapture ? '' : ` (skipped: ${canRun ? 'tcpdump is not installed' : 'needs root and iproute2'})`

const A4 = '10.242.1.1'
const A6 = 'fd00:242:1::1'
/** B's veth carries two addresses of each family. */
const B4 = ['10.242.1.2', '10.242.1.3'] as const
const B6 = ['fd00:242:1::2', 'fd00:242:1::3'] as const
/** The receiver's port (a namespace of the test's own: nothing else listens there). */
const PORT = 4242

const execFileAsync = promisify(execFile)

// ---- the lab ------------------------------------------------------------------------------------

/**
 * Namespaces `a` and `b` joined by a veth (`eth0` at both ends). A knows B's MAC for all four of
 * B's addresses (permanent neighbour entries), so no ARP / neighbour discovery delays or
 * reorders the first datagrams (the timestamp test measures gaps).
 */
function twoHosts(t: { teardown(fn: () => void): void }): NetnsLab {
  const lab = new NetnsLab()
  t.teardown(() => lab.destroy())
  lab.namespace('a')
  lab.namespace('b')
  lab.veth(
    { ns: 'a', name: 'eth0', addresses: [`${A4}/24`, `${A6}/64`] },
    { ns: 'b', name: 'eth0', addresses: [...B4.map((a) => `${a}/24`), ...B6.map((a) => `${a}/64`)] },
  )
  const bMac = lab.link('b', 'eth0').address
  for (const address of [...B4, ...B6]) {
    lab.ip('-n', lab.name('a'), 'neigh', 'replace', address, 'lladdr', bMac, 'dev', 'eth0', 'nud', 'permanent')
  }
  return lab
}

// Each datagram's payload is `#<seq>#` padded with dots to its size: receivers and the pcap
// reader match datagrams back to what was sent by that seq number.

// ---- the sender (our package, in namespace A) ---------------------------------------------------

interface OutMessage {
  seq: number
  size: number
  address: string
  ecn?: 0 | 1 | 2 | 3
  tos?: number
}

interface SenderResult {
  /** Per group: how many trySend took, and the clocks read right before and after it. */
  sends: Array<{ sent: number; count: number; wallBeforeMs: number; hrBefore: string; hrAfter: string }>
}

// Sends each group with one trySend (after its delayMs), reading Date.now() and
// process.hrtime.bigint() right around the call.
const SENDER = `
const { createSocket } = require(process.env.PACKAGE_ROOT)
const cfg = JSON.parse(process.argv[1])
const socket = createSocket(cfg.type)
const payload = (seq, size) => ('#' + seq + '#').padEnd(size, '.')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
;(async () => {
  const sends = []
  for (const group of cfg.groups) {
    if (group.delayMs) await sleep(group.delayMs)
    const messages = group.messages.map((m) => {
      const message = { data: Buffer.from(payload(m.seq, m.size), 'latin1'), address: m.address, port: cfg.port }
      if (m.ecn !== undefined) message.ecn = m.ecn
      if (m.tos !== undefined) message.tos = m.tos
      return message
    })
    const wallBeforeMs = Date.now()
    const hrBefore = process.hrtime.bigint()
    const sent = socket.trySend(messages)
    const hrAfter = process.hrtime.bigint()
    sends.push({ sent, count: messages.length, wallBeforeMs, hrBefore: String(hrBefore), hrAfter: String(hrAfter) })
  }
  socket.close()
  console.log(JSON.stringify({ sends }))
})().catch((error) => { console.error(error); process.exit(1) })
`

/** Runs SENDER in namespace A; every group must go out whole. */
async function sendFromA(lab: NetnsLab, type: 'udp4' | 'udp6', groups: Array<{ messages: OutMessage[]; delayMs?: number }>): Promise<SenderResult> {
  const r = await lab.runNode('a', SENDER, [JSON.stringify({ type, port: PORT, groups })], 15_000)
  if (r.code !== 0 || r.json === undefined) throw new Error(`sender in A failed (${r.code}): ${r.stderr}`)
  const result = r.json as SenderResult
  for (const s of result.sends) if (s.sent !== s.count) throw new Error(`trySend took ${s.sent} of ${s.count}`)
  return result
}

// ---- the independent sender (CPython, in namespace A) -------------------------------------------

// One socket per message; a non-zero tos is set with IP_TOS / IPV6_TCLASS before sendto.
const PYTHON_SENDER = `
import json, socket, sys
cfg = json.loads(sys.argv[1])
sent = 0
for m in cfg['messages']:
    family = socket.AF_INET6 if ':' in m['address'] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        if m.get('tos'):
            if family == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, m['tos'])
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, m['tos'])
        data = ('#%d#' % m['seq']).ljust(m['size'], '.').encode('latin1')
        sent += s.sendto(data, (m['address'], cfg['port'])) == len(data)
print(json.dumps({'sent': sent}))
`

async function sendFromPython(lab: NetnsLab, messages: OutMessage[]): Promise<void> {
  const { stdout } = await execFileAsync('ip', ['netns', 'exec', lab.name('a'), 'python3', '-c', PYTHON_SENDER,
    JSON.stringify({ port: PORT, messages })], { timeout: 10_000 })
  const { sent } = JSON.parse(stdout) as { sent: number }
  if (sent !== messages.length) throw new Error(`python sent ${sent} of ${messages.length}`)
}

// ---- the receiver (our package, in namespace B) -------------------------------------------------

type Via = 'messages' | 'messages+message' | 'iterator' | 'onBatch' | 'tryRecvBatch' | 'tryRecv'
type Metadata = { ecn?: boolean; packetInfo?: boolean; timestamps?: boolean }

/** One received datagram as the receiver reported it (fields by the path it came through). */
interface Got {
  phase: number
  /** Which receive (event, onBatch call, or successful poll) delivered it, counted from 1. */
  receive: number
  /** Date.now() × 1e6 read right when that receive returned. */
  wallNs: string
  seq: number
  size: number
  address: string
  port: number
  family?: string
  /** Datagram path: the object's own keys, sorted. */
  keys?: string[]
  ecn?: number
  tos?: number
  destination?: string
  interfaceIndex?: number
  timestamp?: string
  timestampType?: string
  /** RecvBatch path: flags[i] and the raw arrays at i. */
  flags?: number
  destinationBytes?: number[]
}

interface ReceiverResult {
  datagrams: Got[]
  /** 'message' events (dgram's shape) in the 'messages+message' phases. */
  each: Array<{ phase: number; seq: number; size: number; rinfo: Record<string, unknown> }>
  timedOut: boolean
}

// Binds, then runs the phases in order: each sets the receive metadata (unless null), prints
// "ready" (phase 0) or "phase <i>", and receives `count` datagrams through its path. Event
// paths listen at once; polled paths wait for SIGUSR2 (the test sends it once the senders are
// done), so what was queued comes in as few receives as the kernel hands over.
const RECEIVER = `
const { once } = require('node:events')
const { createSocket, createRecvBatch } = require(process.env.PACKAGE_ROOT)
const cfg = JSON.parse(process.argv[1])
const socket = createSocket(cfg.type)
const batch = createRecvBatch(64, 2048)
const datagrams = []
const each = []
let receives = 0
let phase = -1
const seqOf = (bytes) => { const m = /^#(\\d+)#/.exec(bytes.toString('latin1')); return m ? Number(m[1]) : -1 }
const wallNs = () => String(BigInt(Date.now()) * 1000000n)
function report(timedOut) {
  console.log(JSON.stringify({ datagrams, each, timedOut }))
  process.exit(0)
}
function fromDatagram(d, wall) {
  const r = { phase, receive: receives, wallNs: wall, seq: seqOf(d.data), size: d.size, address: d.address, family: d.family, port: d.port, keys: Object.keys(d).sort() }
  if (d.ecn !== undefined) r.ecn = d.ecn
  if (d.tos !== undefined) r.tos = d.tos
  if (d.destination !== undefined) r.destination = d.destination
  if (d.interfaceIndex !== undefined) r.interfaceIndex = d.interfaceIndex
  if (d.timestamp !== undefined) { r.timestampType = typeof d.timestamp; r.timestamp = String(d.timestamp) }
  return r
}
function fromBatch(b, i, wall) {
  return {
    phase, receive: receives, wallNs: wall, seq: seqOf(b.datagram(i)), size: b.lengths[i], address: b.address(i), port: b.ports[i],
    flags: b.flags[i], tos: b.tos[i], destinationBytes: Array.from(b.destinations.subarray(16 * i, 16 * i + 16)),
    interfaceIndex: b.interfaces[i], timestamp: String(b.timestamps[i]),
  }
}
function runPhase(p, index) {
  phase = index
  if (p.metadata !== null) socket.setReceiveMetadata(p.metadata)
  const start = datagrams.length
  const startEach = each.length
  const both = p.via === 'messages+message'
  const complete = () => datagrams.length - start >= p.count && (!both || each.length - startEach >= p.count)
  return new Promise((resolve) => {
    const timer = setTimeout(() => report(true), cfg.phaseTimeoutMs)
    const finish = () => { clearTimeout(timer); resolve() }
    if (p.via === 'messages' || both) {
      const onMessages = (list) => {
        receives++
        const wall = wallNs()
        for (const d of list) datagrams.push(fromDatagram(d, wall))
        check()
      }
      const onMessage = (msg, rinfo) => { each.push({ phase, seq: seqOf(msg), size: msg.length, rinfo }); check() }
      const check = () => {
        if (!complete()) return
        socket.off('messages', onMessages)
        socket.off('message', onMessage)
        finish()
      }
      socket.on('messages', onMessages)
      if (both) socket.on('message', onMessage)
    } else if (p.via === 'iterator') {
      ;(async () => {
        for await (const list of socket) {
          receives++
          const wall = wallNs()
          for (const d of list) datagrams.push(fromDatagram(d, wall))
          if (complete()) break
        }
        finish()
      })()
    } else if (p.via === 'onBatch') {
      socket.onBatch(batch, (b) => {
        receives++
        const wall = wallNs()
        for (let i = 0; i < b.count; i++) datagrams.push(fromBatch(b, i, wall))
        if (complete()) { socket.stopReceiving(); finish() }
      })
    } else {
      process.once('SIGUSR2', function poll() {
        if (p.via === 'tryRecv') {
          const list = socket.tryRecv()
          if (list.length > 0) { receives++; const wall = wallNs(); for (const d of list) datagrams.push(fromDatagram(d, wall)) }
        } else if (socket.tryRecvBatch(batch) > 0) {
          receives++
          const wall = wallNs()
          for (let i = 0; i < batch.count; i++) datagrams.push(fromBatch(batch, i, wall))
        }
        if (complete()) finish()
        else setTimeout(poll, 5)
      })
    }
    console.log(index === 0 ? 'ready' : 'phase ' + index)
  })
}
;(async () => {
  socket.bind(cfg.port, cfg.bind)
  await once(socket, 'listening')
  for (let i = 0; i < cfg.phases.length; i++) await runPhase(cfg.phases[i], i)
  socket.close()
  report(false)
})().catch((error) => { console.error(error); process.exit(1) })
`

interface Phase {
  /** What to pass to setReceiveMetadata at the phase's start (null: do not call it). */
  metadata: Metadata | null
  via: Via
  /** Datagrams the phase waits for. */
  count: number
  /** Sends the phase's datagrams (from A), once the receiver is listening for them. */
  send: () => Promise<unknown>
}

/**
 * Collects `child`'s stdout lines from now on; `waitFor(line)` resolves once that line has been
 * printed (before or after the call), bounded, and rejects if the child exits first.
 */
function stdoutLines(child: ChildProcess): { waitFor(line: string, timeoutMs?: number): Promise<void> } {
  let text = ''
  const seen = (line: string): boolean => text.split('\n').slice(0, -1).includes(line)
  child.stdout!.on('data', (d: Buffer) => { text += d })
  return {
    waitFor(line, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => { if (seen(line)) stop() }
        const onExit = (code: number | null): void => { if (!seen(line)) stop(new Error(`receiver exited (${code}) before "${line}"`)) }
        const stop = (error?: Error): void => {
          clearTimeout(timer)
          child.stdout!.off('data', check)
          child.off('exit', onExit)
          if (error) reject(error)
          else resolve()
        }
        const timer = setTimeout(() => stop(new Error(`no "${line}" within ${timeoutMs} ms`)), timeoutMs)
        child.stdout!.on('data', check)
        child.once('exit', onExit)
        check()
      })
    },
  }
}

/** Runs RECEIVER in B through `phases`, sending each phase's datagrams when it is ready. */
async function receiveInB(lab: NetnsLab, socket: { type: 'udp4' | 'udp6'; bind: string }, phases: Phase[]): Promise<ReceiverResult> {
  const config = { ...socket, port: PORT, phaseTimeoutMs: 8000, phases: phases.map(({ metadata, via, count }) => ({ metadata, via, count })) }
  const rx = lab.startNode('b', RECEIVER, [JSON.stringify(config)], 30_000)
  // Attached at once: a phase's line can come while the previous phase's send is still running.
  const lines = stdoutLines(rx.child)
  for (let i = 0; i < phases.length; i++) {
    await lines.waitFor(i === 0 ? 'ready' : `phase ${i}`)
    await phases[i]!.send()
    if (phases[i]!.via === 'tryRecvBatch' || phases[i]!.via === 'tryRecv') rx.child.kill('SIGUSR2')
  }
  const r = await rx.done
  if (r.code !== 0 || r.json === undefined) throw new Error(`receiver in B failed (${r.code}): ${r.stderr}`)
  const result = r.json as ReceiverResult
  if (result.timedOut) throw new Error(`receiver timed out with ${result.datagrams.length} datagrams: ${JSON.stringify(result.datagrams.map((d) => d.seq))}`)
  return result
}

/** The 16 bytes of a RecvBatch address slot as text (IPv4-mapped ones as `::ffff:a.b.c.d`). */
function slotText(bytes: number[]): string {
  const hex = Buffer.from(bytes).toString('hex').match(/.{4}/g)!.join(':')
  return canonicalIPv6(hex)
}

/** An IPv6 address (any spelling) in its canonical RFC 5952 text, by the WHATWG URL parser. */
function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1)
}

// ---- the wire: tcpdump on B's interface, and a small pcap reader --------------------------------

/** One captured UDP packet: its IP family, TOS byte / traffic class, addresses and payload. */
interface WirePacket {
  family: 4 | 6
  trafficClass: number
  source: string
  destination: string
  destinationPort: number
  payload: Buffer
}

/**
 * Parses a classic pcap file (either byte order, µs or ns timestamps) of Ethernet frames into
 * its UDP packets. A record cut short at the end (tcpdump still writing) is left for later.
 */
function parsePcap(bytes: Buffer): WirePacket[] {
  if (bytes.length < 24) return []
  const magic = bytes.readUInt32LE(0)
  let littleEndian: boolean
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) littleEndian = true
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) littleEndian = false
  else throw new Error(`not a classic pcap file (magic 0x${magic.toString(16)})`)
  const u32 = (at: number): number => (littleEndian ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at))
  const linkType = u32(20) & 0xffff
  if (linkType !== 1) throw new Error(`link type ${linkType}, expected 1 (Ethernet)`)
  const packets: WirePacket[] = []
  for (let at = 24; at + 16 <= bytes.length;) {
    const capturedLength = u32(at + 8)
    const start = at + 16
    if (start + capturedLength > bytes.length) break
    const packet = parseEthernetUdp(bytes.subarray(start, start + capturedLength))
    if (packet !== null) packets.push(packet)
    at = start + capturedLength
  }
  return packets
}

function parseEthernetUdp(frame: Buffer): WirePacket | null {
  let etherType = frame.readUInt16BE(12)
  let ip = 14
  while (etherType === 0x8100 || etherType === 0x88a8) { // VLAN tags
    etherType = frame.readUInt16BE(ip + 2)
    ip += 4
  }
  const header = frame.subarray(ip)
  let udpStart: number
  let packet: Omit<WirePacket, 'destinationPort' | 'payload'>
  if (etherType === 0x0800) {
    if (header[9] !== 17 || (header.readUInt16BE(6) & 0x1fff) !== 0) return null // UDP, first fragment
    udpStart = (header[0]! & 0x0f) * 4
    packet = { family: 4, trafficClass: header[1]!, source: [...header.subarray(12, 16)].join('.'), destination: [...header.subarray(16, 20)].join('.') }
  } else if (etherType === 0x86dd) {
    if (header[6] !== 17) return null // UDP right after the fixed header (no extension headers here)
    udpStart = 40
    const text = (from: number): string => canonicalIPv6(header.subarray(from, from + 16).toString('hex').match(/.{4}/g)!.join(':'))
    packet = { family: 6, trafficClass: ((header[0]! & 0x0f) << 4) | (header[1]! >> 4), source: text(8), destination: text(24) }
  } else {
    return null
  }
  const udp = header.subarray(udpStart)
  // The payload runs to the frame's end: a GSO super-packet (veth passes them unsplit; B's
  // UDP layer splits them for the socket) carries several datagrams' payloads back to back.
  return { ...packet, destinationPort: udp.readUInt16BE(2), payload: udp.subarray(8) }
}

/** The seq numbers whose `#<seq>#` markers a payload carries (one, or several in a GSO super-packet). */
function seqsIn(payload: Buffer): number[] {
  return [...payload.toString('latin1').matchAll(/#(\d+)#/g)].map((m) => Number(m[1]))
}

/** Rejects with `what` after `ms` unless `promise` settles first (the timer is cleared). */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(what)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

interface Capture {
  /**
   * Waits (at most 3 s) until the pcap holds packets for every seq in `expected`, then stops
   * tcpdump with SIGINT, waits for it to exit and returns the UDP packets to the receiver's port.
   */
  stop(expected: number[]): Promise<{ packets: WirePacket[]; summary: string }>
}

/**
 * Starts tcpdump on `iface` in `ns`, writing every UDP packet to our port into a pcap, and
 * resolves once it says "listening on" (it is capturing from then on). `-U` writes each packet
 * as it is handled, `--immediate-mode` hands packets over at once (no 1 s block timeout), `-Z
 * root` keeps it from dropping to the `tcpdump` user who could not write into our 0700 temp dir.
 */
async function startCapture(t: { teardown(fn: () => void): void }, lab: NetnsLab, ns: string, iface: string): Promise<Capture> {
  const dir = mkdtempSync(join(tmpdir(), 'sendmmsg-pcap-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'capture.pcap')
  const child = lab.spawnIn(ns, 'tcpdump', ['-i', iface, '-n', '-U', '--immediate-mode', '-Z', 'root', '-w', file, 'udp', 'port', String(PORT)])
  let stderr = ''
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  await withTimeout(new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d
      if (stderr.includes('listening on')) resolve()
    })
    void exited.then((code) => reject(new Error(`tcpdump exited (${code}): ${stderr}`)))
  }), 10_000, `tcpdump did not start listening: ${stderr}`)
  const read = (): WirePacket[] => (existsSync(file) ? parsePcap(readFileSync(file)) : []).filter((p) => p.destinationPort === PORT)
  return {
    async stop(expected) {
      const deadline = Date.now() + 3000
      while (Date.now() < deadline) {
        const seen = new Set(read().flatMap((p) => seqsIn(p.payload)))
        if (expected.every((seq) => seen.has(seq))) break
        await sleep(20)
      }
      child.kill('SIGINT')
      const code = await withTimeout(exited, 5000, 'tcpdump did not exit on SIGINT')
      if (code !== 0) throw new Error(`tcpdump exited ${code}: ${stderr}`)
      return { packets: read(), summary: stderr.trim().split('\n').slice(1).join('; ') }
    },
  }
}

// ---- 1. ECN between the namespaces, read back and on the wire ------------------------------------

/** The TOS byte / traffic class a message must go out with (`ecn` replaces `tos`'s low bits). */
function expectedTos(m: OutMessage): number {
  const tos = m.tos ?? 0
  return m.ecn === undefined ? tos : (tos & 0xfc) | m.ecn
}

/**
 * Two batches to `address`. The first: every codepoint, DSCP EF (0xb8) and AF11 (0x28) with
 * and without ECN, a tos whose ECN bits `ecn` replaces, unmarked messages right after marked
 * ones (a mark is per message, not left on the socket); all of different sizes. The second:
 * equal-sized runs, one with one mark (an automatic GSO run: every segment must keep it) and
 * one with alternating marks (must not be merged).
 */
function ecnBatches(address: string): OutMessage[][] {
  const marks: Array<Pick<OutMessage, 'ecn' | 'tos'>> = [
    {}, { ecn: 0 }, { ecn: 1 }, { ecn: 2 }, { ecn: 3 }, {},
    { tos: 0xb8 }, { tos: 0xb8, ecn: 1 }, { tos: 0x28, ecn: 3 }, { tos: 0x2b, ecn: 2 }, { tos: 0x2a }, { tos: 0x2b, ecn: 0 },
    { ecn: 3 }, {}, { ecn: 2 }, { ecn: 1 }, { ecn: 0 },
  ]
  const first = marks.map((mark, i) => ({ seq: i, size: 60 + 7 * i, address, ...mark }))
  const second: OutMessage[] = []
  for (let i = 0; i < 4; i++) second.push({ seq: 100 + i, size: 400, address, ecn: 2 })
  for (let i = 0; i < 4; i++) second.push({ seq: 110 + i, size: 400, address, ecn: i % 2 === 0 ? 1 : 3 })
  for (let i = 0; i < 3; i++) second.push({ seq: 120 + i, size: 300, address, tos: 0xb8, ecn: 1 })
  return [first, second]
}

const ecnCases = [
  { title: 'IPv4: udp4 → udp4', sender: 'udp4', receiver: { type: 'udp4', bind: '0.0.0.0' }, to: B4[0], family: 4 },
  { title: 'IPv6: udp6 → udp6', sender: 'udp6', receiver: { type: 'udp6', bind: '::' }, to: B6[0], family: 6 },
  { title: 'IPv4-mapped: udp6 → udp4', sender: 'udp6', receiver: { type: 'udp4', bind: '0.0.0.0' }, to: `::ffff:${B4[1]}`, family: 4 },
  { title: 'IPv4-mapped: udp6 → udp6 bound to ::', sender: 'udp6', receiver: { type: 'udp6', bind: '::' }, to: `::ffff:${B4[1]}`, family: 4 },
] as const

for (const c of ecnCases) {
  wireTest(`ECN ${c.title}: per-message ecn/tos read back in B and seen on B's wire${wireSuffix}`, async (t) => {
    const lab = twoHosts(t)
    const [first, second] = ecnBatches(c.to) as [OutMessage[], OutMessage[]]
    const all = [...first, ...second]
    const capture = await startCapture(t, lab, 'b', 'eth0')
    const got = await receiveInB(lab, c.receiver, [
      { metadata: { ecn: true }, via: 'messages', count: first.length, send: () => sendFromA(lab, c.sender, [{ messages: first }]) },
      { metadata: { ecn: true }, via: 'tryRecvBatch', count: second.length, send: () => sendFromA(lab, c.sender, [{ messages: second }]) },
    ])
    const wire = await capture.stop(all.map((m) => m.seq))

    // Read back: every datagram once, whole, with its own mark (Datagram fields, RecvBatch tos[]).
    t.deepEqual(got.datagrams.map((d) => d.seq).sort((x, y) => x - y), all.map((m) => m.seq))
    const bySeq = new Map(got.datagrams.map((d) => [d.seq, d]))
    for (const m of all) {
      const d = bySeq.get(m.seq)!
      t.is(d.size, m.size, `seq ${m.seq} size`)
      if (d.flags === undefined) {
        t.is(d.tos, expectedTos(m), `seq ${m.seq} tos (Datagram)`)
        t.is(d.ecn, expectedTos(m) & 3, `seq ${m.seq} ecn (Datagram)`)
      } else {
        t.is(d.flags & 8, 8, `seq ${m.seq}: flags say tos[] is set`)
        t.is(d.tos, expectedTos(m), `seq ${m.seq} tos[] (RecvBatch)`)
      }
    }
    // On the wire: each datagram exactly once, from A to the address it was sent to, in the
    // family the destination implies, with the TOS byte / traffic class it was sent with.
    const onWire = new Map<number, WirePacket[]>()
    for (const p of wire.packets) for (const seq of seqsIn(p.payload)) onWire.set(seq, [...(onWire.get(seq) ?? []), p])
    t.deepEqual([...onWire.keys()].sort((x, y) => x - y), all.map((m) => m.seq), 'every datagram captured')
    for (const m of all) {
      const packets = onWire.get(m.seq) ?? []
      t.is(packets.length, 1, `seq ${m.seq} captured once`)
      const p = packets[0]
      if (p === undefined) continue
      t.is(p.family, c.family, `seq ${m.seq} family on the wire`)
      t.is(p.source, c.family === 4 ? A4 : A6)
      t.is(p.destination, c.family === 4 ? c.to.replace('::ffff:', '') : c.to)
      t.is(p.trafficClass, expectedTos(m), `seq ${m.seq}: wire TOS 0x${p.trafficClass.toString(16)}, sent 0x${expectedTos(m).toString(16)}`)
    }
    const superPackets = wire.packets.filter((p) => seqsIn(p.payload).length > 1).length
    t.log(`${all.length} datagrams in ${wire.packets.length} captured packets (${superPackets} GSO super-packets); ` +
      `${got.datagrams.length} read back in ${new Set(got.datagrams.map((d) => d.receive)).size} receives; tcpdump: ${wire.summary}`)
  })
}

// ---- 2. Packet info: two addresses of each family on one interface -------------------------------

/** `count` messages from `seq` on, alternating between the two addresses. */
function alternating(seq: number, count: number, addresses: readonly string[], extra: Partial<OutMessage> = {}): OutMessage[] {
  return Array.from({ length: count }, (_, i) => ({ seq: seq + i, size: 50 + i, address: addresses[i % addresses.length]!, ...extra }))
}

const packetInfoCases = [
  {
    title: 'udp4 bound to 0.0.0.0',
    receiver: { type: 'udp4', bind: '0.0.0.0' },
    sender: 'udp4',
    targets: [...B4],
    pythonTargets: [...B4],
    source: A4,
    // what the receiver reports as the destination for what was sent to `address`
    destination: (address: string) => address,
  },
  {
    title: 'udp6 bound to :: (IPv6 and IPv4-mapped)',
    receiver: { type: 'udp6', bind: '::' },
    sender: 'udp6',
    targets: [B6[0], `::ffff:${B4[0]}`, B6[1], `::ffff:${B4[1]}`],
    pythonTargets: [B6[0], B4[0], B6[1], B4[1]],
    source: null,
    // IPv4 destinations (mapped or not) as ::ffff:a.b.c.d, IPv6 ones in RFC 5952 form
    destination: (address: string) => (address.startsWith('::ffff:') ? address : address.includes(':') ? canonicalIPv6(address) : `::ffff:${address}`),
  },
] as const

for (const c of packetInfoCases) {
  netnsTest(`packet info, ${c.title}: the address each datagram was sent to and B's veth index${netnsSuffix}`, async (t) => {
    if (!hasPython) t.log('python3 not found: the CPython peer is left out')
    const lab = twoHosts(t)
    const vethIndex = lab.link('b', 'eth0').ifindex
    const loIndex = lab.link('b', 'lo').ifindex
    t.not(vethIndex, loIndex)
    const fromPackage = [alternating(0, 8, c.targets), alternating(100, 8, c.targets), alternating(400, 8, c.targets), alternating(500, 6, c.targets)]
    // CPython marks its datagrams with a DSCP (AF21) too: ecn rides along with packet info.
    const fromPython = hasPython ? [alternating(200, 6, c.pythonTargets, { tos: 0x48 }), alternating(300, 6, c.pythonTargets, { tos: 0x49 })] : [[], []]
    const got = await receiveInB(lab, c.receiver, [
      {
        metadata: { packetInfo: true, ecn: true }, via: 'messages+message', count: fromPackage[0]!.length + fromPython[0]!.length,
        send: async () => { await sendFromA(lab, c.sender, [{ messages: fromPackage[0]! }]); if (hasPython) await sendFromPython(lab, fromPython[0]!) },
      },
      { metadata: { packetInfo: true, ecn: true }, via: 'onBatch', count: fromPackage[1]!.length, send: () => sendFromA(lab, c.sender, [{ messages: fromPackage[1]! }]) },
      { metadata: { packetInfo: true, ecn: true }, via: 'tryRecvBatch', count: fromPython[1]!.length, send: async () => { if (hasPython) await sendFromPython(lab, fromPython[1]!) } },
      { metadata: { packetInfo: true, ecn: true }, via: 'iterator', count: fromPackage[2]!.length, send: () => sendFromA(lab, c.sender, [{ messages: fromPackage[2]! }]) },
      { metadata: { packetInfo: true, ecn: true }, via: 'tryRecv', count: fromPackage[3]!.length, send: () => sendFromA(lab, c.sender, [{ messages: fromPackage[3]! }]) },
    ])
    const sent = [...fromPackage.flat(), ...fromPython.flat()]
    t.deepEqual(got.datagrams.map((d) => d.seq).sort((x, y) => x - y), sent.map((m) => m.seq).sort((x, y) => x - y))
    const bySeq = new Map(sent.map((m) => [m.seq, m]))
    const destinationsSeen = new Set<string>()
    for (const d of got.datagrams) {
      const m = bySeq.get(d.seq)!
      const want = c.destination(m.address)
      const fromV4 = !m.address.includes(':') || m.address.startsWith('::ffff:')
      const source = c.source ?? (fromV4 ? `::ffff:${A4}` : A6)
      t.is(d.address, source, `seq ${d.seq} sender`)
      if (d.flags === undefined) {
        t.is(d.destination, want, `seq ${d.seq} destination (Datagram)`)
        t.is(d.interfaceIndex, vethIndex, `seq ${d.seq} interfaceIndex (Datagram)`)
        t.is(d.tos, expectedTos(m), `seq ${d.seq} tos (Datagram)`)
        destinationsSeen.add(d.destination!)
      } else {
        t.is(d.flags & (8 | 16), 8 | 16, `seq ${d.seq}: flags say tos[], destinations[] and interfaces[] are set`)
        // Bit 64: an IPv6 destination (IPv4 ones, mapped or not, are stored as ::ffff:a.b.c.d).
        t.is(d.flags & 64, want.includes(':') && !want.startsWith('::ffff:') ? 64 : 0, `seq ${d.seq} destination-is-IPv6 flag`)
        t.is(slotText(d.destinationBytes!), canonicalIPv6(want.includes(':') ? want : `::ffff:${want}`), `seq ${d.seq} destinations[] (RecvBatch)`)
        t.is(d.interfaceIndex, vethIndex, `seq ${d.seq} interfaces[] (RecvBatch)`)
        t.is(d.tos, expectedTos(m), `seq ${d.seq} tos[] (RecvBatch)`)
        destinationsSeen.add(want)
      }
    }
    t.is(destinationsSeen.size, c.targets.length, 'every one of B\'s addresses was seen as a destination')
    // 'message' listeners get dgram's (msg, rinfo): the same datagrams, no metadata in rinfo.
    t.deepEqual(got.each.map((e) => e.seq).sort((x, y) => x - y), got.datagrams.filter((d) => d.phase === 0).map((d) => d.seq).sort((x, y) => x - y))
    for (const e of got.each) t.deepEqual(Object.keys(e.rinfo).sort(), ['address', 'family', 'port', 'size'])
    t.log(`B's eth0 is ifindex ${vethIndex} (lo ${loIndex}); destinations seen: ${[...destinationsSeen].join(', ')}`)
  })
}

// ---- 3. Timestamps ---------------------------------------------------------------------------------

netnsTest(`timestamps in B: non-decreasing across a batch, between the send and the read, gaps tracking process.hrtime${netnsSuffix}`, async (t) => {
  const lab = twoHosts(t)
  const burst = Array.from({ length: 32 }, (_, i) => ({ seq: i, size: 40 + i, address: B4[0] }))
  const gaps = [0, 50, 50, 120, 30]
  const spaced = gaps.map((delayMs, i) => ({ delayMs, messages: [{ seq: 100 + i, size: 40, address: B4[1] }] }))
  let burstSend: SenderResult | undefined
  let spacedSend: SenderResult | undefined
  const got = await receiveInB(lab, { type: 'udp4', bind: '0.0.0.0' }, [
    { metadata: { timestamps: true }, via: 'tryRecvBatch', count: burst.length, send: async () => { burstSend = await sendFromA(lab, 'udp4', [{ messages: burst }]) } },
    { metadata: { timestamps: true }, via: 'messages', count: spaced.length, send: async () => { spacedSend = await sendFromA(lab, 'udp4', spaced) } },
  ])
  const ms = 1_000_000n

  // The burst: one sendmmsg from A, read by tryRecvBatch in B after it had all arrived.
  const inBurst = got.datagrams.filter((d) => d.phase === 0)
  t.deepEqual(inBurst.map((d) => d.seq), burst.map((m) => m.seq), 'arrival order is send order on one veth')
  const stamps = inBurst.map((d) => BigInt(d.timestamp!))
  t.true(inBurst.every((d) => (d.flags! & 32) === 32), 'flags say timestamps[] is set')
  for (let i = 1; i < stamps.length; i++) t.true(stamps[i]! >= stamps[i - 1]!, `non-decreasing at ${i}`)
  // CLOCK_REALTIME, which Date.now() reads too (truncated to whole ms: hence the 1 ms). Each stamp
  // lies after the sender's Date.now() right before its trySend and before the receiver's
  // Date.now() right after the receive that returned it: no tolerance beyond that truncation.
  const sentAt = BigInt(burstSend!.sends[0]!.wallBeforeMs) * ms
  for (const [i, d] of inBurst.entries()) {
    const readAt = BigInt(d.wallNs)
    t.true(stamps[i]! >= sentAt && stamps[i]! <= readAt + ms, `seq ${d.seq}: ${stamps[i]} within [${sentAt}, ${readAt + ms}]`)
    // And read within 1 s of arrival: far above scheduling delays on a loaded 2-core machine,
    // far below what a wrong clock (monotonic: off by decades) or unit (µs, s) would give.
    t.true(readAt + ms - stamps[i]! < 1000n * ms, `seq ${d.seq} read ${(readAt - stamps[i]!) / ms} ms after arrival`)
  }
  t.log(`burst: ${inBurst.length} datagrams in ${new Set(inBurst.map((d) => d.receive)).size} receive(s), spread ${(stamps.at(-1)! - stamps[0]!) / 1000n} µs`)

  // Spaced sends: the gaps between kernel timestamps in B track the gaps between
  // process.hrtime.bigint() readings right before each trySend in A (CLOCK_MONOTONIC; the two
  // clocks run at the same rate), within 20 ms (a preemption between the hrtime read and the
  // syscall, or a late softirq, on a busy machine; typically the difference is some µs).
  const spacedGot = got.datagrams.filter((d) => d.phase === 1).sort((x, y) => x.seq - y.seq)
  t.deepEqual(spacedGot.map((d) => d.seq), spaced.map((g) => g.messages[0]!.seq))
  t.true(spacedGot.every((d) => d.timestampType === 'bigint' && d.ecn === undefined && d.destination === undefined), 'only the timestamp was asked for')
  for (const [i, d] of spacedGot.entries()) {
    const stamp = BigInt(d.timestamp!)
    const from = BigInt(spacedSend!.sends[i]!.wallBeforeMs) * ms
    t.true(stamp >= from && stamp <= BigInt(d.wallNs) + ms, `seq ${d.seq}: ${stamp} within [${from}, ${BigInt(d.wallNs) + ms}]`)
  }
  const worst: bigint[] = []
  for (let i = 1; i < spacedGot.length; i++) {
    const stampGap = BigInt(spacedGot[i]!.timestamp!) - BigInt(spacedGot[i - 1]!.timestamp!)
    const hrGap = BigInt(spacedSend!.sends[i]!.hrBefore) - BigInt(spacedSend!.sends[i - 1]!.hrBefore)
    t.true(hrGap >= BigInt(gaps[i]!) * ms, `the sender did wait ${gaps[i]} ms`)
    const off = stampGap > hrGap ? stampGap - hrGap : hrGap - stampGap
    worst.push(off)
    t.true(off <= 20n * ms, `gap ${i}: timestamps ${stampGap / 1000n} µs apart, sends ${hrGap / 1000n} µs apart`)
  }
  t.log(`spaced sends: timestamp gaps differ from hrtime gaps by at most ${worst.reduce((a, b) => (a > b ? a : b)) / 1000n} µs`)
})

// ---- 4. Metadata off -------------------------------------------------------------------------------

netnsTest(`metadata off (never on, and turned off again): no fields, no flags${netnsSuffix}`, async (t) => {
  const lab = twoHosts(t)
  // Marked datagrams (EF + CE) to B's second address: there is something to report if asked.
  let seq = 0
  const group = (): OutMessage[] => Array.from({ length: 4 }, () => ({ seq: seq++, size: 64, address: B4[1], tos: 0xb8, ecn: 3 }))
  const groups = Array.from({ length: 7 }, group)
  const send = (i: number) => () => sendFromA(lab, 'udp4', [{ messages: groups[i]! }])
  const all: Metadata = { ecn: true, packetInfo: true, timestamps: true }
  const got = await receiveInB(lab, { type: 'udp4', bind: '0.0.0.0' }, [
    { metadata: null, via: 'messages+message', count: 4, send: send(0) },
    { metadata: null, via: 'tryRecvBatch', count: 4, send: send(1) },
    { metadata: { ecn: true }, via: 'tryRecvBatch', count: 4, send: send(2) },
    { metadata: all, via: 'tryRecvBatch', count: 4, send: send(3) },
    { metadata: {}, via: 'tryRecvBatch', count: 4, send: send(4) },
    { metadata: {}, via: 'messages+message', count: 4, send: send(5) },
    { metadata: {}, via: 'tryRecv', count: 4, send: send(6) },
  ])
  const phase = (i: number): Got[] => got.datagrams.filter((d) => d.phase === i)
  t.deepEqual(got.datagrams.map((d) => d.seq).sort((x, y) => x - y), groups.flat().map((m) => m.seq))
  const plainKeys = ['address', 'data', 'family', 'port', 'size', 'truncated']
  for (const i of [0, 5, 6]) {
    for (const d of phase(i)) t.deepEqual(d.keys, plainKeys, `phase ${i} seq ${d.seq}: a Datagram without metadata has no metadata keys`)
  }
  for (const e of got.each) t.deepEqual(Object.keys(e.rinfo).sort(), ['address', 'family', 'port', 'size'])
  const META_FLAGS = 8 | 16 | 32 | 64
  for (const i of [1, 4]) {
    for (const d of phase(i)) t.is(d.flags! & META_FLAGS, 0, `phase ${i} seq ${d.seq}: flags claim no metadata`)
  }
  // Only what was asked for: ecn alone sets bit 8 only; all three set 8, 16 and 32 (IPv4: no 64).
  for (const d of phase(2)) {
    t.is(d.flags! & META_FLAGS, 8, `seq ${d.seq}`)
    t.is(d.tos, 0xbb)
  }
  for (const d of phase(3)) {
    t.is(d.flags! & META_FLAGS, 8 | 16 | 32, `seq ${d.seq}`)
    t.is(d.tos, 0xbb)
    t.is(slotText(d.destinationBytes!), canonicalIPv6(`::ffff:${B4[1]}`))
  }
  t.log(`after turning it off, the batch's arrays still hold the last values (tos[0] = 0x${(phase(4)[0]?.tos ?? 0).toString(16)}): the flags are what tell`)
})
