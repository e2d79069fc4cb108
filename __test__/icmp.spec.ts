// ICMP and path-MTU errors on unconnected sockets (issue 13): error-queue entries surfaced as
// 'icmpError' events and by tryRecvErrors(), the retry that keeps a pending ICMP error from
// failing innocent datagrams, and the path MTU options.
//
// The path tests build their own network: three namespaces, sender —veth (MTU 1500)— router
// (forwarding) —veth (MTU 1280)— receiver, and run the sending side inside the sender
// namespace (`lab.startNode`); this test process stays in the root namespace. Argument checks
// and a loopback port-unreachable run here directly.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'

import { createSocket, type IcmpError } from '../lib'
import { NetnsLab } from './netns'
import { sleep } from './helpers'

/** Why the namespace tests cannot run here, or null if they can (checked once, at load). */
function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root: cannot create network namespaces'
  const probe = `smprobe${process.pid}`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' })
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' })
    return null
  } catch (error) {
    return `ip netns does not work here: ${String((error as Error).message).split('\n')[0]}`
  }
}
const unavailable = netnsUnavailable()
if (unavailable !== null) console.log(`icmp.spec: namespace tests skipped: ${unavailable}`)
const netnsTest = unavailable === null ? test.serial : test.skip

const LIVE_PORT = 4241
const DEAD_PORT = 4242

/** sender —1500— router —1280— receiver, routes both ways, no ICMP rate limits. */
function makeLab(): NetnsLab {
  const lab = new NetnsLab()
  for (const ns of ['s', 'r', 'd']) lab.namespace(ns)
  lab.veth(
    { ns: 's', name: 's0', addresses: ['10.241.1.1/24', 'fd00:241:1::1/64'] },
    { ns: 'r', name: 'r0', addresses: ['10.241.1.2/24', 'fd00:241:1::2/64'] },
    { mtu: 1500 },
  )
  lab.veth(
    { ns: 'r', name: 'r1', addresses: ['10.241.2.1/24', 'fd00:241:2::1/64'] },
    { ns: 'd', name: 'd0', addresses: ['10.241.2.2/24', 'fd00:241:2::2/64'] },
    { mtu: 1280 },
  )
  lab.forward('r')
  lab.route('s', '10.241.2.0/24', 'via', '10.241.1.2')
  lab.route('s', 'fd00:241:2::/64', 'via', 'fd00:241:1::2')
  lab.route('d', '10.241.1.0/24', 'via', '10.241.2.1')
  lab.route('d', 'fd00:241:1::/64', 'via', 'fd00:241:2::1')
  for (const ns of ['r', 'd']) {
    // Each test's ICMP messages must all be sent, not rate limited away.
    lab.exec(ns, 'sysctl', '-q', '-w', 'net.ipv4.icmp_ratelimit=0')
    lab.exec(ns, 'sysctl', '-q', '-w', 'net.ipv6.icmp.ratelimit=0')
  }
  return lab
}

/**
 * The receiver: udp4 and udp6 sockets on LIVE_PORT (nothing on DEAD_PORT) that record every
 * datagram's first byte and length until one of length 3 ("end") arrives on each, then print
 * them as JSON.
 */
const RECEIVER = `
const dgram = require('node:dgram')
const got = { udp4: [], udp6: [] }
let open = 2
for (const type of ['udp4', 'udp6']) {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' })
  s.on('message', (m) => {
    if (m.length === 3) {
      s.close()
      if (--open === 0) console.log(JSON.stringify(got))
      return
    }
    got[type].push([m[0], m.length])
  })
  s.bind(${LIVE_PORT}, type === 'udp6' ? '::' : '0.0.0.0', () => { if (--pending === 0) console.log('ready') })
}
let pending = 2
`

/** Shared helpers for sender scripts: `waitFor`, `plain` (an entry as JSON-able data). */
const PRELUDE = `
const { createSocket } = require(process.env.PACKAGE_ROOT)
const { once } = require('node:events')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function waitFor(check, what, ms = 3000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = check()
    if (value) return value
    await sleep(10)
  }
  throw new Error('timed out waiting for ' + what)
}
function caught(fn) {
  try { fn(); return null } catch (e) { return { code: e.code, index: e.index, sent: e.sent, syscall: e.syscall, message: e.message } }
}
`

