'use strict'
// The cost-growth chart (benchmark/results/latest-scale.svg) from a results object: ns per
// datagram against datagrams per call (log scale), one line per send/receive shape, and memory
// growth over the long run. Dependency-free SVG, like svg.js. Re-render from saved results with:
//   node benchmark/lib/scalechart.js benchmark/results/latest.json > out.svg

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** A round axis maximum at or above `v` (1, 2 or 5 × 10^k), with its tick step. */
function niceMax(v) {
  if (!(v > 0)) return { max: 1, step: 0.25 }
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return { max: m * p, step: (m * p) / (m === 2.5 || m === 5 ? 5 : 4) }
  return { max: 10 * p, step: 2.5 * p }
}

/**
 * One panel: lines over a log-scale x axis (and a log-scale y axis with `logY`). series: [{ label, color, dash?, points: [[x, y]] }].
 * Returns { svg: string[], height }.
 */
function linePanel({ x0, y0, width, title, subtitle, xLabel, yLabel, series, fmtX, fmtY, logY = false }) {
  const out = []
  const plot = { x: x0 + 60, y: y0 + 44, w: width - 60 - 230, h: 200 }
  out.push(`<text x="${x0}" y="${y0 + 14}" class="panel">${esc(title)}</text>`)
  if (subtitle) out.push(`<text x="${x0}" y="${y0 + 30}" class="sub">${esc(subtitle)}</text>`)
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b)
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite)
  const lo = Math.log10(xs[0])
  const hi = Math.log10(xs[xs.length - 1])
  const px = (x) => plot.x + (hi > lo ? ((Math.log10(x) - lo) / (hi - lo)) * plot.w : plot.w / 2)
  // y axis: linear from 0 (or symmetric around 0 when something is negative), or log-scale.
  let py
  let ticks
  if (logY) {
    // Ticks at 1, 2, 5 × 10^k, from the last one below the smallest value to the first above the largest.
    const all = []
    for (let d = 10 ** Math.floor(Math.log10(Math.min(...ys))); d <= 10 * Math.max(...ys); d *= 10) all.push(d, 2 * d, 5 * d)
    const ylo = Math.max(...all.filter((t) => t <= Math.min(...ys)))
    const yhi = Math.min(...all.filter((t) => t >= Math.max(...ys)))
    py = (y) => plot.y + plot.h - ((Math.log10(y) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo))) * plot.h
    ticks = all.filter((t) => t >= ylo && t <= yhi)
  } else {
    const { max, step } = niceMax(Math.max(...ys.map(Math.abs)))
    const yMin = ys.some((y) => y < 0) ? -max : 0
    py = (y) => plot.y + plot.h - ((y - yMin) / (max - yMin)) * plot.h
    ticks = []
    for (let v = yMin; v <= max + 1e-9; v += step) ticks.push(v)
  }
  for (const v of ticks) {
    out.push(`<line x1="${plot.x}" y1="${py(v).toFixed(1)}" x2="${plot.x + plot.w}" y2="${py(v).toFixed(1)}" class="grid"/>`)
    out.push(`<text x="${plot.x - 6}" y="${(py(v) + 3).toFixed(1)}" class="axis" text-anchor="end">${esc(fmtY(v))}</text>`)
  }
  for (const x of xs) {
    out.push(`<line x1="${px(x).toFixed(1)}" y1="${plot.y}" x2="${px(x).toFixed(1)}" y2="${plot.y + plot.h}" class="grid"/>`)
    out.push(`<text x="${px(x).toFixed(1)}" y="${plot.y + plot.h + 14}" class="axis" text-anchor="middle">${esc(fmtX(x))}</text>`)
  }
  out.push(`<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 30}" class="sub" text-anchor="middle">${esc(xLabel)}</text>`)
  out.push(`<text x="${x0}" y="${plot.y - 8}" class="sub">${esc(yLabel)}</text>`)
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]))
    const d = pts.map((p, k) => `${k ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5,3"' : ''}/>`)
    for (const p of pts) {
      out.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.label}: ${fmtX(p[0])} → ${fmtY(p[1])}`)}</title></circle>`)
    }
    // Legend to the right of the plot.
    const ly = plot.y + 6 + i * 34
    const lx = plot.x + plot.w + 16
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5,3"' : ''}/>`)
    const words = s.label.split(' ')
    const lines = ['']
    for (const w of words) {
      if ((lines[lines.length - 1] + ' ' + w).length > 30) lines.push(w)
      else lines[lines.length - 1] = lines[lines.length - 1] ? `${lines[lines.length - 1]} ${w}` : w
    }
    lines.slice(0, 2).forEach((t, k) => out.push(`<text x="${lx + 24}" y="${ly + 4 + k * 13}" class="lab">${esc(t)}</text>`))
  })
  return { svg: out, height: plot.y + plot.h + 44 - y0 }
}

