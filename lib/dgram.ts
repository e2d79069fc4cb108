// A drop-in for `node:dgram` over UdpSocket: the same arguments, events, errors and
// ordering as Node 18–24's dgram, but `send()` calls made in one turn of the event loop
// leave in ONE sendmmsg(2) batch (flushed by a microtask when the turn's synchronous code ends).
//
// State lives in #private fields so that subclasses and users can add their own properties.
import { EventEmitter } from 'node:events'
import * as dns from 'node:dns'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { deprecate, getSystemErrorName, getSystemErrorMap } from 'node:util'

import { UdpSocket, type SocketType } from './udp'
import { codedError, invalidArgType, rangeError, received, SendError, typeError } from './errors'
import { isIPLiteral } from './payload'
import type { RemoteInfo } from './receive'

export type { SocketType, RemoteInfo }

/** dgram's `lookup` option: called as `lookup(hostname, family, callback)` (family 4 or 6). */
export type DgramLookup = (
  hostname: string,
  family: number,
  callback: (err: NodeJS.ErrnoException | null, address: string, family?: number) => void,
) => void

export interface SocketOptions {
  type: SocketType
  reuseAddr?: boolean
  reusePort?: boolean
  ipv6Only?: boolean
  recvBufferSize?: number
  sendBufferSize?: number
  lookup?: DgramLookup
  signal?: AbortSignal
}

export interface BindOptions {
  port?: number
  address?: string
  exclusive?: boolean
  fd?: number
}

export interface AddressInfo {
  address: string
  family: string
  port: number
}

type SendCallback = (error: Error | null, bytes: number) => void
type Message = string | NodeJS.ArrayBufferView | ReadonlyArray<string | NodeJS.ArrayBufferView>

const UNBOUND = 0
const BINDING = 1
const BOUND = 2
const DISCONNECTED = 0
const CONNECTING = 1
const CONNECTED = 2

const UV_EBADF = -9
const UV_EINVAL = -22
const UV_ECANCELED = -125

const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')

/** One datagram waiting for the batch that the next microtask sends. */
interface PendingSend {
  /** The datagram: one piece as itself (the common case: no array made), or several. */
  body: Uint8Array | Uint8Array[]
  bytes: number
  /** Resolved destination; null: the connected peer. */
  ip: string | null
  port: number
  /** What the caller passed, for error messages (dgram reports the given address). */
  givenAddress: string | undefined
  callback: SendCallback | undefined
  /** False while its hostname is being resolved. */
  ready: boolean
}

// ---- Node-shaped errors ------------------------------------------------------------------------

function errorName(errno: number): string {
  try {
    return getSystemErrorName(errno)
  } catch {
    return 'UNKNOWN'
  }
}

/** Node's `errnoException`: `new Error('setTTL EBADF')` with errno, code, syscall. */
function errnoException(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = errorName(errno)
  const error = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException
  error.errno = errno
  error.code = code
  error.syscall = syscall
  return error
}

/** Node's `exceptionWithHostPort`: `send EMSGSIZE 127.0.0.1:41234`, plus address and port. */
function exceptionWithHostPort(errno: number, syscall: string, address: string | undefined, port: number | undefined): Error {
  const code = errorName(errno)
  let details = ''
  if (port !== undefined && port > 0) details = ` ${address}:${port}`
  else if (address) details = ` ${address}`
  const error = new Error(`${syscall} ${code}${details}`) as NodeJS.ErrnoException & { address?: string; port?: number }
  error.errno = errno
  error.code = code
  error.syscall = syscall
  error.address = address
  if (port !== undefined && port > 0) error.port = port
  return error
}

/** The errno of an error the UdpSocket threw (negative, as in Node), if it is a system error. */
function errnoOf(error: unknown): number | undefined {
  const errno = (error as { errno?: unknown } | null)?.errno
  return typeof errno === 'number' ? errno : undefined
}

/** Node's SystemError (as `ERR_SOCKET_BUFFER_SIZE` is): `info`, and errno/syscall mirrored from it. */
class SystemError extends Error {
  code: string
  info: { errno: number; code: string; message: string; syscall: string }
  declare errno: number
  declare syscall: string
  constructor(code: string, prefix: string, errno: number, syscall: string) {
    const name = errorName(errno)
    const description = getSystemErrorMap().get(errno)?.[1] ?? 'unknown error'
    super(`${prefix}: ${syscall} returned ${name} (${description})`)
    this.code = code
    this.info = { errno, code: name, message: description, syscall }
    for (const key of ['errno', 'syscall'] as const) {
      Object.defineProperty(this, key, {
        enumerable: true,
        configurable: true,
        get: () => this.info[key],
        set: (value: never) => { this.info[key] = value },
      })
    }
    if (typeof this.stack === 'string') this.stack = this.stack.replace(/^Error/, `SystemError [${code}]`)
  }
}
Object.defineProperty(SystemError.prototype, 'name', { value: 'SystemError', configurable: true, writable: true })

const ARG_TYPES = 'of type string or an instance of Buffer, TypedArray, or DataView'

