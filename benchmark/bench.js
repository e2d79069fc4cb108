#!/usr/bin/env node
// `npm run bench`: datagrams per second over loopback (127.0.0.1 only) for node:dgram, this
// package's synchronous send shapes, GSO, and a reference C sendmmsg loop, at 64 B and 1200 B and
// batch sizes 1–1024; the receive side under a C flood; delivered datagrams at 1200 B; and
// resident memory over millions of datagrams; scale (10 000 idle sockets, reusePort across worker
// threads) and cost growth by datagrams per call; and user-space instructions per datagram under
// callgrind (package and C; skipped without valgrind). Every figure is a median of several runs,
// every comparison a ratio of figures from this same run. Writes
// benchmark/results/latest.{json,md,svg}.
//
//   npm run bench                  full run (about 9 minutes, 2 of them the 100 M-datagram long run)
//   BENCH_QUICK=1 npm run bench    about 30 s (fewer, shorter runs; 2 M datagrams for memory)
//   BENCH_SECTIONS=send,instructions,receive,delivered,memory,dropin,scale,growth   only some
//   BENCH_ONLY=dgram               only the drop-in section: unchanged dgram code, node:dgram vs
//                                  'sendmmsg/dgram' (bursts, ping-pong RTT, 'message' receive)
//   BENCH_ONLY=scale               only the scale and cost-growth sections: 10 000 idle sockets,
//                                  reusePort across worker threads, cost per datagram by datagrams
//                                  per call, long-run memory (BENCH_LONG_100M=0 stops at 10 M)
//   BENCH_RESULTS_DIR=dir          write latest.{json,md,svg} there instead of benchmark/results
//   node benchmark/ab.js A.node B.node [rounds] [batch]   two builds of the addon in paired
//                                  rounds (one-datagram sends, or batches of separate Buffers):
//                                  whether a binding/core change helps, beyond the noise
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const { buildC } = require('./lib/cprogs')
const { SENDERS, createSendBench } = require('./lib/send')
const { RECEIVERS, receiveRun, FLOOD_ARGS } = require('./lib/receive')
const { DELIVERED_SENDERS, deliveredRun, SIZE: DELIVERED_SIZE } = require('./lib/delivered')
const { runMemoryChild, runIdleChildren } = require('./lib/memory')
const { summarize, fmtRate, fmtRatio, now, median } = require('./lib/util')
const { toText, toMarkdown } = require('./lib/report')
const { resultsChart } = require('./lib/chart')
const { cpuMeter } = require('./lib/cpuload')
const { MODULES, BURST, createBurstBench, pingPong } = require('./lib/dropin')
const { runIdleScale, runReusePort } = require('./lib/scale')
const { sendGrowth, recvGrowth, runLongRun } = require('./lib/growth')
const { scaleChart } = require('./lib/scalechart')
const { instructionsSection } = require('./lib/instructions')

const QUICK = process.env.BENCH_QUICK === '1'
/**
 * Comparisons measured as paired rounds (see pairedSection): [id, a, b, size, batch]. The C
 * loops run in their own process, started for each run as in the tables.
 */
const PAIRS = [
  ['layer-vs-binding', 'pkg-buffers', 'binding-buffers', 64, 64],
  ['messages-ecn-vs-plain', 'pkg-messages-ecn', 'pkg-messages', 64, 64],
  ['send-batch1-vs-c', 'pkg-buffers', 'c', 64, 1],
  ['send-views-vs-c-gso', 'pkg-views', 'c-gso', 64, 64],
]
const PAIRED = QUICK ? { rounds: 7, seconds: 0.04 } : { rounds: 31, seconds: 0.08 }
const ONLY = { dgram: ['dropin'], scale: ['scale', 'growth'] }
const ALL_SECTIONS = ['send', 'instructions', 'receive', 'delivered', 'memory', 'dropin', 'scale', 'growth']
const SECTIONS = new Set(ONLY[process.env.BENCH_ONLY] || (process.env.BENCH_SECTIONS || ALL_SECTIONS.join(',')).split(','))
const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ? path.resolve(process.env.BENCH_RESULTS_DIR) : path.join(__dirname, 'results')

