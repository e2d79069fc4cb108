'use strict'
// Text and Markdown for the DNS benchmark's results (benchmark/results/dns.md).

const LABELS = {
  sendmmsg: 'this package (sendmmsg/recvmmsg batches)',
  dnsperf: 'dnsperf (C)',
  dgram: 'node:dgram (one send per query)',
}
const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a')
const fix = (n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a')
const pct = (n) => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : 'n/a')

function rows(report) {
  return ['sendmmsg', 'dnsperf', 'dgram'].map((name) => {
    const c = report.clients[name]
    const r = report.ratios[name]
    return {
      name,
      label: LABELS[name],
      qps: int(c.qps),
      lost: int(c.timeouts),
      invalid: name === 'dnsperf' ? `${int(c.invalid)} (RCODE only)` : int(c.invalid),
      cpu: fix(c.cpuUsPerAnswer),
      clientCores: pct(c.clientCores),
      unbound: pct(c.unboundCores),
      other: fix(c.otherCores),
      bottleneck: c.bottleneck,
      qpsRatio: r ? `${fix(r.qps)}× (${r.rateTarget})` : '1×',
      cpuRatio: r ? `${fix(r.cpuPerAnswer)}× (${r.cpuTarget})` : '1×',
    }
  })
}

function verdict(report) {
  const lines = []
  if (report.serverOrMachineBound) {
    lines.push(
      'No client was limited by itself (see "limit": the server, or all cores busy): the rates measure what unbound ' +
        'gets of this machine more than the clients, so the main figure is the client CPU time per answered query.',
    )
  }
  const s = report.ratios.sendmmsg
  const g = report.ratios.dgram
  lines.push(
    `This package vs dnsperf: ${fix(s.qps)}× the rate (target ≥ 1: ${s.rateTarget}), ${fix(s.cpuPerAnswer)}× the CPU per answered query (target ≤ 1: ${s.cpuTarget}).`,
  )
  lines.push(`node:dgram vs dnsperf: ${fix(g.qps)}× the rate (${g.rateTarget}), ${fix(g.cpuPerAnswer)}× the CPU per answered query (${g.cpuTarget}).`)
  const busy = Math.max(...Object.values(report.clients).map((c) => c.otherCores))
  if (busy > 0.2) {
    lines.push(
      `Other work used up to ${fix(busy)} cores during the runs (other processes, and kernel work charged to no process): rates are noisier than the CPU-per-query figures.`,
    )
  }
  return lines
}

function toText(report) {
  const out = []
  for (const r of rows(report)) {
    out.push(
      `${r.label}\n    ${r.qps} answers/s, ${r.lost} lost, ${r.invalid} failed validation, ${r.cpu} µs client CPU/answer` +
        ` (client ${r.clientCores} of a core, unbound ${r.unbound}, limit: ${r.bottleneck})` +
        (r.name === 'dnsperf' ? '' : `\n    vs dnsperf: rate ${r.qpsRatio}, CPU/answer ${r.cpuRatio}`),
    )
  }
  out.push('', ...verdict(report))
  return out.join('\n')
}

function toMarkdown(report) {
  const m = report.machine
  const c = report.config
  const out = [
    '# DNS load generator benchmark',
    '',
    `Produced by \`npm run bench:dns\` (benchmark/dns/run.js) on ${report.date}, commit ${report.commit}.`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}, unbound ${m.unbound}, dnsperf ${m.dnsperf}.`,
    '',
    `Setup: one unbound (1 thread, local-data for ${c.names} names under bench.test., no recursion) on 127.0.0.1; ` +
      `each client sends for ${c.seconds} s with at most ${c.inflight} queries in flight and a ${c.timeout} s timeout, ` +
      `the same names in the same order; ${c.rounds} round(s), medians shown. The Node clients decode every answer ` +
      '(id of an outstanding query, question, A record equal to the one configured); dnsperf only counts RCODEs.',
    '',
    '| client | answers/s | lost | failed validation | client CPU µs/answer | client CPU | unbound CPU | other load (cores) | limit | rate vs dnsperf | CPU/answer vs dnsperf |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
  ]
  for (const r of rows(report)) {
    out.push(`| ${r.label} | ${r.qps} | ${r.lost} | ${r.invalid} | ${r.cpu} | ${r.clientCores} | ${r.unbound} | ${r.other} | ${r.bottleneck} | ${r.qpsRatio} | ${r.cpuRatio} |`)
  }
  out.push(
    '',
    'Targets: rate ≥ dnsperf\'s, CPU per answered query ≤ dnsperf\'s. "client CPU" and "unbound CPU" are shares of one core; ' +
      '"limit" is server (unbound ≥ 90% of its one core), client (client ≥ 90% of a core), machine (all cores ≥ 95% busy) ' +
      'or latency/window otherwise. Client CPU: process.cpuUsage() over the run for the Node clients, /usr/bin/time for dnsperf; ' +
      'unbound and the machine: /proc.',
    '',
    ...verdict(report),
    '',
  )
  return out.join('\n')
}

module.exports = { toText, toMarkdown }
