#!/usr/bin/env node
'use strict'
// One DNS load-generator run in its own process (so its CPU time is its own):
//
//   node benchmark/dns/generator.js <sendmmsg|dgram> <port> <seconds> <inflight> <names> <timeoutSeconds>
//
// Both implementations share the Load bookkeeping below (random ids, outstanding table, strict
// answer check, timeouts); they differ only in how datagrams reach the kernel: batches of
// sendmmsg(2)/recvmmsg(2) through this package, or one send and one 'message' per query with
// node:dgram. Prints {"phase":"start"} when the first query goes out and one JSON result line.
const { randomFillSync } = require('node:crypto')
const { buildTable, queryOrder, writeQuery, checkAnswer, FAIL_NAMES } = require('./wire')

const SERVER = '127.0.0.1'

class Load {
  constructor({ names, inflight, timeoutMs }) {
    this.table = buildTable(names)
    this.order = queryOrder(names)
    this.limit = inflight
    this.timeoutMs = timeoutMs
    this.cursor = 0
    // Outstanding queries by id: name index + 1 (0 = free), and when each was sent.
    this.pending = new Uint32Array(65536)
    this.sentAt = new Float64Array(65536)
    // Ids that timed out, so a late answer is told apart from a bogus one.
    this.expired = new Uint32Array(65536)
    // Dense list of outstanding ids (swap-remove), so the timeout sweep is O(in flight).
    this.live = new Uint16Array(inflight)
    this.livePos = new Int32Array(65536).fill(-1)
    this.inflight = 0
    this.randoms = new Uint16Array(4096)
    this.randomPos = this.randoms.length
    this.sent = 0
    this.answered = 0
    this.timeouts = 0
    this.late = 0
    this.unknownId = 0
    this.failures = new Array(FAIL_NAMES.length).fill(0)
  }

  /** A random id not in flight (crypto randomness, drawn in blocks to keep it cheap). */
  #freshId() {
    for (let tries = 0; tries < 64; tries++) {
      if (this.randomPos === this.randoms.length) {
        randomFillSync(this.randoms)
        this.randomPos = 0
      }
      const id = this.randoms[this.randomPos++]
      if (this.pending[id] === 0) return id
    }
    for (let id = 0; id < 65536; id++) if (this.pending[id] === 0) return id // unreachable with ≤ 65535 in flight
    throw new Error('no free DNS id')
  }

  /** Writes the next query of the mix at `off` and marks it outstanding; returns its length. */
  write(buf, off, now) {
    const id = this.#freshId()
    const name = this.order[this.cursor]
    this.cursor = this.cursor + 1 === this.order.length ? 0 : this.cursor + 1
    this.pending[id] = name + 1
    this.sentAt[id] = now
    this.expired[id] = 0
    this.livePos[id] = this.inflight
    this.live[this.inflight++] = id
    this.lastId = id
    return writeQuery(buf, off, id, this.table.questions[name])
  }

  #release(id) {
    this.pending[id] = 0
    const pos = this.livePos[id]
    const last = this.live[--this.inflight]
    this.live[pos] = last
    this.livePos[last] = pos
    this.livePos[id] = -1
  }

  /** A query that was written but not accepted by the kernel: it never left. */
  unsend(id) {
    this.#release(id)
  }

  /** Matches and checks one answer datagram. */
  answer(buf, off, len) {
    if (len < 2) {
      this.failures[1]++
      return
    }
    const id = (buf[off] << 8) | buf[off + 1]
    const entry = this.pending[id]
    if (entry === 0) {
      if (this.expired[id] !== 0) this.late++
      else this.unknownId++
      return
    }
    const name = entry - 1
    const result = checkAnswer(buf, off, len, this.table.questions[name], this.table.expected[name])
    this.#release(id)
    if (result === 0) this.answered++
    else this.failures[result]++
  }

  /** Expires queries older than the timeout (called from a timer, not per packet). */
  sweep(now) {
    const limit = now - this.timeoutMs
    for (let i = this.inflight - 1; i >= 0; i--) {
      const id = this.live[i]
      if (this.sentAt[id] < limit) {
        this.expired[id] = this.pending[id]
        this.#release(id)
        this.timeouts++
      }
    }
  }
}

