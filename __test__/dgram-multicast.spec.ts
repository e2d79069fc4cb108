// Source-specific multicast through sendmmsg/dgram, compared call for call with node:dgram on
// the same machine (whether a join succeeds depends on the host's interfaces; the outcome and
// the error must be the same as dgram's either way).
import test from 'ava'
import * as nodeDgram from 'node:dgram'

import * as dropIn from '../lib/dgram'
import { UdpSocket } from '../lib/udp'

type Module = { createSocket: (options: { type: 'udp4' | 'udp6'; reuseAddr?: boolean }) => nodeDgram.Socket }
type Call = [method: 'add' | 'drop', source: unknown, group: unknown, iface?: unknown]

function outcome(error: unknown): string {
  if (error === undefined) return 'ok'
  const e = error as NodeJS.ErrnoException
  return `${e.name} ${String(e.code)} ${String(e.errno)} ${String(e.syscall)}: ${e.message}`
}

/** Runs `calls` in order on one bound socket of `module`, returning each call's outcome. */
async function run(module: Module, type: 'udp4' | 'udp6', calls: Call[], bind = true): Promise<string[]> {
  const socket = module.createSocket({ type, reuseAddr: true })
  if (bind) await new Promise<void>((resolve) => socket.bind(0, resolve))
  const out = calls.map(([method, source, group, iface]) => {
    try {
      if (method === 'add') socket.addSourceSpecificMembership(source as string, group as string, iface as string)
      else socket.dropSourceSpecificMembership(source as string, group as string, iface as string)
      return outcome(undefined)
    } catch (error) {
      return outcome(error)
    }
  })
  await new Promise<void>((resolve) => socket.close(resolve))
  return out
}

const V4_GROUP = '232.1.2.3'
const V6_GROUP = 'ff3e::1:2:3'

const sequences: Array<[type: 'udp4' | 'udp6', calls: Call[]]> = [
  // join, join again, leave, leave again; then on an interface; then refused interfaces.
  ['udp4', [['add', '127.0.0.1', V4_GROUP], ['add', '127.0.0.1', V4_GROUP], ['drop', '127.0.0.1', V4_GROUP], ['drop', '127.0.0.1', V4_GROUP]]],
  ['udp4', [['add', '127.0.0.1', V4_GROUP, '127.0.0.1'], ['drop', '127.0.0.1', V4_GROUP, '127.0.0.1']]],
  ['udp4', [['add', '127.0.0.1', V4_GROUP, '::1'], ['add', '127.0.0.1', V4_GROUP, 'bogus'], ['add', '127.0.0.1', V4_GROUP, 7], ['add', '127.0.0.1', V4_GROUP, '127.0.0.2']]],
  // Bad or mixed-family addresses; a unicast group; an IPv6 group on an IPv4 socket.
  ['udp4', [['add', '127.0.0.1', '0'], ['drop', '224.0.0.114', '0'], ['add', '::1', V4_GROUP], ['add', '127.0.0.1', '127.0.0.2'], ['add', '::1', V6_GROUP]]],
  // dgram's type checks.
  ['udp4', [['add', 0, V4_GROUP], ['add', V4_GROUP, 0], ['drop', 0, V4_GROUP], ['drop', V4_GROUP, 0], ['add', undefined, undefined]]],
  ['udp6', [['add', '::1', V6_GROUP], ['drop', '::1', V6_GROUP], ['drop', '::1', V6_GROUP]]],
  ['udp6', [['add', '::1', V6_GROUP, '::%lo'], ['drop', '::1', V6_GROUP, '::%lo'], ['add', '::1', `${V6_GROUP}%lo`], ['drop', '::1', `${V6_GROUP}%lo`]]],
  ['udp6', [['add', '::1', V6_GROUP, '::%no-such-if'], ['drop', '::1', V6_GROUP], ['add', '::1', V6_GROUP, 'bogus'], ['add', '::1', V6_GROUP, '127.0.0.1']]],
  ['udp6', [['add', '::1', 'fe80::1'], ['add', '127.0.0.1', V4_GROUP], ['drop', '127.0.0.1', V4_GROUP], ['add', '::1', '0']]],
]

for (const [i, [type, calls]] of sequences.entries()) {
  test(`source-specific membership ${type} #${i}: the same outcomes and errors as node:dgram`, async (t) => {
    const expected = await run(nodeDgram, type, calls)
    t.deepEqual(await run(dropIn as unknown as Module, type, calls), expected)
  })
}

test('source-specific membership on an unbound socket: same-family joins as node:dgram', async (t) => {
  // (dgram binds implicitly on a membership call, and then only to the group's family.)
  for (const [type, calls] of [
    ['udp4', [['add', '127.0.0.1', V4_GROUP], ['drop', '127.0.0.1', V4_GROUP], ['drop', '127.0.0.1', V4_GROUP]]],
    ['udp6', [['add', '::1', V6_GROUP], ['drop', '::1', V6_GROUP], ['add', 0, V6_GROUP]]],
  ] as Array<['udp4' | 'udp6', Call[]]>) {
    t.deepEqual(await run(dropIn as unknown as Module, type, calls, false), await run(nodeDgram, type, calls, false))
  }
})

test('source-specific membership on a closed socket: ERR_SOCKET_DGRAM_NOT_RUNNING', async (t) => {
  for (const module of [nodeDgram, dropIn as unknown as Module]) {
    const socket = module.createSocket({ type: 'udp4' })
    await new Promise<void>((resolve) => socket.close(resolve))
    t.throws(() => socket.addSourceSpecificMembership('127.0.0.1', V4_GROUP), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING', message: 'Not running' })
    t.throws(() => socket.dropSourceSpecificMembership(0 as never, V4_GROUP), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  }
})

test('UdpSocket: source-specific join/leave, system errors, type errors', (t) => {
  const socket = new UdpSocket({ type: 'udp4' })
  try {
    t.throws(() => socket.dropSourceSpecificMembership('127.0.0.1', V4_GROUP), { code: 'EINVAL' })
    t.throws(() => socket.addSourceSpecificMembership(1 as never, V4_GROUP), { code: 'ERR_INVALID_ARG_TYPE', message: /"sourceAddress"/ })
    t.throws(() => socket.addSourceSpecificMembership('127.0.0.1', null as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"groupAddress"/ })
    t.throws(() => socket.addSourceSpecificMembership('127.0.0.1', V4_GROUP, 3 as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"interfaceAddress"/ })
    let joined = true
    try {
      socket.addSourceSpecificMembership('127.0.0.1', V4_GROUP, '127.0.0.1')
    } catch (error) {
      joined = false
      t.is((error as NodeJS.ErrnoException).code, 'ENODEV') // no multicast-capable interface
    }
    if (joined) {
      socket.dropSourceSpecificMembership('127.0.0.1', V4_GROUP, '127.0.0.1')
      t.throws(() => socket.dropSourceSpecificMembership('127.0.0.1', V4_GROUP, '127.0.0.1'), { code: 'EINVAL' })
    }
  } finally {
    socket.close()
  }
  t.throws(() => socket.addSourceSpecificMembership('127.0.0.1', V4_GROUP), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
})
