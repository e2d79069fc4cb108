// Test helpers: an independent node:dgram peer, bounded waits, and a slow link in a network
// namespace for real EAGAIN.
import dgram from 'node:dgram'
import { execFileSync, spawn, ChildProcess } from 'node:child_process'
import { once } from 'node:events'

export interface Received {
  data: Buffer
  address: string
  port: number
}

/** A node:dgram socket bound on loopback that records every datagram it receives. */
export async function dgramReceiver(type: 'udp4' | 'udp6' = 'udp4'): Promise<{
  socket: dgram.Socket
  port: number
  received: Received[]
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>
  close(): void
}> {
  const socket = dgram.createSocket({ type, recvBufferSize: 4 << 20 })
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
      // Linger briefly so duplicates (if any) would show up as extra datagrams.
      await new Promise((resolve) => setTimeout(resolve, 30))
      return received
    },
    close() {
      socket.close()
    },
  }
}

/** A node:dgram socket's descriptor (Node keeps it on the internal handle). */
export function dgramFd(socket: dgram.Socket): number {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol')
  const handle = state ? (socket as any)[state].handle : undefined
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) throw new Error('no fd on this dgram socket')
  return handle.fd
}

/** `count` distinct payloads: a 4-byte big-endian index, then `size - 4` bytes derived from it. */
export function numberedPayloads(count: number, size = 8): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const b = Buffer.alloc(Math.max(size, 4))
    b.writeUInt32BE(i, 0)
    for (let j = 4; j < b.length; j++) b[j] = (i * 31 + j) & 0xff
    return b
  })
}

export function openFdCount(): number {
  return require('node:fs').readdirSync('/proc/self/fd').length
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

export function hasIp(): boolean {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * A veth pair into a network namespace of our own, with a slow qdisc on our side, so that a
 * socket with a tiny send buffer really gets EAGAIN. Only addresses inside the namespace are
 * used; everything is deleted by `destroy()`.
 */
export interface SlowLink {
  namespace: string
  localAddress: string
  peerAddress: string
  destroy(): void
  /** Runs a node:dgram receiver inside the namespace; resolves once it listens. */
  startPeer(port: number, expected: number, timeoutMs: number): Promise<ChildProcess>
}

export function createSlowLink(rate = '20mbit'): SlowLink {
  const id = (process.pid % 10000).toString()
  const namespace = `smmsg${id}`
  const hostIf = `smh${id}`
  const peerIf = `smp${id}`
  const subnet = 40 + (process.pid % 200)
  const localAddress = `10.233.${subnet}.1`
  const peerAddress = `10.233.${subnet}.2`
  const run = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' })
  const destroy = () => {
    try { run('link', 'del', hostIf) } catch {}
    try { run('netns', 'del', namespace) } catch {}
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
    execFileSync('tc', ['qdisc', 'add', 'dev', hostIf, 'root', 'tbf', 'rate', rate, 'burst', '32kbit', 'latency', '400ms'])
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
      const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, require.resolve('./peer-receiver.js'), peerAddress, String(port), String(expected), String(timeoutMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', (d) => (String(d).startsWith('ready') ? resolve() : reject(new Error(String(d)))))
        child.once('error', reject)
      })
      return child
    },
  }
}

/** Collects a child's stdout after its 'ready' line and parses the final JSON line. */
export async function peerResult(child: ChildProcess): Promise<{ count: number; inOrder: boolean; duplicates: number; corrupt: number }> {
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  await once(child, 'exit')
  return JSON.parse(out.trim().split('\n').pop() as string)
}
