// Helpers for the reliability suites (badinput, property, faults): receivers that tell senders
// apart, a "still usable?" probe, bounded polling, child-process runs and fd accounting.
import dgram from 'node:dgram'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import { execFile } from 'node:child_process'

import type { UdpSocket } from '../index'
import { openFdCount } from './helpers'

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Node's negative errno for a code name (`errno('EMSGSIZE') === -90`). */
export function errno(code: string): number {
  const n = (os.constants.errno as Record<string, number>)[code]
  if (typeof n !== 'number') throw new Error(`unknown errno name ${code}`)
  return -n
}

export interface Datagram {
  data: Buffer
  address: string
  port: number
}

/** A node:dgram receiver (4 MiB receive buffer) that keeps every datagram with its sender. */
export interface Sink {
  socket: dgram.Socket
  port: number
  address: string
  received: Datagram[]
  /** Datagrams from one sender port, in arrival order (from index `since` of `received` on). */
  from(port: number, since?: number): Datagram[]
  /** Waits until `predicate()` holds (polls every 5 ms); false on timeout. */
  until(predicate: () => boolean, timeoutMs?: number): Promise<boolean>
  close(): Promise<void>
}

export async function sink(type: 'udp4' | 'udp6' = 'udp4'): Promise<Sink> {
  const socket = dgram.createSocket({ type, recvBufferSize: 4 << 20 })
  const received: Datagram[] = []
  socket.on('message', (data, rinfo) => received.push({ data, address: rinfo.address, port: rinfo.port }))
  const address = type === 'udp4' ? '127.0.0.1' : '::1'
  socket.bind(0, address)
  await once(socket, 'listening')
  return {
    socket,
    port: socket.address().port,
    address,
    received,
    from: (port, since = 0) => received.slice(since).filter((d) => d.port === port),
    async until(predicate, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs
      while (!predicate()) {
        if (Date.now() > deadline) return false
        await sleep(5)
      }
      return true
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
}

let markerSerial = 0

/**
 * Proves `socket` still works: sends a unique marker to `to` (with `send()` when `async`, else
 * `trySend`) and waits for it. Returns every datagram `to` got from this socket's port up to and
 * including the marker, minus the marker, so a caller can also assert what went out *before*
 * (loopback keeps one sender's datagrams in order). Pass `since` (an earlier `to.received.length`)
 * to ignore datagrams from an earlier socket that had the same port.
 */
export async function probe(
  socket: UdpSocket,
  to: Sink,
  options: { async?: boolean; timeoutMs?: number; since?: number } = {},
): Promise<{ delivered: boolean; before: Buffer[] }> {
  const marker = Buffer.from(`probe-${process.pid}-${++markerSerial}`)
  const sourcePort = socket.address().port
  if (options.async) await socket.send([marker], to.port, to.address)
  else socket.trySend([marker], to.port, to.address)
  const since = options.since ?? 0
  const delivered = await to.until(() => to.from(sourcePort, since).some((d) => d.data.equals(marker)), options.timeoutMs)
  const mine = to.from(sourcePort, since).map((d) => d.data)
  const at = mine.findIndex((d) => d.equals(marker))
  return { delivered, before: at < 0 ? mine : mine.slice(0, at) }
}

/** Runs a command and resolves with its stdout, stderr, exit code/signal and duration. */
export function run(
  file: string,
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null; ms: number; timedOut: boolean }> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 30000, killSignal: 'SIGKILL', env: options.env ?? process.env, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const ms = Date.now() - started
        resolve({
          stdout: String(stdout),
          stderr: String(stderr),
          code: child.exitCode,
          signal: child.signalCode,
          ms,
          timedOut: Boolean(error && (error as any).killed),
        })
      },
    )
  })
}

/** The last line of `stdout` that parses as JSON (fixtures print one result line). */
export function lastJson<T = any>(stdout: string): T | undefined {
  const lines = stdout.trim().split('\n').reverse()
  for (const line of lines) {
    try {
      return JSON.parse(line) as T
    } catch {}
  }
  return undefined
}

export const fixture = (name: string) => path.join(__dirname, 'fixtures', name)

/**
 * Waits for the open fd count to come back to `baseline` (closing node:dgram sockets and
 * workers releases their descriptors asynchronously). Returns the last count seen.
 */
export async function fdsSettle(baseline: number, timeoutMs = 2000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let count = openFdCount()
  while (count > baseline && Date.now() < deadline) {
    await sleep(10)
    count = openFdCount()
  }
  return count
}

/** Names what each open descriptor points at, for a readable message when fds leak. */
export function fdTargets(): string[] {
  const fs = require('node:fs') as typeof import('node:fs')
  return fs.readdirSync('/proc/self/fd').map((fd) => {
    try {
      return `${fd}->${fs.readlinkSync(`/proc/self/fd/${fd}`)}`
    } catch {
      return fd
    }
  })
}

/** Deterministic bytes for datagram `seed`: distinct contents without a random source. */
export function patterned(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  let x = (seed * 2654435761 + 12345) >>> 0
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}

/** A small seeded PRNG (mulberry32) for deriving big batches from one fast-check integer. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
