// Per-datagram metadata (issue 13): ECN/TOS marks sent per message and read back, packet info
// (destination address, interface), kernel receive timestamps. Loopback only.
import test from 'ava'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'

import { createSocket, createRecvBatch, type Datagram, type UdpSocket } from '../lib'
import { sleep } from './helpers'

const loIndex = (): number => Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8').trim())

async function bound(type: 'udp4' | 'udp6', address: string): Promise<UdpSocket> {
  const s = createSocket(type)
  s.bind(0, address)
  await once(s, 'listening')
  return s
}

/** Collects `count` datagrams through the 'messages' event (bounded wait). */
function collect(rx: UdpSocket, count: number, timeoutMs = 3000): Promise<Datagram[]> {
  return new Promise((resolve, reject) => {
    const got: Datagram[] = []
    const timer = setTimeout(() => {
      rx.off('messages', onBatch)
      reject(new Error(`only ${got.length} of ${count} datagrams arrived`))
    }, timeoutMs)
    function onBatch(batch: Datagram[]): void {
      got.push(...batch)
      if (got.length >= count) {
        clearTimeout(timer)
        rx.off('messages', onBatch)
        resolve(got)
      }
    }
    rx.on('messages', onBatch)
  })
}

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n

test('ECN marks sent with ecn: 0/1/2/3 (and a DSCP via tos) are read back, per message', async (t) => {
  const rx = await bound('udp4', '127.0.0.1')
  rx.setReceiveMetadata({ ecn: true })
  const tx = createSocket('udp4')
  const port = rx.address().port
  const arriving = collect(rx, 6)
  const sent = tx.trySend([
    { data: 'a', port, address: '127.0.0.1', ecn: 1 },
    { data: 'b', port, address: '127.0.0.1', ecn: 2 },
    { data: 'c', port, address: '127.0.0.1', ecn: 3 },
    { data: 'd', port, address: '127.0.0.1' },
    { data: 'e', port, address: '127.0.0.1', tos: 0xb8, ecn: 1 },
    { data: 'f', port, address: '127.0.0.1', ecn: 0 },
  ])
  t.is(sent, 6)
  const got = await arriving
  t.deepEqual(got.map((d) => d.data.toString()), ['a', 'b', 'c', 'd', 'e', 'f'])
  t.deepEqual(got.map((d) => d.ecn), [1, 2, 3, 0, 1, 0])
  t.deepEqual(got.map((d) => d.tos), [1, 2, 3, 0, 0xb9, 0])
  t.true(got.every((d) => d.destination === undefined && d.timestamp === undefined), 'only what was asked for')
  tx.close()
  rx.close()
})

test('ECN on udp6: IPv6 destinations (IPV6_TCLASS) and IPv4-mapped ones (IP_TOS)', async (t) => {
  const rx = await bound('udp6', '::')
  rx.setReceiveMetadata({ ecn: true, packetInfo: true })
  const tx = createSocket('udp6')
  const port = rx.address().port
  const arriving = collect(rx, 2)
  t.is(tx.trySend([
    { data: 'six', port, address: '::1', ecn: 2 },
    { data: 'four', port, address: '::ffff:127.0.0.1', ecn: 1 },
  ]), 2)
  const got = (await arriving).sort((a, b) => a.size - b.size)
  t.is(got[0]!.data.toString(), 'six')
  t.is(got[0]!.ecn, 2)
  t.is(got[0]!.destination, '::1')
  t.is(got[1]!.ecn, 1)
  t.is(got[1]!.destination, '::ffff:127.0.0.1')
  tx.close()
  rx.close()
})

test('equal-sized messages with different ECN marks keep their marks (not merged into one GSO run)', async (t) => {
  const rx = await bound('udp4', '127.0.0.1')
  rx.setReceiveMetadata({ ecn: true })
  const tx = createSocket('udp4')
  const port = rx.address().port
  const marks = [1, 1, 1, 1, 2, 2, 3, 0, 0, 1] as const
  const arriving = collect(rx, marks.length)
  t.is(tx.trySend(marks.map((ecn, i) => ({ data: Buffer.alloc(100, i), port, address: '127.0.0.1', ecn }))), marks.length)
  const got = await arriving
  t.deepEqual(got.map((d) => d.data[0]), marks.map((_, i) => i))
  t.deepEqual(got.map((d) => d.ecn), [...marks])
  tx.close()
  rx.close()
})

