// Generic Segmentation Offload on send (UDP_SEGMENT) and Generic Receive Offload (UDP_GRO).
import test from 'ava'

import { createSocket, createRecvBatch, type Datagram } from '../lib'
import { dgramReceiver, numberedPayloads, sequenceOf, sleep } from './helpers'

const SEGMENT = 1200

function packedPayloads(count: number, tail = 0): { datagrams: Buffer[]; packed: Buffer } {
  const datagrams = numberedPayloads(count, SEGMENT)
  if (tail) datagrams.push(Buffer.alloc(tail, 0x5a))
  return { datagrams, packed: Buffer.concat(datagrams) }
}

test('trySendSegmented: equal-sized datagrams leave as GSO sends and arrive separately, in order', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  t.not(tx.gso, 'unavailable')
  const { datagrams, packed } = packedPayloads(300, 17)
  t.is(tx.trySendSegmented(packed, SEGMENT, rx.port, '127.0.0.1'), 301)
  t.is(tx.gso, 'available', 'loopback takes UDP_SEGMENT')
  const got = await rx.waitFor(301)
  t.is(got.length, 301)
  t.deepEqual(got.slice(0, 300).map((m) => sequenceOf(m.data)), Array.from({ length: 300 }, (_, i) => i))
  t.true(got.every((m, i) => m.data.equals(datagrams[i]!)), 'byte for byte, tail included')
  tx.close()
  rx.close()
})

test('trySend of views cut back to back from one buffer, and of pooled Buffers: every datagram arrives whole and in order', async (t) => {
  // Views that follow each other in memory share one iovec in the kernel call (the core joins
  // them: send.rs's unit test checks the iovecs); here the bytes on the wire, with runs cut at
  // a shorter datagram, a gap, another buffer and 64 datagrams.
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  const sizes = [...Array<number>(70).fill(100), 60, ...Array<number>(10).fill(100)]
  const datagrams = numberedPayloads(sizes.length, 100).map((b, i) => b.subarray(0, sizes[i]))
  const packed = Buffer.alloc(sizes.reduce((a, b) => a + b, 0) + 1)
  const views: Uint8Array[] = []
  let offset = 0
  datagrams.forEach((d, i) => {
    if (i === 75) offset += 1 // a one-byte gap: not adjacent to the view before it
    d.copy(packed, offset)
    views.push(packed.subarray(offset, offset + d.length))
    offset += d.length
  })
  views[78] = Buffer.from(datagrams[78]!) // another buffer in the middle of a run
  t.is(tx.trySend(views, rx.port, '127.0.0.1'), views.length)
  // Small Buffers from Node's pool lie one after another in its slab.
  const pooled = numberedPayloads(64, 64, 1000).map((b) => {
    const copy = Buffer.allocUnsafe(64)
    b.copy(copy)
    return copy
  })
  t.is(tx.trySend(pooled, rx.port, '127.0.0.1'), 64)
  const got = await rx.waitFor(views.length + 64)
  t.is(got.length, views.length + 64)
  t.true(got.slice(0, views.length).every((m, i) => m.data.equals(datagrams[i]!)), 'the packed views, byte for byte')
  t.deepEqual(got.slice(views.length).map((m) => sequenceOf(m.data)), Array.from({ length: 64 }, (_, i) => 1000 + i))
  tx.close()
  rx.close()
})

test('trySendSegmented on a connected udp6 socket', async (t) => {
  const rx = await dgramReceiver('udp6')
  const tx = createSocket('udp6')
  tx.connect(rx.port, '::1')
  const { datagrams, packed } = packedPayloads(100)
  t.is(tx.trySendSegmented(packed, SEGMENT), 100)
  const got = await rx.waitFor(100)
  t.is(got.length, 100)
  t.true(got.every((m, i) => m.data.equals(datagrams[i]!)))
  tx.close()
  rx.close()
})

test('trySendSegmented refuses a bad segment size clearly and sends nothing', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  for (const size of [0, 70000, 1.5]) {
    const e = t.throws(() => tx.trySendSegmented(Buffer.alloc(10), size, rx.port, '127.0.0.1'), { instanceOf: RangeError }) as RangeError & { code: string }
    t.is(e.code, 'ERR_OUT_OF_RANGE')
  }
  t.is((t.throws(() => tx.trySendSegmented(Buffer.alloc(10), '5' as unknown as number, rx.port, '127.0.0.1'), { instanceOf: TypeError }) as TypeError & { code: string }).code, 'ERR_INVALID_ARG_TYPE')
  await sleep(50)
  t.is(rx.received.length, 0)
  tx.close()
  rx.close()
})

for (const shape of ['messages', 'batch'] as const) {
  test(`GRO: coalesced receives are split back into the original datagrams (${shape})`, async (t) => {
    const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, receive: { maxDatagrams: 1024, maxSize: 2048 } })
    rx.bind(0, '127.0.0.1')
    const port = rx.address().port
    rx.setGro(true)
    const tx = createSocket('udp4')
    const { datagrams, packed } = packedPayloads(640, 33)
    const got: Buffer[] = []
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000)
      const check = (): void => {
        if (got.length >= datagrams.length) {
          clearTimeout(timer)
          resolve()
        }
      }
      if (shape === 'messages') {
        rx.on('messages', (list: Datagram[]) => {
          for (const d of list) got.push(d.data)
          check()
        })
      } else {
        const batch = createRecvBatch(1024, 2048)
        rx.onBatch(batch, (b) => {
          for (let i = 0; i < b.count; i++) got.push(Buffer.from(b.datagram(i)))
          check()
        })
      }
    })
    await sleep(20)
    t.is(tx.trySendSegmented(packed, SEGMENT, port, '127.0.0.1'), datagrams.length)
    await done
    t.is(got.length, datagrams.length, 'one entry per datagram')
    t.true(got.every((d, i) => d.equals(datagrams[i]!)), 'byte for byte, in order')
    tx.close()
    rx.close()
  })
}
