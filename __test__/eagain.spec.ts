// Real EAGAIN: a veth pair into a network namespace this test creates (and deletes), a slow
// qdisc and a tiny send buffer (loopback never says EAGAIN). Needs root, iproute2 and tc;
// skipped cleanly without them. Only the namespace's own addresses are used.
import test from 'ava'

import { createSocket, SendError } from '../lib'
import { createSlowLink, hasCommand, isRoot, numberedPayloads, peerResult } from './helpers'

const canRun = isRoot() && hasCommand('ip') && hasCommand('tc', '-V')
const maybe = canRun ? test.serial : test.serial.skip

maybe('trySend stops at "would block"; send() completes the batch with no loss, duplicate or reordering', async (t) => {
  const link = createSlowLink('40mbit', 1)
  try {
    const count = 3000
    const port = 40000 + (process.pid % 20000)
    const peer = await link.startPeer(port, count, 20000)
    const tx = createSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const payloads = numberedPayloads(count, 1200)

    // Synchronous: the kernel takes only a few before its send buffer is full.
    const first = tx.trySend(payloads, port, link.peerAddress)
    t.true(first > 0 && first < count, `trySend took ${first} of ${count} before EAGAIN`)

    // Async: the rest, waiting for writability each time the kernel says EAGAIN.
    const rest = payloads.slice(first)
    const promise = tx.send(rest, port, link.peerAddress)
    t.is(tx.getSendQueueCount(), 1, 'the send is queued, waiting for the socket')
    t.true(tx.getSendQueueSize() > 0)
    // A trySend queues nothing and never overtakes a waiting send.
    t.is(tx.trySend([Buffer.from('overtake?')], port, link.peerAddress), 0)
    t.is(await promise, rest.length)
    t.is(tx.getSendQueueCount(), 0)

    const result = await peerResult(peer)
    t.deepEqual(result, { count, inOrder: true, duplicates: 0, corrupt: 0, extra: 0 })
    tx.close()
  } finally {
    link.destroy()
  }
})

maybe('several send() calls issued back to back settle in order and keep datagram order', async (t) => {
  const link = createSlowLink('40mbit', 2)
  try {
    const count = 2000
    const port = 40000 + ((process.pid + 7) % 20000)
    const peer = await link.startPeer(port, count, 20000)
    const tx = createSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const payloads = numberedPayloads(count, 1000)
    const settled: number[] = []
    const sends = [0, 1, 2, 3].map((k) =>
      tx.send(payloads.slice(k * 500, (k + 1) * 500), port, link.peerAddress).then((n) => {
        settled.push(k)
        return n
      }),
    )
    t.true(tx.getSendQueueCount() >= 1)
    t.deepEqual(await Promise.all(sends), [500, 500, 500, 500])
    t.deepEqual(settled, [0, 1, 2, 3])
    t.deepEqual(await peerResult(peer), { count, inOrder: true, duplicates: 0, corrupt: 0, extra: 0 })
    tx.close()
  } finally {
    link.destroy()
  }
})

maybe('a waiting send that meets a bad message rejects with its index; later sends still go', async (t) => {
  const link = createSlowLink('40mbit', 3)
  try {
    const port = 40000 + ((process.pid + 13) % 20000)
    const good = numberedPayloads(400, 1200)
    const peer = await link.startPeer(port, 400, 20000)
    const tx = createSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const batch = [...good.slice(0, 300), Buffer.alloc(70000), ...good.slice(300)]
    const error = await t.throwsAsync(tx.send(batch, port, link.peerAddress), { instanceOf: SendError })
    t.is(error!.code, 'EMSGSIZE')
    t.is(error!.index, 300)
    t.is(error!.sent, 300)
    t.is(await tx.send(good.slice(300), port, link.peerAddress), 100)
    t.deepEqual(await peerResult(peer), { count: 400, inOrder: true, duplicates: 0, corrupt: 0, extra: 0 })
    tx.close()
  } finally {
    link.destroy()
  }
})

maybe('close() while a send waits rejects it with ERR_SOCKET_DGRAM_NOT_RUNNING and its sent count', async (t) => {
  const link = createSlowLink('1mbit', 4)
  try {
    const tx = createSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const promise = tx.send(numberedPayloads(500, 1200), 9, link.peerAddress)
    t.is(tx.getSendQueueCount(), 1)
    tx.close()
    const error = (await t.throwsAsync(promise)) as Error & { code: string; sent: number }
    t.is(error.code, 'ERR_SOCKET_DGRAM_NOT_RUNNING')
    t.true(error.sent > 0 && error.sent < 500, `sent ${error.sent} before the close`)
  } finally {
    link.destroy()
  }
})
