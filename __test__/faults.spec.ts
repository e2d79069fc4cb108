// Injected faults: a peer that is gone (ECONNREFUSED), close() while sends and receives are
// pending (also from inside the handler), buffers garbage-collected while a send waits, a
// failure in the middle of a 1000-message batch, and worker threads that die with sockets open.
// Every scenario asserts no crash, no lost or duplicated datagram, and no leaked descriptor.
// The slow-link scenarios need root and iproute2 (a veth pair into a test namespace); they are
// skipped without them.
import test from 'ava'
import { Worker } from 'node:worker_threads'

import { UdpSocket, sendmmsg, trySendmmsg, createRecvBatch } from '../index'
import { createSlowLink, hasIp, isRoot, numberedPayloads, openFdCount, peerResult } from './helpers'
import { errno, fdTargets, fdsSettle, fixture, lastJson, probe, run, sink, Sink, sleep } from './reliability-helpers'

const canNetns = isRoot() && hasIp()
const slow = canNetns ? test.serial : test.serial.skip

let faults = 0
const injected: Record<string, number> = {}
function inject(kind: string, n = 1) {
  faults += n
  injected[kind] = (injected[kind] ?? 0) + n
}

let rx: Sink

test.before(async () => {
  rx = await sink()
  // Whatever the addon creates once per process (the reactor's epoll descriptor) exists first.
  const warm = new UdpSocket('udp4')
  warm.bind(0, '127.0.0.1')
  warm.onMessages(() => {})
  warm.close()
})

test.after.always(async () => {
  await rx?.close()
})

/** A loopback port nobody listens on (bound once, then closed). */
async function deadPort(): Promise<number> {
  const s = new UdpSocket('udp4')
  const { port } = s.bind(0, '127.0.0.1')
  s.close()
  return port
}

// ---------------------------------------------------------------------------------------------
// (a) A connected socket whose peer is gone.

test.serial('ECONNREFUSED from a gone peer surfaces from trySend, send(), the packed shapes, trySendmmsg and sendmmsg with index and sent, once', async (t) => {
  const gone = await deadPort()
  const batch = numberedPayloads(3, 8)
  const shapes: Array<[string, (tx: UdpSocket) => unknown]> = [
    ['trySend', (tx) => tx.trySend(batch)],
    ['send', (tx) => tx.send(batch)],
    ['trySendPacked', (tx) => tx.trySendPacked(Buffer.alloc(6), [2, 2, 2])],
    ['sendPacked', (tx) => tx.sendPacked(Buffer.alloc(6), [2, 2, 2])],
    ['trySendmmsg', (tx) => trySendmmsg(tx.fd, batch)],
    ['sendmmsg', (tx) => sendmmsg(tx.fd, batch)],
  ]
  for (let round = 0; round < 5; round++) {
    for (const [name, call] of shapes) {
      const tx = new UdpSocket('udp4')
      tx.bind(0, '127.0.0.1')
      tx.connect(gone, '127.0.0.1')
      // One datagram out; its ICMP port-unreachable comes back and is pending on the socket.
      // (Under load the ICMP can take longer than one round trip: then the call goes through,
      // and the error, still pending, is looked for again.)
      let error: any
      let attempts = 0
      while (!error && attempts < 10) {
        attempts++
        try {
          tx.trySend([Buffer.from('ping')])
        } catch (e: any) {
          t.is(e.code, 'ECONNREFUSED') // a late ICMP from the previous attempt
          continue
        }
        await sleep(20 * attempts)
        inject('ECONNREFUSED')
        try {
          await call(tx)
        } catch (e) {
          error = e
        }
      }
      if (attempts > 1) t.log(`${name}: reported after ${attempts} attempts`)
      t.truthy(error, `${name}: the pending ECONNREFUSED is reported, not swallowed`)
      t.is(error?.constructor, Error, name)
      t.is(error?.code, 'ECONNREFUSED', name)
      t.is(error?.errno, errno('ECONNREFUSED'), name)
      t.is(error?.syscall, 'sendmmsg', name)
      t.is(error?.index, 0, `${name}: the first message of the call is the one refused`)
      t.is(error?.sent, 0, name)
      // Not sticky: once late ICMPs are drained (a receive also reports a pending one), the same
      // socket connected to a live peer sends the same batch in full.
      await sleep(30)
      try {
        tx.tryRecv()
      } catch (e: any) {
        t.is(e.code, 'ECONNREFUSED')
      }
      tx.connect(rx.port, '127.0.0.1')
      const since = rx.received.length
      t.is(await call(tx), 3, `${name}: the error is not repeated`)
      t.true(await rx.until(() => rx.from(tx.address().port, since).length >= 3), `${name}: usable afterwards`)
      tx.close()
    }
  }
})

