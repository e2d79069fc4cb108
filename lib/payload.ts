// Payloads and destinations: everything a caller hands to a send is read here, once, into a
// plan of dense arrays that this module makes itself (views, piece counts, destination
// indexes). The binding then reads only those arrays: no user getter or Proxy trap can run
// while the kernel reads the bytes.
import { isIP } from 'node:net'

import { invalidArgType, rangeError, received, typeError } from './errors'

// The typed-array slots, read through %TypedArray%.prototype's own getters (taken when this
// module loads): an own `byteOffset`/`buffer`/`byteLength` property on a view, or a patched
// prototype, cannot make a plan point at other memory or run user code here. (V8 also
// calls these faster than a property read.)
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object
function slotGetter<T>(name: string): (this: Uint8Array) => T {
  return (Object.getOwnPropertyDescriptor(TypedArrayPrototype, name) as PropertyDescriptor).get as (this: Uint8Array) => T
}
const bufferOf = slotGetter<ArrayBufferLike>('buffer')
const byteOffsetOf = slotGetter<number>('byteOffset')
const byteLengthOf = slotGetter<number>('byteLength')
/** Largest offset or length a span can hold (a Uint32Array entry). */
const MAX_SPAN = 0xffffffff

/** One piece of a datagram: a string (sent as UTF-8), a `Buffer`, any TypedArray, a `DataView` or an `ArrayBuffer`. */
export type Payload = string | ArrayBufferView | ArrayBufferLike

/** A datagram's bytes: one piece, or a list of pieces gathered into ONE datagram (scatter/gather). */
export type DatagramBody = Payload | readonly Payload[]

/**
 * One datagram of a batch with its own destination. `data` (or its older name `buffers`) is one
 * piece or a list of pieces gathered into one datagram. Without `address`/`port` it goes to
 * the call's destination (or the connected peer); a `port` alone means loopback, as in dgram.
 */
export interface OutgoingMessage {
  data?: DatagramBody
  buffers?: DatagramBody
  address?: string
  port?: number
  /**
   * ECN codepoint for this datagram (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE): the low two bits
   * of the TOS byte / traffic class it is sent with (`IP_TOS` / `IPV6_TCLASS`).
   */
  ecn?: 0 | 1 | 2 | 3
  /** The whole TOS byte / traffic class (DSCP << 2 | ECN), 0–255; `ecn` replaces its low bits. */
  tos?: number
  /**
   * GSO segment size, 1–65535: this message's bytes (all its pieces) are ONE buffer that the
   * kernel cuts into datagrams of `segmentSize` bytes (the last may be shorter), as quinn-udp's
   * `Transmit { contents, segment_size }`. At most 64 datagrams (UDP_MAX_SEGMENTS) and, when it
   * makes more than one, at most 65507 bytes. Without GSO (the kernel or the route lacks it) the
   * same datagrams go out one by one. Counts stay in messages: the message is sent when all its
   * datagrams are; see {@link SendError.segmentsSent} for one cut short.
   */
  segmentSize?: number
  /**
   * The source address to send from (`IP_PKTINFO` `ipi_spec_dst` / `IPV6_PKTINFO`), e.g. one of
   * several addresses of an interface while the socket is bound to `0.0.0.0` / `::`. Must be a
   * local address of the destination's family (IPv4, or IPv4-mapped, for IPv4 destinations).
   */
  sourceAddress?: string
  /** The interface index to send on (`ipi_ifindex` / `ipi6_ifindex`); 0: the route's. */
  interfaceIndex?: number
}

/**
 * One element of a batch. NOTE the difference from `node:dgram`: in `socket.send(array)` here
 * the array is a *batch* (one datagram per element); in dgram's `send(array)` an array is *one*
 * datagram gathered from pieces. Gather pieces here with `{ data: [a, b] }`.
 */
export type BatchEntry = Payload | OutgoingMessage

/** `net.isIP(a) !== 0`, remembering the last answer (a batch or a loop names one address). */
let lastAddress = ''
let lastIsIP = false
export function isIPLiteral(a: string): boolean {
  if (a !== lastAddress) {
    lastAddress = a
    lastIsIP = isIP(a) !== 0
  }
  return lastIsIP
}

/** Messages with no destination of their own go to the connected peer. */
export const CONNECTED = 0xffffffff

/** Most messages one batch may hold. */
export const MAX_BATCH = 1 << 24
/** Most pieces one datagram may gather (IOV_MAX). */
export const MAX_PIECES = 1024

