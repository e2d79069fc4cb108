'use strict'
// Turns the results object into a console report and a Markdown document.
const { fmtRate, fmtRatio } = require('./util')

function textTable(header, rows, alignRight = []) {
  const all = [header, ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => String(r[c]).length)))
  const line = (r) =>
    r
      .map((cell, c) => (alignRight[c] ? String(cell).padStart(widths[c]) : String(cell).padEnd(widths[c])))
      .join('  ')
      .trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

function mdTable(header, rows, alignRight = []) {
  const esc = (s) => String(s).replace(/\|/g, '\\|')
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, c) => (alignRight[c] ? '---:' : ':---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

function sendRows(results, size) {
  const { batches } = results.config
  const cell = (b) => results.send.cells.find((c) => c.size === size && c.batch === b)
  const rows = results.send.senders.map((s) => [
    s.label,
    ...batches.map((b) => (cell(b) ? fmtRate(cell(b).results[s.id].median) : '')),
  ])
  rows.push([
    '(CPU used by other processes meanwhile, cores)',
    ...batches.map((b) => (cell(b) && Number.isFinite(cell(b).otherCores) ? cell(b).otherCores.toFixed(2) : '')),
  ])
  return rows
}

/**
 * CPU per datagram (user and system ns) at 64 B for the senders that report it, at batch 1 and
 * the largest batches: where the time goes, ours against the C loop.
 */
function cpuRows(results, size) {
  const { batches } = results.config
  const cell = (b) => results.send.cells.find((c) => c.size === size && c.batch === b)
  const shown = [1, 64].filter((b) => batches.includes(b) && cell(b))
  const rows = []
  for (const s of results.send.senders) {
    const per = shown.map((b) => cell(b).results[s.id])
    if (!per.some((r) => r && Number.isFinite(r.userNsPerDatagram))) continue
    rows.push([
      s.label,
      ...per.flatMap((r) => (r && Number.isFinite(r.userNsPerDatagram)
        ? [r.userNsPerDatagram.toFixed(0), r.systemNsPerDatagram.toFixed(0), (r.userNsPerDatagram + r.systemNsPerDatagram).toFixed(0)]
        : ['', '', ''])),
    ])
  }
  return { shown, rows }
}

function ratioRows(results) {
  return results.ratios.map((r) => [
    r.label,
    r.value === undefined
      ? ''
      : r.unit === 'MB'
        ? `${r.value.toFixed(2)} MB`
        : // Close to the target, two decimals could round a miss up to the target: show three.
          r.target !== undefined && Math.abs(r.value - r.target) < 0.01
          ? `${r.value.toFixed(3)}×`
          : fmtRatio(r.value),
    r.best === undefined ? '' : fmtRatio(r.best),
    r.target === undefined ? '' : r.unit === 'MB' ? `< ${r.target} MB` : r.atMost ? `≤ ${r.target}` : `≥ ${r.target}`,
    r.pass === undefined ? '' : r.pass ? 'hit' : 'MISS',
  ])
}

function receiveRows(results) {
  return results.receive.receivers.map((r) => [
    r.label,
    fmtRate(r.summary.median),
    `${fmtRate(r.summary.min)} – ${fmtRate(r.summary.max)}`,
    fmtRate(r.offered),
    Number.isFinite(r.userNsPerDatagram) ? `${r.userNsPerDatagram.toFixed(0)} + ${r.systemNsPerDatagram.toFixed(0)} ns` : 'n/a',
    r.drops === null || r.drops === undefined ? 'n/a' : String(r.drops),
  ])
}

function deliveredRows(results) {
  return results.delivered.senders.map((s) => [
    s.label,
    fmtRate(s.summary.median),
    `${fmtRate(s.summary.min)} – ${fmtRate(s.summary.max)}`,
    fmtRate(s.sendRate),
    s.drops === null || s.drops === undefined ? 'n/a' : String(s.drops),
    s.gso || '',
  ])
}

function memoryRows(m) {
  const mb = (b) => `${(b / 1048576).toFixed(2)} MB`
  return [
    ['datagrams sent after warm-up', `${(m.datagrams / 1e6).toFixed(1)} M (warm-up ${(m.warmup / 1e6).toFixed(1)} M)`],
    ['rate during the test', `${fmtRate(m.rate)}/s`],
    ['RSS before → after', `${mb(m.rssBefore)} → ${mb(m.rssAfter)}`],
    ['RSS growth (after − before)', mb(m.rssGrowth)],
    ['largest RSS growth seen (sampled every 1 M)', mb(m.rssMaxGrowth)],
    ['V8 heap used growth', mb(m.heapUsedGrowth)],
    ['full GC before each reading', m.gcAvailable ? 'yes' : 'no'],
  ]
}

function idleRows(idle) {
  const kb = (b) => `${(b / 1024).toFixed(0)} KiB`
  return [idle.pkg, idle.dgram].map((r) => [
    r.kind === 'pkg' ? "this package: createSocket('udp4').bind(0, '127.0.0.1').on('message', ...)" : "node:dgram: createSocket('udp4').bind(0, '127.0.0.1').on('message', ...)",
    String(r.sockets),
    kb(r.arrayBuffersGrowth),
    kb(r.externalGrowth),
    kb(r.heapUsedGrowth),
    kb(r.rssGrowth),
    r.woke ? 'yes' : 'NO',
  ])
}

// ---- Scale and cost growth (bench.js scaleSection / growthSection) ----

const KIB = (b) => `${(b / 1024).toFixed(2)} KiB`
const SCALE_IDLE_HEADER = ['10 000-socket idle receive', 'sockets', 'RSS / socket', 'V8 heap / socket', 'ArrayBuffers / socket', 'create + bind + arm', 'CPU over idle', 'context switches', 'traffic still arrives']

function scaleIdleRows(idle) {
  return ['pkg', 'dgram'].map((k) => {
    const r = idle[k]
    return [
      k === 'pkg' ? "this package: createSocket('udp4').bind(0, '127.0.0.1').on('message', ...)" : 'node:dgram, the same',
      String(r.sockets),
      KIB(r.rssGrowth / r.sockets),
      KIB(r.heapUsedGrowth / r.sockets),
      `${Math.round(r.arrayBuffersGrowth / r.sockets) || 0} B`,
      `${(r.armedSeconds * 1000).toFixed(0)} ms (${((r.armedSeconds / r.sockets) * 1e6).toFixed(1)} µs each)`,
      `${(r.idleCpuUs / 1000).toFixed(1)} ms in ${r.idleSeconds.toFixed(1)} s`,
      String(r.idleSwitches),
      r.allArrived ? `yes (sockets ${r.arrived.map((a) => a.socket + 1).join(', ')}; ${r.wakeMs.toFixed(1)} ms)` : 'NO',
    ]
  })
}

const REUSEPORT_HEADER = ['receivers (reusePort: true, one port)', 'delivered/s total (median)', 'min – max', 'per worker (median, largest share first)', 'offered/s']

function reusePortRows(rp) {
  return rp.rows.map((r) => [
    `${r.workers} worker thread${r.workers > 1 ? 's' : ''}, one socket + onBatch each`,
    fmtRate(r.total.median),
    `${fmtRate(r.total.min)} – ${fmtRate(r.total.max)}`,
    r.perWorker.map((x) => fmtRate(x)).join(' + '),
    fmtRate(r.offered),
  ])
}

/** The per-core figure and what the design does on many cores, computed from this run. */
function reusePortParagraph(results) {
  const rp = results.scale.reusePort
  const one = rp.rows.find((r) => r.workers === 1)
  const most = rp.rows[rp.rows.length - 1]
  const cores = results.environment.cpus
  if (!one) return ''
  const perWorker = most.total.median / most.workers
  const scaling = most.workers > 1 ? most.total.median / one.total.median : 1
  return (
    `Per core: one worker thread (its own socket and event loop) took ${fmtRate(one.total.median)} datagrams/s of 64 B; ` +
    `${most.workers} workers took ${fmtRate(most.total.median)}/s together (${fmtRate(perWorker)}/s each, ${scaling.toFixed(2)}× one worker). ` +
    (scaling < 0.8 * most.workers
      ? `On this ${cores}-core machine the flood sender (which also pays for loopback delivery, in its own process) competes with the receivers for the same cores, so ${most.workers} workers cannot show linear scaling here. `
      : '') +
    'The design has nothing that grows with the number of cores: every worker thread has its own socket, its own libuv poll watcher on its own event loop, and its own receive memory; ' +
    'the kernel picks the socket for each datagram by hashing the 4-tuple (source address and port, destination address and port), so one flow always lands on the same worker and many flows spread; ' +
    'the addon shares no state between sockets or threads (the reactor thread exists only for Bun, which lends no libuv). ' +
    `On 16+ cores with one worker per core and enough flows, receiving scales with the workers up to about 16 × the per-core figure (≈ ${fmtRate(16 * one.total.median)}/s from this run's one-worker figure) — an upper bound not measured here, ` +
    'limited in practice by the kernel (softirq receive work, the NIC or loopback path), by the senders, and by how evenly the flows hash; a single flow never spreads.'
  )
}

function growthRows(sec) {
  return sec.cells.map((c) => [
    String(c.batch),
    ...sec.shapes.flatMap((s) => [fmtRate(c.results[s.id].median), `${c.results[s.id].nsPerDatagram.toFixed(0)} ns`, `${((c.results[s.id].nsPerDatagram * c.batch) / 1000).toFixed(2)} µs`]),
  ])
}

const growthHeader = (sec) => ['datagrams per call', ...sec.shapes.flatMap((s) => [`${s.label}: datagrams/s`, 'ns / datagram', 'µs / call'])]

function longRunRows(L) {
  const mb = (b) => `${(b / 1048576).toFixed(2)} MB`
  return L.points.map((p) => [fmtRate(p.datagrams), mb(p.rssGrowth), mb(p.heapUsedGrowth), mb(p.externalGrowth), mb(p.arrayBuffersGrowth), `${p.seconds.toFixed(1)} s`])
}

const LONG_HEADER = ['datagrams sent and received', 'RSS growth', 'V8 heap used growth', 'external growth', 'ArrayBuffers growth', 'elapsed']

const SCALE_NOTES = [
  'Idle sockets: each kind in a fresh process started as `bash -c "ulimit -n 20000; node --expose-gc ..."`; growth is measured after a full GC, from before the first socket to after the last is armed (this package arms receiving on the next tick, node:dgram when every socket is listening). CPU over idle is process.cpuUsage() (user + system, all threads) across a 2 s timer with nothing else to do; context switches are summed over every thread of the process from /proc. Then one datagram each is sent to the first, middle and last socket.',
  'reusePort: a C sender (benchmark/c/sendmmsg_flows.c) in a separate process sends UDP_SEGMENT groups of 64 × 64 B from 16 sockets, each with its own source port, taking turns; the receiving sockets have no UDP_GRO, so the kernel cuts every group into separate datagrams and spreads the 16 flows over the sockets by 4-tuple hash. Each worker counts batch.count into a SharedArrayBuffer slot that the main thread reads at the window edges.',
  'Cost growth, send: trySend(buffers, port, address) to a sink that is never read, for a fixed time; N = 1 is the same shape in both columns. Receive: the queue is filled with 4096 datagrams (untimed; from this process), then drained by calls of at most N (timed), repeated.',
  'Long run: a fresh process with --expose-gc sends 64 × 64 B per trySend (one GSO message) and drains the receiver with tryRecvBatch after every call; readings after a full GC, as growth over the reading taken after the warm-up. A full run goes to 100 M (BENCH_LONG_100M=0 stops at 10 M).',
]

const IDLE_HEADER = ['idle receiving sockets', 'sockets', 'ArrayBuffers', 'external', 'V8 heap', 'RSS', 'receives']

const NOTES = [
  'Paired rounds (rows marked so): two of the package\'s own paths in this one process, 64 B, batch 64, run back to back 31 times each (0.08 s per run, alternating which goes first); the figure is the median of the 31 per-round ratios, with their interquartile range. Adjacent runs share the machine\'s state of the moment, while the medians of separate runs drift by up to ±10% on a shared VM, more than a 3% target can tell apart. The targets for these comparisons are judged on the paired figure; the ratio of separate medians is still shown.',
  'Send: datagrams/s the kernel accepted (sendmmsg return values; dgram callbacks without error), 127.0.0.1 to one sink socket that is never read, so the kernel drops datagrams once its receive buffer is full. This measures the sender plus the kernel loopback path, not delivery.',
  'Runs of 2–64 equal-sized datagrams to one destination leave this package as UDP_SEGMENT (GSO) messages without being asked (commit cb4e527), so from batch 2 up the package rows are far above the plain C sendmmsg loop (one datagram per message); "C sendmmsg loop of UDP_SEGMENT (GSO) messages" is the like-for-like reference (run only where the batch holds at least one whole group).',
  '"batch" is datagrams per call for this package and the C loop, and the number of sends kept in flight for node:dgram (each dgram send is one datagram and one system call).',
  'Receive: a C flood of 64 B datagrams from a separate process at one socket (sendmmsg of UDP_SEGMENT groups of 64 × 64 B, cut into separate datagrams by the kernel because the receiver has no UDP_GRO; a plain sendmmsg loop is too slow on this loopback to outrun node:dgram). Counted = datagrams handed to JavaScript (dgram and package "message" events, sum of batch.count for onBatch, sum of array lengths for "messages") or, for the C reference, returned by recvmmsg, over a window after the first datagram. Offered = the flood sender\'s accepted rate; every receiver, the C loops too, stays open until the flood ends. CPU per datagram = the receiving process\'s user + system CPU from the flood\'s start until it closes (process.cpuUsage; getrusage for the C loop), over the datagrams it received meanwhile (median of the runs): what receiving costs, apart from how fast the shared flood let each receiver go. Drops = SO_RXQ_OVFL at that socket (not available for node:dgram).',
  'Delivered (1200 B): datagrams counted by a C recvmmsg receiver with UDP_GRO in a separate process, over a window; the sender runs in this process. Accepted = the sender\'s own rate over its whole run; receiver drops = median SO_RXQ_OVFL count per run, in kernel packets (a coalesced GSO group counts once).',
  'Every figure is the median of the runs; min – max is the spread across runs. Ratios divide medians from this same run (targets are judged on these); "best runs" divides the fastest run of each, since on a shared machine noise only slows runs down.',
]

function cpuLine(c) {
  if (!c) return 'CPU use by other processes: unknown'
  const busy = c.otherCores > 0.15 ? ' — the machine was NOT idle: loopback figures are noisy' : ''
  return `CPU use during the run: this benchmark ${c.ownCores.toFixed(2)} cores, other processes ${c.otherCores.toFixed(2)} of ${c.cores} cores, steal ${c.stealCores.toFixed(2)}${busy}`
}

const INSTRUCTIONS_HEADER = ['comparison (package / C)', 'package', 'C', 'package / C']

/** User-space instructions per datagram (lib/instructions.js), package beside C. */
function instructionRows(section) {
  return section.rows.map((r) => [r.label, r.pkg.toFixed(0), r.c.toFixed(1), `${(r.pkg / r.c).toFixed(1)}×`])
}

const INSTRUCTIONS_NOTE =
  'Counted by valgrind\'s callgrind, user space only (system calls and the kernel\'s work are not counted: the CPU table above has the system time). Each figure is (instructions of a run of N2 datagrams − those of a run of N1) / (N2 − N1), so start-up, module loading and JIT warm-up cancel out. Instructions are not cycles (this machine reads no hardware counters), and unlike times they hardly move with the machine\'s load (a few percent between runs, from when the JIT and the garbage collector run).'

function header(results) {
  const e = results.environment
  return [
    `node ${e.node}, Linux ${e.kernel}, ${e.cpus} × ${e.cpu}, ${e.compiler}`,
    `mode: ${results.config.quick ? 'quick (BENCH_QUICK=1)' : 'full'}; ${results.config.runs} runs × ${results.config.seconds} s per send figure; load average at start ${e.loadavgStart.map((x) => x.toFixed(2)).join(' ')}, at end ${e.loadavgEnd.map((x) => x.toFixed(2)).join(' ')}; took ${results.durationSeconds.toFixed(0)} s`,
    cpuLine(e.cpuDuringRun),
    `commit ${e.commit}${e.dirty ? ' (working tree has changes)' : ''}, addon ${e.addon}`,
  ]
}

function toText(results) {
  const { batches } = results.config
  const out = []
  out.push(...header(results), '')
  if (results.ratios.length) {
    out.push('TARGETS (same run)')
    out.push(textTable(['comparison', 'medians', 'best runs', 'target', ''], ratioRows(results), [false, true, true, true, false]), '')
  }
  if (results.send) {
    for (const size of results.config.sizes) {
      out.push(`SEND ${size} B: datagrams/s accepted by the kernel, by batch size (median of ${results.config.runs})`)
      out.push(textTable(['sender', ...batches.map(String)], sendRows(results, size), [false, ...batches.map(() => true)]), '')
    }
  }
  if (results.instructions) {
    out.push('USER-SPACE INSTRUCTIONS PER DATAGRAM (callgrind)')
    out.push(textTable(INSTRUCTIONS_HEADER, instructionRows(results.instructions), [false, true, true, true]), '')
  }
  if (results.receive) {
    out.push('RECEIVE 64 B flood: datagrams/s delivered')
    out.push(textTable(['receiver', 'median', 'min – max', 'offered', 'CPU/datagram (user + system)', 'drops (last run)'], receiveRows(results), [false, true, true, true, true, true]), '')
  }
  if (results.delivered) {
    out.push('DELIVERED 1200 B to one destination (C recvmmsg + UDP_GRO receiver)')
    out.push(textTable(['sender', 'delivered/s', 'min – max', 'accepted/s', 'receiver drops', 'gso'], deliveredRows(results), [false, true, true, true, true, false]), '')
  }
  if (results.memory) {
    out.push('MEMORY: trySend(buffers, port, address), 64 × 64 B per call')
    out.push(textTable(['measure', 'value'], memoryRows(results.memory)), '')
  }
  if (results.idleMemory) {
    out.push('IDLE RECEIVE MEMORY: growth after a full GC, fresh process each')
    out.push(textTable(IDLE_HEADER, idleRows(results.idleMemory), [false, true, true, true, true, true, false]), '')
  }
  if (results.scale) {
    out.push('SCALE: idle receiving sockets, growth per socket')
    out.push(textTable(SCALE_IDLE_HEADER, scaleIdleRows(results.scale.idle), [false, true, true, true, true, true, true, true, false]), '')
    out.push('SCALE: reusePort across worker threads, 64 B flood from 16 source ports')
    out.push(textTable(REUSEPORT_HEADER, reusePortRows(results.scale.reusePort), [false, true, true, true, true]), '')
    out.push(reusePortParagraph(results), '')
  }
  if (results.growth) {
    for (const [name, sec] of [['SEND', results.growth.send], ['RECEIVE', results.growth.receive]]) {
      out.push(`COST GROWTH, ${name}: 64 B datagrams by datagrams per call (median)`)
      out.push(textTable(growthHeader(sec), growthRows(sec), growthHeader(sec).map((_, i) => i > 0)), '')
    }
    out.push('LONG RUN: memory growth over send + receive')
    out.push(textTable(LONG_HEADER, longRunRows(results.growth.longRun), [false, true, true, true, true, true]), '')
  }
  out.push(...NOTES.map((n) => `* ${n}`))
  if (results.scale || results.growth) out.push(...SCALE_NOTES.map((n) => `* ${n}`))
  return out.join('\n')
}

function toMarkdown(results) {
  const { batches } = results.config
  const out = ['# sendmmsg benchmark results', '']
  out.push(...header(results).map((l) => `${l}  `), '')
  out.push(`Command: \`${results.command}\`. Chart: [latest.svg](latest.svg). Raw numbers: [latest.json](latest.json).`, '')
  if (results.ratios.length) {
    out.push('## Targets (ratios measured in this run)', '')
    out.push(mdTable(['comparison', 'ratio of medians', 'ratio of best runs', 'target', 'result'], ratioRows(results), [false, true, true, true, false]), '')
  }
  if (results.send) {
    for (const size of results.config.sizes) {
      out.push(`## Send, ${size} B datagrams`, '')
      out.push(`Datagrams per second accepted by the kernel, by batch size; median of ${results.config.runs} runs of ${results.config.seconds} s.`, '')
      out.push(mdTable(['sender', ...batches.map((b) => `batch ${b}`)], sendRows(results, size), [false, ...batches.map(() => true)]), '')
    }
    const cpu = cpuRows(results, 64)
    if (cpu.rows.length) {
      out.push('## CPU per datagram, 64 B send', '')
      out.push('Nanoseconds of CPU per datagram accepted, user and system (kernel), median over the runs above: `process.cpuUsage()` around the synchronous package loops (every thread of this process), `getrusage` in the C loop (its whole process, setup included). No hardware counters are read, so there are no cycle counts: at a nominal clock of f GHz, cycles ≈ ns × f.', '')
      out.push(mdTable(['sender', ...cpu.shown.flatMap((b) => [`batch ${b} user`, `batch ${b} system`, `batch ${b} total`])], cpu.rows, [false, ...cpu.shown.flatMap(() => [true, true, true])]), '')
    }
  }
  if (results.instructions) {
    out.push('## User-space instructions per datagram', '', INSTRUCTIONS_NOTE, '')
    out.push(mdTable(INSTRUCTIONS_HEADER, instructionRows(results.instructions), [false, true, true, true]), '')
  }
  if (results.receive) {
    out.push('## Receive, 64 B flood', '')
    out.push(mdTable(['receiver', 'delivered/s (median)', 'min – max', 'offered/s', 'CPU per datagram (user + system)', 'drops (last run)'], receiveRows(results), [false, true, true, true, true, true]), '')
  }
  if (results.delivered) {
    out.push('## Delivered, 1200 B to one destination', '')
    out.push(mdTable(['sender', 'delivered/s (median)', 'min – max', 'accepted/s', 'receiver drops', 'GSO'], deliveredRows(results), [false, true, true, true, true, false]), '')
  }
  if (results.memory) {
    out.push('## Memory', '')
    out.push(mdTable(['trySend(buffers, port, address), 64 × 64 B per call', ''], memoryRows(results.memory)), '')
  }
  if (results.idleMemory) {
    out.push('## Idle receive memory', '', 'Growth after a full GC (fresh process each) for sockets bound to 127.0.0.1 with a \'message\' listener and no traffic; one datagram is then sent to the first socket to show it receives.', '')
    out.push(mdTable(IDLE_HEADER, idleRows(results.idleMemory), [false, true, true, true, true, true, false]), '')
  }
  if (results.scale) {
    out.push('## Scale: 10 000 idle receiving sockets', '')
    out.push(mdTable(SCALE_IDLE_HEADER, scaleIdleRows(results.scale.idle), [false, true, true, true, true, true, true, true, false]), '')
    out.push('## Scale: reusePort across worker threads', '', '64 B flood from 16 source ports at one port shared by N sockets with `reusePort: true`, one per worker thread.', '')
    out.push(mdTable(REUSEPORT_HEADER, reusePortRows(results.scale.reusePort), [false, true, true, true, true]), '')
    out.push(reusePortParagraph(results), '')
  }
  if (results.growth) {
    out.push('## Cost growth by datagrams per call', '', 'Chart: [latest-scale.svg](latest-scale.svg).', '')
    for (const [name, sec] of [['Send', results.growth.send], ['Receive', results.growth.receive]]) {
      out.push(`### ${name}, 64 B datagrams`, '')
      out.push(mdTable(growthHeader(sec), growthRows(sec), growthHeader(sec).map((_, i) => i > 0)), '')
    }
    const L = results.growth.longRun
    out.push('### Long run: memory stays flat?', '', `${fmtRate(L.rate)} datagrams/s sent and received; receiver drops: ${L.drops}.`, '')
    out.push(mdTable(LONG_HEADER, longRunRows(L), [false, true, true, true, true, true]), '')
  }
  out.push('## What is counted', '', ...NOTES.map((n) => `- ${n}`), ...(results.scale || results.growth ? SCALE_NOTES.map((n) => `- ${n}`) : []), '')
  return out.join('\n')
}

module.exports = { toText, toMarkdown }
