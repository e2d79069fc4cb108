'use strict'
// User-space instructions per datagram, counted by valgrind's callgrind: this package's paths
// (lib/instructions-child.js) next to the C loops doing the same sends and receives. This
// machine reads no hardware counters (no cycle counts), and instruction counts, unlike times,
// hardly move with the machine's load (a few percent between runs, from JIT and GC timing). Each
// figure is the difference between a run of N1 and one of N2 datagrams, divided by N2 - N1, so
// process start-up, module loading and JIT warm-up cancel out. Kernel work is not counted
// (callgrind sees user space only): the time tables have the system-time split.
const path = require('node:path')
const dgram = require('node:dgram')
const { spawnSync } = require('node:child_process')
const { runChild } = require('./util')

const CHILD = path.join(__dirname, 'instructions-child.js')
const VALGRIND = ['--tool=callgrind', '--callgrind-out-file=/dev/null']

function haveValgrind() {
  return spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).status === 0
}

/** Instructions callgrind counted in one run (stderr's "Collected : N"). */
function collected(stderr, what) {
  const m = /Collected : (\d+)/.exec(stderr)
  if (!m) throw new Error(`callgrind gave no count for ${what}: ${stderr.slice(-400)}`)
  return Number(m[1])
}

/** One synchronous program under callgrind; its last stdout line is JSON with `datagrams`. */
function countSync(file, args, what) {
  const r = spawnSync('valgrind', [...VALGRIND, file, ...args.map(String)], { encoding: 'utf8', timeout: 300e3 })
  if (r.status !== 0) throw new Error(`${what} under callgrind failed: ${r.stderr.slice(-400)}`)
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  return { instructions: collected(r.stderr, what), datagrams: out.datagrams }
}

/** The C recvmmsg loop under callgrind for `seconds`, fed by the C flood (not under callgrind). */
async function countCReceive(bins, seconds) {
  let flood = null
  const r = await runChild('valgrind', [...VALGRIND, bins.recvmmsg_loop, seconds, 'names', 16 << 20], {
    timeoutMs: (seconds + 120) * 1000,
    onLine(line) {
      const v = JSON.parse(line)
      if ('port' in v) flood = runChild(bins.sendmmsg_loop, [64, 16, 1e10, v.port, seconds + 1, 'gso'], { timeoutMs: (seconds + 60) * 1000 })
    },
  })
  if (flood) await flood
  const out = JSON.parse(r.lines[r.lines.length - 1])
  return { instructions: collected(r.stderr, 'recvmmsg_loop'), datagrams: out.total }
}

const perDatagram = (a, b) => (b.instructions - a.instructions) / (b.datagrams - a.datagrams)

/**
 * The section: per-datagram instructions for sends of 64 B at batch 1 and 64 (separate Buffers,
 * and views of one Buffer) against the C sendmmsg loop (batch 1; GSO messages of 64), and for
 * onBatch against the C recvmmsg loop taking source addresses. `null` without valgrind.
 */
async function instructionsSection(bins) {
  if (!haveValgrind()) return null
  const sink = dgram.createSocket('udp4')
  await new Promise((resolve) => sink.bind(0, '127.0.0.1', resolve))
  const port = sink.address().port
  const node = (shape, small, large) =>
    perDatagram(countSync(process.execPath, [CHILD, shape, small, bins.sendmmsg_loop], shape), countSync(process.execPath, [CHILD, shape, large, bins.sendmmsg_loop], shape))
  const c = (batch, mode, small, large) =>
    perDatagram(countSync(bins.sendmmsg_loop, [64, batch, small, port, 600, mode], `sendmmsg_loop ${mode}`), countSync(bins.sendmmsg_loop, [64, batch, large, port, 600, mode], `sendmmsg_loop ${mode}`))
  try {
    const cGso = c(1, 'gso', 64e3, 640e3)
    const rows = [
      { id: 'send-1', label: 'send, 64 B, batch 1: trySend([buffer], port, address) / C sendmmsg loop, batch 1', pkg: node('send-1', 20e3, 120e3), c: c(1, 'unconnected', 20e3, 120e3) },
      { id: 'send-64', label: 'send, 64 B, batch 64: trySend(buffers, port, address), separate Buffers (GSO without asking) / C sendmmsg loop, one 64-segment GSO message per call', pkg: node('send-64', 64e3, 640e3), c: cGso },
      { id: 'send-64-views', label: 'send, 64 B, batch 64: trySend(views, port, address), views cut back to back from one Buffer / the same C GSO loop', pkg: node('send-64-views', 64e3, 640e3), c: cGso },
      { id: 'recv', label: 'receive, 64 B flood: onBatch(createRecvBatch(1024, 2048)) / C recvmmsg loop taking source addresses', pkg: node('recv', 200e3, 1200e3), c: perDatagram(await countCReceive(bins, 1), await countCReceive(bins, 3)) },
    ]
    return { method: 'valgrind --tool=callgrind; (instructions of a run of N2 datagrams - of N1) / (N2 - N1); user space only', rows }
  } finally {
    sink.close()
  }
}

module.exports = { instructionsSection }
