#!/usr/bin/env node
// Loopback demo (`npm run demo`): send 1000 datagrams through sendmmsg, receive them with this
// package and check every byte, then time 200 000 64-byte datagrams through node:dgram and
// through sendmmsg batches of 64 in the same run and print both rates and their ratio.
// Builds nothing itself (`npm run demo` builds first); bounded in count and time.
'use strict'
const dgram = require('node:dgram')
const { once } = require('node:events')
const { createSocket, createRecvBatch } = require('..')

const DATAGRAM_SIZE = 64
const BATCH = 64
const CHECKED = 1000
const TOTAL = Number(process.env.DEMO_DATAGRAMS || 200000)
const LOOPBACK = '127.0.0.1'

function payload(i) {
  const b = Buffer.alloc(DATAGRAM_SIZE)
  b.writeUInt32BE(i, 0)
  for (let j = 4; j < b.length; j++) b[j] = (i * 31 + j) & 0xff
  return b
}

async function verifyDelivery() {
  // 1000 datagrams through this package (send(): one sendmmsg per up to 1024), received by
  // this package with onBatch into one reusable RecvBatch, checked byte for byte and in order.
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  rx.bind(0, LOOPBACK)
  const tx = createSocket('udp4')
  tx.connect(rx.address().port, LOOPBACK)
  const batch = Array.from({ length: CHECKED }, (_, i) => payload(i))
  let received = 0
  let intact = 0
  const recvBatch = createRecvBatch(1024, 2048)
  const done = new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000)
    rx.onBatch(recvBatch, (b) => {
      for (let i = 0; i < b.count; i++) {
        const expected = batch[received + i]
        if (expected && b.datagram(i).equals(expected) && b.ports[i] === tx.address().port) intact++
      }
      received += b.count
      if (received >= CHECKED) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  const sent = await tx.send(batch)
  await done
  rx.stopReceiving()
  tx.close()
  rx.close()
  return { sent, received, intact }
}

function sink() {
  // Bound and never read: the kernel drops what does not fit its receive buffer, so this
  // measures the senders (and costs neither of them any event-loop time).
  const s = createSocket('udp4')
  s.bind(0, LOOPBACK)
  return s
}

async function timeDgram(port) {
  const s = dgram.createSocket('udp4')
  s.connect(port, LOOPBACK)
  await once(s, 'connect')
  const data = payload(1)
  const start = process.hrtime.bigint()
  let inFlight = 0
  let issued = 0
  let done = 0
  await new Promise((resolve) => {
    const onSent = () => {
      inFlight--
      done++
      if (done === TOTAL) resolve()
      else if (inFlight === 0) pump()
    }
    const pump = () => {
      while (issued < TOTAL && inFlight < 256) {
        inFlight++
        issued++
        s.send(data, onSent)
      }
    }
    pump()
  })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  s.close()
  return TOTAL / seconds
}

async function timeSendmmsg(port) {
  const s = createSocket('udp4')
  s.connect(port, LOOPBACK)
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
  console.log(`delivery check: sent ${check.sent}, received ${check.received}, byte-exact and in order ${check.intact}`)
  const receiver = sink()
  const port = receiver.address().port
  // Warm both paths up a little, then time them back to back.
  const warm = Math.min(TOTAL, 20000)
  await timeWarm(port, warm)
  const viaDgram = await timeDgram(port)
  const viaSendmmsg = await timeSendmmsg(port)
  receiver.close()
  const fmt = (n) => `${(n / 1000).toFixed(0).padStart(6)} k datagrams/s`
  console.log(`send, ${DATAGRAM_SIZE} B datagrams, ${TOTAL} each, loopback, one run:`)
  console.log(`  node:dgram send (connected, 256 in flight)  ${fmt(viaDgram)}`)
  console.log(`  sendmmsg send(), batches of ${BATCH}            ${fmt(viaSendmmsg)}`)
  console.log(`  ratio sendmmsg / dgram                      ${(viaSendmmsg / viaDgram).toFixed(2)}x`)
  if (check.intact !== CHECKED || check.sent !== CHECKED) {
    console.error('delivery check failed')
    process.exitCode = 1
  }
}

async function timeWarm(port, count) {
  const s = createSocket('udp4')
  s.connect(port, LOOPBACK)
  const batch = Array.from({ length: BATCH }, (_, i) => payload(i))
  for (let sent = 0; sent < count; ) sent += await s.send(batch)
  s.close()
  const d = dgram.createSocket('udp4')
  d.connect(port, LOOPBACK)
  await once(d, 'connect')
  const data = payload(0)
  await Promise.all(Array.from({ length: Math.min(count, 2000) }, () => new Promise((r) => d.send(data, r))))
  d.close()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
