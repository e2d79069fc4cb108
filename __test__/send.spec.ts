// The send path against node:dgram as an independent receiver: bytes, counts and order.
import test from 'ava'
import dgram from 'node:dgram'
import { once } from 'node:events'

import { UdpSocket, createSocket, sendmmsg, trySendmmsg, MAX_MESSAGES_PER_CALL, SendError } from '../lib'
import { dgramReceiver, dgramFd, numberedPayloads, sequenceOf, sleep } from './helpers'

test('man page example: "onetwo" and "three" arrive as exactly two datagrams', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  tx.connect(rx.port, '127.0.0.1')
  const sent = tx.trySend([{ data: [Buffer.from('one'), Buffer.from('two')] }, { buffers: Buffer.from('three') }])
  t.is(sent, 2)
  const got = await rx.waitFor(2)
  t.deepEqual(got.map((m) => m.data.toString()), ['onetwo', 'three'])
  t.is(got[0]!.port, tx.address().port)
  tx.close()
  rx.close()
})

test(`one call with 3000 messages (> UIO_MAXIOV = ${MAX_MESSAGES_PER_CALL}) delivers all 3000, in the order accepted`, async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  tx.bind(0, '127.0.0.1')
  const payloads = numberedPayloads(3000, 16)
  t.is(tx.trySend(payloads, rx.port, '127.0.0.1'), 3000)
  const got = await rx.waitFor(3000)
  t.is(got.length, 3000)
  // Sequence numbers in payloads: the kernel accepted them 0..2999; loopback keeps that order.
  const seqs = got.map((m) => sequenceOf(m.data))
  t.false(seqs.includes(-1), 'no corrupt body')
  t.deepEqual(seqs, seqs.slice().sort((a, b) => a - b), 'strictly in accepted order')
  t.true(got.every((m, i) => m.data.equals(payloads[i]!)), 'every datagram, byte for byte')
  tx.close()
  rx.close()
})

test('IPv6: unconnected and connected sends reach a udp6 dgram receiver', async (t) => {
  const rx = await dgramReceiver('udp6')
  const tx = createSocket('udp6')
  tx.bind(0, '::1')
  t.is(tx.address().family, 'IPv6')
  t.is(tx.trySend([Buffer.from('v6-a'), Buffer.from('v6-b')], rx.port, '::1'), 2)
  tx.connect(rx.port, '::1')
  t.is(tx.remoteAddress().port, rx.port)
  t.is(tx.trySend([Buffer.from('v6-c')]), 1)
  const got = await rx.waitFor(3)
  t.deepEqual(got.map((m) => m.data.toString()), ['v6-a', 'v6-b', 'v6-c'])
  t.is(got[0]!.address, '::1')
  t.is(got[0]!.port, tx.address().port)
  tx.close()
  rx.close()
})

test('per-message destinations and scatter/gather in one batch; zero-length datagrams count', async (t) => {
  const a = await dgramReceiver()
  const b = await dgramReceiver()
  const tx = createSocket('udp4')
  const header = Buffer.from('HDR:')
  const sent = tx.trySend([
    { data: [header, Buffer.from('to-a-1')], address: '127.0.0.1', port: a.port },
    { data: [header, Buffer.from('to-b'), Buffer.from('!')], address: '127.0.0.1', port: b.port },
    { data: [new Uint8Array([1, 2, 3]), Buffer.alloc(0), new Uint8Array([4])], port: a.port },
    { data: Buffer.alloc(0), port: b.port },
  ])
  t.is(sent, 4)
  const gotA = await a.waitFor(2)
  const gotB = await b.waitFor(2)
  t.deepEqual(gotA.map((m) => [...m.data]), [[...Buffer.from('HDR:to-a-1')], [1, 2, 3, 4]])
  t.deepEqual(gotB.map((m) => m.data.toString()), ['HDR:to-b!', ''])
  tx.close()
  a.close()
  b.close()
})

test('mixed entries: plain payloads go to the call destination, messages to their own', async (t) => {
  const a = await dgramReceiver()
  const b = await dgramReceiver()
  const tx = createSocket('udp4')
  t.is(tx.trySend([Buffer.from('a1'), { data: 'b1', port: b.port }, 'a2', { data: 'a3' }, { data: 'b2', address: '127.0.0.1', port: b.port }], a.port, '127.0.0.1'), 5)
  t.deepEqual((await a.waitFor(3)).map((m) => m.data.toString()), ['a1', 'a2', 'a3'])
  t.deepEqual((await b.waitFor(2)).map((m) => m.data.toString()), ['b1', 'b2'])
  tx.close()
  a.close()
  b.close()
})

