'use strict'
// Receive-side throughput: a C sendmmsg flood (a child process) of 64 B datagrams at one
// receiving socket. A plain sendmmsg loop cannot outrun node:dgram on this path (the kernel's
// per-datagram loopback cost caps it near dgram's receive rate), so the flood sends UDP_SEGMENT
// (GSO) groups of 64 × 64 B, 16 groups per call; the receiving socket has no UDP_GRO, so the
// kernel cuts every group into separate 64 B datagrams before queueing them. We count the
// datagrams actually delivered to JavaScript: 'message' events for node:dgram, `batch.count`
// summed for onBatch, array lengths for 'messages', one per 'message' event. The rate is taken over a window that opens
// `from` seconds after the first datagram arrived and closes at `to`, so start-up and the drain
// of the queue after the flood are not counted.
const dgram = require('node:dgram')
const { once } = require('node:events')
const { createSocket, createRecvBatch } = require('../..')
const { now, runChild, jsonLine } = require('./util')
const { dropin } = require('./dropin')

const FLOOD_ARGS = (cap, port, seconds) => [64, 16, cap, port, seconds, 'gso']

const LOOPBACK = '127.0.0.1'
const RCVBUF = 4 << 20 // requested SO_RCVBUF for every receiver (the kernel caps it at rmem_max)

const RECEIVERS = [
  { id: 'dgram', label: "node:dgram 'message' events", group: 'dgram' },
  { id: 'pkg-batch', label: 'onBatch(createRecvBatch(1024, 2048))', group: 'package' },
  { id: 'pkg-batch-meta', label: 'onBatch, with setReceiveMetadata({ ecn, packetInfo, timestamps })', group: 'package' },
  { id: 'pkg-messages', label: "'messages' events (Datagram[] per receive batch)", group: 'package' },
  { id: 'pkg-message', label: "'message' events (msg, rinfo), dgram's shape", group: 'package' },
  // Unchanged dgram receive code through the drop-in, when built.
  ...(dropin ? [{ id: 'dropin', label: "'sendmmsg/dgram' drop-in: dgram's 'message' events", group: 'package' }] : []),
  { id: 'c', label: 'C recvmmsg loop (reference, separate process)', group: 'c' },
  // The same loop also asking for every datagram's source address (msg_name), which onBatch
  // always delivers: the kernel's extra copy per datagram, so the like-for-like reference.
  { id: 'c-names', label: 'C recvmmsg loop taking each source address (msg_name), as onBatch does', group: 'c' },
  // And with the metadata pkg-batch-meta asks for (TOS, destination address, timestamp), read
  // from each datagram's control messages: the kernel's cost of that metadata, in C.
  { id: 'c-meta', label: 'C recvmmsg loop with source addresses, IP_RECVTOS, IP_PKTINFO and SO_TIMESTAMPNS', group: 'c' },
]

/** The C receivers' recvmmsg_loop modes. */
const C_MODES = { c: 'plain', 'c-names': 'names', 'c-meta': 'meta' }

async function openReceiver(id, onCount) {
  if (id === 'dgram' || id === 'dropin') {
    const s = (id === 'dgram' ? dgram : dropin).createSocket({ type: 'udp4', recvBufferSize: RCVBUF })
    s.on('message', () => onCount(1))
    s.bind(0, LOOPBACK)
    await once(s, 'listening')
    return {
      port: s.address().port,
      rcvbuf: s.getRecvBufferSize(),
      drops: () => null,
      close: () => s.close(),
    }
  }
  // receive.maxDatagrams 1024: the same batch ceiling as the onBatch receiver and the C loop.
  const s = createSocket({ type: 'udp4', recvBufferSize: RCVBUF, receive: { maxDatagrams: 1024, maxSize: 2048 } })
  s.bind(0, LOOPBACK)
  const { port } = s.address()
  if (id === 'pkg-batch' || id === 'pkg-batch-meta') {
    if (id === 'pkg-batch-meta') s.setReceiveMetadata({ ecn: true, packetInfo: true, timestamps: true })
    const batch = createRecvBatch(1024, 2048)
    s.onBatch(batch, (b) => onCount(b.count))
  } else if (id === 'pkg-message') {
    s.on('message', () => onCount(1))
  } else {
    s.on('messages', (list) => onCount(list.length))
  }
  return {
    port,
    rcvbuf: s.getRecvBufferSize(),
    drops: () => s.dropCount,
    close: () => {
      s.stopReceiving()
      s.removeAllListeners('message')
      s.removeAllListeners('messages')
      s.close()
    },
  }
}

