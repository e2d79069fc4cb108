'use strict'
// Small helpers shared by the benchmark: statistics, clocks, number formatting and bounded
// child processes.
const { spawn } = require('node:child_process')

const now = () => performance.now() / 1000 // seconds, monotonic

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

function summarize(rates) {
  const ok = rates.filter((x) => Number.isFinite(x))
  return {
    median: median(ok),
    min: ok.length ? Math.min(...ok) : NaN,
    max: ok.length ? Math.max(...ok) : NaN,
    runs: rates,
  }
}

/** 1234567 -> "1.23 M", 456789 -> "457 k". */
function fmtRate(n) {
  if (!Number.isFinite(n)) return 'n/a'
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} k`
  return n.toFixed(0)
}

function fmtRatio(r) {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a'
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs a program with a hard time limit, collecting stdout lines. `onLine` sees each line as it
 * arrives. Resolves with { code, signal, lines, stderr }.
 */
function runChild(file, args, { timeoutMs, onLine } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args.map(String), { stdio: ['ignore', 'pipe', 'pipe'] })
    const lines = []
    let pending = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      pending += chunk
      let nl
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        lines.push(line)
        if (onLine) onLine(line, child)
      }
    })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs || 30000)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (pending) lines.push(pending)
      resolve({ code, signal, lines, stderr, pid: child.pid })
    })
  })
}

/** The last stdout line that parses as JSON with the given key. */
function jsonLine(lines, key) {
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const v = JSON.parse(lines[i])
      if (v && key in v) return v
    } catch {}
  }
  return null
}

module.exports = { now, median, summarize, fmtRate, fmtRatio, sleep, runChild, jsonLine }
