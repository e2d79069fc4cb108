// The system calls on any UDP descriptor the caller owns (for example a node:dgram socket's):
// validated here, planned into dense arrays, then handed to the binding.
import { native } from './native'
import { fromNative, invalidArgType, outOfRange } from './errors'
import { checkFlags, planBatch, plannedLengths, type BatchEntry } from './payload'

/** One datagram as `recvmmsg` reported it. */
export interface ReceivedInfo {
  /** Bytes stored in the buffer. */
  length: number
  /** Longer than the buffer: cut (`MSG_TRUNC`). */
  truncated: boolean
  /** Sender address (`''` if the kernel gave none). */
  address: string
  port: number
  family: 'IPv4' | 'IPv6' | ''
}

/** `MSG_DONTWAIT`: a non-blocking call on a blocking descriptor. */
export const MSG_DONTWAIT = 0x40
/** `MSG_WAITFORONE` (recvmmsg): block for the first datagram only. */
export const MSG_WAITFORONE = 0x10000
/** `MSG_CONFIRM`: tell the link layer the peer answered. */
export const MSG_CONFIRM = 0x800
/** Most messages one system call takes (UIO_MAXIOV). */
export const MAX_MESSAGES_PER_CALL: number = native.MAX_MESSAGES_PER_CALL
/** Most pieces one datagram may gather (IOV_MAX). */
export const MAX_BUFFERS_PER_MESSAGE: number = native.MAX_BUFFERS_PER_MESSAGE

function checkFd(fd: unknown): number {
  if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd)
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw outOfRange('fd', 'an integer >= 0', fd)
  return fd
}

/**
 * `sendmmsg(2)` exactly as the man page describes it, on any UDP descriptor: one call, at most
 * 1024 messages; returns how many were sent and throws (a system error with `index: 0`) only
 * when none was. Addresses must be IP literals. `bytesSent[i]`, if given, receives message
 * `i`'s `msg_len`.
 */
export function sendmmsg(fd: number, messages: readonly BatchEntry[], flags?: number, bytesSent?: Uint32Array): number {
  const f = checkFd(fd)
  const plan = planBatch(messages, undefined, undefined, '127.0.0.1')
  const fl = checkFlags(flags)
  if (bytesSent !== undefined && !(bytesSent instanceof Uint32Array)) throw invalidArgType('bytesSent', 'an instance of Uint32Array', bytesSent)
  let lengths: number[]
  try {
    lengths = native.sendmmsg(f, plan.views, plan.pieceCounts, plan.destinations, plan.addresses, plan.ports, fl, plannedLengths(plan))
  } catch (error) {
    throw fromNative(error)
  }
  if (bytesSent !== undefined) {
    for (let i = 0; i < lengths.length && i < bytesSent.length; i++) bytesSent[i] = lengths[i] as number
  }
  return lengths.length
}

/**
 * Like `sendmmsg`, but the whole batch (several calls if needed) and no error lost: a message
 * that fails after others were sent throws a `SendError` with its `index` and `sent`.
 * Returns the count sent (fewer than the batch: the descriptor would block).
 */
export function trySendmmsg(fd: number, messages: readonly BatchEntry[], flags?: number): number {
  const f = checkFd(fd)
  const plan = planBatch(messages, undefined, undefined, '127.0.0.1')
  const fl = checkFlags(flags)
  try {
    return native.trySendmmsg(f, plan.views, plan.pieceCounts, plan.destinations, plan.addresses, plan.ports, fl, plannedLengths(plan))
  } catch (error) {
    throw fromNative(error)
  }
}

/**
 * `recvmmsg(2)` on any UDP descriptor into buffers the caller owns: datagram `i` lands in
 * `buffers[i]` (at most 1024). `flags` (`MSG_DONTWAIT`, `MSG_WAITFORONE`) and the timeout (ms,
 * checked by the kernel only after each datagram) pass through; a blocking descriptor blocks.
 */
export function recvmmsg(fd: number, buffers: readonly Uint8Array[], flags?: number, timeoutMs?: number): ReceivedInfo[] {
  const f = checkFd(fd)
  if (!Array.isArray(buffers)) throw invalidArgType('buffers', 'an array of Uint8Array', buffers)
  if (buffers.length > 1024) throw outOfRange('buffers.length', '<= 1024 (UIO_MAXIOV)', buffers.length)
  const views: Uint8Array[] = new Array<Uint8Array>(buffers.length)
  for (let i = 0; i < buffers.length; i++) {
    const b: unknown = buffers[i]
    if (!(b instanceof Uint8Array)) throw invalidArgType(`buffers[${i}]`, 'an instance of Uint8Array', b)
    views[i] = b
  }
  const fl = flags === undefined ? 0 : flags
  if (typeof fl !== 'number' || !Number.isInteger(fl) || fl < 0) throw outOfRange('flags', 'an integer >= 0', flags)
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0))) throw outOfRange('timeoutMs', '>= 0', timeoutMs)
  try {
    return native.recvmmsg(f, views, fl, timeoutMs as number) as ReceivedInfo[]
  } catch (error) {
    throw fromNative(error)
  }
}
