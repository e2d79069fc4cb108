// The TypeScript layer: events and their order, for await with back-pressure, AbortSignal,
// dispose, payload kinds, hostname resolution, IPv4-mapped destinations, error classes and codes.
import test from 'ava'
import dgram from 'node:dgram'
import { once } from 'node:events'

import { createSocket, createRecvBatch, SendError, UdpSocket, type Datagram, type LookupFunction } from '../lib'
import { dgramReceiver, dgramSendAll, dgramSender, numberedPayloads, sequenceOf, sleep, until } from './helpers'

type Coded = Error & { code: string }

async function closedPort(type: 'udp4' | 'udp6' = 'udp4'): Promise<number> {
  const d = dgram.createSocket(type)
  d.bind(0, type === 'udp4' ? '127.0.0.1' : '::1')
  await once(d, 'listening')
  const { port } = d.address()
  d.close()
  await once(d, 'close')
  return port
}

// ---- events --------------------------------------------------------------------------------

test("events in order: 'listening' (next tick after a sync bind), 'messages' before its 'message's, 'close' last", async (t) => {
  const rx = createSocket('udp4')
  const events: string[] = []
  rx.on('listening', () => events.push('listening'))
  rx.on('close', () => events.push('close'))
  rx.bind(0, '127.0.0.1')
  t.deepEqual(events, [], "'listening' is not emitted synchronously")
  t.true(rx.address().port > 0, 'but the port is known at once')
  await once(rx, 'listening')
  rx.on('messages', (list: Datagram[]) => events.push(`messages:${list.map((d) => d.data.toString()).join(',')}`))
  rx.on('message', (m: Buffer) => events.push(`message:${m.toString()}`))
  await sleep(20)
  const tx = createSocket('udp4')
  t.is(tx.trySend(['m1', 'm2'], rx.address().port, '127.0.0.1'), 2)
  await until(() => events.length >= 4)
  rx.close()
  t.true(rx.closed)
  t.false(events.includes('close'), "'close' follows on the next tick")
  await once(rx, 'close')
  t.deepEqual(events, ['listening', 'messages:m1,m2', 'message:m1', 'message:m2', 'close'])
  tx.close()
})

test("'connect' is emitted after connect(), and connect's callback runs", async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  let called = false
  tx.connect(rx.port, '127.0.0.1', () => (called = true))
  await once(tx, 'connect')
  t.true(called)
  t.is(tx.remoteAddress().port, rx.port)
  tx.close()
  rx.close()
})

test("receiving on an unbound socket binds it to an ephemeral port and emits 'listening'", async (t) => {
  const rx = createSocket('udp4')
  const listening = once(rx, 'listening')
  rx.on('message', () => {})
  await listening
  const { port, address } = rx.address()
  t.true(port > 0)
  t.is(address, '0.0.0.0')
  const got = new Promise<string>((resolve) => rx.once('message', (m: Buffer) => resolve(m.toString())))
  const tx = createSocket('udp4')
  tx.trySend(['hello'], port, '127.0.0.1')
  t.is(await got, 'hello')
  tx.close()
  rx.close()
})

test('createSocket(type, onMessages) adds a messages listener; bind callback is a listening listener', async (t) => {
  const got: string[] = []
  const rx = createSocket('udp4', (list) => got.push(...list.map((d) => d.data.toString())))
  let cb = false
  rx.bind(0, '127.0.0.1', () => (cb = true))
  await once(rx, 'listening')
  t.true(cb)
  const tx = await dgramSender()
  await dgramSendAll(tx, [Buffer.from('x'), Buffer.from('y')], rx.address().port, '127.0.0.1')
  await until(() => got.length >= 2)
  t.deepEqual(got, ['x', 'y'])
  tx.close()
  rx.close()
})

// ---- for await -----------------------------------------------------------------------------

test('for await yields receive batches in order; break stops receiving, the rest stays queued', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, receive: { maxDatagrams: 8 } })
  rx.bind(0, '127.0.0.1')
  const tx = createSocket('udp4')
  const payloads = numberedPayloads(50)
  const seqs: number[] = []
  const iterate = (async () => {
    for await (const batch of rx) {
      for (const d of batch) seqs.push(sequenceOf(d.data))
      if (seqs.length >= 20) break
    }
  })()
  await sleep(20)
  tx.trySend(payloads.slice(0, 20), rx.address().port, '127.0.0.1')
  await iterate
  t.deepEqual(seqs, Array.from({ length: 20 }, (_, i) => i))
  tx.trySend(payloads.slice(20), rx.address().port, '127.0.0.1')
  await sleep(50)
  t.deepEqual(rx.tryRecv(1024).map((d) => sequenceOf(d.data)), Array.from({ length: 30 }, (_, i) => i + 20), 'after break nothing is read')
  rx.close()
  tx.close()
})

