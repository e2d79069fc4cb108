// Attacker tests at the JS/native boundary: hostile arguments (getters, detach, resize, gc,
// re-entrancy, aliasing, concurrent writers, foreign descriptors) against the public API
// (lib/) and the raw binding (native.js). A node:dgram socket on 127.0.0.1 is the
// independent peer: every test asserts the exact bytes that arrive, their count and order.
// Anything that could crash the process runs in a child (fixtures/hostile.js) whose exit
// status and signal are checked.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import dgram from 'node:dgram'
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'

import { createRecvBatch, createSocket as realCreateSocket, recvmmsg, SendError, sendmmsg, trySendmmsg, UdpSocket } from '../lib/index'
import type * as Binding from '../binding'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const native: typeof Binding & ReturnType<typeof Binding.hotPaths> = require('../native.js')

const LOOPBACK = '127.0.0.1'

// AVA 6 stops a test at its first failed assertion: every socket is also closed here, so a
// failing test cannot keep the process alive.
const closers: Array<() => void> = []
test.after.always(() => {
  for (const close of closers.splice(0)) {
    try { close() } catch { /* already closed */ }
  }
})
const createSocket: typeof realCreateSocket = (...args) => {
  const u = realCreateSocket(...args)
  closers.push(() => { if (!u.closed) u.close() })
  return u
}

/** ES2024 resizable ArrayBuffer (Node 20 has it; the ES2022 lib typings do not). */
interface ResizableArrayBuffer extends ArrayBuffer { resize(n: number): void; readonly maxByteLength: number }
const RAB = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ResizableArrayBuffer
const MSG_DONTWAIT = 0x40
const MSG_MORE = 0x8000

interface Peer {
  sock: dgram.Socket
  port: number
  got: Buffer[]
  /** Source ports, per datagram. */
  from: number[]
  /** Resolves when `n` datagrams arrived or `ms` passed, with what arrived. */
  wait(n: number, ms?: number): Promise<Buffer[]>
  close(): void
}

function peer(): Promise<Peer> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4')
    closers.push(() => sock.close())
    const got: Buffer[] = []
    const from: number[] = []
    const waiters: Array<() => void> = []
    sock.on('message', (m, rinfo) => {
      got.push(Buffer.from(m))
      from.push(rinfo.port)
      for (const w of waiters.splice(0)) w()
    })
    sock.bind(0, LOOPBACK, () => {
      const wait = async (n: number, ms = 300): Promise<Buffer[]> => {
        const end = Date.now() + ms
        while (got.length < n && Date.now() < end) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, Math.max(1, end - Date.now()))
            waiters.push(() => { clearTimeout(t); r() })
          })
        }
        // A little longer, to see extra (duplicated) datagrams.
        await new Promise((r) => setTimeout(r, 30))
        return got.slice()
      }
      resolve({ sock, port: sock.address().port, got, from, wait, close: () => sock.close() })
    })
  })
}

function rawSocket(): Binding.NativeSocket {
  const s = new native.NativeSocket(4, false, false, -1, 0, 0)
  closers.push(() => s.close())
  s.bind(LOOPBACK, 0)
  return s
}

/** A real array whose element `index` is a getter that runs `effect` first. */
function trapped<T>(items: T[], index: number, effect: () => void): T[] {
  const a = items.slice()
  Object.defineProperty(a, index, {
    get() { effect(); return items[index] },
    enumerable: true,
    configurable: true,
  })
  return a
}

function detach(view: Uint8Array): void {
  structuredClone(view.buffer, { transfer: [view.buffer as ArrayBuffer] })
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

interface Child { status: number | null; signal: NodeJS.Signals | null; result: Record<string, any>; out: string }

function runFixture(scenario: string): Child {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'fixtures', 'hostile.js'), scenario], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    timeout: 9000,
  })
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '))
  return { status: r.status, signal: r.signal, result: line ? JSON.parse(line.slice(7)) : {}, out: `${r.stdout}\n${r.stderr}` }
}

// ---- 1. read-after-free on send ---------------------------------------------------------------

test('raw send: message 1 getter detaches message 0 -> ERR_INVALID_STATE index 0, nothing sent', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const b0 = new Uint8Array(64).fill(0x41)
  const b1 = new Uint8Array([0x42, 0x42])
  const views = trapped([b0, b1], 1, () => detach(b0))
  const e = t.throws(() => s.send(views, null, null, [LOOPBACK], [p.port], 0, 0)) as Error & { code: string; index: number; sent: number }
  t.is(e.code, 'ERR_INVALID_STATE')
  t.is(e.index, 0)
  t.is(e.sent, 0)
  t.deepEqual(await p.wait(1, 150), [])
  s.close(); p.close()
})

test('raw send: message 2 getter detaches message 1 -> message 0 sent, then ERR_INVALID_STATE index 1', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const m0 = new Uint8Array([1, 2, 3])
  const b1 = new Uint8Array(100).fill(0x51)
  const views = trapped([m0, b1, new Uint8Array([9])], 2, () => detach(b1))
  const e = t.throws(() => s.send(views, null, null, [LOOPBACK], [p.port], 0, 0)) as Error & { code: string; index: number; sent: number }
  t.is(e.code, 'ERR_INVALID_STATE')
  t.is(e.index, 1)
  t.is(e.sent, 1)
  t.deepEqual((await p.wait(2, 150)).map(hex), ['010203'])
  s.close(); p.close()
})

test('raw send: shrinking a resizable ArrayBuffer (fixed and length-tracking views) fails that message', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const rab1 = new RAB(32, { maxByteLength: 64 })
  const fixed = new Uint8Array(rab1, 0, 32).fill(0x61)
  const e1 = t.throws(() => s.send(trapped([fixed, new Uint8Array([1])], 1, () => rab1.resize(8)), null, null, [LOOPBACK], [p.port], 0, 0)) as Error & { code: string; index: number }
  t.is(e1.code, 'ERR_INVALID_STATE'); t.is(e1.index, 0)
  const rab2 = new RAB(32, { maxByteLength: 64 })
  const tracking = new Uint8Array(rab2).fill(0x62)
  const e2 = t.throws(() => s.send(trapped([tracking, new Uint8Array([2])], 1, () => rab2.resize(31)), null, null, [LOOPBACK], [p.port], 0, 0)) as Error & { code: string; index: number }
  t.is(e2.code, 'ERR_INVALID_STATE'); t.is(e2.index, 0)
  // Shrink to nothing then grow back: the view's memory is zeroed, same length: either the
  // zeroed bytes go out (same memory) or it fails; never foreign bytes.
  const rab3 = new RAB(8, { maxByteLength: 64 })
  const offset = new Uint8Array(rab3, 4, 4).fill(0x63)
  let r3: unknown
  try { r3 = s.send(trapped([offset, new Uint8Array([3])], 1, () => { rab3.resize(0); rab3.resize(8) }), null, null, [LOOPBACK], [p.port], 0, 0) } catch (e) { r3 = (e as { code: string }).code }
  // Growing a length-tracking view after it was read: only the planned length goes out.
  const rab4 = new RAB(4, { maxByteLength: 64 })
  const grow = new Uint8Array(rab4).fill(0x64)
  t.is(s.send(trapped([grow, new Uint8Array([4])], 1, () => { rab4.resize(40); grow.fill(0x65) }), null, null, [LOOPBACK], [p.port], 0, 0), 2)
  const got = (await p.wait(4, 200)).map(hex)
  if (r3 === 2) t.deepEqual(got, ['00000000', '03', '65656565', '04'])
  else { t.is(r3, 'ERR_INVALID_STATE'); t.deepEqual(got, ['65656565', '04']) }
  s.close(); p.close()
})

