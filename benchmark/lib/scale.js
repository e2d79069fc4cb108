'use strict'
// Scale: many idle sockets, and one port shared by several worker threads (SO_REUSEPORT).
//
// Idle (`runIdleScale`): COUNT sockets bound to 127.0.0.1:0, each with a 'message' listener, for
// this package and for node:dgram, each in a fresh `bash -c 'ulimit -n ...; node ...'` child
// (10 000 sockets need more file descriptors than the usual soft limit). Per socket: RSS and
// ArrayBuffer growth (after a full GC), time to create + bind + arm, then CPU time and context
// switches of the whole process while idle for 2 s (nothing should wake up), then one datagram
// to the first, middle and last socket must still arrive.
//
// reusePort (`runReusePort`): N worker threads, each with one socket bound to the same port with
// `reusePort: true` and an onBatch receiver; a C flood (sendmmsg_flows) from many source ports so
// the kernel's 4-tuple hash spreads the flows. Workers publish their counts in a
// SharedArrayBuffer; the main thread reads them at the window's edges.
const path = require('node:path')
const v8 = require('node:v8')
const vm = require('node:vm')
const fs = require('node:fs')
const { execFileSync } = require('node:child_process')
const { Worker, isMainThread, workerData } = require('node:worker_threads')
const { now, sleep, runChild, jsonLine, summarize } = require('./util')

const LOOPBACK = '127.0.0.1'
const RCVBUF = 4 << 20

function getGc() {
  if (typeof global.gc === 'function') return global.gc
  try {
    v8.setFlagsFromString('--expose-gc')
    return vm.runInNewContext('gc')
  } catch {
    return null
  }
}

/** Context switches of every thread of this process (voluntary + involuntary). */
function contextSwitches() {
  let total = 0
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const s = fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8')
      for (const m of s.matchAll(/ctxt_switches:\s+(\d+)/g)) total += Number(m[1])
    } catch {}
  }
  return total
}

/** In the child: open `count` idle receiving sockets of `kind` ('pkg' or 'dgram') and measure. */
async function measureIdleScale({ count, kind, idleSeconds }) {
  const gc = getGc()
  const dgram = require('node:dgram')
  const { createSocket } = require('../..')
  // Warm up both code paths so first-use allocations are not charged to the sockets.
  const warm = kind === 'dgram' ? dgram.createSocket('udp4') : createSocket('udp4')
  warm.on('message', () => {})
  warm.bind(0, LOOPBACK)
  await sleep(50)
  warm.close()
  await sleep(50)
  if (gc) gc()
  const before = process.memoryUsage()
  const t0 = now()
  const sockets = []
  const listening = []
  for (let i = 0; i < count; i++) {
    if (kind === 'dgram') {
      const s = dgram.createSocket('udp4')
      s.on('message', () => {})
      listening.push(new Promise((resolve) => s.once('listening', resolve)))
      s.bind(0, LOOPBACK)
      sockets.push(s)
    } else {
      const s = createSocket('udp4')
      s.bind(0, LOOPBACK)
      s.on('message', () => {})
      sockets.push(s)
    }
  }
  const createSeconds = now() - t0
  // Armed: dgram once every 'listening' fired; this package arms on the next tick.
  await Promise.all(listening)
  await new Promise((resolve) => setImmediate(resolve))
  const armedSeconds = now() - t0
  if (gc) gc()
  const after = process.memoryUsage()

  // Idle: one timer, nothing else should run.
  const cpu0 = process.cpuUsage()
  const cs0 = contextSwitches()
  const i0 = now()
  await sleep(idleSeconds * 1000)
  const idleWall = now() - i0
  const cpu = process.cpuUsage(cpu0)
  const idleSwitches = contextSwitches() - cs0

  // Traffic to a few of them still arrives.
  const targets = [0, count >> 1, count - 1]
  const tx = dgram.createSocket('udp4')
  const t1 = now()
  const arrived = await Promise.all(
    targets.map(
      (i) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve(false), 2000)
          sockets[i].once('message', () => {
            clearTimeout(timer)
            resolve(true)
          })
          tx.send(`wake ${i}`, sockets[i].address().port, LOOPBACK)
        }),
    ),
  )
  const wakeMs = (now() - t1) * 1000
  tx.close()
  for (const s of sockets) s.close()
  return {
    kind,
    sockets: count,
    gcAvailable: !!gc,
    rssGrowth: after.rss - before.rss,
    arrayBuffersGrowth: after.arrayBuffers - before.arrayBuffers,
    externalGrowth: after.external - before.external,
    heapUsedGrowth: after.heapUsed - before.heapUsed,
    createSeconds,
    armedSeconds,
    idleSeconds: idleWall,
    idleCpuUs: cpu.user + cpu.system,
    idleSwitches,
    arrived: targets.map((i, k) => ({ socket: i, arrived: arrived[k] })),
    allArrived: arrived.every(Boolean),
    wakeMs,
  }
}

