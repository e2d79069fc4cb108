'use strict'
// A dependency-free SVG chart: panels of horizontal bars (one bar per sender/receiver), each
// labelled with its value, coloured by family (this package, node:dgram, C reference).

const COLORS = { package: '#2f7ed8', dgram: '#8c8c8c', c: '#e07b39' }
const LEGEND = [
  ['package', 'sendmmsg (this package)'],
  ['dgram', 'node:dgram'],
  ['c', 'C reference (sendmmsg/recvmmsg)'],
]

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A round tick step, and how many ticks reach `v`. */
function niceAxis(v) {
  if (!(v > 0)) return { step: 1, ticks: 1 }
  const raw = v / 4
  const p = 10 ** Math.floor(Math.log10(raw))
  let step = 10 * p
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (m * p >= raw) {
      step = m * p
      break
    }
  }
  return { step, ticks: Math.max(1, Math.ceil(v / step - 1e-9)) }
}

function fmtAxis(n) {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(2)}M`
  if (n >= 1e3) return `${+(n / 1e3).toFixed(0)}k`
  return String(n)
}

/**
 * panels: [{ title, subtitle?, bars: [{ label, value, group }] }]
 * Returns the SVG document as a string.
 */
function barChart({ title, subtitle, footer, panels, width = 880, fmt }) {
  const labelW = 330
  const valueW = 90
  const barH = 20
  const gap = 6
  const plotX = labelW + 10
  const plotW = width - plotX - valueW
  const out = []
  let y = 28
  out.push(`<text x="16" y="${y}" class="title">${esc(title)}</text>`)
  if (subtitle) {
    y += 18
    out.push(`<text x="16" y="${y}" class="sub">${esc(subtitle)}</text>`)
  }
  y += 14
  // Legend
  let lx = 16
  for (const [group, text] of LEGEND) {
    out.push(`<rect x="${lx}" y="${y}" width="12" height="12" fill="${COLORS[group]}" rx="2"/>`)
    out.push(`<text x="${lx + 17}" y="${y + 10}" class="lab">${esc(text)}</text>`)
    lx += 30 + text.length * 6.6
  }
  y += 26
  for (const panel of panels) {
    const { step, ticks } = niceAxis(Math.max(...panel.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0))))
    const max = step * ticks
    out.push(`<text x="16" y="${y + 12}" class="panel">${esc(panel.title)}</text>`)
    y += 20
    if (panel.subtitle) {
      out.push(`<text x="16" y="${y + 8}" class="sub">${esc(panel.subtitle)}</text>`)
      y += 16
    }
    const top = y + 4
    const height = panel.bars.length * (barH + gap)
    // Grid lines and axis labels
    for (let i = 0; i <= ticks; i++) {
      const gx = plotX + (plotW * i) / ticks
      out.push(`<line x1="${gx.toFixed(1)}" y1="${top - 2}" x2="${gx.toFixed(1)}" y2="${top + height}" class="grid"/>`)
      out.push(`<text x="${gx.toFixed(1)}" y="${top + height + 13}" class="axis" text-anchor="middle">${fmtAxis(step * i)}</text>`)
    }
    panel.bars.forEach((b, i) => {
      const by = top + i * (barH + gap)
      const v = Number.isFinite(b.value) ? b.value : 0
      const w = Math.max(1, (plotW * v) / max)
      out.push(`<text x="${labelW}" y="${by + barH / 2 + 4}" class="lab" text-anchor="end">${esc(b.label)}</text>`)
      out.push(
        `<rect x="${plotX}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[b.group] || '#999'}" rx="2"><title>${esc(
          `${b.label}: ${fmt(b.value)}/s`,
        )}</title></rect>`,
      )
      out.push(`<text x="${(plotX + w + 5).toFixed(1)}" y="${by + barH / 2 + 4}" class="val">${esc(fmt(b.value))}/s</text>`)
    })
    y = top + height + 30
  }
  if (footer) {
    out.push(`<text x="16" y="${y - 4}" class="sub">${esc(footer)}</text>`)
    y += 10
  }
  const height = y
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif">`,
    '<style>',
    '.title{font-size:17px;font-weight:600;fill:#222}',
    '.panel{font-size:14px;font-weight:600;fill:#222}',
    '.sub{font-size:12px;fill:#555}',
    '.lab{font-size:12px;fill:#333}',
    '.val{font-size:12px;fill:#222;font-weight:600}',
    '.axis{font-size:10px;fill:#777}',
    '.grid{stroke:#e3e3e3;stroke-width:1}',
    '</style>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n')
}

module.exports = { barChart }