test('raw send: a Proxy as the views array (or as a view) is refused with TypeError, traps not trusted', (t) => {
  const s = rawSocket()
  let traps = 0
  const proxy = new Proxy([new Uint8Array([1])], { get(target, key) { traps++; return Reflect.get(target, key) } })
  t.throws(() => s.send(proxy, null, null, [LOOPBACK], [9], 0, 0), { instanceOf: TypeError })
  t.throws(() => s.send([new Proxy(new Uint8Array(4), {}) as Uint8Array], null, null, [LOOPBACK], [9], 0, 0), { instanceOf: TypeError })
  t.throws(() => native.trySendmmsg(s.fd(), proxy, null, null, [LOOPBACK], [9], 0), { instanceOf: TypeError })
  t.throws(() => native.recvmmsg(s.fd(), proxy, MSG_DONTWAIT, 0), { instanceOf: TypeError })
  t.is(traps, 0)
  s.close()
})

test('raw sendmmsg/trySendmmsg: detached mid-read -> short count / ERR_INVALID_STATE, never other bytes', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const fd = s.fd()
  const b1 = new Uint8Array(50).fill(0x71)
  const once = native.sendmmsg(fd, trapped([new Uint8Array([7]), b1, new Uint8Array([8])], 2, () => detach(b1)), null, null, [LOOPBACK], [p.port], 0)
  t.deepEqual(once, [1]) // stops before the changed message
  const b2 = new Uint8Array(50).fill(0x72)
  const e = t.throws(() => native.trySendmmsg(fd, trapped([new Uint8Array([9]), b2, new Uint8Array([10])], 2, () => detach(b2)), null, null, [LOOPBACK], [p.port], 0)) as Error & { code: string; index: number; sent: number }
  t.is(e.code, 'ERR_INVALID_STATE'); t.is(e.index, 1); t.is(e.sent, 1)
  // Detached before message 0: sendmmsg reports index 0.
  const b3 = new Uint8Array(4)
  const e3 = t.throws(() => native.sendmmsg(fd, trapped([b3, new Uint8Array([1])], 1, () => detach(b3)), null, null, [LOOPBACK], [p.port], 0)) as Error & { code: string; index: number }
  t.is(e3.code, 'ERR_INVALID_STATE'); t.is(e3.index, 0)
  t.deepEqual((await p.wait(3, 150)).map(hex), ['07', '09'])
  fs.closeSync(fd)
  s.close(); p.close()
})

test('raw sendSegmented: payload detached is refused (no getter can run, so pre-detached = empty)', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const b = new Uint8Array(10).fill(0x33)
  detach(b)
  t.is(s.sendSegmented(b, 5, LOOPBACK, p.port, 0), 0)
  t.deepEqual(await p.wait(1, 100), [])
  s.close(); p.close()
})

test('public trySend: a data getter detaching an earlier message never sends other memory', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const b1 = new Uint8Array(64).fill(0x81)
  let reads = 0
  const msgs = [new Uint8Array([1]), b1, { get data() { if (reads++ === 0) detach(b1); return new Uint8Array([3]) } }]
  let result: unknown
  try { result = u.trySend(msgs, p.port, LOOPBACK) } catch (e) { result = e }
  const got = (await p.wait(3, 150)).map(hex)
  // Never foreign bytes: message 1 is the 64 bytes, or absent/empty.
  for (const g of got) t.true(['01', '03', '', '81'.repeat(64)].includes(g), g)
  t.is(got[0], '01')
  u.close(); p.close()
  t.log('public trySend with message 1 detached by a later getter ->', result instanceof Error ? (result as { code?: string }).code : result, got)
})

// The public API reads user objects (planBatch) before the binding runs, so a view detached by
// a LATER getter in planBatch would reach the binding already empty. planBatch records each
// view's length when it takes it and hands those lengths to the binding, which then fails the
// message (ERR_INVALID_STATE, index 1) after sending the ones before it.
test('public trySend fails (not sends empty) a view detached by a later getter', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const b1 = new Uint8Array(64).fill(0x81)
  let reads = 0
  const msgs = [new Uint8Array([1]), b1, { get data() { if (reads++ === 0) detach(b1); return new Uint8Array([3]) } }]
  const e = t.throws(() => u.trySend(msgs, p.port, LOOPBACK)) as Error & { code: string; index: number }
  t.is(e?.code, 'ERR_INVALID_STATE')
  t.is(e?.index, 1)
  t.deepEqual((await p.wait(3, 150)).map(hex), ['01'])
  u.close(); p.close()
})

test('public trySend fails (not sends cut) a resizable buffer shrunk by a later getter', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const rab = new RAB(16, { maxByteLength: 32 })
  const v = new Uint8Array(rab).fill(0x91)
  const msgs = [v, { get data() { rab.resize(2); return new Uint8Array([3]) } }]
  let result: unknown
  try { result = u.trySend(msgs, p.port, LOOPBACK) } catch (e) { result = (e as { code: string }).code }
  const got = (await p.wait(2, 150)).map(hex)
  t.is(result, 'ERR_INVALID_STATE')
  t.deepEqual(got, [])
  u.close(); p.close()
})

test('child (--expose-gc): dropped references + gc() and detached-and-freed buffers on send', (t) => {
  const c = runFixture('gcSend')
  t.is(c.signal, null, c.out)
  t.is(c.status, 0, c.out)
  const r = c.result
  t.deepEqual(r.dropped, { ok: true, value: 2 })
  t.like(r.detached, { ok: false, code: 'ERR_INVALID_STATE', index: 0, sent: 0 })
  t.like(r.rawTry, { ok: false, code: 'ERR_INVALID_STATE', index: 1, sent: 1 })
  t.deepEqual(r.rawOnce, { ok: true, value: [1] })
  // Public API: message 1 was detached by message 2's getter after planBatch took it: message 0
  // goes out, message 1 fails, message 2 is not sent (resume from `sent`).
  t.like(r.publicDetached, { ok: false, code: 'ERR_INVALID_STATE', index: 1, sent: 1 })
  // Never the 0xEE garbage, never a freed buffer's bytes, never an empty stand-in; 4096xa1 is
  // the kept-alive buffer.
  t.deepEqual(r.got as string[], ['4096xa1', '0102', '0506', '09', '0b'])
})

// ---- 2. write-after-free on receive -----------------------------------------------------------

test('child (--expose-gc): recvmmsg into buffers detached/shrunk/freed during reading', (t) => {
  const c = runFixture('gcRecv')
  t.is(c.signal, null, c.out)
  t.is(c.status, 0, c.out)
  const r = c.result
  t.true(r.victimsIntact, 'memory reallocated after a detach was written to')
  t.true(r.raw.ok)
  for (const m of r.raw.value) t.true(m.length === 0 || m.length === 3000)
  t.like(r.raw.value[0], { length: 0, truncated: true })
  t.true(r.publicDetached.ok)
  t.like(r.publicDetached.value[0], { length: 0, truncated: true })
  t.is(r.shrunkLen, 16)
  t.like(r.shrunk.value[0], { length: 16, truncated: true })
  t.regex(r.shrunkBytes, /^(3[0-7]){16}$/)
})