async function runSender(lab: NetnsLab, script: string): Promise<Record<string, unknown>> {
  const result = await lab.runNode('s', `${PRELUDE}(async () => {${script}})().catch((e) => { console.error(e); process.exit(1) })`)
  if (result.code !== 0 || result.json === undefined) {
    throw new Error(`sender failed (${result.code}): ${result.stderr}\n${result.stdout}`)
  }
  return result.json as Record<string, unknown>
}

netnsTest('IPv4: a DF datagram too big for the next link yields "fragmentation needed" with the MTU, the router as offender; then getPathMtu() is 1280 and a local EMSGSIZE fails the send with its index', async (t) => {
  const lab = makeLab()
  t.teardown(() => lab.destroy())
  const result = await runSender(lab, `
    const sock = createSocket({ type: 'udp4', receiveErrors: true })
    sock.bind(0, '10.241.1.1')
    await once(sock, 'listening')
    sock.setDontFragment(true)
    const events = []
    // The listener path: this socket does not receive, the watcher waits for errors only.
    sock.on('icmpError', (e) => events.push(e))
    await sleep(20)
    const sentBig = await sock.send([Buffer.alloc(1400, 7)], ${LIVE_PORT}, '10.241.2.2')
    await waitFor(() => events.length > 0, "'icmpError'")
    const connected = createSocket('udp4')
    connected.connect(${LIVE_PORT}, '10.241.2.2')
    await once(connected, 'connect')
    const pathMtu = connected.getPathMtu()
    // Now the kernel knows the path MTU: a DF datagram above it is refused locally.
    const failure = caught(() => sock.trySend([Buffer.alloc(100, 1), Buffer.alloc(1400, 2), Buffer.alloc(100, 3)], ${LIVE_PORT}, '10.241.2.2'))
    await sleep(100)
    console.log(JSON.stringify({ sentBig, pathMtu, failure, events }))
    sock.close(); connected.close()
  `)
  const events = result.events as IcmpError[]
  t.is(result.sentBig, 1)
  const icmp = events.filter((e) => e.origin === 'icmp' && e.icmpCode === 4)
  t.is(icmp.length, 1, JSON.stringify(events))
  t.like(icmp[0], {
    code: 'EMSGSIZE', errno: -90, origin: 'icmp', type: 3, icmpCode: 4, mtu: 1280,
    offender: '10.241.1.2',
    destination: { address: '10.241.2.2', port: LIVE_PORT, family: 'IPv4' },
  })
  t.is(result.pathMtu, 1280)
  // The batch stopped at message 1 (message 0 went out), the kernel's own EMSGSIZE.
  t.like(result.failure as object, { code: 'EMSGSIZE', index: 1, sent: 1 })
  // Message 0 did go out: nothing listens on the receiver, whose "port unreachable" follows.
  const refused = events.filter((e) => e.origin === 'icmp' && e.icmpCode === 3)
  t.is(refused.length, 1, JSON.stringify(events))
  t.like(refused[0], { code: 'ECONNREFUSED', type: 3, offender: '10.241.2.2', destination: { address: '10.241.2.2', port: LIVE_PORT } })
  // ...and the local stack queued what it refused: origin 'local', the MTU it used. The
  // kernel records the socket's own (unconnected: 0) destination port for local errors.
  const local = events.filter((e) => e.origin === 'local')
  t.true(local.length >= 1, JSON.stringify(events))
  for (const e of local) {
    t.like(e, { code: 'EMSGSIZE', type: 0, icmpCode: 0, mtu: 1280, destination: { address: '10.241.2.2', port: 0, family: 'IPv4' } })
    t.is(e.offender, undefined)
  }
})