test.serial('the raw sendmmsg(2) stops at message 1 behind a gone peer (the kernel drops that error, as its manual warns)', async (t) => {
  // This documents the kernel behaviour the next test is about: the ICMP for message 0 is
  // processed during the call, message 1 fails with ECONNREFUSED, and sendmmsg returns 1
  // instead of the error.
  const tx = new UdpSocket('udp4')
  tx.connect(await deadPort(), '127.0.0.1')
  inject('ECONNREFUSED mid-batch')
  const n = sendmmsg(tx.fd, numberedPayloads(10, 8))
  t.log(`sendmmsg returned ${n} of 10`)
  t.true(n >= 1 && n <= 10)
  tx.close()
})

test(
  'ECONNREFUSED in the middle of a batch surfaces with its index (the kernel drops it; IP_RECVERR keeps a copy the core reads back)',
  async (t) => {
    const calls: Array<[string, (tx: UdpSocket, batch: Buffer[]) => unknown]> = [
      ['trySend', (tx, b) => tx.trySend(b)],
      ['send', (tx, b) => tx.send(b)],
      ['trySendmmsg', (tx, b) => trySendmmsg(tx.fd, b)],
    ]
    const outcomes: Array<{ name: string; code?: string; indexInRange?: boolean; sentIsIndex?: boolean; returned?: unknown }> = []
    for (const [name, call] of calls) {
      const tx = new UdpSocket('udp4')
      try {
        tx.connect(await deadPort(), '127.0.0.1')
        inject('ECONNREFUSED mid-batch')
        try {
          outcomes.push({ name, returned: await call(tx, numberedPayloads(10, 8)) })
        } catch (e: any) {
          outcomes.push({ name, code: e.code, indexInRange: e.index >= 1 && e.index < 10, sentIsIndex: e.sent === e.index })
        }
      } finally {
        tx.close()
      }
    }
    t.log(outcomes)
    t.deepEqual(
      outcomes,
      calls.map(([name]) => ({ name, code: 'ECONNREFUSED', indexInRange: true, sentIsIndex: true })),
    )
  },
)

// ---------------------------------------------------------------------------------------------
// (b) close() while work is pending.