const CONFIG = {
  quick: QUICK,
  sizes: [64, 1200],
  batches: [1, 16, 64, 256, 1024],
  runs: QUICK ? 3 : 7,
  seconds: QUICK ? 0.06 : 0.18, // per send run
  warmupSeconds: QUICK ? 0.02 : 0.04, // per sender and cell, not recorded
  receive: QUICK ? { runs: 3, flood: 0.4, from: 0.05, to: 0.25 } : { runs: 7, flood: 0.7, from: 0.15, to: 0.55 },
  memory: QUICK ? { datagrams: 2e6, warmup: 5e5 } : { datagrams: 1e7, warmup: 1e6 },
  pingPong: QUICK ? { count: 5000, warmup: 500, seconds: 10 } : { count: 20000, warmup: 2000, seconds: 30 },
  // Scale: idle sockets (fresh child with `ulimit -n`), reusePort across worker threads.
  idle: { count: 10000, idleSeconds: 2, nofile: 20000 },
  reusePort: { workerCounts: [1, 2], runs: QUICK ? 1 : 3, flows: 16, flood: 1.0, from: 0.25, to: 0.85 },
  // Cost growth: datagrams per call, and a long send + receive run checked for memory growth.
  growth: {
    batches: [1, 16, 64, 256, 1024],
    runs: QUICK ? 3 : 5,
    seconds: QUICK ? 0.05 : 0.1,
    warmupSeconds: 0.03,
    fill: 4096, // datagrams queued before each timed drain
    longRun: {
      warmup: 2e5,
      // 1 k to 100 M datagrams in one process (the range); quick runs stop at 1 M.
      milestones: [1e3, 1e6, ...(QUICK ? [] : [1e7]), ...(QUICK || process.env.BENCH_LONG_100M === '0' ? [] : [1e8])],
    },
  },
}
// Hard cap on datagrams per run, whatever the clock says.
const cap = (seconds) => Math.ceil(20e6 * seconds)

function log(line) {
  process.stdout.write(`${line}\n`)
}

function git(args) {
  try {
    return execFileSync('git', args, { cwd: path.join(__dirname, '..'), encoding: 'utf8' }).trim()
  } catch {
    return ''
  }
}

function environment(compiler) {
  const addon = path.join(__dirname, '..', 'sendmmsg.linux-x64-gnu.node')
  let addonInfo = 'unknown'
  try {
    const st = fs.statSync(addon)
    addonInfo = `${path.basename(addon)} built ${st.mtime.toISOString()}`
  } catch {}
  let rmemMax = null
  try {
    rmemMax = Number(fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8'))
  } catch {}
  return {
    node: process.version,
    kernel: os.release(),
    cpu: (os.cpus()[0] || {}).model || 'unknown',
    cpus: os.cpus().length,
    compiler,
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: git(['status', '--porcelain', '--', 'src', 'crates']) !== '',
    addon: addonInfo,
    rmemMax,
    date: new Date().toISOString(),
    loadavgStart: os.loadavg(),
  }
}

/**
 * Two package paths in this one process, compared back to back: PAIRED.rounds short runs of
 * each, alternating which goes first, and the median of the per-round ratios. Adjacent runs
 * share the machine's state of the moment (the medians of separate runs above drift by ±10% on
 * a shared VM), so this is the estimator for ratios between two of the package's own paths.
 */
async function pairedSection(bench) {
  const out = []
  for (const [id, a, b, size, batch] of PAIRS) {
    const runs = bench.cell(size, batch, cap)
    await runs[a](CONFIG.warmupSeconds)
    await runs[b](CONFIG.warmupSeconds)
    const ratios = []
    for (let r = 0; r < PAIRED.rounds; r++) {
      const order = r % 2 === 0 ? [a, b] : [b, a]
      const rate = {}
      for (const sender of order) {
        const res = await runs[sender](PAIRED.seconds)
        rate[sender] = res.datagrams / res.seconds
      }
      ratios.push(rate[a] / rate[b])
    }
    const sorted = ratios.slice().sort((x, y) => x - y)
    const q = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]
    out.push({ id, a, b, ratios, median: median(ratios), q1: q(0.25), q3: q(0.75) })
    log(`  paired ${a} / ${b}: median ${median(ratios).toFixed(3)} (IQR ${q(0.25).toFixed(3)}–${q(0.75).toFixed(3)}, ${ratios.length} rounds)`)
  }
  return out
}

