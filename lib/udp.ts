// UdpSocket: the package's batch socket, an EventEmitter with node:dgram's habits over the
// native handle (lib/native.ts → src/socket.rs → crates/mmsg-core).
//
// Every user value is read here, once, into a plan (lib/payload.ts); the binding is handed
// only arrays this module made. Sends that have to wait for the kernel keep their plan (never
// the user's objects) in a queue and resume from exactly the message where they stopped.
import { EventEmitter } from 'node:events'
import { constants as osConstants } from 'node:os'
import { lookup as dnsLookup } from 'node:dns'
import { isIP } from 'node:net'

import { native, type NativeQueuedError, type NativeSocket } from './native'
import {
  codedError,
  fromNative,
  invalidArgType,
  outOfRange,
  rangeError,
  SendError,
  typeError,
} from './errors'
import { checkAddress, checkBindPort, checkFlags, pinLengths, packedSpans, planBatch, planPacked, plannedLengths, releaseSpans, spansOf, toView, type BatchEntry, type Plan } from './payload'
import { ReceiveSlab, type Datagram, type RemoteInfo } from './receive'

export type SocketType = 'udp4' | 'udp6'

/** `dns.lookup`'s shape, as `node:dgram`'s `lookup` option takes it. */
export type LookupFunction = (
  hostname: string,
  options: { family: number; all?: false },
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
) => void

/** Options for {@link createSocket}, like `dgram.createSocket`'s. */
export interface UdpSocketOptions {
  type: SocketType
  /** `SO_REUSEADDR`. */
  reuseAddr?: boolean
  /** `SO_REUSEPORT`: several sockets share a port and the kernel spreads datagrams. */
  reusePort?: boolean
  /** `IPV6_V6ONLY` (udp6). */
  ipv6Only?: boolean
  /** `SO_RCVBUF` in bytes. */
  recvBufferSize?: number
  /** `SO_SNDBUF` in bytes. */
  sendBufferSize?: number
  /** Resolves hostnames (default `dns.lookup`), once per distinct name per batch. */
  lookup?: LookupFunction
  /** Aborting it closes the socket, as with dgram. */
  signal?: AbortSignal
  /** Receive memory: at most `maxDatagrams` (1–1024, default 64) of at most `maxSize` bytes (default 65535) per batch. */
  receive?: { maxDatagrams?: number; maxSize?: number }
  /** Keep ICMP and path-MTU errors as `'icmpError'` events / {@link UdpSocket.tryRecvErrors} (see {@link UdpSocket.setReceiveErrors}). */
  receiveErrors?: boolean
}

/** Who reported an {@link IcmpError}: the local stack, an ICMP or ICMPv6 message (or, rarely, another kernel origin). */
export type IcmpErrorOrigin = 'local' | 'icmp' | 'icmp6' | 'none' | `origin-${number}`

/**
 * One entry of the socket's error queue (`IP_RECVERR` / `IPV6_RECVERR`), as the
 * `'icmpError'` event and {@link UdpSocket.tryRecvErrors} give it. Despite the name, `origin`
 * may be `'local'`: the local stack refused a datagram (e.g. `EMSGSIZE` above the path MTU
 * with don't-fragment set).
 */
export interface IcmpError {
  /** Negative errno, as Node's errors have it (e.g. -111). */
  errno: number
  /** The errno's name: `'ECONNREFUSED'`, `'EMSGSIZE'`, `'EHOSTUNREACH'`, ... */
  code: string
  origin: IcmpErrorOrigin
  /** ICMP type (3 destination unreachable, 11 time exceeded) or ICMPv6 type (1 unreachable, 2 packet too big, 3 time exceeded); 0 for local errors. */
  type: number
  /** ICMP / ICMPv6 code (ICMP 3 port unreachable, 4 fragmentation needed; ICMPv6 4 port unreachable). */
  icmpCode: number
  /** The path MTU, for "fragmentation needed" (ICMP 3/4), "packet too big" (ICMPv6 2) and local `EMSGSIZE`. */
  mtu?: number
  /** Where the datagram the error is about was going (formatted as received addresses are: IPv4-mapped on udp6). */
  destination?: AddressInfo
  /** The address of the node that sent the ICMP message (a router, or the destination itself). */
  offender?: string
}

/** `setPathMtuDiscovery` modes (`IP_PMTUDISC_*`). */
export type PathMtuDiscoveryMode = 'want' | 'do' | 'dont' | 'probe'

/** Most entries kept for {@link UdpSocket.tryRecvErrors} while nobody listens for `'icmpError'`. */
const MAX_KEPT_ERRORS = 1024
/** Entries read from the native side per call. */
const ERRORS_PER_READ = 64

function toIcmpError(raw: NativeQueuedError): IcmpError {
  const entry: IcmpError = {
    errno: raw.errno,
    code: raw.code,
    origin: raw.origin as IcmpErrorOrigin,
    type: raw.type,
    icmpCode: raw.icmpCode,
  }
  const aboutMtu = (raw.origin === 'icmp' && raw.type === 3 && raw.icmpCode === 4) ||
    (raw.origin === 'icmp6' && raw.type === 2) ||
    (raw.origin === 'local' && raw.code === 'EMSGSIZE')
  if (aboutMtu && raw.info > 0) entry.mtu = raw.info
  if (raw.destination) entry.destination = raw.destination as AddressInfo
  if (raw.offender !== undefined && raw.offender !== null) entry.offender = raw.offender
  return entry
}

/** What `address()` returns. */
export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

/** Reusable receive memory for {@link UdpSocket.tryRecvBatch} / {@link UdpSocket.onBatch}. */
export interface RecvBatch {
  /** Datagrams filled by the last receive. */
  count: number
  readonly maxDatagrams: number
  readonly slotSize: number
  /** Datagram `i` is `data.subarray(i * slotSize, i * slotSize + lengths[i])`. */
  readonly data: Buffer
  readonly lengths: Uint32Array
  readonly ports: Uint16Array
  /** Sender of datagram `i`: bytes `16i..16i+16` (IPv4 as `::ffff:a.b.c.d`). */
  readonly addresses: Uint8Array
  readonly scopeIds: Uint32Array
  /**
   * Bit 1: truncated; bit 2: IPv6 sender; bit 4: no sender address; with
   * `setReceiveMetadata`: bit 8 `tos[i]` set, bit 16 `destinations`/`interfaces` set, bit 32
   * `timestamps[i]` set, bit 64 the destination is IPv6.
   */
  readonly flags: Uint8Array
  /** TOS byte / traffic class of datagram `i` (ECN: `tos[i] & 3`), with `setReceiveMetadata({ ecn: true })`. */
  readonly tos: Uint8Array
  /** Destination address of datagram `i`: bytes `16i..16i+16` (IPv4 as `::ffff:a.b.c.d`), with `packetInfo`. */
  readonly destinations: Uint8Array
  /** Arrival interface index of datagram `i`, with `packetInfo`. */
  readonly interfaces: Uint32Array
  /** Kernel receive time of datagram `i` in ns since the Unix epoch, with `timestamps`. */
  readonly timestamps: BigUint64Array
  /** Sender of datagram `i` as a string. */
  address(i: number): string
  /** Datagram `i`'s bytes (a view into `data`, valid until the next receive). */
  datagram(i: number): Buffer
  /** The kernel's drop count for the socket as of the last receive. */
  drops: number
}

const READABLE = 1
const WRITABLE = 2
const ERROR = 4
const DEFAULT_MAX_DATAGRAMS = 64
/** `sendDatagram`'s destination id for the connected peer. */
const PEER = 0xffffffff
/** Destinations the single-datagram path keeps parsed in the binding (it holds 4096). */
const MAX_FAST_DESTINATIONS = 4096
/** Batches naming more destinations than this take the general path (ids would churn the table). */
const MAX_SPAN_DESTINATIONS = 1024
/** Size of the reusable destination-id array of the spans path. */
const MAX_BATCH_IDS = 1024
/** A plan's destination index for the connected peer (payload.ts `CONNECTED`). */
const CONNECTED_INDEX = 0xffffffff
// One reusable destination-id array (see #destinationIds): the binding copies it during the call.
let spareIds: Uint32Array | null = new Uint32Array(MAX_BATCH_IDS)
/**
 * A plan's TOS bytes for the binding: copied into one reusable array (the binding copies it
 * at once, and no user code runs in between) when they fit, since the plan's own small array
 * would cost the binding a memory allocation to read (V8 moves a typed array of 64 bytes or
 * fewer off the heap on first access from native code).
 */