/** Turns one payload into a `Uint8Array` over the same memory (strings are encoded). */
export function toView(value: unknown, name: string): Uint8Array {
  if (value instanceof Uint8Array) return value
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer)) {
    return new Uint8Array(value)
  }
  throw invalidArgType(name, 'of type string or an instance of Buffer, TypedArray, DataView or ArrayBuffer', value)
}

/** Checks a port for sending: an integer 1–65535 (dgram's rule). */
export function checkSendPort(port: unknown, name = 'port'): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    if (typeof port !== 'number' && typeof port !== 'string') {
      throw invalidArgType(name, 'of type number', port)
    }
    throw rangeError('ERR_SOCKET_BAD_PORT', `${name === 'port' ? 'Port' : name} should be > 0 and < 65536.${received(port)}`)
  }
  return port
}

/** Checks a port for binding: an integer 0–65535. */
export function checkBindPort(port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw rangeError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536.${received(port)}`)
  }
  return port
}

export function checkAddress(address: unknown, name: string): string {
  if (typeof address !== 'string') throw invalidArgType(name, 'of type string', address)
  return address
}

/** A batch ready for the binding. */
export interface Plan {
  views: Uint8Array[]
  /**
   * Each view's length when this module took it. A getter that runs later (while a later
   * message is read) may detach or shrink an earlier view; the binding then fails that
   * message instead of sending it empty or cut.
   */
  lengths: Uint32Array | null
  /** The same lengths as a plain array (cheap to make); `lengths` is built from it on demand. */
  captured: number[]
  /** Pieces per message, or null when every message is one piece. */
  pieceCounts: Uint32Array | null
  /** Destination index per message (CONNECTED: the peer), or null when all go to destination 0 (or the peer if there is none). */
  destinations: Uint32Array | null
  addresses: string[]
  ports: number[]
  /** Messages in the batch. */
  count: number
  /** Indexes into `addresses` that are hostnames still to resolve. */
  unresolved: number[]
  /** TOS byte per message (0: none, the socket's own), or null when no message has one. */
  tos: Uint8Array | null
  /** GSO segment size per message (0: a plain datagram), or null when no message has one. */
  segmentSizes: Uint16Array | null
  /** Source address per message ('': the route's), or null when no message has one. */
  sourceAddresses: string[] | null
  /** Interface index per message (0: the route's), or null when no message has one. */
  interfaceIndexes: Uint32Array | null
}

/** Most datagrams one message with a `segmentSize` may make (UDP_MAX_SEGMENTS). */
export const MAX_SEGMENTS = 64
/** Most bytes a message with a `segmentSize` may hold when it makes several datagrams. */
export const MAX_SEGMENTED_BYTES = 65507

/** Reads a batch of entries into a plan. Throws TypeError/RangeError for bad input. */
export function planBatch(entries: unknown, port: unknown, address: unknown, loopback: string): Plan {
  if (!Array.isArray(entries)) {
    throw invalidArgType('messages', 'an array of payloads or { data, address, port } messages', entries)
  }
  const count = entries.length
  if (count > MAX_BATCH) throw rangeError('ERR_OUT_OF_RANGE', `A batch may hold at most ${MAX_BATCH} messages; got ${count}`)
  const addresses: string[] = []
  const ports: number[] = []
  const unresolved: number[] = []
  // Most batches have one destination: the map is only made for a second one.
  let keys: Map<string, number> | null = null
  const addDestination = (a: string, p: number): number => {
    if (addresses.length === 1 && addresses[0] === a && ports[0] === p) return 0
    if (addresses.length === 0) {
      addresses.push(a)
      ports.push(p)
      if (!isIPLiteral(a)) unresolved.push(0)
      return 0
    }
    const key = `${p} ${a}`
    if (keys === null) {
      keys = new Map<string, number>()
      if (addresses.length === 1) keys.set(`${ports[0] as number} ${addresses[0] as string}`, 0)
    }
    let index = keys.get(key)
    if (index === undefined) {
      index = addresses.length
      keys.set(key, index)
      addresses.push(a)
      ports.push(p)
      if (!isIPLiteral(a)) unresolved.push(index)
    }
    return index
  }
  let defaultDestination = CONNECTED
  if (port !== undefined && port !== null) {
    const p = checkSendPort(port)
    const a = address === undefined || address === null ? loopback : checkAddress(address, 'address')
    defaultDestination = addDestination(a, p)
  } else if (address !== undefined && address !== null) {
    throw invalidArgType('port', 'of type number', port)
  }
  const views: Uint8Array[] = new Array<Uint8Array>(count)
  const captured: number[] = new Array<number>(count)
  let pieceCounts: Uint32Array | null = null
  let destinations: Uint32Array | null = null
  let tos: Uint8Array | null = null
  let segmentSizes: Uint16Array | null = null
  let sourceAddresses: string[] | null = null
  let interfaceIndexes: Uint32Array | null = null
  let pieces = 0
  for (let i = 0; i < count; i++) {
    const entry: unknown = entries[i]
    if (entry instanceof Uint8Array) {
      // The common case: one Buffer per datagram, to the call's destination.
      if (pieceCounts !== null) pieceCounts[i] = 1
      if (destinations !== null) destinations[i] = defaultDestination
      captured[pieces] = byteLengthOf.call(entry)
      views[pieces++] = entry
      continue
    }
    if (typeof entry === 'string' || ArrayBuffer.isView(entry) || entry instanceof ArrayBuffer) {
      if (pieceCounts !== null) pieceCounts[i] = 1
      if (destinations !== null) destinations[i] = defaultDestination
      const view = toView(entry, `messages[${i}]`)
      captured[pieces] = byteLengthOf.call(view)
      views[pieces++] = view
      continue
    }
    if (entry === null || typeof entry !== 'object') {
      throw invalidArgType(`messages[${i}]`, 'a payload (string, Buffer, TypedArray, DataView, ArrayBuffer) or { data, address, port }', entry)
    }
    const message = entry as OutgoingMessage
    const data: unknown = message.data // read once: it may be a getter
    const body: unknown = data !== undefined ? data : message.buffers
    const mPort: unknown = message.port
    const mAddress: unknown = message.address
    let destination = defaultDestination
    if (mPort !== undefined && mPort !== null) {
      const p = checkSendPort(mPort, `messages[${i}].port`)
      const a = mAddress === undefined || mAddress === null ? loopback : checkAddress(mAddress, `messages[${i}].address`)
      destination = addDestination(a, p)
    } else if (mAddress !== undefined && mAddress !== null) {
      checkAddress(mAddress, `messages[${i}].address`)
      if (defaultDestination === CONNECTED) {
        throw invalidArgType(`messages[${i}].port`, 'of type number (an address needs a port)', mPort)
      }
      destination = addDestination(mAddress as string, ports[defaultDestination] as number)
    }
    if (destination !== defaultDestination && destinations === null) {
      destinations = new Uint32Array(count).fill(defaultDestination, 0, i)
    }
    if (destinations !== null) destinations[i] = destination
    const mTos: unknown = message.tos
    const mEcn: unknown = message.ecn
    if (mTos !== undefined || mEcn !== undefined) {
      let value = 0
      if (mTos !== undefined) {
        if (typeof mTos !== 'number' || !Number.isInteger(mTos) || mTos < 0 || mTos > 255) {
          throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}].tos must be an integer from 0 to 255.${received(mTos)}`)
        }
        value = mTos
      }
      if (mEcn !== undefined) {
        if (mEcn !== 0 && mEcn !== 1 && mEcn !== 2 && mEcn !== 3) {
          throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}].ecn must be 0, 1, 2 or 3.${received(mEcn)}`)
        }
        value = (value & 0xfc) | mEcn
      }
      if (value !== 0) {
        if (tos === null) tos = new Uint8Array(count)
        tos[i] = value
      }
    }
    // Send metadata: one cheap check when a message has none of it.
    const mSegment: unknown = message.segmentSize
    const mSource: unknown = message.sourceAddress
    const mInterface: unknown = message.interfaceIndex
    const firstPiece = pieces
    if (mSource !== undefined || mInterface !== undefined) {
      if (mSource !== undefined) {
        if (typeof mSource !== 'string') throw invalidArgType(`messages[${i}].sourceAddress`, 'of type string', mSource)
        if (!isIPLiteral(mSource)) throw typeError('ERR_INVALID_ARG_VALUE', `messages[${i}].sourceAddress must be an IP address; got "${mSource}"`)
        if (mSource.includes('%')) throw typeError('ERR_INVALID_ARG_VALUE', `messages[${i}].sourceAddress takes no zone id ("${mSource}"): name the interface with interfaceIndex`)
        if (sourceAddresses === null) sourceAddresses = new Array<string>(count).fill('')
        sourceAddresses[i] = mSource
      }
      if (mInterface !== undefined) {
        if (typeof mInterface !== 'number' || !Number.isInteger(mInterface) || mInterface < 0 || mInterface > 0xffffffff) {
          throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}].interfaceIndex must be an integer from 0 to 4294967295.${received(mInterface)}`)
        }
        if (interfaceIndexes === null) interfaceIndexes = new Uint32Array(count)
        interfaceIndexes[i] = mInterface
      }
    }
    if (Array.isArray(body)) {
      const n = body.length
      if (n > MAX_PIECES) throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}] gathers ${n} pieces; at most ${MAX_PIECES} (IOV_MAX) are allowed`)
      if (pieceCounts === null) pieceCounts = new Uint32Array(count).fill(1, 0, i)
      pieceCounts[i] = n
      if (views.length < pieces + n) views.length = pieces + n
      for (let j = 0; j < n; j++) {
        const view = toView(body[j], `messages[${i}].data[${j}]`)
        captured[pieces] = byteLengthOf.call(view)
        views[pieces++] = view
      }
    } else {
      if (body === undefined) throw invalidArgType(`messages[${i}].data`, 'a payload or a list of payloads', body)
      if (pieceCounts !== null) pieceCounts[i] = 1
      if (views.length < pieces + 1) views.length = pieces + 1
      const view = toView(body, `messages[${i}].data`)
      captured[pieces] = byteLengthOf.call(view)
      views[pieces++] = view
    }
    if (mSegment !== undefined) {
      if (typeof mSegment !== 'number' || !Number.isInteger(mSegment) || mSegment < 1 || mSegment > 65535) {
        throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}].segmentSize must be an integer from 1 to 65535.${received(mSegment)}`)
      }
      let bytes = 0
      for (let p = firstPiece; p < pieces; p++) bytes += captured[p] as number
      const datagrams = Math.max(1, Math.ceil(bytes / mSegment))
      if (datagrams > MAX_SEGMENTS) {
        throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}] makes ${datagrams} datagrams of segmentSize ${mSegment}; at most ${MAX_SEGMENTS} (UDP_MAX_SEGMENTS) are allowed`)
      }
      if (datagrams > 1 && bytes > MAX_SEGMENTED_BYTES) {
        throw rangeError('ERR_OUT_OF_RANGE', `messages[${i}] holds ${bytes} bytes; a message with a segmentSize may hold at most ${MAX_SEGMENTED_BYTES}`)
      }
      if (segmentSizes === null) segmentSizes = new Uint16Array(count)
      segmentSizes[i] = mSegment
    }
  }
  views.length = pieces
  captured.length = pieces
  // `lengths` stays null: the spans path carries `captured` itself, and the views path asks
  // `plannedLengths` (no user code runs between planning and either).
  return { views, lengths: null, captured, pieceCounts, destinations, addresses, ports, count, unresolved, tos, segmentSizes, sourceAddresses, interfaceIndexes }
}

/**
 * The `lengths` argument of the binding's views path for a plan just made: a getter that ran
 * after a view was taken (while a later message was read) may have detached or shrunk it, and
 * then the binding gets the lengths as they were taken, and fails that message instead of
 * sending it empty or cut. `null` (the views' own lengths) when none changed. Call it with no
 * user code run since planning (or after `pinLengths`, which fixes them for good).
 */
export function plannedLengths(plan: Plan): Uint32Array | null {
  if (plan.lengths !== null) return plan.lengths
  const { views, captured } = plan
  for (let p = 0; p < views.length; p++) {
    if (byteLengthOf.call(views[p] as Uint8Array) !== captured[p]) return Uint32Array.from(captured)
  }
  return null
}

/** A plain plan's datagrams as spans of their stores, for `socketSendSpans`. */
export interface Spans {
  /**
   * The stores the datagrams lie in: `ArrayBuffer`s (when the batch's views share memory: a
   * pool, one packed buffer), or the views themselves (`storesAreViews`).
   */
  stores: ArrayBuffer[] | Uint8Array[]
  storesAreViews: boolean
  /** Store index, byte offset in the store and planned length, three numbers per datagram. */
  spans: Uint32Array
}

// One reusable spans array: the binding copies it during the call, so it is free again when
// the call returns. Taken by one call at a time (`releaseSpans`); a call made meanwhile (from
// a getter on a view, say) makes its own.
const SPARE_SPANS = 3 * 1024
let spareSpans: Uint32Array | null = new Uint32Array(SPARE_SPANS)

/**
 * The spans of a plan whose messages are one piece each. Reads only the plan's own views
 * array; the lengths are the planned ones (`captured`), so a store shrunk or detached since
 * planning fails its datagram in the binding instead of sending it short. Hand the result to
 * `releaseSpans` once the binding returned.
 *
 * Which stores: reading a view's `buffer` in JavaScript costs more than the binding's one
 * N-API call for a view, but one `ArrayBuffer` for many views saves a call per view. So when
 * the first two views share memory the stores are `ArrayBuffer`s, else the views themselves;
 * a view repeated (a dgram loop sending one Buffer) costs no reads either way. `null` when a
 * shared store is one the binding cannot take as an `ArrayBuffer` (a `SharedArrayBuffer`,
 * another realm's): the caller then uses the general path.
 */
export function spansOf(plan: Plan): Spans | null {
  const views = plan.views
  const captured = plan.captured
  const n = views.length
  const spans = takeSpans(n)
  const first = views[0] as Uint8Array
  const second = n > 1 ? views[1] as Uint8Array : first
  if (second === first || bufferOf.call(first) !== bufferOf.call(second)) {
    // Each view stands for its own bytes. The plan's own list serves as the stores unless a
    // view comes twice in a row (the same Buffer sent twice), which is then listed once. Index
    // writes only: `slice` and `push` would consult `Array[Symbol.species]` and a patched
    // `Array.prototype.push`, user code that could change the list.
    let stores: Uint8Array[] | null = null
    let count = 0
    let last: Uint8Array | null = null
    for (let i = 0, k = 0; i < n; i++, k += 3) {
      const view = views[i] as Uint8Array
      if (view !== last) {
        if (stores !== null) stores[count] = view
        count++
        last = view
      } else if (stores === null) {
        stores = new Array<Uint8Array>(n)
        for (let j = 0; j < count; j++) stores[j] = views[j] as Uint8Array // each a new one so far
      }
      const length = captured[i] as number
      if (length > MAX_SPAN) {
        releaseSpans({ stores: stores ?? views, storesAreViews: true, spans })
        return null // 4 GiB or more: the general path refuses it
      }
      spans[k] = count - 1
      spans[k + 1] = 0
      spans[k + 2] = length
    }
    if (stores !== null) stores.length = count
    return { stores: stores ?? views, storesAreViews: true, spans }
  }
  // A store is listed again when it comes back after another: no search.
  const stores: ArrayBuffer[] = []
  let lastView: Uint8Array | null = null
  let lastStore: ArrayBufferLike | null = null
  let offset = 0
  for (let i = 0, k = 0; i < n; i++, k += 3) {
    const view = views[i] as Uint8Array
    const length = captured[i] as number
    if (view !== lastView) {
      const store = bufferOf.call(view)
      if (store !== lastStore) {
        if (!(store instanceof ArrayBuffer)) {
          releaseSpans({ stores, storesAreViews: false, spans })
          return null
        }
        stores.push(store)
        lastStore = store
      }
      offset = byteOffsetOf.call(view)
      lastView = view
    }
    if (offset > MAX_SPAN || length > MAX_SPAN) {
      releaseSpans({ stores, storesAreViews: false, spans })
      return null // past 4 GiB: the general path takes it
    }
    spans[k] = stores.length - 1
    // A view shrunk or out of bounds since planning (its offset then reads 0) gets an offset
    // past any store: the binding fails its datagram instead of sending the store's first bytes.
    spans[k + 1] = byteLengthOf.call(view) === length ? offset : MAX_SPAN
    spans[k + 2] = length
  }
  return { stores, storesAreViews: false, spans }
}

/** The reusable spans array if it is free and large enough, else a new one. */
function takeSpans(datagrams: number): Uint32Array {
  if (spareSpans !== null && spareSpans.length >= 3 * datagrams) {
    const spans = spareSpans
    spareSpans = null
    return spans
  }
  return new Uint32Array(3 * datagrams)
}

/** Gives a `spansOf` result's array back for reuse (the binding has copied it). */
export function releaseSpans(spans: Spans): void {
  // Only an array of the spare's own size is kept (a large one made meanwhile is let go).
  if (spans.spans.length === SPARE_SPANS && spareSpans === null) spareSpans = spans.spans
}

/**
 * Fixes a plan's lengths before it waits (a lookup, a full send buffer): user code that runs
 * meanwhile may shrink a view, and the resend must then fail that message, not send it short.
 * Call it synchronously after planning, before anything can run.
 */
export function pinLengths(plan: Plan): void {
  if (plan.lengths === null) plan.lengths = Uint32Array.from(plan.captured)
}

/**
 * One packed buffer cut by `lengths`, as spans of the buffer itself (the spans path: no view
 * per datagram). Checks like `planPacked`; every length is read once, straight into the spans
 * (a `SharedArrayBuffer` rewritten meanwhile cannot make the checked total and the sent
 * lengths differ). Hand the result to `releaseSpans` once the binding returned.
 */
export function packedSpans(packed: unknown, lengths: unknown): (Spans & { count: number }) | null {
  const view = toView(packed, 'packed')
  let n: number
  if (lengths instanceof Uint32Array || Array.isArray(lengths)) n = lengths.length >>> 0 // read once (a Proxy may say anything)
  else throw invalidArgType('lengths', 'an instance of Uint32Array or an array of integers', lengths)
  if (n > MAX_BATCH) throw rangeError('ERR_OUT_OF_RANGE', `At most ${MAX_BATCH} lengths; got ${n}`)
  const spans = takeSpans(n)
  const result = { stores: [view], storesAreViews: true, spans, count: n }
  let offset = 0
  try {
    for (let i = 0, k = 0; i < n; i++, k += 3) {
      const length: unknown = lengths[i]
      if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > MAX_SPAN) {
        throw rangeError('ERR_OUT_OF_RANGE', `lengths[${i}] must be an integer from 0 to 4294967295.${received(length)}`)
      }
      spans[k] = 0
      spans[k + 1] = offset // past MAX_SPAN: refused below
      spans[k + 2] = length
      offset += length
    }
    const size = byteLengthOf.call(view)
    if (offset > size) {
      throw rangeError('ERR_BUFFER_OUT_OF_BOUNDS', `The lengths add up to ${offset} bytes but the packed buffer holds ${size}`)
    }
  } catch (error) {
    releaseSpans(result)
    throw error
  }
  if (offset > MAX_SPAN) {
    // Datagrams past 4 GiB into the buffer: a span cannot say where; the caller plans views.
    releaseSpans(result)
    return null
  }
  return result
}

/** A plan of one packed buffer cut into datagrams by `lengths` (no copy). */
export function planPacked(packed: unknown, lengths: unknown, port: unknown, address: unknown, loopback: string): Plan {
  const view = toView(packed, 'packed')
  let list: Uint32Array
  if (lengths instanceof Uint32Array) {
    list = lengths.slice() // our own copy: a SharedArrayBuffer rewritten meanwhile cannot change it
  } else if (Array.isArray(lengths)) {
    list = new Uint32Array(lengths.length)
    for (let i = 0; i < lengths.length; i++) {
      const n: unknown = lengths[i]
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
        throw rangeError('ERR_OUT_OF_RANGE', `lengths[${i}] must be an integer from 0 to 4294967295.${received(n)}`)
      }
      list[i] = n
    }
  } else {
    throw invalidArgType('lengths', 'an instance of Uint32Array or an array of integers', lengths)
  }
  if (list.length > MAX_BATCH) throw rangeError('ERR_OUT_OF_RANGE', `At most ${MAX_BATCH} lengths; got ${list.length}`)
  let total = 0
  for (let i = 0; i < list.length; i++) total += list[i] as number
  if (total > view.byteLength) {
    throw rangeError('ERR_BUFFER_OUT_OF_BOUNDS', `The lengths add up to ${total} bytes but the packed buffer holds ${view.byteLength}`)
  }
  const views = new Array<Uint8Array>(list.length)
  let offset = 0
  for (let i = 0; i < list.length; i++) {
    const n = list[i] as number
    views[i] = view.subarray(offset, offset + n)
    offset += n
  }
  const plan = planBatch([], port, address, loopback)
  plan.views = views
  plan.lengths = list
  plan.captured = Array.from(list)
  plan.count = list.length
  return plan
}

/** Checks send flags (MSG_MORE is refused: it would merge the batch's datagrams). */
export function checkFlags(flags: unknown): number {
  if (flags === undefined || flags === null) return 0
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 0x7fffffff) {
    throw rangeError('ERR_OUT_OF_RANGE', `The value of "flags" is out of range. It must be an integer >= 0.${received(flags)}`)
  }
  if (flags & 0x8000) {
    throw rangeError('ERR_OUT_OF_RANGE', 'MSG_MORE is not supported for batches: it would merge datagrams to different destinations into one')
  }
  return flags
}

