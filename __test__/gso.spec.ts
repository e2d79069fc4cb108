// Generic Segmentation Offload on send (UDP_SEGMENT) and Generic Receive Offload (UDP_GRO).
import test from 'ava'

import { UdpSocket, createRecvBatch, ReceivedDatagram } from '../index'
import { dgramReceiver, numberedPayloads } from './helpers'

const SEGMENT = 1200

function packedPayloads(count: number, tail = 0) {
  const datagrams = numberedPayloads(count, SEGMENT)
  if (tail) datagrams.push(Buffer.alloc(tail, 0x5a))
  return { datagrams, packed: Buffer.concat(datagrams) }
}

test('trySendSegmented: equal-sized datagrams leave as GSO sends and arrive separately, in order', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  t.is(tx.gso, 'unknown')
  const { datagrams, packed } = packedPayloads(300, 17)
  t.is(tx.trySendSegmented(packed, SEGMENT, rx.port, '127.0.0.1'), 301)
  t.is(tx.gso, 'available', 'loopback takes UDP_SEGMENT')
  const got = await rx.waitFor(301)
  t.is(got.length, 301)
  t.true(got.every((m, i) => m.data.equals(datagrams[i])), 'byte for byte, in order, tail included')
  tx.close()
  rx.close()
})

test('trySendSegmented reports a bad segment size clearly and sends nothing', async (t) => {
  const rx = await dgramReceiver()
  const tx = new UdpSocket('udp4')
  t.throws(() => tx.trySendSegmented(Buffer.alloc(10), 0, rx.port, '127.0.0.1'), { instanceOf: RangeError })
  t.throws(() => tx.trySendSegmented(Buffer.alloc(10), 70000, rx.port, '127.0.0.1'), { instanceOf: RangeError })
  await new Promise((r) => setTimeout(r, 50))
  t.is(rx.received.length, 0)
  tx.close()
  rx.close()
})

test('GRO: coalesced receives are split back into the original datagrams (both shapes)', async (t) => {
  for (const shape of ['messages', 'batch'] as const) {
    const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
    const { port } = rx.bind(0, '127.0.0.1')
    rx.setGro(true)
    const tx = new UdpSocket('udp4')
    const { datagrams, packed } = packedPayloads(640, 33)
    const got: Buffer[] = []
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000)
      const check = () => {
        if (got.length >= datagrams.length) {
          clearTimeout(timer)
          resolve()
        }
      }
      if (shape === 'messages') {
        rx.onMessages((list: ReceivedDatagram[]) => {
          for (const d of list) got.push(d.data)
          check()
        })
      } else {
        const batch = createRecvBatch(1024, 2048)
        rx.onBatch(batch, (b) => {
          for (let i = 0; i < b.count; i++) got.push(Buffer.from(b.data.subarray(b.offsets[i], b.offsets[i] + b.lengths[i])))
          check()
        })
      }
    })
    t.is(tx.trySendSegmented(packed, SEGMENT, port, '127.0.0.1'), datagrams.length)
    await done
    t.is(got.length, datagrams.length, `${shape}: one entry per datagram`)
    t.true(got.every((d, i) => d.equals(datagrams[i])), `${shape}: byte for byte, in order`)
    tx.close()
    rx.close()
  }
})