test('for await back-pressure: a stalled consumer stops the reading (the kernel keeps the rest), nothing lost or reordered', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, receive: { maxDatagrams: 8 } })
  rx.bind(0, '127.0.0.1')
  const tx = createSocket('udp4')
  const total = 400
  const it = rx[Symbol.asyncIterator]()
  const firstP = it.next()
  await sleep(20)
  t.is(tx.trySend(numberedPayloads(total), rx.address().port, '127.0.0.1'), total)
  const first = await firstP
  t.false(first.done)
  const seqs = first.value!.map((d: Datagram) => sequenceOf(d.data))
  // Stall: do not call next() for a while. The socket may buffer a few batches, then stops.
  await sleep(150)
  const leftInKernel = rx.tryRecv(1024).map((d) => sequenceOf(d.data))
  t.true(leftInKernel.length > total / 2, `reading paused: ${leftInKernel.length} of ${total} still in the kernel queue`)
  // The batches the iterator buffered before pausing come next, then nothing more.
  for (;;) {
    const r = await Promise.race([it.next(), sleep(100).then(() => null)])
    if (r === null || r.done) break
    seqs.push(...r.value.map((d: Datagram) => sequenceOf(d.data)))
  }
  t.true(seqs.length < total / 2, `iterator got ${seqs.length}`)
  t.deepEqual([...seqs, ...leftInKernel], Array.from({ length: total }, (_, i) => i), 'every datagram once, in order')
  await it.return!()
  rx.close()
  tx.close()
})

test('for await ends when the socket closes', async (t) => {
  const rx = createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  let batches = 0
  const iterate = (async () => {
    for await (const _ of rx) batches++
    return 'ended'
  })()
  await sleep(20)
  rx.close()
  t.is(await Promise.race([iterate, sleep(2000).then(() => 'hung')]), 'ended')
  t.is(batches, 0)
})

// ---- lifetime ------------------------------------------------------------------------------

test('an AbortSignal closes the socket (already aborted: on the next tick)', async (t) => {
  const controller = new AbortController()
  const s = createSocket({ type: 'udp4', signal: controller.signal })
  s.bind(0, '127.0.0.1')
  const closed = once(s, 'close')
  controller.abort()
  await closed
  t.true(s.closed)
  const pre = createSocket({ type: 'udp4', signal: AbortSignal.abort() })
  t.false(pre.closed)
  await once(pre, 'close')
  t.true(pre.closed)
  t.is((t.throws(() => createSocket({ type: 'udp4', signal: 'no' as unknown as AbortSignal })) as Coded).code, 'ERR_INVALID_ARG_TYPE')
})

test('await using / Symbol.asyncDispose close the socket (and disposing twice is harmless)', async (t) => {
  let outer: UdpSocket | undefined
  {
    await using s = createSocket('udp4')
    s.bind(0, '127.0.0.1')
    outer = s
    t.false(s.closed)
  }
  t.true(outer.closed)
  const s2 = createSocket('udp4')
  await s2[Symbol.asyncDispose]()
  t.true(s2.closed)
  await t.notThrowsAsync(s2[Symbol.asyncDispose]())
  const s3 = createSocket('udp4')
  s3[Symbol.dispose]()
  t.true(s3.closed)
})