test('recvmmsg (public and raw): the same/overlapping buffer twice is refused with TypeError', async (t) => {
  const s = rawSocket()
  const fd = s.fd()
  const b = new Uint8Array(32)
  t.throws(() => recvmmsg(fd, [b, b], MSG_DONTWAIT), { instanceOf: TypeError })
  t.throws(() => native.recvmmsg(fd, [b, b], MSG_DONTWAIT, 0), { instanceOf: TypeError })
  const ab = new ArrayBuffer(64)
  t.throws(() => native.recvmmsg(fd, [new Uint8Array(ab, 0, 20), new Uint8Array(ab, 19, 20)], MSG_DONTWAIT, 0), { instanceOf: TypeError })
  // Aliasing created by a getter (a fresh view on the same memory) is caught too.
  const first = new Uint8Array(ab, 0, 32)
  t.throws(() => native.recvmmsg(fd, trapped([first, new Uint8Array(1)], 1, () => undefined).map((v, i) => (i === 1 ? new Uint8Array(ab, 8, 8) : v)), MSG_DONTWAIT, 0), { instanceOf: TypeError })
  fs.closeSync(fd); s.close()
})

test('raw socketRecvSlab: a slab on a resizable buffer shrunk below its layout receives nothing out of bounds; the datagram stays queued', async (t) => {
  const s = rawSocket()
  const port = s.localAddress().port
  const tx = dgram.createSocket('udp4')
  await new Promise<void>((r) => tx.bind(0, LOOPBACK, () => r()))
  await new Promise<void>((r) => tx.send(Buffer.alloc(100, 0x41), port, LOOPBACK, () => r()))
  await new Promise((r) => setTimeout(r, 30))
  const total = native.NativeSocket.recvLayout(4, 128, false)[10]!
  const rab = new RAB(total, { maxByteLength: 2 * total })
  const slab = new Uint8Array(rab) // length-tracking
  rab.resize(total - 8)
  const guard = new Uint8Array(rab, 0, rab.byteLength)
  t.throws(() => native.socketRecvSlab(s.id, slab, 4, 128, false), { instanceOf: RangeError })
  t.true(guard.every((x) => x === 0), 'nothing written')
  rab.resize(total)
  t.is(native.socketRecvSlab(s.id, slab, 4, 128, false), 1, 'still queued, received once the slab fits')
  tx.close(); s.close()
})

// ---- 3. re-entrancy and huge arrays -----------------------------------------------------------

