// sendmmsg/dgram as a drop-in for node:dgram, checked against real node:dgram peers on loopback.
import test from 'ava'
import * as nodeDgram from 'node:dgram'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

import dgram, { createSocket, Socket } from '../lib/dgram'

const TIMEOUT_MS = 5000

/** A node:dgram receiver collecting `count` datagrams (bounded by a timeout). */
async function receiver(type: 'udp4' | 'udp6' = 'udp4', address = type === 'udp4' ? '127.0.0.1' : '::1') {
  const socket = nodeDgram.createSocket(type)
  const got: Array<{ msg: Buffer; rinfo: nodeDgram.RemoteInfo }> = []
  const waiters: Array<() => void> = []
  socket.on('message', (msg, rinfo) => {
    got.push({ msg, rinfo })
    for (const w of waiters.splice(0)) w()
  })
  await new Promise<void>((resolve) => socket.bind(0, address, resolve))
  const port = socket.address().port
  const take = (count: number) => new Promise<typeof got>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${count} datagrams`)), TIMEOUT_MS)
    const check = (): void => {
      if (got.length >= count) {
        clearTimeout(timer)
        resolve(got.splice(0, count))
      } else waiters.push(check)
    }
    check()
  })
  return { socket, port, take, close: () => socket.close() }
}

const sendP = (fn: (cb: (err: Error | null, bytes: number) => void) => void) =>
  new Promise<number>((resolve, reject) => fn((err, bytes) => (err ? reject(err) : resolve(bytes))))

test('exports: default object, createSocket, Socket, instanceof, subclass with own properties', (t) => {
  t.is(dgram.createSocket, createSocket)
  t.is(dgram.Socket, Socket)
  class Tagged extends Socket {
    tag = 'mine'
    handle = 'user data' // users put their own names on sockets; must not collide with internals
  }
  const s = new Tagged('udp4')
  t.true(s instanceof Socket)
  t.is(s.tag, 'mine')
  t.is(s.type, 'udp4')
  s.close()
  const plain = createSocket({ type: 'udp6' })
  t.true(plain instanceof Socket)
  plain.close()
})

test('every send overload arrives with the right bytes, in order, and callbacks get (null, bytes)', async (t) => {
  const peer = await receiver()
  const s = createSocket('udp4')
  const buf = Buffer.from('0123456789')
  const bytes = await Promise.all([
    sendP((cb) => s.send('str', peer.port, '127.0.0.1', cb)),
    sendP((cb) => s.send(buf, peer.port, cb)), // default host 127.0.0.1
    sendP((cb) => s.send(buf, 2, 3, peer.port, '127.0.0.1', cb)),
    sendP((cb) => s.send(buf, 4, 2, peer.port, cb)),
    sendP((cb) => s.send(new Uint16Array([0x4241]), peer.port, 'localhost', cb)),
    sendP((cb) => s.send(new DataView(new Uint8Array([100, 118]).buffer), peer.port, cb)),
    sendP((cb) => s.send(['ga', Buffer.from('th'), new Uint8Array([101, 114])], peer.port, cb)),
    sendP((cb) => s.send([], peer.port, cb)),
    sendP((cb) => s.sendto(buf, 0, 1, peer.port, '127.0.0.1', cb)),
  ])
  t.deepEqual(bytes, [3, 10, 3, 2, 2, 2, 6, 0, 1])
  const got = await peer.take(9)
  const texts = got.map((g) => g.msg.toString('latin1'))
  // 'localhost' is resolved first, so that one may come later; the rest keep call order.
  t.deepEqual(texts.filter((x) => x !== 'AB'), ['str', '0123456789', '234', '45', 'dv', 'gather', '', '0'])
  t.true(texts.includes('AB'))
  t.is(got[0]?.rinfo.port, s.address().port)
  s.close()
  peer.close()
})

test('many sends in one turn leave as one batch: all arrive, in order, each callback once', async (t) => {
  const peer = await receiver()
  const s = createSocket('udp4')
  const N = 200
  const results: number[] = []
  const done = new Promise<void>((resolve) => {
    for (let i = 0; i < N; i++) {
      s.send(`m${i}`, peer.port, '127.0.0.1', (err, bytes) => {
        t.is(err, null)
        results.push(i)
        t.is(bytes, `m${i}`.length)
        if (results.length === N) resolve()
      })
    }
  })
  t.is(s.getSendQueueCount(), 0, 'unbound: queued behind the implicit bind')
  await done
  t.deepEqual(results, Array.from({ length: N }, (_, i) => i))
  const got = await peer.take(N)
  t.deepEqual(got.map((g) => g.msg.toString()), Array.from({ length: N }, (_, i) => `m${i}`))
  s.close()
  peer.close()
})

test('the array is copied at call time; a lone send is not delayed past the turn', async (t) => {
  const peer = await receiver()
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const parts = [Buffer.from('a'), Buffer.from('b')]
  s.send(parts, peer.port)
  parts.push(Buffer.from('LATE'))
  parts[0] = Buffer.from('X')
  t.is(s.getSendQueueCount(), 1)
  t.is(s.getSendQueueSize(), 2)
  await Promise.resolve() // the microtask that flushes this turn's sends
  t.is(s.getSendQueueCount(), 0)
  const [one] = await peer.take(1)
  t.is(one?.msg.toString(), 'ab')
  s.close()
  peer.close()
})

test('implicit bind: listening is emitted, sends queued until then', async (t) => {
  const peer = await receiver()
  const s = createSocket('udp4')
  const events: string[] = []
  s.on('listening', () => events.push('listening'))
  s.on('close', () => events.push('close'))
  s.send('first', peer.port, (err) => {
    events.push(`sent ${err}`)
    s.close()
  })
  t.throws(() => s.address(), { code: 'EBADF', message: 'getsockname EBADF' })
  const [got] = await peer.take(1)
  t.is(got?.msg.toString(), 'first')
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(events, ['listening', 'sent null', 'close'])
  peer.close()
})

test('close in the same turn as send: queued close runs after the bind, the send is dropped (as dgram)', async (t) => {
  const events: string[] = []
  for (const [name, mod] of [['ours', { createSocket }], ['node', nodeDgram]] as const) {
    const s = mod.createSocket('udp4')
    s.on('listening', () => events.push(`${name} listening`))
    s.on('close', () => events.push(`${name} close`))
    s.send('x', 9, '127.0.0.1', () => events.push(`${name} callback`))
    s.close()
    await new Promise<void>((resolve) => s.on('close', () => resolve()))
  }
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(events, ['ours listening', 'ours close', 'node listening', 'node close'])
})

test('bind argument forms and errors', async (t) => {
  const a = createSocket('udp4')
  await new Promise<void>((resolve) => a.bind(0, '127.0.0.1', resolve))
  t.is(a.address().address, '127.0.0.1')
  t.throws(() => a.bind(), { code: 'ERR_SOCKET_ALREADY_BOUND', message: 'Socket is already bound' })
  const b = createSocket('udp4')
  await new Promise<void>((resolve) => b.bind({ port: 0, address: 'localhost' }, resolve))
  t.is(b.address().address, '127.0.0.1')
  const c = createSocket('udp4')
  await new Promise<void>((resolve) => c.bind(resolve))
  t.is(c.address().address, '0.0.0.0')
  const d = createSocket('udp4')
  const err = await new Promise<NodeJS.ErrnoException & { address?: string; port?: number }>((resolve) => {
    d.on('error', resolve)
    d.bind(a.address().port, '127.0.0.1', () => t.fail('must not listen'))
  })
  t.is(err.code, 'EADDRINUSE')
  t.is(err.syscall, 'bind')
  t.is(err.message, `bind EADDRINUSE 127.0.0.1:${a.address().port}`)
  t.is(err.port, a.address().port)
  for (const s of [a, b, c, d]) s.close()
})

test('reuseAddr: two sockets share a port', async (t) => {
  const a = createSocket({ type: 'udp4', reuseAddr: true })
  await new Promise<void>((resolve) => a.bind(0, '127.0.0.1', resolve))
  const b = createSocket({ type: 'udp4', reuseAddr: true })
  await new Promise<void>((resolve, reject) => {
    b.on('error', reject)
    b.bind(a.address().port, '127.0.0.1', resolve)
  })
  t.is(b.address().port, a.address().port)
  a.close()
  b.close()
})

test('receiving: one message per datagram, rinfo as dgram (dotted IPv4, size)', async (t) => {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const sender = nodeDgram.createSocket('udp4')
  const got: Array<[string, nodeDgram.RemoteInfo]> = []
  const all = new Promise<void>((resolve) => s.on('message', (msg, rinfo) => {
    t.true(Buffer.isBuffer(msg))
    got.push([msg.toString(), rinfo])
    if (got.length === 3) resolve()
  }))
  for (const m of ['x', 'yy', 'zzz']) sender.send(m, s.address().port, '127.0.0.1')
  await all
  t.deepEqual(got.map((g) => g[0]), ['x', 'yy', 'zzz'])
  await new Promise<void>((resolve) => sender.bind(0, resolve)).catch(() => undefined)
  for (const [msg, rinfo] of got) {
    t.is(rinfo.address, '127.0.0.1')
    t.is(rinfo.family, 'IPv4')
    t.is(rinfo.size, msg.length)
    t.is(typeof rinfo.port, 'number')
  }
  s.close()
  sender.close()
})

test('udp6: default host ::1 and receive', async (t) => {
  const peer = await receiver('udp6')
  const s = createSocket('udp6')
  await sendP((cb) => s.send('six', peer.port, cb))
  const [got] = await peer.take(1)
  t.is(got?.msg.toString(), 'six')
  t.is(got?.rinfo.address, '::1')
  s.close()
  peer.close()
})

test('connect / disconnect: events, sends to the peer, error codes', async (t) => {
  const peer = await receiver()
  const s = createSocket('udp4')
  t.throws(() => s.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED', message: 'Not connected' })
  t.throws(() => s.disconnect(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' })
  t.throws(() => s.connect(0), { code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError', message: 'Port should be > 0 and < 65536. Received type number (0).' })
  const order: string[] = []
  s.on('listening', () => order.push('listening'))
  await new Promise<void>((resolve) => s.connect(peer.port, '127.0.0.1', () => { order.push('connect'); resolve() }))
  t.deepEqual(order, ['listening', 'connect'])
  t.throws(() => s.connect(peer.port), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED', message: 'Already connected' })
  t.throws(() => s.send('x', 0, 1, peer.port), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' })
  t.deepEqual(s.remoteAddress(), { address: '127.0.0.1', family: 'IPv4', port: peer.port })
  t.is(await sendP((cb) => s.send('c1', cb)), 2)
  t.is(await sendP((cb) => s.send(Buffer.from('xc2x'), 1, 2, cb)), 2)
  const got = await peer.take(2)
  t.deepEqual(got.map((g) => g.msg.toString()), ['c1', 'c2'])
  s.disconnect()
  t.throws(() => s.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' })
  t.throws(() => s.send('x'), { code: 'ERR_SOCKET_BAD_PORT' })
  s.close()
  peer.close()
})

test('argument errors match node:dgram (code, name, message) and throw synchronously', (t) => {
  const ours = createSocket('udp4')
  const theirs = nodeDgram.createSocket('udp4')
  const cases: Array<(s: any) => unknown> = [
    (s) => s.send('x', 0),
    (s) => s.send('x', 'abc'),
    (s) => s.send(5, 1),
    (s) => s.send([5], 1),
    (s) => s.send('x', 1, 2),
    (s) => s.send(Buffer.alloc(2), 3, 1, 9, 'a'),
    (s) => s.send(Buffer.alloc(2), 1, 5, 9, 'a'),
    (s) => s.connect(70000),
    (s) => s.connect(9, 5),
    (s) => s.setTTL('a'),
    (s) => s.setTTL(5),
    (s) => s.setBroadcast(true),
    (s) => s.setMulticastTTL(1),
    (s) => s.setMulticastInterface(1),
    (s) => s.addMembership(),
    (s) => s.address(),
    (s) => s.getRecvBufferSize(),
    (s) => s.setSendBufferSize(4096),
    (s) => s.setRecvBufferSize(-1),
    (s) => s.sendto('x', undefined, 1, 1, 'a'),
  ]
  const shape = (fn: () => unknown) => {
    try {
      fn()
      return 'no error'
    } catch (e) {
      const err = e as Error & { code?: string; info?: unknown }
      return { name: err.name, code: err.code, message: err.message, info: err.info }
    }
  }
  for (const [i, c] of cases.entries()) t.deepEqual(shape(() => c(ours)), shape(() => c(theirs)), `case ${i}: ${c}`)
  const createCases: unknown[] = ['nope', { type: 'udp4', lookup: 1 }, { type: 'udp4', recvBufferSize: 'a' }, { type: 'udp4', sendBufferSize: -1 }, { type: 'udp4', signal: 1 }, null]
  for (const options of createCases) {
    t.deepEqual(shape(() => createSocket(options as never)), shape(() => nodeDgram.createSocket(options as never)), `createSocket(${JSON.stringify(options)})`)
  }
  ours.close()
  theirs.close()
  t.throws(() => ours.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING', message: 'Not running' })
  t.throws(() => ours.send('x', 1), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => ours.address(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
})

test('send errors go to the callback with address/port (EMSGSIZE); lookup errors without callback are error events', async (t) => {
  const s = createSocket('udp4')
  const err = await new Promise<NodeJS.ErrnoException & { address?: string; port?: number }>((resolve) => {
    s.send(Buffer.alloc(70000), 9, '127.0.0.1', (e) => resolve(e as never))
  })
  t.is(err.code, 'EMSGSIZE')
  t.is(err.syscall, 'send')
  t.is(err.address, '127.0.0.1')
  t.is(err.port, 9)
  t.is(err.message, 'send EMSGSIZE 127.0.0.1:9')
  const lookups: string[] = []
  const failing = createSocket({
    type: 'udp4',
    lookup: (host, family, cb) => {
      lookups.push(`${host}/${family}`)
      if (host === 'example.invalid') process.nextTick(cb, new Error('no such host'), '', 4)
      else process.nextTick(cb, null, host, 4)
    },
  })
  await new Promise<void>((resolve) => failing.bind(0, '127.0.0.1', resolve))
  const viaEvent = await new Promise<Error>((resolve) => {
    failing.once('error', resolve)
    failing.send('x', 9, 'example.invalid')
  })
  t.is(viaEvent.message, 'no such host')
  const viaCallback = await new Promise<Error | null>((resolve) => failing.send('x', 9, 'example.invalid', resolve))
  t.is(viaCallback?.message, 'no such host')
  t.deepEqual(lookups, ['127.0.0.1/4', 'example.invalid/4', 'example.invalid/4'])
  s.close()
  failing.close()
})

test('buffer sizes: ERR_SOCKET_BUFFER_SIZE SystemError before bind, options applied at bind', async (t) => {
  const s = createSocket({ type: 'udp4', recvBufferSize: 10000, sendBufferSize: 15000 })
  const e = t.throws(() => s.getSendBufferSize()) as Error & { code: string; info: Record<string, unknown>; errno: number; syscall: string }
  t.is(e.name, 'SystemError')
  t.is(e.code, 'ERR_SOCKET_BUFFER_SIZE')
  t.is(e.message, 'Could not get or set buffer size: uv_send_buffer_size returned EBADF (bad file descriptor)')
  t.deepEqual(e.info, { errno: -9, code: 'EBADF', message: 'bad file descriptor', syscall: 'uv_send_buffer_size' })
  t.is(e.errno, -9)
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  t.is(s.getRecvBufferSize(), 20000) // Linux doubles
  t.is(s.getSendBufferSize(), 30000)
  t.throws(() => s.setRecvBufferSize(2147483648), { code: 'ERR_SOCKET_BUFFER_SIZE', message: /uv_recv_buffer_size returned EINVAL/ })
  t.throws(() => s.setSendBufferSize(-1), { code: 'ERR_SOCKET_BAD_BUFFER_SIZE', name: 'TypeError' })
  s.setTTL(9)
  s.setMulticastTTL(2)
  s.setBroadcast(true)
  t.is(s.setMulticastLoopback(true), true)
  t.throws(() => s.setTTL(1000), { code: 'EINVAL', message: 'setTTL EINVAL' })
  // Source-specific multicast is implemented (dgram-multicast.spec.ts): leaving an unjoined group is EINVAL.
  t.throws(() => s.dropSourceSpecificMembership('127.0.0.1', '232.1.1.1'), { code: 'EINVAL', message: 'dropSourceSpecificMembership EINVAL' })
  s.close()
})

test('close: callback and close event after the current tick, in dgram order', async (t) => {
  const s = createSocket('udp4')
  const order: string[] = []
  s.on('close', () => order.push('event'))
  s.close(() => order.push('callback'))
  order.push('sync')
  await new Promise((r) => setImmediate(r))
  t.deepEqual(order, ['sync', 'event', 'callback'])
})

test('signal: aborting closes; an already-aborted signal closes at once', async (t) => {
  const controller = new AbortController()
  const s = createSocket({ type: 'udp4', signal: controller.signal })
  await new Promise<void>((resolve) => s.bind(0, resolve))
  const closed = new Promise<void>((resolve) => s.on('close', resolve))
  controller.abort()
  await closed
  t.throws(() => s.address(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  const pre = createSocket({ type: 'udp4', signal: AbortSignal.abort() })
  await new Promise<void>((resolve) => pre.on('close', resolve))
  t.throws(() => pre.bind(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
})

test('Symbol.asyncDispose closes, and twice is fine', async (t) => {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, resolve))
  await s[Symbol.asyncDispose]()
  t.throws(() => s.address(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  await t.notThrowsAsync(() => s[Symbol.asyncDispose]())
  const unbound = createSocket('udp4')
  await unbound[Symbol.asyncDispose]()
  await t.notThrowsAsync(() => unbound[Symbol.asyncDispose]())
})

test('unref: an unbound, a bound and a sending unref\'d socket do not keep the process alive; ref does', (t) => {
  const dist = join(__dirname, '..', 'dist', 'dgram.js')
  const run = (body: string) => spawnSync(process.execPath, ['-e', `const dgram = require(${JSON.stringify(dist)}); ${body}`], { timeout: 10000, encoding: 'utf8' })
  for (const body of [
    "dgram.createSocket('udp4').unref()",
    "dgram.createSocket('udp4').bind(0).unref()",
    "const s = dgram.createSocket('udp4'); s.on('message', () => {}); s.bind(0, () => s.unref())",
    "const s = dgram.createSocket('udp4').unref(); s.send('x', 9, '127.0.0.1')",
  ]) {
    const r = run(body)
    t.is(r.signal, null, `${body} exited by itself`)
    t.is(r.status, 0, r.stderr)
  }
  const kept = run("const s = dgram.createSocket('udp4'); s.bind(0, () => { s.unref(); s.ref(); setTimeout(() => { console.log('alive'); s.close() }, 200) })")
  t.is(kept.stdout.trim(), 'alive')
})

test('ESM and CommonJS entries give the same class', async (t) => {
  const cjs = require('../dist/dgram.js') as typeof import('../lib/dgram')
  const esm = (await import('../dist/dgram.mjs' as string)) as { default: typeof cjs; Socket: typeof Socket }
  t.is(esm.Socket, cjs.Socket)
  t.is(esm.default.createSocket, cjs.createSocket)
})

test('a send callback that throws: the error is uncaught as in dgram, and the later callbacks of its batch still run, in order', (t) => {
  const dist = join(__dirname, '..', 'dist', 'dgram.js')
  const script = `
    const dgram = require(${JSON.stringify(dist)})
    const rx = dgram.createSocket('udp4')
    const seen = []
    process.on('uncaughtException', (e) => seen.push('uncaught:' + e.message))
    rx.bind(0, '127.0.0.1', () => {
      const tx = dgram.createSocket('udp4')
      const port = rx.address().port
      for (let i = 0; i < 4; i++) {
        tx.send('m' + i, port, '127.0.0.1', (err, bytes) => {
          seen.push('cb' + i + ':' + err + ':' + bytes)
          if (i === 1) throw new Error('boom')
          if (i === 3) setTimeout(() => { console.log(JSON.stringify(seen)); tx.close(); rx.close() }, 20)
        })
      }
    })`
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 10000, encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout.trim()), ['cb0:null:2', 'cb1:null:2', 'uncaught:boom', 'cb2:null:2', 'cb3:null:2'])
})
