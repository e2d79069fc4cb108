// The send path against node:dgram as an independent receiver: bytes, counts and order.
import test from 'ava'
import dgram from 'node:dgram'
import { once } from 'node:events'

import { UdpSocket, sendmmsg, trySendmmsg, MAX_MESSAGES_PER_CALL } from '../index'
import { dgramReceiver, dgramFd, numberedPayloads } from './helpers'

test('man page example: "onetwo" and "three" arrive as exactly two datagrams', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  tx.connect(rx.port, '127.0.0.1')
  const sent = tx.trySend([
    { buffers: [Buffer.from('one'), Buffer.from('two')] },
    { buffers: Buffer.from('three') },
  ])
  t.is(sent, 2)
  const got = await rx.waitFor(2)
  t.deepEqual(got.map((m) => m.data.toString()), ['onetwo', 'three'])
  t.is(got[0].port, tx.address().port)
  tx.close()
  rx.close()
})

test(`one call with 3000 messages (> UIO_MAXIOV = ${MAX_MESSAGES_PER_CALL}) delivers all 3000 in order`, async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  tx.bind(0, '127.0.0.1')
  const payloads = numberedPayloads(3000, 16)
  t.is(tx.trySend(payloads, rx.port, '127.0.0.1'), 3000)
  const got = await rx.waitFor(3000)
  t.is(got.length, 3000)
  t.true(got.every((m, i) => m.data.equals(payloads[i])), 'every datagram, byte for byte, in order')
  tx.close()
  rx.close()
})

test('IPv6: unconnected and connected sends reach a udp6 dgram receiver', async (t) => {
  const rx = await dgramReceiver('udp6')
  const tx = new UdpSocket('udp6')
  t.is(tx.bind(0, '::1').family, 'IPv6')
  t.is(tx.trySend([Buffer.from('v6-a'), Buffer.from('v6-b')], rx.port, '::1'), 2)
  tx.connect(rx.port, '::1')
  t.is(tx.remoteAddress().port, rx.port)
  t.is(tx.trySend([Buffer.from('v6-c')]), 1)
  const got = await rx.waitFor(3)
  t.deepEqual(got.map((m) => m.data.toString()), ['v6-a', 'v6-b', 'v6-c'])
  t.is(got[0].address, '::1')
  tx.close()
  rx.close()
})

test('a udp6 socket reaches an IPv4 peer through an IPv4-mapped address', async (t) => {
  const rx = await dgramReceiver('udp4')
  const tx = new UdpSocket('udp6')
  tx.bind(0)
  t.is(tx.trySend([Buffer.from('mapped')], rx.port, '127.0.0.1'), 1)
  const got = await rx.waitFor(1)
  t.deepEqual(got.map((m) => m.data.toString()), ['mapped'])
  tx.close()
  rx.close()
})

test('per-message destinations and scatter/gather in one batch', async (t) => {
  const a = await dgramReceiver()
  const b = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  const header = Buffer.from('HDR:')
  const sent = tx.trySend([
    { buffers: [header, Buffer.from('to-a-1')], address: '127.0.0.1', port: a.port },
    { buffers: [header, Buffer.from('to-b'), Buffer.from('!')], address: '127.0.0.1', port: b.port },
    { buffers: [new Uint8Array([1, 2, 3]), Buffer.alloc(0), new Uint8Array([4])], port: a.port },
    { buffers: Buffer.alloc(0), port: b.port },
  ])
  t.is(sent, 4)
  const gotA = await a.waitFor(2)
  const gotB = await b.waitFor(2)
  t.deepEqual(gotA.map((m) => [...m.data]), [[...Buffer.from('HDR:to-a-1')], [1, 2, 3, 4]])
  t.deepEqual(gotB.map((m) => m.data.toString()), ['HDR:to-b!', ''], 'a zero-length datagram is a datagram')
  tx.close()
  a.close()
  b.close()
})

test('views into a larger buffer send exactly their own bytes (no copy, correct offsets)', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  const big = Buffer.from('0123456789abcdef')
  t.is(tx.trySend([big.subarray(2, 5), new Uint8Array(big.buffer, big.byteOffset + 10, 3)], rx.port, '127.0.0.1'), 2)
  t.deepEqual((await rx.waitFor(2)).map((m) => m.data.toString()), ['234', 'abc'])
  tx.close()
  rx.close()
})

test('packed buffer plus lengths is cut into datagrams without copying', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  const packed = Buffer.from('aabbbcdddd')
  t.is(tx.trySendPacked(packed, new Uint32Array([2, 3, 1, 4]), rx.port, '127.0.0.1'), 4)
  t.is(tx.trySendPacked(packed, [1, 0], rx.port, '127.0.0.1'), 2)
  const got = await rx.waitFor(6)
  t.deepEqual(got.map((m) => m.data.toString()), ['aa', 'bbb', 'c', 'dddd', 'a', ''])
  t.throws(() => tx.trySendPacked(packed, [5, 6], rx.port, '127.0.0.1'), { instanceOf: RangeError })
  tx.close()
  rx.close()
})

test('a message that fails mid-batch is reported with index and errno; the ones before arrive, none after', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  const batch = [...numberedPayloads(5), Buffer.alloc(70000), Buffer.from('after')]
  const error = t.throws(() => tx.trySend(batch, rx.port, '127.0.0.1')) as any
  t.is(error.code, 'EMSGSIZE')
  t.is(error.errno, -90)
  t.is(error.syscall, 'sendmmsg')
  t.is(error.index, 5)
  t.is(error.sent, 5)
  // Resume after the bad message, as the error tells the caller to.
  t.is(tx.trySend(batch.slice(error.index + 1), rx.port, '127.0.0.1'), 1)
  const got = await rx.waitFor(6)
  t.deepEqual(got.map((m) => m.data), [...batch.slice(0, 5), batch[6]])
  tx.close()
  rx.close()
})

