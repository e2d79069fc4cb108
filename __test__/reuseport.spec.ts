// All cores: reusePort groups, CPU steering (steerByCpu, setIncomingCpu), thread affinity, and
// examples/multicore-server.mjs. The senders are CPython processes (__test__/fixtures/flows.py)
// pinned to one CPU with `taskset -c N` (util-linux); every flow is its own source socket.
//
// Steering needs two CPUs, and relies on loopback running the receive path (softirq, where the
// steering program runs) on the sending CPU. That is checked at load time by an independent probe
// (CPython reads SO_INCOMING_CPU on a connected receiver after a send from CPU 0, then CPU 1),
// not assumed; without it the steering tests are skipped with the reason logged.
import test, { type ExecutionContext } from 'ava'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Worker } from 'node:worker_threads'

import { createSocket, getThreadAffinity, setThreadAffinity, type Datagram, type UdpSocket } from '../lib'
import { sleep } from './helpers'

const run = promisify(execFile)
const root = path.resolve(__dirname, '..')
const FLOWS = path.join(__dirname, 'fixtures', 'flows.py')
const HOST = '127.0.0.1'

const SOFTIRQ_PROBE = `
import json, os, socket
seen = []
for cpu in (0, 1):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.bind(("127.0.0.1", 0))
    rx.connect(tx.getsockname()); rx.settimeout(2)
    os.sched_setaffinity(0, {cpu})
    tx.sendto(b"probe", rx.getsockname()); rx.recv(16)
    seen.append(rx.getsockopt(socket.SOL_SOCKET, 49))  # SO_INCOMING_CPU
print(json.dumps(seen))
`

/** Why steering cannot be tested here, or null. Detected at run time. */
function steeringUnavailable(): string | null {
  const cpus = getThreadAffinity()
  if (!cpus.includes(0) || !cpus.includes(1)) return `needs CPUs 0 and 1; this process may run on [${cpus.join(', ')}]`
  const probe = spawnSync('python3', ['-c', SOFTIRQ_PROBE], { encoding: 'utf8', timeout: 10_000 })
  if (probe.status !== 0) return `the softirq probe (python3) failed: ${probe.stderr || probe.error?.message}`
  const seen = JSON.parse(probe.stdout) as number[]
  if (seen[0] !== 0 || seen[1] !== 1) {
    return `loopback's receive path did not run on the sending CPU (sends from CPUs 0, 1 were received on ${seen.join(', ')}; RPS on lo?)`
  }
  return null
}

const unavailable = steeringUnavailable()
const steering = unavailable === null ? test.serial : test.serial.skip
if (unavailable !== null) {
  test('CPU steering tests are skipped', (t) => {
    t.log(`skipped: ${unavailable}`)
    t.pass()
  })
}

interface Arrival {
  payload: string
  port: number
}

/** Records every datagram a socket receives (payload text and source port). */
function record(socket: UdpSocket): Arrival[] {
  const arrivals: Arrival[] = []
  socket.on('messages', (batch: Datagram[]) => {
    for (const d of batch) arrivals.push({ payload: d.data.toString(), port: d.port })
  })
  return arrivals
}

/** A reusePort group of `size` sockets on one loopback port, bound in order (index = position). */
function group(size: number): UdpSocket[] {
  const sockets: UdpSocket[] = []
  let port = 0
  for (let i = 0; i < size; i++) {
    const s = createSocket({ type: 'udp4', reusePort: true, recvBufferSize: 1 << 20 })
    s.bind(port, HOST)
    port = s.address().port
    sockets.push(s)
  }
  return sockets
}

interface FlowsResult {
  ports: number[]
  sent: number
  echoed: number
}

/** Runs flows.py (pinned to `cpu` with taskset, or anywhere for `null`). */
async function flows(cpu: number | null, port: number, count: number, perFlow: number, tag: string, echo = false): Promise<FlowsResult> {
  const args = [FLOWS, String(port), String(count), String(perFlow), tag, ...(echo ? ['--echo'] : [])]
  const { stdout } = cpu === null
    ? await run('python3', args, { timeout: 20_000 })
    : await run('taskset', ['-c', String(cpu), 'python3', ...args], { timeout: 20_000 })
  return JSON.parse(stdout) as FlowsResult
}