netnsTest('IPv6: a datagram too big for the next link yields "packet too big" (ICMPv6 2/0) with MTU 1280; getPathMtu() is 1280', async (t) => {
  const lab = makeLab()
  t.teardown(() => lab.destroy())
  const result = await runSender(lab, `
    const sock = createSocket({ type: 'udp6' })
    sock.setReceiveErrors(true)
    sock.bind(0, 'fd00:241:1::1')
    await once(sock, 'listening')
    sock.setDontFragment(true)
    const sentBig = await sock.send([Buffer.alloc(1400, 7)], ${LIVE_PORT}, 'fd00:241:2::2')
    // The polling path: nobody listens, the entry waits for tryRecvErrors().
    const entries = await waitFor(() => { const e = sock.tryRecvErrors(); return e.length > 0 ? e : null }, 'tryRecvErrors()')
    const connected = createSocket('udp6')
    connected.connect(${LIVE_PORT}, 'fd00:241:2::2')
    await once(connected, 'connect')
    console.log(JSON.stringify({ sentBig, entries, pathMtu: connected.getPathMtu(), again: sock.tryRecvErrors() }))
    sock.close(); connected.close()
  `)
  t.is(result.sentBig, 1)
  const entries = result.entries as IcmpError[]
  t.is(entries.length, 1, JSON.stringify(entries))
  t.like(entries[0], {
    code: 'EMSGSIZE', origin: 'icmp6', type: 2, icmpCode: 0, mtu: 1280,
    offender: 'fd00:241:1::2',
    destination: { address: 'fd00:241:2::2', port: LIVE_PORT, family: 'IPv6' },
  })
  t.is(result.pathMtu, 1280)
  t.deepEqual(result.again, [], 'an entry is returned once')
})

netnsTest('port unreachable on an unconnected udp4 socket: the pending error does not fail the next batch to a live peer (each datagram arrives once), and the entry is surfaced', async (t) => {
  const lab = makeLab()
  t.teardown(() => lab.destroy())
  const receiver = lab.startNode('d', RECEIVER)
  await receiver.ready
  const result = await runSender(lab, `
    const sock = createSocket({ type: 'udp4', receiveErrors: true })
    sock.bind(0, '10.241.1.1')
    await once(sock, 'listening')
    sock.trySend([Buffer.from('dead!')], ${DEAD_PORT}, '10.241.2.2')
    // Nobody reads the error queue meanwhile: the ICMP error is queued and left pending.
    await sleep(300)
    const batch = []
    for (let i = 0; i < 50; i++) batch.push(Buffer.alloc(20, i))
    const sent = await sock.send(batch, ${LIVE_PORT}, '10.241.2.2')
    const entries = sock.tryRecvErrors()
    await sock.send([Buffer.from('end')], ${LIVE_PORT}, '10.241.2.2')
    const v6 = createSocket('udp6')
    v6.bind(0, 'fd00:241:1::1')
    await once(v6, 'listening')
    v6.trySend([Buffer.from('end')], ${LIVE_PORT}, 'fd00:241:2::2')
    console.log(JSON.stringify({ sent, entries, overflow: sock.icmpErrorOverflow }))
    sock.close(); v6.close()
  `)
  t.is(result.sent, 50)
  const entries = result.entries as IcmpError[]
  t.is(entries.length, 1, JSON.stringify(entries))
  t.like(entries[0], {
    code: 'ECONNREFUSED', errno: -111, origin: 'icmp', type: 3, icmpCode: 3,
    offender: '10.241.2.2',
    destination: { address: '10.241.2.2', port: DEAD_PORT, family: 'IPv4' },
  })
  t.is(entries[0]?.mtu, undefined)
  t.is(result.overflow, 0)
  const received = (await receiver.done).json as { udp4: Array<[number, number]> }
  t.deepEqual(received.udp4, Array.from({ length: 50 }, (_, i) => [i, 20]), 'every datagram of the batch exactly once, in order')
})

