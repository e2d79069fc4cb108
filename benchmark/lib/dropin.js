'use strict'
// Unchanged dgram code, side by side: the same functions run once with node:dgram and once with
// the 'sendmmsg/dgram' drop-in (when built). (a) bursts of `socket.send(buf, port, address)`,
// 64 per event-loop turn, equal or mixed sizes; (b) request/response RTT over loopback, one
// request outstanding, both ends on the same module; (c) 'message' events under a C flood.
const nodeDgram = require('node:dgram')
const { once } = require('node:events')
const { spawnSync } = require('node:child_process')
const { createSocket } = require('../..')
const { now } = require('./util')
const { LOOPBACK } = require('./send')

let dropin = null
try {
  dropin = require('sendmmsg/dgram')
} catch {
  try {
    dropin = require('../../dist/dgram')
  } catch {}
}

const MODULES = [{ id: 'dgram', label: 'node:dgram', mod: nodeDgram }, ...(dropin ? [{ id: 'dropin', label: 'sendmmsg/dgram', mod: dropin }] : [])]
const BURST = 64
const MIXED = { min: 64, max: 1200 }

/** Payload cases: `sizes` is the per-datagram size cycle (mixed: a fixed pseudo-random 64..1200). */
function burstCases() {
  let seed = 12345
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24)
  const mixed = Array.from({ length: 4096 }, () => MIXED.min + Math.floor(rand() * (MIXED.max - MIXED.min + 1)))
  return [
    { id: '64', label: '64 B', sizes: [64] },
    { id: '1200', label: '1200 B', sizes: [1200] },
    { id: 'mixed', label: `mixed ${MIXED.min}–${MIXED.max} B`, sizes: mixed },
  ]
}

/**
 * Bursts of BURST sends, each burst in its own event-loop turn (setImmediate) once the previous
 * burst's callbacks are in: the shape of an app answering a batch of events. Counts callbacks
 * without error per second.
 */
function burstLoop(socket, buffers, port, seconds, cap) {
  return new Promise((resolve) => {
    const start = now()
    const deadline = start + seconds
    let done = 0
    let errors = 0
    let pending = 0
    let next = 0
    const onSent = (error) => {
      if (error) errors++
      else done++
      if (--pending === 0) {
        if (now() >= deadline || done + errors >= cap) resolve({ datagrams: done, seconds: now() - start, errors })
        else setImmediate(burst)
      }
    }
    const burst = () => {
      pending = BURST
      for (let i = 0; i < BURST; i++) {
        socket.send(buffers[next], port, LOOPBACK, onSent)
        next = (next + 1) % buffers.length
      }
    }
    burst()
  })
}

/** A sink (this package, never read) and one bound sender per module. */
async function createBurstBench({ bins }) {
  const sink = createSocket({ type: 'udp4' })
  sink.bind(0, LOOPBACK)
  const { port } = sink.address()
  const senders = {}
  for (const m of MODULES) {
    const s = m.mod.createSocket('udp4')
    s.bind(0, LOOPBACK)
    await once(s, 'listening')
    senders[m.id] = s
  }
  const cases = burstCases()
  const buffersOf = (c) => c.sizes.map((size, i) => Buffer.alloc(size, i & 0xff))
  /** The C sendmmsg loop, batch BURST, at `size` (for mixed: the mean size, it sends one size). */
  const cRun = (size, seconds, cap) => {
    const args = [size, BURST, cap, port, seconds, 'unconnected'].map(String)
    const r = spawnSync(bins.sendmmsg_loop, args, { encoding: 'utf8', timeout: (seconds + 10) * 1000 })
    if (r.status !== 0) throw new Error(`sendmmsg_loop ${args.join(' ')} failed: ${r.stderr || r.signal}`)
    const out = JSON.parse(r.stdout.trim().split('\n').pop())
    return { datagrams: out.datagrams, seconds: out.seconds }
  }
  return {
    cases,
    runs(c) {
      const buffers = buffersOf(c)
      const runs = Object.fromEntries(MODULES.map((m) => [m.id, (seconds, cap) => burstLoop(senders[m.id], buffers, port, seconds, cap)]))
      if (c.id === 'mixed') {
        const mean = Math.round(c.sizes.reduce((a, b) => a + b, 0) / c.sizes.length)
        runs.c = async (seconds, cap) => cRun(mean, seconds, cap)
        c.cSize = mean
      }
      return runs
    },
    close() {
      sink.close()
      for (const s of Object.values(senders)) s.close()
    },
  }
}

/**
 * Ping-pong: a client sends 32 B, the server (same module) echoes it, the client sends the next
 * when the reply arrives. Returns the round-trip times (µs) of `count` exchanges after `warmup`.
 */
async function pingPong(mod, { count, warmup, seconds }) {
  const server = mod.createSocket('udp4')
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address))
  server.bind(0, LOOPBACK)
  await once(server, 'listening')
  const client = mod.createSocket('udp4')
  client.bind(0, LOOPBACK)
  await once(client, 'listening')
  const port = server.address().port
  const payload = Buffer.alloc(32, 0x70)
  const rtts = new Float64Array(count)
  const result = await new Promise((resolve) => {
    let i = -warmup
    let sentAt = 0n
    const deadline = now() + seconds
    // A lost datagram would stall the exchange: resend after 100 ms (counted in its RTT).
    let timer = null
    const ping = () => {
      sentAt = process.hrtime.bigint()
      client.send(payload, port, LOOPBACK)
      clearTimeout(timer)
      timer = setTimeout(ping, 100)
    }
    client.on('message', () => {
      const rtt = Number(process.hrtime.bigint() - sentAt) / 1000
      if (i >= 0) rtts[i] = rtt
      i++
      if (i >= count || now() > deadline) {
        clearTimeout(timer)
        resolve(Math.max(0, i))
      } else ping()
    })
    ping()
  })
  client.close()
  server.close()
  const sorted = Array.from(rtts.subarray(0, result)).sort((a, b) => a - b)
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
  return { roundTrips: sorted.length, p50: q(0.5), p99: q(0.99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length }
}

module.exports = { MODULES, BURST, createBurstBench, pingPong, dropin }
