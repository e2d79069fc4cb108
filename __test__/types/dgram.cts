// CommonJS consumer of 'sendmmsg/dgram'. Type-checked only when the build ships dist/dgram.d.ts.
import sdgram = require('sendmmsg/dgram')

const socket = sdgram.createSocket('udp4')
socket.send(Buffer.from('dgram'), 9, '127.0.0.1', () => socket.close())

function misuse(): void {
  // @ts-expect-error: createSocket needs a socket type
  sdgram.createSocket()
}
void misuse
