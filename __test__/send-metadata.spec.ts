// Per-message send metadata (issue 13): a GSO segment size per message inside a mixed batch
// (`segmentSize`), with the plain-datagram fallback where GSO is unavailable, and the source
// address / interface a message leaves from (`sourceAddress`, `interfaceIndex`). Real peers:
// node:dgram receivers on loopback, and in namespaces of the test's own (NetnsLab, slow link).
import test, { type ExecutionContext } from 'ava'

import { createSocket, SendError } from '../lib'
import { planBatch } from '../lib/payload'
import { createSlowLink, dgramReceiver, hasCommand, isRoot, numberedPayloads, peerResult, sleep } from './helpers'
import { NetnsLab } from './netns'

/** `body(tag, len)` as source, shared with the scripts run in namespaces. */
const BODY_SOURCE = 'const b = Buffer.alloc(len); for (let j = 0; j < len; j++) b[j] = (tag * 31 + j * 7 + (j >> 8)) & 0xff; return b'
/** The bytes of message `tag`: recognisable at every offset, so a wrong cut shows. */
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const body = new Function('tag', 'len', BODY_SOURCE) as (tag: number, len: number) => Buffer

/** The datagrams a message of `len` bytes with `segmentSize` (0: none) must arrive as. */
function cut(data: Buffer, segmentSize: number): Buffer[] {
  if (segmentSize === 0 || data.length <= segmentSize) return [data]
  const out: Buffer[] = []
  for (let at = 0; at < data.length; at += segmentSize) out.push(data.subarray(at, at + segmentSize))
  return out
}

/** The batch: [plain 100, {3000, segment 1000}, {2500, segment 1000}, plain 100]. */
const MIXED = [
  { tag: 1, len: 100, segmentSize: 0 },
  { tag: 2, len: 3000, segmentSize: 1000 },
  { tag: 3, len: 2500, segmentSize: 1000 },
  { tag: 4, len: 100, segmentSize: 0 },
]
const MIXED_SIZES = [100, 1000, 1000, 1000, 1000, 1000, 500, 100]

function mixedBatch(port: number, address: string): Array<Buffer | { data: Buffer[]; segmentSize: number; port: number; address: string }> {
  return MIXED.map(({ tag, len, segmentSize }) => {
    const data = body(tag, len)
    if (segmentSize === 0) return data
    // Gathered from three pieces whose edges do not fall on segment boundaries.
    const a = Math.floor(len / 3) + 7
    const b = Math.floor((2 * len) / 3) + 13
    return { data: [data.subarray(0, a), data.subarray(a, b), data.subarray(b)], segmentSize, port, address }
  })
}

const mixedExpected = (): Buffer[] => MIXED.flatMap(({ tag, len, segmentSize }) => cut(body(tag, len), segmentSize))

for (const type of ['udp4', 'udp6'] as const) {
  const address = type === 'udp4' ? '127.0.0.1' : '::1'
  for (const via of ['trySend', 'send'] as const) {
    test(`${type} ${via}: per-message segment sizes arrive exactly (100, 1000×3, 1000×2 + 500, 100), in order`, async (t) => {
      const rx = await dgramReceiver(type)
      const tx = createSocket(type)
      t.teardown(() => { tx.close(); rx.close() })
      const batch = mixedBatch(rx.port, address)
      const sent = via === 'trySend' ? tx.trySend(batch, rx.port, address) : await tx.send(batch, rx.port, address)
      t.is(sent, 4, 'counted in messages')
      const got = await rx.waitFor(MIXED_SIZES.length)
      await sleep(30)
      t.deepEqual(rx.received.map((m) => m.data.length), MIXED_SIZES, 'no more, no fewer')
      t.true(got.every((m, i) => m.data.equals(mixedExpected()[i]!)), 'byte for byte')
      t.is(tx.gso, 'available', 'loopback takes UDP_SEGMENT')
    })
  }
}

test('segmented messages mixed with TOS marks, gathered pieces and a one-datagram segmentSize', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  t.teardown(() => { tx.close(); rx.close() })
  const big = body(9, 64 * 100) // exactly UDP_MAX_SEGMENTS datagrams
  const small = body(10, 50) // segmentSize larger than the message: one datagram
  const empty = Buffer.alloc(0)
  t.is(tx.trySend([
    { data: big, segmentSize: 100, ecn: 2 },
    { data: small, segmentSize: 1000 },
    { data: empty, segmentSize: 10 },
    body(11, 100),
  ], rx.port, '127.0.0.1'), 4)
  const want = [...cut(big, 100), small, empty, body(11, 100)]
  const got = await rx.waitFor(want.length)
  t.is(got.length, want.length)
  t.true(got.every((m, i) => m.data.equals(want[i]!)))
})