test('views into a larger buffer send exactly their own bytes (offsets respected)', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const big = Buffer.from('0123456789abcdef')
  const u16 = new Uint16Array(big.buffer.slice(big.byteOffset, big.byteOffset + 16), 4, 2)
  t.is(tx.trySend([big.subarray(2, 5), new Uint8Array(big.buffer, big.byteOffset + 10, 3), u16], rx.port, '127.0.0.1'), 3)
  t.deepEqual((await rx.waitFor(3)).map((m) => m.data.toString()), ['234', 'abc', '4567'])
  tx.close()
  rx.close()
})

test('a Buffer listed twice in a row and again later: every listing is its own datagram, bytes and order kept', async (t) => {
  // Buffers with their own memory (Buffer.alloc) take the path where each view is its own
  // store, and a view repeated in a row is listed once there; Buffers cut from Node's shared
  // pool (Buffer.from) take the path of shared stores and offsets. Either way one datagram per
  // entry (sizes differ, so no GSO run can hide a mistake).
  const own = (text: string): Buffer => {
    const b = Buffer.alloc(text.length)
    b.write(text)
    return b
  }
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  let expected: string[] = []
  for (const make of [own, (text: string) => Buffer.from(text)]) {
    const [a, b, c] = [make('alpha'), make('be'), make('gamma!')]
    const batch = [a, b, b, c, a, b, b, b, c]
    t.is(tx.trySend(batch, rx.port, '127.0.0.1'), batch.length)
    // And every Buffer distinct (for own memory: the plan's own list serves as the stores).
    const distinct = [make('one'), make('three'), make('two'), make('four!')]
    t.is(tx.trySend(distinct, rx.port, '127.0.0.1'), distinct.length)
    expected = [...expected, ...batch.map((x) => x.toString()), 'one', 'three', 'two', 'four!']
    const got = await rx.waitFor(expected.length)
    t.deepEqual(got.map((m) => m.data.toString()), expected)
  }
  tx.close()
  rx.close()
})

test('packed buffer plus lengths is cut into datagrams; lengths past the end are refused', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const packed = Buffer.from('aabbbcdddd')
  t.is(tx.trySendPacked(packed, new Uint32Array([2, 3, 1, 4]), rx.port, '127.0.0.1'), 4)
  t.is(tx.trySendPacked(packed, [1, 0], rx.port, '127.0.0.1'), 2)
  t.is(await tx.sendPacked(packed, [3], rx.port, '127.0.0.1'), 1)
  const got = await rx.waitFor(7)
  t.deepEqual(got.map((m) => m.data.toString()), ['aa', 'bbb', 'c', 'dddd', 'a', '', 'aab'])
  const e = t.throws(() => tx.trySendPacked(packed, [5, 6], rx.port, '127.0.0.1'), { instanceOf: RangeError }) as RangeError & { code: string }
  t.is(e.code, 'ERR_BUFFER_OUT_OF_BOUNDS')
  tx.close()
  rx.close()
})

test('trySendPacked: a datagram too large mid-buffer fails as a SendError with index, sent, address and port; connected and port-only forms reach the peer', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const packed = Buffer.alloc(70000, 0x61)
  packed.write('one', 0)
  const e = t.throws(() => tx.trySendPacked(packed, [3, 66000, 2], rx.port, '127.0.0.1')) as SendError
  t.true(e instanceof SendError)
  t.is(e.code, 'EMSGSIZE')
  t.is(e.index, 1)
  t.is(e.sent, 1)
  t.is(e.address, '127.0.0.1')
  t.is(e.port, rx.port)
  t.is(tx.trySendPacked(Buffer.from('xyz'), [1, 2], rx.port), 2, 'a port alone means loopback')
  const connected = createSocket('udp4')
  connected.connect(rx.port, '127.0.0.1')
  t.is(connected.trySendPacked(Buffer.from('peer'), new Uint32Array([4])), 1)
  t.deepEqual((await rx.waitFor(4)).map((m) => m.data.toString()), ['one', 'x', 'yz', 'peer'])
  connected.close()
  tx.close()
  rx.close()
})

