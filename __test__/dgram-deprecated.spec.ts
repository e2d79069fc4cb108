// dgram's deprecated private accessors (DEP0112) on the sendmmsg/dgram drop-in, side by side
// with node:dgram: the same values through a socket's life, and the warning.
import test from 'ava'
import * as nodeDgram from 'node:dgram'

import * as dropIn from '../lib/dgram'

type Legacy = nodeDgram.Socket & Record<'_handle' | '_receiving' | '_bindState' | '_queue' | '_reuseAddr', unknown> & {
  _healthCheck(): void
  _stopReceiving(): void
}
type Module = { createSocket: (options: { type: 'udp4'; reuseAddr?: boolean }) => nodeDgram.Socket }

const warnings: Error[] = []
process.on('warning', (warning) => warnings.push(warning))

/** The accessors' values at each step of a socket's life (bind, a queued send, stop, close). */
async function lifeOf(module: Module, reuseAddr?: boolean): Promise<unknown[]> {
  const socket = module.createSocket({ type: 'udp4', ...(reuseAddr === undefined ? {} : { reuseAddr }) }) as Legacy
  const peek = (): unknown[] => [
    socket._handle === null ? null : typeof socket._handle,
    socket._receiving,
    socket._bindState,
    Array.isArray(socket._queue) ? `queue of ${(socket._queue as unknown[]).length}` : socket._queue,
    socket._reuseAddr,
  ]
  const steps: unknown[] = [peek()]
  socket.send('x', 9, '127.0.0.1') // implicit bind: queued until 'listening'
  steps.push(peek())
  await new Promise((resolve) => socket.once('listening', resolve))
  steps.push(peek())
  socket._healthCheck()
  socket._stopReceiving()
  socket._stopReceiving()
  steps.push(peek())
  await new Promise((resolve) => socket.close(() => resolve(undefined)))
  steps.push(peek())
  let healthCheck: unknown
  try {
    socket._healthCheck()
  } catch (error) {
    healthCheck = (error as NodeJS.ErrnoException).code
  }
  steps.push(healthCheck)
  return steps
}

test.serial('the accessors read what node:dgram reads, and DEP0112 is warned', async (t) => {
  for (const reuseAddr of [undefined, true, false]) {
    t.deepEqual(await lifeOf(dropIn as unknown as Module, reuseAddr), await lifeOf(nodeDgram, reuseAddr))
  }
  await new Promise((resolve) => setImmediate(resolve))
  // util.deprecate warns once per code and process (node:dgram's accessors share the code).
  t.is(warnings.filter((w) => (w as NodeJS.ErrnoException).code === 'DEP0112').length, 1)
  const [warning] = warnings
  t.is(warning?.name, 'DeprecationWarning')
  t.regex(warning?.message ?? '', /^Socket\.prototype\._handle is deprecated$/)
})

test.serial('setters write the real state; accessors are non-enumerable prototype properties', async (t) => {
  const socket = dropIn.createSocket('udp4') as unknown as Legacy
  for (const name of ['_handle', '_receiving', '_bindState', '_queue', '_reuseAddr']) t.false(Object.hasOwn(socket, name))
  const descriptor = Object.getOwnPropertyDescriptor(dropIn.Socket.prototype, '_bindState')
  t.is(typeof descriptor?.get, 'function')
  t.is(typeof descriptor?.set, 'function')
  t.false(descriptor?.enumerable)
  socket._bindState = 2 // as dgram: bind() now refuses
  t.throws(() => socket.bind(0), { code: 'ERR_SOCKET_ALREADY_BOUND' })
  socket._bindState = 0
  const handle = socket._handle as dropIn.LegacyHandle
  t.is(handle.owner, socket as unknown as dropIn.Socket)
  t.true(handle.fd > 0)
  socket._handle = null
  t.is(socket._handle, null)
  await new Promise<void>((resolve) => socket.close(resolve))
})

test.serial('_stopReceiving: no more message events, as in dgram', async (t) => {
  const receiver = dropIn.createSocket('udp4') as unknown as Legacy
  let got = 0
  receiver.on('message', () => got++)
  await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve))
  const sender = nodeDgram.createSocket('udp4')
  const port = receiver.address().port
  await new Promise((resolve) => sender.send('a', port, '127.0.0.1', resolve))
  const deadline = Date.now() + 2000
  while (got === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  t.is(got, 1)
  receiver._stopReceiving()
  t.false(receiver._receiving)
  await new Promise((resolve) => sender.send('b', port, '127.0.0.1', resolve))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.is(got, 1)
  sender.close()
  receiver.close()
})

test.serial('dgram._createSocketHandle: a handle, or a negative errno as dgram returns', (t) => {
  const create = dropIn._createSocketHandle as unknown as (...args: unknown[]) => dropIn.LegacyHandle | number
  const handle = create('127.0.0.1', 0, 'udp4')
  t.true(handle instanceof dropIn.LegacyHandle)
  t.true((handle as dropIn.LegacyHandle).fd > 0)
  ;(handle as dropIn.LegacyHandle).close()
  t.is(create('localhost', 0, 'udp4'), -22) // UV_EINVAL
  t.is(dropIn.default._createSocketHandle, dropIn._createSocketHandle)
})