test('bad segmentSize / sourceAddress / interfaceIndex values are refused before anything is sent', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  t.teardown(() => { tx.close(); rx.close() })
  const port = rx.port
  const ok = { data: 'sent?', port, address: '127.0.0.1' }
  const refuse = (message: object, code: string, kind: typeof RangeError | typeof TypeError): void => {
    const e = t.throws(() => tx.trySend([ok, message]), { instanceOf: kind }) as Error & { code: string }
    t.is(e.code, code, e.message)
  }
  for (const segmentSize of [0, -1, 65536, 1.5, Number.NaN]) {
    refuse({ data: 'x', port, segmentSize }, 'ERR_OUT_OF_RANGE', RangeError)
  }
  refuse({ data: 'x', port, segmentSize: '10' }, 'ERR_OUT_OF_RANGE', RangeError)
  // 65 datagrams: over UDP_MAX_SEGMENTS.
  refuse({ data: Buffer.alloc(6401), port, segmentSize: 100 }, 'ERR_OUT_OF_RANGE', RangeError)
  // More than one IPv4 packet's worth in one GSO buffer.
  refuse({ data: Buffer.alloc(65508), port, segmentSize: 65000 }, 'ERR_OUT_OF_RANGE', RangeError)
  refuse({ data: 'x', port, sourceAddress: 'localhost' }, 'ERR_INVALID_ARG_VALUE', TypeError)
  refuse({ data: 'x', port, sourceAddress: 7 }, 'ERR_INVALID_ARG_TYPE', TypeError)
  refuse({ data: 'x', port, interfaceIndex: -1 }, 'ERR_OUT_OF_RANGE', RangeError)
  refuse({ data: 'x', port, interfaceIndex: 2 ** 32 }, 'ERR_OUT_OF_RANGE', RangeError)
  // The family must match the destination's.
  refuse({ data: 'x', port, sourceAddress: '::1' }, 'ERR_INVALID_ARG_TYPE', TypeError)
  await t.throwsAsync(tx.send([ok, { data: 'x', port, segmentSize: 0 }]), { code: 'ERR_OUT_OF_RANGE' })
  const tx6 = createSocket('udp6')
  t.teardown(() => tx6.close())
  const e = t.throws(() => tx6.trySend([{ data: 'x', port: 9, address: '::1', sourceAddress: '127.0.0.1' }])) as Error
  t.regex(e.message, /source address 127\.0\.0\.1 is IPv4 but its destination is IPv6/)
  await sleep(50)
  t.is(rx.received.length, 0, 'nothing of a refused batch went out')
})

test('a plain batch plans no send metadata at all (the plain path stays as it was)', (t) => {
  const plan = planBatch([Buffer.alloc(10), { data: 'x', port: 9 }, { data: ['a', 'b'], ecn: 1 }], 9, '127.0.0.1', '127.0.0.1')
  t.is(plan.segmentSizes, null)
  t.is(plan.sourceAddresses, null)
  t.is(plan.interfaceIndexes, null)
  const withSome = planBatch([Buffer.alloc(10), { data: 'x', segmentSize: 4 }, { data: 'y', interfaceIndex: 1 }], 9, '127.0.0.1', '127.0.0.1')
  t.deepEqual([...withSome.segmentSizes!], [0, 4, 0])
  t.is(withSome.sourceAddresses, null, 'only what some message uses')
  t.deepEqual([...withSome.interfaceIndexes!], [0, 0, 1])
})

test('the source address per message: 127.0.0.1 / 127.0.0.2 / 127.0.0.3 from a socket on 0.0.0.0', async (t) => {
  const rx = await dgramReceiver()
  const tx = createSocket('udp4')
  t.teardown(() => { tx.close(); rx.close() })
  tx.bind(0, '0.0.0.0')
  const sources = ['127.0.0.2', '127.0.0.1', '127.0.0.2', '127.0.0.2', undefined, '127.0.0.3']
  const batch = sources.map((sourceAddress, i) => ({ data: body(i, 40), sourceAddress }))
  // A segmented message from a source of its own: all its datagrams carry it.
  batch.push({ data: body(6, 120), sourceAddress: '127.0.0.3', segmentSize: 40 } as (typeof batch)[number])
  t.is(await tx.send(batch, rx.port, '127.0.0.1'), 7)
  const got = await rx.waitFor(9)
  t.deepEqual(got.map((m) => m.address), ['127.0.0.2', '127.0.0.1', '127.0.0.2', '127.0.0.2', '127.0.0.1', '127.0.0.3', '127.0.0.3', '127.0.0.3', '127.0.0.3'])
  t.true(got.slice(0, 6).every((m, i) => m.data.equals(body(i, 40))))
  t.true(Buffer.concat(got.slice(6).map((m) => m.data)).equals(body(6, 120)))
})

