// The receive side, with node:dgram (and this package) as the sender.
import test from 'ava'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'

import { UdpSocket, createRecvBatch, recvmmsg, ReceivedDatagram, MSG_DONTWAIT } from '../index'
import { numberedPayloads } from './helpers'

async function dgramSender(type: 'udp4' | 'udp6' = 'udp4') {
  const s = dgram.createSocket(type)
  s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1')
  await once(s, 'listening')
  return s
}

function sendAll(s: dgram.Socket, payloads: Buffer[], port: number, address: string) {
  return Promise.all(payloads.map((p) => new Promise<void>((resolve, reject) => s.send(p, port, address, (e) => (e ? reject(e) : resolve())))))
}

function collect(socket: UdpSocket, count: number, timeoutMs = 5000) {
  const datagrams: ReceivedDatagram[] = []
  const batchSizes: number[] = []
  return new Promise<{ datagrams: ReceivedDatagram[]; batchSizes: number[] }>((resolve) => {
    const timer = setTimeout(() => resolve({ datagrams, batchSizes }), timeoutMs)
    socket.onMessages((batch) => {
      batchSizes.push(batch.length)
      datagrams.push(...batch)
      if (datagrams.length >= count) {
        clearTimeout(timer)
        setTimeout(() => resolve({ datagrams, batchSizes }), 30)
      }
    })
  })
}

test('onMessages: exact bytes, lengths, sources and order from a node:dgram sender (IPv4)', async (t) => {
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = await dgramSender()
  const payloads = numberedPayloads(500, 100)
  const done = collect(rx, 500)
  await sendAll(tx, payloads, port, '127.0.0.1')
  const { datagrams } = await done
  t.is(datagrams.length, 500)
  t.true(datagrams.every((d, i) => Buffer.isBuffer(d.data) && d.data.equals(payloads[i])))
  t.true(datagrams.every((d) => d.address === '127.0.0.1' && d.port === tx.address().port && d.family === 'IPv4' && !d.truncated))
  rx.close()
  tx.close()
})

test('onMessages over IPv6', async (t) => {
  const rx = new UdpSocket('udp6')
  const { port } = rx.bind(0, '::1')
  const tx = await dgramSender('udp6')
  const done = collect(rx, 3)
  await sendAll(tx, [Buffer.from('a'), Buffer.from('bb'), Buffer.from('')], port, '::1')
  const { datagrams } = await done
  t.deepEqual(datagrams.map((d) => d.data.toString()), ['a', 'bb', ''])
  t.true(datagrams.every((d) => d.address === '::1' && d.family === 'IPv6' && d.port === tx.address().port))
  rx.close()
  tx.close()
})

test('thousands of datagrams queued before one wake-up arrive as few batches', async (t) => {
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = new UdpSocket('udp4')
  const payloads = numberedPayloads(3000, 32)
  // All 3000 are queued synchronously, before the event loop can deliver anything.
  t.is(tx.trySend(payloads, port, '127.0.0.1'), 3000)
  const { datagrams, batchSizes } = await collect(rx, 3000)
  t.is(datagrams.length, 3000)
  t.true(datagrams.every((d, i) => d.data.equals(payloads[i])))
  t.true(batchSizes.length <= 4, `3000 datagrams came in ${batchSizes.length} batches: ${batchSizes}`)
  t.is(rx.dropCount, 0)
  rx.close()
  tx.close()
})

test('truncation is reported by tryRecv, RecvBatch and recvmmsg', async (t) => {
  const rx = new UdpSocket('udp4')
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = await dgramSender()
  await sendAll(tx, [Buffer.from('0123456789'), Buffer.from('abc'), Buffer.from('ABCDEFGHIJ'), Buffer.from('xyz0123456789')], port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 30))
  const [first] = rx.tryRecv(1, 4)
  t.is(first.data.toString(), '0123')
  t.true(first.truncated)
  const batch = createRecvBatch(2, 5)
  t.is(rx.tryRecvBatch(batch), 2)
  t.is(batch.count, 2)
  t.deepEqual([...batch.lengths.subarray(0, 2)], [3, 5])
  t.deepEqual([...batch.truncated.subarray(0, 2)], [0, 1])
  t.is(batch.data.subarray(batch.offsets[1], batch.offsets[1] + batch.lengths[1]).toString(), 'ABCDE')
  t.is(batch.ports[0], tx.address().port)
  t.deepEqual([...batch.addresses.subarray(0, 16)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1])
  const small = Buffer.alloc(3)
  const infos = recvmmsg(rx.fd, [small], MSG_DONTWAIT)
  t.deepEqual(infos, [{ length: 3, truncated: true, address: '127.0.0.1', port: tx.address().port, family: 'IPv4' }])
  t.is(small.toString(), 'xyz')
  rx.close()
  tx.close()
})