test('a message that fails mid-batch: SendError with index/sent/errno; those before arrive, none after', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const batch = [...numberedPayloads(5), Buffer.alloc(70000), Buffer.from('after')]
  const error = t.throws(() => tx.trySend(batch, rx.port, '127.0.0.1'), { instanceOf: SendError }) as SendError
  t.is(error.code, 'EMSGSIZE')
  t.is(error.errno, -90)
  // The batch stopped short at message 5 (sendmmsg loses its error); sent again on its own
  // (one buffer: sendto), it names its error.
  t.is(error.syscall, 'sendto')
  t.is(error.index, 5)
  t.is(error.sent, 5)
  t.is(error.address, '127.0.0.1')
  t.is(error.port, rx.port)
  t.is(tx.trySend(batch.slice(error.index + 1), rx.port, '127.0.0.1'), 1)
  const got = await rx.waitFor(6)
  t.deepEqual(got.map((m) => m.data), [...batch.slice(0, 5), batch[6]])
  tx.close()
  rx.close()
})

test('a failure in the middle of a 1000-message batch: exactly the 617 messages before it arrive', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const batch = numberedPayloads(1000)
  batch[617] = Buffer.alloc(66000)
  const error = t.throws(() => tx.trySend(batch, rx.port, '127.0.0.1')) as SendError
  t.is(error.index, 617)
  t.is(error.sent, 617)
  const got = await rx.waitFor(617)
  t.is(got.length, 617)
  t.true(got.every((m, i) => m.data.equals(batch[i]!)))
  tx.close()
  rx.close()
})

test('send() resolves with the count and the datagrams arrive; kernel errors reject', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const payloads = numberedPayloads(2500, 32)
  t.is(await tx.send(payloads, rx.port, '127.0.0.1'), 2500)
  t.is(await tx.send([], rx.port, '127.0.0.1'), 0)
  const got = await rx.waitFor(2500)
  t.is(got.length, 2500)
  t.true(got.every((m, i) => m.data.equals(payloads[i]!)))
  const rejected = await t.throwsAsync(tx.send([Buffer.from('ok'), Buffer.alloc(70000)], rx.port, '127.0.0.1'), { instanceOf: SendError })
  t.is(rejected!.code, 'EMSGSIZE')
  t.is(rejected!.index, 1)
  t.is(rejected!.sent, 1)
  tx.close()
  rx.close()
})

test('several send() calls issued back to back resolve in call order and keep datagram order', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket({ type: 'udp4' })
  const payloads = numberedPayloads(2000, 20)
  const settled: number[] = []
  const sends = [0, 1, 2, 3].map((k) => tx.send(payloads.slice(k * 500, (k + 1) * 500), rx.port, '127.0.0.1').then((n) => (settled.push(k), n)))
  t.deepEqual(await Promise.all(sends), [500, 500, 500, 500])
  t.deepEqual(settled, [0, 1, 2, 3])
  const seqs = (await rx.waitFor(2000)).map((m) => sequenceOf(m.data))
  t.deepEqual(seqs, Array.from({ length: 2000 }, (_, i) => i))
  tx.close()
  rx.close()
})

test('sendmmsg(fd) on a node:dgram socket: faithful count, msg_len per message, errors only when none was sent', async (t) => {
  const rx = await dgramReceiver()
  const sender = dgram.createSocket('udp4')
  sender.bind(0, '127.0.0.1')
  await once(sender, 'listening')
  const fd = dgramFd(sender)
  const bytes = new Uint32Array(3)
  const n = sendmmsg(fd, [
    { data: Buffer.from('one'), address: '127.0.0.1', port: rx.port },
    { data: [Buffer.from('tw'), Buffer.from('o')], address: '127.0.0.1', port: rx.port },
    { data: Buffer.from('three!'), address: '127.0.0.1', port: rx.port },
  ], 0, bytes)
  t.is(n, 3)
  t.deepEqual([...bytes], [3, 3, 6])
  // The kernel's rule: an error after the first message is not thrown, the count says where.
  t.is(sendmmsg(fd, [{ data: Buffer.from('four'), port: rx.port }, { data: Buffer.alloc(70000), port: rx.port }]), 1)
  const error = t.throws(() => sendmmsg(fd, [{ data: Buffer.alloc(70000), port: rx.port }])) as Error & { code: string; syscall: string }
  t.is(error.code, 'EMSGSIZE')
  t.is(error.syscall, 'sendmmsg')
  // trySendmmsg recovers the error the kernel lost, with its index.
  const lost = t.throws(() => trySendmmsg(fd, [{ data: Buffer.from('five'), port: rx.port }, { data: Buffer.alloc(70000), port: rx.port }])) as SendError
  t.is(lost.code, 'EMSGSIZE')
  t.is(lost.index, 1)
  t.is(lost.sent, 1)
  const got = await rx.waitFor(5)
  t.deepEqual(got.map((m) => m.data.toString()), ['one', 'two', 'three!', 'four', 'five'])
  t.true(got.every((m) => m.port === sender.address().port), 'sent from the dgram socket itself')
  sender.close()
  rx.close()
})

