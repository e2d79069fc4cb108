// Both ways a socket's readiness is watched deliver the same datagrams: a uv_poll_t on the JS
// thread's loop (Node's default) and the reactor thread (Bun, or SENDMMSG_REACTOR=thread).
// Each runs in a child process, since the choice is made when the package loads.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import path from 'node:path'

const dist = path.join(__dirname, '..', 'dist', 'index.js')

const child = `
const { createSocket } = require(${JSON.stringify(dist)})
const dgram = require('node:dgram')
const rx = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 }).bind(0, '127.0.0.1')
const got = []
rx.on('message', (msg) => {
  got.push(msg.readUInt32BE(0))
  if (got.length === 300) finish()
})
// Writable interest too: send() batches larger than the socket buffer wait for the watcher.
const tx = createSocket({ type: 'udp4', sendBufferSize: 4096 })
const peer = dgram.createSocket('udp4')
peer.bind(0, '127.0.0.1', async () => {
  const batch = (from) => Array.from({ length: 100 }, (_, i) => { const b = Buffer.alloc(200); b.writeUInt32BE(from + i); return b })
  await tx.send(batch(0), rx.address().port, '127.0.0.1')
  await tx.send(batch(100), rx.address().port, '127.0.0.1')
  tx.trySend(batch(200), rx.address().port, '127.0.0.1')
})
const timer = setTimeout(() => { console.log(JSON.stringify({ got: got.length, drops: rx.dropCount })); process.exit(1) }, 5000)
function finish () {
  clearTimeout(timer)
  const inOrder = got.every((n, i) => n === i)
  console.log(JSON.stringify({ got: got.length, inOrder }))
  rx.close(); tx.close(); peer.close()
}
`

for (const [name, env] of [['libuv loop (default)', {}], ['reactor thread (SENDMMSG_REACTOR=thread)', { SENDMMSG_REACTOR: 'thread' }]] as const) {
  test(`${name}: 300 datagrams arrive, in order, and the process exits by itself`, (t) => {
    const r = spawnSync(process.execPath, ['-e', child], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15000 })
    t.is(r.signal, null, r.stderr)
    t.is(r.status, 0, r.stdout + r.stderr)
    t.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}'), { got: 300, inOrder: true })
  })
}
