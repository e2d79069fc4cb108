// CommonJS consumer of 'sendmmsg' (`import x = require(...)` compiles to require('sendmmsg')).
// Checked and run like esm.mts; `@ts-expect-error` lines are deliberate misuse.
import sendmmsg = require('sendmmsg')
import dgram = require('node:dgram')

const { createSocket, SendError } = sendmmsg

function misuse(s: sendmmsg.UdpSocket): void {
  // @ts-expect-error: trySend returns a number, not a Promise
  s.trySend([Buffer.from('x')], 9).then(() => {})
  // @ts-expect-error: no such method
  s.sendEverythingNow()
  // @ts-expect-error: an options object needs a valid type
  createSocket({ type: 'udp5' })
  // @ts-expect-error: bind's address is a string
  s.bind(0, 127)
}
void misuse

const rx = dgram.createSocket('udp4')
rx.bind(0, '127.0.0.1', () => {
  const want = Buffer.from('cjs gathered batch')
  const timer = setTimeout(() => { throw new Error('timeout') }, 5000)
  rx.on('message', (m: Buffer) => {
    clearTimeout(timer)
    if (!m.equals(want)) throw new Error(`bytes differ: ${String(m)}`)
    let refused = false
    try {
      socket.trySend([Buffer.alloc(70000)], rx.address().port, '127.0.0.1')
    } catch (e) {
      refused = e instanceof SendError && e.code === 'EMSGSIZE'
    }
    socket.close()
    rx.close()
    if (!refused) throw new Error('no SendError for an oversized datagram')
    console.log(`TYPES CJS OK sent=${sent} port=${local.port} bytes=${m.length} SendError EMSGSIZE`)
  })
  const socket = createSocket('udp4').bind(0, '127.0.0.1')
  const local: sendmmsg.AddressInfo = socket.address()
  const sent: number = socket.trySend([{ data: [Buffer.from('cjs '), Buffer.from('gathered '), 'batch'] }], rx.address().port, '127.0.0.1')
})
