'use strict'
// Context-awareness check (Electron loads addons in several JS contexts; worker_threads are the
// same mechanism in Node). Run by test-platforms.sh from the installed consumer project:
//
//  1. the addon loads and works at once in the main thread and in two worker_threads
//     (each runs smoke.js's runSmoke: one trySend batch + one gather batch, checked byte by byte);
//  2. workers that end while their UdpSockets are still open tear down cleanly, three ways:
//     natural exit, process.exit() inside the worker, and worker.terminate() from the main thread,
//     repeated ROUNDS times with SOCKETS sockets each, while a long-running worker and the main
//     thread keep sending and receiving;
//  3. afterwards the process holds no more socket descriptors than before (count of
//     /proc/self/fd entries that are sockets), i.e. teardown closed every abandoned socket.
//
// Prints "WORKERS OK ..." or "WORKERS FAIL ..." (exit 1). Bounded by a 60 s watchdog.
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')
const fs = require('node:fs')
const { runSmoke } = require('./smoke.js')

const ROUNDS = Number(process.env.WORKERS_ROUNDS || 4)
const SOCKETS = 8

function fdCounts () {
  let total = 0
  let sockets = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    total++
    try { if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) sockets++ } catch {}
  }
  return { total, sockets }
}

// ---- worker side -------------------------------------------------------------------------
async function workerMain () {
  const { mode, label } = workerData
  if (mode === 'smoke') {
    const r = await runSmoke({ label: `${label}: ` })
    parentPort.postMessage({ ok: true, ...r })
    return
  }
  if (mode === 'loop') {
    // keeps working while other workers come and go; stops when told to
    let rounds = 0
    let stop = false
    parentPort.on('message', (m) => { if (m === 'stop') stop = true })
    while (!stop) {
      await runSmoke({ label: `${label} round ${rounds}: ` })
      rounds++
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    parentPort.postMessage({ ok: true, rounds })
    parentPort.close()
    return
  }
  // 'exit-natural' | 'exit-process' | 'terminate': open sockets, use them, leave them open
  const { createSocket } = require('sendmmsg')
  const socks = []
  for (let i = 0; i < SOCKETS; i++) {
    const s = createSocket(i % 2 ? 'udp4' : { type: 'udp4' })
    s.bind(0, '127.0.0.1')
    socks.push(s)
  }
  // send between them so the sockets have queued data when the context dies
  const sent = socks[0].trySend([Buffer.from('a'), Buffer.from('b')], socks[1].address().port, '127.0.0.1')
  globalThis.keepAlive = socks
  parentPort.postMessage({ ok: sent === 2, opened: socks.length, sent })
  if (mode === 'exit-process') process.exit(0)
  if (mode === 'terminate') setInterval(() => {}, 1000) // stays alive until terminate()
  // 'exit-natural': returning ends the worker if the open sockets do not hold its event loop
}

// ---- main side ---------------------------------------------------------------------------
function startWorker (mode, label) {
  const w = new Worker(__filename, { workerData: { mode, label } })
  const first = new Promise((resolve, reject) => {
    w.once('message', resolve)
    w.once('error', reject)
    w.once('exit', (code) => reject(new Error(`${label} exited (code ${code}) before reporting`)))
  })
  const exited = new Promise((resolve, reject) => {
    w.on('error', reject)
    w.on('exit', resolve)
  })
  return { w, first, exited }
}

async function churn (mode, label) {
  const { w, first, exited } = startWorker(mode, label)
  const m = await first
  if (!m.ok) throw new Error(`${label}: bad report ${JSON.stringify(m)}`)
  if (mode === 'terminate') await w.terminate()
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not exit within 10 s (do open sockets hold its event loop?)`)), 10000)
  })
  const code = await Promise.race([exited, timeout]).finally(() => clearTimeout(timer))
  if (mode === 'exit-natural' && code !== 0) throw new Error(`${label} exit code ${code}`)
  return code
}

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    if (global.gc) global.gc()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function main () {
  const watchdog = setTimeout(() => { console.log('WORKERS FAIL error=watchdog: no result within 60 s'); process.exit(1) }, 60000)
  watchdog.unref()
  const t0 = Date.now()

  // warm-up: load the addon in the main thread and once in a worker (process-wide lazies)
  await runSmoke({ label: 'main warm-up: ' })
  await churn('exit-natural', 'warm-up worker')
  await settle()
  const before = fdCounts()

  // 1. main + two workers at once
  const a = startWorker('smoke', 'worker A')
  const b = startWorker('smoke', 'worker B')
  const [ra, rb, rm] = await Promise.all([a.first, b.first, runSmoke({ label: 'main: ' })])
  if (!ra.ok || !rb.ok) throw new Error(`concurrent smoke failed: ${JSON.stringify({ ra, rb })}`)
  await Promise.all([a.exited, b.exited])
  const concurrent = `main+2 workers ${rm.datagrams}/${ra.datagrams}/${rb.datagrams} datagrams`

  // 2. workers dying with open sockets while a long-running worker and main keep working
  const loop = startWorker('loop', 'worker L')
  const modes = ['exit-natural', 'exit-process', 'terminate']
  let churned = 0
  let mainRounds = 0
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of modes) {
      await Promise.all([churn(mode, `worker ${mode} #${r}`), runSmoke({ label: `main round ${r}: ` })])
      churned++
      mainRounds++
    }
  }
  loop.w.postMessage('stop')
  const rl = await loop.first
  if (!rl.ok || rl.rounds < 1) throw new Error(`long-running worker: ${JSON.stringify(rl)}`)
  await loop.exited

  // 3. no descriptor leak
  await settle()
  const after = fdCounts()
  const detail = `fds before=${before.total} after=${after.total}, sockets before=${before.sockets} after=${after.sockets}`
  if (after.sockets > before.sockets || after.total > before.total + 2) {
    throw new Error(`descriptor leak: ${detail} (${churned} workers x ${SOCKETS} sockets were left open at exit)`)
  }
  clearTimeout(watchdog)
  console.log(`WORKERS OK runtime=node ${process.version.slice(1)} ${concurrent}; ${churned} workers (natural exit / process.exit / terminate) ` +
    `abandoned ${churned * SOCKETS} open sockets while worker L ran ${rl.rounds} and main ${mainRounds} more batches; ${detail}; ms=${Date.now() - t0}`)
}

if (isMainThread) {
  main().catch((e) => { console.log(`WORKERS FAIL error=${(e && e.stack) || e}`.replace(/\n/g, ' | ')); process.exit(1) })
} else {
  workerMain().catch((e) => { parentPort.postMessage({ ok: false, error: String((e && e.stack) || e) }) })
}