test('child: getters calling close()/fd/send/recv on the same socket, huge arrays -> no abort', (t) => {
  const c = runFixture('reenter')
  t.is(c.signal, null, c.out)
  t.is(c.status, 0, c.out)
  const r = c.result
  t.like(r.closeInGetter, { ok: false, code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.like(r.closeInAddress, { ok: false, code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.like(r.throwInPort, { ok: false, message: 'boom' })
  t.like(r.publicClose, { ok: false, code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.like(r.publicSendClose, { ok: false, code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  for (const k of ['hugeRaw', 'hugePublic', 'hugeSend', 'hugeSendmmsg', 'hugeStrings', 'hugePublicSend']) {
    t.like(r[k], { ok: false, name: 'RangeError' }, k)
  }
  // Datagrams: nested sends go out first (they ran inside the outer call's reading phase).
  t.deepEqual(r.got, ['06', '04', '05', '07', '08', '0a', '0b', '09', '10', '11'])
})

// ---- 4. getters read exactly once ------------------------------------------------------------

// Was a bug (lib/payload.ts planBatch read `message.data` twice: `message.data !== undefined ?
// message.data : ...`); fixed there in one line. A getter with effects must run once.
test('send()/trySend read every user getter exactly once (also across an async hostname lookup)', async (t) => {
  const p = await peer()
  const counts: Record<string, number> = {}
  const hit = (k: string) => { counts[k] = (counts[k] ?? 0) + 1 }
  const entry = (i: number) => ({
    get data() { hit(`data${i}`); return Buffer.from([i]) },
    get port() { hit(`port${i}`); return p.port },
    get address() { hit(`address${i}`); return i === 1 ? 'localhost' : LOOPBACK },
  })
  let lookups = 0
  let release: () => void = () => undefined
  const u = createSocket({ type: 'udp4', lookup: (_h, _o, cb) => { lookups++; release = () => cb(null, LOOPBACK, 4) } })
  const list = [entry(0), entry(1), entry(2)]
  Object.defineProperty(list, 1, { get() { hit('index1'); return entry(1) }, enumerable: true })
  const pending = u.send(list)
  await new Promise((r) => setTimeout(r, 20))
  release()
  t.is(await pending, 3)
  t.is(lookups, 1)
  t.deepEqual(counts, { data0: 1, port0: 1, address0: 1, index1: 1, data1: 1, port1: 1, address1: 1, data2: 1, port2: 1, address2: 1 })
  const c2: Record<string, number> = {}
  u.trySend([{ get data() { c2.data = (c2.data ?? 0) + 1; return 'x' } }], p.port, LOOPBACK)
  t.deepEqual(c2, { data: 1 })
  t.deepEqual((await p.wait(4)).map((b) => b.toString('hex')), ['00', '01', '02', '78'])
  u.close(); p.close()
})

test('raw send reads each array index exactly once', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const reads = [0, 0, 0]
  const items = [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]
  const views: Uint8Array[] = []
  items.forEach((v, i) => Object.defineProperty(views, i, { get() { reads[i]!++; return v }, enumerable: true }))
  const ports: number[] = []
  let portReads = 0
  Object.defineProperty(ports, 0, { get() { portReads++; return p.port }, enumerable: true })
  t.is(s.send(views, null, null, [LOOPBACK], ports, 0, 0), 3)
  t.deepEqual(reads, [1, 1, 1])
  t.is(portReads, 1)
  t.deepEqual((await p.wait(3)).map(hex), ['01', '02', '03'])
  s.close(); p.close()
})

// ---- 5. flags ---------------------------------------------------------------------------------

test('MSG_MORE and unknown flags -> RangeError everywhere, nothing sent', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const s = rawSocket()
  const fd = s.fd()
  const b = () => [Buffer.from('m')]
  for (const flags of [MSG_MORE, MSG_MORE | MSG_DONTWAIT, 0x1 /* MSG_OOB */, 0x10000000]) {
    t.throws(() => u.trySend(b(), p.port, LOOPBACK, flags), { instanceOf: RangeError }, `trySend ${flags}`)
    await t.throwsAsync(u.send(b(), p.port, LOOPBACK, flags), { instanceOf: RangeError }, `send ${flags}`)
    t.throws(() => u.trySendPacked(Buffer.from('ab'), [1, 1], p.port, LOOPBACK, flags), { instanceOf: RangeError })
    t.throws(() => u.trySendSegmented(Buffer.from('ab'), 1, p.port, LOOPBACK, flags), { instanceOf: RangeError })
    t.throws(() => sendmmsg(fd, [{ data: 'x', port: p.port, address: LOOPBACK }], flags), { instanceOf: RangeError })
    t.throws(() => trySendmmsg(fd, [{ data: 'x', port: p.port, address: LOOPBACK }], flags), { instanceOf: RangeError })
    t.throws(() => s.send(b(), null, null, [LOOPBACK], [p.port], 0, flags), { instanceOf: RangeError })
    t.throws(() => s.sendSegmented(Buffer.from('ab'), 1, LOOPBACK, p.port, flags), { instanceOf: RangeError })
    t.throws(() => native.sendmmsg(fd, b(), null, null, [LOOPBACK], [p.port], flags), { instanceOf: RangeError })
    t.throws(() => native.trySendmmsg(fd, b(), null, null, [LOOPBACK], [p.port], flags), { instanceOf: RangeError })
  }
  t.throws(() => native.recvmmsg(fd, [new Uint8Array(4)], 0x80000000, 0), { instanceOf: RangeError })
  t.deepEqual(await p.wait(1, 100), [])
  fs.closeSync(fd); u.close(); s.close(); p.close()
})

// ---- 6. frozen RecvBatch, bad entries while a send is pending ----------------------------------

test('a frozen or sealed RecvBatch is refused up front with TypeError', (t) => {
  const u = createSocket('udp4')
  u.bind(0, LOOPBACK)
  const frozen = Object.freeze(createRecvBatch(4, 64))
  const readOnlyCount = Object.defineProperty(createRecvBatch(4, 64), 'count', { writable: false })
  const accessorCount = Object.defineProperty(createRecvBatch(4, 64), 'count', { get: () => 0, set: () => undefined })
  for (const batch of [frozen, readOnlyCount, accessorCount]) {
    t.throws(() => u.onBatch(batch, () => undefined), { instanceOf: TypeError })
    t.throws(() => u.tryRecvBatch(batch), { instanceOf: TypeError })
  }
  // Sealed keeps `count` writable: accepted.
  const sealed = Object.seal(createRecvBatch(4, 64))
  t.is(u.tryRecvBatch(sealed), 0)
  const fake = { ...createRecvBatch(2, 8) }
  t.throws(() => u.tryRecvBatch(fake as never), { instanceOf: TypeError })
  u.close()
})

test('trySend with bad entries while a send() is pending -> TypeError, not 0; order kept', async (t) => {
  const p = await peer()
  let release: () => void = () => undefined
  const u = createSocket({ type: 'udp4', lookup: (_h, _o, cb) => { release = () => cb(null, LOOPBACK, 4) } })
  const pending = u.send([Buffer.from('first')], p.port, 'localhost')
  for (const bad of [[42], [null], [{ data: 42 }], [{ buffers: 42 }], [undefined], [{}], [Symbol('s')]]) {
    t.throws(() => u.trySend(bad as never, p.port, LOOPBACK), { instanceOf: TypeError }, String(bad[0]?.toString?.()))
  }
  release()
  t.is(await pending, 1)
  t.deepEqual((await p.wait(1)).map((b) => b.toString()), ['first'])
  u.close(); p.close()
})

// A send() waiting for a hostname lookup holds its place in the queue: a later trySend()/send()
// with an IP must not go out first ("while send()s are queued, trySend returns 0").
test('trySend after a send() still resolving its hostname does not overtake it', async (t) => {
  const p = await peer()
  let release: () => void = () => undefined
  const u = createSocket({ type: 'udp4', lookup: (_h, _o, cb) => { release = () => cb(null, LOOPBACK, 4) } })
  const pending = u.send([Buffer.from('first')], p.port, 'localhost')
  const n = u.trySend([Buffer.from('second')], p.port, LOOPBACK)
  release()
  await pending
  t.is(n, 0)
  t.deepEqual((await p.wait(2)).map((b) => b.toString()), ['first'])
  u.close(); p.close()
})

// ---- 7. trySendPacked with lengths rewritten concurrently by a worker --------------------------

test('trySendPacked: Uint32Array lengths on a SharedArrayBuffer rewritten by a worker', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const sab = new SharedArrayBuffer(4 * 9)
  const lengths = new Uint32Array(sab, 4, 8)
  const stop = new Int32Array(sab, 0, 1)
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads')
    const stop = new Int32Array(workerData, 0, 1)
    const lengths = new Uint32Array(workerData, 4, 8)
    let x = 1
    while (Atomics.load(stop, 0) === 0) {
      for (let i = 0; i < 8; i++) { x = (x * 1103515245 + 12345) >>> 0; lengths[i] = (x & 1) ? (x >>> 8) : (x >>> 26) }
    }
  `, { eval: true, workerData: sab })
  const packed = new Uint8Array(256).map((_, i) => i)
  let sent = 0
  let refused = 0
  const end = Date.now() + 1500
  while (Date.now() < end) {
    try { sent += u.trySendPacked(packed, lengths, p.port, LOOPBACK) } catch (e) {
      t.true(e instanceof RangeError, String(e))
      refused++
    }
    if (sent > 1000) break
  }
  Atomics.store(stop, 0, 1)
  await worker.terminate()
  const got = await p.wait(sent, 1000)
  t.log(`trySendPacked: ${sent} datagrams sent, ${refused} calls refused, ${got.length} received`)
  t.true(sent > 0)
  t.true(got.length <= sent)
  for (const d of got) {
    // A slice of `packed`: consecutive byte values inside 0..255.
    const start = d[0] ?? 0
    t.true(start + d.length <= 256, `datagram of ${d.length} from ${start} runs past the packed buffer`)
    if (!d.every((x, j) => x === start + j)) { t.fail(`not a slice: ${d.toString('hex')}`); break }
  }
  u.close(); p.close()
})

// ---- 8. foreign descriptors --------------------------------------------------------------------

function viaPython(kind: string): { status: number | null; out: string } {
  const script = `
import socket, subprocess, sys
kind = sys.argv[1]
try:
    if kind == 'udplite': s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)
    elif kind == 'icmp': s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    elif kind == 'tcp': s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    elif kind == 'unix': s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    elif kind == 'raw': s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    else: s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
except OSError as e:
    print('SKIP', e); sys.exit(0)
fd = s.fileno()
js = r'''
const native = require(process.cwd() + '/native.js')
const fd = Number(process.argv[1])
const out = []
try { native.NativeSocket.fromFd(fd).close(); out.push('raw:accepted') } catch (e) { out.push('raw:' + e.code) }
require('tsx/cjs')
const { UdpSocket } = require(process.cwd() + '/lib/index.ts')
try { UdpSocket.fromFd(fd, 'udp4').close(); out.push('public:accepted') } catch (e) { out.push('public:' + e.code) }
console.log('OUT ' + out.join(' '))
'''
r = subprocess.run([sys.argv[2], '-e', js, str(fd)], pass_fds=[fd], capture_output=True, text=True, timeout=8)
sys.stdout.write(r.stdout + r.stderr)
sys.exit(r.returncode)
`
  const r = spawnSync('python3', ['-c', script, kind, process.execPath], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 9500 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

for (const kind of ['udplite', 'icmp', 'tcp', 'unix', 'raw', 'udp']) {
  test(`fromFd on a ${kind} descriptor (made by python3) is ${kind === 'udp' ? 'accepted' : 'refused'}`, (t) => {
    const r = viaPython(kind)
    if (/^SKIP/m.test(r.out)) { t.log(`${kind}: ${r.out.trim()}`); t.pass(); return }
    t.is(r.status, 0, r.out)
    const line = /^OUT (.*)$/m.exec(r.out)?.[1] ?? r.out
    if (kind === 'udp') t.is(line, 'raw:accepted public:accepted')
    else t.notRegex(line, /accepted/, line)
  })
}

// ---- 9. a reused descriptor number ------------------------------------------------------------

test('closing the public fd and reusing its number: the socket keeps its own port and close() spares the new owner', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  u.bind(0, LOOPBACK)
  const myPort = u.address().port
  const dup = u.fd
  fs.closeSync(dup)
  // A new dgram socket; it likely gets the freed number.
  const other = dgram.createSocket('udp4')
  await new Promise<void>((r) => other.bind(0, LOOPBACK, () => r()))
  const otherFd = (other as unknown as { _handle: { fd: number } })._handle.fd
  const otherPort = other.address().port
  const otherGot: string[] = []
  other.on('message', (m) => otherGot.push(m.toString()))
  t.log(`public fd ${dup} closed; new dgram socket got fd ${otherFd}`)
  // The socket still sends from its own port.
  t.is(u.trySend([Buffer.from('a')], p.port, LOOPBACK), 1)
  const fd2 = u.fd
  t.not(fd2, otherFd, 'the socket handed out the new owner\'s descriptor as its own')
  // Closing the newly handed out duplicate must not touch the dgram socket either.
  fs.closeSync(fd2)
  t.is(u.trySend([Buffer.from('b')], p.port, LOOPBACK), 1)
  u.close()
  // The dgram socket still works.
  await new Promise<void>((r) => p.sock.send(Buffer.from('still-open'), otherPort, LOOPBACK, () => r()))
  const got = await p.wait(2)
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(got.map((b) => b.toString()), ['a', 'b'])
  t.deepEqual(p.from, [myPort, myPort])
  t.deepEqual(otherGot, ['still-open'])
  other.close(); p.close()
})

test('raw NativeSocket.fromFd on a dgram socket: a private duplicate, closing either side is independent', async (t) => {
  const p = await peer()
  const d = dgram.createSocket('udp4')
  await new Promise<void>((r) => d.bind(0, LOOPBACK, () => r()))
  const dfd = (d as unknown as { _handle: { fd: number } })._handle.fd
  const s = native.NativeSocket.fromFd(dfd)
  t.is(s.localAddress().port, d.address().port)
  s.close()
  await new Promise<void>((r) => d.send(Buffer.from('d'), p.port, LOOPBACK, () => r()))
  t.deepEqual((await p.wait(1)).map((b) => b.toString()), ['d'])
  d.close(); p.close()
})

// ---- 10. GRO ------------------------------------------------------------------------------------

async function groRun(k: number, useTryRecv: boolean): Promise<{ sent: number; delivered: Buffer[]; drops: number }> {
  const rx = new UdpSocket({ type: 'udp4', recvBufferSize: 8 << 20 })
  rx.bind(0, LOOPBACK)
  rx.setGro(true)
  const tx = createSocket('udp4')
  tx.bind(0, LOOPBACK)
  const SIZE = 1000
  const N = 200
  const payload = Buffer.alloc(SIZE * N)
  for (let i = 0; i < N; i++) payload.fill(i & 0xff, i * SIZE, (i + 1) * SIZE).writeUInt16BE(i, i * SIZE)
  let sent = 0
  const sendEnd = Date.now() + 2000
  while (sent < N && Date.now() < sendEnd) {
    const n = tx.trySendSegmented(payload.subarray(sent * SIZE), SIZE, rx.address().port, LOOPBACK)
    sent += n
    if (n === 0) await new Promise((r) => setTimeout(r, 1))
  }
  const delivered: Buffer[] = []
  const batch = createRecvBatch(k, 2048)
  const end = Date.now() + 2000
  while (delivered.length + rx.dropCount < sent && Date.now() < end) {
    if (useTryRecv) {
      const ds = rx.tryRecv(k, 2048)
      for (const d of ds) delivered.push(d.data)
      if (ds.length === 0) await new Promise((r) => setTimeout(r, 2))
    } else {
      const n = rx.tryRecvBatch(batch)
      t_assertCount(n, k)
      for (let i = 0; i < n; i++) delivered.push(Buffer.from(batch.datagram(i)))
      if (n === 0) await new Promise((r) => setTimeout(r, 2))
    }
  }
  const drops = rx.dropCount
  rx.close(); tx.close()
  return { sent, delivered, drops }
}
function t_assertCount(n: number, k: number): void {
  if (n > k) throw new Error(`tryRecvBatch returned ${n} > capacity ${k}`)
}

for (const k of [1, 2, 3, 8, 32, 1024]) {
  for (const useTryRecv of [false, true]) {
    test(`GRO: ${useTryRecv ? 'tryRecv' : 'tryRecvBatch'}(${k}) delivers every GSO segment exactly once, intact`, async (t) => {
      const { sent, delivered, drops } = await groRun(k, useTryRecv)
      t.is(delivered.length + drops, sent, `delivered ${delivered.length} + drops ${drops} != sent ${sent}`)
      const seen = new Set<number>()
      let last = -1
      for (const d of delivered) {
        t.is(d.length, 1000)
        const i = d.readUInt16BE(0)
        t.false(seen.has(i), `segment ${i} delivered twice`)
        seen.add(i)
        t.true(i > last, `segment ${i} after ${last}`)
        last = i
        t.true(d.subarray(2).every((x) => x === (i & 0xff)), `segment ${i} corrupted`)
      }
    })
  }
}

test('a RecvBatch whose memory was transferred away fails its receive clearly; a new batch works', async (t) => {
  const rx = realCreateSocket('udp4')
  rx.bind(0, '127.0.0.1')
  const tx = dgram.createSocket('udp4')
  const batch = createRecvBatch(8, 64)
  // Every array of a batch is a view of one block: transferring any one detaches them all.
  structuredClone(batch.lengths.buffer, { transfer: [batch.lengths.buffer as ArrayBuffer] })
  t.is(batch.data.byteLength, 0)
  await new Promise<void>((resolve) => tx.send('after', rx.address().port, '127.0.0.1', () => resolve()))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.throws(() => rx.tryRecvBatch(batch), { instanceOf: RangeError })
  const fresh = createRecvBatch(8, 64)
  t.is(rx.tryRecvBatch(fresh), 1, 'the datagram is still queued: nothing was lost')
  t.is(Buffer.from(fresh.data.subarray(0, fresh.lengths[0])).toString(), 'after')
  tx.close()
  rx.close()
})

test('one-datagram trySend: a Proxy batch and a getter element are read once, bytes as read', async (t) => {
  const rx = dgram.createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  await once(rx, 'listening')
  const got: string[] = []
  rx.on('message', (m) => got.push(m.toString()))
  const tx = realCreateSocket('udp4')
  let reads = 0
  const batch = new Proxy([Buffer.from('proxied')], {
    get(target, key, receiver) {
      if (key === '0') reads++
      return Reflect.get(target, key, receiver)
    },
  })
  t.is(tx.trySend(batch, rx.address().port, '127.0.0.1'), 1)
  t.is(reads, 1, 'the element is read once')
  // A getter that detaches a buffer and hands another: the one handed over is what is sent.
  const victim = new Uint8Array(Buffer.from('victim'))
  const swapped = [] as Uint8Array[]
  Object.defineProperty(swapped, 0, {
    get() {
      structuredClone(victim.buffer, { transfer: [victim.buffer as ArrayBuffer] })
      return Buffer.from('handed')
    },
  })
  t.is(tx.trySend(swapped, rx.address().port, '127.0.0.1'), 1)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.deepEqual(got, ['proxied', 'handed'])
  tx.close()
  rx.close()
})

test('raw socketSendDatagram / socketRecvSlab: unknown or closed socket ids, bad views and destination ids are errors, never a crash', async (t) => {
  const rx = dgram.createSocket('udp4')
  rx.bind(0, LOOPBACK)
  await once(rx, 'listening')
  const got: string[] = []
  rx.on('message', (m) => got.push(m.toString()))
  const s = new native.NativeSocket(4, false, false, -1, 0, 0)
  closers.push(() => s.close())
  const id = s.addDestination(LOOPBACK, rx.address().port)
  const view = Buffer.from('by-id')
  t.throws(() => native.socketSendDatagram(0xfffffff0, view, id, 0), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => native.socketSendDatagram(s.id, 'nope' as never, id, 0), { instanceOf: TypeError })
  t.throws(() => native.socketSendDatagram(s.id, view, id + 7, 0), { instanceOf: RangeError })
  t.throws(() => native.socketSendDatagram(s.id, view, id, 0x10000000), { instanceOf: RangeError }, 'flags outside the MSG_* bits allowed')
  t.throws(() => native.socketSendDatagram(s.id, view, 'x' as never), { instanceOf: Error }, 'a destination id that is not a number')
  t.throws(() => (native.socketSendDatagram as (...a: unknown[]) => number)(s.id, view), { instanceOf: Error }, 'no destination id')
  t.is(native.socketSendDatagram(s.id, view, id), 1, 'flags may be left out')
  const layout = native.NativeSocket.recvLayout(4, 64, false)
  t.throws(() => native.socketRecvSlab(s.id, new Uint8Array(8), 4, 64, false), { instanceOf: RangeError }, 'a slab too short')
  t.throws(() => native.socketRecvSlab(s.id, new Uint8Array(layout[10]!), 0, 64, false), { instanceOf: RangeError })
  t.is(native.socketRecvSlab(s.id, new Uint8Array(layout[10]!), 4, 64, false), 0, 'nothing queued')
  s.close()
  t.throws(() => native.socketSendDatagram(s.id, view, id, 0), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  t.throws(() => native.socketRecvSlab(s.id, new Uint8Array(layout[10]!), 4, 64, false), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.deepEqual(got, ['by-id'], 'exactly the one valid send arrived')
  rx.close()
})

test('raw recvLayout: bad sizes are RangeErrors with a code; the layout fits its total', (t) => {
  for (const [capacity, slot] of [[0, 64], [1025, 64], [4, 0], [4, 65536]] as const) {
    t.throws(() => native.NativeSocket.recvLayout(capacity, slot, true), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  }
  const offsets = native.NativeSocket.recvLayout(1024, 65535, true)
  t.is(offsets.length, 11)
  t.true(offsets.every((o, i) => o % 8 === 0 && (i === 0 || o >= offsets[i - 1]!)))
  t.true(offsets[10]! >= 1024 * 65535 + 1024 * (8 + 4 + 4 + 4 + 2 + 16 + 16 + 1 + 1))
})

// ---- the spans path (socketSendSpans): datagrams as (store, offset, length) -------------------

test('raw socketSendSpans: datagrams from shared and separate stores arrive exactly, in order', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const id = s.addDestination(LOOPBACK, p.port)
  const big = new Uint8Array(16).map((_, i) => 0x61 + i) // 'abcdefghijklmnop'
  const own = new Uint8Array([0x5a, 0x5a])
  const stores = [big.buffer, own.buffer, big.buffer] as ArrayBuffer[]
  // 'abc', 'ZZ', 'jkl', '' (an empty datagram), 'de'
  const spans = new Uint32Array([0, 0, 3, 1, 0, 2, 2, 9, 3, 2, 16, 0, 0, 3, 2])
  t.is(native.socketSendSpans(s.id, stores, false, spans, id, null, null, 0, 0), 5)
  t.deepEqual((await p.wait(5)).map((b) => b.toString()), ['abc', 'ZZ', 'jkl', '', 'de'])
  // From datagram 3 on: only '' and 'de' again.
  t.is(native.socketSendSpans(s.id, stores, false, spans, id, null, null, 3, 0), 5)
  t.deepEqual((await p.wait(7)).slice(5).map((b) => b.toString()), ['', 'de'])
  s.close(); p.close()
})

test('raw socketSendSpans: bad stores, spans and ids are errors before anything is sent; a store detached or shrunk fails its datagram', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const id = s.addDestination(LOOPBACK, p.port)
  const data = new Uint8Array([1, 2, 3, 4])
  const store = data.buffer as ArrayBuffer
  t.throws(() => native.socketSendSpans(s.id, [new Uint8Array(4) as never], false, new Uint32Array([0, 0, 1]), id, null, null, 0, 0), { instanceOf: TypeError }, 'a view is not a store')
  t.throws(() => native.socketSendSpans(s.id, [new SharedArrayBuffer(4) as never], false, new Uint32Array([0, 0, 1]), id, null, null, 0, 0), { instanceOf: TypeError }, 'a SharedArrayBuffer is refused')
  t.throws(() => native.socketSendSpans(s.id, [store], false, new Uint32Array([1, 0, 1]), id, null, null, 0, 0), { instanceOf: RangeError }, 'a store index past the list')
  t.throws(() => native.socketSendSpans(s.id, [store], false, new Uint32Array([0, 0]), id, null, null, 0, 0), { instanceOf: RangeError }, 'not three numbers per datagram')
  t.throws(() => native.socketSendSpans(s.id, [store], false, [0, 0, 1] as never, id, null, null, 0, 0), { instanceOf: TypeError }, 'spans must be a Uint32Array')
  t.throws(() => native.socketSendSpans(s.id, [store], false, new Uint32Array([0, 0, 1]), id + 9, null, null, 0, 0), { instanceOf: RangeError }, 'an unknown destination id')
  t.throws(() => native.socketSendSpans(s.id, [store], false, new Uint32Array([0, 0, 1]), id, null, null, 0, 0x8000), { instanceOf: RangeError }, 'MSG_MORE')
  t.throws(() => native.socketSendSpans(0xfffffff0, [store], false, new Uint32Array([0, 0, 1]), id, null, null, 0, 0), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  // A span past its store's end: datagram 0 goes, datagram 1 fails as changed (never sent short).
  const e = t.throws(() => native.socketSendSpans(s.id, [store], false, new Uint32Array([0, 0, 2, 0, 2, 3]), id, null, null, 0, 0)) as Error & { code: string; index: number; sent: number }
  t.is(e.code, 'ERR_INVALID_STATE')
  t.is(e.index, 1)
  t.is(e.sent, 1)
  // The stores array's getter detaches the store it names: read in phase 1, the detach is seen.
  const victim = new Uint8Array([9, 9, 9])
  const stores = trapped([victim.buffer as ArrayBuffer], 0, () => detach(victim))
  const d = t.throws(() => native.socketSendSpans(s.id, stores, false, new Uint32Array([0, 0, 3]), id, null, null, 0, 0)) as Error & { code: string; index: number }
  t.is(d.code, 'ERR_INVALID_STATE')
  t.is(d.index, 0)
  // A resizable store shrunk under its span.
  const rab = new RAB(8, { maxByteLength: 16 })
  new Uint8Array(rab).fill(7)
  rab.resize(2)
  t.throws(() => native.socketSendSpans(s.id, [rab], false, new Uint32Array([0, 0, 4]), id, null, null, 0, 0), { code: 'ERR_INVALID_STATE' })
  // Views as their own stores: offsets are within the view; an ArrayBuffer is refused there.
  t.throws(() => native.socketSendSpans(s.id, [store as never], true, new Uint32Array([0, 0, 1]), id, null, null, 0, 0), { instanceOf: TypeError }, 'an ArrayBuffer where views are expected')
  const sub = new Uint8Array([0x70, 0x71, 0x72, 0x73]).subarray(1, 3) // 'qr'
  t.is(native.socketSendSpans(s.id, [sub, data], true, new Uint32Array([0, 0, 2, 1, 3, 1, 0, 1, 1]), id, null, null, 0, 0), 3)
  const cut = t.throws(() => native.socketSendSpans(s.id, [sub], true, new Uint32Array([0, 1, 2]), id, null, null, 0, 0)) as Error & { code: string; index: number }
  t.is(cut.code, 'ERR_INVALID_STATE', 'a span past the end of its view is never sent short')
  t.deepEqual((await p.wait(5, 150)).map((b) => [...b]), [[1, 2], [0x71, 0x72], [4], [0x72]], 'only the whole datagrams arrived')
  s.close(); p.close()
})

test('raw socketSendViews (views as the call\'s own arguments): bytes and order exact, from resumes, bad arguments refused before anything is sent, a detached view fails its datagram', async (t) => {
  const p = await peer()
  const s = rawSocket()
  const id = s.addDestination(LOOPBACK, p.port)
  const sub = new Uint8Array([0x70, 0x71, 0x72, 0x73]).subarray(1, 3) // 'qr'
  const abc = Buffer.from('abc')
  // 'qr', 'a' (a span inside a view), 'bc', '' (empty), 'qr' again (a view named twice)
  const spans = new Uint32Array([0, 0, 2, 1, 0, 1, 1, 1, 2, 1, 3, 0, 0, 0, 2])
  t.is(native.socketSendViews(s.id, spans, id, null, null, 0, 0, sub, abc), 5)
  t.is(native.socketSendViews(s.id, spans, id, null, null, 3, 0, sub, abc), 5, 'counted from 0, sent from 3')
  t.deepEqual((await p.wait(7)).map((b) => b.toString()), ['qr', 'a', 'bc', '', 'qr', '', 'qr'])
  const call = native.socketSendViews as (...a: unknown[]) => number
  t.throws(() => call(s.id, spans, id, null, null, 0), { instanceOf: TypeError }, 'fewer than seven arguments')
  t.throws(() => call(s.id, new Uint32Array([0, 0, 1]), id, null, null, 0, 0, abc.buffer), { instanceOf: TypeError }, 'an ArrayBuffer is not a view')
  t.throws(() => call(s.id, new Uint32Array([0, 0, 1]), id, null, null, 0, 0, 'x'), { instanceOf: TypeError }, 'a string is not a view')
  t.throws(() => call(s.id, new Uint32Array([1, 0, 1]), id, null, null, 0, 0, abc), { instanceOf: RangeError }, 'a store index past the views given')
  t.throws(() => call(s.id, new Uint32Array([0, 0, 1]), id + 9, null, null, 0, 0, abc), { instanceOf: RangeError }, 'an unknown destination id')
  t.throws(() => call(s.id, new Uint32Array([0, 0, 1]), id, null, null, 0, 0x8000, abc), { instanceOf: RangeError }, 'MSG_MORE')
  t.throws(() => call('1', new Uint32Array([0, 0, 1]), id, null, null, 0, 0, abc), { instanceOf: TypeError }, 'a socket id that is not a number')
  t.throws(() => call(0xfffffff0, new Uint32Array([0, 0, 1]), id, null, null, 0, 0, abc), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  // A view detached before the call (its planned length no longer there): that datagram fails
  // as changed, the one before it went out.
  const victim = new Uint8Array([9, 9, 9])
  detach(victim)
  const d = t.throws(() => call(s.id, new Uint32Array([0, 0, 3, 1, 0, 3]), id, null, null, 0, 0, abc, victim)) as Error & { code: string; index: number; sent: number }
  t.is(d.code, 'ERR_INVALID_STATE')
  t.is(d.index, 1)
  t.is(d.sent, 1)
  t.deepEqual((await p.wait(8, 150)).slice(7).map((b) => b.toString()), ['abc'], 'only the whole datagram arrived')
  s.close(); p.close()
})

test('raw socketSendSpans with one destination id per datagram: each goes where its id says; bad ids and counts are refused first', async (t) => {
  const p = await peer()
  const q = await peer()
  const s = rawSocket()
  const toP = s.addDestination(LOOPBACK, p.port)
  const toQ = s.addDestination(LOOPBACK, q.port)
  const data = Buffer.from('abcd')
  const spans = new Uint32Array([0, 0, 1, 0, 1, 1, 0, 2, 1, 0, 3, 1])
  t.is(native.socketSendSpans(s.id, [data], true, spans, 0, new Uint32Array([toQ, toP, toQ, toQ]), null, 0, 0), 4)
  t.throws(() => native.socketSendSpans(s.id, [data], true, spans, 0, new Uint32Array([toP, toP]), null, 0, 0), { instanceOf: RangeError }, 'one id per datagram')
  t.throws(() => native.socketSendSpans(s.id, [data], true, spans, 0, new Uint32Array([toP, toP, 99, toP]), null, 0, 0), { instanceOf: RangeError }, 'an unknown id')
  const e = t.throws(() => native.socketSendSpans(s.id, [data], true, spans, 0, new Uint32Array([toP, 0xffffffff, toP, toP]), null, 0, 0)) as Error & { index: number; sent: number }
  t.is(e.index, 1, 'the connected peer of an unconnected socket fails its datagram')
  t.is(e.sent, 1)
  t.throws(() => native.socketSendSpans(s.id, [data], true, spans, toP, null, new Uint8Array(3), 0, 0), { instanceOf: RangeError }, 'one TOS byte per datagram')
  t.throws(() => native.socketSendSpans(s.id, [data], true, spans, toP, null, [0, 0, 0, 0] as never, 0, 0), { instanceOf: TypeError }, 'tos must be a Uint8Array')
  t.deepEqual((await q.wait(3)).map((b) => b.toString()), ['a', 'c', 'd'])
  t.deepEqual((await p.wait(2)).map((b) => b.toString()), ['b', 'a'])
  s.close(); p.close(); q.close()
})

test('trySend of Buffers cut from one store, from many, and over a SharedArrayBuffer: every byte arrives in order', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const big = Buffer.from('0123456789abcdefghij')
  const shared = new Uint8Array(new SharedArrayBuffer(4))
  shared.set([0x53, 0x41, 0x42, 0x21]) // 'SAB!'
  const pooled = Buffer.from('pool') // from Buffer's own pool: another store
  const batch = [big.subarray(0, 5), big.subarray(5, 10), pooled, big.subarray(10, 20), Buffer.alloc(0), big.subarray(0, 1)]
  t.is(u.trySend(batch, p.port, LOOPBACK), 6)
  t.is(u.trySend([shared, big.subarray(0, 2), shared], p.port, LOOPBACK), 3)
  t.deepEqual((await p.wait(9)).map((b) => b.toString()), ['01234', '56789', 'pool', 'abcdefghij', '', '0', 'SAB!', '01', 'SAB!'])
  u.close(); p.close()
})

test('trySend: an entry getter that detaches an earlier Buffer\'s store fails that datagram (ERR_INVALID_STATE), sends those before it', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const first = Buffer.from('first')
  const victim = new Uint8Array(new ArrayBuffer(8)).fill(0x76)
  const last = Buffer.from('last')
  const batch = trapped<Uint8Array>([first, victim, last], 2, () => detach(victim))
  const e = t.throws(() => u.trySend(batch, p.port, LOOPBACK)) as Error & { code: string; index: number; sent: number }
  t.is(e.code, 'ERR_INVALID_STATE')
  t.is(e.index, 1)
  t.is(e.sent, 1)
  t.deepEqual((await p.wait(2, 150)).map((b) => b.toString()), ['first'])
  u.close(); p.close()
})

test('trySend: an own byteOffset getter on a Buffer never runs (the slots are read directly); an index getter that sends another batch meanwhile: both arrive whole, nothing mixed', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const inner = [Buffer.from('inner-0'), Buffer.from('inner-1')]
  const hooked = Buffer.from('outer-1')
  let getterRan = false
  Object.defineProperty(hooked, 'byteOffset', { get() { getterRan = true; return 0 } })
  let innerSent = -1
  const outer = trapped([Buffer.from('outer-0'), hooked, Buffer.from('outer-2')], 2, () => {
    if (innerSent < 0) innerSent = u.trySend(inner, p.port, LOOPBACK)
  })
  t.is(u.trySend(outer, p.port, LOOPBACK), 3)
  t.false(getterRan)
  t.is(innerSent, 2)
  t.deepEqual((await p.wait(5)).map((b) => b.toString()), ['inner-0', 'inner-1', 'outer-0', 'outer-1', 'outer-2'])
  u.close(); p.close()
})

test('spans path: a Buffer pushed out of bounds by a later getter (its byteOffset then reads 0) fails as changed, never sends the store\'s first bytes', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const rab = new RAB(16, { maxByteLength: 16 })
  const a = new Uint8Array(rab, 0, 4).fill(0x41) // 'AAAA'
  const b = new Uint8Array(rab, 8, 4).fill(0x42) // 'BBBB'
  const e = t.throws(() => u.trySend([a, b, { get data() { rab.resize(6); return Buffer.from('c') } }], p.port, LOOPBACK)) as Error & { code: string; index: number; sent: number }
  t.is(e.code, 'ERR_INVALID_STATE')
  t.is(e.index, 1)
  t.is(e.sent, 1)
  t.deepEqual((await p.wait(2, 150)).map((m) => m.toString()), ['AAAA'])
  u.close(); p.close()
})

test('spans path: own byteOffset / buffer properties on a view are not trusted: the bytes sent are the view\'s own', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  const store = new Uint8Array(Buffer.from('public..SECRET..'))
  const liar = store.subarray(0, 6)
  Object.defineProperty(liar, 'byteOffset', { value: 8 })
  const fake = store.subarray(0, 6)
  Object.defineProperty(fake, 'buffer', { value: Object.create(ArrayBuffer.prototype) })
  t.is(u.trySend([liar, store.subarray(0, 6), fake], p.port, LOOPBACK), 3)
  t.deepEqual((await p.wait(3)).map((m) => m.toString()), ['public', 'public', 'public'])
  u.close(); p.close()
})

test('spans path: views past 4 GiB into their memory, or of 4 GiB and more, take the general path (right bytes, or ERR_OUT_OF_RANGE), never wrapped offsets', async (t) => {
  const p = await peer()
  const u = createSocket('udp4')
  // 4 GiB + 64 of zeroed memory the kernel maps lazily: only the last page is touched.
  const huge = new ArrayBuffer(2 ** 32 + 64)
  const far = new Uint8Array(huge, 2 ** 32, 4).fill(0xaa)
  t.is(u.trySend([far, new Uint8Array(huge, 2 ** 32, 4)], p.port, LOOPBACK), 2)
  t.deepEqual((await p.wait(2)).map((m) => m.toString('hex')), ['aaaaaaaa', 'aaaaaaaa'])
  t.throws(() => u.trySend([new Uint8Array(huge, 0, 2 ** 32), Buffer.from('x')], p.port, LOOPBACK), { instanceOf: RangeError })
  // A packed buffer whose datagrams run past 4 GiB: the first is too large for UDP and fails
  // as itself (index 0), the offsets past 4 GiB were never cut to 32 bits.
  const e = t.throws(() => u.trySendPacked(new Uint8Array(huge, 0, 2 ** 32), [2 ** 32 - 8, 4, 4], p.port, LOOPBACK)) as SendError
  t.is(e.code, 'EMSGSIZE')
  t.is(e.index, 0)
  t.deepEqual((await p.wait(3, 150)).length, 2, 'nothing else arrived')
  u.close(); p.close()
})

test('a patched Array[Symbol.species] and push cannot change which bytes a batch with a Buffer repeated in a row sends', async (t) => {
  // The layer builds its stores list by index: `slice` (species) and `push` would run user code.
  const p = await peer()
  const tx = createSocket('udp4')
  class Doubling<T> extends Array<T> {
    override push(...items: T[]): number {
      super.push(...items)
      return super.push(...items)
    }
  }
  const species = Object.getOwnPropertyDescriptor(Array, Symbol.species) as PropertyDescriptor
  const [a, b, c] = ['aaaa', 'bbbb', 'cccc'].map((s) => Buffer.from(s)) as [Buffer, Buffer, Buffer]
  const ownA = Buffer.alloc(4, 0x41) // own memory: the path where each view is its own store
  let sent: number[] = []
  Object.defineProperty(Array, Symbol.species, { get: () => Doubling, configurable: true })
  try {
    sent = [tx.trySend([a, a, b, c], p.port, LOOPBACK), tx.trySend([ownA, ownA, b, ownA, c], p.port, LOOPBACK)]
  } finally {
    Object.defineProperty(Array, Symbol.species, species)
  }
  t.deepEqual(sent, [4, 5])
  const got = await p.wait(9)
  t.deepEqual(got.map((m) => m.toString()), ['aaaa', 'aaaa', 'bbbb', 'cccc', 'AAAA', 'AAAA', 'bbbb', 'AAAA', 'cccc'])
})
