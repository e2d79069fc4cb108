#!/usr/bin/env node
// `npm run bench:dns`: a real-protocol benchmark. Starts a private unbound on a free 127.0.0.1
// port answering a local zone, then runs three DNS load generators against it one after the
// other with the same query mix, duration, in-flight limit and timeout:
//   1. this package (batched sendmmsg/recvmmsg), 2. dnsperf (C), 3. the same generator on node:dgram.
// Every answer of the Node clients is decoded and checked (id, question, A record). Reports
// answered queries/s, losses, failed answers, client CPU per answered query, unbound's and the
// whole machine's CPU use, and writes benchmark/results/dns.{json,md}.
//
//   DNS_SECONDS=10    sending time per client      DNS_INFLIGHT=100  queries outstanding at most
//   DNS_NAMES=1000    names in the zone            DNS_TIMEOUT=2     seconds before a query is lost
//   DNS_ROUNDS=3      rounds (medians reported)    DNS_RESULTS_DIR=  where dns.{json,md} go
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync, spawnSync } = require('node:child_process')
const { runChild, jsonLine, median } = require('../lib/util')
const { startUnbound, unboundVersion } = require('./unbound')
const { writeQueryFile, runDnsperf, dnsperfVersion } = require('./dnsperf')
const { MAX_NAMES } = require('./wire')
const { toMarkdown, toText } = require('./report')

const ROOT = path.join(__dirname, '..', '..')

function envNumber(name, fallback, min, max) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const v = Number(raw)
  if (!(v >= min && v <= max)) throw new RangeError(`${name} must be a number from ${min} to ${max}, got ${raw}`)
  return v
}

const CONFIG = {
  seconds: envNumber('DNS_SECONDS', 10, 1, 120),
  inflight: Math.floor(envNumber('DNS_INFLIGHT', 100, 1, 10000)),
  names: Math.floor(envNumber('DNS_NAMES', 1000, 1, MAX_NAMES)),
  timeout: envNumber('DNS_TIMEOUT', 2, 0.1, 10),
  rounds: Math.floor(envNumber('DNS_ROUNDS', 3, 1, 10)),
}
const RESULTS_DIR = process.env.DNS_RESULTS_DIR ? path.resolve(process.env.DNS_RESULTS_DIR) : path.join(__dirname, '..', 'results')

// A client (or unbound) using this share of one core or more is what limits the rate.
const BOUND_CORE_SHARE = 0.9
// The machine counts as saturated when this share of all cores is busy.
const MACHINE_BUSY = 0.95

/** unbound and dnsperf come from Debian packages; installed (visibly) only when missing. */
function ensureTools() {
  const missing = [
    ['/usr/sbin/unbound', 'unbound'],
    ['/usr/bin/dnsperf', 'dnsperf'],
    ['/usr/bin/time', 'time'],
  ].filter(([file]) => !fs.existsSync(file)).map(([, pkg]) => pkg)
  if (missing.length === 0) return
  if (process.getuid && process.getuid() !== 0) throw new Error(`missing tools; install them with: apt-get install -y ${missing.join(' ')}`)
  console.log(`installing ${missing.join(' ')} with apt-get`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const install = () => spawnSync('apt-get', ['install', '-y', ...missing], { stdio: 'inherit', env, timeout: 600000 }).status === 0
  if (install()) return
  // The package lists may be stale or absent (fresh containers): refresh once and retry.
  spawnSync('apt-get', ['update'], { stdio: 'inherit', env, timeout: 600000 })
  if (!install()) throw new Error(`apt-get install -y ${missing.join(' ')} failed`)
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - f[3] - f[4], total } // idle + iowait are not busy
}

/**
 * Samples unbound's CPU and the machine's between `begin()` and `end()`, so every client's run
 * says whether the server, the client or the whole machine was the limit.
 */
function sampler(server) {
  let t0, u0, m0
  return {
    begin() {
      t0 = performance.now()
      u0 = server.cpu()
      m0 = machineTicks()
    },
    end() {
      const wall = (performance.now() - t0) / 1000
      const m1 = machineTicks()
      return { wall, unboundCpu: server.cpu() - u0, machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total) }
    },
  }
}

/** Adds the server/machine figures and the verdict on what limited the rate. */
function annotate(result, sample) {
  const cores = os.cpus().length
  const clientCpu = (result.cpuUserUs + result.cpuSystemUs) / 1e6
  const clientCores = clientCpu / sample.wall
  const unboundCores = sample.unboundCpu / sample.wall
  const machineCores = sample.machineBusy * cores
  let bottleneck = 'latency/window'
  if (unboundCores >= BOUND_CORE_SHARE) bottleneck = 'server'
  else if (clientCores >= BOUND_CORE_SHARE) bottleneck = 'client'
  else if (sample.machineBusy >= MACHINE_BUSY) bottleneck = 'machine'
  return {
    ...result,
    clientCores,
    unboundCores,
    unboundCpuUsPerAnswer: (sample.unboundCpu * 1e6) / result.answered,
    machineBusyCores: machineCores,
    // Whatever else ran meanwhile (kernel softirq work not charged to a process included).
    otherCores: Math.max(0, machineCores - clientCores - unboundCores),
    bottleneck,
  }
}

async function runNodeClient(impl, server, sample, children) {
  const args = [path.join(__dirname, 'generator.js'), impl, server.port, CONFIG.seconds, CONFIG.inflight, CONFIG.names, CONFIG.timeout]
  let started = false
  const { code, lines, stderr } = await runChild(process.execPath, args, {
    timeoutMs: (CONFIG.seconds + CONFIG.timeout + 30) * 1000,
    onLine: (line, child) => {
      children.add(child)
      // The window starts with the first query, not with Node's start-up.
      if (!started && line.includes('"phase":"start"')) {
        started = true
        sample.begin()
      }
    },
  })
  const s = sample.end()
  const result = jsonLine(lines, 'client')
  if (code !== 0 || !result) throw new Error(`${impl} client failed (${code}): ${stderr.trim()}`)
  return annotate(result, s)
}