/** Both kinds, each in its own child with a raised file-descriptor limit. */
function runIdleScale({ count, idleSeconds, nofile }) {
  const out = {}
  for (const kind of ['pkg', 'dgram']) {
    const cmd = `ulimit -n ${nofile} && exec "$0" --expose-gc "$1" idle "$2" "$3" "$4"`
    const stdout = execFileSync('bash', ['-c', cmd, process.execPath, __filename, kind, count, idleSeconds], {
      encoding: 'utf8',
      timeout: 120000,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    out[kind] = JSON.parse(stdout.trim().split('\n').pop())
  }
  return { count, idleSeconds, nofile, ...out }
}

/** Worker thread: one reusePort socket, counting into shared slot `index`. */
function reusePortWorker() {
  const { createSocket, createRecvBatch } = require('../..')
  const { port, index, counts, control } = workerData
  const s = createSocket({ type: 'udp4', reusePort: true, recvBufferSize: RCVBUF, receive: { maxDatagrams: 1024, maxSize: 2048 } })
  s.bind(port, LOOPBACK)
  const slot = new BigInt64Array(counts)
  const ctl = new Int32Array(control)
  let n = 0
  s.onBatch(createRecvBatch(1024, 2048), (b) => {
    n += b.count
    Atomics.store(slot, index, BigInt(n))
  })
  // Report the bound port, then poll the stop flag (cheap: every 50 ms).
  Atomics.store(ctl, 1 + index, s.address().port)
  Atomics.add(ctl, 0, 1)
  Atomics.notify(ctl, 0)
  const timer = setInterval(() => {
    if (Atomics.load(ctl, 0) < 0) {
      clearInterval(timer)
      slot[index + 64] = BigInt(s.dropCount || 0)
      s.stopReceiving()
      s.close()
    }
  }, 50)
}

/** One run: N workers share a port; flood for `flood` s; count over [from, to] s after start. */
async function reusePortRun({ bins, workers, flows, flood, from, to }) {
  const counts = new SharedArrayBuffer(8 * 128)
  const control = new SharedArrayBuffer(4 * 65)
  const ctl = new Int32Array(control)
  const slot = new BigInt64Array(counts)
  // The first socket picks the port (bind to 0), the others join it.
  const threads = []
  let port = 0
  for (let i = 0; i < workers; i++) {
    const w = new Worker(__filename, { workerData: { port, index: i, counts, control } })
    w.on('error', (e) => console.error('reusePort worker:', e))
    threads.push(w)
    const until = Date.now() + 5000
    while (Atomics.load(ctl, 0) <= i && Date.now() < until) await sleep(5)
    if (i === 0) port = Atomics.load(ctl, 1)
  }
  const read = () => Array.from({ length: workers }, (_, i) => Number(slot[i]))
  const sender = runChild(bins.sendmmsg_flows, [64, flows, port, flood], { timeoutMs: (flood + 10) * 1000 })
  const t0 = now()
  await sleep(from * 1000)
  const a = { t: now(), c: read() }
  await sleep((to - from) * 1000)
  const b = { t: now(), c: read() }
  const f = await sender
  await sleep(100)
  Atomics.store(ctl, 0, -1)
  await Promise.all(threads.map((w) => new Promise((resolve) => w.once('exit', resolve))))
  const seconds = b.t - a.t
  const perWorker = b.c.map((c, i) => (c - a.c[i]) / seconds)
  const offered = jsonLine(f.lines, 'rate')
  return {
    rate: perWorker.reduce((x, y) => x + y, 0),
    perWorker,
    offered: offered ? offered.rate : NaN,
    totals: read(),
    drops: Array.from({ length: workers }, (_, i) => Number(slot[i + 64])),
    seconds,
    startup: a.t - t0,
  }
}

/** `runs` runs for each worker count, interleaved. */
async function runReusePort({ bins, workerCounts, runs, flows, flood, from, to }) {
  const byN = Object.fromEntries(workerCounts.map((n) => [n, []]))
  for (let r = 0; r < runs; r++) {
    for (const n of r % 2 ? [...workerCounts].reverse() : workerCounts) {
      byN[n].push(await reusePortRun({ bins, workers: n, flows, flood, from, to }))
    }
  }
  const rows = workerCounts.map((n) => {
    const list = byN[n]
    const total = summarize(list.map((x) => x.rate))
    // Per worker: median over runs of each worker's rate (sorted high to low within a run, since
    // which worker gets the bigger share of the hashed flows changes from run to run).
    const sorted = list.map((x) => [...x.perWorker].sort((p, q) => q - p))
    const perWorker = Array.from({ length: n }, (_, i) => summarize(sorted.map((s) => s[i])).median)
    return { workers: n, total, perWorker, offered: summarize(list.map((x) => x.offered)).median, runs: list }
  })
  return { size: 64, flows, flood, from, to, runs, rows }
}

if (!isMainThread && workerData && workerData.counts) {
  reusePortWorker()
} else if (require.main === module) {
  const [mode, kind, count, idleSeconds] = process.argv.slice(2)
  if (mode === 'idle') {
    measureIdleScale({ kind, count: Number(count), idleSeconds: Number(idleSeconds) }).then(
      (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      (e) => {
        console.error(e)
        process.exit(1)
      },
    )
  }
}

module.exports = { runIdleScale, runReusePort, measureIdleScale, reusePortRun, FLOOD_PROGRAM: path.join('benchmark', 'c', 'sendmmsg_flows.c') }