async function sendSection(bins) {
  const bench = await createSendBench({ bins })
  const cells = []
  let paired = []
  const rotate = (list, k) => list.map((_, i) => list[(i + k) % list.length])
  try {
    for (const size of CONFIG.sizes) {
      for (const batch of CONFIG.batches) {
        const runs = bench.cell(size, batch, cap)
        const meter = cpuMeter()
        for (const s of SENDERS) await runs[s.id](CONFIG.warmupSeconds)
        const rates = Object.fromEntries(SENDERS.map((s) => [s.id, []]))
        const extra = Object.fromEntries(SENDERS.map((s) => [s.id, { wouldBlock: 0, errors: 0 }]))
        // CPU per datagram (user, system), where the sender reports it: synchronous package
        // loops (process.cpuUsage) and the C loop (getrusage).
        const cpuPer = Object.fromEntries(SENDERS.map((s) => [s.id, { user: [], system: [] }]))
        // Interleave: every run measures every sender, starting from a different one.
        for (let r = 0; r < CONFIG.runs; r++) {
          for (const s of rotate(SENDERS, r)) {
            const res = await runs[s.id](CONFIG.seconds)
            rates[s.id].push(res.datagrams / res.seconds)
            extra[s.id].wouldBlock += res.wouldBlock || 0
            extra[s.id].errors += res.errors || 0
            if (Number.isFinite(res.userSeconds) && res.datagrams > 0) {
              cpuPer[s.id].user.push((res.userSeconds * 1e9) / res.datagrams)
              cpuPer[s.id].system.push((res.systemSeconds * 1e9) / res.datagrams)
            }
          }
        }
        const results = Object.fromEntries(
          SENDERS.map((s) => [s.id, {
            ...summarize(rates[s.id]),
            ...extra[s.id],
            ...(cpuPer[s.id].user.length ? { userNsPerDatagram: median(cpuPer[s.id].user), systemNsPerDatagram: median(cpuPer[s.id].system) } : {}),
          }]),
        )
        const cpu = meter.stop()
        cells.push({ size, batch, results, otherCores: cpu ? cpu.otherCores : null })
        const show = ['dgram', 'dgram-connected', 'pkg-buffers', 'pkg-messages', ...(SENDERS.some((s) => s.id === 'dropin') ? ['dropin'] : []), 'c', 'c-gso']
        log(
          `  send ${String(size).padStart(4)} B batch ${String(batch).padStart(4)}: ` +
            show.map((id) => `${id} ${fmtRate(results[id].median)}`).join(', ') +
            (cpu ? ` (other processes: ${cpu.otherCores.toFixed(2)} cores)` : ''),
        )
      }
    }
    paired = await pairedSection(bench)
  } finally {
    bench.close()
  }
  return {
    senders: SENDERS.map(({ id, label, short, group, batchMeaning }) => ({ id, label, short, group, batchMeaning })),
    paired,
    cells,
    gso: bench.gsoState(),
    sink: 'UdpSocket bound to 127.0.0.1, never read (datagrams beyond its receive buffer are dropped by the kernel)',
  }
}

async function receiveSection(bins) {
  const cfg = { bins, ...CONFIG.receive }
  const runs = Object.fromEntries(RECEIVERS.map((r) => [r.id, []]))
  for (let r = 0; r < CONFIG.receive.runs; r++) {
    for (let k = 0; k < RECEIVERS.length; k++) {
      const rec = RECEIVERS[(k + r) % RECEIVERS.length]
      runs[rec.id].push(await receiveRun(rec.id, cfg))
    }
  }
  const receivers = RECEIVERS.map((rec) => {
    const list = runs[rec.id]
    const summary = summarize(list.map((x) => x.rate))
    const offered = summarize(list.map((x) => x.offered)).median
    const last = list[list.length - 1]
    const cpu = (key) => {
      const values = list.map((x) => x[key]).filter(Number.isFinite)
      return values.length ? median(values) : NaN
    }
    const userNsPerDatagram = cpu('userNsPerDatagram')
    const systemNsPerDatagram = cpu('systemNsPerDatagram')
    log(
      `  receive ${rec.id}: ${fmtRate(summary.median)}/s delivered (offered ${fmtRate(offered)}/s), ` +
        `CPU per datagram: user ${userNsPerDatagram.toFixed(0)} ns, system ${systemNsPerDatagram.toFixed(0)} ns`,
    )
    return { ...rec, summary, offered, userNsPerDatagram, systemNsPerDatagram, drops: last.drops, rcvbuf: last.rcvbuf, runs: list }
  })
  return { size: 64, floodCommand: `sendmmsg_loop ${FLOOD_ARGS('COUNT', 'PORT', CONFIG.receive.flood).join(' ')}`, ...CONFIG.receive, receivers }
}

async function deliveredSection(bins) {
  const cfg = { bins, ...CONFIG.receive }
  const runs = Object.fromEntries(DELIVERED_SENDERS.map((s) => [s.id, []]))
  for (let r = 0; r < CONFIG.receive.runs; r++) {
    for (let k = 0; k < DELIVERED_SENDERS.length; k++) {
      const s = DELIVERED_SENDERS[(k + r) % DELIVERED_SENDERS.length]
      runs[s.id].push(await deliveredRun(s.id, cfg))
    }
  }
  const senders = DELIVERED_SENDERS.map((s) => {
    const list = runs[s.id]
    const summary = summarize(list.map((x) => x.rate))
    const sendRate = summarize(list.map((x) => x.sendRate)).median
    log(`  delivered ${s.id}: ${fmtRate(summary.median)}/s (accepted ${fmtRate(sendRate)}/s)`)
    const drops = summarize(list.map((x) => x.drops)).median
    return { ...s, summary, sendRate, drops, gso: list[list.length - 1].gso, runs: list }
  })
  return { size: DELIVERED_SIZE, receiver: 'C recvmmsg_loop with UDP_GRO, separate process', senders }
}

