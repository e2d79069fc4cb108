'use strict'
// Send-side throughput: every sender pushes datagrams of SIZE bytes to one sink on 127.0.0.1 for
// a fixed time and we count the datagrams the kernel *accepted* (sendmmsg's return value, or a
// dgram callback without error). The sink socket is never read: once its receive buffer is full
// the kernel drops what arrives, so this measures the sender and the kernel's loopback path.
const dgram = require('node:dgram')
const { once } = require('node:events')
const { spawnSync } = require('node:child_process')
const { createSocket } = require('../..')
const { now } = require('./util')

const LOOPBACK = '127.0.0.1'

// The node:dgram drop-in ('sendmmsg/dgram'), when built: unchanged dgram code, batched.
let dropin = null
try {
  dropin = require('sendmmsg/dgram')
} catch {
  try {
    dropin = require('../../dist/dgram')
  } catch {}
}

/** What "batch" means for each sender is spelled out in `batchMeaning`. */
const SENDERS = [
  {
    id: 'dgram',
    label: 'node:dgram send, unconnected',
    group: 'dgram',
    batchMeaning: 'sends in flight (each send is one datagram)',
  },
  {
    id: 'dgram-connected',
    label: 'node:dgram send, connected',
    group: 'dgram',
    batchMeaning: 'sends in flight (each send is one datagram)',
  },
  {
    id: 'pkg-messages',
    label: 'trySend([{ data, address, port }])',
    group: 'package',
    batchMeaning: 'messages per call',
  },
  {
    id: 'pkg-messages-ecn',
    label: 'trySend([{ data, address, port, ecn: 2 }]) (per-message ECN mark)',
    short: 'trySend([{ ..., ecn: 2 }])',
    group: 'package',
    batchMeaning: 'messages per call',
  },
  {
    id: 'pkg-buffers',
    label: 'trySend(buffers, port, address)',
    group: 'package',
    batchMeaning: 'Buffers per call, one destination',
  },
  {
    // The same datagrams cut back to back from one Buffer (subarrays, as a stack that builds
    // its packets into one buffer hands them over; Node's pooled small Buffers lie the same
    // way): each GSO run is one contiguous range for the kernel.
    id: 'pkg-views',
    label: "trySend(views, port, address), the views cut back to back from one Buffer",
    short: 'trySend(views of one Buffer, ...)',
    group: 'package',
    batchMeaning: 'views per call, one destination',
  },
  {
    id: 'pkg-packed',
    label: 'trySendPacked(packed, lengths, port, address)',
    short: 'trySendPacked(packed, lengths, ...)',
    group: 'package',
    batchMeaning: 'datagrams per call',
  },
  {
    id: 'pkg-connected',
    label: 'connected UdpSocket: trySend(buffers)',
    group: 'package',
    batchMeaning: 'Buffers per call',
  },
  {
    // The native binding called directly with the arrays the TS layer would build: the
    // layer's own cost is the difference from pkg-buffers.
    id: 'binding-buffers',
    label: 'the binding alone: NativeSocket.send(buffers, ..., [address], [port])',
    short: 'binding NativeSocket.send(buffers)',
    group: 'package',
    batchMeaning: 'Buffers per call, one destination',
  },
  {
    id: 'pkg-gso',
    label: 'trySendSegmented(packed, size, port, address) (GSO)',
    short: 'trySendSegmented(packed, size, ...) (GSO)',
    group: 'package',
    batchMeaning: 'datagrams per call (UDP_SEGMENT sends of up to 64)',
  },
  ...(dropin
    ? [
        {
          id: 'dropin',
          label: "'sendmmsg/dgram' drop-in: unchanged socket.send(buf, port, address) loop",
          short: "sendmmsg/dgram drop-in send(buf, port, address)",
          group: 'package',
          batchMeaning: 'sends in flight (sends made in one turn leave as one sendmmsg)',
        },
      ]
    : []),
  {
    id: 'c',
    label: 'C sendmmsg loop, unconnected (msg_name per message)',
    short: 'C sendmmsg loop, unconnected',
    group: 'c',
    batchMeaning: 'messages per sendmmsg call',
  },
  {
    id: 'c-connected',
    label: 'C sendmmsg loop, connected',
    group: 'c',
    batchMeaning: 'messages per sendmmsg call',
  },
  {
    // The package sends runs of equal-sized datagrams to one destination as UDP_SEGMENT (GSO)
    // messages; this is the like-for-like C reference: sendmmsg of GSO messages of
    // min(64, 65000 / size) segments, about `batch` datagrams per call (batches smaller than
    // one group are not run).
    id: 'c-gso',
    label: 'C sendmmsg loop of UDP_SEGMENT (GSO) messages, unconnected',
    short: 'C sendmmsg loop, GSO messages',
    group: 'c',
    batchMeaning: 'datagrams per sendmmsg call (GSO groups of up to 64; batches below one group not run)',
  },
  {
    // The same GSO messages gathered from one buffer per datagram (one iovec each), as a C
    // program holding separate buffers sends them without copying: what trySend(buffers) of
    // separate Buffers asks of the kernel, so the floor of the zero-copy design on that path.
    id: 'c-gso-gather',
    label: 'C sendmmsg loop of UDP_SEGMENT (GSO) messages, each gathered from one buffer per datagram (64 iovecs)',
    short: 'C sendmmsg loop, GSO gathered',
    group: 'c',
    batchMeaning: 'datagrams per sendmmsg call (GSO groups of up to 64; batches below one group not run)',
  },
]