function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value)
}

function validateNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
}

function validateUint32(value: unknown, name: string): void {
  validateNumber(value, name)
  if (!Number.isInteger(value)) throw rangeError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be an integer. Received ${String(value)}`)
  if (value < 0 || value > 0xffffffff) {
    throw rangeError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be >= 0 && <= 4294967295. Received ${String(value)}`)
  }
}

/** Node's `validatePort`: a number or numeric string, integer 0–65535 (0 refused unless allowed). */
function validatePort(port: unknown, allowZero: boolean): number {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.trim().length === 0) ||
      +port !== (+port >>> 0) || +port > 0xffff || (+port === 0 && !allowZero)) {
    throw rangeError('ERR_SOCKET_BAD_PORT', `Port should be ${allowZero ? '>=' : '>'} 0 and < 65536.${received(port)}.`)
  }
  return +port | 0
}

function notRunning(): Error {
  return codedError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running')
}

// ---- payloads ----------------------------------------------------------------------------------

function isView(value: unknown): value is NodeJS.ArrayBufferView {
  return ArrayBuffer.isView(value)
}

function asBytes(value: NodeJS.ArrayBufferView): Uint8Array {
  return value instanceof Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
}

/** dgram's `sliceBuffer`: `buffer[offset, offset + length)` as a view (no copy). */
function sliceBuffer(buffer: unknown, offset: unknown, length: unknown): Uint8Array {
  let view: Uint8Array
  if (typeof buffer === 'string') view = Buffer.from(buffer)
  else if (isView(buffer)) view = asBytes(buffer)
  else throw invalidArgType('buffer', ARG_TYPES, buffer)
  const start = (offset as number) >>> 0
  const count = (length as number) >>> 0
  if (start > view.byteLength) throw rangeError('ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds')
  if (start + count > view.byteLength) throw rangeError('ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds')
  return view.subarray(start, start + count)
}

/**
 * The body of one datagram: one piece as itself, or several in a new array (later changes to
 * the caller's array do not count). An empty list is one empty piece.
 */
function toBody(message: unknown): Uint8Array | Uint8Array[] {
  if (!Array.isArray(message)) {
    if (typeof message === 'string') return Buffer.from(message)
    if (!isView(message)) throw invalidArgType('buffer', ARG_TYPES, message)
    return asBytes(message)
  }
  const pieces = new Array<Uint8Array>(message.length)
  for (let i = 0; i < message.length; i++) {
    const piece: unknown = message[i]
    if (typeof piece === 'string') pieces[i] = Buffer.from(piece)
    else if (isView(piece)) pieces[i] = asBytes(piece)
    else throw invalidArgType('buffer list arguments', ARG_TYPES, message)
  }
  if (pieces.length <= 1) return pieces.length === 1 ? pieces[0] as Uint8Array : Buffer.alloc(0)
  return pieces
}

// ---- Socket ------------------------------------------------------------------------------------

/** `dgram.Socket`, batching sends per event-loop turn. */
export class Socket extends EventEmitter {
  type: SocketType
  #udp: UdpSocket
  #lookup: DgramLookup | undefined
  #bindState = UNBOUND
  #connectState = DISCONNECTED
  #closed = false
  /** Work deferred until an implicit or pending bind finishes (dgram's `state.queue`). */
  #afterBind: Array<() => void> | undefined = undefined
  #recvBufferSize: number | undefined
  #sendBufferSize: number | undefined
  /** Sends of this turn (and any still resolving), in call order. */
  #pending: PendingSend[] = []
  #flushScheduled = false
  /** A batch is waiting for the kernel's send buffer: later batches wait behind it. */
  #inFlight: PendingSend[] | null = null
  /** dgram's `state.receiving`: delivering 'message' events (bound, not stopped). */
  #receiving = false
  #onMessage: ((msg: Buffer, rinfo: RemoteInfo) => void) | undefined = undefined
  /** dgram's `state.reuseAddr`, as given (only for the deprecated `_reuseAddr`). */
  #reuseAddr: unknown
  /** What was assigned to the deprecated `_handle` (the getter then returns it, as dgram's). */
  #assignedHandle: unknown = NO_HANDLE
  #legacyHandle: LegacyHandle | undefined

  /** @deprecated DEP0112 (as in dgram). */
  declare _handle: LegacyHandle | null
  /** @deprecated DEP0112 */
  declare _receiving: boolean
  /** @deprecated DEP0112 */
  declare _bindState: number
  /** @deprecated DEP0112 */
  declare _queue: Array<() => void> | undefined
  /** @deprecated DEP0112 */
  declare _reuseAddr: boolean | undefined
  /** @deprecated DEP0112 */
  declare _healthCheck: () => void
  /** @deprecated DEP0112 */
  declare _stopReceiving: () => void