const tosScratch = new Uint8Array(MAX_BATCH_IDS)
function tosOf(tos: Uint8Array): Uint8Array {
  if (tos.length > tosScratch.length) return tos
  tosScratch.set(tos)
  return tosScratch.subarray(0, tos.length)
}
const DEFAULT_MAX_SIZE = 65535
const FIRST_CAPACITY = 8
/** Receive batches handled per wake-up before yielding to the event loop. */
const BATCHES_PER_WAKE = 16
// Most views passed to `socketSendViews` as arguments (one sendmmsg call's worth; a longer
// batch goes as an array, `socketSendSpans`, well inside the engine's argument limit).
const MAX_VIEW_ARGUMENTS = 1024

/**
 * Watch sockets on the JS thread's own libuv loop (no thread hop per wake-up) where the host's
 * libuv is real: Node and Electron. Bun's libuv functions are stubs that abort, so it keeps the
 * reactor thread; `SENDMMSG_REACTOR=thread` forces the thread anywhere (for tests).
 */
const WATCH_ON_LOOP = !(process.versions as Record<string, string | undefined>).bun && process.env.SENDMMSG_REACTOR !== 'thread'

const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')
const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose')

interface PendingSend {
  plan: Plan
  flags: number
  /** Next message to send. */
  next: number
  /** Datagrams of message `next` already sent (inside a message with a `segmentSize`). */
  nextSegment: number
  resolve: (sent: number) => void
  reject: (error: unknown) => void
  /** Its hostnames are still being resolved: it holds its place in the queue, unsent. */
  resolving: boolean
}

function checkCount(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value)
  return value
}

function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value)
  return value
}

/** Rethrows a listener's exception as an uncaught exception of its own (the same value). */
function rethrowLater(error: unknown): void {
  process.nextTick(() => {
    throw error
  })
}

function notRunning(): Error {
  return codedError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running')
}

/**
 * A UDP socket that sends and receives batches: one `sendmmsg(2)`/`recvmmsg(2)` per up to
 * 1024 datagrams, zero-copy on send.
 *
 * Events: `'listening'`, `'connect'`, `'messages'` (`Datagram[]` per receive batch),
 * `'message'` (`(msg: Buffer, rinfo)` per datagram, dgram's shape), `'error'`, `'close'`,
 * and with {@link UdpSocket.setReceiveErrors} `'icmpError'` ({@link IcmpError}).
 * Adding a `'message'`/`'messages'` listener starts receiving (binding an unbound socket to an
 * ephemeral port, as dgram does).
 */
export class UdpSocket extends EventEmitter {
  /** `'udp4'` or `'udp6'`. */
  readonly type: SocketType
  #native: NativeSocket
  /** `#native.id`: the hot paths call free functions by id (cheaper than a method call). */
  #nativeId = 0
  #closed = false
  #watching = false
  #refed = true
  #bound = false
  #connected = false
  #lookup: LookupFunction
  #maxDatagrams: number
  #maxSize: number
  #slab: ReceiveSlab | null = null
  /** Some receive metadata is on: slabs carry the metadata arrays. */
  #metadata = false
  #queue: PendingSend[] = []
  /** Single-datagram path: destination ids by `${port} ${address}`, and the last one used. */
  readonly #fastIds = new Map<string, number>()
  /** Bumped whenever the id table is cleared: ids taken before are gone. */
  #fastGeneration = 0
  #lastFastAddress = ''
  #lastFastPort = -1
  #lastFastId = PEER
  /** `progress[0]` of the last native send with metadata: datagrams of its first unsent message sent. */
  readonly #progress = new Uint32Array(1)
  #batchReceiver: { batch: RecvBatchImpl; handler: (batch: RecvBatch) => void } | null = null
  #iterators = 0
  #iteratorQueue: Datagram[][] = []
  #iteratorWaiters: Array<(r: IteratorResult<Datagram[]>) => void> = []
  #paused = false
  #armedRead = false
  #armedWrite = false
  #drainScheduled = false
  /** GRO was turned on at some point: the core may hold split-off datagrams (`buffered()`). */
  #groUsed = false
  /** The native watcher stays armed after a wake-up (libuv poll) instead of being one-shot. */
  #levelTriggered = false
  /** `setReceiveErrors(true)`: every error-queue entry is kept and surfaced. */
  #receiveErrors = false
  /** Entries read from the native side, delivered on the next tick. */
  #errorInbox: IcmpError[] = []
  #errorDeliveryScheduled = false
  /** Entries nobody listened for, for `tryRecvErrors()` (at most MAX_KEPT_ERRORS). */
  #errorBacklog: IcmpError[] = []
  #errorOverflow = 0
  /** The watcher is armed for errors only (an `'icmpError'` listener, nothing else wanted). */
  #armedErrors = false