test('a failure in the middle of a 1000-message batch: exactly the messages before it arrive', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  const batch = numberedPayloads(1000)
  batch[617] = Buffer.alloc(66000)
  const error = t.throws(() => tx.trySend(batch, rx.port, '127.0.0.1')) as any
  t.is(error.index, 617)
  const got = await rx.waitFor(617)
  t.is(got.length, 617)
  t.true(got.every((m, i) => m.data.equals(batch[i])))
  tx.close()
  rx.close()
})

test('async send resolves with the count and the datagrams arrive', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  const payloads = numberedPayloads(2500, 32)
  t.is(await tx.send(payloads, rx.port, '127.0.0.1'), 2500)
  t.is(await tx.sendPacked(Buffer.from('xyz'), [1, 2], rx.port, '127.0.0.1'), 2)
  const got = await rx.waitFor(2502)
  t.is(got.length, 2502)
  t.true(got.slice(0, 2500).every((m, i) => m.data.equals(payloads[i])))
  t.deepEqual(got.slice(2500).map((m) => m.data.toString()), ['x', 'yz'])
  const rejected = (await t.throwsAsync(tx.send([Buffer.alloc(70000)], rx.port, '127.0.0.1'))) as any
  t.is(rejected.code, 'EMSGSIZE')
  t.is(rejected.index, 0)
  tx.close()
  rx.close()
})

test('sendmmsg(fd) on a node:dgram socket: faithful count, msg_len per message, and errors only when none was sent', async (t) => {
  const rx = await dgramReceiver()
  const sender = dgram.createSocket('udp4')
  sender.bind(0, '127.0.0.1')
  await once(sender, 'listening')
  const fd = dgramFd(sender)
  const bytes = new Uint32Array(3)
  const n = sendmmsg(fd, [
    { buffers: Buffer.from('one'), address: '127.0.0.1', port: rx.port },
    { buffers: [Buffer.from('tw'), Buffer.from('o')], address: '127.0.0.1', port: rx.port },
    { buffers: Buffer.from('three!'), address: '127.0.0.1', port: rx.port },
  ], 0, bytes)
  t.is(n, 3)
  t.deepEqual([...bytes], [3, 3, 6])
  // The kernel's rule: an error after the first message is not thrown, the count says where.
  t.is(sendmmsg(fd, [{ buffers: Buffer.from('four'), port: rx.port }, { buffers: Buffer.alloc(70000), port: rx.port }]), 1)
  const error = t.throws(() => sendmmsg(fd, [{ buffers: Buffer.alloc(70000), port: rx.port }])) as any
  t.is(error.code, 'EMSGSIZE')
  t.is(error.syscall, 'sendmmsg')
  // trySendmmsg recovers the error the kernel lost, with its index.
  const lost = t.throws(() => trySendmmsg(fd, [{ buffers: Buffer.from('five'), port: rx.port }, { buffers: Buffer.alloc(70000), port: rx.port }])) as any
  t.is(lost.code, 'EMSGSIZE')
  t.is(lost.index, 1)
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
  const wrapped = UdpSocket.fromFd(dgramFd(sender))
  t.is(wrapped.address().port, sender.address().port)
  t.is(wrapped.trySend([Buffer.from('via-wrapper')], rx.port, '127.0.0.1'), 1)
  wrapped.close()
  sender.send('via-dgram', rx.port, '127.0.0.1')
  const got = await rx.waitFor(2)
  t.deepEqual(got.map((m) => m.data.toString()), ['via-wrapper', 'via-dgram'])
  sender.close()
  rx.close()
})

test('bind is synchronous and address/remoteAddress/disconnect behave like dgram', (t) => {
  const s = new UdpSocket({ type: 'udp4', reuseAddr: true, sendBufferSize: 1 << 16, recvBufferSize: 1 << 16 })
  const info = s.bind(0, '127.0.0.1')
  t.is(info.address, '127.0.0.1')
  t.true(info.port > 0)
  t.deepEqual(s.address(), info)
  t.is(s.type, 'udp4')
  t.true(s.fd > 2)
  t.true(s.getSendBufferSize() >= 1 << 16)
  const notConnected = t.throws(() => s.remoteAddress()) as any
  t.is(notConnected.code, 'ENOTCONN')
  s.connect(9, '127.0.0.1')
  t.is(s.remoteAddress().port, 9)
  s.disconnect()
  t.throws(() => s.remoteAddress())
  s.setBroadcast(true)
  s.setTtl(64)
  s.setMulticastTtl(2)
  s.setMulticastLoopback(true)
  s.close()
  t.true(s.closed)
  t.is(s.fd, -1)
  t.is((t.throws(() => s.trySend([Buffer.from('x')], 9)) as any).code, 'ERR_SOCKET_CLOSED')
  t.notThrows(() => s.close(), 'closing twice is harmless')
})

test('hostnames and malformed addresses are refused before anything is sent', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  for (const address of ['localhost', 'example.com', '127.0.0', '::1', '1.2.3.4.5', '']) {
    const e = t.throws(() => tx.trySend([Buffer.from('first'), { buffers: Buffer.from('bad'), address, port: rx.port }], rx.port, '127.0.0.1'), { instanceOf: TypeError })
    t.is((e as any).code, 'ERR_INVALID_ARG_TYPE')
  }
  await new Promise((r) => setTimeout(r, 100))
  t.is(rx.received.length, 0, 'not even the valid first message went out')
  tx.close()
  rx.close()
})
