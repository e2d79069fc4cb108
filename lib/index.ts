/**
 * `sendmmsg`: batched UDP for Node.js on Linux — `sendmmsg(2)`/`recvmmsg(2)` with zero-copy
 * Buffers. `import { createSocket } from 'sendmmsg'`; the drop-in for `node:dgram` is
 * `sendmmsg/dgram`.
 * @packageDocumentation
 */
export { UdpSocket, createSocket, createRecvBatch } from './udp'
export type { SocketType, UdpSocketOptions, AddressInfo, RecvBatch, LookupFunction, IcmpError, IcmpErrorOrigin, PathMtuDiscoveryMode } from './udp'
export type { Datagram, RemoteInfo } from './receive'
export type { Payload, DatagramBody, OutgoingMessage, BatchEntry } from './payload'
export { SendError } from './errors'
export { setThreadAffinity, getThreadAffinity } from './cpu'
export {
  sendmmsg,
  trySendmmsg,
  recvmmsg,
  MSG_DONTWAIT,
  MSG_WAITFORONE,
  MSG_CONFIRM,
  MAX_MESSAGES_PER_CALL,
  MAX_BUFFERS_PER_MESSAGE,
} from './raw'
export type { ReceivedInfo } from './raw'
