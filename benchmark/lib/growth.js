'use strict'
// Cost growth: how the cost per datagram changes with the number of datagrams per call, and
// whether memory stays flat over a long run.
//
// Send (`sendGrowth`): trySend(buffers, port, address) of N separate 64 B Buffers per call to a
// sink that is never read, N = 1 … 1024, in two shapes: all 64 B (equal sizes leave as UDP_SEGMENT
// (GSO) runs of up to 64 without being asked) and alternating 64/65 B (no run of equal sizes, so
// one plain sendmmsg message per datagram).
//
// Receive (`recvGrowth`): the receiver's queue is filled (untimed, from this process), then
// drained with calls of at most N datagrams, timed: tryRecvBatch(createRecvBatch(N, 2048)) (flat
// arrays, nothing allocated per datagram) and tryRecv(N) (one Datagram object each).
//
// Long run (`runLongRun`, fresh child with --expose-gc): trySend of 64 × 64 B Buffers (one GSO
// message; the plain-sendmmsg path costs ~3× more per datagram on loopback and would not fit the
// time budget), then tryRecvBatch until the queue is empty, repeated; RSS, V8 heap, external and ArrayBuffer
// memory after a full GC at 1 k, 1 M, 10 M and 100 M (BENCH_LONG_100M=0 leaves it out) datagrams, as growth
// over the reading after a warm-up.
const v8 = require('node:v8')
const vm = require('node:vm')
const { execFileSync } = require('node:child_process')
const { createSocket, createRecvBatch } = require('../..')
const { now, summarize, sleep } = require('./util')

const LOOPBACK = '127.0.0.1'
const SHAPES = [
  { id: 'equal', label: 'N × 64 B (equal sizes: GSO runs of up to 64)' },
  { id: 'alternating', label: 'N × 64/65 B alternating (plain sendmmsg, one message each)' },
]
const RECEIVE_SHAPES = [
  { id: 'batch', label: 'tryRecvBatch(createRecvBatch(N, 2048))' },
  { id: 'datagrams', label: 'tryRecv(N) (Datagram objects)' },
]

const buffersFor = (shape, n) => Array.from({ length: n }, (_, i) => Buffer.alloc(shape === 'equal' ? 64 : 64 + (i & 1), i & 0xff))

/** `runs` timed runs of `seconds` for every (shape, N), interleaved by shape. */
async function sendGrowth({ batches, runs, seconds, warmupSeconds }) {
  const sink = createSocket('udp4')
  sink.bind(0, LOOPBACK)
  const { port } = sink.address()
  const tx = createSocket('udp4')
  const run = (buffers, secs) => {
    let sent = 0
    let calls = 0
    const t0 = now()
    let t = t0
    // Look at the clock about every 1024 datagrams.
    const every = Math.max(1, Math.floor(1024 / buffers.length))
    const end = t0 + secs
    while (t < end) {
      sent += tx.trySend(buffers, port, LOOPBACK)
      if (++calls % every === 0) t = now()
    }
    t = now()
    return { datagrams: sent, calls, seconds: t - t0 }
  }
  const cells = []
  try {
    for (const n of batches) {
      const bufs = Object.fromEntries(SHAPES.map((s) => [s.id, buffersFor(s.id, n)]))
      for (const s of SHAPES) run(bufs[s.id], warmupSeconds)
      const rates = Object.fromEntries(SHAPES.map((s) => [s.id, []]))
      for (let r = 0; r < runs; r++) {
        for (const s of r % 2 ? [...SHAPES].reverse() : SHAPES) {
          const res = run(bufs[s.id], seconds)
          rates[s.id].push(res.datagrams / res.seconds)
        }
        await sleep(0) // let the event loop breathe between runs
      }
      const results = Object.fromEntries(SHAPES.map((s) => [s.id, withNs(summarize(rates[s.id]))]))
      cells.push({ batch: n, results })
    }
  } finally {
    tx.close()
    sink.close()
  }
  return { size: 64, shapes: SHAPES, cells }
}

const withNs = (s) => ({ ...s, nsPerDatagram: 1e9 / s.median })