  // dgram's deprecated private accessors (DEP0112): non-enumerable prototype getters/setters
  // over the real #private state, warning once per process (util.deprecate with a code).
  static {
    const property = <T>(name: string, get: (socket: Socket) => T, set: (socket: Socket, value: T) => void): void => {
      const message = `Socket.prototype.${name} is deprecated`
      Object.defineProperty(Socket.prototype, name, {
        get: deprecate(function (this: Socket) { return get(this) }, message, 'DEP0112'),
        set: deprecate(function (this: Socket, value: T) { set(this, value) }, message, 'DEP0112'),
      })
    }
    property('_handle', (socket) => socket.#handleView(), (socket, value) => { socket.#assignedHandle = value })
    property('_receiving', (socket) => socket.#receiving, (socket, value) => { socket.#receiving = value })
    property('_bindState', (socket) => socket.#bindState, (socket, value) => { socket.#bindState = value })
    property('_queue', (socket) => socket.#afterBind, (socket, value) => { socket.#afterBind = value ?? undefined })
    property('_reuseAddr', (socket) => socket.#reuseAddr, (socket, value) => { socket.#reuseAddr = value })
    Socket.prototype._healthCheck = deprecate(function (this: Socket) {
      this.#healthCheck()
    }, 'Socket.prototype._healthCheck() is deprecated', 'DEP0112')
    Socket.prototype._stopReceiving = deprecate(function (this: Socket) {
      this.#stopReceiving()
    }, 'Socket.prototype._stopReceiving() is deprecated', 'DEP0112')
  }

  /** dgram's `state.handle`: null once closed. */
  #handleView(): unknown {
    if (this.#assignedHandle !== NO_HANDLE) return this.#assignedHandle
    if (this.#closed) return null
    this.#legacyHandle ??= new LegacyHandle(this, () => this.#udp)
    return this.#legacyHandle
  }

  /** dgram's `stopReceiving`: no more 'message' events (the socket stays open). */
  #stopReceiving(): void {
    if (!this.#receiving) return
    if (this.#onMessage !== undefined) this.#udp.removeListener('message', this.#onMessage)
    this.#onMessage = undefined
    this.#receiving = false
  }

  constructor(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void) {
    super()
    let options: SocketOptions | undefined
    let socketType: unknown = type
    if (type !== null && typeof type === 'object') {
      options = type
      socketType = options.type
      if (options.recvBufferSize) validateUint32(options.recvBufferSize, 'options.recvBufferSize')
      if (options.sendBufferSize) validateUint32(options.sendBufferSize, 'options.sendBufferSize')
      this.#recvBufferSize = options.recvBufferSize
      this.#sendBufferSize = options.sendBufferSize
      if (options.lookup !== undefined) {
        if (typeof options.lookup !== 'function') throw invalidArgType('lookup', 'of type function', options.lookup)
        this.#lookup = options.lookup as DgramLookup
      }
    }
    if (socketType !== 'udp4' && socketType !== 'udp6') {
      throw typeError('ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6')
    }
    this.type = socketType
    this.#reuseAddr = options && options.reuseAddr
    this.#udp = this.#newHandle(options)
    if (typeof listener === 'function') this.on('message', listener)

    const signal = options?.signal
    if (signal !== undefined) {
      if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) {
        throw invalidArgType('options.signal', 'an instance of AbortSignal', signal)
      }
      const onAbort = (): void => {
        if (!this.#closed) this.close()
      }
      if (signal.aborted) {
        onAbort()
      } else {
        signal.addEventListener('abort', onAbort, { once: true })
        this.once('close', () => signal.removeEventListener('abort', onAbort))
      }
    }
  }

  #newHandle(options: SocketOptions | undefined, fd?: number): UdpSocket {
    const udpOptions = {
      type: this.type,
      reuseAddr: options?.reuseAddr === true,
      reusePort: options?.reusePort === true,
      ...(this.type === 'udp6' && options?.ipv6Only !== undefined ? { ipv6Only: !!options.ipv6Only } : {}),
    }
    const udp = fd === undefined ? new UdpSocket(udpOptions) : UdpSocket.fromFd(fd, udpOptions)
    udp.on('error', (error: unknown) => this.emit('error', error))
    return udp
  }

  #healthCheck(): void {
    if (this.#closed) throw notRunning()
  }

  #loopback(): string {
    return this.type === 'udp4' ? '127.0.0.1' : '::1'
  }

  #family(): number {
    return this.type === 'udp4' ? 4 : 6
  }

  /** Resolves with the `lookup` option, else `dns.lookup` (looked up now, so it can be replaced). */
  #resolve(address: string, callback: (error: Error | null, ip: string) => void): void {
    const lookup = this.#lookup ?? (dns.lookup as unknown as DgramLookup)
    lookup(address, this.#family(), (error, ip) => callback(error, ip))
  }

  // ---- bind / connect ------------------------------------------------------------------------

  bind(port?: number, address?: string, callback?: () => void): this
  bind(port?: number, callback?: () => void): this
  bind(callback?: () => void): this
  bind(options: BindOptions, callback?: () => void): this
  bind(port_?: unknown, address_?: unknown, ..._rest: unknown[]): this {
    this.#healthCheck()
    if (this.#bindState !== UNBOUND) throw codedError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound')
    this.#bindState = BINDING

    // The last argument, if a function, is a 'listening' listener that a bind error removes.
    const callback: unknown = arguments.length > 0 ? arguments[arguments.length - 1] : undefined
    if (typeof callback === 'function') {
      const removeListeners = (): void => {
        this.removeListener('error', removeListeners)
        this.removeListener('listening', onListening)
      }
      const onListening = (): void => {
        removeListeners()
        callback.call(this)
      }
      this.on('error', removeListeners)
      this.on('listening', onListening)
    }

    let port: unknown = port_
    let address: unknown
    if (port !== null && typeof port === 'object') {
      const options = port as BindOptions
      if (Number.isInteger(options.fd) && (options.fd as number) > 0) return this.#bindFd(options.fd as number)
      address = options.address || ''
      port = options.port
    } else {
      address = typeof address_ === 'function' ? '' : address_
    }
    if (!address) address = this.type === 'udp4' ? '0.0.0.0' : '::'

    this.#resolve(address as string, (error, ip) => {
      if (this.#closed) return // closed meanwhile
      if (error) {
        this.#bindState = UNBOUND
        this.emit('error', error)
        return
      }
      try {
        // libuv takes the port as ToUint32 cut to 16 bits (a function or junk is 0), as dgram passes it.
        this.#udp.bind((Number(port) >>> 0) & 0xffff, ip)
      } catch (e) {
        this.#bindState = UNBOUND
        const errno = errnoOf(e)
        this.emit('error', errno === undefined ? e : exceptionWithHostPort(errno, 'bind', ip, port as number))
        return
      }
      this.#startListening()
    })
    return this
  }

  /** `bind({ fd })`: adopt an existing UDP descriptor (a private duplicate of it). */
  #bindFd(fd: number): this {
    let udp: UdpSocket
    try {
      udp = this.#newHandle(undefined, fd)
    } catch (e) {
      this.#bindState = UNBOUND
      const errno = errnoOf(e)
      throw errno === undefined ? e : errnoException(errno, 'open')
    }
    this.#udp.close()
    this.#udp = udp
    this.#startListening()
    return this
  }

  #startListening(): void {
    this.#bindState = BOUND
    // dgram receives from bind on, listener or not (datagrams with no listener are dropped).
    this.#onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
      if (rinfo.address.includes('%')) rinfo.address = withScopeName(rinfo.address)
      this.emit('message', msg, rinfo)
    }
    this.#udp.on('message', this.#onMessage)
    this.#receiving = true
    if (this.#recvBufferSize) this.#bufferSize(this.#recvBufferSize, true)
    if (this.#sendBufferSize) this.#bufferSize(this.#sendBufferSize, false)
    this.emit('listening')
  }

  /** Defers `work` until the pending bind is done (dropped if it fails), as dgram's enqueue. */
  #enqueue(work: () => void): void {
    if (this.#afterBind === undefined) {
      this.#afterBind = []
      const onError = (): void => {
        this.removeListener('listening', onListening)
        this.#afterBind = undefined
      }
      const onListening = (): void => {
        this.removeListener(EventEmitter.errorMonitor, onError)
        const queue = this.#afterBind ?? []
        this.#afterBind = undefined
        for (const entry of queue) entry()
      }
      this.once(EventEmitter.errorMonitor, onError)
      this.once('listening', onListening)
    }
    this.#afterBind.push(work)
  }

  connect(port: number, address?: string, callback?: () => void): void
  connect(port: number, callback: () => void): void
  connect(port: unknown, address?: unknown, callback?: unknown): void {
    const p = validatePort(port, false)
    if (typeof address === 'function') {
      callback = address
      address = ''
    } else if (address === undefined) {
      address = ''
    }
    validateString(address, 'address')
    if (this.#connectState !== DISCONNECTED) throw codedError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected')
    this.#connectState = CONNECTING
    if (this.#bindState === UNBOUND) this.bind({ port: 0, exclusive: true }, null as never)
    const cb = typeof callback === 'function' ? (callback as (error?: Error) => void) : undefined
    if (this.#bindState !== BOUND) {
      this.#enqueue(() => this.#connect(p, address as string, cb))
      return
    }
    this.#connect(p, address, cb)
  }

  #connect(port: number, address: string, callback: ((error?: Error) => void) | undefined): void {
    if (callback) this.once('connect', callback)
    this.#resolve(address || this.#loopback(), (lookupError, ip) => {
      if (this.#closed) return
      let error: Error | null = lookupError
      if (!error) {
        try {
          this.#udp.connect(port, ip)
        } catch (e) {
          const errno = errnoOf(e)
          error = errno === undefined ? (e as Error) : exceptionWithHostPort(errno, 'connect', address, port)
        }
      }
      if (error) {
        const failure = error
        this.#connectState = DISCONNECTED
        process.nextTick(() => {
          if (callback) {
            this.removeListener('connect', callback)
            callback(failure)
          } else {
            this.emit('error', failure)
          }
        })
        return
      }
      this.#connectState = CONNECTED
      process.nextTick(() => this.emit('connect'))
    })
  }

  disconnect(): void {
    if (this.#connectState !== CONNECTED) throw codedError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected')
    try {
      this.#udp.disconnect()
    } catch (e) {
      const errno = errnoOf(e)
      throw errno === undefined ? e : errnoException(errno, 'connect')
    }
    this.#connectState = DISCONNECTED
  }

  // ---- send ----------------------------------------------------------------------------------

  send(msg: Message, port?: number, address?: string, callback?: SendCallback): void
  send(msg: Message, port?: number, callback?: SendCallback): void
  send(msg: Message, callback?: SendCallback): void
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port?: number, address?: string, callback?: SendCallback): void
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port?: number, callback?: SendCallback): void
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, callback?: SendCallback): void
  // The argument shuffling follows dgram's exactly (its "valid combinations" list).
  send(buffer: unknown, offset?: unknown, length?: unknown, port?: unknown, address?: unknown, callback?: unknown): void {
    const connected = this.#connectState === CONNECTED
    let message: unknown = buffer
    if (!connected) {
      if (address || (port && typeof port !== 'function')) {
        message = sliceBuffer(buffer, offset, length)
      } else {
        callback = port
        port = offset
        address = length
      }
    } else {
      if (typeof length === 'number') {
        message = sliceBuffer(buffer, offset, length)
        if (typeof port === 'function') {
          callback = port
          port = null
        }
      } else {
        callback = offset
      }
      if (port || address) throw codedError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected')
    }
    const body = toBody(message)
    let destinationPort = 0
    if (!connected) destinationPort = validatePort(port, false)
    if (typeof callback !== 'function') callback = undefined
    if (typeof address === 'function') {
      callback = address
      address = undefined
    } else if (address !== null && address !== undefined) {
      validateString(address, 'address')
    }
    this.#healthCheck()
    if (this.#bindState === UNBOUND) this.bind({ port: 0, exclusive: true }, null as never)
    const given = (address ?? undefined) as string | undefined
    const cb = callback as SendCallback | undefined
    if (this.#bindState !== BOUND) {
      // Queued until 'listening'; the connection state is read again then, as dgram does.
      this.#enqueue(() => this.send(body, destinationPort || undefined, given, cb))
      return
    }
    let bytes = 0
    if (Array.isArray(body)) for (const piece of body) bytes += piece.byteLength
    else bytes = body.byteLength
    const pending: PendingSend = { body, bytes, ip: null, port: destinationPort, givenAddress: given, callback: cb, ready: true }
    this.#pending.push(pending)
    if (!connected) {
      const target = given || this.#loopback()
      // The default lookup of an IP literal returns it unchanged: skip it and keep the batch.
      if (this.#lookup !== undefined || !isIPLiteral(target)) {
        pending.ready = false
        this.#resolve(target, (error, ip) => this.#resolved(pending, error, ip))
      } else {
        pending.ip = target
      }
    }
    this.#scheduleFlush()
  }

  /** dgram's legacy `sendto(buffer, offset, length, port, address[, callback])`. */
  sendto(buffer: string | NodeJS.ArrayBufferView, offset: number, length: number, port: number, address: string, callback?: SendCallback): void {
    validateNumber(offset, 'offset')
    validateNumber(length, 'length')
    validateNumber(port, 'port')
    validateString(address, 'address')
    this.send(buffer, offset, length, port, address, callback)
  }

  #resolved(pending: PendingSend, error: Error | null, ip: string): void {
    if (error) {
      const at = this.#pending.indexOf(pending)
      if (at >= 0) this.#pending.splice(at, 1)
      if (pending.callback) process.nextTick(pending.callback, error, 0)
      else process.nextTick(() => this.emit('error', error))
    } else {
      pending.ip = ip
      pending.ready = true
    }
    this.#scheduleFlush()
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    queueMicrotask(() => {
      this.#flushScheduled = false
      this.#flush()
    })
  }