test('ERR_SOCKET_DGRAM_NOT_RUNNING after close: trySend throws, send rejects, others throw', async (t) => {
  const s = createSocket('udp4')
  s.bind(0, '127.0.0.1')
  s.close()
  const code = 'ERR_SOCKET_DGRAM_NOT_RUNNING'
  t.is((t.throws(() => s.trySend(['x'], 9, '127.0.0.1')) as Coded).code, code)
  t.is(((await t.throwsAsync(s.send(['x'], 9, '127.0.0.1'))) as Coded).code, code)
  t.is((t.throws(() => s.trySendPacked(Buffer.from('x'), [1], 9)) as Coded).code, code)
  t.is((t.throws(() => s.trySendSegmented(Buffer.from('x'), 1, 9)) as Coded).code, code)
  t.is((t.throws(() => s.tryRecv()) as Coded).code, code)
  t.is((t.throws(() => s.address()) as Coded).code, code)
  t.is((t.throws(() => s.bind(0)) as Coded).code, code)
  t.is((t.throws(() => s.connect(9)) as Coded).code, code)
  t.is((t.throws(() => s.close()) as Coded).code, code, 'close() twice without a callback throws, as dgram')
  t.is(s.dropCount, 0)
})

// ---- payloads and destinations -------------------------------------------------------------

test('strings (UTF-8), DataView, ArrayBuffer, TypedArrays and gathered mixes are sent byte for byte', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const ab = new Uint8Array([1, 2, 3, 4, 5]).buffer
  const dv = new DataView(ab, 1, 3)
  const f32 = new Float32Array([1.5])
  const n = tx.trySend(['héllo', dv, ab, f32, { data: ['a', dv, ab] }], rx.port, '127.0.0.1')
  t.is(n, 5)
  const got = await rx.waitFor(5)
  t.deepEqual(got.map((m) => [...m.data]), [
    [...Buffer.from('héllo', 'utf8')],
    [2, 3, 4],
    [1, 2, 3, 4, 5],
    [...new Uint8Array(f32.buffer)],
    [0x61, 2, 3, 4, 1, 2, 3, 4, 5],
  ])
  tx.close()
  rx.close()
})

test("hostnames: send() resolves 'localhost' with the default lookup", async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  t.is(await tx.send(['via localhost', { data: 'msg', address: 'localhost', port: rx.port }], rx.port, 'localhost'), 2)
  t.deepEqual((await rx.waitFor(2)).map((m) => m.data.toString()), ['via localhost', 'msg'])
  tx.close()
  rx.close()
})

test('hostnames are resolved via the lookup option once per distinct name per batch', async (t) => {
  const rx = await dgramReceiver()
  const calls: Array<[string, number]> = []
  const lookup: LookupFunction = (hostname, options, callback) => {
    calls.push([hostname, options.family])
    setImmediate(() => callback(null, '127.0.0.1', 4))
  }
  const tx = createSocket({ type: 'udp4', lookup })
  const batch = [
    'one',
    { data: 'two', address: 'alpha.test', port: rx.port },
    { data: 'three', address: 'beta.test', port: rx.port },
    { data: 'four', address: 'alpha.test' },
    { data: 'five', address: 'beta.test', port: rx.port },
  ]
  t.is(await tx.send(batch, rx.port, 'alpha.test'), 5)
  t.deepEqual(calls.map(([h]) => h).sort(), ['alpha.test', 'beta.test'])
  t.true(calls.every(([, family]) => family === 4))
  t.is(await tx.send(batch, rx.port, 'alpha.test'), 5)
  t.is(calls.length, 4, 'a new batch resolves again, once per name')
  const got = await rx.waitFor(10)
  t.deepEqual(got.map((m) => m.data.toString()), ['one', 'two', 'three', 'four', 'five', 'one', 'two', 'three', 'four', 'five'])
  tx.close()
  rx.close()
})

test('a failing lookup rejects send() and sends nothing', async (t) => {
  const rx = await dgramReceiver()
  const failure = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' })
  const tx = createSocket({ type: 'udp4', lookup: (_h, _o, cb) => setImmediate(() => cb(failure, '', 0)) })
  const e = await t.throwsAsync(tx.send(['a', { data: 'b', address: 'nowhere.test', port: rx.port }], rx.port, '127.0.0.1'))
  t.is((e as Coded).code, 'ENOTFOUND')
  await sleep(50)
  t.is(rx.received.length, 0)
  tx.close()
  rx.close()
})

