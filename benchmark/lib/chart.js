'use strict'
// The README chart (benchmark/results/latest.svg) from a results object. Re-render from saved
// results with: node benchmark/lib/chart.js benchmark/results/latest.json > out.svg
const { barChart } = require('./svg')
const { fmtRate } = require('./util')

function resultsChart(results) {
  const panels = []
  const c64 = results.send && results.send.cells.find((c) => c.size === 64 && c.batch === 64)
  if (c64) {
    panels.push({
      title: 'Send, 64 B datagrams, batch 64, to one destination',
      subtitle: 'datagrams/s accepted by the kernel (sink not read); dgram: 64 sends in flight',
      bars: results.send.senders.map((s) => ({ label: s.short || s.label, value: c64.results[s.id].median, group: s.group })),
    })
  }
  if (results.receive) {
    panels.push({
      title: 'Receive, 64 B flood from a C sender',
      subtitle: 'datagrams/s delivered to the handler',
      bars: results.receive.receivers.map((r) => ({ label: r.label, value: r.summary.median, group: r.group })),
    })
  }
  if (results.delivered) {
    panels.push({
      title: `Delivered, ${results.delivered.size} B datagrams to one destination`,
      subtitle: 'datagrams/s counted by a C recvmmsg + UDP_GRO receiver',
      bars: results.delivered.senders.map((s) => ({ label: s.label, value: s.summary.median, group: s.group })),
    })
  }
  const e = results.environment
  return barChart({
    title: 'sendmmsg vs node:dgram vs C, loopback, datagrams per second',
    subtitle: `median of ${results.config.runs} runs · node ${e.node} · Linux ${e.kernel} · ${e.cpus} × ${e.cpu}`,
    panels,
    footer: `127.0.0.1 only · ${e.date.slice(0, 10)} · every size and batch size: latest.md`,
    fmt: fmtRate,
  })
}

if (require.main === module) {
  const results = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'))
  process.stdout.write(resultsChart(results))
}

module.exports = { resultsChart }