  /** Sends the leading ready sends as one batch (later ones wait for their lookups). */
  #flush(): void {
    if (this.#closed || this.#inFlight !== null) return
    let ready = 0
    while (ready < this.#pending.length && (this.#pending[ready] as PendingSend).ready) ready++
    if (ready === 0) return
    this.#dispatch(this.#pending.splice(0, ready), 0)
  }

  /** Sends `batch[from..]`: now while the kernel takes it, then (buffer full) waiting for writability. */
  #dispatch(batch: PendingSend[], from: number): void {
    let next = from
    while (next < batch.length) {
      if (this.#closed) return this.#cancel(batch.slice(next))
      let sent: number
      try {
        sent = this.#udp.trySend(...sendArguments(batch, next))
      } catch (e) {
        next = this.#failedAt(batch, next, e)
        continue
      }
      this.#succeeded(batch, next, next + sent)
      next += sent
      if (next < batch.length) {
        // Send buffer full: UdpSocket.send waits (epoll) and resumes; later batches wait behind.
        const rest = batch.slice(next)
        this.#inFlight = rest
        this.#udp.send(...sendArguments(rest, 0)).then(
          () => this.#afterInFlight(rest, rest.length),
          (e: unknown) => {
            if (!this.#closed) return this.#afterInFlight(rest, this.#failedAt(rest, 0, e))
            // Closed while waiting: what the kernel took succeeded, the rest is cancelled.
            const sent = Math.min(Math.max(0, Number((e as { sent?: number }).sent) || 0), rest.length)
            this.#succeeded(rest, 0, sent)
            this.#cancel(rest.slice(sent))
            this.#inFlight = null
          },
        )
        return
      }
    }
  }

  #afterInFlight(rest: PendingSend[], resumeAt: number): void {
    if (resumeAt === rest.length) this.#succeeded(rest, 0, rest.length)
    this.#inFlight = null
    if (this.#closed) return
    if (resumeAt >= 0 && resumeAt < rest.length) this.#dispatch(rest, resumeAt)
    this.#flush()
  }

  /** Handles a batch error from message `from` on; returns where to resume. */
  #failedAt(batch: PendingSend[], from: number, error: unknown): number {
    if (error instanceof SendError) {
      const failed = from + error.index
      this.#succeeded(batch, from, failed)
      const pending = batch[failed] as PendingSend
      const port = pending.ip === null ? undefined : pending.port
      const address = pending.ip === null ? undefined : (pending.givenAddress ?? pending.ip)
      this.#report(pending, exceptionWithHostPort(error.errno, 'send', address, port))
      return from + Math.max(error.sent, error.index + 1)
    }
    // Not about one message (the socket closed, ...): the rest of the batch fails with it.
    for (let i = from; i < batch.length; i++) this.#report(batch[i] as PendingSend, error)
    return batch.length
  }

