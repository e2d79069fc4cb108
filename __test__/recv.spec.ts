// The receive side, with node:dgram (and this package) as the sender.
import test from 'ava'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'

import { createSocket, createRecvBatch, recvmmsg, MSG_DONTWAIT, type Datagram, type RemoteInfo } from '../lib'
import { collectMessages, dgramSender, dgramSendAll, numberedPayloads, sequenceOf, sleep, until } from './helpers'

const run = promisify(execFile)

test("'messages': exact bytes, lengths, sources and order from a node:dgram sender (IPv4)", async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  const tx = await dgramSender()
  const payloads = numberedPayloads(500, 100)
  const done = collectMessages(rx, 500)
  await dgramSendAll(tx, payloads, port, '127.0.0.1')
  const { datagrams } = await done
  t.is(datagrams.length, 500)
  t.true(datagrams.every((d, i) => Buffer.isBuffer(d.data) && d.data.equals(payloads[i]!)))
  t.true(datagrams.every((d) => d.address === '127.0.0.1' && d.port === tx.address().port && d.family === 'IPv4' && !d.truncated && d.size === 100))
  rx.close()
  tx.close()
})

test("'message' has dgram's (msg, rinfo) shape, IPv6", async (t) => {
  const rx = createSocket('udp6')
  rx.bind(0, '::1')
  const port = rx.address().port
  const tx = await dgramSender('udp6')
  const got: Array<[Buffer, RemoteInfo]> = []
  rx.on('message', (msg, rinfo) => got.push([msg, rinfo]))
  await dgramSendAll(tx, [Buffer.from('a'), Buffer.from('bb'), Buffer.from('')], port, '::1')
  await until(() => got.length >= 3)
  t.deepEqual(got.map(([m]) => m.toString()), ['a', 'bb', ''])
  t.deepEqual(got[1]![1], { address: '::1', family: 'IPv6', port: tx.address().port, size: 2 })
  rx.close()
  tx.close()
})

test('thousands of datagrams queued before one wake-up: all arrive, in order, in few batches', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  const tx = createSocket('udp4')
  const payloads = numberedPayloads(3000, 32)
  const done = collectMessages(rx, 3000)
  // The listener is armed on the next tick; all 3000 are queued synchronously before then.
  t.is(tx.trySend(payloads, port, '127.0.0.1'), 3000)
  const { datagrams, batchSizes } = await done
  t.is(datagrams.length, 3000)
  t.deepEqual(datagrams.map((d) => sequenceOf(d.data)), Array.from({ length: 3000 }, (_, i) => i))
  t.true(batchSizes.length <= 100, `3000 datagrams came in ${batchSizes.length} batches`)
  t.true(Math.max(...batchSizes) <= 64, 'default maxDatagrams is 64')
  t.is(rx.dropCount, 0)
  rx.close()
  tx.close()
})

test('truncation is reported by tryRecv, RecvBatch and recvmmsg', async (t) => {
  const rx = createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  const tx = await dgramSender()
  await dgramSendAll(tx, [Buffer.from('0123456789'), Buffer.from('abc'), Buffer.from('ABCDEFGHIJ'), Buffer.from('xyz0123456789')], port, '127.0.0.1')
  await sleep(30)
  const [first] = rx.tryRecv(1, 4)
  t.is(first!.data.toString(), '0123')
  t.true(first!.truncated)
  const batch = createRecvBatch(2, 5)
  t.is(rx.tryRecvBatch(batch), 2)
  t.is(batch.count, 2)
  t.deepEqual([...batch.lengths.subarray(0, 2)], [3, 5])
  t.deepEqual([...batch.flags.subarray(0, 2)].map((f) => f & 1), [0, 1])
  t.is(batch.datagram(1).toString(), 'ABCDE')
  t.is(batch.data.subarray(batch.slotSize, batch.slotSize + batch.lengths[1]!).toString(), 'ABCDE')
  t.is(batch.ports[0], tx.address().port)
  t.is(batch.address(0), '127.0.0.1')
  t.deepEqual([...batch.addresses.subarray(0, 16)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1])
  const small = Buffer.alloc(3)
  const fd = rx.fd
  const infos = recvmmsg(fd, [small], MSG_DONTWAIT)
  t.deepEqual(infos, [{ length: 3, truncated: true, address: '127.0.0.1', port: tx.address().port, family: 'IPv4' }])
  t.is(small.toString(), 'xyz')
  rx.close()
  tx.close()
})