netnsTest('port unreachable on udp6 (ICMPv6 1/4, and ICMP for an IPv4-mapped peer) while receiving: \'icmpError\' events, datagrams still delivered, nothing fails', async (t) => {
  const lab = makeLab()
  t.teardown(() => lab.destroy())
  const receiver = lab.startNode('d', RECEIVER)
  await receiver.ready
  const result = await runSender(lab, `
    const sock = createSocket({ type: 'udp6', receiveErrors: true })
    sock.bind(0, '::')
    await once(sock, 'listening')
    const events = []
    const messages = []
    sock.on('icmpError', (e) => events.push(e))
    sock.on('message', (m) => messages.push(m.toString()))
    const peer = createSocket('udp6')
    peer.bind(0, '::1')
    await once(peer, 'listening')
    sock.trySend([Buffer.from('dead6')], ${DEAD_PORT}, 'fd00:241:2::2')
    sock.trySend([Buffer.from('dead4')], ${DEAD_PORT}, '10.241.2.2')
    await waitFor(() => events.length >= 2, 'two icmpError events')
    // Pending errors again, then a datagram to receive and a batch to send.
    sock.trySend([Buffer.from('dead6')], ${DEAD_PORT}, 'fd00:241:2::2')
    await sleep(50)
    peer.trySend([Buffer.from('hello')], sock.address().port, '::1')
    const batch = []
    for (let i = 0; i < 10; i++) batch.push(Buffer.alloc(20, i))
    const sent = await sock.send(batch, ${LIVE_PORT}, 'fd00:241:2::2')
    await waitFor(() => messages.length >= 1 && events.length >= 3, 'the datagram and the third event')
    await sock.send([Buffer.from('end')], ${LIVE_PORT}, 'fd00:241:2::2')
    await sock.send([Buffer.from('end')], ${LIVE_PORT}, '10.241.2.2')
    console.log(JSON.stringify({ sent, events, messages, polled: sock.tryRecvErrors() }))
    sock.close(); peer.close()
  `)
  const events = result.events as IcmpError[]
  t.is(events.length, 3, JSON.stringify(events))
  const byDestination = (address: string): IcmpError[] => events.filter((e) => e.destination?.address === address)
  for (const e of byDestination('fd00:241:2::2')) {
    t.like(e, { code: 'ECONNREFUSED', origin: 'icmp6', type: 1, icmpCode: 4, offender: 'fd00:241:2::2', destination: { port: DEAD_PORT, family: 'IPv6' } })
  }
  t.is(byDestination('fd00:241:2::2').length, 2)
  // IPv4 traffic on a udp6 socket: addresses as the package gives received ones there.
  t.is(byDestination('::ffff:10.241.2.2').length, 1)
  t.like(byDestination('::ffff:10.241.2.2')[0], { code: 'ECONNREFUSED', origin: 'icmp', type: 3, icmpCode: 3, offender: '::ffff:10.241.2.2', destination: { port: DEAD_PORT, family: 'IPv6' } })
  t.deepEqual(result.messages, ['hello'])
  t.is(result.sent, 10)
  t.deepEqual(result.polled, [], 'events were delivered, not also kept')
  const received = (await receiver.done).json as { udp6: Array<[number, number]> }
  t.deepEqual(received.udp6, Array.from({ length: 10 }, (_, i) => [i, 20]))
})

// ---- loopback (root namespace) -----------------------------------------------------------------

test('loopback: an unconnected socket with receiveErrors gets the port-unreachable entry as an event, and without a listener through tryRecvErrors()', async (t) => {
  const dead = createSocket('udp4')
  dead.bind(0, '127.0.0.1')
  await once(dead, 'listening')
  const deadPort = dead.address().port
  dead.close()
  const sock = createSocket({ type: 'udp4', receiveErrors: true })
  t.teardown(() => sock.close())
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  const event = once(sock, 'icmpError') as Promise<[IcmpError]>
  await sleep(10) // the listener's watcher is armed on the next tick
  sock.trySend([Buffer.from('x')], deadPort, '127.0.0.1')
  const [entry] = await event
  t.like(entry, { code: 'ECONNREFUSED', errno: -111, origin: 'icmp', type: 3, icmpCode: 3, offender: '127.0.0.1', destination: { address: '127.0.0.1', port: deadPort, family: 'IPv4' } })
  t.deepEqual(sock.tryRecvErrors(), [])
  // No listener: entries are kept (and read by the socket's own sends) for tryRecvErrors().
  sock.removeAllListeners('icmpError')
  sock.trySend([Buffer.from('y')], deadPort, '127.0.0.1')
  await sleep(50)
  t.is(sock.trySend([Buffer.from('z')], deadPort, '127.0.0.1'), 1, 'the pending error fails no datagram')
  let entries: IcmpError[] = []
  for (let i = 0; i < 100 && entries.length < 2; i++) {
    entries = entries.concat(sock.tryRecvErrors())
    await sleep(10)
  }
  t.is(entries.length, 2)
  for (const e of entries) t.like(e, { code: 'ECONNREFUSED', destination: { port: deadPort } })
  t.is(sock.icmpErrorOverflow, 0)
})