// ---- namespaces: a link whose MTU refuses GSO, two addresses on one interface, two interfaces

// A GSO segment larger than the path MTU is refused (EINVAL) for that destination: the
// fallback path. (A device without checksum offload no longer refuses GSO since Linux 6.11,
// which checksums in software, and no kernel this runs on lacks UDP_SEGMENT altogether: the
// socket-wide "unavailable" path is covered by the core's tests of `SendPlan::send`.)
const canLab = isRoot() && hasCommand('ip')
type Body = (t: ExecutionContext) => Promise<void>
/** Serial, or skipped with the reason in its title where namespaces cannot be made. */
const lab = (title: string, body: Body): void => {
  if (canLab) test.serial(title, body)
  else test.serial.skip(`${title} [skipped: needs root and ip for network namespaces]`, body)
}

/** Receiver run in a namespace: `count` datagrams in, one JSON line out (size, sender, base64). */
const RECEIVER = `
const dgram = require('node:dgram')
const [type, port, count, timeoutMs] = process.argv.slice(1)
const socket = dgram.createSocket({ type, recvBufferSize: 4 << 20 })
const got = []
const finish = () => { process.stdout.write(JSON.stringify(got) + '\\n'); socket.close() }
const timer = setTimeout(finish, Number(timeoutMs))
socket.on('message', (m, r) => {
  got.push({ n: m.length, from: r.address, b64: m.toString('base64') })
  if (got.length === Number(count)) { clearTimeout(timer); setTimeout(finish, 150) }
})
socket.bind(Number(port), type === 'udp4' ? '0.0.0.0' : '::', () => process.stdout.write('ready\\n'))
`

/**
 * Sender run in a namespace with the package: argv[1] is JSON { type, port, address, via,
 * batches: [[{ tag, len, segmentSize?, sourceAddress?, interfaceName? }]] }. Prints the counts
 * and the socket's GSO state before and after.
 */
const SENDER = `
const { createSocket } = require(process.env.PACKAGE_ROOT)
const { readFileSync } = require('node:fs')
function body(tag, len) { ${BODY_SOURCE} }
const spec = JSON.parse(process.argv[1])
;(async () => {
  const tx = createSocket(spec.type)
  tx.bind(0, spec.type === 'udp4' ? '0.0.0.0' : '::')
  const out = { gsoBefore: tx.gso, sent: [] }
  for (const batch of spec.batches) {
    const messages = batch.map((m) => {
      const message = { data: body(m.tag, m.len) }
      if (m.segmentSize) message.segmentSize = m.segmentSize
      if (m.sourceAddress) message.sourceAddress = m.sourceAddress
      if (m.interfaceName) message.interfaceIndex = Number(readFileSync('/sys/class/net/' + m.interfaceName + '/ifindex', 'utf8'))
      return message
    })
    try {
      out.sent.push(spec.via === 'send' ? await tx.send(messages, spec.port, spec.address) : tx.trySend(messages, spec.port, spec.address))
    } catch (e) {
      out.sent.push({ code: e.code, index: e.index, sent: e.sent, message: e.message })
    }
  }
  out.gsoAfter = tx.gso
  tx.close()
  process.stdout.write(JSON.stringify(out) + '\\n')
})()
`

interface Arrived { n: number; from: string; b64: string }
interface SenderOut { gsoBefore: string; gsoAfter: string; sent: unknown[] }
interface SpecMessage { tag: number; len: number; segmentSize?: number; sourceAddress?: string; interfaceName?: string }

/** Two namespaces `a` (sender) and `b` (receiver) joined by veth a0–b0, and a1–b1 if `second`. */
function makeLab(second = false, mtu?: number): NetnsLab {
  const l = new NetnsLab()
  l.namespace('a')
  l.namespace('b')
  l.veth({ ns: 'a', name: 'a0', addresses: ['10.243.1.1/24', '10.243.1.3/24', 'fd00:243:1::1/64', 'fd00:243:1::3/64'] },
    { ns: 'b', name: 'b0', addresses: ['10.243.1.2/24', 'fd00:243:1::2/64'] }, mtu === undefined ? {} : { mtu })
  if (second) {
    l.veth({ ns: 'a', name: 'a1', addresses: ['10.243.2.1/24'] }, { ns: 'b', name: 'b1', addresses: ['10.243.2.2/24'] })
  }
  return l
}