  /** Use {@link createSocket} (or `new UdpSocket('udp4')`). */
  constructor(typeOrOptions: SocketType | UdpSocketOptions, fromFd?: number) {
    super()
    const options: UdpSocketOptions = typeof typeOrOptions === 'string' ? { type: typeOrOptions } : typeOrOptions
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
    const type = options.type
    if (type !== 'udp4' && type !== 'udp6') {
      throw typeError('ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6')
    }
    this.type = type
    const lookup = options.lookup ?? (dnsLookup as unknown as LookupFunction)
    if (typeof lookup !== 'function') throw invalidArgType('options.lookup', 'of type function', lookup)
    this.#lookup = lookup
    const receive = options.receive ?? {}
    this.#maxDatagrams = checkCount(receive.maxDatagrams, 'receive.maxDatagrams', 1, 1024, DEFAULT_MAX_DATAGRAMS)
    this.#maxSize = checkCount(receive.maxSize, 'receive.maxSize', 1, 65535, DEFAULT_MAX_SIZE)
    const sizes = [options.sendBufferSize, options.recvBufferSize].map((v, i) =>
      checkCount(v, i === 0 ? 'sendBufferSize' : 'recvBufferSize', 1, 0x7fffffff, 0),
    )
    try {
      if (fromFd !== undefined) {
        this.#native = native.NativeSocket.fromFd(fromFd)
        if (this.#native.family() !== (type === 'udp6' ? 6 : 4)) {
          this.#native.close()
          throw typeError('ERR_INVALID_ARG_VALUE', `The descriptor is not a ${type} socket`)
        }
        this.#bound = this.#native.localAddress().port !== 0
      } else {
        this.#native = new native.NativeSocket(
          type === 'udp6' ? 6 : 4,
          options.reuseAddr === true,
          options.reusePort === true,
          options.ipv6Only === undefined ? -1 : options.ipv6Only ? 1 : 0,
          sizes[0] as number,
          sizes[1] as number,
        )
      }
    } catch (error) {
      throw fromNative(error)
    }
    this.#nativeId = this.#native.id
    const signal = options.signal
    if (signal !== undefined) {
      if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) {
        throw invalidArgType('options.signal', 'an instance of AbortSignal', signal)
      }
      if (signal.aborted) {
        process.nextTick(() => {
          if (!this.#closed) this.close()
        })
      } else {
        const onAbort = (): void => {
          if (!this.#closed) this.close()
        }
        signal.addEventListener('abort', onAbort, { once: true })
        this.once('close', () => signal.removeEventListener('abort', onAbort))
      }
    }
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message' || event === 'messages') process.nextTick(() => this.#updateReceiving())
      if (event === 'icmpError') process.nextTick(() => this.#updateInterest())
    })
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'message' || event === 'messages') this.#updateReceiving()
      if (event === 'icmpError') this.#updateInterest()
    })
    if (options.receiveErrors !== undefined && checkBoolean(options.receiveErrors, 'options.receiveErrors')) {
      this.setReceiveErrors(true)
    }
  }

  /**
   * Wraps (a private duplicate of) an existing UDP socket descriptor, e.g. a bound
   * `node:dgram` socket's. The type must match the descriptor's family.
   */
  static fromFd(fd: number, typeOrOptions: SocketType | UdpSocketOptions): UdpSocket {
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) throw invalidArgType('fd', 'a non-negative integer', fd)
    return new UdpSocket(typeOrOptions, fd)
  }

  /** A descriptor for this socket (a duplicate: closing it does not close the socket). */
  get fd(): number {
    this.#checkOpen()
    return this.#call(() => this.#native.fd())
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** The kernel's count of datagrams it dropped on this socket (full receive queue). */
  get dropCount(): number {
    if (this.#closed) return 0
    return this.#native.drops()
  }

  /** Whether GSO (`UDP_SEGMENT`) is available on this socket. */
  get gso(): 'unknown' | 'available' | 'unavailable' {
    if (this.#closed) return 'unknown'
    return (['unknown', 'available', 'unavailable'] as const)[this.#native.gso()] ?? 'unknown'
  }

  #checkOpen(): void {
    if (this.#closed) throw notRunning()
  }

  #call<T>(body: () => T): T {
    try {
      return body()
    } catch (error) {
      throw fromNative(error)
    }
  }

  #loopback(): string {
    return this.type === 'udp6' ? '::1' : '127.0.0.1'
  }

  /**
   * Binds to `port` (0 or omitted: ephemeral) and `address` (default: all interfaces). With an
   * IP literal this is synchronous: `address().port` is known on return and `'listening'`
   * follows on the next tick; a hostname is resolved first. Errors with a literal throw; with a
   * hostname they are `'error'` events. `callback` is added as a `'listening'` listener.
   */
  bind(port?: number, address?: string, callback?: () => void): this {
    this.#checkOpen()
    if (this.#bound) throw codedError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound')
    const p = port === undefined ? 0 : checkBindPort(port)
    const a = address === undefined ? (this.type === 'udp6' ? '::' : '0.0.0.0') : checkAddress(address, 'address')
    if (callback !== undefined) {
      if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
      this.once('listening', callback)
    }
    if (isIP(a) !== 0) {
      this.#call(() => this.#native.bind(a, p))
      this.#bound = true
      process.nextTick(() => this.emit('listening'))
      return this
    }
    this.#bound = true // a second bind() while this one resolves is refused, as in dgram
    this.#resolve(a, (error, ip) => {
      if (this.#closed) return
      if (error) {
        this.#bound = false
        this.emit('error', error)
        return
      }
      try {
        this.#native.bind(ip, p)
      } catch (e) {
        this.#bound = false
        this.emit('error', fromNative(e))
        return
      }
      this.emit('listening')
    })
    return this
  }

  /**
   * Associates the socket with one peer: sends without a destination go there, and only its
   * datagrams are received. Emits `'connect'` (and calls `callback`).
   */
  connect(port: number, address?: string, callback?: () => void): this {
    this.#checkOpen()
    if (this.#connected) throw codedError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected')
    const p = checkBindPort(port)
    if (p === 0) throw rangeError('ERR_SOCKET_BAD_PORT', 'Port should be > 0 and < 65536. Received type number (0).')
    const a = address === undefined ? this.#loopback() : checkAddress(address, 'address')
    if (callback !== undefined) this.once('connect', callback)
    this.#connected = true
    const finish = (ip: string): void => {
      try {
        this.#native.connect(ip, p)
        this.#bound = true
      } catch (e) {
        this.#connected = false
        throw fromNative(e)
      }
    }
    if (isIP(a) !== 0) {
      finish(a)
      process.nextTick(() => this.emit('connect'))
      return this
    }
    this.#resolve(a, (error, ip) => {
      if (this.#closed) return
      if (error) {
        this.#connected = false
        this.emit('error', error)
        return
      }
      try {
        finish(ip)
      } catch (e) {
        this.emit('error', e)
        return
      }
      this.emit('connect')
    })
    return this
  }

  /** Dissolves the association made by `connect`. */
  disconnect(): void {
    this.#checkOpen()
    if (!this.#connected) throw codedError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected')
    this.#call(() => this.#native.disconnect())
    this.#connected = false
    this.#collectKeptErrors()
  }

  /** The local address (`getsockname`). */
  address(): AddressInfo {
    this.#checkOpen()
    return this.#call(() => this.#native.localAddress()) as AddressInfo
  }

  /** The connected peer (`getpeername`). */
  remoteAddress(): AddressInfo {
    this.#checkOpen()
    if (!this.#connected) throw codedError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected')
    return this.#call(() => this.#native.remoteAddress()) as AddressInfo
  }

  #resolve(name: string, done: (error: Error | null, ip: string) => void): void {
    this.#lookup(name, { family: this.type === 'udp6' ? 6 : 4 }, (error, ip) => {
      if (error) done(error, '')
      else done(null, ip)
    })
  }

  // ---- sending -----------------------------------------------------------------------------

  /**
   * Sends a batch now, without waiting: one datagram per element (see {@link BatchEntry}) to
   * `port`/`address` (IP literals; a `port` alone means loopback), or to each message's own
   * destination, or to the connected peer. Returns how many were sent: fewer than the batch
   * only when the kernel's send buffer is full (send the rest later, or use `send`). A
   * failing message throws a {@link SendError} (`index`, `sent`). While `send()`s are queued,
   * returns 0 (after validating) so that datagrams leave in call order.
   *
   * Counts and indexes are in messages, also for messages with a `segmentSize` (several
   * datagrams each): such a message counts as sent once all its datagrams are. If a full send
   * buffer cuts one short (only possible without GSO), this throws a `SendError` `EAGAIN` with
   * `index === sent` and `segmentsSent` = its datagrams already sent.
   */
  trySend(messages: readonly BatchEntry[], port?: number, address?: string, flags?: number): number {
    this.#checkOpen()
    if (this.#queue.length === 0 && Array.isArray(messages) && messages.length === 1) {
      const only: unknown = messages[0]
      const id = only instanceof Uint8Array ? this.#fastDestination(port, address) : undefined
      if (id !== undefined) return this.#sendDatagram(only as Uint8Array, id, checkFlags(flags), port, address)
    }
    const plan = planBatch(messages, port, address, this.#loopback())
    const f = checkFlags(flags)
    if (plan.unresolved.length > 0) {
      throw typeError('ERR_INVALID_ARG_VALUE', `trySend() needs IP addresses; "${plan.addresses[plan.unresolved[0] as number]}" is a hostname: use send(), which resolves it`)
    }
    if (this.#queue.length > 0) return 0
    const sent = this.#sendNow(plan, 0, f)
    if (sent < plan.count && plan.segmentSizes !== null && (this.#progress[0] as number) > 0) {
      // A full send buffer cut a message with a segmentSize (sent without GSO) part way: a
      // count of messages cannot say so, and resending the whole message would repeat datagrams.
      throw this.#cutShort(plan, sent, this.#progress[0] as number)
    }
    return sent
  }

  /**
   * Sends a batch, waiting (epoll, no busy loop) whenever the kernel's send buffer is full.
   * Hostnames are resolved first (each distinct name once). Resolves with the batch's length;
   * a failing message rejects with a {@link SendError}. Buffers must not change until it settles.
   */
  send(messages: readonly BatchEntry[], port?: number, address?: string, flags?: number): Promise<number> {
    try {
      this.#checkOpen()
      if (this.#queue.length === 0 && Array.isArray(messages) && messages.length === 1) {
        const only: unknown = messages[0]
        const id = only instanceof Uint8Array ? this.#fastDestination(port, address) : undefined
        // Sent at once, or (buffer full: 0) planned and queued below like any batch.
        if (id !== undefined && this.#sendDatagram(only as Uint8Array, id, checkFlags(flags), port, address) === 1) {
          return Promise.resolve(1)
        }
      }
      const plan = planBatch(messages, port, address, this.#loopback())
      return this.#sendPlan(plan, checkFlags(flags))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Like `trySend`, for one packed buffer cut into datagrams by `lengths` (no copy). */
  trySendPacked(packed: Uint8Array, lengths: Uint32Array | readonly number[], port?: number, address?: string, flags?: number): number {
    this.#checkOpen()
    // The packed buffer is the one store of the spans path: no view per datagram.
    const spans = packedSpans(packed, lengths)
    try {
      const to = planBatch([], port, address, this.#loopback())
      const f = checkFlags(flags)
      if (to.unresolved.length > 0) throw typeError('ERR_INVALID_ARG_VALUE', 'trySendPacked() needs an IP address; use sendPacked() for hostnames')
      if (this.#queue.length > 0) return 0
      const id = to.addresses.length === 0 ? PEER : this.#fastDestination(to.ports[0], to.addresses[0])
      // Datagrams past 4 GiB into the buffer (no spans), or a destination the id table refuses:
      // the views path, which sends them or reports the error in the usual way.
      if (spans === null || id === undefined) return this.#sendNow(planPacked(packed, lengths, port, address, this.#loopback()), 0, f)
      let sent: number
      try {
        sent = native.socketSendSpans(this.#nativeId, spans.stores, true, spans.spans.subarray(0, 3 * spans.count), id, null, null, 0, f)
      } catch (error) {
        this.#collectKeptErrors()
        throw fromNative(error, 0, () => (to.addresses.length === 0 ? {} : { address: to.addresses[0], port: to.ports[0] }))
      }
      if (this.#receiveErrors) this.#collectKeptErrors()
      return sent
    } finally {
      if (spans !== null) releaseSpans(spans)
    }
  }

  /** Like `send`, for one packed buffer cut into datagrams by `lengths`. */
  sendPacked(packed: Uint8Array, lengths: Uint32Array | readonly number[], port?: number, address?: string, flags?: number): Promise<number> {
    try {
      this.#checkOpen()
      return this.#sendPlan(planPacked(packed, lengths, port, address, this.#loopback()), checkFlags(flags))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Sends `payload` as datagrams of `segmentSize` bytes (the last may be shorter) to one
   * destination, with GSO (`UDP_SEGMENT`, up to 64 per send) where the kernel supports it and
   * plain batches otherwise. Returns datagrams sent (fewer: the send buffer is full).
   */
  trySendSegmented(payload: Uint8Array, segmentSize: number, port?: number, address?: string, flags?: number): number {
    this.#checkOpen()
    const view = toView(payload, 'payload')
    const size = checkCount(segmentSize, 'segmentSize', 1, 65535, 0)
    const plan = planBatch([], port, address, this.#loopback())
    const f = checkFlags(flags)
    if (plan.unresolved.length > 0) throw typeError('ERR_INVALID_ARG_VALUE', 'trySendSegmented() needs an IP address')
    if (this.#queue.length > 0) return 0
    const to = plan.addresses.length > 0 ? plan.addresses[0] as string : null
    const toPort = plan.ports.length > 0 ? plan.ports[0] as number : 0
    let sent: number
    try {
      sent = this.#native.sendSegmented(view, size, to, toPort, f)
    } catch (error) {
      this.#collectKeptErrors()
      throw fromNative(error, 0, () => ({ address: to ?? undefined, port: to === null ? undefined : toPort }))
    }
    if (this.#receiveErrors) this.#collectKeptErrors()
    return sent
  }

  /**
   * The single-datagram path's destination id for `port`/`address` (the binding parses each
   * destination once), `PEER` for the connected peer, or `undefined` when the general path must
   * handle the call (a hostname, a bad argument: it reports it in the usual way).
   */
  #fastDestination(port: unknown, address: unknown): number | undefined {
    if (port === undefined || port === null) return address === undefined || address === null ? PEER : undefined
    if (typeof port !== 'number') return undefined
    const a = address === undefined || address === null ? this.#loopback() : address
    if (typeof a !== 'string') return undefined
    if (a === this.#lastFastAddress && port === this.#lastFastPort) return this.#lastFastId
    const key = `${port} ${a}`
    let id = this.#fastIds.get(key)
    if (id === undefined) {
      if (!Number.isInteger(port) || port < 1 || port > 65535 || isIP(a) === 0) return undefined
      if (this.#fastIds.size >= MAX_FAST_DESTINATIONS) {
        this.#native.clearDestinations()
        this.#fastIds.clear()
        this.#fastGeneration++
        // The cleared ids are gone: forget the last one too (the add below may still fail).
        this.#lastFastPort = -1
        this.#lastFastId = PEER
      }
      try {
        id = this.#native.addDestination(a, port)
      } catch {
        return undefined // e.g. an IPv6 address on udp4: the general path says so
      }
      this.#fastIds.set(key, id)
    }
    this.#lastFastAddress = a
    this.#lastFastPort = port
    this.#lastFastId = id
    return id
  }

  #sendDatagram(view: Uint8Array, id: number, flags: number, port: unknown, address: unknown): number {
    let sent: number
    try {
      sent = flags === 0 ? native.socketSendDatagram(this.#nativeId, view, id) : native.socketSendDatagram(this.#nativeId, view, id, flags)
    } catch (error) {
      this.#collectKeptErrors()
      throw fromNative(error, 0, () => id === PEER ? {} : { address: (address ?? this.#loopback()) as string, port: port as number })
    }
    if (this.#receiveErrors) this.#collectKeptErrors()
    return sent
  }

  #locate(plan: Plan): (index: number) => { address?: string; port?: number } {
    return (index) => {
      const d = plan.destinations ? plan.destinations[index] : plan.addresses.length > 0 ? 0 : undefined
      if (d === undefined || d >= plan.addresses.length) return {}
      return { address: plan.addresses[d], port: plan.ports[d] }
    }
  }

  #sendNow(plan: Plan, from: number, flags: number): number {
    let sent: number
    try {
      sent = this.#nativeSend(plan, from, flags, 0)
    } catch (error) {
      this.#collectKeptErrors()
      throw this.#sendFailure(error, plan)
    }
    if (this.#receiveErrors) this.#collectKeptErrors()
    return sent
  }

  /**
   * One native send of `plan` from message `from` (of which `fromSegment` datagrams went out
   * already). Without per-message send metadata: the plain call, no extra arguments.
   */
  #nativeSend(plan: Plan, from: number, flags: number, fromSegment: number): number {
    if (plan.segmentSizes === null && plan.sourceAddresses === null && plan.interfaceIndexes === null) {
      if (plan.pieceCounts === null && plan.count > 0 && plan.addresses.length <= MAX_SPAN_DESTINATIONS) {
        // One piece per message: the spans path (see spansOf), destinations named by id.
        const spans = spansOf(plan)
        if (spans !== null) {
          let ids: Uint32Array | null = null
          try {
            let id: number | undefined = PEER
            if (plan.destinations !== null) {
              ids = this.#destinationIds(plan)
              id = ids === null ? undefined : PEER
            } else if (plan.addresses.length > 0) {
              id = this.#fastDestination(plan.ports[0], plan.addresses[0])
            }
            if (id !== undefined) {
              const spanList = spans.spans.subarray(0, 3 * plan.count)
              const idList = ids === null ? null : ids.subarray(0, plan.count)
              const tos = plan.tos === null ? null : tosOf(plan.tos)
              // Views as the call's own arguments: the binding reads them all at once, not
              // one array element (one N-API call) at a time.
              if (spans.storesAreViews && spans.stores.length <= MAX_VIEW_ARGUMENTS) {
                return native.socketSendViews(this.#nativeId, spanList, id, idList, tos, from, flags, ...(spans.stores as Uint8Array[]))
              }
              return native.socketSendSpans(this.#nativeId, spans.stores, spans.storesAreViews, spanList, id, idList, tos, from, flags)
            }
          } finally {
            releaseSpans(spans)
            if (ids !== null && spareIds === null && ids.length >= MAX_BATCH_IDS) spareIds = ids
          }
        }
      }
      return this.#native.send(plan.views, plan.pieceCounts, plan.destinations, plan.addresses, plan.ports, from, flags, plannedLengths(plan), plan.tos)
    }
    this.#progress[0] = 0
    return this.#native.send(plan.views, plan.pieceCounts, plan.destinations, plan.addresses, plan.ports, from, flags, plannedLengths(plan), plan.tos,
      plan.segmentSizes, plan.sourceAddresses, plan.interfaceIndexes, fromSegment, this.#progress)
  }

  /**
   * Each message's destination id for the spans path (`PEER` for the connected peer), in a
   * reusable array (give it back when the call returned), or `null` when one cannot be named
   * by id (then the general path reports it) or the id table was cleared meanwhile.
   */
  #destinationIds(plan: Plan): Uint32Array | null {
    const destinations = plan.destinations as Uint32Array
    const byIndex = new Array<number>(plan.addresses.length)
    const generation = this.#fastGeneration
    for (let d = 0; d < plan.addresses.length; d++) {
      const id = this.#fastDestination(plan.ports[d], plan.addresses[d])
      if (id === undefined) return null
      byIndex[d] = id
    }
    if (this.#fastGeneration !== generation) return null // earlier ids were cleared with the table
    let ids: Uint32Array
    if (spareIds !== null && spareIds.length >= plan.count) {
      ids = spareIds
      spareIds = null
    } else {
      ids = new Uint32Array(Math.max(plan.count, MAX_BATCH_IDS))
    }
    for (let i = 0; i < plan.count; i++) {
      const d = destinations[i] as number
      ids[i] = d === CONNECTED_INDEX ? PEER : (byIndex[d] as number)
    }
    return ids
  }

  /** The public error for a failed native send, with `segmentsSent` where it can be non-zero. */
  #sendFailure(error: unknown, plan: Plan): unknown {
    const failure = fromNative(error, 0, this.#locate(plan))
    if (plan.segmentSizes !== null && failure instanceof Error && (failure instanceof SendError || (failure as { code?: string }).code === 'ERR_INVALID_STATE')) {
      (failure as SendError).segmentsSent = this.#progress[0] as number
    }
    return failure
  }

  /** `trySend` stopped by a full send buffer inside message `sent`, after `segments` of its datagrams. */
  #cutShort(plan: Plan, sent: number, segments: number): SendError {
    const error = new SendError({ code: 'EAGAIN', errno: -osConstants.errno.EAGAIN, syscall: 'sendmmsg', index: sent, sent, ...this.#locate(plan)(sent) })
    error.segmentsSent = segments
    return error
  }

  #sendPlan(plan: Plan, flags: number): Promise<number> {
    if (plan.count === 0 && plan.unresolved.length === 0) return Promise.resolve(0)
    if (this.#queue.length === 0 && plan.unresolved.length === 0) {
      const sent = this.#sendNow(plan, 0, flags)
      if (sent >= plan.count) return Promise.resolve(sent)
      const nextSegment = plan.segmentSizes !== null ? this.#progress[0] as number : 0
      // It has to wait: fix its lengths now (still synchronous with planning, no user code has
      // run), so that a view shrunk meanwhile fails its message when resent.
      pinLengths(plan)
      return new Promise<number>((resolve, reject) => {
        this.#queue.push({ plan, flags, next: sent, nextSegment, resolve, reject, resolving: false })
        this.#updateInterest()
      })
    }
    // Behind other sends, or waiting for a lookup: it takes its place in the queue now, so
    // that nothing sent later (trySend included) can overtake it.
    pinLengths(plan)
    return new Promise<number>((resolve, reject) => {
      const entry: PendingSend = { plan, flags, next: 0, nextSegment: 0, resolve, reject, resolving: plan.unresolved.length > 0 }
      this.#queue.push(entry)
      if (!entry.resolving) {
        this.#updateInterest()
        return
      }
      this.#resolvePlan(plan).then(
        () => {
          entry.resolving = false
          if (this.#closed) return
          if (plan.count === 0) {
            this.#queue.splice(this.#queue.indexOf(entry), 1)
            resolve(0)
          }
          if (this.#queue[0] === entry || plan.count === 0) this.#flushQueue()
          this.#updateInterest()
        },
        (error: unknown) => {
          if (this.#closed) return
          this.#queue.splice(this.#queue.indexOf(entry), 1)
          reject(error)
          this.#flushQueue()
          this.#updateInterest()
        },
      )
    })
  }

  async #resolvePlan(plan: Plan): Promise<void> {
    const names = new Map<string, Promise<string>>()
    for (const index of plan.unresolved) {
      const name = plan.addresses[index] as string
      let ip = names.get(name)
      if (ip === undefined) {
        ip = new Promise<string>((resolve, reject) => this.#resolve(name, (e, a) => (e ? reject(e) : resolve(a))))
        names.set(name, ip)
      }
      plan.addresses[index] = await ip
    }
    plan.unresolved = []
  }

  /** Flushes queued sends in order while the kernel takes them. */
  #flushQueue(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const head = this.#queue[0] as PendingSend
      if (head.resolving) return // flushed again once its lookup is done
      let sent: number
      try {
        sent = this.#nativeSend(head.plan, head.next, head.flags, head.nextSegment)
      } catch (error) {
        this.#queue.shift()
        this.#collectKeptErrors()
        head.reject(this.#sendFailure(error, head.plan))
        continue
      }
      if (this.#receiveErrors) this.#collectKeptErrors()
      head.next = sent
      head.nextSegment = head.plan.segmentSizes !== null ? this.#progress[0] as number : 0
      if (sent < head.plan.count) return // still blocked: wait for the next writable event
      this.#queue.shift()
      head.resolve(sent)
    }
  }

  /** Bytes waiting in queued `send()`s (dgram's `getSendQueueSize`). */
  getSendQueueSize(): number {
    let bytes = 0
    for (const pending of this.#queue) for (const v of pending.plan.views) bytes += v.byteLength
    return bytes
  }

  /** Queued `send()` calls (dgram's `getSendQueueCount`). */
  getSendQueueCount(): number {
    return this.#queue.length
  }

  // ---- receiving ---------------------------------------------------------------------------

  /** Takes what is queued right now (at most `maxDatagrams`), without waiting. */
  tryRecv(maxDatagrams?: number, maxSize?: number): Datagram[] {
    this.#checkOpen()
    const max = checkCount(maxDatagrams, 'maxDatagrams', 1, 1024, this.#maxDatagrams)
    const size = checkCount(maxSize, 'maxSize', 1, 65535, this.#maxSize)
    const slab = new ReceiveSlab(max, size, this.#metadata)
    const n = this.#recvInto(slab)
    const out: Datagram[] = new Array<Datagram>(n)
    const v6 = this.type === 'udp6'
    for (let i = 0; i < n; i++) out[i] = slab.datagram(i, v6)
    return out
  }

  /** Fills `batch` with what is queued right now; returns (and sets `batch.count` to) the count. */
  tryRecvBatch(batch: RecvBatch): number {
    this.#checkOpen()
    const impl = checkBatch(batch)
    const n = this.#recvInto(impl.slab)
    impl.count = n
    impl.drops = this.#native.drops()
    return n
  }

  /**
   * Zero-allocation receive: `handler(batch)` is called with the same `batch` refilled for
   * every receive. Replaces any previous `onBatch`; `stopReceiving()` ends it.
   */
  onBatch(batch: RecvBatch, handler: (batch: RecvBatch) => void): void {
    this.#checkOpen()
    const impl = checkBatch(batch)
    if (typeof handler !== 'function') throw invalidArgType('handler', 'of type function', handler)
    this.#batchReceiver = { batch: impl, handler }
    this.#updateReceiving()
  }

  /** Stops `onBatch` delivery (listeners for `'message'`/`'messages'` stay). */
  stopReceiving(): void {
    this.#batchReceiver = null
    this.#updateReceiving()
  }

  /** Lets the kernel coalesce received datagrams (`UDP_GRO`); they are split back, one entry each. */
  setGro(on: boolean): void {
    this.#checkOpen()
    checkBoolean(on, 'on')
    this.#call(() => this.#native.setGro(on))
    if (on) this.#groUsed = true
  }

  /**
   * Per-datagram metadata, off by default (and free when off): `ecn` adds each datagram's
   * `ecn` and `tos` (IP_RECVTOS / IPV6_RECVTCLASS), `packetInfo` its `destination` address
   * and `interfaceIndex` (IP_PKTINFO / IPV6_RECVPKTINFO), `timestamps` the kernel's receive
   * time as `timestamp` (a bigint of ns since the Unix epoch, SO_TIMESTAMPNS). Options left
   * out are turned off.
   */
  setReceiveMetadata(options: { ecn?: boolean; packetInfo?: boolean; timestamps?: boolean }): void {
    this.#checkOpen()
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
    const ecn = options.ecn === undefined ? false : checkBoolean(options.ecn, 'options.ecn')
    const packetInfo = options.packetInfo === undefined ? false : checkBoolean(options.packetInfo, 'options.packetInfo')
    const timestamps = options.timestamps === undefined ? false : checkBoolean(options.timestamps, 'options.timestamps')
    this.#call(() => this.#native.setReceiveMetadata(ecn, packetInfo, timestamps))
    const on = ecn || packetInfo || timestamps
    if (on !== this.#metadata) {
      this.#metadata = on
      this.#slab = null // the next one has (or drops) the metadata arrays
    }
  }

  #recv(slab: ReceiveSlab): number {
    return native.socketRecvSlab(this.#nativeId, slab.memory, slab.capacity, slab.slotSize, slab.metadata)
  }

  #recvInto(slab: ReceiveSlab): number {
    let n: number
    try {
      n = this.#recv(slab)
    } catch (error) {
      this.#collectKeptErrors()
      throw fromNative(error)
    }
    if (this.#receiveErrors) this.#collectKeptErrors()
    return n
  }

  #wantsRead(): boolean {
    return !this.#closed && !this.#paused && (
      this.#batchReceiver !== null || this.#iterators > 0 ||
      this.listenerCount('message') > 0 || this.listenerCount('messages') > 0)
  }

  #updateReceiving(): void {
    if (this.#closed) return
    if (this.#wantsRead() && !this.#bound) {
      // As dgram: receiving on an unbound socket binds it to an ephemeral port.
      try {
        this.bind()
      } catch (error) {
        process.nextTick(() => this.emit('error', error))
        return
      }
    }
    this.#updateInterest()
  }

  #updateInterest(): void {
    if (this.#closed) return
    const read = this.#wantsRead()
    // Writable interest only for a head that can be sent (one still resolving would spin).
    const write = this.#queue.length > 0 && !(this.#queue[0] as PendingSend).resolving
    if (read && this.#groUsed && this.#native.buffered() > 0) {
      this.#scheduleDrain()
    }
    if (!read && !write && this.#wantsErrors()) {
      this.#armErrorsOnly()
      return
    }
    // Nothing to change: nothing wanted (and nothing armed), or a level-triggered watcher that
    // is already armed with exactly this.
    if (read === this.#armedRead && write === this.#armedWrite && !this.#armedErrors && (this.#levelTriggered || (!read && !write))) return
    if (!this.#watching) {
      if (!read && !write) return
      this.#levelTriggered = this.#native.watch((bits) => this.#onReady(bits), WATCH_ON_LOOP)
      this.#watching = true
      if (!this.#refed) this.#native.setRef(false)
    }
    this.#armedRead = read
    this.#armedWrite = write
    this.#armedErrors = false
    this.#native.arm(read, write)
  }

  // ---- the error queue (ICMP and path-MTU errors) ----------------------------------------------

  #wantsErrors(): boolean {
    return !this.#closed && this.#receiveErrors && this.listenerCount('icmpError') > 0
  }

  /** Watches for errors only (a listener wants them, nothing is received or queued to send). */
  #armErrorsOnly(): void {
    if (this.#armedErrors) return
    if (!this.#watching) {
      this.#levelTriggered = this.#native.watch((bits) => this.#onReady(bits), WATCH_ON_LOOP)
      this.#watching = true
      if (!this.#refed) this.#native.setRef(false)
    }
    this.#armedRead = false
    this.#armedWrite = false
    this.#armedErrors = true
    this.#native.armErrors()
  }

  /** Takes the entries the native side already read (sends, receives, disconnect). */
  #collectKeptErrors(): void {
    if (this.#closed || this.#native.keptErrorCount() === 0) return
    this.#collectQueuedErrors()
  }

  /** Reads entries (kept ones, then the kernel's queue) into the inbox; bounded per call. */
  #collectQueuedErrors(): void {
    for (let round = 0; round < 16 && !this.#closed; round++) {
      let raw: NativeQueuedError[]
      try {
        raw = this.#native.takeErrors(ERRORS_PER_READ)
      } catch (error) {
        process.nextTick(() => this.emit('error', fromNative(error)))
        return
      }
      for (const entry of raw) this.#errorInbox.push(toIcmpError(entry))
      if (raw.length < ERRORS_PER_READ) break
    }
    if (this.#errorInbox.length > 0 && !this.#errorDeliveryScheduled) {
      this.#errorDeliveryScheduled = true
      process.nextTick(() => this.#deliverErrors())
    }
  }

  /** Emits the inbox as `'icmpError'` events, or keeps it for `tryRecvErrors()` if nobody listens. */
  #deliverErrors(): void {
    this.#errorDeliveryScheduled = false
    const entries = this.#errorInbox.splice(0)
    if (this.listenerCount('icmpError') > 0) {
      for (const entry of entries) {
        try {
          this.emit('icmpError', entry)
        } catch (error) {
          rethrowLater(error)
        }
      }
      return
    }
    this.#keep(entries)
  }

  #keep(entries: IcmpError[]): void {
    const room = Math.max(0, MAX_KEPT_ERRORS - this.#errorBacklog.length)
    if (entries.length > room) this.#errorOverflow += entries.length - room
    for (let i = 0; i < entries.length && i < room; i++) this.#errorBacklog.push(entries[i] as IcmpError)
  }

  /**
   * Keeps ICMP and path-MTU errors for this socket, connected or not (`IP_RECVERR`; on udp6
   * `IPV6_RECVERR` and `IP_RECVERR` for IPv4-mapped traffic). Each error-queue entry becomes
   * an `'icmpError'` event ({@link IcmpError}), or, while nobody listens, waits for
   * {@link UdpSocket.tryRecvErrors} (up to 1024; more are counted in `icmpErrorOverflow`).
   *
   * The kernel also makes each ICMP error fail the socket's next send or receive once, whatever
   * it carries (one dead peer would fail datagrams to others). With this on, such a failure is
   * not reported: the entry is surfaced and the message sent again, once (nothing is sent
   * twice or dropped). Genuine send errors still reject with `index`. Off (the default):
   * connected sockets report an ICMP error as the failure of the message it stopped.
   */
  setReceiveErrors(on: boolean): void {
    this.#checkOpen()
    checkBoolean(on, 'on')
    this.#call(() => this.#native.setReceiveErrors(on))
    this.#receiveErrors = on
    this.#updateInterest()
  }

  /**
   * Error-queue entries waiting now, oldest first (at most `max`, 1–1024, default 64): those
   * kept while nobody listened for `'icmpError'`, then what the kernel holds. Never waits.
   */
  tryRecvErrors(max?: number): IcmpError[] {
    this.#checkOpen()
    const limit = checkCount(max, 'max', 1, 1024, ERRORS_PER_READ)
    const out = this.#errorBacklog.splice(0, limit)
    if (out.length < limit) out.push(...this.#errorInbox.splice(0, limit - out.length))
    if (out.length < limit) {
      const raw = this.#call(() => this.#native.takeErrors(limit - out.length))
      for (const entry of raw) out.push(toIcmpError(entry))
    }
    return out
  }

  /** Error-queue entries lost because more than 1024 waited for `tryRecvErrors()` (or the native side's 4096). */
  get icmpErrorOverflow(): number {
    if (this.#closed) return this.#errorOverflow
    return this.#errorOverflow + this.#native.errorsOverflowed()
  }

  /**
   * Path MTU discovery (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`): `'want'` (Linux's default:
   * fragment locally above the known path MTU), `'do'` (don't-fragment; larger datagrams fail
   * with `EMSGSIZE`), `'dont'` (never set DF), `'probe'` (DF set, path MTU ignored: for
   * probing with chosen sizes).
   */
  setPathMtuDiscovery(mode: PathMtuDiscoveryMode): void {
    this.#checkOpen()
    if (typeof mode !== 'string') throw invalidArgType('mode', 'of type string', mode)
    if (mode !== 'want' && mode !== 'do' && mode !== 'dont' && mode !== 'probe') {
      throw typeError('ERR_INVALID_ARG_VALUE', `The argument 'mode' must be one of: 'want', 'do', 'dont', 'probe'. Received '${mode}'`)
    }
    this.#call(() => this.#native.setPathMtuDiscovery(mode))
  }

  /**
   * The don't-fragment bit: on udp4 `IP_PMTUDISC_DO` (on) / `IP_PMTUDISC_DONT` (off); on udp6
   * `IPV6_DONTFRAG` (and the udp4 setting for IPv4-mapped traffic).
   */
  setDontFragment(on: boolean): void {
    this.#checkOpen()
    checkBoolean(on, 'on')
    this.#call(() => this.#native.setDontFragment(on))
  }

  /** The kernel's path MTU to the connected peer (`IP_MTU` / `IPV6_MTU`). Needs `connect()`. */
  getPathMtu(): number {
    this.#checkOpen()
    if (!this.#connected) throw codedError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'getPathMtu() needs a connected socket: the path MTU is per destination')
    return this.#call(() => this.#native.pathMtu())
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled) return
    this.#drainScheduled = true
    setImmediate(() => {
      this.#drainScheduled = false
      if (!this.#closed && this.#wantsRead()) this.#drain()
      this.#updateInterest()
    })
  }

  #onReady(bits: number): void {
    // One-shot (reactor thread): nothing is armed now until #updateInterest re-arms. The loop
    // poll stays armed; #updateInterest then only changes what differs.
    // An error report stops libuv's poll as well: re-arm whatever is wanted.
    if (!this.#levelTriggered || bits & ERROR) {
      this.#armedRead = false
      this.#armedWrite = false
    }
    this.#armedErrors = false
    if (this.#closed) return
    try {
      // With error reporting on, the queue goes first: reading it clears the pending ICMP
      // error that would otherwise fail the next send or receive once.
      if (bits & ERROR && this.#receiveErrors) this.#collectQueuedErrors()
      if (bits & (WRITABLE | ERROR)) this.#flushQueue()
      if (bits & (READABLE | ERROR) && this.#wantsRead()) this.#drain()
      // Whatever is still queued is read now (bounded), so that a non-empty error queue can
      // never make the watcher report an error again and again without progress.
      if (bits & ERROR) this.#collectQueuedErrors()
    } finally {
      this.#updateInterest()
    }
  }

  #slabFor(): ReceiveSlab {
    let slab = this.#slab
    if (slab === null) {
      slab = new ReceiveSlab(Math.min(FIRST_CAPACITY, this.#maxDatagrams), this.#maxSize, this.#metadata)
      this.#slab = slab
    }
    return slab
  }

  /** Reads batches while datagrams are queued (bounded per wake-up) and delivers them. */
  #drain(): void {
    for (let round = 0; round < BATCHES_PER_WAKE && this.#wantsRead(); round++) {
      const receiver = this.#batchReceiver
      const slab = receiver !== null ? receiver.batch.slab : this.#slabFor()
      let n: number
      try {
        n = this.#recv(slab)
        if (this.#receiveErrors) this.#collectKeptErrors()
      } catch (error) {
        this.#collectKeptErrors()
        const e = fromNative(error) as Error & { syscall?: string }
        if (e.syscall === 'recvmmsg') e.syscall = 'recvmsg'
        this.emit('error', e)
        return
      }
      if (n === 0) return
      if (receiver !== null) {
        receiver.batch.count = n
        receiver.batch.drops = this.#native.drops()
        try {
          receiver.handler(receiver.batch)
        } catch (error) {
          rethrowLater(error)
        }
      } else {
        this.#deliver(slab, n)
      }
      if (n < slab.capacity) return
      // A full batch: more is probably queued. Grow toward maxDatagrams (memory follows traffic).
      if (receiver === null && slab.capacity < this.#maxDatagrams) {
        this.#slab = new ReceiveSlab(Math.min(slab.capacity * 4, this.#maxDatagrams), this.#maxSize, this.#metadata)
      }
    }
    if (!this.#closed && this.#groUsed && this.#native.buffered() > 0) this.#scheduleDrain()
  }

  #deliver(slab: ReceiveSlab, n: number): void {
    const v6 = this.type === 'udp6'
    const wantBatch = this.listenerCount('messages') > 0 || this.#iterators > 0
    const wantEach = this.listenerCount('message') > 0
    // A listener that throws must not cost the rest of the batch its delivery: as with
    // dgram's one-event-per-datagram, the exception is rethrown on its own (uncaught) and the
    // other datagrams are still delivered.
    let batch: Datagram[] | null = null
    if (wantBatch) {
      batch = new Array<Datagram>(n)
      for (let i = 0; i < n; i++) batch[i] = slab.datagram(i, v6)
      try {
        this.emit('messages', batch)
      } catch (error) {
        rethrowLater(error)
      }
      if (this.#iterators > 0) this.#pushIterator(batch)
    }
    if (wantEach) {
      for (let i = 0; i < n && !this.#closed; i++) {
        // Only dgram's shape is built when only 'message' listens (no Datagram object).
        const d = batch !== null ? (batch[i] as Datagram) : null
        const data = d !== null ? d.data : slab.copy(i)
        const rinfo: RemoteInfo = {
          address: d !== null ? d.address : slab.address(i),
          family: d !== null ? d.family : slab.family(i, v6),
          port: slab.ports[i] as number,
          size: data.length,
        }
        try {
          this.emit('message', data, rinfo)
        } catch (error) {
          rethrowLater(error)
        }
      }
    }
  }

  #pushIterator(batch: Datagram[]): void {
    const waiter = this.#iteratorWaiters.shift()
    if (waiter) {
      waiter({ value: batch, done: false })
      return
    }
    this.#iteratorQueue.push(batch)
    // Back-pressure: a consumer that is behind stops the reading; the kernel queues (and,
    // when full, drops and counts in dropCount).
    if (this.#iteratorQueue.length >= 4 && !this.#paused) {
      this.#paused = true
      this.#updateInterest()
    }
  }

  /**
   * Receives batches with `for await`: each value is one receive batch (`Datagram[]`). A slow
   * consumer stops the reading (the kernel queues, then drops and counts in `dropCount`).
   * Ends when the socket closes; `break` stops receiving for this iterator.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Datagram[]> {
    this.#checkOpen()
    this.#iterators++
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      this.#iterators--
      this.off('close', onClose)
      if (this.#iterators === 0) this.#iteratorQueue = []
      this.#updateReceiving()
    }
    const onClose = (): void => {
      for (const w of this.#iteratorWaiters.splice(0)) w({ value: undefined, done: true })
      finish()
    }
    this.once('close', onClose)
    process.nextTick(() => this.#updateReceiving())
    const iterator: AsyncIterableIterator<Datagram[]> = {
      next: () => {
        if (done && this.#iteratorQueue.length === 0) return Promise.resolve({ value: undefined, done: true })
        const queued = this.#iteratorQueue.shift()
        if (queued !== undefined) {
          if (this.#paused && this.#iteratorQueue.length < 2) {
            this.#paused = false
            this.#updateInterest()
          }
          return Promise.resolve({ value: queued, done: false })
        }
        if (this.#closed) {
          finish()
          return Promise.resolve({ value: undefined, done: true })
        }
        return new Promise((resolve) => this.#iteratorWaiters.push(resolve))
      },
      return: () => {
        finish()
        return Promise.resolve({ value: undefined, done: true })
      },
      [Symbol.asyncIterator]() {
        return iterator
      },
    }
    return iterator
  }

  // ---- lifetime ----------------------------------------------------------------------------

  /**
   * Closes the socket. Queued sends reject with `ERR_SOCKET_DGRAM_NOT_RUNNING` (their `sent`
   * says how many datagrams went out); `'close'` follows on the next tick.
   */
  close(callback?: () => void): this {
    if (callback !== undefined) {
      if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
      this.once('close', callback)
    }
    if (this.#closed) {
      if (callback === undefined) throw notRunning()
      return this
    }
    this.#closed = true
    try {
      this.#native.close()
    } catch {
      // Closing from inside another call on this socket cannot happen from JS; ignore.
    }
    for (const pending of this.#queue.splice(0)) {
      const error = notRunning() as Error & { sent?: number }
      error.sent = pending.next
      pending.reject(error)
    }
    this.#slab = null
    process.nextTick(() => this.emit('close'))
    return this
  }

  /** `close()` for `using` (does nothing if already closed). */
  [dispose](): void {
    if (!this.#closed) this.close()
  }

  /** `close()` for `await using`: resolves once `'close'` was emitted. */
  [asyncDispose](): Promise<void> {
    if (this.#closed) return Promise.resolve()
    return new Promise((resolve) => this.close(() => resolve()))
  }

  /** Lets the process exit while this socket waits (like dgram's `unref`). */
  unref(): this {
    this.#refed = false
    if (!this.#closed && this.#watching) this.#native.setRef(false)
    return this
  }

  /** Undoes `unref()`. */
  ref(): this {
    this.#refed = true
    if (!this.#closed && this.#watching) this.#native.setRef(this.#armedRead || this.#armedWrite)
    return this
  }

  // ---- options (dgram's names) -------------------------------------------------------------

  #option(name: string, value: number): void {
    this.#checkOpen()
    this.#call(() => this.#native.setOption(name, value))
  }

  setBroadcast(flag: boolean): void {
    this.#option('broadcast', checkBoolean(flag, 'flag') ? 1 : 0)
  }

  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw invalidArgType('ttl', 'of type number', ttl)
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw this.#einval('setTTL')
    this.#option('ttl', ttl)
    return ttl
  }

  setMulticastTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw invalidArgType('ttl', 'of type number', ttl)
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) throw this.#einval('setMulticastTTL')
    this.#option('multicastTtl', ttl)
    return ttl
  }

  setMulticastLoopback(flag: boolean): boolean {
    this.#option('multicastLoopback', flag ? 1 : 0)
    return flag
  }

  setMulticastInterface(interfaceAddress: string): void {
    this.#checkOpen()
    checkAddress(interfaceAddress, 'interfaceAddress')
    this.#call(() => this.#native.setMulticastInterface(interfaceAddress))
  }

  addMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#membership(multicastAddress, interfaceAddress, true)
  }

  dropMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#membership(multicastAddress, interfaceAddress, false)
  }

  #membership(group: string, iface: string | undefined, join: boolean): void {
    this.#checkOpen()
    if (typeof group !== 'string') throw codedError('ERR_MISSING_ARGS', 'The "multicastAddress" argument must be specified')
    this.#call(() => this.#native.setMembership(group, iface ?? null, join))
  }

  /**
   * Joins the source-specific multicast group `groupAddress` (only datagrams from
   * `sourceAddress`), on `interfaceAddress` or the default interface. As in libuv the group's
   * family picks the request: IPv4 (`IP_ADD_SOURCE_MEMBERSHIP`, the interface an IPv4 address)
   * or IPv6 (`MCAST_JOIN_SOURCE_GROUP`, the interface the `%zone` of an IPv6 address).
   */
  addSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceMembership(sourceAddress, groupAddress, interfaceAddress, true)
  }

  /** Leaves a group joined with {@link addSourceSpecificMembership}. */
  dropSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceMembership(sourceAddress, groupAddress, interfaceAddress, false)
  }

  #sourceMembership(source: string, group: string, iface: string | undefined, join: boolean): void {
    this.#checkOpen()
    if (typeof source !== 'string') throw invalidArgType('sourceAddress', 'of type string', source)
    if (typeof group !== 'string') throw invalidArgType('groupAddress', 'of type string', group)
    if (iface !== undefined && iface !== null && typeof iface !== 'string') {
      throw invalidArgType('interfaceAddress', 'of type string', iface)
    }
    this.#call(() => this.#native.setSourceMembership(source, group, iface ?? null, join))
  }

  setRecvBufferSize(size: number): void {
    this.#option('recvBufferSize', checkCount(size, 'size', 1, 0x7fffffff, 0))
  }

  setSendBufferSize(size: number): void {
    this.#option('sendBufferSize', checkCount(size, 'size', 1, 0x7fffffff, 0))
  }

  getRecvBufferSize(): number {
    this.#checkOpen()
    return this.#call(() => this.#native.getBufferSize(false))
  }

  getSendBufferSize(): number {
    this.#checkOpen()
    return this.#call(() => this.#native.getBufferSize(true))
  }

  #einval(syscall: string): Error {
    const e = codedError('EINVAL', `${syscall} EINVAL`) as unknown as Error & { errno: number; syscall: string }
    e.errno = -22
    e.syscall = syscall
    return e
  }

  // ---- all cores: reusePort groups steered by CPU -------------------------------------------

  /**
   * Steers this socket's `reusePort` group by CPU: a datagram whose receive path (softirq) runs
   * on CPU `c` goes to the group's socket number `c % groupSize`, so with one socket per core,
   * each served by a thread pinned to its core ({@link setThreadAffinity}), every datagram is
   * handled on the core that received it (and a flow the NIC keeps on one core stays on one
   * socket). A socket's number is the order in which the group's sockets were bound (the first
   * is 0; when one closes, the last takes its number); a number with no socket yet falls back
   * to the kernel's 4-tuple hash. Call it on any one socket of the group, once bound; it
   * replaces any program the group had (a classic BPF program, `SO_ATTACH_REUSEPORT_CBPF`).
   *
   * Throws `ERR_OUT_OF_RANGE` for a `groupSize` that is not an integer 1–65535, and
   * `ERR_INVALID_STATE` for a socket that is not bound or was created without `reusePort`.
   */
  steerByCpu(groupSize: number): void {
    this.#checkOpen()
    if (typeof groupSize !== 'number') throw invalidArgType('groupSize', 'of type number', groupSize)
    if (!Number.isInteger(groupSize) || groupSize < 1 || groupSize > 65535) {
      throw outOfRange('groupSize', 'an integer >= 1 and <= 65535', groupSize)
    }
    if (!this.#call(() => this.#native.reusePort())) {
      throw codedError('ERR_INVALID_STATE', 'Invalid state: steerByCpu() needs a socket created with reusePort: true')
    }
    // The group is the bound port's: before bind() there is none to steer (and what the kernel
    // would do with a program attached to a socket that joins a group later is not this).
    if (this.#call(() => this.#native.localAddress()).port === 0) {
      throw codedError('ERR_INVALID_STATE', 'Invalid state: steerByCpu() needs a bound socket (bind() it first)')
    }
    this.#call(() => this.#native.steerByCpu(groupSize))
  }

  /**
   * Removes the steering program of this socket's `reusePort` group (`SO_DETACH_REUSEPORT_BPF`):
   * back to the 4-tuple hash. A group without one throws the kernel's `ENOENT`, a socket
   * created without `reusePort` `ERR_INVALID_STATE`.
   */
  clearSteering(): void {
    this.#checkOpen()
    if (!this.#call(() => this.#native.reusePort())) {
      throw codedError('ERR_INVALID_STATE', 'Invalid state: clearSteering() needs a socket created with reusePort: true')
    }
    this.#call(() => this.#native.detachSteering())
  }

  /**
   * `SO_INCOMING_CPU`: the CPU that last received a datagram for this socket, or the value set
   * with {@link setIncomingCpu}; -1 for neither. Linux records the receiving CPU only on
   * connected sockets (an unconnected one keeps what was set).
   */
  get incomingCpu(): number {
    this.#checkOpen()
    return this.#call(() => this.#native.incomingCpu())
  }

  /**
   * Sets `SO_INCOMING_CPU`. On Linux 6.2 and later, in a `reusePort` group without a steering
   * program, a datagram received on CPU `c` goes to a socket whose value is `c` (if any; else
   * the hash picks): steering by CPU without BPF, when each socket names its own core.
   */
  setIncomingCpu(cpu: number): void {
    this.#checkOpen()
    if (typeof cpu !== 'number') throw invalidArgType('cpu', 'of type number', cpu)
    if (!Number.isInteger(cpu) || cpu < 0 || cpu > 0x7fffffff) throw outOfRange('cpu', 'an integer >= 0 and <= 2147483647', cpu)
    this.#call(() => this.#native.setIncomingCpu(cpu))
  }
}

/** Creates a {@link UdpSocket}, like `dgram.createSocket` (an optional `'messages'` listener). */
export function createSocket(typeOrOptions: SocketType | UdpSocketOptions, onMessages?: (datagrams: Datagram[]) => void): UdpSocket {
  const socket = new UdpSocket(typeOrOptions)
  if (onMessages !== undefined) {
    if (typeof onMessages !== 'function') throw invalidArgType('onMessages', 'of type function', onMessages)
    socket.on('messages', onMessages)
  }
  return socket
}

// ---- RecvBatch ----------------------------------------------------------------------------------

const batches = new WeakSet<object>()

class RecvBatchImpl implements RecvBatch {
  count = 0
  drops = 0
  readonly slab: ReceiveSlab
  constructor(maxDatagrams: number, slotSize: number) {
    this.slab = new ReceiveSlab(maxDatagrams, slotSize, true)
  }
  get maxDatagrams(): number { return this.slab.capacity }
  get slotSize(): number { return this.slab.slotSize }
  get data(): Buffer { return this.slab.data }
  get lengths(): Uint32Array { return this.slab.lengths }
  get ports(): Uint16Array { return this.slab.ports }
  get addresses(): Uint8Array { return this.slab.addresses }
  get scopeIds(): Uint32Array { return this.slab.scopeIds }
  get flags(): Uint8Array { return this.slab.flags }
  get tos(): Uint8Array { return this.slab.tos as Uint8Array }
  get destinations(): Uint8Array { return this.slab.destinations as Uint8Array }
  get interfaces(): Uint32Array { return this.slab.interfaces as Uint32Array }
  get timestamps(): BigUint64Array { return this.slab.timestamps as BigUint64Array }
  address(i: number): string { return this.slab.address(i) }
  datagram(i: number): Buffer {
    const start = i * this.slab.slotSize
    return this.slab.data.subarray(start, start + (this.slab.lengths[i] as number))
  }
}

/** Reusable receive memory: `maxDatagrams` (1–1024) slots of `slotSize` bytes (1–65535). */
export function createRecvBatch(maxDatagrams: number, slotSize: number): RecvBatch {
  const batch = new RecvBatchImpl(
    checkCount(maxDatagrams, 'maxDatagrams', 1, 1024, 0),
    checkCount(slotSize, 'slotSize', 1, 65535, 0),
  )
  batches.add(batch)
  return batch
}

function checkBatch(batch: unknown): RecvBatchImpl {
  if (!(batch instanceof RecvBatchImpl) || !batches.has(batch)) {
    throw invalidArgType('batch', 'a RecvBatch from createRecvBatch()', batch)
  }
  if (Object.getOwnPropertyDescriptor(batch, 'count')?.writable !== true) {
    // Its `count` must be writable, or the handler could not see what arrived.
    throw typeError('ERR_INVALID_ARG_VALUE', 'The batch is frozen or sealed: its count could not be updated')
  }
  return batch
}

export { SendError }