test('loopback: without receiveErrors an unconnected socket keeps nothing (and nothing fails)', async (t) => {
  const sock = createSocket('udp4')
  t.teardown(() => sock.close())
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  const dead = createSocket('udp4')
  dead.bind(0, '127.0.0.1')
  await once(dead, 'listening')
  const deadPort = dead.address().port
  dead.close()
  t.is(sock.trySend([Buffer.from('x')], deadPort, '127.0.0.1'), 1)
  await sleep(50)
  t.is(sock.trySend([Buffer.from('x')], deadPort, '127.0.0.1'), 1)
  t.deepEqual(sock.tryRecvErrors(), [])
})

test('path MTU and error options validate their arguments with Node codes', async (t) => {
  const sock = createSocket('udp4')
  t.teardown(() => sock.close())
  t.throws(() => sock.setPathMtuDiscovery('sometimes' as never), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => sock.setPathMtuDiscovery(2 as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => sock.setDontFragment('yes' as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => sock.setReceiveErrors(1 as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => sock.tryRecvErrors(0), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => sock.tryRecvErrors(1.5), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => createSocket({ type: 'udp4', receiveErrors: 'yes' as never }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => sock.getPathMtu(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' })
  for (const mode of ['want', 'do', 'dont', 'probe'] as const) t.notThrows(() => sock.setPathMtuDiscovery(mode))
  sock.setDontFragment(true)
  sock.setDontFragment(false)
  const peer = createSocket('udp4')
  t.teardown(() => peer.close())
  peer.bind(0, '127.0.0.1')
  await once(peer, 'listening')
  sock.connect(peer.address().port, '127.0.0.1')
  await once(sock, 'connect')
  const loMtu = Number(execFileSync('cat', ['/sys/class/net/lo/mtu'], { encoding: 'utf8' }).trim())
  t.is(sock.getPathMtu(), Math.min(loMtu, 65535))
  const closed = createSocket('udp6')
  closed.close()
  t.throws(() => closed.setDontFragment(true), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => closed.tryRecvErrors(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
})

test('loopback: a receiving socket with errors queued neither spins nor stops receiving; entries nobody listens for wait for tryRecvErrors()', async (t) => {
  const dead = createSocket('udp4')
  dead.bind(0, '127.0.0.1')
  await once(dead, 'listening')
  const deadPort = dead.address().port
  dead.close()
  const sock = createSocket({ type: 'udp4', receiveErrors: true })
  t.teardown(() => sock.close())
  const got: string[] = []
  sock.on('message', (m) => got.push(m.toString()))
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  await sleep(10)
  for (let i = 0; i < 20; i++) sock.trySend([Buffer.from(`d${i}`)], deadPort, '127.0.0.1')
  // The error reports arrive while the socket waits for datagrams: measure the CPU it costs.
  const before = process.cpuUsage()
  await sleep(300)
  const used = process.cpuUsage(before)
  const cpuMs = (used.user + used.system) / 1000
  t.log(`CPU while 20 error reports arrived and 300 ms passed: ${cpuMs.toFixed(1)} ms`)
  t.true(cpuMs < 150, `the loop spun: ${cpuMs} ms of CPU in 300 ms`)
  const peer = createSocket('udp4')
  t.teardown(() => peer.close())
  peer.bind(0, '127.0.0.1')
  await once(peer, 'listening')
  peer.trySend([Buffer.from('a'), Buffer.from('b')], sock.address().port, '127.0.0.1')
  for (let i = 0; i < 100 && got.length < 2; i++) await sleep(10)
  t.deepEqual(got, ['a', 'b'])
  const entries = sock.tryRecvErrors(1024)
  t.is(entries.length, 20)
  t.true(entries.every((e) => e.code === 'ECONNREFUSED' && e.destination?.port === deadPort))
})

test('loopback: a connected receiving socket (no receiveErrors) reports port unreachable as an \'error\' and keeps receiving', async (t) => {
  const first = createSocket('udp4')
  first.bind(0, '127.0.0.1')
  await once(first, 'listening')
  const peerPort = first.address().port
  const sock = createSocket('udp4')
  t.teardown(() => sock.close())
  const got: string[] = []
  const errors: Array<{ code?: string }> = []
  sock.on('message', (m) => got.push(m.toString()))
  sock.on('error', (e) => errors.push(e as { code?: string }))
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  sock.connect(peerPort, '127.0.0.1')
  await once(sock, 'connect')
  first.close()
  await sleep(10)
  sock.trySend([Buffer.from('x')], undefined, undefined)
  for (let i = 0; i < 100 && errors.length < 1; i++) await sleep(10)
  t.is(errors.length, 1)
  t.is(errors[0]?.code, 'ECONNREFUSED')
  // The same port again, alive: its datagrams still reach the socket (its watcher is re-armed
  // after the error report).
  const again = createSocket('udp4')
  t.teardown(() => again.close())
  again.bind(peerPort, '127.0.0.1')
  await once(again, 'listening')
  again.trySend([Buffer.from('back')], sock.address().port, '127.0.0.1')
  for (let i = 0; i < 100 && got.length < 1; i++) await sleep(10)
  t.deepEqual(got, ['back'])
  // The queued entry behind the error was read, not thrown away.
  const kept = sock.tryRecvErrors()
  t.is(kept.length, 1)
  t.like(kept[0], { code: 'ECONNREFUSED', origin: 'icmp', destination: { port: peerPort } })
})

test('loopback: ICMP errors that find the receive buffer full (no queue entry, only the pending error) are each surfaced once; no send is failed by them; no spinning', async (t) => {
  // Only an 'icmpError' listener: datagrams are not read, so the (smallest) receive buffer fills
  // and the kernel has no room to queue the error entries; it still sets the pending error,
  // which would fail the next send and keep poll reporting POLLERR.
  const sock = createSocket({ type: 'udp4', receiveErrors: true, recvBufferSize: 1 })
  t.teardown(() => sock.close())
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  const flood = createSocket('udp4')
  t.teardown(() => flood.close())
  flood.bind(0, '127.0.0.1')
  for (let i = 0; i < 200; i++) flood.trySend([Buffer.alloc(100)], sock.address().port, '127.0.0.1')
  const errors: Array<{ code: string; origin: string }> = []
  sock.on('icmpError', (e) => errors.push({ code: e.code, origin: e.origin }))
  const dead = createSocket('udp4')
  dead.bind(0, '127.0.0.1')
  const deadPort = dead.address().port
  dead.close()
  await sleep(10)
  // Each send after the first meets the pending error of the one before: none may throw.
  for (let i = 0; i < 3; i++) t.is(sock.trySend([Buffer.from(`to nobody ${i}`)], deadPort, '127.0.0.1'), 1)
  const before = process.cpuUsage()
  await sleep(300)
  const used = process.cpuUsage(before)
  const cpuMs = (used.user + used.system) / 1000
  t.log(`CPU in the 300 ms after the errors: ${cpuMs.toFixed(1)} ms; entries: ${JSON.stringify(errors)}`)
  t.true(cpuMs < 150, `the loop spun: ${cpuMs} ms of CPU in 300 ms`)
  t.is(errors.length, 3, 'one entry per ICMP error, none lost, none twice')
  t.true(errors.every((e) => e.code === 'ECONNREFUSED' && (e.origin === 'none' || e.origin === 'icmp')))
})