slow('close() while async sends wait (200 cycles, various timings): every promise rejects ERR_SOCKET_CLOSED with `sent`, nothing hangs, no fd leak', async (t) => {
  const link = createSlowLink('10mbit')
  try {
    const before = openFdCount()
    const timings = ['sync', 'microtask', 'immediate', 'timer', 'in-then', 'in-receiver'] as const
    const seen: Record<string, number> = {}
    for (let cycle = 0; cycle < 200; cycle++) {
      const timing = timings[cycle % timings.length]
      const tx = new UdpSocket({ type: 'udp4', sendBufferSize: 1 })
      tx.bind(0, link.localAddress)
      const sizes = [20, 150, 100]
      const sends = sizes.map((n, k) => tx.send(numberedPayloads(n, 1200), 9, link.peerAddress).then(
        (v) => ({ k, ok: v as number }),
        (e) => ({ k, error: e }),
      ))
      t.true(tx.pendingSends >= 1, 'the batch is waiting for the kernel')
      inject('close with sends pending')
      switch (timing) {
        case 'sync':
          tx.close()
          break
        case 'microtask':
          await Promise.resolve()
          tx.close()
          break
        case 'immediate':
          await new Promise((r) => setImmediate(r))
          tx.close()
          break
        case 'timer':
          await sleep(cycle % 7)
          tx.close()
          break
        case 'in-then':
          // Close from the settlement of the first send: the later ones are still queued.
          await sends[0].then(() => tx.close())
          break
        case 'in-receiver': {
          // A receiver on the same socket, closed from inside its handler.
          tx.onMessages(() => tx.close())
          const poke = new UdpSocket('udp4')
          poke.trySend([Buffer.from('poke')], tx.address().port, link.localAddress)
          poke.close()
          for (let w = 0; !tx.closed && w < 2000; w += 5) await sleep(5)
          break
        }
      }
      t.true(tx.closed, timing)
      const outcomes = await Promise.race([Promise.all(sends), sleep(5000).then(() => 'hang' as const)])
      t.not(outcomes, 'hang', `every promise settles after close() (${timing})`)
      if (outcomes === 'hang') break
      let rejected = 0
      for (const o of outcomes as Array<{ k: number; ok?: number; error?: any }>) {
        if (o.error) {
          rejected++
          t.is(o.error.code, 'ERR_SOCKET_CLOSED', timing)
          t.true(o.error.sent >= 0 && o.error.sent < sizes[o.k], `sent ${o.error.sent} of ${sizes[o.k]}`)
        } else {
          t.is(o.ok, sizes[o.k], 'a send that completed before close() resolves with its full count')
        }
      }
      t.true(rejected >= 1, 'at least the last send was cut short')
      t.is(tx.pendingSends, 0)
      t.is((t.throws(() => tx.send([Buffer.from('late')], 9, link.peerAddress)) as any)?.code, 'ERR_SOCKET_CLOSED')
      seen[timing] = (seen[timing] ?? 0) + 1
    }
    t.log(seen)
    t.true((await fdsSettle(before)) <= before, fdTargets().join(' '))
  } finally {
    link.destroy()
  }
})

test.serial('close() while onMessages/onBatch receivers are active, from outside and from inside the handler: no callback after close, no crash, no fd leak (300 cycles)', async (t) => {
  const before = openFdCount()
  const tx = new UdpSocket('udp4')
  tx.bind(0, '127.0.0.1')
  let lateCalls = 0
  for (let cycle = 0; cycle < 300; cycle++) {
    const inside = cycle % 2 === 0
    const useBatch = cycle % 3 === 0
    const s = new UdpSocket({ type: 'udp4', recvBufferSize: 1 << 20 })
    const { port } = s.bind(0, '127.0.0.1')
    let calls = 0
    let closedAt = -1
    const handler = () => {
      calls++
      if (closedAt >= 0) lateCalls++
      if (inside && calls === 1 + (cycle % 3)) {
        s.close()
        closedAt = calls
      }
    }
    if (useBatch) s.onBatch(createRecvBatch(4, 64), handler)
    else s.onMessages(handler, { maxDatagrams: 4 })
    tx.trySend(numberedPayloads(40, 16), port, '127.0.0.1')
    inject('close with a receive pending')
    if (!inside) {
      await sleep(cycle % 3)
      s.close()
      closedAt = calls
    } else {
      for (let w = 0; !s.closed && w < 2000; w += 2) await sleep(2)
    }
    // Datagrams were still queued (40, 4 per batch): none may be delivered after close().
    await sleep(5)
    t.true(s.closed)
    t.throws(() => s.tryRecv(), { code: 'ERR_SOCKET_CLOSED' })
  }
  await sleep(50)
  t.is(lateCalls, 0, 'no handler call after close()')
  tx.close()
  t.true((await fdsSettle(before)) <= before, fdTargets().join(' '))
})