test('recvmmsg(fd): a batch into caller buffers from a node:dgram sender; EAGAIN when empty', async (t) => {
  const rx = createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  const fd = rx.fd
  const tx = await dgramSender()
  await dgramSendAll(tx, [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')], rx.address().port, '127.0.0.1')
  await sleep(20)
  const buffers = [Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8)]
  const infos = recvmmsg(fd, buffers, MSG_DONTWAIT)
  t.deepEqual(infos.map((i) => i.length), [3, 3, 5])
  t.deepEqual(buffers.slice(0, 3).map((b, i) => b.subarray(0, infos[i]!.length).toString()), ['one', 'two', 'three'])
  t.true(infos.every((i) => i.port === tx.address().port))
  const e = t.throws(() => recvmmsg(fd, buffers, MSG_DONTWAIT)) as Error & { code: string; syscall: string }
  t.is(e.code, 'EAGAIN')
  t.is(e.syscall, 'recvmmsg')
  t.deepEqual(rx.tryRecv(), [], 'tryRecv on an empty queue returns []')
  tx.close()
  rx.close()
})

test('onBatch reuses one RecvBatch and delivers every datagram, in order', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  const tx = createSocket('udp4')
  const payloads = numberedPayloads(2000, 48)
  const batch = createRecvBatch(256, 64)
  const seen: Buffer[] = []
  let same = true
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000)
    rx.onBatch(batch, (b) => {
      if (b !== batch) same = false
      for (let i = 0; i < b.count; i++) seen.push(Buffer.from(b.datagram(i)))
      if (seen.length >= 2000) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  t.is(tx.trySend(payloads, port, '127.0.0.1'), 2000)
  await done
  t.true(same, 'the same object every time')
  t.is(seen.length, 2000)
  t.true(seen.every((d, i) => d.equals(payloads[i]!)))
  rx.stopReceiving()
  rx.close()
  tx.close()
})

test('close() from inside a handler stops delivery at once', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, receive: { maxDatagrams: 10 } })
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  const tx = createSocket('udp4')
  let calls = 0
  let messages = 0
  rx.on('messages', () => {
    calls++
    rx.close()
  })
  rx.on('message', () => messages++)
  await sleep(20)
  tx.trySend(numberedPayloads(100), port, '127.0.0.1')
  await until(() => calls > 0)
  await sleep(100)
  t.is(calls, 1)
  t.is(messages, 0, "no 'message' after a 'messages' listener closed the socket")
  t.true(rx.closed)
  tx.close()
})

test('removing the last listener leaves datagrams in the kernel queue for later', async (t) => {
  const rx = createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  const tx = createSocket('udp4')
  let calls = 0
  const listener = (): void => void calls++
  rx.on('messages', listener)
  await sleep(20)
  rx.off('messages', listener)
  tx.trySend([Buffer.from('kept')], port, '127.0.0.1')
  await sleep(100)
  t.is(calls, 0)
  t.deepEqual(rx.tryRecv().map((d: Datagram) => d.data.toString()), ['kept'])
  rx.close()
  tx.close()
})

test('the kernel drop counter shows datagrams lost to a full queue', async (t) => {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 1 })
  rx.bind(0, '127.0.0.1')
  const port = rx.address().port
  t.deepEqual(rx.tryRecv(), [], 'nothing queued yet')
  const tx = createSocket('udp4')
  tx.trySend(numberedPayloads(500, 200), port, '127.0.0.1')
  const got = rx.tryRecv(1024)
  t.true(got.length > 0 && got.length < 500, `received ${got.length}`)
  // The kernel stamps each datagram with the drop count when it is queued: the flood's drops
  // show on the next datagram that gets in.
  tx.trySend([Buffer.from('after the flood')], port, '127.0.0.1')
  t.deepEqual(rx.tryRecv().map((d) => d.data.toString()), ['after the flood'])
  t.is(rx.dropCount, 500 - got.length, 'every datagram is either received or counted as dropped')
  rx.close()
  tx.close()
})

test('idle receive memory: 100 idle listening sockets with a message listener allocate < 1 MiB', async (t) => {
  // In a fresh process: other tests' buffers in this one would blur process.memoryUsage().
  const script = `
    const { createSocket } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))})
    global.gc()
    const before = process.memoryUsage().arrayBuffers
    const sockets = Array.from({ length: 100 }, () => {
      const s = createSocket('udp4')
      s.bind(0, '127.0.0.1')
      s.on('message', () => {})
      return s
    })
    setTimeout(() => {
      global.gc()
      const delta = process.memoryUsage().arrayBuffers - before
      // They do receive, though: wake the first one.
      const tx = createSocket('udp4')
      sockets[0].once('message', (m) => {
        console.log(JSON.stringify({ delta, got: m.toString() }))
        for (const s of sockets) s.close()
        tx.close()
      })
      tx.trySend(['wake'], sockets[0].address().port, '127.0.0.1')
    }, 200)
  `
  const { stdout } = await run(process.execPath, ['--import=tsx', '--expose-gc', '-e', script], { timeout: 30000 })
  const result = JSON.parse(stdout.trim().split('\n').pop() as string) as { delta: number; got: string }
  t.log(`arrayBuffers delta for 100 idle sockets: ${result.delta} bytes`)
  t.true(result.delta < 1 << 20, `${result.delta} bytes`)
  t.is(result.got, 'wake')
})