/** node:dgram vs 'sendmmsg/dgram' running the same code (lib/dropin.js). */
async function dropinSection(bins, receive) {
  if (!MODULES.some((m) => m.id === 'dropin')) {
    log('  (dist/dgram.js not built: npm run build:ts)')
    return null
  }
  const bench = await createBurstBench({ bins })
  const bursts = []
  try {
    for (const c of bench.cases) {
      const runs = bench.runs(c)
      const ids = Object.keys(runs)
      for (const id of ids) await runs[id](CONFIG.warmupSeconds, cap(CONFIG.warmupSeconds))
      const rates = Object.fromEntries(ids.map((id) => [id, []]))
      for (let r = 0; r < CONFIG.runs; r++) {
        for (let k = 0; k < ids.length; k++) {
          const id = ids[(k + r) % ids.length]
          const res = await runs[id](CONFIG.seconds, cap(CONFIG.seconds))
          rates[id].push(res.datagrams / res.seconds)
        }
      }
      const results = Object.fromEntries(ids.map((id) => [id, summarize(rates[id])]))
      bursts.push({ case: c.id, label: c.label, cSize: c.cSize, results })
      log(`  bursts of ${BURST}, ${c.label}: ` + ids.map((id) => `${id} ${fmtRate(results[id].median)}`).join(', ') + (c.cSize ? ` (C at ${c.cSize} B)` : ''))
    }
  } finally {
    bench.close()
  }
  const pingpong = {}
  // Alternate the modules so that drift on the machine hits both.
  for (let r = 0; r < 3; r++) {
    for (const m of r % 2 ? [...MODULES].reverse() : MODULES) {
      const res = await pingPong(m.mod, CONFIG.pingPong)
      ;(pingpong[m.id] ??= []).push(res)
    }
  }
  const pp = Object.fromEntries(
    Object.entries(pingpong).map(([id, list]) => [id, { p50: summarize(list.map((x) => x.p50)), p99: summarize(list.map((x) => x.p99)), roundTrips: list[0].roundTrips }]),
  )
  for (const m of MODULES) log(`  ping-pong ${m.id}: p50 ${pp[m.id].p50.median.toFixed(1)} µs, p99 ${pp[m.id].p99.median.toFixed(1)} µs (${pp[m.id].roundTrips} round trips, median of 3)`)
  let recv = receive && Object.fromEntries(receive.receivers.map((x) => [x.id, x.summary]))
  if (!recv) {
    const cfg = { bins, ...CONFIG.receive }
    const list = { dgram: [], dropin: [] }
    for (let r = 0; r < CONFIG.receive.runs; r++) {
      for (const id of r % 2 ? ['dropin', 'dgram'] : ['dgram', 'dropin']) list[id].push((await receiveRun(id, cfg)).rate)
    }
    recv = { dgram: summarize(list.dgram), dropin: summarize(list.dropin) }
  }
  log(`  'message' receive under a 64 B flood: dgram ${fmtRate(recv.dgram.median)}/s, dropin ${fmtRate(recv.dropin.median)}/s`)
  return { burst: BURST, bursts, pingPong: { ...CONFIG.pingPong, results: pp }, receive: { dgram: recv.dgram, dropin: recv.dropin } }
}

/** 10 000 idle receiving sockets, and one port shared by worker threads (lib/scale.js). */
async function scaleSection(bins) {
  const idle = runIdleScale(CONFIG.idle)
  for (const k of ['pkg', 'dgram']) {
    const r = idle[k]
    log(
      `  idle ${k}: ${r.sockets} sockets, RSS +${(r.rssGrowth / r.sockets / 1024).toFixed(2)} KiB/socket, ArrayBuffers +${Math.round(r.arrayBuffersGrowth / r.sockets) || 0} B/socket, ` +
        `armed in ${(r.armedSeconds * 1000).toFixed(0)} ms, idle ${r.idleSeconds.toFixed(1)} s: CPU ${(r.idleCpuUs / 1000).toFixed(1)} ms, ${r.idleSwitches} context switches; traffic arrives: ${r.allArrived ? 'yes' : 'NO'}`,
    )
  }
  const reusePort = await runReusePort({ bins, ...CONFIG.reusePort })
  for (const r of reusePort.rows) {
    log(`  reusePort ${r.workers} worker(s): ${fmtRate(r.total.median)}/s total (${r.perWorker.map((x) => fmtRate(x)).join(' + ')}), offered ${fmtRate(r.offered)}/s`)
  }
  return { idle, reusePort }
}

/** Cost per datagram by datagrams per call; long-run memory (lib/growth.js). */
async function growthSection() {
  const g = CONFIG.growth
  const send = await sendGrowth(g)
  const receive = await recvGrowth(g)
  for (const [name, sec] of [['send', send], ['receive', receive]]) {
    for (const c of sec.cells) {
      log(`  ${name} N=${String(c.batch).padStart(4)}: ` + sec.shapes.map((s) => `${s.id} ${fmtRate(c.results[s.id].median)}/s ${c.results[s.id].nsPerDatagram.toFixed(0)} ns`).join(', '))
    }
  }
  const longRun = runLongRun(g.longRun)
  for (const p of longRun.points) {
    log(`  long run ${fmtRate(p.datagrams)}: RSS ${(p.rssGrowth / 1048576).toFixed(2)} MB, heap ${(p.heapUsedGrowth / 1048576).toFixed(2)} MB, ArrayBuffers ${(p.arrayBuffersGrowth / 1048576).toFixed(2)} MB`)
  }
  return { send, receive, longRun }
}

