'use strict'
// Two builds of the addon, side by side in one process: the single-datagram send path
// (`socketSendDatagram`, 64 B to a loopback socket that never reads), in paired rounds.
//
//   node benchmark/ab.js A.node B.node [rounds]
//
// Each round times 40 000 sends through A, then through B, on their own unbound sockets
// (as the C reference of `npm run bench` is), and the median of the per-round ratios A/B is
// printed (> 1: B is faster). Both builds load at once: each `.node` file is its own addon
// instance. For a change to the binding or the core, build the old and the new `.node`
// (`npx napi build --platform --release`, copying the file between builds) and compare; run
// it with A and B the same file to see the noise floor.
const path = require('node:path')
const { createSocket } = require('..')

const [fileA, fileB, roundsArg] = process.argv.slice(2)
if (!fileA || !fileB) {
  console.error('usage: node benchmark/ab.js A.node B.node [rounds]')
  process.exit(2)
}
const ROUNDS = Number(roundsArg) || 31
const SENDS = 40000

const sink = createSocket('udp4')
sink.bind(0, '127.0.0.1')
const { port } = sink.address()

function load(file) {
  const addon = require(path.resolve(file))
  const { socketSendDatagram } = addon.hotPaths()
  // (family 4, no reuseAddr, no reusePort, default buffer sizes): an unbound socket.
  const socket = new addon.NativeSocket(4, false, false, -1, 0, 0)
  const id = socket.addDestination('127.0.0.1', port)
  return { send: socketSendDatagram, socketId: socket.id, id, socket }
}

const a = load(fileA)
const b = load(fileB)
const view = Buffer.alloc(64, 1)

function nsPerSend(x) {
  const t0 = process.hrtime.bigint()
  let sent = 0
  for (let i = 0; i < SENDS; i++) sent += x.send(x.socketId, view, x.id)
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
  `A ${median(timesA).toFixed(0)} ns, B ${median(timesB).toFixed(0)} ns per send (medians of ${ROUNDS} rounds); ` +
    `median A/B ${median(ratios).toFixed(3)} (IQR ${q(0.25).toFixed(3)}–${q(0.75).toFixed(3)}; > 1: B faster)`,
)
a.socket.close()
b.socket.close()
sink.close()
