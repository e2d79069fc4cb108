'use strict'
// Two builds of the addon, side by side in one process: the single-datagram send path
// (`socketSendDatagram`, 64 B to a loopback socket that never reads), or with a batch size
// above 1 the batch path of separate Buffers (`socketSendViews`, as `trySend(buffers, port,
// address)` calls it: equal sizes, so one GSO message per 64), in paired rounds.
//
//   node benchmark/ab.js A.node B.node [rounds] [batch]
//
// Each round times 40 000 sends through A, then through B, on their own unbound sockets
// (as the C reference of `npm run bench` is), and the median of the per-round ratios A/B is
// printed (> 1: B is faster). Both builds load at once: each `.node` file is its own addon
// instance. For a change to the binding or the core, build the old and the new `.node`
// (`npx napi build --platform --release`, copying the file between builds) and compare; run
// it with A and B the same file to see the noise floor.
const path = require('node:path')
const { createSocket } = require('..')

const [fileA, fileB, roundsArg, batchArg] = process.argv.slice(2)
if (!fileA || !fileB) {
  console.error('usage: node benchmark/ab.js A.node B.node [rounds] [batch]')
  process.exit(2)
}
const ROUNDS = Number(roundsArg) || 31
const BATCH = Math.max(1, Math.min(1024, Number(batchArg) || 1))
const SENDS = BATCH === 1 ? 40000 : 256000 // datagrams per timed run

const sink = createSocket('udp4')
sink.bind(0, '127.0.0.1')
const { port } = sink.address()

function load(file) {
  const addon = require(path.resolve(file))
  const { socketSendDatagram, socketSendViews } = addon.hotPaths()
  // (family 4, no reuseAddr, no reusePort, default buffer sizes): an unbound socket.
  const socket = new addon.NativeSocket(4, false, false, -1, 0, 0)
  const id = socket.addDestination('127.0.0.1', port)
  return { send: socketSendDatagram, sendViews: socketSendViews, socketId: socket.id, id, socket }
}

const a = load(fileA)
const b = load(fileB)
const view = Buffer.alloc(64, 1)
const views = Array.from({ length: BATCH }, (_, i) => Buffer.alloc(64, i))
const spans = new Uint32Array(3 * BATCH)
for (let i = 0; i < BATCH; i++) spans.set([i, 0, 64], 3 * i)

/** Nanoseconds per datagram over SENDS datagrams through build `x`. */
function nsPerSend(x) {
  const t0 = process.hrtime.bigint()
  let sent = 0
  if (BATCH === 1) {
    for (let i = 0; i < SENDS; i++) sent += x.send(x.socketId, view, x.id)
  } else {
    for (let i = 0; i < SENDS / BATCH; i++) sent += x.sendViews(x.socketId, spans, x.id, null, null, 0, 0, ...views)
  }
  if (sent === 0) throw new Error('nothing was sent')
  return Number(process.hrtime.bigint() - t0) / SENDS
}

const median = (values) => {
  const v = values.slice().sort((x, y) => x - y)
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

for (let w = 0; w < 3; w++) {
  nsPerSend(a)
  nsPerSend(b)
}
const timesA = []
const timesB = []
const ratios = []
for (let r = 0; r < ROUNDS; r++) {
  const ta = nsPerSend(a)
  const tb = nsPerSend(b)
  timesA.push(ta)
  timesB.push(tb)
  ratios.push(ta / tb)
}
const sorted = ratios.slice().sort((x, y) => x - y)
const q = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]
console.log(
  `A ${median(timesA).toFixed(1)} ns, B ${median(timesB).toFixed(1)} ns per datagram, batch ${BATCH} (medians of ${ROUNDS} rounds); ` +
    `median A/B ${median(ratios).toFixed(3)} (IQR ${q(0.25).toFixed(3)}–${q(0.75).toFixed(3)}; > 1: B faster)`,
)
a.socket.close()
b.socket.close()
sink.close()