function ratios(results) {
  const out = []
  const cell = (size, batch) => results.send && results.send.cells.find((c) => c.size === size && c.batch === batch)
  // Headline: ratio of medians. `best` divides the fastest runs instead: on a shared machine noise
  // only ever slows a run down, so it shows how much of a gap is noise.
  const add = (id, label, a, b, target) => {
    const value = a.median / b.median
    out.push({ id, label, value, best: a.max / b.max, target, pass: target === undefined ? undefined : value >= target })
  }
  // A paired comparison (pairedSection): the median of per-round ratios; "best" is the IQR.
  const addPaired = (id, label, target) => {
    const p = results.send && (results.send.paired || []).find((x) => x.id === id)
    if (!p) return
    out.push({ id: `${id}-paired`, label: `${label} (median of ${p.ratios.length} back-to-back ratios; IQR ${p.q1.toFixed(3)}–${p.q3.toFixed(3)})`, value: p.median, target, pass: target === undefined ? undefined : p.median >= target })
  }
  // Paired from the receive section's rounds: run r of every receiver belongs to round r.
  const addRounds = (id, label, aId, bId, target) => {
    const byId = Object.fromEntries(results.receive.receivers.map((x) => [x.id, x.runs]))
    const a = byId[aId]
    const b = byId[bId]
    if (!a || !b) return
    const per = a.map((run, i) => run.rate / b[i].rate).filter(Number.isFinite).sort((x, y) => x - y)
    if (per.length === 0) return
    const q = (f) => per[Math.min(per.length - 1, Math.floor(f * per.length))]
    const median = per.length % 2 ? per[(per.length - 1) / 2] : (per[per.length / 2 - 1] + per[per.length / 2]) / 2
    out.push({ id: `${id}-paired`, label: `${label} (median of ${per.length} per-round ratios; IQR ${q(0.25).toFixed(3)}–${q(0.75).toFixed(3)})`, value: median, target, pass: target === undefined ? undefined : median >= target })
  }
  const c1 = cell(64, 1)
  if (c1) {
    add('send-batch1-vs-c', '64 B, batch 1, one destination: trySend([buffer], port, address) / C sendmmsg loop, batch 1 (medians of the separate runs above)', c1.results['pkg-buffers'], c1.results.c)
    addPaired('send-batch1-vs-c', '64 B, batch 1, one destination: trySend([buffer], port, address) / C sendmmsg loop, batch 1, paired rounds', 0.95)
    add('send-batch1-vs-dgram', '64 B, batch 1, one destination: trySend([buffer], port, address) / node:dgram unconnected, one send in flight (never slower)', c1.results['pkg-buffers'], c1.results.dgram, 1)
    add('layer-vs-binding-batch1', '64 B, batch 1, one destination: the TypeScript layer, trySend([buffer], port, address) / the binding alone', c1.results['pkg-buffers'], c1.results['binding-buffers'])
    const ours = c1.results['pkg-buffers']
    const theirs = c1.results.c
    if (Number.isFinite(ours.systemNsPerDatagram) && Number.isFinite(theirs.systemNsPerDatagram)) {
      // Where batch 1 loses to C: the kernel's own time per send in this process against C's.
      // A ratio of costs, so higher is worse; the rate ratio above is the target.
      out.push({
        id: 'send-batch1-kernel-cpu-vs-c',
        label: `64 B, batch 1: kernel (system) CPU per send, trySend / C sendmmsg loop (higher is worse; ${ours.systemNsPerDatagram.toFixed(0)} vs ${theirs.systemNsPerDatagram.toFixed(0)} ns; user ${ours.userNsPerDatagram.toFixed(0)} vs ${theirs.userNsPerDatagram.toFixed(0)} ns)`,
        value: ours.systemNsPerDatagram / theirs.systemNsPerDatagram,
      })
    }
  }
  const c64 = cell(64, 64)
  if (c64) {
    const r = c64.results
    add('send-vs-c', '64 B, batch 64, one destination: trySend(buffers, port, address) / C sendmmsg loop', r['pkg-buffers'], r.c, 0.95)
    add('layer-vs-binding', '64 B, batch 64, one destination: the TypeScript layer, trySend(buffers, port, address) / the binding alone, NativeSocket.send(buffers, ...) (medians of the separate runs above)', r['pkg-buffers'], r['binding-buffers'])
    addPaired('layer-vs-binding', '64 B, batch 64, one destination: the TypeScript layer, trySend(buffers, port, address) / the binding alone, NativeSocket.send(buffers, ...), paired rounds', 0.97)
    add('send-vs-dgram', '64 B, batch 64, one destination: trySend(buffers, port, address) / node:dgram connected', r['pkg-buffers'], r['dgram-connected'], 1.4)
    add('send-vs-c-gso', '64 B, batch 64, one destination: trySend(buffers, port, address) (GSO without asking) / C sendmmsg loop of one 64-segment GSO message', r['pkg-buffers'], r['c-gso'], 0.9)
    add('send-gso-vs-dgram', '64 B, batch 64, one destination: trySend(buffers, port, address) (GSO without asking) / node:dgram unconnected', r['pkg-buffers'], r.dgram, 4)
    // The zero-copy floor of that row: the same GSO messages from C, gathered from 64 separate
    // buffers as the kernel must when each datagram is its own Buffer.
    add('send-gso-vs-c-gso-gather', '64 B, batch 64, one destination: trySend(buffers, port, address) (GSO without asking) / C sendmmsg loop of the same GSO messages gathered from 64 separate buffers', r['pkg-buffers'], r['c-gso-gather'])
    add('c-gso-gather-vs-c-gso', '64 B, batch 64: the kernel\'s share of that gap: C GSO gathered from 64 separate buffers / C GSO from one contiguous buffer', r['c-gso-gather'], r['c-gso'])
    add('send-views-vs-c-gso', '64 B, batch 64, one destination: trySend(views, port, address), the views cut back to back from one Buffer (GSO without asking, one range per run) / C sendmmsg loop of one 64-segment GSO message (medians of the separate runs above)', r['pkg-views'], r['c-gso'])
    addPaired('send-views-vs-c-gso', '64 B, batch 64, one destination: trySend(views, port, address), the views cut back to back from one Buffer (GSO without asking, one range per run) / C sendmmsg loop of one 64-segment GSO message, paired rounds', 0.9)
    add('send-views-gso-vs-dgram', '64 B, batch 64, one destination: trySend(views, port, address), the views cut back to back from one Buffer (GSO without asking) / node:dgram unconnected', r['pkg-views'], r.dgram, 4)
    add('packed-gso-vs-c-gso', '64 B, batch 64: trySendSegmented(packed, 64, ...) / C sendmmsg loop of one 64-segment GSO message', r['pkg-gso'], r['c-gso'])
    add('packed-vs-c', '64 B, batch 64: trySendPacked / C sendmmsg loop', r['pkg-packed'], r.c)
    add('messages-vs-c', '64 B, batch 64: trySend([{ data, address, port }]) / C sendmmsg loop', r['pkg-messages'], r.c, 0.95)
    add('messages-ecn-vs-plain', '64 B, batch 64: per-message metadata asked for, trySend([{ ..., ecn: 2 }]) / the same without ecn (medians of the separate runs above)', r['pkg-messages-ecn'], r['pkg-messages'])
    addPaired('messages-ecn-vs-plain', '64 B, batch 64: per-message metadata asked for, trySend([{ ..., ecn: 2 }]) / the same without ecn, paired rounds', 0.9)
    add('connected-vs-c', '64 B, batch 64: connected trySend(buffers) / C sendmmsg loop, connected', r['pkg-connected'], r['c-connected'])
    if (r.dropin) add('dropin-vs-dgram', "64 B, 64 in flight: unchanged dgram code via 'sendmmsg/dgram' / node:dgram unconnected", r.dropin, r.dgram)
    add('connected-vs-dgram', '64 B, batch 64: connected trySend(buffers) / node:dgram connected', r['pkg-connected'], r['dgram-connected'])
  }
  if (results.receive) {
    const r = Object.fromEntries(results.receive.receivers.map((x) => [x.id, x.summary]))
    add('recv-vs-dgram', 'Receive, 64 B flood: onBatch / node:dgram', r['pkg-batch'], r.dgram, 2)
    add('recv-messages-vs-dgram', "Receive, 64 B flood: 'messages' events / node:dgram", r['pkg-messages'], r.dgram, 2)
    if (r['pkg-batch-meta']) add('recv-meta-vs-plain', 'Receive, 64 B flood: onBatch with ECN, packet info and timestamps on / onBatch without (medians of the separate runs above)', r['pkg-batch-meta'], r['pkg-batch'])
    add('recv-message-vs-dgram', "Receive, 64 B flood: 'message' events (dgram's shape) / node:dgram", r['pkg-message'], r.dgram)
    add('recv-vs-c', 'Receive, 64 B flood: onBatch / C recvmmsg loop (medians of the separate runs above)', r['pkg-batch'], r.c)
    // Paired as for the send rows: every round runs each receiver once, back to back, so the
    // per-round ratio cancels the drift between rounds (the flood's rate and this VM's
    // scheduling wander ±10% over a run); the target is judged on the median of those.
    addRounds('recv-vs-c', 'Receive, 64 B flood: onBatch / C recvmmsg loop, paired rounds', 'pkg-batch', 'c', 0.95)
    // Metadata's cost, judged the same way: both onBatch receivers in the same rounds.
    addRounds('recv-meta-vs-plain', 'Receive, 64 B flood: onBatch with ECN, packet info and timestamps on / onBatch without, paired rounds', 'pkg-batch-meta', 'pkg-batch', 0.9)
    // The kernel's share of that cost: the same metadata asked for by the C loop.
    addRounds('recv-c-meta-vs-c-names', 'Receive, 64 B flood: the kernel\'s share of that cost: C recvmmsg loop with the same metadata / C recvmmsg loop with source addresses only, paired rounds', 'c-meta', 'c-names')
    addRounds('recv-meta-vs-c-meta', 'Receive, 64 B flood: onBatch with ECN, packet info and timestamps on / C recvmmsg loop with the same metadata, paired rounds', 'pkg-batch-meta', 'c-meta')
    // What each costs, rather than how fast the shared flood let it go: CPU per datagram.
    const recvCost = (id, label, aId, bId) => {
      const byId = Object.fromEntries(results.receive.receivers.map((x) => [x.id, x]))
      const a = byId[aId]
      const b = byId[bId]
      if (!a || !b) return
      const total = (x) => x.userNsPerDatagram + x.systemNsPerDatagram
      if (!Number.isFinite(total(a)) || !Number.isFinite(total(b))) return
      out.push({
        id,
        label: `${label} (higher is worse; ${total(a).toFixed(0)} vs ${total(b).toFixed(0)} ns: user ${a.userNsPerDatagram.toFixed(0)} vs ${b.userNsPerDatagram.toFixed(0)}, system ${a.systemNsPerDatagram.toFixed(0)} vs ${b.systemNsPerDatagram.toFixed(0)})`,
        value: total(a) / total(b),
      })
    }
    recvCost('recv-cpu-vs-c-names', 'Receive, 64 B flood: CPU per datagram received, onBatch / C recvmmsg loop taking source addresses', 'pkg-batch', 'c-names')
    recvCost('recv-meta-cpu-vs-c-meta', 'Receive, 64 B flood: CPU per datagram received with ECN, packet info and timestamps on, onBatch / the C loop with the same metadata', 'pkg-batch-meta', 'c-meta')
    addRounds('recv-vs-c-names', 'Receive, 64 B flood: onBatch / C recvmmsg loop taking source addresses (msg_name) as onBatch does, paired rounds', 'pkg-batch', 'c-names')
  }
  if (results.delivered) {
    const d = Object.fromEntries(results.delivered.senders.map((x) => [x.id, x.summary]))
    add('gso-vs-dgram', `Delivered, ${DELIVERED_SIZE} B one destination: trySendSegmented (GSO) / node:dgram connected`, d['pkg-gso'], d['dgram-connected'], 4)
  }
  if (results.dropin) {
    const d = results.dropin
    const b = Object.fromEntries(d.bursts.map((x) => [x.case, x.results]))
    const burst = `bursts of ${d.burst} socket.send(buf, port, address) per event-loop turn`
    add('dropin-burst64-vs-dgram', `Unchanged dgram code, 64 B, ${burst}: 'sendmmsg/dgram' / node:dgram`, b['64'].dropin, b['64'].dgram, 4)
    add('dropin-burst1200-vs-dgram', `Unchanged dgram code, 1200 B, ${burst}: 'sendmmsg/dgram' / node:dgram`, b['1200'].dropin, b['1200'].dgram, 4)
    const mixed = d.bursts.find((x) => x.case === 'mixed')
    const m = mixed.results
    // Target: at least 0.95 of what a C sendmmsg loop gains over dgram in this same run.
    const cGain = m.c.median / m.dgram.median
    out.push({
      id: 'dropin-mixed-vs-dgram',
      label: `Unchanged dgram code, ${mixed.label} (random per datagram), ${burst}: 'sendmmsg/dgram' / node:dgram (target 0.95 × C sendmmsg loop at ${mixed.cSize} B, batch ${d.burst} / node:dgram = ${fmtRatio(cGain)})`,
      value: m.dropin.median / m.dgram.median,
      best: m.dropin.max / m.dgram.max,
      target: Number((0.95 * cGain).toFixed(2)),
      pass: m.dropin.median / m.dgram.median >= 0.95 * cGain,
    })
    add('dropin-recv-vs-dgram', "Unchanged dgram code, 'message' receive under a 64 B flood: 'sendmmsg/dgram' / node:dgram", d.receive.dropin, d.receive.dgram, 2)
    for (const q of ['p50', 'p99']) {
      const a = d.pingPong.results.dropin[q]
      const g = d.pingPong.results.dgram[q]
      const value = a.median / g.median
      out.push({
        id: `dropin-pingpong-${q}-vs-dgram`,
        label: `Unchanged dgram code, request/response RTT ${q} over loopback (one outstanding, ${d.pingPong.count} round trips, both ends the same module): 'sendmmsg/dgram' / node:dgram (lower is better; ${a.median.toFixed(1)} vs ${g.median.toFixed(1)} µs)`,
        value,
        best: a.min / g.min,
        target: 1.1,
        atMost: true,
        pass: value <= 1.1,
      })
    }
  }
  if (results.memory) {
    const m = results.memory
    const growth = m.rssGrowth / 1048576
    out.push({
      id: 'memory',
      label: `RSS growth over ${(m.datagrams / 1e6).toFixed(0)} M datagrams sent by trySend (batches of 64)`,
      value: growth,
      target: 5,
      unit: 'MB',
      pass: growth < 5,
    })
  }
  if (results.idleMemory) {
    const { pkg, dgram } = results.idleMemory
    const mb = pkg.arrayBuffersGrowth / 1048576
    out.push({
      id: 'idle-memory',
      label: `Idle receive memory: ${pkg.sockets} bound sockets with a 'message' listener, ArrayBuffer growth (node:dgram: ${(dgram.arrayBuffersGrowth / 1048576).toFixed(2)} MB)`,
      value: mb,
      target: 1,
      unit: 'MB',
      pass: mb < 1 && pkg.woke,
    })
  }
  if (results.scale) {
    const rows = results.scale.reusePort.rows
    const one = rows.find((r) => r.workers === 1)
    const two = rows.find((r) => r.workers === 2)
    if (one && two) add('reuseport-2-vs-1', 'reusePort, 64 B flood from 16 source ports: 2 worker threads (one socket each, same port) / 1 worker', two.total, one.total)
  }
  return out
}