test.serial('many sockets opened and closed with sends, receivers and unref in flight return /proc/self/fd to its baseline', async (t) => {
  const before = openFdCount()
  for (let cycle = 0; cycle < 500; cycle++) {
    const a = new UdpSocket('udp4')
    const { port } = a.bind(0, '127.0.0.1')
    const b = UdpSocket.fromFd(a.fd) // a duplicate descriptor, closed separately
    a.onMessages(() => {})
    if (cycle % 2) a.unref()
    b.trySend([Buffer.from('x')], port, '127.0.0.1')
    const p = b.send([Buffer.from('y')], port, '127.0.0.1')
    b.close()
    a.close()
    await p.catch(() => {})
    inject('open/close cycle')
  }
  t.true((await fdsSettle(before)) <= before, fdTargets().join(' '))
})

test.serial('an exception thrown by an onMessages handler does not crash the process or stop delivery', async (t) => {
  inject('throwing handler', 2)
  const handled = await run(process.execPath, [fixture('handler-throws.js')], { timeoutMs: 10000 })
  const out = lastJson(handled.stdout)
  t.log(out)
  t.is(handled.code, 0)
  t.deepEqual(out?.got, ['first', 'second'], 'the next batch is still delivered')
  t.is(out?.seen.length, 1, "the error reaches 'uncaughtException' once")
  t.regex(String(out?.seen[0]?.message), /boom from the handler/)
  // Without a listener the process ends like it would for a throwing event listener: exit code
  // 1 and the error on stderr, not an abort or a signal.
  const bare = await run(process.execPath, [fixture('handler-throws.js'), 'nohandler'], { timeoutMs: 10000 })
  t.is(bare.signal, null, 'no abort')
  t.is(bare.code, 1)
  t.regex(bare.stderr, /boom from the handler/)
})

test("a handler's exception reaches 'uncaughtException' as the same object", async (t) => {
  const handled = await run(process.execPath, [fixture('handler-throws.js')], { timeoutMs: 10000 })
  const out = lastJson(handled.stdout)
  t.like(out?.seen[0], { same: true, name: 'Boom', code: 'EBOOM' })
})

// ---------------------------------------------------------------------------------------------
// (c) Buffers garbage-collected while a send is pending.

slow('a pending send keeps its buffers alive through gc() and delivers the right bytes; they are released once it settles (--expose-gc child)', async (t) => {
  const link = createSlowLink('20mbit')
  try {
    const count = 900
    const port = 40000 + ((process.pid + 13) % 20000)
    const peer = await link.startPeer(port, count, 20000)
    inject('gc while a send is pending')
    const child = await run(process.execPath, ['--expose-gc', fixture('gc-pending.js'), link.localAddress, link.peerAddress, String(port), String(count)], { timeoutMs: 30000 })
    const out = lastJson(child.stdout)
    t.log(out)
    t.is(child.code, 0, child.stderr)
    t.deepEqual(out?.outcome, [30, 290, 290, 290], 'every send resolved with its full count')
    t.true(out?.pendingAtStart >= 2, 'the sends really were waiting')
    t.true(out?.gcRuns >= 3, `gc() ran while they waited (${out?.gcRuns} times)`)
    t.is(out?.collectedBeforeSettled, 0, 'no buffer of a pending send was collected before it settled')
    t.is(out?.collectedAfter, out?.registered, 'all were released afterwards (no leak)')
    t.deepEqual(await peerResult(peer), { count, inOrder: true, duplicates: 0, corrupt: 0 }, 'the peer got every byte right')
  } finally {
    link.destroy()
  }
})

// ---------------------------------------------------------------------------------------------
// (d) A message that fails in the middle of a 1000-message batch.

