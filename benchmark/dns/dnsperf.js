'use strict'
// dnsperf, the C load generator DNS operators use, as the reference client: same names (an
// input file in the same order), same server, duration, in-flight limit and timeout. Its CPU
// time comes from /usr/bin/time (rusage of the process and all its threads).
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { runChild } = require('../lib/util')
const { nameOf, queryOrder } = require('./wire')

const DNSPERF = 'dnsperf'

function writeQueryFile(dir, names) {
  const file = path.join(dir, 'queries.txt')
  fs.writeFileSync(file, queryOrder(names).map((i) => `${nameOf(i)} A`).join('\n') + '\n')
  return file
}

/** Pulls the figures out of dnsperf's "Statistics:" block. */
function parseOutput(text) {
  const num = (re) => {
    const m = text.match(re)
    return m ? Number(m[1]) : NaN
  }
  const noerror = num(/Response codes:.*?NOERROR (\d+)/)
  const completed = num(/Queries completed:\s+(\d+)/)
  return {
    sent: num(/Queries sent:\s+(\d+)/),
    completed,
    lost: num(/Queries lost:\s+(\d+)/),
    noerror,
    // dnsperf matches ids but looks at nothing but the RCODE: anything but NOERROR is our failure.
    notNoerror: Number.isFinite(noerror) ? completed - noerror : completed,
    runTime: num(/Run time \(s\):\s+([\d.]+)/),
    qps: num(/Queries per second:\s+([\d.]+)/),
  }
}

async function runDnsperf({ port, seconds, inflight, timeout, queryFile, dir, onStart }) {
  const timeFile = path.join(dir, 'dnsperf.time')
  const args = ['-o', timeFile, '-f', '%U %S %e', DNSPERF, '-s', '127.0.0.1', '-p', port, '-d', queryFile, '-l', seconds, '-q', inflight, '-t', timeout]
  const promise = runChild('/usr/bin/time', args, { timeoutMs: (seconds + timeout + 20) * 1000 })
  if (onStart) onStart()
  const { code, lines, stderr } = await promise
  const out = lines.join('\n')
  if (code !== 0) throw new Error(`dnsperf exited with ${code}: ${stderr.trim() || out.slice(-500)}`)
  const [user, system, wall] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(/\s+/).map(Number)
  const stats = parseOutput(out)
  const cpuUs = (user + system) * 1e6
  return {
    client: 'dnsperf',
    seconds: stats.runTime,
    sent: stats.sent,
    answered: stats.noerror,
    timeouts: stats.lost,
    invalid: stats.notNoerror,
    qps: stats.noerror / stats.runTime, // answered (NOERROR) per second, as for the Node clients
    qpsReported: stats.qps,
    cpuUserUs: user * 1e6,
    cpuSystemUs: system * 1e6,
    cpuUsPerAnswer: cpuUs / stats.noerror,
    processWall: wall,
  }
}

function dnsperfVersion() {
  const r = spawnSync(DNSPERF, ['-h'], { encoding: 'utf8' })
  const m = `${r.stdout}${r.stderr}`.match(/Version\s+(\S+)/)
  return m ? m[1] : 'unknown'
}

module.exports = { writeQueryFile, runDnsperf, dnsperfVersion, parseOutput }