async function exchange(l: NetnsLab, type: 'udp4' | 'udp6', address: string, expected: number, via: 'trySend' | 'send', batches: SpecMessage[][], port = 43210): Promise<{ sender: SenderOut; arrived: Arrived[] }> {
  const rx = l.startNode('b', RECEIVER, [type, String(port), String(expected), '5000'])
  await rx.ready
  const tx = await l.runNode('a', SENDER, [JSON.stringify({ type, port, address, via, batches })])
  const done = await rx.done
  if (tx.json === undefined) throw new Error(`sender failed: ${tx.stderr}`)
  return { sender: tx.json as SenderOut, arrived: (done.json ?? []) as Arrived[] }
}

for (const type of ['udp4', 'udp6'] as const) {
  lab(`${type}: GSO refused for the route (segment > MTU): the segmented messages leave as the same datagrams, once each`, async (t) => {
    // MTU 1280: a 2000-byte segment does not fit one packet, so the kernel refuses the GSO
    // send (EINVAL) and each datagram goes out on its own (fragmented, as any large one is).
    const l = makeLab(false, 1280)
    t.teardown(() => l.destroy())
    const address = type === 'udp4' ? '10.243.1.2' : 'fd00:243:1::2'
    // The batch at twice the size: 100, 2000×3, 2000×2 + 1000, 100.
    const big = MIXED.map((m) => (m.segmentSize ? { ...m, len: m.len * 2, segmentSize: 2000 } : m))
    const batch = big.map(({ tag, len, segmentSize }) => ({ tag, len, segmentSize }))
    const sizes = big.flatMap(({ len, segmentSize }) => cut(Buffer.alloc(len), segmentSize).map((b) => b.length))
    const { sender, arrived } = await exchange(l, type, address, 2 * sizes.length, 'send', [batch, batch.map((m) => ({ ...m, tag: m.tag + 4 }))])
    t.deepEqual(sender.sent, [4, 4])
    t.is(sender.gsoBefore, 'available')
    t.is(sender.gsoAfter, 'available', 'a refusal for one route does not switch GSO off for the socket')
    t.deepEqual(arrived.map((a) => a.n), [...sizes, ...sizes], 'no more, no fewer, same boundaries')
    const want = [0, 4].flatMap((shift) => big.flatMap(({ tag, len, segmentSize }) => cut(body(tag + shift, len), segmentSize)))
    t.true(arrived.every((a, i) => Buffer.from(a.b64, 'base64').equals(want[i]!)), 'byte for byte, in order')
  })
}

lab('two addresses on one interface: each datagram leaves from the sourceAddress its message chose (udp4, udp6)', async (t) => {
  const l = makeLab()
  t.teardown(() => l.destroy())
  const pick = ['10.243.1.3', '10.243.1.1', '10.243.1.3', '10.243.1.3', '10.243.1.1', '10.243.1.1']
  const batch: SpecMessage[] = pick.map((sourceAddress, i) => ({ tag: i, len: 200, sourceAddress }))
  batch.push({ tag: 6, len: 600, segmentSize: 200, sourceAddress: '10.243.1.3' })
  const v4 = await exchange(l, 'udp4', '10.243.1.2', 9, 'trySend', [batch])
  t.deepEqual(v4.sender.sent, [7])
  t.deepEqual(v4.arrived.map((a) => a.from), [...pick, '10.243.1.3', '10.243.1.3', '10.243.1.3'])
  t.true(v4.arrived.slice(0, 6).every((a, i) => Buffer.from(a.b64, 'base64').equals(body(i, 200))))
  const pick6 = ['fd00:243:1::3', 'fd00:243:1::1', 'fd00:243:1::3', 'fd00:243:1::1']
  const v6 = await exchange(l, 'udp6', 'fd00:243:1::2', 4, 'send', [pick6.map((sourceAddress, i) => ({ tag: i, len: 300, sourceAddress }))], 43211)
  t.deepEqual(v6.sender.sent, [4])
  t.deepEqual(v6.arrived.map((a) => a.from), pick6)
  // IPv4-mapped destinations on a udp6 socket take IPv4 sources (IP_PKTINFO).
  const mapped = await exchange(l, 'udp6', '::ffff:10.243.1.2', 2, 'send', [[{ tag: 1, len: 10, sourceAddress: '10.243.1.3' }, { tag: 2, len: 10, sourceAddress: '::ffff:10.243.1.1' }]], 43212)
  t.deepEqual(mapped.sender.sent, [2])
  t.deepEqual(mapped.arrived.map((a) => a.from), ['::ffff:10.243.1.3', '::ffff:10.243.1.1'], 'as a dual-stack receiver names them')
})