test.serial('a 1000-message batch failing at message k: exactly messages 0..k-1 arrive, per destination, for every send shape', async (t) => {
  const other = await sink()
  try {
    const shapes = ['trySend', 'send', 'trySendmmsg', 'sendmmsg', 'trySendPacked', 'sendPacked'] as const
    for (const shape of shapes) {
      for (const k of [1, 499, 998]) {
        inject('oversized message mid-batch')
        const tx = new UdpSocket('udp4')
        tx.bind(0, '127.0.0.1')
        const sinceA = rx.received.length
        const sinceB = other.received.length
        const payloads = numberedPayloads(1000, 24)
        payloads[k] = Buffer.alloc(65508 + k)
        // Alternate destinations and gather the even ones from two pieces.
        const messages = payloads.map((p, i) => ({ buffers: i % 2 ? p : [p.subarray(0, 3), p.subarray(3)], address: '127.0.0.1', port: i % 3 ? rx.port : other.port }))
        let error: any
        let result: unknown
        try {
          if (shape === 'trySend') result = tx.trySend(messages)
          else if (shape === 'send') result = await tx.send(messages)
          else if (shape === 'trySendmmsg') result = trySendmmsg(tx.fd, messages)
          else if (shape === 'sendmmsg') result = sendmmsg(tx.fd, messages)
          else {
            const packed = Buffer.concat(payloads)
            const lengths = payloads.map((p) => p.length)
            result = shape === 'trySendPacked' ? tx.trySendPacked(packed, lengths, rx.port, '127.0.0.1') : await tx.sendPacked(packed, lengths, rx.port, '127.0.0.1')
          }
        } catch (e) {
          error = e
        }
        if (shape === 'sendmmsg') {
          t.is(result, k, 'the faithful sendmmsg returns the count before the failure')
        } else {
          t.is(error?.code, 'EMSGSIZE', `${shape} k=${k}: returned ${String(result)}`)
          t.is(error?.errno, errno('EMSGSIZE'))
          t.is(error?.index, k, `${shape} k=${k}`)
          t.is(error?.sent, k)
        }
        const packedShape = shape === 'trySendPacked' || shape === 'sendPacked'
        const expectA = payloads.slice(0, k).filter((_, i) => packedShape || i % 3 !== 0)
        const expectB = packedShape ? [] : payloads.slice(0, k).filter((_, i) => i % 3 === 0)
        const { delivered: dA, before: gotA } = await probe(tx, rx, { since: sinceA })
        const { delivered: dB, before: gotB } = await probe(tx, other, { since: sinceB })
        t.true(dA && dB)
        t.is(gotA.length, expectA.length, `${shape} k=${k}: destination A`)
        t.is(gotB.length, expectB.length, `${shape} k=${k}: destination B`)
        t.true(gotA.every((d, i) => d.equals(expectA[i])) && gotB.every((d, i) => d.equals(expectB[i])), 'byte for byte, in order')
        // The caller resumes after the bad message, as the error says.
        if (shape !== 'sendmmsg' && !packedShape) t.is(tx.trySend(messages.slice(k + 1)), 1000 - k - 1)
        tx.close()
      }
    }
  } finally {
    await other.close()
  }
})

slow('over a slow link: an async send failing at message 900 (after waiting for the kernel) delivers exactly 0..899', async (t) => {
  const link = createSlowLink('40mbit')
  try {
    const port = 40000 + ((process.pid + 29) % 20000)
    const peer = await link.startPeer(port, 900, 20000)
    const tx = new UdpSocket({ type: 'udp4', sendBufferSize: 1 })
    tx.bind(0, link.localAddress)
    const payloads = numberedPayloads(1000, 1200)
    payloads[900] = Buffer.alloc(70000)
    inject('oversized message after EAGAIN')
    const promise = tx.send(payloads, port, link.peerAddress)
    t.is(tx.pendingSends, 1, 'it had to wait')
    const error = (await t.throwsAsync(promise)) as any
    t.is(error.code, 'EMSGSIZE')
    t.is(error.index, 900)
    t.is(error.sent, 900)
    t.deepEqual(await peerResult(peer), { count: 900, inOrder: true, duplicates: 0, corrupt: 0 })
    tx.close()
  } finally {
    link.destroy()
  }
})

// ---------------------------------------------------------------------------------------------
// (e) Worker threads.

