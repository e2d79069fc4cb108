// Consumer type-check fixture (scripts/platform/test-platforms.sh): an ES module that imports the
// installed package by name. Compiled with `tsc --strict` (module nodenext) and then run with node.
// Each `@ts-expect-error` line is a deliberate misuse: tsc fails if it is NOT reported as an error.
import { UdpSocket } from 'sendmmsg'
import type { AddressInfo } from 'sendmmsg'

const socket: UdpSocket = new UdpSocket('udp4')
const local: AddressInfo = socket.bind(0, '127.0.0.1')
const sent: number = socket.trySend([Buffer.from('esm'), { buffers: [Buffer.from('e'), Buffer.from('sm')] }], local.port, '127.0.0.1')

function misuse(s: UdpSocket): void {
  // @ts-expect-error: messages must be an array of buffers / { buffers } objects
  s.trySend('not an array', 9)
  // @ts-expect-error: the port is a number, not a string
  const port: string = s.address().port
  // @ts-expect-error: only 'udp4' and 'udp6' sockets exist
  new UdpSocket('tcp')
  void port
}
void misuse

socket.close()
console.log(`TYPES ESM OK sent=${sent} port=${local.port} closed=${socket.closed}`)
