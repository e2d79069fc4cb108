// Real EAGAIN: a veth pair into a network namespace this test creates, a slow qdisc and a tiny
// send buffer (loopback never says EAGAIN). Needs root and iproute2; skipped without them.
import test from 'ava'

import { UdpSocket } from '../index'
import { createSlowLink, hasIp, isRoot, numberedPayloads, peerResult } from './helpers'

const canRun = isRoot() && hasIp()
const maybe = canRun ? test.serial : test.serial.skip

maybe('trySend stops at "would block"; async send completes the batch without loss or duplication', async (t) => {
  const link = createSlowLink('40mbit')
  try {
    const count = 3000
    const port = 40000 + (process.pid % 20000)
    const peer = await link.startPeer(port, count, 20000)
    const tx = new UdpSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const payloads = numberedPayloads(count, 1200)

    // Synchronous: the kernel takes only a few before its send buffer is full.
    const first = tx.trySend(payloads, port, link.peerAddress)
    t.true(first > 0 && first < count, `trySend took ${first} of ${count} before EAGAIN`)

    // Async: the rest, waiting for writability (epoll) each time the kernel says EAGAIN.
    const rest = payloads.slice(first)
    const promise = tx.send(rest, port, link.peerAddress)
    t.is(tx.pendingSends, 1, 'the send is queued, waiting for the socket')
    // A second send queues behind the first instead of overtaking it.
    t.is(tx.trySend([Buffer.from('overtake?')], port, link.peerAddress), 0)
    t.is(await promise, rest.length)
    t.is(tx.pendingSends, 0)

    const result = await peerResult(peer)
    t.deepEqual(result, { count, inOrder: true, duplicates: 0, corrupt: 0 })
    tx.close()
  } finally {
    link.destroy()
  }
})

maybe('several async sends issued back to back settle in order and keep datagram order', async (t) => {
  const link = createSlowLink('40mbit')
  try {
    const count = 2000
    const port = 40000 + ((process.pid + 7) % 20000)
    const peer = await link.startPeer(port, count, 20000)
    const tx = new UdpSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const payloads = numberedPayloads(count, 1000)
    const settled: number[] = []
    const sends = [0, 1, 2, 3].map((k) =>
      tx.send(payloads.slice(k * 500, (k + 1) * 500), port, link.peerAddress).then((n) => {
        settled.push(k)
        return n
      }),
    )
    t.deepEqual(await Promise.all(sends), [500, 500, 500, 500])
    t.deepEqual(settled, [0, 1, 2, 3])
    t.deepEqual(await peerResult(peer), { count, inOrder: true, duplicates: 0, corrupt: 0 })
    tx.close()
  } finally {
    link.destroy()
  }
})

maybe('close() while an async send waits rejects it with ERR_SOCKET_CLOSED and frees the socket', async (t) => {
  const link = createSlowLink('1mbit')
  try {
    const tx = new UdpSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const promise = tx.send(numberedPayloads(500, 1200), 9, link.peerAddress)
    t.is(tx.pendingSends, 1)
    tx.close()
    const error = (await t.throwsAsync(promise)) as any
    t.is(error.code, 'ERR_SOCKET_CLOSED')
    t.true(error.sent >= 0 && error.sent < 500, `sent ${error.sent} before the close`)
    t.is(tx.pendingSends, 0)
  } finally {
    link.destroy()
  }
})
