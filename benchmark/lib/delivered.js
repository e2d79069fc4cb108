'use strict'
// Delivered throughput at 1200 B to one destination (the GSO target): a C recvmmsg loop in a
// separate process (UDP_GRO on, so one receive takes a whole coalesced group) counts the
// datagrams that actually arrive, over a window that opens `from` s after the first datagram
// and closes at `to`; the senders run in this process for `flood` seconds.
const dgram = require('node:dgram')
const { once } = require('node:events')
const { createSocket } = require('../..')
const { runChild, jsonLine } = require('./util')
const { syncLoop, dgramLoop, LOOPBACK } = require('./send')
const { RCVBUF } = require('./receive')

const SIZE = 1200
const BATCH = 64

const DELIVERED_SENDERS = [
  { id: 'dgram-connected', label: 'node:dgram send, connected (64 in flight)', group: 'dgram' },
  { id: 'pkg-buffers', label: 'trySend(buffers, port, address), batch 64', group: 'package' },
  { id: 'pkg-gso', label: 'trySendSegmented (GSO), 64 datagrams per call', group: 'package' },
]

async function startSender(id, port, flood) {
  const cap = Math.ceil(20e6 * flood)
  if (id === 'dgram-connected') {
    const s = dgram.createSocket('udp4')
    s.connect(port, LOOPBACK)
    await once(s, 'connect')
    const r = await dgramLoop(s, Buffer.alloc(SIZE, 0x61), BATCH, flood, cap, undefined)
    s.close()
    return r
  }
  const s = createSocket('udp4')
  const buffers = Array.from({ length: BATCH }, (_, i) => Buffer.alloc(SIZE, i))
  const packed = Buffer.concat(buffers)
  const call =
    id === 'pkg-gso' ? () => s.trySendSegmented(packed, SIZE, port, LOOPBACK) : () => s.trySend(buffers, port, LOOPBACK)
  const r = syncLoop(call, BATCH, flood, cap)
  if (id === 'pkg-gso') r.gso = s.gso
  s.close()
  return r
}

async function deliveredRun(id, { bins, flood, from, to }) {
  let portSeen
  const gotPort = new Promise((resolve) => (portSeen = resolve))
  const rx = runChild(bins.recvmmsg_loop, [flood + 2, 'gro', RCVBUF, from, to], {
    timeoutMs: (flood + 10) * 1000,
    onLine(line) {
      const v = JSON.parse(line)
      if ('port' in v) portSeen(v.port)
    },
  })
  const port = await Promise.race([gotPort, rx.then(() => null)])
  if (!port) throw new Error('recvmmsg_loop did not start')
  const sent = await startSender(id, port, flood)
  const r = await rx
  const got = jsonLine(r.lines, 'datagrams')
  return {
    rate: got && got.seconds > 0 ? got.datagrams / got.seconds : NaN,
    datagrams: got ? got.datagrams : 0,
    seconds: got ? got.seconds : 0,
    total: got ? got.total : 0,
    drops: got ? got.drops : null,
    sent: sent.datagrams,
    sendRate: sent.datagrams / sent.seconds,
    gso: sent.gso,
  }
}

module.exports = { DELIVERED_SENDERS, deliveredRun, SIZE: SIZE, BATCH: BATCH }