function scaleChart(results) {
  const width = 880
  const parts = []
  let y = 28
  const e = results.environment
  parts.push(`<text x="16" y="${y}" class="title">${esc('sendmmsg: cost per datagram by datagrams per call, loopback')}</text>`)
  y += 18
  parts.push(`<text x="16" y="${y}" class="sub">${esc(`node ${e.node} · Linux ${e.kernel} · ${e.cpus} × ${e.cpu} · ${e.date.slice(0, 10)}`)}</text>`)
  y += 20
  const fmtN = (x) => (x >= 1e6 ? `${+(x / 1e6).toFixed(1)} M` : x >= 1e3 ? `${+(x / 1e3).toFixed(0)} k` : String(x))
  const g = results.growth
  if (g && (g.send || g.receive)) {
    const series = []
    const line = (section, id, label, color, dash) =>
      section && series.push({ label, color, dash, points: section.cells.map((c) => [c.batch, c.results[id].nsPerDatagram]) })
    line(g.send, 'equal', 'send: trySend of N × 64 B (GSO runs)', '#2f7ed8')
    line(g.send, 'alternating', 'send: trySend of N × 64/65 B (plain sendmmsg)', '#1b4f8a', true)
    line(g.receive, 'batch', 'receive: tryRecvBatch, N per call', '#e07b39')
    line(g.receive, 'datagrams', 'receive: tryRecv(N), Datagram objects', '#9c4a15', true)
    const p = linePanel({
      x0: 16,
      y0: y,
      width,
      title: 'Cost per datagram (lower is better)',
      subtitle: 'median of runs; 64 B datagrams to/from 127.0.0.1',
      xLabel: 'datagrams per call (log scale)',
      yLabel: 'ns per datagram (log scale)',
      logY: true,
      series,
      fmtX: String,
      fmtY: (v) => `${Math.round(v)}`,
    })
    parts.push(...p.svg)
    y += p.height + 10
  }
  const L = g && g.longRun
  if (L && L.points.length > 1) {
    const mb = (k) => L.points.map((pt) => [pt.datagrams, pt[k] / 1048576])
    const p = linePanel({
      x0: 16,
      y0: y,
      width,
      title: 'Long run: memory growth after a full GC (flat is good)',
      subtitle: `send + receive, ${fmtN(L.points[L.points.length - 1].datagrams)} datagrams; growth over the reading after ${fmtN(L.warmup)} warm-up`,
      xLabel: 'datagrams sent and received (log scale)',
      yLabel: 'MB',
      series: [
        { label: 'RSS', color: '#2f7ed8', points: mb('rssGrowth') },
        { label: 'V8 heap used', color: '#e07b39', points: mb('heapUsedGrowth') },
        { label: 'ArrayBuffers', color: '#8c8c8c', dash: true, points: mb('arrayBuffersGrowth') },
      ],
      fmtX: fmtN,
      fmtY: (v) => (Math.abs(v) < 1e-9 ? '0' : String(+v.toFixed(2))),
    })
    parts.push(...p.svg)
    y += p.height + 10
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif">`,
    '<style>',
    '.title{font-size:17px;font-weight:600;fill:#222}',
    '.panel{font-size:14px;font-weight:600;fill:#222}',
    '.sub{font-size:12px;fill:#555}',
    '.lab{font-size:12px;fill:#333}',
    '.axis{font-size:10px;fill:#777}',
    '.grid{stroke:#e3e3e3;stroke-width:1}',
    '</style>',
    `<rect width="${width}" height="${y}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}

if (require.main === module) {
  const results = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'))
  process.stdout.write(scaleChart(results))
}

module.exports = { scaleChart }
