#!/usr/bin/env node
// Soak test: tens of millions of datagrams over loopback, this package on both ends.
//
// Senders run in worker threads (one UdpSocket each: trySend with an array of Buffers, and
// trySendPacked with one packed buffer), each datagram carrying (sender, sequence) and bytes
// derived from them. The main thread receives with onBatch into one reused RecvBatch (the
// event-driven, zero-allocation path through the reactor thread). Senders pace themselves on a
// shared counter of what the receiver has accounted for, so the kernel queue rarely overflows;
// when it does, the kernel's SO_RXQ_OVFL counter (socket.dropCount) must account for every gap.
//
// Checks, each a failure (exit code 1) when violated:
//   - received + kernel drops == sent, and the sequence gaps per sender == kernel drops
//   - no duplicate and no reordering per sender; no corrupted payload
//   - resident memory grows by at most SOAK_MAX_RSS_GROWTH_MB (20) after the warm-up
//   - open descriptors: back to the starting count once sockets are closed, and unchanged
//     between warm-up and end while running
//
// Env: SOAK_SECONDS (60), SOAK_DATAGRAMS (100000000: stop sending at this many), SOAK_SENDERS (2),
//      SOAK_SIZE (payload bytes, 32; at least 12), SOAK_BATCH (datagrams per call, 512),
//      SOAK_WARMUP_SECONDS (min(5, SOAK_SECONDS / 5)), SOAK_MAX_RSS_GROWTH_MB (20),
//      SOAK_WINDOW (datagrams in flight, all senders together; from the receive buffer size),
//      SOAK_RECV_BUFFER (receive buffer bytes, 8 MiB; a small one with a big window forces
//      kernel drops, to exercise the drop accounting).
// Prints progress to stderr and one summary JSON line to stdout.
'use strict'

const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')
const fs = require('node:fs')
const path = require('node:path')
const { UdpSocket, createRecvBatch } = require(path.join(__dirname, '..'))

const env = (name, fallback) => (process.env[name] !== undefined && process.env[name] !== '' ? Number(process.env[name]) : fallback)

// Shared counters (BigInt64Array over a SharedArrayBuffer):
//   [0] accounted: datagrams received + dropped, published by the receiver
//   [1] stop flag
//   [2 + i] datagrams sent by sender i
const ACCOUNTED = 0
const STOP = 1
const SENT = 2

function fillPayload(view, offset, size, sender, seq) {
  // Header: sender (u32 LE), sequence (u32 LE), then bytes derived from both.
  view.writeUInt32LE(sender, offset)
  view.writeUInt32LE(seq, offset + 4)
  const seed = (seq * 31 + sender * 7) & 0xff
  view[offset + 8] = seed
  view[offset + size - 1] = (seed ^ 0x5a) & 0xff
}

function senderMain() {
  const { id, port, size, batch, window, limit, shared, packed } = workerData
  const counters = new BigInt64Array(shared)
  const tx = new UdpSocket({ type: 'udp4', sendBufferSize: 4 << 20 })
  tx.bind(0, '127.0.0.1')
  tx.connect(port, '127.0.0.1')
  const buffers = Array.from({ length: batch }, () => Buffer.alloc(size))
  const slab = Buffer.alloc(batch * size)
  const lengths = new Uint32Array(batch).fill(size)
  let seq = 0
  let waits = 0
  let shortCalls = 0
  const totalSent = () => {
    let n = 0n
    for (let i = SENT; i < counters.length; i++) n += Atomics.load(counters, i)
    return n
  }
  while (Atomics.load(counters, STOP) === 0n && seq < limit) {
    // Pace: keep at most `window` datagrams (all senders together) not yet accounted for.
    if (totalSent() - Atomics.load(counters, ACCOUNTED) > BigInt(window)) {
      waits++
      Atomics.wait(counters, ACCOUNTED, Atomics.load(counters, ACCOUNTED), 2)
      continue
    }
    const n = Math.min(batch, limit - seq)
    let sent
    if (packed) {
      for (let k = 0; k < n; k++) fillPayload(slab, k * size, size, id, seq + k)
      sent = tx.trySendPacked(n === batch ? slab : slab.subarray(0, n * size), n === batch ? lengths : lengths.subarray(0, n))
    } else {
      for (let k = 0; k < n; k++) fillPayload(buffers[k], 0, size, id, seq + k)
      sent = tx.trySend(n === batch ? buffers : buffers.slice(0, n))
    }
    // Loopback never says "would block", but if it did the rest is simply sent next round.
    if (sent < n) shortCalls++
    seq += sent
    Atomics.store(counters, SENT + id, BigInt(seq))
  }
  tx.close()
  parentPort.postMessage({ id, sent: seq, waits, shortCalls, mode: packed ? 'trySendPacked' : 'trySend' })
}

const mb = (bytes) => +(bytes / 1048576).toFixed(1)