/** Fill-then-drain receive timing for every (receive shape, N). */
async function recvGrowth({ batches, runs, seconds, fill }) {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, receive: { maxDatagrams: 1024, maxSize: 2048 } })
  rx.bind(0, LOOPBACK)
  const { port } = rx.address()
  const tx = createSocket('udp4')
  const filler = buffersFor('equal', 64)
  const refill = () => {
    for (let sent = 0; sent < fill; ) sent += tx.trySend(filler, port, LOOPBACK)
  }
  const drainers = (n) => {
    const batch = createRecvBatch(n, 2048)
    return {
      batch: () => rx.tryRecvBatch(batch),
      datagrams: () => rx.tryRecv(n).length,
    }
  }
  // One run: refill and drain until `seconds` of draining have been timed.
  const run = (drain, n, secs) => {
    let got = 0
    let timed = 0
    let calls = 0
    while (timed < secs) {
      refill()
      const t0 = now()
      let k
      do {
        k = drain()
        got += k
        calls++
      } while (k === n)
      timed += now() - t0
    }
    return { datagrams: got, calls, seconds: timed }
  }
  const cells = []
  // How many of the `fill` datagrams one refill leaves queued (the rest exceed the receive buffer).
  refill()
  let queued = 0
  for (let k; (k = rx.tryRecv(1024).length) > 0; ) queued += k
  try {
    for (const n of batches) {
      const d = drainers(n)
      for (const s of RECEIVE_SHAPES) run(d[s.id], n, 0.01)
      const rates = Object.fromEntries(RECEIVE_SHAPES.map((s) => [s.id, []]))
      for (let r = 0; r < runs; r++) {
        for (const s of r % 2 ? [...RECEIVE_SHAPES].reverse() : RECEIVE_SHAPES) {
          const res = run(d[s.id], n, seconds)
          rates[s.id].push(res.datagrams / res.seconds)
        }
        await sleep(0)
      }
      cells.push({ batch: n, results: Object.fromEntries(RECEIVE_SHAPES.map((s) => [s.id, withNs(summarize(rates[s.id]))])) })
    }
  } finally {
    tx.close()
    rx.close()
  }
  return { size: 64, fill, queued, shapes: RECEIVE_SHAPES, cells }
}

function getGc() {
  if (typeof global.gc === 'function') return global.gc
  try {
    v8.setFlagsFromString('--expose-gc')
    return vm.runInNewContext('gc')
  } catch {
    return null
  }
}

/** In the child: send + receive to each milestone, memory after a full GC at each. */
function measureLongRun({ milestones, warmup }) {
  const gc = getGc()
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, receive: { maxDatagrams: 1024, maxSize: 2048 } })
  rx.bind(0, LOOPBACK)
  const { port } = rx.address()
  const tx = createSocket('udp4')
  const buffers = buffersFor('equal', 64)
  const batch = createRecvBatch(256, 2048)
  let sent = 0
  let received = 0
  const pump = (target) => {
    while (sent < target) {
      sent += tx.trySend(buffers, port, LOOPBACK)
      let k
      do received += k = rx.tryRecvBatch(batch)
      while (k > 0)
    }
  }
  pump(warmup)
  const reading = () => {
    if (gc) gc()
    const m = process.memoryUsage()
    return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
  }
  const base = reading()
  const t0 = now()
  const points = []
  let start = sent
  for (const m of milestones) {
    pump(start + m)
    const r = reading()
    points.push({
      datagrams: sent - start,
      received,
      seconds: now() - t0,
      rssGrowth: r.rss - base.rss,
      heapUsedGrowth: r.heapUsed - base.heapUsed,
      externalGrowth: r.external - base.external,
      arrayBuffersGrowth: r.arrayBuffers - base.arrayBuffers,
    })
  }
  const seconds = now() - t0
  const drops = rx.dropCount
  tx.close()
  rx.close()
  return { warmup, base, points, seconds, rate: (sent - start) / seconds, received, drops, gcAvailable: !!gc }
}

function runLongRun({ milestones, warmup }) {
  const out = execFileSync(process.execPath, ['--expose-gc', __filename, 'long', warmup, ...milestones].map(String), {
    encoding: 'utf8',
    timeout: 1800000,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.trim().split('\n').pop())
}

if (require.main === module) {
  const [mode, warmup, ...milestones] = process.argv.slice(2)
  if (mode === 'long') process.stdout.write(`${JSON.stringify(measureLongRun({ warmup: Number(warmup), milestones: milestones.map(Number) }))}\n`)
}

module.exports = { SHAPES, RECEIVE_SHAPES, sendGrowth, recvGrowth, runLongRun, measureLongRun }
