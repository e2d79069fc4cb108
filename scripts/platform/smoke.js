'use strict'
// Smoke test of an installed `sendmmsg` package, run by test-platforms.sh on every runtime
// (Node 18/20/22/24, Bun glibc and musl, x64 and arm64 under qemu). CommonJS, no dependencies,
// loopback only.
//
// One trySend() batch of COUNT whole datagrams (distinct lengths and bytes), then one batch of
// scatter/gather messages ({ buffers: [...] } -> one datagram each); a node:dgram socket receives
// them and every byte, the count and the order are checked. Prints one "SMOKE OK ..." line, or
// "SMOKE FAIL ..." and exits 1. Bounded by SMOKE_TIMEOUT_MS (default 10 s).
//
// It also reports which .node file the loader mapped into the process (from /proc/self/maps,
// which qemu-user emulates too) and, with SMOKE_EXPECT_BINARY=<file name>, fails if it differs.
//
// require('./smoke.js').runSmoke(opts) is used by workers.js (main thread + worker_threads).
const dgram = require('node:dgram')
const fs = require('node:fs')

const COUNT = Number(process.env.SMOKE_COUNT || 100)
const GATHER = 8
const TIMEOUT_MS = Number(process.env.SMOKE_TIMEOUT_MS || 10000)

function runtimeName () {
  if (process.versions.bun) return `bun ${process.versions.bun}`
  if (process.versions.electron) return `electron ${process.versions.electron}`
  return `node ${process.version.slice(1)}`
}

function loadedBinaries () {
  try {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8')
    return [...new Set([...maps.matchAll(/(\S*sendmmsg[^/\s]*\.node)\s*$/gm)].map((m) => m[1]))]
  } catch {
    return []
  }
}

// Datagram i: 4-byte big-endian index, then a pattern that depends on i and the offset.
function payload (i, len) {
  const b = Buffer.alloc(len)
  b.writeUInt32BE(i, 0)
  for (let j = 4; j < len; j++) b[j] = (i * 31 + j * 7 + (j >> 8)) & 0xff
  return b
}

function runSmoke ({ count = COUNT, timeoutMs = TIMEOUT_MS, label = '' } = {}) {
  const { UdpSocket } = require('sendmmsg')
  return new Promise((resolve, reject) => {
    const rx = dgram.createSocket('udp4')
    const expected = []
    let tx = null
    let received = 0
    let done = false
    const finish = (err) => {
      if (done) return
      done = true
      clearTimeout(timer)
      try { rx.close() } catch {}
      try { if (tx) tx.close() } catch {}
      if (err) reject(err)
      else resolve({ datagrams: received })
    }
    const timer = setTimeout(() => {
      finish(new Error(`${label}timeout after ${timeoutMs} ms: received ${received} of ${expected.length} datagrams`))
    }, timeoutMs)

    rx.on('error', finish)
    rx.on('message', (msg) => {
      if (done) return
      const want = expected[received]
      if (!want) return finish(new Error(`${label}unexpected extra datagram #${received} (${msg.length} bytes)`))
      if (!msg.equals(want)) {
        const idx = msg.length >= 4 ? msg.readUInt32BE(0) : -1
        return finish(new Error(`${label}datagram #${received} differs: got ${msg.length} bytes (index ${idx}), want ${want.length} bytes (index ${want.readUInt32BE(0)})`))
      }
      received++
      if (received === expected.length) finish(null)
    })
    rx.bind(0, '127.0.0.1', () => {
      try {
        const rxPort = rx.address().port
        tx = new UdpSocket('udp4')
        const bound = tx.bind(0, '127.0.0.1')
        const local = tx.address()
        if (local.port <= 0 || local.address !== '127.0.0.1' || (bound && bound.port !== local.port)) {
          throw new Error(`${label}bad local address ${JSON.stringify(local)}`)
        }
        // batch 1: COUNT whole datagrams, lengths 4..1203 bytes
        const whole = []
        for (let i = 0; i < count; i++) whole.push(payload(i, 4 + ((i * 37) % 1200)))
        expected.push(...whole)
        // batch 2: scatter/gather, each datagram gathered from 1..4 pieces
        const gathered = []
        for (let k = 0; k < GATHER; k++) {
          const full = payload(count + k, 16 + k * 50)
          const pieces = []
          const n = 1 + (k % 4)
          for (let p = 0; p < n; p++) pieces.push(full.subarray(Math.floor((p * full.length) / n), Math.floor(((p + 1) * full.length) / n)))
          gathered.push({ buffers: pieces, address: '127.0.0.1', port: rxPort })
          expected.push(full)
        }
        const sent1 = tx.trySend(whole, rxPort, '127.0.0.1')
        if (sent1 !== count) throw new Error(`${label}trySend(${count} datagrams) returned ${sent1}`)
        const sent2 = tx.trySend(gathered)
        if (sent2 !== GATHER) throw new Error(`${label}trySend(${GATHER} messages) returned ${sent2}`)
      } catch (e) {
        finish(e)
      }
    })
  })
}

async function main () {
  const t0 = Date.now()
  const where = `${runtimeName()} ${process.arch}`
  try {
    const { datagrams } = await runSmoke()
    const bins = loadedBinaries()
    const binary = bins.map((b) => b.split('/').pop()).join(',') || 'unknown'
    const expect = process.env.SMOKE_EXPECT_BINARY
    if (expect && binary !== expect) {
      console.log(`SMOKE FAIL runtime=${where} binary=${binary} error=loader picked ${bins.join(',') || 'nothing visible'}, expected ${expect}`)
      process.exit(1)
    }
    console.log(`SMOKE OK runtime=${where} binary=${binary} datagrams=${datagrams} ms=${Date.now() - t0}`)
    process.exit(0)
  } catch (e) {
    console.log(`SMOKE FAIL runtime=${where} error=${(e && e.stack) || e}`.replace(/\n/g, ' | '))
    process.exit(1)
  }
}

module.exports = { runSmoke, loadedBinaries, runtimeName }
if (require.main === module) main()