function openFds() {
  // Sockets and epoll/event descriptors: what this package could leak. (Node itself may open
  // /dev/null for a worker's stdio, which says nothing about us.)
  let n = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith('socket:') || target.startsWith('anon_inode:')) n++
    } catch {}
  }
  return n
}

async function main() {
  const seconds = env('SOAK_SECONDS', 60)
  const limitTotal = env('SOAK_DATAGRAMS', 100_000_000)
  const senders = env('SOAK_SENDERS', 2)
  const size = Math.max(12, env('SOAK_SIZE', 32))
  const batch = env('SOAK_BATCH', 512)
  const warmupSeconds = env('SOAK_WARMUP_SECONDS', Math.min(5, seconds / 5))
  const maxRssGrowth = env('SOAK_MAX_RSS_GROWTH_MB', 20) * 1024 * 1024
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

  // Whatever the addon creates once per process (the reactor's epoll descriptor) exists first.
  {
    const warm = new UdpSocket('udp4')
    warm.bind(0, '127.0.0.1')
    warm.on('message', () => {})
    await sleep(20) // receiving is armed on the next tick: let the reactor start
    warm.close()
  }
  await sleep(20)
  const fdsAtStart = openFds()
  const rssAtStart = process.memoryUsage().rss

  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: env('SOAK_RECV_BUFFER', 8 << 20) })
  rx.bind(0, '127.0.0.1')
  const { port } = rx.address()
  const slot = Math.max(64, size)
  const recvBatch = createRecvBatch(1024, slot)
  const recvBufferBytes = rx.getRecvBufferSize()
  // In flight at most half of what the receive queue holds (a small datagram costs ~1 KB of
  // kernel memory on loopback).
  const window = env('SOAK_WINDOW', Math.max(batch * senders, Math.floor(recvBufferBytes / 1100 / 2)))

  const shared = new SharedArrayBuffer(8 * (SENT + senders))
  const counters = new BigInt64Array(shared)
  const lastSeq = new Float64Array(senders).fill(-1)
  const receivedBy = new Float64Array(senders)
  let received = 0
  let duplicates = 0
  let reordered = 0
  let corrupt = 0
  let gaps = 0
  let foreign = 0
  let batches = 0

  const data = recvBatch.data
  rx.onBatch(recvBatch, (b) => {
    batches++
    const n = b.count
    for (let i = 0; i < n; i++) {
      const offset = i * b.slotSize
      const length = b.lengths[i]
      if (length !== size) {
        corrupt++
        continue
      }
      const sender = data.readUInt32LE(offset)
      const seq = data.readUInt32LE(offset + 4)
      if (sender >= senders) {
        foreign++
        continue
      }
      const seed = (seq * 31 + sender * 7) & 0xff
      if (data[offset + 8] !== seed || data[offset + size - 1] !== ((seed ^ 0x5a) & 0xff)) corrupt++
      const last = lastSeq[sender]
      if (seq === last + 1) {
        // in order
      } else if (seq > last + 1) {
        gaps += seq - last - 1
      } else if (seq === last) {
        duplicates++
        continue
      } else {
        reordered++
        continue
      }
      lastSeq[sender] = seq
      receivedBy[sender]++
      received++
    }
    Atomics.store(counters, ACCOUNTED, BigInt(received + rx.dropCount))
    Atomics.notify(counters, ACCOUNTED)
  })

  const perSender = Math.ceil(limitTotal / senders)
  const started = Date.now()
  const workers = []
  const reports = []
  let exited = 0
  for (let id = 0; id < senders; id++) {
    const worker = new Worker(__filename, {
      workerData: { id, port, size, batch, window, limit: Math.max(0, Math.min(perSender, limitTotal - perSender * id)), shared, packed: id % 2 === 1 },
    })
    const done = new Promise((resolve, reject) => {
      worker.on('message', (m) => reports.push(m))
      worker.on('error', reject)
      worker.on('exit', (code) => {
        exited++
        resolve(code)
      })
    })
    workers.push(done)
  }

  // Progress and memory samples, once a second.
  const samples = []
  let rssAfterWarmup = 0
  let fdsAfterWarmup = 0
  let rssBeforeStop = 0
  let fdsBeforeStop = 0
  let maxRss = 0
  let allDone = false
  Promise.all(workers).then(() => (allDone = true), () => (allDone = true))
  while (!allDone) {
    await sleep(1000)
    const elapsed = (Date.now() - started) / 1000
    const rss = process.memoryUsage().rss
    maxRss = Math.max(maxRss, rss)
    if (!rssAfterWarmup && elapsed >= warmupSeconds) {
      rssAfterWarmup = rss
      fdsAfterWarmup = openFds()
    }
    const heap = process.memoryUsage().heapUsed
    samples.push({ t: Math.round(elapsed), received, rssMB: +(rss / 1048576).toFixed(1) })
    process.stderr.write(`soak ${elapsed.toFixed(0)}s: received ${received}, drops ${rx.dropCount}, rss ${(rss / 1048576).toFixed(1)} MB, heap ${(heap / 1048576).toFixed(1)} MB, fds ${openFds()}\n`)
    if (exited === 0 && Atomics.load(counters, STOP) === 0n) {
      // The end-of-run figures are the last ones taken while every sender still ran (a sender
      // that reached its share of SOAK_DATAGRAMS exits early, with its thread and socket).
      rssBeforeStop = rss
      fdsBeforeStop = openFds()
    }
    if (elapsed >= seconds) Atomics.store(counters, STOP, 1n)
  }
  await Promise.all(workers).catch((e) => {
    process.stderr.write(`a sender failed: ${e && e.stack}\n`)
  })
  const sendSeconds = (Date.now() - started) / 1000
  let sent = 0
  for (let i = 0; i < senders; i++) sent += Number(counters[SENT + i])
  // Drain: wait until everything sent is received or counted as dropped (bounded).
  for (let waited = 0; received + rx.dropCount < sent && waited < 5000; waited += 10) await sleep(10)
  // The kernel reports the drop counter with the next datagram it queues: send one marker
  // from a separate socket so the final count is current, then read it.
  {
    const marker = new UdpSocket('udp4')
    marker.trySend([Buffer.alloc(size, 0xff)], port, '127.0.0.1')
    marker.close()
    for (let waited = 0; foreign < 1 && waited < 2000; waited += 10) await sleep(10)
  }
  const drops = rx.dropCount
  // Gaps at the tail: datagrams after the last one received from each sender.
  let tailGaps = 0
  for (let i = 0; i < senders; i++) tailGaps += Number(counters[SENT + i]) - 1 - lastSeq[i]
  rx.close()
  await sleep(50)
  const fdsAfterClose = openFds()
  const rssAfterClose = process.memoryUsage().rss
  if (!rssAfterWarmup) {
    // A run shorter than the warm-up: compare with the first sample.
    rssAfterWarmup = rssBeforeStop
    fdsAfterWarmup = fdsBeforeStop
  }

  const failures = []
  if (received + drops !== sent) failures.push(`received ${received} + drops ${drops} != sent ${sent}`)
  if (gaps + tailGaps !== drops) failures.push(`sequence gaps ${gaps + tailGaps} != kernel drops ${drops}`)
  if (duplicates) failures.push(`${duplicates} duplicates`)
  if (reordered) failures.push(`${reordered} out of order`)
  if (corrupt) failures.push(`${corrupt} corrupt payloads`)
  if (foreign !== 1) failures.push(`${foreign} foreign datagrams (expected the 1 marker)`)
  if (rssBeforeStop - rssAfterWarmup > maxRssGrowth) failures.push(`RSS grew ${((rssBeforeStop - rssAfterWarmup) / 1048576).toFixed(1)} MB after warm-up`)
  if (fdsBeforeStop !== fdsAfterWarmup) failures.push(`open fds ${fdsAfterWarmup} after warm-up, ${fdsBeforeStop} at the end of the run`)
  if (fdsAfterClose > fdsAtStart) failures.push(`open fds ${fdsAtStart} at start, ${fdsAfterClose} after closing everything`)
  if (reports.length !== senders) failures.push(`${reports.length} of ${senders} senders reported`)

  const summary = {
    ok: failures.length === 0,
    failures,
    config: { seconds, limit: limitTotal, senders, size, batch, window, recvBufferBytes },
    datagrams: { sent, received, drops, duplicates, reordered, corrupt, gaps: gaps + tailGaps },
    perSender: reports.sort((a, b) => a.id - b.id).map((r) => ({ ...r, received: receivedBy[r.id] })),
    receiveBatches: batches,
    seconds: +sendSeconds.toFixed(1),
    rate: Math.round(sent / sendSeconds),
    // Resident memory of the whole process (senders are threads of it): before any socket, after
    // the warm-up, at the end of the run (senders still running), after everything closed.
    rssMB: {
      atStart: mb(rssAtStart),
      afterWarmup: mb(rssAfterWarmup),
      atEnd: mb(rssBeforeStop),
      afterClose: mb(rssAfterClose),
      max: mb(maxRss),
      growthAfterWarmup: mb(rssBeforeStop - rssAfterWarmup),
    },
    fds: { atStart: fdsAtStart, afterWarmup: fdsAfterWarmup, atEnd: fdsBeforeStop, afterClose: fdsAfterClose },
    node: process.version,
  }
  process.stdout.write(JSON.stringify(summary) + '\n')
  process.exitCode = failures.length ? 1 : 0
}

if (isMainThread) {
  main().catch((e) => {
    process.stderr.write(`soak crashed: ${e && e.stack}\n`)
    process.exitCode = 1
  })
} else {
  senderMain()
}
