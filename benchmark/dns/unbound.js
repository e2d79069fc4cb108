'use strict'
// A private unbound for the benchmark: its own config in a temp dir, loopback only, one thread,
// authoritative-style answers from local-data (no root hints in use, never recursing: the root
// is a refusing local zone), started in the foreground and always stopped by us.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const dgram = require('node:dgram')
const { spawn, execFileSync } = require('node:child_process')
const { ZONE, nameOf, addressOf, questionBytes, writeQuery, checkAnswer, buildTable } = require('./wire')

const UNBOUND = '/usr/sbin/unbound'

function configText({ port, dir, names }) {
  const lines = [
    'server:',
    '  interface: 127.0.0.1',
    `  port: ${port}`,
    '  do-ip4: yes',
    '  do-ip6: no',
    '  do-udp: yes',
    '  do-tcp: no',
    '  do-daemonize: no',
    '  num-threads: 1',
    '  so-reuseport: no',
    '  chroot: ""',
    '  username: ""',
    `  directory: "${dir}"`,
    '  pidfile: ""',
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 0',
    '  access-control: 0.0.0.0/0 refuse',
    '  access-control: 127.0.0.0/8 allow',
    // No validator, no trust anchors: nothing to fetch. The root as a refusing local zone means
    // a name outside the bench zone is refused instead of being resolved on the internet.
    '  module-config: "iterator"',
    '  local-zone: "." refuse',
    `  local-zone: "${ZONE}" static`,
  ]
  for (let i = 0; i < names; i++) lines.push(`  local-data: "${nameOf(i)} 3600 IN A ${addressOf(i)}"`)
  lines.push('remote-control:', '  control-enable: no', '')
  return lines.join('\n')
}

/** A UDP port that is free on 127.0.0.1 right now (the kernel picks it from the high range). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.once('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** utime + stime of a process in seconds, from /proc/<pid>/stat (fields 14 and 15). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // the name may contain spaces
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK // fields[0] is field 3 (state)
}

/** One query over node:dgram, resolving with whether a valid answer came back in time. */
function probe(port, timeoutMs) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    const table = buildTable(1)
    const q = Buffer.alloc(table.maxQueryLength)
    const n = writeQuery(q, 0, 0x1234, questionBytes(nameOf(0)))
    const done = (ok) => {
      clearTimeout(timer)
      s.close()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    s.on('error', () => done(false))
    s.on('message', (m) => done(m.readUInt16BE(0) === 0x1234 && checkAnswer(m, 0, m.length, table.questions[0], table.expected[0]) === 0))
    s.send(q, 0, n, port, '127.0.0.1')
  })
}

/** Starts unbound and waits (bounded) until it answers correctly. */
async function startUnbound({ names }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dns-'))
  const port = await freePort()
  const conf = path.join(dir, 'unbound.conf')
  fs.writeFileSync(conf, configText({ port, dir, names }))
  execFileSync('/usr/sbin/unbound-checkconf', [conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  const child = spawn(UNBOUND, ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c) => (stderr += c))
  let exited = false
  child.on('exit', () => (exited = true))
  const server = {
    pid: child.pid,
    port,
    dir,
    cpu: () => cpuSeconds(child.pid),
    /** Stops unbound (TERM, then KILL after 2 s) and removes its temp dir. Safe to call twice. */
    stop: () =>
      new Promise((resolve) => {
        const cleanup = () => {
          fs.rmSync(dir, { recursive: true, force: true })
          resolve()
        }
        if (exited) return cleanup()
        const kill = setTimeout(() => child.kill('SIGKILL'), 2000)
        child.once('exit', () => {
          clearTimeout(kill)
          cleanup()
        })
        child.kill('SIGTERM')
      }),
    /** Synchronous last resort for process 'exit' handlers. */
    killNow: () => {
      if (!exited) child.kill('SIGKILL')
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  for (let i = 0; i < 50; i++) {
    if (exited) break
    if (await probe(port, 100)) return server
  }
  await server.stop()
  throw new Error(`unbound did not answer on 127.0.0.1:${port}${stderr ? `: ${stderr.trim()}` : ''}`)
}

function unboundVersion() {
  try {
    const out = execFileSync(UNBOUND, ['-V'], { encoding: 'utf8' })
    return out.split('\n')[0].replace(/^Version\s*/, '').trim()
  } catch {
    return 'unknown'
  }
}

module.exports = { startUnbound, cpuSeconds, unboundVersion, configText }