test('bad ecn / tos values are refused before anything is sent', (t) => {
  const tx = createSocket('udp4')
  t.throws(() => tx.trySend([{ data: 'x', port: 9, ecn: 4 as 0 }]), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => tx.trySend([{ data: 'x', port: 9, tos: 256 }]), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => tx.trySend([{ data: 'x', port: 9, tos: 1.5 }]), { code: 'ERR_OUT_OF_RANGE' })
  const rx = createSocket('udp4')
  t.throws(() => rx.setReceiveMetadata({ ecn: 'yes' as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' })
  tx.close()
  rx.close()
})

test('packet info: the destination address (127.0.0.1 vs 127.0.0.2) and the loopback interface index', async (t) => {
  const rx = await bound('udp4', '0.0.0.0')
  rx.setReceiveMetadata({ packetInfo: true })
  const tx = createSocket('udp4')
  const port = rx.address().port
  const arriving = collect(rx, 2)
  t.is(tx.trySend([
    { data: 'one', port, address: '127.0.0.1' },
    { data: 'two', port, address: '127.0.0.2' },
  ]), 2)
  const got = await arriving
  t.deepEqual(got.map((d) => d.destination), ['127.0.0.1', '127.0.0.2'])
  const first = got[0]!.interfaceIndex
  t.true(typeof first === 'number' && first > 0)
  t.is(got[1]!.interfaceIndex, first, 'both on lo')
  t.is(got[0]!.ecn, undefined)
  // The kernel's own number for lo (node does not expose interface indexes).
  t.is(first, loIndex())
  tx.close()
  rx.close()
})

test('timestamps: bigint ns since the epoch, monotonic across a batch, within 1 s of Date.now()', async (t) => {
  const rx = await bound('udp4', '127.0.0.1')
  rx.setReceiveMetadata({ timestamps: true })
  const tx = createSocket('udp4')
  const port = rx.address().port
  const before = nowNs()
  const t0 = process.hrtime.bigint()
  const arriving = collect(rx, 20)
  for (let round = 0; round < 4; round++) {
    t.is(tx.trySend(Array.from({ length: 5 }, (_, i) => ({ data: `m${round}.${i}`, port, address: '127.0.0.1' }))), 5)
    await sleep(5)
  }
  const got = await arriving
  const elapsed = process.hrtime.bigint() - t0
  const after = nowNs()
  const stamps = got.map((d) => d.timestamp!)
  t.true(stamps.every((s) => typeof s === 'bigint'))
  for (let i = 1; i < stamps.length; i++) t.true(stamps[i]! >= stamps[i - 1]!, `monotonic at ${i}`)
  t.true(stamps[0]! > before - 1_000_000_000n && stamps[stamps.length - 1]! < after + 1_000_000_000n)
  t.true(stamps[stamps.length - 1]! - stamps[0]! <= elapsed + 1_000_000n, 'spread within the time taken')
  tx.close()
  rx.close()
})

test('RecvBatch arrays carry the metadata; turning it off stops it', async (t) => {
  const rx = await bound('udp4', '0.0.0.0')
  rx.setReceiveMetadata({ ecn: true, packetInfo: true, timestamps: true })
  const tx = createSocket('udp4')
  const port = rx.address().port
  t.is(tx.trySend([{ data: 'x', port, address: '127.0.0.2', ecn: 3 }]), 1)
  const batch = createRecvBatch(8, 64)
  let n = 0
  for (let i = 0; i < 100 && n === 0; i++) {
    n = rx.tryRecvBatch(batch)
    if (n === 0) await sleep(5)
  }
  t.is(n, 1)
  t.is(batch.tos[0]! & 3, 3)
  t.is(batch.flags[0]! & (8 | 16 | 32), 8 | 16 | 32)
  t.deepEqual([...batch.destinations.subarray(10, 16)], [0xff, 0xff, 127, 0, 0, 2])
  t.is(batch.interfaces[0], loIndex())
  t.true(batch.timestamps[0]! > 0n)
  const [viaTry] = await (async () => {
    rx.setReceiveMetadata({})
    t.is(tx.trySend([{ data: 'y', port, address: '127.0.0.1', ecn: 3 }]), 1)
    for (let i = 0; i < 100; i++) {
      const got = rx.tryRecv()
      if (got.length > 0) return got
      await sleep(5)
    }
    return []
  })()
  t.truthy(viaTry)
  t.is(viaTry!.ecn, undefined)
  t.is(viaTry!.timestamp, undefined)
  t.is(viaTry!.destination, undefined)
  tx.close()
  rx.close()
})

test('tryRecv gives the metadata fields too', async (t) => {
  const rx = await bound('udp4', '127.0.0.1')
  rx.setReceiveMetadata({ ecn: true, packetInfo: true, timestamps: true })
  const tx = createSocket('udp4')
  t.is(tx.trySend([{ data: 'z', port: rx.address().port, address: '127.0.0.1', ecn: 2 }]), 1)
  await sleep(20)
  const got = rx.tryRecv()
  t.is(got.length, 1)
  t.is(got[0]!.ecn, 2)
  t.is(got[0]!.destination, '127.0.0.1')
  tx.close()
  rx.close()
})
