// ES module consumer of 'sendmmsg' (type-checked by __test__/packaging.spec.ts under nodenext
// and bundler resolution, compiled and run by scripts/platform/test-platforms.sh and in the
// packaging test's scratch install). Loopback only. Each `@ts-expect-error` line is a deliberate
// misuse: tsc fails if it is NOT an error, and test-platforms.sh counts them.
import { createSocket, SendError, UdpSocket } from 'sendmmsg'
import type { AddressInfo, BatchEntry } from 'sendmmsg'
import { createRequire } from 'node:module'
import * as dgram from 'node:dgram'

// The same install through require(): its classes must be the very same objects.
const cjs = createRequire(import.meta.url)('sendmmsg') as typeof import('sendmmsg')

function misuse(s: UdpSocket): void {
  // @ts-expect-error: only 'udp4' and 'udp6' sockets exist
  createSocket('tcp')
  // @ts-expect-error: the address is a string, not a number
  s.trySend([Buffer.from('x')], 9, 0x7f000001)
  // @ts-expect-error: messages are an array (a batch), not one string
  s.trySend('not an array', 9)
  // @ts-expect-error: the port is a number, not a string
  const port: string = s.address().port
  // @ts-expect-error: a gather entry's pieces are payloads, not numbers
  s.trySend([{ data: 42 }], 9)
  void port
}
void misuse

const rx = dgram.createSocket('udp4')
await new Promise<void>((resolve) => rx.bind(0, '127.0.0.1', resolve))
const want = [Buffer.from('esm-1'), Buffer.from('esm-2 gathered')]
const got: Buffer[] = []
const all = new Promise<void>((resolve) => rx.on('message', (m: Buffer) => { if (got.push(m) === want.length) resolve() }))

const socket: UdpSocket = createSocket('udp4').bind(0, '127.0.0.1')
const local: AddressInfo = socket.address()
const batch: BatchEntry[] = [want[0]!, { data: [Buffer.from('esm-2 '), 'gathered'] }]
const sent: number = socket.trySend(batch, rx.address().port, '127.0.0.1')
await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 5000))])
if (got.some((m, i) => !m.equals(want[i]!))) throw new Error(`bytes differ: ${got.map(String)}`)

// a datagram too large for IPv4 is refused by the kernel: message 1, after 1 sent
let identity = 'no error'
try {
  socket.trySend([Buffer.from('fits'), Buffer.alloc(70000)], rx.address().port, '127.0.0.1')
} catch (e) {
  if (!(e instanceof SendError) || !(e instanceof cjs.SendError) || SendError !== cjs.SendError) throw e
  identity = `SendError ${e.code} index=${e.index} sent=${e.sent} (import === require)`
}
if (identity === 'no error') throw new Error('the oversized datagram was not refused')
socket.close()
rx.close()
console.log(`TYPES ESM OK sent=${sent} port=${local.port} bytes=${got.reduce((n, m) => n + m.length, 0)} ${identity}`)
