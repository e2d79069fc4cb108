// Test helpers: an independent node:dgram peer, bounded waits, numbered payloads, and a slow
// link in a network namespace of the test's own (for real EAGAIN).
import dgram from 'node:dgram'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'

import type { UdpSocket, Datagram } from '../lib'

export interface Received {
  data: Buffer
  address: string
  port: number
}

export interface DgramReceiver {
  socket: dgram.Socket
  port: number
  received: Received[]
  /** Waits (bounded) until `count` datagrams arrived, then lingers so extras would show. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>
  close(): void
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A node:dgram socket bound on loopback that records every datagram it receives. */
export async function dgramReceiver(type: 'udp4' | 'udp6' = 'udp4'): Promise<DgramReceiver> {
  const socket = dgram.createSocket({ type, recvBufferSize: 8 << 20 })
  const received: Received[] = []
  let waiter: (() => void) | undefined
  socket.on('message', (data, rinfo) => {
    received.push({ data, address: rinfo.address, port: rinfo.port })
    waiter?.()
  })
  socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1')
  await once(socket, 'listening')
  return {
    socket,
    port: socket.address().port,
    received,
    async waitFor(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      while (received.length < count && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          waiter = resolve
          setTimeout(resolve, 50)
        })
      }
      waiter = undefined
      await sleep(30)
      return received
    },
    close() {
      socket.close()
    },
  }
}

/** A node:dgram sender bound on loopback. */
export async function dgramSender(type: 'udp4' | 'udp6' = 'udp4'): Promise<dgram.Socket> {
  const s = dgram.createSocket(type)
  s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1')
  await once(s, 'listening')
  return s
}

/** Sends each payload with dgram, one after another (each waits for the previous callback). */
export async function dgramSendAll(s: dgram.Socket, payloads: Buffer[], port: number, address: string): Promise<void> {
  for (const p of payloads) {
    await new Promise<void>((resolve, reject) => s.send(p, port, address, (e) => (e ? reject(e) : resolve())))
  }
}

/** Collects 'messages' batches until `count` datagrams arrived or the time is up. */
export function collectMessages(socket: UdpSocket, count: number, timeoutMs = 5000): Promise<{ datagrams: Datagram[]; batchSizes: number[] }> {
  const datagrams: Datagram[] = []
  const batchSizes: number[] = []
  return new Promise((resolve) => {
    const finish = (): void => {
      socket.off('messages', onMessages)
      resolve({ datagrams, batchSizes })
    }
    const timer = setTimeout(finish, timeoutMs)
    const onMessages = (batch: Datagram[]): void => {
      batchSizes.push(batch.length)
      datagrams.push(...batch)
      if (datagrams.length >= count) {
        clearTimeout(timer)
        setTimeout(finish, 30)
      }
    }
    socket.on('messages', onMessages)
  })
}

/** Polls `cond` every 10 ms, at most `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

/** `count` distinct payloads: a 4-byte big-endian sequence number, then bytes derived from it. */
export function numberedPayloads(count: number, size = 8, start = 0): Buffer[] {
  return Array.from({ length: count }, (_, k) => {
    const i = k + start
    const b = Buffer.alloc(Math.max(size, 4))
    b.writeUInt32BE(i, 0)
    for (let j = 4; j < b.length; j++) b[j] = (i * 31 + j) & 0xff
    return b
  })
}

/** Checks a numbered payload's body; returns its sequence number or -1 if corrupt. */
export function sequenceOf(b: Uint8Array): number {
  if (b.length < 4) return -1
  const i = Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32BE(0)
  for (let j = 4; j < b.length; j++) if (b[j] !== ((i * 31 + j) & 0xff)) return -1
  return i
}

/** A node:dgram socket's descriptor (Node keeps it on the internal handle). */
export function dgramFd(socket: dgram.Socket): number {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol')
  const handle = state ? (socket as unknown as Record<symbol, { handle?: { fd?: number } }>)[state]?.handle : undefined
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) throw new Error('no fd on this dgram socket')
  return handle.fd
}

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