  #succeeded(batch: PendingSend[], from: number, to: number): void {
    // One tick for the whole batch's callbacks, called in order (as dgram's one tick each).
    let withCallback: PendingSend[] | null = null
    for (let i = from; i < to; i++) {
      const pending = batch[i] as PendingSend
      if (pending.callback) (withCallback ??= []).push(pending)
    }
    if (withCallback !== null) process.nextTick(runSendCallbacks, withCallback, 0)
  }

  /** Like dgram: a failed send's error goes to its callback; without one it is dropped. */
  #report(pending: PendingSend, error: unknown): void {
    if (pending.callback) process.nextTick(pending.callback, error, 0)
  }

  /** Sends still queued when the socket closes end with ECANCELED, as libuv's do. */
  #cancel(sends: PendingSend[]): void {
    for (const pending of sends) {
      const port = pending.ip === null ? undefined : pending.port
      this.#report(pending, exceptionWithHostPort(UV_ECANCELED, 'send', pending.ip === null ? undefined : (pending.givenAddress ?? pending.ip), port))
    }
  }

  /** Bytes of datagrams not yet taken by the kernel. */
  getSendQueueSize(): number {
    let bytes = 0
    for (const pending of this.#pending) bytes += pending.bytes
    for (const pending of this.#inFlight ?? []) bytes += pending.bytes
    return bytes
  }

  /** Datagrams not yet taken by the kernel. */
  getSendQueueCount(): number {
    return this.#pending.length + (this.#inFlight?.length ?? 0)
  }

  // ---- lifetime ------------------------------------------------------------------------------

  close(callback?: () => void): this {
    if (typeof callback === 'function') this.on('close', callback)
    if (this.#afterBind !== undefined) {
      this.#afterBind.push(() => this.close())
      return this
    }
    this.#healthCheck()
    // As in dgram (whose sends wait for a lookup tick), sends of this turn that have not left
    // are dropped without callbacks; a batch waiting for the kernel ends with ECANCELED.
    this.#stopReceiving()
    this.#closed = true
    this.#pending = []
    this.#udp.close()
    process.nextTick(() => this.emit('close'))
    return this
  }

  [asyncDispose](): Promise<void> {
    if (this.#closed) return Promise.resolve()
    return new Promise((resolve) => this.close(() => resolve()))
  }

  ref(): this {
    if (!this.#closed) this.#udp.ref()
    return this
  }

  unref(): this {
    if (!this.#closed) this.#udp.unref()
    return this
  }

  // ---- addresses -----------------------------------------------------------------------------

  address(): AddressInfo {
    this.#healthCheck()
    // Like libuv, there is no bound descriptor to ask before the bind completes.
    if (this.#bindState !== BOUND) throw errnoException(UV_EBADF, 'getsockname')
    const info = this.#udp.address()
    if (info.address.includes('%')) info.address = withScopeName(info.address)
    return info
  }

  remoteAddress(): AddressInfo {
    this.#healthCheck()
    if (this.#connectState !== CONNECTED) throw codedError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected')
    try {
      return this.#udp.remoteAddress()
    } catch (e) {
      const errno = errnoOf(e)
      throw errno === undefined ? e : errnoException(errno, 'getpeername')
    }
  }

  // ---- options -------------------------------------------------------------------------------

  /** Runs a socket option call with dgram's errors (EBADF before bind, like libuv). */
  #sockopt<T>(syscall: string, body: () => T): T {
    if (this.#closed) throw notRunning()
    if (this.#bindState !== BOUND) throw errnoException(UV_EBADF, syscall)
    try {
      return body()
    } catch (e) {
      // The handle refuses some values before the kernel sees them (e.g. an address of the
      // other family); libuv reports those as EINVAL.
      throw errnoException(errnoOf(e) ?? UV_EINVAL, syscall)
    }
  }

  setBroadcast(flag: boolean): void {
    this.#sockopt('setBroadcast', () => this.#udp.setBroadcast(!!flag))
  }

  setTTL(ttl: number): number {
    validateNumber(ttl, 'ttl')
    return this.#sockopt('setTTL', () => this.#udp.setTTL(ttl))
  }

  setMulticastTTL(ttl: number): number {
    validateNumber(ttl, 'ttl')
    return this.#sockopt('setMulticastTTL', () => this.#udp.setMulticastTTL(ttl))
  }

  setMulticastLoopback(flag: boolean): boolean {
    this.#sockopt('setMulticastLoopback', () => this.#udp.setMulticastLoopback(!!flag))
    return flag
  }

  setMulticastInterface(interfaceAddress: string): void {
    this.#healthCheck()
    validateString(interfaceAddress, 'interfaceAddress')
    const [ip, scope] = interfaceAddress.split('%') as [string, string | undefined]
    if (isIP(ip) === 0) throw errnoException(UV_EINVAL, 'setMulticastInterface')
    this.#sockopt('setMulticastInterface', () => {
      try {
        this.#udp.setMulticastInterface(interfaceAddress)
      } catch (error) {
        // libuv turns a missing or unknown scope into scope 0 (the default interface).
        if (this.type !== 'udp6' || scope === '0') throw error
        this.#udp.setMulticastInterface(`${ip}%0`)
      }
    })
  }

  addMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#membership('addMembership', multicastAddress, interfaceAddress)
  }

  dropMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#membership('dropMembership', multicastAddress, interfaceAddress)
  }

  #membership(syscall: 'addMembership' | 'dropMembership', group: string, iface: string | undefined): void {
    this.#healthCheck()
    if (!group) throw typeError('ERR_MISSING_ARGS', 'The "multicastAddress" argument must be specified')
    try {
      this.#udp[syscall](group, iface)
    } catch (e) {
      throw errnoException(errnoOf(e) ?? UV_EINVAL, syscall) // a bad address is EINVAL in libuv
    }
  }

  /** Joins a source-specific multicast group (only `sourceAddress`'s datagrams to `groupAddress`). */
  addSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceSpecific('addSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress)
  }

  dropSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceSpecific('dropSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress)
  }

  #sourceSpecific(syscall: 'addSourceSpecificMembership' | 'dropSourceSpecificMembership', source: unknown, group: unknown, iface: unknown): void {
    this.#healthCheck()
    validateString(source, 'sourceAddress')
    validateString(group, 'groupAddress')
    // Node's handle reads the interface as a string unless it is undefined or null.
    const ifaceText = iface === undefined || iface === null ? undefined : String(iface)
    const join = syscall === 'addSourceSpecificMembership'
    try {
      if (join) this.#udp.addSourceSpecificMembership(source, group, ifaceText)
      else this.#udp.dropSourceSpecificMembership(source, group, ifaceText)
    } catch (e) {
      throw errnoException(errnoOf(e) ?? UV_EINVAL, syscall) // a bad address is EINVAL in libuv
    }
  }

  setRecvBufferSize(size: number): void {
    this.#bufferSize(size, true)
  }

  setSendBufferSize(size: number): void {
    this.#bufferSize(size, false)
  }

  getRecvBufferSize(): number {
    return this.#bufferSize(0, true)
  }

  getSendBufferSize(): number {
    return this.#bufferSize(0, false)
  }

  /** dgram's `bufferSize`: 0 reads, otherwise sets; failures are ERR_SOCKET_BUFFER_SIZE SystemErrors. */
  #bufferSize(size: number, recv: boolean): number {
    if (size >>> 0 !== size) throw typeError('ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer')
    this.#healthCheck()
    const syscall = recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size'
    const fail = (errno: number): never => {
      throw new SystemError('ERR_SOCKET_BUFFER_SIZE', 'Could not get or set buffer size', errno, syscall)
    }
    if (this.#bindState !== BOUND) fail(UV_EBADF)
    if (size > 0x7fffffff) fail(UV_EINVAL)
    try {
      if (size === 0) return recv ? this.#udp.getRecvBufferSize() : this.#udp.getSendBufferSize()
      if (recv) this.#udp.setRecvBufferSize(size)
      else this.#udp.setSendBufferSize(size)
      return size
    } catch (e) {
      return fail(errnoOf(e) ?? UV_EINVAL)
    }
  }
}

/** `fe80::1%2` → `fe80::1%eth0`, as libuv formats link-local addresses (the index if unknown). */
function withScopeName(address: string): string {
  const [ip, scope] = address.split('%') as [string, string]
  if (!/^\d+$/.test(scope)) return address
  for (const [name, infos] of Object.entries(networkInterfaces())) {
    if (infos?.some((info) => info.family === 'IPv6' && info.scopeid === Number(scope))) return `${ip}%${name}`
  }
  return address
}

/** Calls `sends[start..]`'s callbacks with `(null, bytes)`; one that throws leaves the rest to the next tick. */
function runSendCallbacks(sends: PendingSend[], start: number): void {
  for (let i = start; i < sends.length; i++) {
    const pending = sends[i] as PendingSend
    try {
      (pending.callback as SendCallback)(null, pending.bytes)
    } catch (error) {
      if (i + 1 < sends.length) process.nextTick(runSendCallbacks, sends, i + 1)
      throw error
    }
  }
}

/**
 * `trySend`'s arguments for `batch[from..]`: a lone one-piece datagram goes as `[piece], port,
 * address`, which takes the binding's single-datagram path; anything else as message objects.
 */
function sendArguments(batch: PendingSend[], from: number): [Array<Uint8Array | { data: Uint8Array | Uint8Array[]; address?: string; port?: number }>, number?, string?] {
  // The common burst: one-piece datagrams all to one destination (a game tick, a StatsD
  // flush) go as a list of Buffers, the batch path's fastest form (and GSO for equal sizes).
  const first = batch[from] as PendingSend
  let same = true
  for (let i = from; i < batch.length && same; i++) {
    const pending = batch[i] as PendingSend
    same = !Array.isArray(pending.body) && pending.ip === first.ip && pending.port === first.port
  }
  if (!same) return [entriesOf(batch, from)]
  const views = new Array<Uint8Array>(batch.length - from)
  for (let i = from; i < batch.length; i++) views[i - from] = (batch[i] as PendingSend).body as Uint8Array
  return first.ip === null ? [views] : [views, first.port, first.ip]
}

/** The batch entries for `batch[from..]`, each with its own destination (or none: the peer). */
function entriesOf(batch: PendingSend[], from: number): Array<{ data: Uint8Array | Uint8Array[]; address?: string; port?: number }> {
  const entries = new Array<{ data: Uint8Array | Uint8Array[]; address?: string; port?: number }>(batch.length - from)
  for (let i = from; i < batch.length; i++) {
    const pending = batch[i] as PendingSend
    // One piece goes as itself: a batch of those takes the spans path (destinations by id).
    const data = pending.body
    entries[i - from] = pending.ip === null ? { data } : { data, address: pending.ip, port: pending.port }
  }
  return entries
}

const NO_HANDLE = Symbol('no handle assigned')

/**
 * What the deprecated `socket._handle` and `dgram._createSocketHandle()` give: a small stand-in
 * for Node's UDP wrap (its `owner`, `fd`, ref/unref, close), not the native handle itself.
 */
export class LegacyHandle {
  owner: Socket | null
  readonly #udp: () => UdpSocket
  constructor(owner: Socket | null, udp: () => UdpSocket) {
    this.owner = owner
    this.#udp = udp
  }

  get fd(): number {
    try {
      return this.#udp().fd
    } catch {
      return -1
    }
  }

  ref(): void {
    this.#udp().ref()
  }

  unref(): void {
    this.#udp().unref()
  }

  close(): void {
    this.#udp().close()
  }
}

/** dgram's `_createSocketHandle(address, port, addressType, fd, flags)`: a handle, or a negative errno. */
function createSocketHandle(address: unknown, port: unknown, addressType: unknown, fd?: unknown, flags?: unknown): LegacyHandle | number {
  if (addressType !== 'udp4' && addressType !== 'udp6') {
    throw typeError('ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6')
  }
  const UV_UDP_REUSEADDR = 4
  const reuseAddr = ((Number(flags) | 0) & UV_UDP_REUSEADDR) !== 0
  let udp: UdpSocket
  try {
    if (Number.isInteger(fd) && (fd as number) > 0) {
      udp = UdpSocket.fromFd(fd as number, { type: addressType, reuseAddr })
    } else {
      udp = new UdpSocket({ type: addressType, reuseAddr })
      if (port || address) {
        try {
          // The handle binds synchronously to IP literals only (a hostname is EINVAL, as in libuv).
          if (address && isIP(String(address)) === 0) throw errnoException(UV_EINVAL, 'bind')
          udp.bind((Number(port) >>> 0) & 0xffff, String(address || (addressType === 'udp4' ? '0.0.0.0' : '::')))
        } catch (e) {
          udp.close()
          throw e
        }
      }
    }
  } catch (e) {
    return errnoOf(e) ?? UV_EINVAL // libuv's EINVAL for what is not an IP literal or a UDP fd
  }
  return new LegacyHandle(null, () => udp)
}

/** @deprecated DEP0112 (as in dgram). */
export const _createSocketHandle = deprecate(createSocketHandle, 'dgram._createSocketHandle() is deprecated', 'DEP0112')

/** `dgram.createSocket(type | options[, onMessage])`. */
export function createSocket(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): Socket {
  return new Socket(type, listener)
}

const dgram = { _createSocketHandle, createSocket, Socket }
export default dgram