/**
 * Repeats a synchronous send call until `seconds` have passed (clock read about every 64
 * datagrams, so the clock costs the same share at every batch size) or `cap` datagrams went out.
 */
function syncLoop(call, batch, seconds, cap) {
  const every = Math.max(1, Math.ceil(64 / batch))
  let sent = 0
  let calls = 0
  let empty = 0
  const cpu = process.cpuUsage()
  const start = now()
  const deadline = start + seconds
  for (;;) {
    const n = call()
    sent += n
    if (n === 0) empty++
    if (++calls % every === 0 && (now() >= deadline || sent >= cap)) break
  }
  const end = now()
  const used = process.cpuUsage(cpu) // µs, every thread of this process
  return { datagrams: sent, seconds: end - start, calls, wouldBlock: empty, userSeconds: used.user / 1e6, systemSeconds: used.system / 1e6 }
}

/**
 * node:dgram: keeps up to `window` sends in flight, refilling as callbacks arrive, until
 * `seconds` have passed; then waits for the outstanding callbacks. Counts callbacks without an
 * error.
 */
function dgramLoop(socket, data, window, seconds, cap, port) {
  return new Promise((resolve) => {
    let inFlight = 0
    let done = 0
    let errors = 0
    let issued = 0
    let issuing = true
    let callbacks = 0
    const start = now()
    const deadline = start + seconds
    const finish = () => resolve({ datagrams: done, seconds: now() - start, errors })
    const onSent = (error) => {
      inFlight--
      if (error) errors++
      else done++
      if (issuing && (++callbacks & 63) === 0 && (now() >= deadline || issued >= cap)) issuing = false
      if (issuing) pump()
      else if (inFlight === 0) finish()
    }
    const pump = () => {
      while (inFlight < window) {
        inFlight++
        issued++
        if (port === undefined) socket.send(data, onSent)
        else socket.send(data, port, LOOPBACK, onSent)
      }
    }
    pump()
  })
}

