// Consumer type-check fixture (scripts/platform/test-platforms.sh): a CommonJS TypeScript module
// that loads the package with `import x = require(...)` (compiles to `require('sendmmsg')`).
// Compiled with `tsc --strict` (module nodenext) and then run with node.
// Each `@ts-expect-error` line is a deliberate misuse: tsc fails if it is NOT reported as an error.
import sendmmsg = require('sendmmsg')

const { UdpSocket } = sendmmsg
const socket = new UdpSocket('udp4')
const local: sendmmsg.AddressInfo = socket.bind(0, '127.0.0.1')
const sent: number = socket.trySend([Buffer.from('cjs')], local.port, '127.0.0.1')

function misuse(s: InstanceType<typeof UdpSocket>): void {
  // @ts-expect-error: trySend returns a number, not a Promise
  s.trySend([Buffer.from('x')], 9).then(() => {})
  // @ts-expect-error: no such method
  s.sendEverythingNow()
}
void misuse

socket.close()
console.log(`TYPES CJS OK sent=${sent} port=${local.port} closed=${socket.closed}`)