test('IPv4 destinations on a udp6 socket go IPv4-mapped (mixed with IPv6 ones in one batch)', async (t) => {
  const rx4 = await dgramReceiver('udp4')
  const rx6 = await dgramReceiver('udp6')
  const tx = createSocket('udp6')
  t.is(tx.trySend(['to-v4', { data: 'to-v6', address: '::1', port: rx6.port }, { data: 'to-v4-again', address: '127.0.0.1', port: rx4.port }], rx4.port, '127.0.0.1'), 3)
  t.is(await tx.send(['async-v4'], rx4.port, '127.0.0.1'), 1)
  t.deepEqual((await rx4.waitFor(3)).map((m) => m.data.toString()), ['to-v4', 'to-v4-again', 'async-v4'])
  t.deepEqual((await rx6.waitFor(1)).map((m) => m.data.toString()), ['to-v6'])
  t.is(rx4.received[0]!.port, tx.address().port)
  tx.close()
  rx4.close()
  rx6.close()
})

// ---- errors --------------------------------------------------------------------------------

test('kernel errors: trySend throws and send rejects a SendError (instanceof Error) with index and sent', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const batch = ['a', 'b', Buffer.alloc(65508), 'after']
  const thrown = t.throws(() => tx.trySend(batch, rx.port, '127.0.0.1')) as SendError
  t.true(thrown instanceof SendError)
  t.true(thrown instanceof Error)
  t.is(thrown.name, 'SendError')
  t.like(thrown, { code: 'EMSGSIZE', errno: -90, syscall: 'sendto', index: 2, sent: 2, address: '127.0.0.1', port: rx.port })
  const rejected = await t.throwsAsync(tx.send(batch, rx.port, '127.0.0.1'))
  t.true(rejected instanceof SendError)
  t.like(rejected, { code: 'EMSGSIZE', index: 2, sent: 2 })
  t.deepEqual((await rx.waitFor(4)).map((m) => m.data.toString()), ['a', 'b', 'a', 'b'])
  tx.close()
  rx.close()
})

test('ECONNREFUSED on a connected socket is reported with its index, and never stale: a later batch whose message 1 is too long reports EMSGSIZE', async (t) => {
  const port = await closedPort()
  const tx = createSocket('udp4')
  tx.connect(port, '127.0.0.1')
  await once(tx, 'connect')
  t.is(tx.trySend(['probe']), 1)
  await sleep(50) // the ICMP port-unreachable is queued on the socket
  const refused = t.throws(() => tx.trySend(['a', 'b', 'c'])) as SendError
  t.true(refused instanceof SendError)
  t.like(refused, { code: 'ECONNREFUSED', errno: -111, index: 0, sent: 0 })
  // The pending error was reported once. The next batch's message 1 is too long: the report must
  // be about message 1 (EMSGSIZE), not a stale ECONNREFUSED.
  const tooLong = t.throws(() => tx.trySend(['ok', Buffer.alloc(70000)])) as SendError
  t.like(tooLong, { code: 'EMSGSIZE', index: 1, sent: 1 })
  await sleep(50)
  const viaSend = await t.throwsAsync(tx.send(['ok', Buffer.alloc(70000)]))
  t.true(viaSend instanceof SendError)
  // The first message may be refused by the ICMP the previous 'ok' caused; either way the report
  // is about the right message.
  const e = viaSend as SendError
  t.true((e.code === 'ECONNREFUSED' && e.index === 0 && e.sent === 0) || (e.code === 'EMSGSIZE' && e.index === 1 && e.sent === 1), `${e.code} index ${e.index} sent ${e.sent}`)
  tx.close()
})