async function main() {
  const started = now()
  const meter = cpuMeter()
  const { bins, compiler, commands } = buildC()
  const results = {
    command: QUICK ? 'BENCH_QUICK=1 npm run bench' : 'npm run bench',
    config: { ...CONFIG },
    environment: environment(compiler),
    cCommands: commands,
  }
  log(`sendmmsg benchmark (${QUICK ? 'quick' : 'full'}), loopback 127.0.0.1 only`)
  if (SECTIONS.has('send')) {
    log('send: datagrams/s accepted by the kernel, to a sink that is not read')
    results.send = await sendSection(bins)
  }
  if (SECTIONS.has('instructions')) {
    log('instructions: user-space instructions per datagram under callgrind, package and C')
    results.instructions = await instructionsSection(bins)
    if (!results.instructions) log('  (valgrind not found: apt-get install valgrind)')
    for (const r of results.instructions?.rows ?? []) log(`  ${r.id}: package ${r.pkg.toFixed(0)}, C ${r.c.toFixed(1)}`)
  }
  if (SECTIONS.has('receive')) {
    log('receive: 64 B C flood, datagrams/s delivered to JS')
    results.receive = await receiveSection(bins)
  }
  if (SECTIONS.has('delivered')) {
    log(`delivered: ${DELIVERED_SIZE} B, counted by a C recvmmsg + UDP_GRO receiver`)
    results.delivered = await deliveredSection(bins)
  }
  if (SECTIONS.has('memory')) {
    log(`memory: RSS over ${CONFIG.memory.datagrams / 1e6} M datagrams (after ${CONFIG.memory.warmup / 1e6} M warm-up), fresh process`)
    results.memory = runMemoryChild(CONFIG.memory)
    log(`  RSS growth ${(results.memory.rssGrowth / 1048576).toFixed(2)} MB`)
    results.idleMemory = runIdleChildren({ count: 100 })
    const idle = results.idleMemory
    log(`  idle: 100 receiving sockets: ArrayBuffers +${idle.pkg.arrayBuffersGrowth} B, RSS +${(idle.pkg.rssGrowth / 1048576).toFixed(2)} MB (node:dgram: +${idle.dgram.arrayBuffersGrowth} B, RSS +${(idle.dgram.rssGrowth / 1048576).toFixed(2)} MB)`)
  }
  if (SECTIONS.has('dropin')) {
    log("dropin: unchanged dgram code, node:dgram vs 'sendmmsg/dgram'")
    results.dropin = await dropinSection(bins, results.receive)
  }
  if (SECTIONS.has('scale')) {
    log(`scale: ${CONFIG.idle.count} idle receiving sockets (fresh process each), reusePort across worker threads`)
    results.scale = await scaleSection(bins)
  }
  if (SECTIONS.has('growth')) {
    log('growth: cost per datagram at 1–1024 datagrams per call; long-run memory')
    results.growth = await growthSection()
  }
  results.environment.loadavgEnd = os.loadavg()
  results.environment.cpuDuringRun = meter.stop()
  results.durationSeconds = now() - started
  results.ratios = ratios(results)

  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`)
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.md'), toMarkdown(results))
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.svg'), resultsChart(results))
  if (results.growth) fs.writeFileSync(path.join(RESULTS_DIR, 'latest-scale.svg'), scaleChart(results))
  log('')
  log(toText(results))
  log('')
  log(`wrote ${path.join(path.relative(process.cwd(), RESULTS_DIR) || '.', 'latest.{json,md,svg}')} in ${results.durationSeconds.toFixed(0)} s`)
  // A full run with every section refreshes the README's figures (a quick or partial run does not).
  if (!QUICK && SECTIONS.size === ALL_SECTIONS.length) log(require('../scripts/readme-figures').updateReadme())
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
