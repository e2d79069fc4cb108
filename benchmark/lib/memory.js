'use strict'
// Resident memory over many datagrams sent by trySend(buffers, port, address) in batches of 64
// (64 B each, to a sink that is never read). After a warm-up, RSS is read (after a full GC when
// the process can request one) before and after, and sampled along the way. Runs in a fresh
// child process (`runMemoryChild`), so garbage left by other benchmarks cannot move its RSS.
const v8 = require('node:v8')
const vm = require('node:vm')
const { UdpSocket } = require('../..')
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
  const sink = new UdpSocket({ type: 'udp4' })
  const { port } = sink.bind(0, LOOPBACK)
  const tx = new UdpSocket('udp4')
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

/** Runs `measureMemory` in a fresh Node process with --expose-gc and returns its result. */
function runMemoryChild({ datagrams, warmup }) {
  const { execFileSync } = require('node:child_process')
  const out = execFileSync(process.execPath, ['--expose-gc', __filename, String(datagrams), String(warmup)], {
    encoding: 'utf8',
    timeout: 300000,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.trim().split('\n').pop())
}

if (require.main === module) {
  const [datagrams, warmup] = process.argv.slice(2).map(Number)
  process.stdout.write(`${JSON.stringify(measureMemory({ datagrams, warmup }))}\n`)
}

module.exports = { measureMemory, runMemoryChild }