/** Creates the sink and one sending socket per sender; `cell(size, batch)` prepares buffers. */
async function createSendBench({ bins }) {
  // The sink: bound, never read (no receive method is ever called on it).
  const sink = createSocket({ type: 'udp4' })
  sink.bind(0, LOOPBACK)
  const { port } = sink.address()

  const dgramUnconnected = dgram.createSocket('udp4')
  dgramUnconnected.bind(0, LOOPBACK)
  await once(dgramUnconnected, 'listening')
  const dgramConnected = dgram.createSocket('udp4')
  dgramConnected.connect(port, LOOPBACK)
  await once(dgramConnected, 'connect')
  const tx = createSocket('udp4')
  const txConnected = createSocket('udp4')
  txConnected.connect(port, LOOPBACK)
  const txGso = createSocket('udp4')
  // Internal, for the layer-vs-binding comparison only.
  const rawTx = new (require('../../native.js').NativeSocket)(4, false, false, -1, 0, 0)
  rawTx.bind(LOOPBACK, 0)
  const rawAddresses = [LOOPBACK]
  const rawPorts = [port]
  let dropinSocket = null
  if (dropin) {
    dropinSocket = dropin.createSocket('udp4')
    dropinSocket.bind(0, LOOPBACK)
    await once(dropinSocket, 'listening')
  }

  function cell(size, batch, cap) {
    const buffers = Array.from({ length: batch }, (_, i) => Buffer.alloc(size, i & 0xff))
    const messages = buffers.map((b) => ({ data: b, address: LOOPBACK, port }))
    const messagesEcn = buffers.map((b) => ({ data: b, address: LOOPBACK, port, ecn: 2 }))
    const packed = Buffer.alloc(size * batch, 0x5a)
    const backing = Buffer.alloc(size * batch, 0x5b)
    const views = buffers.map((_, i) => backing.subarray(i * size, (i + 1) * size))
    const lengths = new Uint32Array(batch).fill(size)
    const one = Buffer.alloc(size, 0x61)
    const perGroup = Math.max(1, Math.min(64, Math.floor(65000 / size)))
    const cRun = (mode) => (seconds) => {
      let messages = batch
      if (mode === 'gso' || mode === 'gso-gather') {
        if (batch < perGroup) return { datagrams: NaN, seconds: 1, wouldBlock: 0 }
        messages = Math.max(1, Math.round(batch / perGroup))
      }
      const args = [size, messages, cap(seconds), port, seconds, mode].map(String)
      const r = spawnSync(bins.sendmmsg_loop, args, { encoding: 'utf8', timeout: (seconds + 10) * 1000 })
      if (r.status !== 0) throw new Error(`sendmmsg_loop ${args.join(' ')} failed: ${r.stderr || r.signal}`)
      const out = JSON.parse(r.stdout.trim().split('\n').pop())
      return { datagrams: out.datagrams, seconds: out.seconds, wouldBlock: out.eagain, userSeconds: out.user_s, systemSeconds: out.system_s }
    }
    const runs = {
      dgram: (seconds) => dgramLoop(dgramUnconnected, one, batch, seconds, cap(seconds), port),
      'dgram-connected': (seconds) => dgramLoop(dgramConnected, one, batch, seconds, cap(seconds), undefined),
      'pkg-messages': (seconds) => syncLoop(() => tx.trySend(messages), batch, seconds, cap(seconds)),
      'pkg-messages-ecn': (seconds) => syncLoop(() => tx.trySend(messagesEcn), batch, seconds, cap(seconds)),
      'pkg-buffers': (seconds) =>
        syncLoop(() => tx.trySend(buffers, port, LOOPBACK), batch, seconds, cap(seconds)),
      'pkg-views': (seconds) => syncLoop(() => tx.trySend(views, port, LOOPBACK), batch, seconds, cap(seconds)),
      'binding-buffers': (seconds) =>
        syncLoop(() => rawTx.send(buffers, null, null, rawAddresses, rawPorts, 0, 0), batch, seconds, cap(seconds)),
      'pkg-packed': (seconds) =>
        syncLoop(() => tx.trySendPacked(packed, lengths, port, LOOPBACK), batch, seconds, cap(seconds)),
      'pkg-connected': (seconds) => syncLoop(() => txConnected.trySend(buffers), batch, seconds, cap(seconds)),
      'pkg-gso': (seconds) =>
        syncLoop(() => txGso.trySendSegmented(packed, size, port, LOOPBACK), batch, seconds, cap(seconds)),
      ...(dropinSocket ? { dropin: (seconds) => dgramLoop(dropinSocket, one, batch, seconds, cap(seconds), port) } : {}),
      c: cRun('unconnected'),
      'c-connected': cRun('connected'),
      'c-gso': cRun('gso'),
      'c-gso-gather': cRun('gso-gather'),
    }
    return runs
  }

  function close() {
    for (const s of [tx, txConnected, txGso, sink]) s.close()
    rawTx.close()
    dgramUnconnected.close()
    dgramConnected.close()
    if (dropinSocket) dropinSocket.close()
  }

  return { port, cell, close, gsoState: () => txGso.gso }
}

module.exports = { SENDERS, createSendBench, syncLoop, dgramLoop, LOOPBACK }
