// ES module consumer of 'sendmmsg/dgram' (node:dgram's shape). Type-checked only when the build
// ships dist/dgram.d.ts. `@ts-expect-error` lines are deliberate misuse.
import { createSocket } from 'sendmmsg/dgram'

const socket = createSocket('udp4')
socket.send(Buffer.from('dgram'), 9, '127.0.0.1', (err: Error | null) => {
  if (err) console.error(err)
  socket.close()
})

function misuse(): void {
  // @ts-expect-error: only 'udp4' and 'udp6' sockets exist
  createSocket('tcp')
  // @ts-expect-error: the callback must be a function
  socket.send(Buffer.from('x'), 9, '127.0.0.1', 'done')
}
void misuse
