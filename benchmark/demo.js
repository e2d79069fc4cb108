#!/usr/bin/env node
// Loopback demo: send a batch through sendmmsg, receive it and check every byte, then compare
// send throughput with node:dgram in the same run. Bounded in count and time.
'use strict'
const dgram = require('node:dgram')
const { once } = require('node:events')
const { UdpSocket, createRecvBatch } = require('..')

const DATAGRAM_SIZE = 64
const BATCH = 64
const TOTAL = Number(process.env.DEMO_DATAGRAMS || 200000)

function payload(i) {
  const b = Buffer.alloc(DATAGRAM_SIZE)
  b.writeUInt32BE(i, 0)
  b.fill(i & 0xff, 4)
  return b
}

async function verifyDelivery() {
  // A batch through this package, received by this package into one reusable RecvBatch
  // (the kernel writes straight into its JS memory), checked byte for byte.
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = new UdpSocket('udp4')
  tx.connect(port, '127.0.0.1')
  const batch = Array.from({ length: 1000 }, (_, i) => payload(i))
  const sent = await tx.send(batch)
  const recvBatch = createRecvBatch(1024, 2048)
  let received = 0
  let intact = 0
  const deadline = Date.now() + 5000
  while (received < sent && Date.now() < deadline) {
    const n = rx.tryRecvBatch(recvBatch)
    for (let i = 0; i < n; i++) {
      const offset = recvBatch.offsets[i]
      const data = recvBatch.data.subarray(offset, offset + recvBatch.lengths[i])
      if (data.equals(batch[received + i])) intact++
    }
    received += n
    if (n === 0) await new Promise((r) => setTimeout(r, 5))
  }
  tx.close()
  rx.close()
  return { sent, received, intact }
}

async function sink() {
  // A receiver that drops everything it gets: we measure the senders here.
  const s = dgram.createSocket('udp4')
  s.bind(0, '127.0.0.1')
  await once(s, 'listening')
  s.on('message', () => {})
  return s
}

async function timeDgram(port) {
  const s = dgram.createSocket('udp4')
  s.connect(port, '127.0.0.1')
  await once(s, 'connect')
  const data = payload(1)
  const start = process.hrtime.bigint()
  let inFlight = 0
  let sent = 0
  await new Promise((resolve) => {
    const pump = () => {
      while (sent < TOTAL && inFlight < 256) {
        inFlight++
        sent++
        s.send(data, () => {
          inFlight--
          if (sent === TOTAL && inFlight === 0) resolve()
          else if (inFlight === 0) setImmediate(pump)
        })
      }
    }
    pump()
  })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  s.close()
  return TOTAL / seconds
}

async function timeSendmmsg(port) {
  const s = new UdpSocket('udp4')
  s.connect(port, '127.0.0.1')
  const batch = Array.from({ length: BATCH }, (_, i) => payload(i))
  const start = process.hrtime.bigint()
  let sent = 0
  while (sent < TOTAL) sent += await s.send(batch)
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  s.close()
  return sent / seconds
}

async function main() {
  const check = await verifyDelivery()
  console.log(`delivery check: sent ${check.sent}, received ${check.received}, byte-exact ${check.intact}`)
  const receiver = await sink()
  const port = receiver.address().port
  const viaDgram = await timeDgram(port)
  const viaSendmmsg = await timeSendmmsg(port)
  receiver.close()
  const fmt = (n) => `${(n / 1000).toFixed(0)} k datagrams/s`
  console.log(`send, ${DATAGRAM_SIZE} B datagrams, ${TOTAL} each, loopback:`)
  console.log(`  node:dgram send (connected)      ${fmt(viaDgram)}`)
  console.log(`  sendmmsg send, batches of ${BATCH}     ${fmt(viaSendmmsg)}`)
  console.log(`  ratio sendmmsg / dgram           ${(viaSendmmsg / viaDgram).toFixed(2)}x`)
  if (check.intact !== check.sent) {
    console.error('delivery check failed')
    process.exitCode = 1
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
