'use strict'
// Smoke test of an installed `sendmmsg` package, run by test-platforms.sh on every runtime
// (Node 18/20/22/24, Bun glibc and musl, x64 and arm64 under qemu). CommonJS, no dependencies,
// loopback only.
//
// Uses the public API only: require('sendmmsg') -> createSocket('udp4'). One trySend() batch of
// COUNT whole datagrams (distinct lengths and bytes), then one batch of scatter/gather messages
// ({ data: [a, b, ...] } -> one datagram each); a node:dgram socket receives them and every byte,
// the count and the order are checked. Then the package's other faces: `import('sendmmsg')`
// (the ESM wrapper must hand out the very same classes as require: no dual-package hazard) and,
// when the package ships it, require('sendmmsg/dgram') sending one datagram dgram-style.
// Prints one "SMOKE OK ..." line, or "SMOKE FAIL ..." and exits 1. Bounded by SMOKE_TIMEOUT_MS
// (default 10 s).
//
// It also reports which .node file the loader mapped into the process (from /proc/self/maps,
// which qemu-user emulates too) and, with SMOKE_EXPECT_BINARY=<file name>, fails if it differs.
// With SMOKE_EXPECT_NO_GLIBC=1 (the musl Node rows) process.report's header must name no glibc
// (glibcVersionRuntime / glibcVersionCompiler absent), i.e. the runtime really is musl-linked.
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
  const { createSocket } = require('sendmmsg')
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
        tx = createSocket('udp4')
        // with an IP literal bind() is synchronous and returns the socket
        const bound = tx.bind(0, '127.0.0.1')
        const local = tx.address()
        if (bound !== tx || local.port <= 0 || local.address !== '127.0.0.1') {
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
          gathered.push({ data: pieces, address: '127.0.0.1', port: rxPort })
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

// The ESM entry must be a face of the CommonJS build, not a second copy of it.
async function checkEsm () {
  const cjs = require('sendmmsg')
  const esm = await import('sendmmsg')
  for (const name of ['createSocket', 'UdpSocket', 'SendError']) {
    if (typeof esm[name] !== 'function') throw new Error(`import('sendmmsg') has no ${name}`)
    if (esm[name] !== cjs[name]) throw new Error(`import('sendmmsg').${name} is not require('sendmmsg').${name} (dual-package hazard)`)
  }
  return 'ok'
}

// sendmmsg/dgram (node:dgram's shape): one datagram with send(msg, port, address, cb).
// 'absent' when this build of the package does not ship dist/dgram.js.
function checkDgram (timeoutMs = TIMEOUT_MS) {
  let mod
  try {
    require.resolve('sendmmsg/dgram')
  } catch (e) {
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED')) return Promise.resolve('absent')
    throw e
  }
  mod = require('sendmmsg/dgram')
  if (typeof mod.createSocket !== 'function') throw new Error("require('sendmmsg/dgram') has no createSocket")
  return new Promise((resolve, reject) => {
    const rx = dgram.createSocket('udp4')
    const tx = mod.createSocket('udp4')
    const body = Buffer.from('sendmmsg/dgram smoke')
    const done = (err) => {
      clearTimeout(timer)
      try { rx.close() } catch {}
      try { tx.close() } catch {}
      if (err) reject(err)
      else resolve('ok')
    }
    const timer = setTimeout(() => done(new Error(`sendmmsg/dgram: no datagram within ${timeoutMs} ms`)), timeoutMs)
    rx.on('error', done)
    tx.on('error', done)
    rx.on('message', (msg) => done(msg.equals(body) ? null : new Error(`sendmmsg/dgram: got ${msg.length} bytes, want ${body.length}`)))
    rx.bind(0, '127.0.0.1', () => {
      tx.send(body, rx.address().port, '127.0.0.1', (err) => { if (err) done(err) })
    })
  })
}

async function main () {
  const t0 = Date.now()
  const where = `${runtimeName()} ${process.arch}`
  try {
    const { datagrams } = await runSmoke()
    const esm = await checkEsm()
    const dgramFace = await checkDgram()
    const bins = loadedBinaries()
    const binary = bins.map((b) => b.split('/').pop()).join(',') || 'unknown'
    const expect = process.env.SMOKE_EXPECT_BINARY
    if (expect && binary !== expect) {
      console.log(`SMOKE FAIL runtime=${where} binary=${binary} error=loader picked ${bins.join(',') || 'nothing visible'}, expected ${expect}`)
      process.exit(1)
    }
    let libc = ''
    if (process.env.SMOKE_EXPECT_NO_GLIBC === '1') {
      const header = process.report && typeof process.report.getReport === 'function' ? process.report.getReport().header : null
      if (!header) {
        console.log(`SMOKE FAIL runtime=${where} binary=${binary} error=no process.report header to check for glibc`)
        process.exit(1)
      }
      if (header.glibcVersionRuntime || header.glibcVersionCompiler) {
        console.log(`SMOKE FAIL runtime=${where} binary=${binary} error=report header names glibc (runtime ${header.glibcVersionRuntime}, compiled ${header.glibcVersionCompiler}): not a musl runtime`)
        process.exit(1)
      }
      libc = ' report=no-glibc'
    }
    console.log(`SMOKE OK runtime=${where} binary=${binary} datagrams=${datagrams} esm=${esm} dgram=${dgramFace}${libc} ms=${Date.now() - t0}`)
    process.exit(0)
  } catch (e) {
    console.log(`SMOKE FAIL runtime=${where} error=${(e && e.stack) || e}`.replace(/\n/g, ' | '))
    process.exit(1)
  }
}

module.exports = { runSmoke, checkEsm, checkDgram, loadedBinaries, runtimeName }
if (require.main === module) main()