/** The payloads flows.py sends for `tag`, sorted. */
function expected(tag: string, count: number, perFlow: number): string[] {
  const out: string[] = []
  for (let f = 0; f < count; f++) for (let i = 0; i < perFlow; i++) out.push(`${tag}:${f}:${i}`)
  return out.sort()
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition() && Date.now() < deadline) await sleep(20)
  await sleep(50) // linger: a datagram too many (or on the wrong socket) would show
}

const sorted = (arrivals: Arrival[]): string[] => arrivals.map((a) => a.payload).sort()

function closeAll(sockets: UdpSocket[]): void {
  for (const s of sockets) if (!s.closed) s.close()
}

for (const attachOn of [0, 1]) {
  steering(`steerByCpu (attached on socket ${attachOn}): every datagram received on CPU 0 lands on socket 0, on CPU 1 on socket 1, whatever its flow`, async (t) => {
    const sockets = group(2)
    t.teardown(() => closeAll(sockets))
    const port = sockets[0]!.address().port
    sockets[attachOn]!.steerByCpu(2)
    const got = sockets.map(record)
    // Four flows (source ports) per CPU: the 4-tuple hash alone would mix them over both sockets.
    await Promise.all([flows(0, port, 4, 25, 'cpu0'), flows(1, port, 4, 25, 'cpu1')])
    await until(() => got[0]!.length + got[1]!.length >= 200)
    t.deepEqual(sorted(got[0]!), expected('cpu0', 4, 25))
    t.deepEqual(sorted(got[1]!), expected('cpu1', 4, 25))
    t.is(sockets[0]!.dropCount + sockets[1]!.dropCount, 0)
  })
}

steering('clearSteering(): the group hashes flows again; with nothing attached the kernel says ENOENT', async (t) => {
  const sockets = group(2)
  t.teardown(() => closeAll(sockets))
  const port = sockets[0]!.address().port
  sockets[0]!.steerByCpu(2)
  sockets[1]!.clearSteering()
  const got = sockets.map(record)
  // 32 flows from CPU 0: steered, all would land on socket 0; hashed, both get some (all 32 on
  // one socket has odds of 2^-31).
  await flows(0, port, 32, 5, 'cleared')
  await until(() => got[0]!.length + got[1]!.length >= 160)
  t.deepEqual([...got[0]!, ...got[1]!].map((a) => a.payload).sort(), expected('cleared', 32, 5))
  t.true(got[0]!.length > 0 && got[1]!.length > 0, `split ${got[0]!.length}/${got[1]!.length}`)
  const error = t.throws(() => sockets[0]!.clearSteering()) as NodeJS.ErrnoException
  t.is(error.code, 'ENOENT')
  t.is(error.syscall, 'setsockopt')
})

test.serial('without steering each flow stays on one socket (the 4-tuple hash), in order, every datagram exactly once', async (t) => {
  const sockets = group(2)
  t.teardown(() => closeAll(sockets))
  const port = sockets[0]!.address().port
  const got = sockets.map(record)
  const sent = await flows(null, port, 32, 10, 'hash')
  await until(() => got[0]!.length + got[1]!.length >= 320)
  // Exactly once across the group: the union is the sent set, and nothing more arrived.
  t.is(got[0]!.length + got[1]!.length, 320)
  t.deepEqual([...got[0]!, ...got[1]!].map((a) => a.payload).sort(), expected('hash', 32, 10))
  // Each flow: one socket, its own source port, in the order sent.
  const socketOfFlow = new Map<number, number>()
  for (const [index, arrivals] of got.entries()) {
    const nextOfFlow = new Map<number, number>()
    for (const a of arrivals) {
      const [, flowText, iText] = a.payload.split(':')
      const flow = Number(flowText)
      t.is(a.port, sent.ports[flow], `flow ${flow}'s source port`)
      t.is(socketOfFlow.get(flow) ?? index, index, `flow ${flow} on one socket`)
      socketOfFlow.set(flow, index)
      t.is(Number(iText), nextOfFlow.get(flow) ?? 0, `flow ${flow} in order`)
      nextOfFlow.set(flow, Number(iText) + 1)
    }
  }
  t.is(socketOfFlow.size, 32)
  // 32 flows hashed over 2 sockets: all on one has odds of 2^-31.
  t.true(got[0]!.length > 0 && got[1]!.length > 0, `split ${got[0]!.length}/${got[1]!.length}`)
})

