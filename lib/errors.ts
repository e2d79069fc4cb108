// Errors in Node's own shapes: TypeError/RangeError with `code` (ERR_INVALID_ARG_TYPE, ...),
// system errors with `code`, `errno`, `syscall`, and SendError for a batch that stopped at a
// failing message (with `index`, `sent`, `address`, `port`).
import { getSystemErrorName, inspect } from 'node:util'

type ErrorClass = new (message: string) => Error

function makeError<T extends Error>(Base: ErrorClass, code: string, message: string): T & { code: string } {
  const error = new Base(message) as T & { code: string }
  Object.defineProperty(error, 'code', { value: code, enumerable: true, writable: true, configurable: true })
  // Node's errors print as "TypeError [ERR_X]: message".
  if (typeof error.stack === 'string') {
    error.stack = error.stack.replace(/^(\w*Error)/, `$1 [${code}]`)
  }
  return error
}

/** A `TypeError` with a Node error code (`ERR_INVALID_ARG_TYPE`, ...). */
export function typeError(code: string, message: string): TypeError & { code: string } {
  return makeError<TypeError>(TypeError, code, message)
}

/** A `RangeError` with a Node error code (`ERR_OUT_OF_RANGE`, `ERR_SOCKET_BAD_PORT`, ...). */
export function rangeError(code: string, message: string): RangeError & { code: string } {
  return makeError<RangeError>(RangeError, code, message)
}

/** A plain `Error` with a Node error code (`ERR_SOCKET_DGRAM_NOT_RUNNING`, ...). */
export function codedError(code: string, message: string): Error & { code: string } {
  return makeError<Error>(Error, code, message)
}

/** How Node describes a received value in argument errors ("Received type number (42)"). */
export function received(value: unknown): string {
  if (value == null) return ` Received ${value}`
  if (typeof value === 'function') return ` Received function ${value.name}`
  if (typeof value === 'object') {
    if (value.constructor?.name) return ` Received an instance of ${value.constructor.name}`
    return ` Received ${inspect(value, { depth: -1 })}`
  }
  let shown = inspect(value, { colors: false })
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`
  return ` Received type ${typeof value} (${shown})`
}

/** `ERR_INVALID_ARG_TYPE` in Node's wording. */
export function invalidArgType(name: string, expected: string, value: unknown): TypeError & { code: string } {
  const what = name.includes('.') || name.includes('[') ? `"${name}" property` : `"${name}" argument`
  return typeError('ERR_INVALID_ARG_TYPE', `The ${what} must be ${expected}.${received(value)}`)
}

/** `ERR_OUT_OF_RANGE` in Node's wording. */
export function outOfRange(name: string, range: string, value: unknown): RangeError & { code: string } {
  return rangeError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${String(value)}`)
}

/** A system error as Node makes them: message "syscall CODE", `code`, `errno` (negative), `syscall`. */
export interface SystemErrorFields {
  code: string
  errno: number
  syscall: string
}

/**
 * A batch send that stopped at a failing message. Messages `0..sent` went out (in order);
 * message `index` is the one the kernel refused (`sent === index`, except for a "soft" error
 * the kernel reported about an earlier datagram after taking this one: then `sent === index + 1`).
 * Resume from `sent`.
 */
export class SendError extends Error implements SystemErrorFields {
  /** The errno's name, e.g. `'EMSGSIZE'`, `'ECONNREFUSED'`, `'EAGAIN'`. */
  code: string
  /** The errno, negative as in Node (`-90` for EMSGSIZE). */
  errno: number
  /** The call that failed: `'sendmmsg'`, or `'sendto'` / `'sendmsg'` for a message sent on its own (a lone datagram, a retry, a GSO send). */
  syscall: string
  /** Index (in the caller's batch) of the message that failed. */
  index: number
  /** Messages of the batch that were sent before it stopped. */
  sent: number
  /**
   * Datagrams of message `sent` that went out too: non-zero only when a message with a
   * `segmentSize`, sent datagram by datagram (no GSO), was cut short. They are not sent again
   * by `send()`; after `trySend`, resend that message's bytes from `segmentsSent * segmentSize`.
   */
  segmentsSent = 0
  /** Destination of the failed message, when known. */
  address?: string
  port?: number

  constructor(fields: SystemErrorFields & { index: number; sent: number; address?: string; port?: number }) {
    super(`${fields.syscall} ${fields.code} (message ${fields.index})`)
    this.name = 'SendError'
    this.code = fields.code
    this.errno = fields.errno
    this.syscall = fields.syscall
    this.index = fields.index
    this.sent = fields.sent
    if (fields.address !== undefined) this.address = fields.address
    if (fields.port !== undefined) this.port = fields.port
  }
}

interface NativeFailure {
  code?: string
  errno?: number
  syscall?: string
  index?: number
  sent?: number
  message?: string
}

/** The one place where binding errors become public errors. `offset` shifts batch indexes. */
export function fromNative(error: unknown, offset = 0, locate?: (index: number) => { address?: string; port?: number }): unknown {
  const e = error as NativeFailure
  if (e && typeof e === 'object' && typeof e.errno === 'number' && typeof e.syscall === 'string') {
    const code = safeErrorName(e.errno)
    if (typeof e.index === 'number') {
      const index = e.index + offset
      return new SendError({ code, errno: e.errno, syscall: e.syscall, index, sent: (e.sent ?? e.index) + offset, ...locate?.(index) })
    }
    return systemError(e.syscall, e.errno)
  }
  if (e && typeof e === 'object' && e.code === 'ERR_INVALID_STATE' && typeof e.index === 'number') {
    const out = codedError('ERR_INVALID_STATE', `The bytes of message ${e.index + offset} were detached, transferred or shrunk after they were validated`) as Error & { index?: number; sent?: number }
    out.index = e.index + offset
    out.sent = (e.sent ?? 0) + offset
    return out
  }
  return error
}

function safeErrorName(errno: number): string {
  try {
    return getSystemErrorName(errno)
  } catch {
    return 'UNKNOWN'
  }
}

/** A Node-style system error: `new Error('bind EADDRINUSE')` with `code`, `errno`, `syscall`. */
export function systemError(syscall: string, errno: number, extra?: Record<string, unknown>): Error & SystemErrorFields {
  const code = safeErrorName(errno)
  const error = new Error(`${syscall} ${code}${extra?.address !== undefined ? ` ${String(extra.address)}${extra.port !== undefined ? `:${String(extra.port)}` : ''}` : ''}`) as Error & SystemErrorFields
  error.errno = errno
  error.code = code
  error.syscall = syscall
  if (extra) Object.assign(error, extra)
  return error
}