test('UdpSocket.fromFd wraps a dgram socket: datagrams leave from its port; closing ours leaves it open', async (t) => {
  const rx = await dgramReceiver()
  const sender = dgram.createSocket('udp4')
  sender.bind(0, '127.0.0.1')
  await once(sender, 'listening')
  const wrapped = UdpSocket.fromFd(dgramFd(sender), 'udp4')
  t.is(wrapped.address().port, sender.address().port)
  t.is(wrapped.trySend([Buffer.from('via-wrapper')], rx.port, '127.0.0.1'), 1)
  wrapped.close()
  sender.send('via-dgram', rx.port, '127.0.0.1')
  const got = await rx.waitFor(2)
  t.deepEqual(got.map((m) => m.data.toString()), ['via-wrapper', 'via-dgram'])
  t.true(got.every((m) => m.port === sender.address().port))
  sender.close()
  rx.close()
})

test('bind is synchronous for IP literals; address/remoteAddress/disconnect/options behave like dgram', async (t) => {
  const s = createSocket({ type: 'udp4', reuseAddr: true, sendBufferSize: 1 << 16, recvBufferSize: 1 << 16 })
  t.is(s.bind(0, '127.0.0.1'), s, 'bind returns the socket')
  const info = s.address()
  t.is(info.address, '127.0.0.1')
  t.is(info.family, 'IPv4')
  t.true(info.port > 0)
  t.is(s.type, 'udp4')
  t.true(s.fd > 2)
  t.true(s.getSendBufferSize() >= 1 << 16)
  t.true(s.getRecvBufferSize() >= 1 << 16)
  t.is((t.throws(() => s.remoteAddress()) as Error & { code: string }).code, 'ERR_SOCKET_DGRAM_NOT_CONNECTED')
  t.is((t.throws(() => s.bind(0)) as Error & { code: string }).code, 'ERR_SOCKET_ALREADY_BOUND')
  s.connect(9, '127.0.0.1')
  t.is(s.remoteAddress().port, 9)
  t.is((t.throws(() => s.connect(9, '127.0.0.1')) as Error & { code: string }).code, 'ERR_SOCKET_DGRAM_IS_CONNECTED')
  s.disconnect()
  t.throws(() => s.remoteAddress())
  s.setBroadcast(true)
  t.is(s.setTTL(64), 64)
  t.is(s.setMulticastTTL(2), 2)
  t.is(s.setMulticastLoopback(true), true)
  await once(s, 'listening')
  s.close()
  t.true(s.closed)
  await once(s, 'close')
})

test('trySend refuses hostnames and malformed addresses before anything is sent', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  for (const address of ['localhost', 'example.invalid', '127.0.0', '1.2.3.4.5']) {
    const e = t.throws(() => tx.trySend([Buffer.from('first'), { data: Buffer.from('bad'), address, port: rx.port }], rx.port, '127.0.0.1'), { instanceOf: TypeError }) as TypeError & { code: string }
    t.is(e.code, 'ERR_INVALID_ARG_VALUE', address)
  }
  await sleep(100)
  t.is(rx.received.length, 0, 'not even the valid first message went out')
  tx.close()
  rx.close()
})

// ---- the single-datagram path (trySend/send of one Buffer: no plan, parsed destinations kept) --

test('one-datagram sends: bytes, destination, connected peer, and errors with index 0 / address / port', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  tx.bind(0, '127.0.0.1')
  t.is(tx.trySend([Buffer.from('a')], rx.port, '127.0.0.1'), 1)
  t.is(tx.trySend([new Uint8Array([0x62])], rx.port), 1, 'a port alone means loopback')
  t.is(await tx.send([Buffer.from('c')], rx.port, '127.0.0.1'), 1)
  t.is(tx.trySend([Buffer.alloc(0)], rx.port, '127.0.0.1'), 1, 'an empty datagram')
  // An oversized datagram: the kernel's EMSGSIZE, located like a batch's.
  const error = t.throws(() => tx.trySend([Buffer.alloc(70000)], rx.port, '127.0.0.1'), { instanceOf: SendError })
  t.is(error?.code, 'EMSGSIZE')
  t.is(error?.index, 0)
  t.is(error?.sent, 0)
  t.is(error?.address, '127.0.0.1')
  t.is(error?.port, rx.port)
  await t.throwsAsync(tx.send([Buffer.alloc(70000)], rx.port, '127.0.0.1'), { instanceOf: SendError, code: 'EMSGSIZE' })
  // Not connected and no destination: the kernel says so (EDESTADDRREQ), as for a batch.
  t.throws(() => tx.trySend([Buffer.from('x')]), { instanceOf: SendError, code: 'EDESTADDRREQ' })
  // Same validation as the batch path: bad port, wrong family, hostname in trySend.
  t.throws(() => tx.trySend([Buffer.from('x')], 0, '127.0.0.1'), { code: 'ERR_SOCKET_BAD_PORT' })
  t.throws(() => tx.trySend([Buffer.from('x')], rx.port, '::1'))
  t.throws(() => tx.trySend([Buffer.from('x')], rx.port, 'localhost'), { code: 'ERR_INVALID_ARG_VALUE' })
  tx.connect(rx.port, '127.0.0.1')
  t.is(tx.trySend([Buffer.from('d')]), 1, 'to the connected peer')
  const got = await rx.waitFor(5)
  t.deepEqual(got.map((m) => m.data.toString()), ['a', 'b', 'c', '', 'd'])
  t.true(got.every((m) => m.port === tx.address().port))
  tx.close()
  rx.close()
})