lab('interfaceIndex picks the interface (and with it the route and source address)', async (t) => {
  const l = makeLab(true)
  t.teardown(() => l.destroy())
  // 10.243.9.9 lives on b's loopback; a reaches it over either link, a0 preferred.
  l.ip('-n', l.name('b'), 'addr', 'add', '10.243.9.9/32', 'dev', 'lo')
  l.route('a', '10.243.9.9/32', 'via', '10.243.1.2', 'metric', '10')
  l.route('a', '10.243.9.9/32', 'via', '10.243.2.2', 'metric', '20')
  const batch: SpecMessage[] = [
    { tag: 1, len: 50 },
    { tag: 2, len: 50, interfaceName: 'a1' },
    { tag: 3, len: 50, interfaceName: 'a0' },
    { tag: 4, len: 150, interfaceName: 'a1', segmentSize: 50 },
  ]
  const { sender, arrived } = await exchange(l, 'udp4', '10.243.9.9', 6, 'send', [batch])
  t.deepEqual(sender.sent, [4])
  t.deepEqual(arrived.map((a) => a.from), ['10.243.1.1', '10.243.2.1', '10.243.1.1', '10.243.2.1', '10.243.2.1', '10.243.2.1'])
})

// ---- partial sends: a full send buffer inside a segmented message sent without GSO ---------

const canSlow = canLab && hasCommand('tc', '-V')
const slow = (title: string, body: Body): void => {
  if (canSlow) test.serial(title, body)
  else test.serial.skip(`${title} [skipped: needs root, ip and tc for the slow link]`, body)
}

slow('without GSO, a full send buffer cuts a segmented message exactly: trySend reports segmentsSent, send() resumes inside it, nothing twice', async (t) => {
  const link = createSlowLink('40mbit', 13)
  t.teardown(() => link.destroy())
  // 1600-byte segments on a 1500-byte link: every GSO send is refused (EINVAL) and the
  // datagrams go out one by one, so the full send buffer can stop inside a message.
  const size = 1600
  const perMessage = 20
  const messages = 30
  const count = perMessage * messages
  const port = 40000 + ((process.pid + 13) % 20000)
  const peer = await link.startPeer(port, count, 20000)
  const tx = createSocket({ type: 'udp4', sendBufferSize: 1 })
  t.teardown(() => tx.close())
  tx.bind(0, link.localAddress)
  // Message k: numbered datagrams k*20 .. k*20+19, as one buffer.
  const datagrams = numberedPayloads(count, size)
  const batch = Array.from({ length: messages }, (_, k) => ({ data: Buffer.concat(datagrams.slice(k * perMessage, (k + 1) * perMessage)), segmentSize: size }))
  let error: SendError | undefined
  let first = 0
  try {
    first = tx.trySend(batch, port, link.peerAddress)
  } catch (e) {
    error = e as SendError
  }
  t.truthy(error, `a tiny send buffer must cut message 0 (trySend returned ${first})`)
  if (!error) return
  t.true(error instanceof SendError)
  t.is(error.code, 'EAGAIN')
  t.is(error.index, 0)
  t.is(error.sent, 0)
  t.true(error.segmentsSent > 0 && error.segmentsSent < perMessage, `segmentsSent ${error.segmentsSent}`)
  // The rest of message 0 from its first unsent datagram, then the other messages: send()
  // waits for room and, when the buffer cuts a message again, resumes inside it.
  const rest = [{ data: batch[0]!.data.subarray(error.segmentsSent * size), segmentSize: size }, ...batch.slice(1)]
  t.is(await tx.send(rest, port, link.peerAddress), messages)
  t.deepEqual(await peerResult(peer), { count, inOrder: true, duplicates: 0, corrupt: 0, extra: 0 })
})

test('a sourceAddress with a zone id is refused before anything is sent (interfaceIndex names the interface)', (t) => {
  const socket = createSocket('udp6')
  t.teardown(() => socket.close())
  t.throws(() => socket.trySend([{ data: 'x', sourceAddress: 'fe80::1%lo' }], 9, '::1'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
})