export function hasCommand(cmd: string, arg = '-V'): boolean {
  try {
    execFileSync(cmd, [arg], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// A receiver run inside the namespace: numbered datagrams in, one JSON line out. It records
// whether sequence numbers arrived strictly increasing (the kernel accepted them in that order
// and a single veth + tbf link keeps it), duplicates and corrupt bodies. Bounded by count and time.
const PEER_SCRIPT = `
const dgram = require('node:dgram')
const [address, port, expected, timeoutMs] = process.argv.slice(1)
const want = Number(expected)
const seen = new Uint8Array(want)
let count = 0, inOrder = true, last = -1, duplicates = 0, corrupt = 0, extra = 0
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 })
const finish = () => { process.stdout.write(JSON.stringify({ count, inOrder, duplicates, corrupt, extra }) + '\\n'); socket.close() }
socket.on('message', (m) => {
  if (m.length < 4) { corrupt++; return }
  const i = m.readUInt32BE(0)
  for (let j = 4; j < m.length; j++) if (m[j] !== ((i * 31 + j) & 0xff)) { corrupt++; return }
  if (i >= want) { extra++; return }
  if (seen[i]) { duplicates++; return }
  seen[i] = 1
  if (i <= last) inOrder = false
  last = i
  count++
  if (count === want) { clearTimeout(timer); setTimeout(finish, 200) }
})
const timer = setTimeout(finish, Number(timeoutMs))
socket.bind(Number(port), address, () => process.stdout.write('ready\\n'))
`

export interface PeerResult {
  count: number
  inOrder: boolean
  duplicates: number
  corrupt: number
  extra: number
}

/**
 * A veth pair into a network namespace of our own, with a slow qdisc on our side, so that a
 * socket with a tiny send buffer really gets EAGAIN. Only addresses inside the namespace are
 * used; `destroy()` deletes everything.
 */
export interface SlowLink {
  namespace: string
  localAddress: string
  peerAddress: string
  destroy(): void
  /** Runs a node:dgram receiver inside the namespace; resolves once it listens. */
  startPeer(port: number, expected: number, timeoutMs: number): Promise<ChildProcess>
}

export function createSlowLink(rate = '20mbit', tag = 0): SlowLink {
  const id = ((process.pid + tag * 7919) % 100000).toString()
  const namespace = `smmsg${id}`
  const hostIf = `smh${id}`
  const peerIf = `smp${id}`
  // A /30 of its own per (process, tag): test files run at once in several processes, and two
  // links with the same subnet would share a route (datagrams taking the other link).
  // 200 × 64 slots; pids within 800 of each other never collide (tags are below 16).
  const slot = (process.pid * 16 + tag) % 12800
  const third = 40 + Math.floor(slot / 64)
  const base = (slot % 64) * 4
  const localAddress = `10.233.${third}.${base + 1}`
  const peerAddress = `10.233.${third}.${base + 2}`
  const run = (...args: string[]): void => {
    execFileSync('ip', args, { stdio: 'pipe' })
  }
  const destroy = (): void => {
    try { run('link', 'del', hostIf) } catch { /* already gone */ }
    try { run('netns', 'del', namespace) } catch { /* already gone */ }
  }
  destroy()
  run('netns', 'add', namespace)
  try {
    run('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf)
    run('link', 'set', peerIf, 'netns', namespace)
    run('addr', 'add', `${localAddress}/30`, 'dev', hostIf)
    run('link', 'set', hostIf, 'up')
    run('-n', namespace, 'addr', 'add', `${peerAddress}/30`, 'dev', peerIf)
    run('-n', namespace, 'link', 'set', peerIf, 'up')
    run('-n', namespace, 'link', 'set', 'lo', 'up')
    execFileSync('tc', ['qdisc', 'add', 'dev', hostIf, 'root', 'tbf', 'rate', rate, 'burst', '32kbit', 'latency', '400ms'], { stdio: 'pipe' })
    // The peer's receive processing on one CPU (RPS): tbf releases packets on whichever CPU
    // runs it (the sender in sendmmsg, or its timer), a veth queues each to that CPU's
    // backlog, and two backlogs drained independently can swap datagrams that were sent (and
    // put on the wire) in order. The tests check the order the sender kept.
    execFileSync('ip', ['netns', 'exec', namespace, 'sh', '-c', `echo 1 > /sys/class/net/${peerIf}/queues/rx-0/rps_cpus`], { stdio: 'pipe' })
  } catch (e) {
    destroy()
    throw e
  }
  return {
    namespace,
    localAddress,
    peerAddress,
    destroy,
    async startPeer(port, expected, timeoutMs) {
      const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, '-e', PEER_SCRIPT, peerAddress, String(port), String(expected), String(timeoutMs)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', (d) => (String(d).startsWith('ready') ? resolve() : reject(new Error(String(d)))))
        child.once('error', reject)
        child.once('exit', (code) => reject(new Error(`peer exited ${code}`)))
      })
      return child
    },
  }
}

/** Collects a peer's stdout after its 'ready' line and parses the final JSON line. */
export async function peerResult(child: ChildProcess): Promise<PeerResult> {
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  if (child.exitCode === null) await once(child, 'exit')
  return JSON.parse(out.trim().split('\n').pop() as string) as PeerResult
}
