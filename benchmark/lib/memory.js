'use strict'
// Resident memory over many datagrams sent by trySend(buffers, port, address) in batches of 64
// (64 B each, to a sink that is never read). After a warm-up, RSS is read (after a full GC when
// the process can request one) before and after, and sampled along the way. Runs in a fresh
// child process (`runMemoryChild`), so garbage left by other benchmarks cannot move its RSS.
const v8 = require('node:v8')
const vm = require('node:vm')
const dgram = require('node:dgram')
const { createSocket } = require('../..')
const { now } = require('./util')

const LOOPBACK = '127.0.0.1'

function getGc() {
  if (typeof global.gc === 'function') return global.gc
  try {
    v8.setFlagsFromString('--expose-gc')
    return vm.runInNewContext('gc')
  } catch {
    return null
  }
}

function sendCount(tx, buffers, port, count, samples, every) {
  let sent = 0
  let nextSample = every
  let calls = 0
  // Bounded: at most 100 empty (would-block) calls per datagram target, which never happens on
  // loopback to a sink that drops.
  const maxCalls = Math.ceil(count / buffers.length) * 100
  while (sent < count && calls++ < maxCalls) {
    sent += tx.trySend(buffers, port, LOOPBACK)
    if (samples && sent >= nextSample) {
      samples.push({ datagrams: sent, rss: process.memoryUsage.rss() })
      nextSample += every
    }
  }
  return sent
}

function measureMemory({ datagrams, warmup }) {
  const gc = getGc()
  const sink = createSocket({ type: 'udp4' })
  sink.bind(0, LOOPBACK)
  const { port } = sink.address()
  const tx = createSocket('udp4')
  const buffers = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64, i))
  const start = now()
  sendCount(tx, buffers, port, warmup, null, 0)
  if (gc) gc()
  const before = process.memoryUsage()
  const samples = [{ datagrams: 0, rss: before.rss }]
  const t0 = now()
  const sent = sendCount(tx, buffers, port, datagrams, samples, 1e6)
  const seconds = now() - t0
  if (gc) gc()
  const after = process.memoryUsage()
  tx.close()
  sink.close()
  const maxRss = Math.max(...samples.map((s) => s.rss), after.rss)
  return {
    warmup,
    datagrams: sent,
    seconds,
    rate: sent / seconds,
    gcAvailable: !!gc,
    rssBefore: before.rss,
    rssAfter: after.rss,
    rssGrowth: after.rss - before.rss,
    rssMaxGrowth: maxRss - before.rss,
    heapUsedGrowth: after.heapUsed - before.heapUsed,
    externalGrowth: after.external - before.external,
    samples,
    totalSeconds: now() - start,
  }
}

/**
 * Idle receive memory: `count` sockets bound to 127.0.0.1, each with a 'message' listener, that
 * never receive anything. Measured after a full GC before and 200 ms after (receiving is armed
 * on the next tick). `kind` is 'pkg' (this package) or 'dgram' (node:dgram, for comparison).
 * One datagram is then sent to the first socket to show it really receives.
 */
async function measureIdle({ count, kind }) {
  const gc = getGc()
  if (gc) gc()
  const before = process.memoryUsage()
  const sockets = []
  for (let i = 0; i < count; i++) {
    if (kind === 'dgram') {
      const s = dgram.createSocket('udp4')
      s.on('message', () => {})
      await new Promise((resolve) => s.bind(0, LOOPBACK, resolve))
      sockets.push(s)
    } else {
      const s = createSocket('udp4')
      s.bind(0, LOOPBACK)
      s.on('message', () => {})
      sockets.push(s)
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 200))
  if (gc) gc()
  const after = process.memoryUsage()
  const first = sockets[0]
  const woke = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 2000)
    first.once('message', () => {
      clearTimeout(timer)
      resolve(true)
    })
    const tx = dgram.createSocket('udp4')
    tx.send('wake', first.address().port, LOOPBACK, () => tx.close())
  })
  for (const s of sockets) s.close()
  return {
    kind,
    sockets: count,
    gcAvailable: !!gc,
    arrayBuffersGrowth: after.arrayBuffers - before.arrayBuffers,
    externalGrowth: after.external - before.external,
    heapUsedGrowth: after.heapUsed - before.heapUsed,
    rssGrowth: after.rss - before.rss,
    woke,
  }
}

function runChild(args) {
  const { execFileSync } = require('node:child_process')
  const out = execFileSync(process.execPath, ['--expose-gc', __filename, ...args.map(String)], {
    encoding: 'utf8',
    timeout: 300000,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.trim().split('\n').pop())
}

/** Runs `measureMemory` in a fresh Node process with --expose-gc and returns its result. */
function runMemoryChild({ datagrams, warmup }) {
  return runChild(['send', datagrams, warmup])
}

/** Runs `measureIdle` for this package and for node:dgram, each in a fresh process. */
function runIdleChildren({ count }) {
  return { pkg: runChild(['idle', count, 'pkg']), dgram: runChild(['idle', count, 'dgram']) }
}

if (require.main === module) {
  const [mode, ...rest] = process.argv.slice(2)
  const print = (r) => process.stdout.write(`${JSON.stringify(r)}\n`)
  if (mode === 'idle') {
    measureIdle({ count: Number(rest[0]), kind: rest[1] }).then(print, (e) => {
      console.error(e)
      process.exit(1)
    })
  } else {
    const [datagrams, warmup] = rest.map(Number)
    print(measureMemory({ datagrams, warmup }))
  }
}

module.exports = { measureMemory, measureIdle, runMemoryChild, runIdleChildren }