test('ERR_INVALID_ARG_TYPE for bad batches, entries, addresses and callbacks', (t) => {
  const s = createSocket('udp4')
  const code = (fn: () => unknown): string => (t.throws(fn) as Coded).code
  t.is(code(() => s.trySend('x' as unknown as string[], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend([42 as unknown as string], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend([null as unknown as string], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend([{}], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend([{ data: [1] as unknown as string[] }], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend(['x'], 9, 127 as unknown as string)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend(['x'], undefined, '127.0.0.1')), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend([{ data: 'x', address: '127.0.0.1' }])), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySend(['x'], { port: 9 } as unknown as number)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySendPacked(Buffer.from('x'), 'no' as unknown as number[], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.trySendPacked(7 as unknown as Buffer, [1], 9)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.onBatch({} as ReturnType<typeof createRecvBatch>, () => {})), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.onBatch(createRecvBatch(1, 1), 'no' as unknown as () => void)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.setBroadcast('yes' as unknown as boolean)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.setTTL('1' as unknown as number)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => s.close('no' as unknown as () => void)), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => createSocket({ type: 'udp4', lookup: 1 as unknown as LookupFunction })), 'ERR_INVALID_ARG_TYPE')
  t.is(code(() => createSocket('tcp' as 'udp4')), 'ERR_SOCKET_BAD_TYPE')
  s.close()
})

test('ERR_SOCKET_BAD_PORT for bad ports (send, per-message, bind, connect)', (t) => {
  const s = createSocket('udp4')
  const code = (fn: () => unknown): string => (t.throws(fn, { instanceOf: RangeError }) as Coded).code
  for (const port of [0, -1, 65536, 1.5, NaN, '80' as unknown as number]) {
    t.is(code(() => s.trySend(['x'], port, '127.0.0.1')), 'ERR_SOCKET_BAD_PORT', String(port))
    t.is(code(() => s.trySend([{ data: 'x', address: '127.0.0.1', port }])), 'ERR_SOCKET_BAD_PORT', String(port))
  }
  t.is(code(() => s.bind(65536)), 'ERR_SOCKET_BAD_PORT')
  t.is(code(() => s.bind(-1)), 'ERR_SOCKET_BAD_PORT')
  t.is(code(() => s.connect(0)), 'ERR_SOCKET_BAD_PORT')
  t.is(code(() => s.connect(70000)), 'ERR_SOCKET_BAD_PORT')
  s.close()
})

test('ERR_OUT_OF_RANGE for flags, MSG_MORE, too many pieces, bad lengths and receive sizes', async (t) => {
  const s = createSocket('udp4')
  const code = (fn: () => unknown): string => (t.throws(fn, { instanceOf: RangeError }) as Coded).code
  t.is(code(() => s.trySend(['x'], 9, '127.0.0.1', -1)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.trySend(['x'], 9, '127.0.0.1', 1.5)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.trySend(['x'], 9, '127.0.0.1', 0x8000)), 'ERR_OUT_OF_RANGE', 'MSG_MORE is refused')
  t.is(code(() => s.trySend([{ data: Array.from({ length: 1025 }, () => 'p') }], 9, '127.0.0.1')), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.trySendPacked(Buffer.alloc(4), [1, -1], 9)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.trySendPacked(Buffer.alloc(4), [0.5], 9)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.tryRecv(0)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.tryRecv(1025)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.tryRecv(1, 65536)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => createRecvBatch(0, 10)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => createRecvBatch(10, 70000)), 'ERR_OUT_OF_RANGE')
  t.is(code(() => createSocket({ type: 'udp4', receive: { maxDatagrams: 2000 } })), 'ERR_OUT_OF_RANGE')
  t.is(code(() => s.setRecvBufferSize(0)), 'ERR_OUT_OF_RANGE')
  // send() reports the same misuse as a rejection, never a synchronous throw.
  let promise: Promise<number> | undefined
  t.notThrows(() => (promise = s.send(['x'], 9, '127.0.0.1', -1)))
  t.is((await t.throwsAsync(promise!))!.constructor, RangeError)
  s.close()
})

test('a dgram-style setTTL out of range is EINVAL', (t) => {
  const s = createSocket('udp4')
  s.bind(0, '127.0.0.1')
  t.is((t.throws(() => s.setTTL(0)) as Coded).code, 'EINVAL')
  t.is((t.throws(() => s.setTTL(256)) as Coded).code, 'EINVAL')
  s.close()
})

// ---- user code running while a batch is read ----------------------------------------------

test('a getter that throws inside a batch: the same error propagates, nothing is sent', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const boom = new Error('boom')
  const bad = { get data(): string { throw boom } }
  t.is(t.throws(() => tx.trySend(['first', bad], rx.port, '127.0.0.1')), boom)
  t.is(await t.throwsAsync(tx.send(['first', bad], rx.port, '127.0.0.1')), boom)
  await sleep(50)
  t.is(rx.received.length, 0)
  t.is(tx.trySend(['still works'], rx.port, '127.0.0.1'), 1)
  tx.close()
  rx.close()
})

test('re-entrant close() from a getter during trySend: a coded error, the process lives, nothing is sent', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const e = t.throws(() => tx.trySend(['a', { get data() { tx.close(); return 'b' } }], rx.port, '127.0.0.1')) as Coded
  t.is(e.code, 'ERR_SOCKET_DGRAM_NOT_RUNNING')
  t.true(tx.closed)
  await sleep(50)
  t.is(rx.received.length, 0)
  rx.close()
})