test('recvmmsg(fd): a batch into caller buffers, from a node:dgram sender; EAGAIN when empty', async (t) => {
  const rx = new UdpSocket('udp4')
  const { port } = rx.bind(0, '127.0.0.1')
  const fd = rx.fd
  const tx = await dgramSender()
  await sendAll(tx, [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')], port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 20))
  const buffers = [Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8)]
  const infos = recvmmsg(fd, buffers, MSG_DONTWAIT)
  t.deepEqual(infos.map((i) => i.length), [3, 3, 5])
  t.deepEqual(buffers.slice(0, 3).map((b, i) => b.subarray(0, infos[i].length).toString()), ['one', 'two', 'three'])
  t.true(infos.every((i) => i.port === tx.address().port))
  const e = t.throws(() => recvmmsg(fd, buffers, MSG_DONTWAIT)) as any
  t.is(e.code, 'EAGAIN')
  t.is(e.syscall, 'recvmmsg')
  tx.close()
  rx.close()
})

test('onBatch reuses one RecvBatch and delivers every datagram', async (t) => {
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = new UdpSocket('udp4')
  const payloads = numberedPayloads(2000, 48)
  const batch = createRecvBatch(256, 64)
  const seen: Buffer[] = []
  const done = new Promise<void>((resolve) => {
    rx.onBatch(batch, (b) => {
      t.is(b, batch, 'the same object every time')
      for (let i = 0; i < b.count; i++) seen.push(Buffer.from(b.data.subarray(b.offsets[i], b.offsets[i] + b.lengths[i])))
      if (seen.length >= 2000) resolve()
    })
  })
  t.is(tx.trySend(payloads, port, '127.0.0.1'), 2000)
  await done
  t.true(seen.every((d, i) => d.equals(payloads[i])))
  rx.close()
  tx.close()
})

test('close() from inside the handler stops delivery at once', async (t) => {
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = new UdpSocket('udp4')
  let calls = 0
  rx.onMessages(() => {
    calls++
    rx.close()
  }, { maxDatagrams: 10 })
  tx.trySend(numberedPayloads(100), port, '127.0.0.1')
  for (let waited = 0; calls === 0 && waited < 5000; waited += 20) await new Promise((r) => setTimeout(r, 20))
  // Linger: more batches were queued (100 datagrams, 10 per batch) but none may be delivered.
  await new Promise((r) => setTimeout(r, 100))
  t.is(calls, 1)
  t.true(rx.closed)
  tx.close()
})

test('stopReceiving leaves datagrams in the kernel queue for later', async (t) => {
  const rx = new UdpSocket('udp4')
  const { port } = rx.bind(0, '127.0.0.1')
  const tx = new UdpSocket('udp4')
  let calls = 0
  rx.onMessages(() => calls++)
  rx.stopReceiving()
  tx.trySend([Buffer.from('kept')], port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 100))
  t.is(calls, 0)
  t.deepEqual(rx.tryRecv().map((d) => d.data.toString()), ['kept'])
  rx.close()
  tx.close()
})

test('the kernel drop counter (SO_RXQ_OVFL) shows datagrams lost to a full queue', async (t) => {
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 1 })
  const { port } = rx.bind(0, '127.0.0.1')
  t.deepEqual(rx.tryRecv(), [], 'enables the counter; nothing queued yet')
  const tx = new UdpSocket('udp4')
  tx.trySend(numberedPayloads(500, 200), port, '127.0.0.1')
  const got = rx.tryRecv(1024)
  t.true(got.length > 0 && got.length < 500)
  // The kernel stamps each datagram with the drop count at the time it was queued, so the
  // flood's drops show on the next datagram that gets in.
  tx.trySend([Buffer.from('after the flood')], port, '127.0.0.1')
  t.deepEqual(rx.tryRecv().map((d) => d.data.toString()), ['after the flood'])
  t.is(rx.dropCount, 500 - got.length, 'every datagram is either received or counted as dropped')
  rx.close()
  tx.close()
})

const run = promisify(execFile)

test('unref() lets a script with a receiving socket exit; a ref()ed one stays alive', async (t) => {
  const fixtures = path.join(__dirname, 'fixtures')
  const { stdout: out } = await run(process.execPath, [path.join(fixtures, 'unref-exit.js')], { timeout: 10000 })
  t.is(out.trim(), 'exited')
  const { stdout: alive } = await run(process.execPath, [path.join(fixtures, 'ref-stays.js')], { timeout: 10000 })
  const ms = Number(alive.trim().split(' ')[1])
  t.true(ms >= 250, `a ref'd receiver kept the process alive ${ms} ms`)
})

test('the zero-allocation path does not grow the heap per datagram (--expose-gc)', async (t) => {
  const { stdout: out } = await run(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'zero-alloc-heap.js')], { timeout: 60000 })
  const result = JSON.parse(out.trim())
  t.log(result)
  t.true(result.datagrams >= 400000)
  // 400k datagrams: even 8 bytes each would be 3.2 MB; allow 512 KB of noise in total.
  t.true(result.heapGrowth < 512 * 1024, `heap grew ${result.heapGrowth} bytes over ${result.datagrams} datagrams`)
})