/** Runs `load` through this package: one sendmmsg per refill, one recvmmsg batch per wake-up. */
function runSendmmsg(load, port) {
  const { createSocket, createRecvBatch, MAX_MESSAGES_PER_CALL } = require('../..')
  const socket = createSocket('udp4')
  socket.bind(0, SERVER)
  const maxBatch = Math.min(load.limit, MAX_MESSAGES_PER_CALL)
  const packed = Buffer.alloc(maxBatch * load.table.maxQueryLength)
  const lengths = new Uint32Array(maxBatch)
  const ids = new Uint16Array(maxBatch)
  let running = true
  let sendCalls = 0
  let receives = 0

  // Tops the window up to `limit` in flight with as few system calls as possible.
  const refill = () => {
    if (!running) return
    const now = performance.now()
    let k = Math.min(load.limit - load.inflight, maxBatch)
    if (k <= 0) return
    let off = 0
    for (let i = 0; i < k; i++) {
      const n = load.write(packed, off, now)
      ids[i] = load.lastId
      lengths[i] = n
      off += n
    }
    const sent = socket.trySendPacked(packed.subarray(0, off), lengths.subarray(0, k), port, SERVER)
    for (let i = sent; i < k; i++) load.unsend(ids[i]) // send buffer full: the timer retries
    load.sent += sent
    sendCalls++
  }

  const batch = createRecvBatch(256, 512)
  socket.onBatch(batch, (b) => {
    receives++
    for (let i = 0; i < b.count; i++) {
      if (b.flags[i] & 1) load.failures[1]++ // truncated by our slot size: malformed for us
      else load.answer(b.data, i * b.slotSize, b.lengths[i])
    }
    refill()
  })
  const stop = () => {
    running = false
  }
  const close = () => socket.close()
  // Average datagrams per system call, to show how much batching the traffic allowed.
  const extra = () => ({ perSend: load.sent / sendCalls, perReceive: (load.answered + load.timeouts) / receives })
  return { start: refill, tick: refill, stop, close, extra }
}

/** Runs `load` through node:dgram: one send per query, one 'message' per answer. */
function runDgram(load, port) {
  const dgram = require('node:dgram')
  const socket = dgram.createSocket('udp4')
  let running = true
  let sendErrors = 0
  socket.on('error', () => sendErrors++)
  const sendOne = () => {
    // dgram sends asynchronously, so each query needs its own buffer until it is sent.
    const buf = Buffer.allocUnsafe(load.table.maxQueryLength)
    const n = load.write(buf, 0, performance.now())
    socket.send(buf, 0, n, port, SERVER)
    load.sent++
  }
  const refill = () => {
    if (!running) return
    while (load.inflight < load.limit) sendOne()
  }
  socket.on('message', (msg) => {
    load.answer(msg, 0, msg.length)
    if (running && load.inflight < load.limit) sendOne()
  })
  return {
    bind: (cb) => socket.bind(0, SERVER, cb),
    start: refill,
    tick: refill,
    stop: () => {
      running = false
    },
    close: () => socket.close(),
    extra: () => ({ sendErrors }),
  }
}

function main() {
  const [impl, portArg, secondsArg, inflightArg, namesArg, timeoutArg] = process.argv.slice(2)
  const port = Number(portArg)
  const seconds = Number(secondsArg)
  const load = new Load({ names: Number(namesArg), inflight: Number(inflightArg), timeoutMs: Number(timeoutArg) * 1000 })
  if (!(port > 0 && seconds > 0 && load.limit > 0 && load.timeoutMs > 0)) throw new Error('bad arguments')
  const make = impl === 'sendmmsg' ? runSendmmsg : impl === 'dgram' ? runDgram : null
  if (!make) throw new Error(`unknown client ${impl}`)
  const client = make(load, port)

  const begin = () => {
    process.stdout.write('{"phase":"start"}\n')
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const sendUntil = t0 + seconds * 1000
    client.start()
    // A coarse timer: timeouts, refills after losses, the deadline, then a bounded drain.
    let drainUntil = Infinity
    const timer = setInterval(() => {
      const now = performance.now()
      load.sweep(now)
      if (now < sendUntil) return client.tick()
      if (drainUntil === Infinity) {
        client.stop()
        drainUntil = now + load.timeoutMs
      }
      if (load.inflight > 0 && now < drainUntil) return
      load.sweep(Infinity) // whatever is left after the drain is lost
      const t1 = performance.now()
      const cpu = process.cpuUsage(cpu0)
      clearInterval(timer)
      client.close()
      const elapsed = (t1 - t0) / 1000
      const result = {
        client: impl,
        seconds: elapsed,
        sent: load.sent,
        answered: load.answered,
        timeouts: load.timeouts,
        late: load.late,
        unknownId: load.unknownId,
        failures: Object.fromEntries(FAIL_NAMES.slice(1).map((n, i) => [n, load.failures[i + 1]])),
        invalid: load.failures.reduce((a, b) => a + b, 0) + load.unknownId,
        qps: load.answered / elapsed,
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        cpuUsPerAnswer: (cpu.user + cpu.system) / load.answered,
        ...(client.extra ? client.extra() : {}),
      }
      process.stdout.write(JSON.stringify(result) + '\n')
    }, 10)
  }
  if (client.bind) client.bind(begin)
  else begin()
}

main()