// lib reads the batch (running getters) before the binding runs; it records each view's length
// as it takes it, so a getter that detaches an earlier message's buffer fails that message
// (ERR_INVALID_STATE) rather than sending it empty.
test('a getter that detaches an earlier message\'s buffer fails that message (ERR_INVALID_STATE), it is not sent empty', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const ab = new ArrayBuffer(8)
  const thief = { get data() { structuredClone(ab, { transfer: [ab] }); return 'b' } }
  let error: Coded | undefined
  try {
    tx.trySend([new Uint8Array(ab), thief], rx.port, '127.0.0.1')
  } catch (e) {
    error = e as Coded
  }
  await sleep(50)
  t.false(rx.received.some((m) => m.data.length === 0), 'no empty datagram went out in its place')
  t.is(error?.code, 'ERR_INVALID_STATE')
  tx.close()
  rx.close()
})

test.serial('an exception thrown by a message listener reaches uncaughtException; the rest of the batch is still delivered', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 1 << 20 })
  rx.bind(0, '127.0.0.1')
  const boom = new Error('listener boom')
  const seen: string[] = []
  rx.on('message', (m: Buffer) => {
    seen.push(m.toString())
    if (m.toString() === 'b') throw boom
  })
  const caught: unknown[] = []
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  const onUncaught = (e: unknown): void => void caught.push(e)
  process.on('uncaughtException', onUncaught)
  try {
    await sleep(20)
    const tx = createSocket('udp4')
    tx.trySend(['a', 'b', 'c'], rx.address().port, '127.0.0.1')
    await until(() => seen.length >= 3 && caught.length >= 1, 3000)
    await sleep(20)
    tx.close()
  } finally {
    process.off('uncaughtException', onUncaught)
    for (const l of listeners) process.on('uncaughtException', l)
  }
  t.deepEqual(seen, ['a', 'b', 'c'])
  t.deepEqual(caught, [boom], 'the same object, once')
  rx.close()
})

test('hostnames for bind() and connect() go through the lookup option', async (t) => {
  const rx = await dgramReceiver()
  const names: string[] = []
  const lookup: LookupFunction = (hostname, _options, callback) => {
    names.push(hostname)
    process.nextTick(() => callback(null, '127.0.0.1', 4))
  }
  const tx = createSocket({ type: 'udp4', lookup })
  tx.bind(0, 'my-host.test')
  await once(tx, 'listening')
  t.is(tx.address().address, '127.0.0.1')
  tx.connect(rx.port, 'peer.test')
  await once(tx, 'connect')
  t.is(tx.trySend(['connected by name']), 1)
  t.deepEqual(names, ['my-host.test', 'peer.test'])
  t.deepEqual((await rx.waitFor(1)).map((m) => m.data.toString()), ['connected by name'])
  tx.close()
  rx.close()
})

test.serial('close() while receivers are active, from outside and from a handler: no delivery after close, no fd leak (200 cycles)', async (t) => {
  const { readdirSync } = await import('node:fs')
  const fds = (): number => readdirSync('/proc/self/fd').length
  await sleep(50)
  const before = fds()
  const tx = createSocket('udp4')
  let late = 0
  for (let i = 0; i < 200; i++) {
    const rx = createSocket({ type: 'udp4', receive: { maxDatagrams: 4 } })
    rx.bind(0, '127.0.0.1')
    const fromHandler = i % 2 === 0
    let closedAt = -1
    const onAny = (): void => {
      if (rx.closed) late++
      if (fromHandler && !rx.closed) {
        rx.close()
        closedAt = i
      }
    }
    if (i % 3 === 0) rx.onBatch(createRecvBatch(4, 64), onAny)
    else if (i % 3 === 1) rx.on('messages', onAny)
    else rx.on('message', onAny)
    await new Promise((r) => setImmediate(r))
    tx.trySend(numberedPayloads(20), rx.address().port, '127.0.0.1')
    if (!fromHandler) rx.close()
    await new Promise((r) => setImmediate(r))
    if (fromHandler && closedAt < 0 && !rx.closed) {
      await until(() => rx.closed, 1000)
      if (!rx.closed) rx.close()
    }
  }
  tx.close()
  await sleep(100)
  t.is(late, 0, 'no handler ran on a closed socket')
  t.true(fds() <= before + 2, `fds before ${before}, after ${fds()}`)
})