test.serial('worker threads: the addon works in the main thread and two workers at once; workers that exit, throw or are terminated with sockets open (and a send pending) tear down cleanly', async (t) => {
  const before = openFdCount()
  const main = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const mainPort = main.bind(0, '127.0.0.1').port
  const fromWorkers = new Map<number, number>()
  main.onMessages((batch) => {
    for (const d of batch) fromWorkers.set(d.port, (fromWorkers.get(d.port) ?? 0) + 1)
  })
  const tx = new UdpSocket('udp4')
  tx.bind(0, '127.0.0.1')
  const link = canNetns ? createSlowLink('1mbit') : undefined
  const count = 500
  const endings = ['close', 'exit', 'throw', 'terminate'] as const
  type Ending = (typeof endings)[number]
  const expectedCode: Record<Ending, number> = { close: 0, exit: 7, throw: 1, terminate: 1 }
  const startWorker = async (ending: Ending, withLink: boolean) => {
    const worker = new Worker(fixture('worker-sockets.js'), {
      workerData: { mainPort, count, link: withLink && link ? { localAddress: link.localAddress, peerAddress: link.peerAddress } : undefined },
    })
    const errors: Error[] = []
    worker.on('error', (e) => errors.push(e))
    const messages: any[] = []
    worker.on('message', (m) => messages.push(m))
    const next = async (type: string) => {
      for (let waited = 0; !messages.some((m) => m.type === type) && waited < 10000; waited += 5) await sleep(5)
      return messages.find((m) => m.type === type)
    }
    all.push(worker)
    const ready = await next('ready')
    return { worker, ready, errors, next, ending, withLink: withLink && !!link }
  }
  const all: Worker[] = []
  try {
    for (let round = 0; round < 8; round++) {
      // Two workers at once, plus the main thread, all sending and receiving.
      const pair = await Promise.all([0, 1].map((i) => startWorker(endings[(round * 2 + i + (round >> 1)) % endings.length], i === 1)))
      for (const w of pair) {
        t.is(w.ready?.sent, count, 'a worker sends through its own socket')
        if (w.withLink) t.is(w.ready.pending, 1, 'and has an async send waiting on the slow link')
        t.is(tx.trySend(numberedPayloads(count, 16), w.ready.port, '127.0.0.1'), count)
      }
      for (const w of pair) t.is((await w.next('received'))?.got, count, 'each worker received everything, in order')
      for (const w of pair) {
        inject(`worker ends by ${w.ending} with sockets open${w.withLink ? ' and a send pending' : ''}`)
        // Not events.once: that rejects on the 'error' a throwing worker emits first.
        const exited = new Promise<number[]>((resolve) => w.worker.once('exit', (code) => resolve([code])))
        if (w.ending === 'terminate') await w.worker.terminate()
        else w.worker.postMessage(w.ending)
        const [code] = await exited
        t.is(code, expectedCode[w.ending], `worker ended by ${w.ending}`)
        if (w.ending === 'throw') t.regex(String(w.errors[0]?.message), /worker dies with sockets open/)
        else t.deepEqual(w.errors, [])
      }
      for (const w of pair) {
        for (let waited = 0; (fromWorkers.get(w.ready.txPort) ?? 0) < count && waited < 2000; waited += 10) await sleep(10)
        t.is(fromWorkers.get(w.ready.txPort), count, 'the main thread received everything the worker sent')
      }
    }
    // The main thread's own sockets still work.
    const since = rx.received.length
    t.true((await probe(tx, rx, { since })).delivered)
    t.is(main.trySend([Buffer.from('self')], mainPort, '127.0.0.1'), 1)
    for (let w = 0; !fromWorkers.get(mainPort) && w < 2000; w += 10) await sleep(10)
    t.is(fromWorkers.get(mainPort), 1, 'the main receiver still delivers')
  } finally {
    await Promise.all(all.map((w) => w.terminate()))
    link?.destroy()
    main.close()
    tx.close()
  }
  const after = await fdsSettle(before, 3000)
  t.log(`open fds: ${before} before, ${after} after 16 workers`)
  t.true(after <= before, fdTargets().join(' '))
})

test.serial('faults injected (count)', (t) => {
  t.log(`faults injected: ${faults}`)
  t.log(Object.entries(injected).map(([k, n]) => `${k}: ${n}`).join(', '))
  t.true(faults > 0)
})