const CLIENTS = ['sendmmsg', 'dnsperf', 'dgram']

/** One run of each client; the order rotates with the round so drift in background load is shared. */
async function runRound(index, server, queryFile, tmp, children) {
  const sample = sampler(server)
  const round = {}
  for (let k = 0; k < CLIENTS.length; k++) {
    const name = CLIENTS[(index + k) % CLIENTS.length]
    if (name === 'dnsperf') {
      const opts = { port: server.port, seconds: CONFIG.seconds, inflight: CONFIG.inflight, timeout: CONFIG.timeout, queryFile, dir: tmp }
      const perf = await runDnsperf({ ...opts, onStart: () => sample.begin() })
      round.dnsperf = annotate(perf, sample.end())
    } else {
      round[name] = await runNodeClient(name, server, sample, children)
    }
  }
  return round
}

/** Medians over rounds of the figures that matter, per client, plus the ratios vs dnsperf. */
function summarize(rounds) {
  const clients = {}
  for (const name of CLIENTS) {
    const runs = rounds.map((r) => r[name])
    const med = (k) => median(runs.map((r) => r[k]))
    const sum = (k) => runs.reduce((a, r) => a + (r[k] || 0), 0)
    const verdicts = [...new Set(runs.map((r) => r.bottleneck))]
    clients[name] = {
      qps: med('qps'),
      cpuUsPerAnswer: med('cpuUsPerAnswer'),
      answered: sum('answered'),
      sent: sum('sent'),
      timeouts: sum('timeouts'),
      invalid: sum('invalid'),
      clientCores: med('clientCores'),
      unboundCores: med('unboundCores'),
      unboundCpuUsPerAnswer: med('unboundCpuUsPerAnswer'),
      otherCores: med('otherCores'),
      bottleneck: verdicts.join('/'),
    }
  }
  const ref = clients.dnsperf
  const ratios = {}
  for (const name of ['sendmmsg', 'dgram']) {
    const c = clients[name]
    const qps = c.qps / ref.qps
    const cpu = c.cpuUsPerAnswer / ref.cpuUsPerAnswer
    ratios[name] = { qps, cpuPerAnswer: cpu, rateTarget: qps >= 1 ? 'hit' : 'miss', cpuTarget: cpu <= 1 ? 'hit' : 'miss' }
  }
  const limited = Object.values(clients).filter((c) => c.bottleneck !== 'client' && c.bottleneck !== 'latency/window').length
  return { clients, ratios, serverOrMachineBound: limited === 3 }
}

function gitCommit() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib', 'src', 'crates'], { cwd: ROOT, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${commit} (uncommitted changes in lib/src/crates)` : commit
  } catch {
    return 'unknown'
  }
}

async function main() {
  ensureTools()
  if (!fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is missing: run npm run build:ts first')
  const children = new Set()
  let server = null
  // Never leave unbound or a client behind: on a signal stop everything, then exit.
  const onSignal = (sig) => {
    for (const c of children) c.kill('SIGKILL')
    const exit = () => process.exit(sig === 'SIGINT' ? 130 : 143)
    if (server) server.stop().then(exit, exit)
    else exit()
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', () => server && server.killNow())

  const machine = {
    cpu: os.cpus()[0].model.trim(),
    cores: os.cpus().length,
    kernel: os.release(),
    node: process.version,
    unbound: unboundVersion(),
    dnsperf: dnsperfVersion(),
  }
  console.log(`DNS benchmark: ${CONFIG.rounds} round(s) × 3 clients × ${CONFIG.seconds} s, ${CONFIG.inflight} in flight, ${CONFIG.names} names, timeout ${CONFIG.timeout} s`)
  const rounds = []
  try {
    server = await startUnbound({ names: CONFIG.names })
    console.log(`unbound ${machine.unbound} (pid ${server.pid}) on 127.0.0.1:${server.port}`)
    const queryFile = writeQueryFile(server.dir, CONFIG.names)
    for (let r = 0; r < CONFIG.rounds; r++) {
      const round = await runRound(r, server, queryFile, server.dir, children)
      for (const name of CLIENTS) {
        const c = round[name]
        console.log(`  round ${r + 1} ${name.padEnd(8)} ${Math.round(c.qps)} q/s, ${c.cpuUsPerAnswer.toFixed(2)} µs CPU/answer, unbound ${(c.unboundCores * 100).toFixed(0)}% of a core, ${c.bottleneck}`)
      }
      rounds.push(round)
    }
  } finally {
    if (server) await server.stop()
    server = null
  }
  const summary = summarize(rounds)
  const report = { date: new Date().toISOString(), commit: gitCommit(), machine, config: CONFIG, ...summary, rounds }
  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  fs.writeFileSync(path.join(RESULTS_DIR, 'dns.json'), JSON.stringify(report, null, 2) + '\n')
  fs.writeFileSync(path.join(RESULTS_DIR, 'dns.md'), toMarkdown(report))
  console.log('\n' + toText(report))
  console.log(`wrote ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'dns.json'))} and dns.md`)
  const invalid = summary.clients.sendmmsg.invalid + summary.clients.dgram.invalid + summary.clients.dnsperf.invalid
  if (invalid > 0) {
    console.error(`${invalid} answers failed validation`)
    process.exitCode = 1
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