test('one-datagram sends to more destinations than the binding keeps parsed (4096) still reach the right one', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  tx.bind(0, '127.0.0.1')
  const marker = (i: number): Buffer => Buffer.from(`to-rx-${i}`)
  t.is(tx.trySend([marker(0)], rx.port, '127.0.0.1'), 1)
  // 4500 other destinations (127.0.0.2-5, ports nobody listens on: dropped by the kernel, and
  // with no IP_RECVERR on an unconnected socket nothing comes back), with the receiver in between.
  let other = 0
  for (let host = 2; host <= 5; host++) {
    for (let port = 40000; port < 41125; port++) {
      tx.trySend([Buffer.from('x')], port, `127.0.0.${host}`)
      if (++other % 1000 === 0) t.is(tx.trySend([marker(other / 1000)], rx.port, '127.0.0.1'), 1)
    }
  }
  t.is(tx.trySend([marker(5)], rx.port, '127.0.0.1'), 1)
  const got = await rx.waitFor(6)
  t.deepEqual(got.map((m) => m.data.toString()), [0, 1, 2, 3, 4, 5].map((i) => `to-rx-${i}`))
  tx.close()
  rx.close()
})

test('batches of messages to several destinations (the spans path names them by id): each peer gets its own, in order, also when the id table is cleared during the batch', async (t) => {
  const a = await dgramReceiver()
  const b = await dgramReceiver()
  const tx = createSocket('udp4')
  tx.bind(0, '127.0.0.1')
  const batch = (tag: string) => [0, 1, 2, 3, 4, 5].map((i) => ({ data: Buffer.from(`${tag}${i}`), address: '127.0.0.1', port: i % 3 === 1 ? b.port : a.port }))
  t.is(tx.trySend(batch('x')), 6)
  // 4094 other destinations (127.0.0.2, nobody listens) and the two peers fill the table: the
  // next batch's third destination clears it while the batch's ids are being taken.
  for (let port = 40000; port < 44094; port++) tx.trySend([Buffer.from('-')], port, '127.0.0.2')
  t.is(tx.trySend([...batch('y'), { data: Buffer.from('y6'), address: '127.0.0.3', port: 40000 }]), 7)
  t.is(tx.trySend(batch('z')), 6)
  t.deepEqual((await a.waitFor(12)).map((m) => m.data.toString()), ['x0', 'x2', 'x3', 'x5', 'y0', 'y2', 'y3', 'y5', 'z0', 'z2', 'z3', 'z5'])
  t.deepEqual((await b.waitFor(6)).map((m) => m.data.toString()), ['x1', 'x4', 'y1', 'y4', 'z1', 'z4'])
  tx.close()
  a.close()
  b.close()
})

test('one-datagram sends: a refused destination right after the parsed-destination table was cleared does not break the next send', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  tx.bind(0, '127.0.0.1')
  // 4095 other destinations plus the receiver fill the table (4096).
  for (let port = 40000; port < 44095; port++) tx.trySend([Buffer.from('x')], port, '127.0.0.2')
  t.is(tx.trySend([Buffer.from('first')], rx.port, '127.0.0.1'), 1)
  // A new destination clears the table; this one is then refused (IPv6 on udp4).
  t.throws(() => tx.trySend([Buffer.from('x')], rx.port, '::1'))
  t.is(tx.trySend([Buffer.from('second')], rx.port, '127.0.0.1'), 1, 'the last destination still works')
  const got = await rx.waitFor(2)
  t.deepEqual(got.map((m) => m.data.toString()), ['first', 'second'])
  tx.close()
  rx.close()
})
