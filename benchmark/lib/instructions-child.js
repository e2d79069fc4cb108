'use strict'
// Run under callgrind by lib/instructions.js: one path of the package for a fixed number of
// datagrams, so that the difference between two counts is the per-datagram cost in user-space
// instructions (startup and JIT warm-up cancel out).
//
//   node instructions-child.js SHAPE DATAGRAMS [FLOOD_BINARY]
//
// SHAPE: send-1 (trySend([buffer], port, address)), send-64 (trySend of 64 separate 64 B
// Buffers), send-64-views (64 views cut back to back from one Buffer), recv (onBatch with
// createRecvBatch(1024, 2048), fed by the C flood FLOOD_BINARY, which is not under callgrind).
const dgram = require('node:dgram')
const { spawn } = require('node:child_process')
const { createSocket, createRecvBatch } = require('../..')

const [shape, countArg, floodBinary] = process.argv.slice(2)
const count = Number(countArg)
const LOOPBACK = '127.0.0.1'

function send(batch, views) {
  const sink = dgram.createSocket('udp4')
  sink.bind(0, LOOPBACK, () => {
    const port = sink.address().port
    const tx = createSocket('udp4')
    const backing = Buffer.alloc(64 * batch, 0x5b)
    const buffers = Array.from({ length: batch }, (_, i) => (views ? backing.subarray(64 * i, 64 * (i + 1)) : Buffer.alloc(64, i)))
    let sent = 0
    while (sent < count) sent += tx.trySend(buffers, port, LOOPBACK)
    process.stdout.write(`${JSON.stringify({ datagrams: sent })}\n`)
    tx.close()
    sink.close()
  })
}

function receive() {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 16 << 20, receive: { maxDatagrams: 1024, maxSize: 2048 } })
  rx.bind(0, LOOPBACK)
  const batch = createRecvBatch(1024, 2048)
  let received = 0
  let calls = 0
  const flood = spawn(floodBinary, ['64', '16', String(1e10), String(rx.address().port), '600', 'gso'], { stdio: 'ignore' })
  rx.onBatch(batch, (b) => {
    received += b.count
    calls++
    if (received >= count) {
      rx.stopReceiving()
      flood.kill()
      process.stdout.write(`${JSON.stringify({ datagrams: received, calls })}\n`)
      rx.close()
    }
  })
}

if (shape === 'send-1') send(1, false)
else if (shape === 'send-64') send(64, false)
else if (shape === 'send-64-views') send(64, true)
else if (shape === 'recv') receive()
else {
  console.error(`unknown shape ${shape}`)
  process.exit(2)
}