// A worker: pins its own thread to `cpu`, joins the group (after the worker before it), the first
// steers; receives with onBatch; on any message reports its affinity and payloads.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { createSocket, createRecvBatch, setThreadAffinity, getThreadAffinity } = require(workerData.root)
const { index, port } = workerData
setThreadAffinity([index])
const socket = createSocket({ type: 'udp4', reusePort: true, recvBufferSize: 1 << 20 })
socket.bind(port, '127.0.0.1')
if (index === 0) socket.steerByCpu(2)
const payloads = []
socket.onBatch(createRecvBatch(64, 256), (b) => {
  for (let i = 0; i < b.count; i++) payloads.push(b.datagram(i).toString())
})
parentPort.on('message', (what) => {
  parentPort.postMessage({ affinity: getThreadAffinity(), payloads, drops: socket.dropCount })
  if (what === 'stop') {
    socket.close()
    parentPort.close()
  }
})
parentPort.postMessage({ port: socket.address().port })
`

steering('across worker_threads: each worker pins its own thread, and receives exactly its CPU\'s datagrams', async (t) => {
  const mainAffinity = getThreadAffinity()
  const workers: Worker[] = []
  t.teardown(() => Promise.all(workers.map((w) => w.terminate())))
  let port = 0
  for (const index of [0, 1]) {
    const worker = new Worker(WORKER, { eval: true, workerData: { root, index, port } })
    workers.push(worker)
    const [bound] = (await Promise.race([once(worker, 'message'), once(worker, 'error').then(([e]) => { throw e })])) as [{ port: number }]
    port = bound.port
  }
  await Promise.all([flows(0, port, 3, 30, 'w0'), flows(1, port, 3, 30, 'w1')])
  const report = (what: 'report' | 'stop'): Promise<Array<{ affinity: number[]; payloads: string[]; drops: number }>> =>
    Promise.all(workers.map(async (w) => {
      const reply = once(w, 'message')
      w.postMessage(what)
      return ((await reply) as [{ affinity: number[]; payloads: string[]; drops: number }])[0]
    }))
  // Bounded wait until all 180 arrived (the workers receive on their own threads), then linger.
  const deadline = Date.now() + 5000
  while ((await report('report')).reduce((sum, r) => sum + r.payloads.length, 0) < 180 && Date.now() < deadline) await sleep(20)
  await sleep(50)
  const reports = await report('stop')
  t.deepEqual(reports.map((r) => r.affinity), [[0], [1]])
  t.deepEqual(getThreadAffinity(), mainAffinity, 'the main thread keeps its own affinity')
  t.deepEqual(reports[0]!.payloads.sort(), expected('w0', 3, 30))
  t.deepEqual(reports[1]!.payloads.sort(), expected('w1', 3, 30))
  t.deepEqual(reports.map((r) => r.drops), [0, 0])
})

/** Linux 6.2 and later pick a group's socket by SO_INCOMING_CPU when the group has no program. */
const [major = 0, minor = 0] = os.release().split('.').map(Number)
const incomingCpuSteers = major > 6 || (major === 6 && minor >= 2)
const steeringByIncomingCpu = unavailable === null && incomingCpuSteers ? test.serial : test.serial.skip
if (unavailable === null && !incomingCpuSteers) {
  test('setIncomingCpu steering is skipped', (t) => {
    t.log(`skipped: kernel ${os.release()} is older than 6.2 (no SO_INCOMING_CPU socket selection)`)
    t.pass()
  })
}

steeringByIncomingCpu('setIncomingCpu: without a program, a datagram received on CPU c goes to the socket that named c', async (t) => {
  const sockets = group(2)
  t.teardown(() => closeAll(sockets))
  const port = sockets[0]!.address().port
  t.is(sockets[0]!.incomingCpu, -1)
  // Crossed on purpose (socket 0 names CPU 1), so that the group's order cannot explain it.
  sockets[0]!.setIncomingCpu(1)
  sockets[1]!.setIncomingCpu(0)
  t.deepEqual(sockets.map((s) => s.incomingCpu), [1, 0])
  const got = sockets.map(record)
  await Promise.all([flows(0, port, 4, 20, 'ic0'), flows(1, port, 4, 20, 'ic1')])
  await until(() => got[0]!.length + got[1]!.length >= 160)
  t.deepEqual(sorted(got[0]!), expected('ic1', 4, 20))
  t.deepEqual(sorted(got[1]!), expected('ic0', 4, 20))
})

test('misuse: steerByCpu and setIncomingCpu arguments and socket state, thread affinity arguments', (t) => {
  const unbound = createSocket({ type: 'udp4', reusePort: true })
  const plain = createSocket('udp4')
  plain.bind(0, HOST)
  const member = createSocket({ type: 'udp4', reusePort: true })
  member.bind(0, HOST)
  t.teardown(() => closeAll([unbound, plain, member]))

  t.throws(() => unbound.steerByCpu(2), { code: 'ERR_INVALID_STATE', message: /bound socket/ })
  t.throws(() => plain.steerByCpu(2), { code: 'ERR_INVALID_STATE', message: /reusePort: true/ })
  for (const size of [0, 65536, 1.5, -1, NaN]) {
    t.throws(() => member.steerByCpu(size), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(size))
  }
  t.throws(() => member.steerByCpu('2' as unknown as number), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.notThrows(() => member.steerByCpu(65535))
  t.notThrows(() => member.steerByCpu(1))
  t.throws(() => plain.clearSteering(), { code: 'ERR_INVALID_STATE', message: /reusePort: true/ })
  t.notThrows(() => member.clearSteering())
  const none = t.throws(() => member.clearSteering(), { code: 'ENOENT' }) as NodeJS.ErrnoException
  t.is(none.syscall, 'setsockopt')

  for (const cpu of [-1, 1.5, 2 ** 31]) t.throws(() => member.setIncomingCpu(cpu), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => member.setIncomingCpu(null as unknown as number), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })

  t.throws(() => setThreadAffinity([]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => setThreadAffinity('0' as unknown as number[]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => setThreadAffinity([0, '1' as unknown as number]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /cpus\[1\]/ })
  t.throws(() => setThreadAffinity([65536]), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  // A CPU this machine does not have: the kernel refuses, and the thread keeps its mask.
  const before = getThreadAffinity()
  const absent = 4095
  if (!before.includes(absent)) {
    const refused = t.throws(() => setThreadAffinity([absent]), { code: 'EINVAL' }) as NodeJS.ErrnoException
    t.is(refused.syscall, 'sched_setaffinity')
    t.is(refused.errno, -22)
    t.deepEqual(getThreadAffinity(), before)
  }

  member.close()
  t.throws(() => member.steerByCpu(2), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => member.clearSteering(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => member.incomingCpu, { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => member.setIncomingCpu(0), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
})

steering('examples/multicore-server.mjs: one pinned worker per CPU, each gets its CPU\'s flows and echoes them, and it stops by itself', async (t: ExecutionContext) => {
  const server = spawn(process.execPath, [path.join(root, 'examples', 'multicore-server.mjs'), '--seconds', '4'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (server.exitCode === null) server.kill()
  })
  let output = ''
  let errors = ''
  server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  server.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()))
  const exited = once(server, 'exit')
  const deadline = Date.now() + 10_000
  while (!/listening .*:(\d+)/.test(output) && server.exitCode === null && Date.now() < deadline) await sleep(20)
  const port = Number(/listening .*:(\d+)/.exec(output)?.[1])
  t.true(port > 0, `no port in ${JSON.stringify(output)} ${errors}`)

  const [from0, from1] = await Promise.all([flows(0, port, 2, 20, 'e0', true), flows(1, port, 3, 20, 'e1', true)])
  t.deepEqual([from0.echoed, from1.echoed], [40, 60], 'every datagram echoed back to its sender')

  const timer = setTimeout(() => server.kill(), 15_000)
  const [code] = await exited
  clearTimeout(timer)
  t.is(code, 0, errors)
  const result = JSON.parse(/^result (.*)$/m.exec(output)?.[1] ?? 'null') as {
    workers: Array<{ index: number; cpus: number[]; received: number; echoed: number }>
  }
  const n = result.workers.length
  const parallelism = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
  t.is(n, parallelism, 'one worker per CPU')
  const allowed = getThreadAffinity()
  for (const w of result.workers) {
    t.deepEqual(w.cpus, allowed.filter((c) => c % n === w.index), `worker ${w.index} pinned to its CPUs`)
    const expectedCount = (0 % n === w.index ? 40 : 0) + (1 % n === w.index ? 60 : 0)
    t.is(w.received, expectedCount, `worker ${w.index} received its CPUs' datagrams`)
    t.is(w.echoed, expectedCount)
  }
})