/** One run: flood for `flood` seconds, count over [from, to] after the first datagram. */
async function receiveRun(id, { bins, flood, from, to }) {
  const cap = Math.ceil(20e6 * flood)
  if (id in C_MODES) {
    let floodDone = null
    const rx = runChild(bins.recvmmsg_loop, [flood + 2, C_MODES[id], RCVBUF, from, to], {
      timeoutMs: (flood + 10) * 1000,
      onLine(line) {
        const v = JSON.parse(line)
        if ('port' in v) {
          floodDone = runChild(bins.sendmmsg_loop, FLOOD_ARGS(cap, v.port, flood), { timeoutMs: (flood + 10) * 1000 })
        }
      },
    })
    const r = await rx
    const f = floodDone ? await floodDone : null
    const got = jsonLine(r.lines, 'datagrams')
    const offered = f && jsonLine(f.lines, 'rate')
    return {
      rate: got && got.seconds > 0 ? got.datagrams / got.seconds : NaN,
      datagrams: got ? got.datagrams : 0,
      seconds: got ? got.seconds : 0,
      offered: offered ? offered.rate : NaN,
      drops: got ? got.drops : null,
      ...cpuPerDatagram(got && got.user_s, got && got.system_s, got ? got.total : 0),
    }
  }

  // The window is marked from inside the handler (clock read after counting each delivery), so a
  // handler that blocks the event loop for long cannot make timers fire late and shrink it.
  let count = 0
  let first = 0
  let mark0 = null
  let mark1 = null
  let windowClosed
  const closed = new Promise((resolve) => (windowClosed = resolve))
  let fallback = null
  const receiver = await openReceiver(id, (n) => {
    count += n
    const t = now()
    if (first === 0) {
      first = t
      // If deliveries stop before the window closes, close it late rather than never.
      fallback = setTimeout(() => {
        if (mark0 && !mark1) mark1 = { count, t: now() }
        windowClosed()
      }, (to + 1) * 1000)
    } else if (mark0 === null) {
      if (t - first >= from) mark0 = { count, t }
    } else if (mark1 === null && t - first >= to) {
      mark1 = { count, t }
      windowClosed()
    }
  })
  // CPU of this whole process from the flood's start until the receiver closes, per datagram
  // delivered meanwhile: the like-for-like cost beside the C loop's getrusage over its run.
  const cpuStart = process.cpuUsage()
  const child = runChild(bins.sendmmsg_loop, FLOOD_ARGS(cap, receiver.port, flood), { timeoutMs: (flood + 10) * 1000 })
  // Bounded: the window closes `to` s after the first datagram; give up if none arrives.
  const giveUp = setTimeout(windowClosed, (flood + 5) * 1000)
  await closed
  clearTimeout(giveUp)
  clearTimeout(fallback)
  const f = await child
  const drops = receiver.drops()
  const cpu = process.cpuUsage(cpuStart)
  const delivered = count
  receiver.close()
  const offered = jsonLine(f.lines, 'rate')
  const ok = mark0 && mark1 && mark1.t > mark0.t
  return {
    rate: ok ? (mark1.count - mark0.count) / (mark1.t - mark0.t) : NaN,
    datagrams: ok ? mark1.count - mark0.count : 0,
    seconds: ok ? mark1.t - mark0.t : 0,
    offered: offered ? offered.rate : NaN,
    drops,
    rcvbuf: receiver.rcvbuf,
    ...cpuPerDatagram(cpu.user / 1e6, cpu.system / 1e6, delivered),
  }
}

/** User and system CPU nanoseconds per datagram received (NaN without a count). */
function cpuPerDatagram(userSeconds, systemSeconds, datagrams) {
  const ok = datagrams > 0 && Number.isFinite(userSeconds) && Number.isFinite(systemSeconds)
  return {
    userNsPerDatagram: ok ? (userSeconds * 1e9) / datagrams : NaN,
    systemNsPerDatagram: ok ? (systemSeconds * 1e9) / datagrams : NaN,
  }
}

module.exports = { RECEIVERS, receiveRun, RCVBUF, FLOOD_ARGS }
