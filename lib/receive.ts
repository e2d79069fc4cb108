// Receive memory and decoding: one slab per socket, allocated on the first readable event and
// grown with the traffic (never more than the caller's maxDatagrams × maxSize), decoded into
// the shapes users see.

import { native } from './native'

/** One received datagram in the convenient shape. */
export interface Datagram {
  /** The datagram's bytes: a Buffer of its own (a copy the caller owns). */
  data: Buffer
  /** Sender address (IPv4 senders on a `udp4` socket as `a.b.c.d`). */
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
  /** Bytes received (`data.length`). */
  size: number
  /** The datagram was longer than `maxSize` and was cut. */
  truncated: boolean
  /** With `setReceiveMetadata({ ecn: true })`: the ECN codepoint (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE). */
  ecn?: number
  /** With `setReceiveMetadata({ ecn: true })`: the whole TOS byte / traffic class (DSCP << 2 | ECN). */
  tos?: number
  /** With `setReceiveMetadata({ packetInfo: true })`: the address the datagram was sent to. */
  destination?: string
  /** With `setReceiveMetadata({ packetInfo: true })`: the index of the interface it came in on. */
  interfaceIndex?: number
  /**
   * With `setReceiveMetadata({ timestamps: true })`: when the kernel received it, in
   * nanoseconds since the Unix epoch (`CLOCK_REALTIME`, as `Date.now()` counts, ×1e6).
   */
  timestamp?: bigint
}

/** `node:dgram`'s `rinfo`. */
export interface RemoteInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
  size: number
}

export const FLAG_TRUNCATED = 1
export const FLAG_IPV6 = 2
export const FLAG_NO_ADDRESS = 4
export const FLAG_HAS_TOS = 8
export const FLAG_HAS_DESTINATION = 16
export const FLAG_HAS_TIMESTAMP = 32
export const FLAG_DESTINATION_IPV6 = 64

/** Formats 16 address bytes as Node does (RFC 5952: the longest zero run compressed). */
export function formatAddress(bytes: Uint8Array, at: number, ipv6: boolean, scopeId: number): string {
  if (!ipv6) return `${bytes[at + 12]}.${bytes[at + 13]}.${bytes[at + 14]}.${bytes[at + 15]}`
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push(((bytes[at + 2 * i] as number) << 8) | (bytes[at + 2 * i + 1] as number))
  let text: string
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    text = `::ffff:${bytes[at + 12]}.${bytes[at + 13]}.${bytes[at + 14]}.${bytes[at + 15]}`
  } else {
    let bestStart = -1
    let bestLen = 1
    for (let i = 0; i < 8; ) {
      if (groups[i] !== 0) { i++; continue }
      let j = i
      while (j < 8 && groups[j] === 0) j++
      if (j - i > bestLen) { bestStart = i; bestLen = j - i }
      i = j
    }
    const hex = groups.map((g) => g.toString(16))
    if (bestStart < 0) text = hex.join(':')
    else text = `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
  }
  return scopeId !== 0 ? `${text}%${scopeId}` : text
}

/** The binding's `recvLayout`: byte offsets of each array, then the total size. */
type SlabOffsets = [number, number, number, number, number, number, number, number, number, number, number]

/** The arrays one native receive fills. */
export class ReceiveSlab {
  readonly slotSize: number
  readonly capacity: number
  /** The whole slab (every array below is a view into it). */
  readonly memory: Uint8Array
  /** Whether the metadata arrays exist. */
  readonly metadata: boolean
  readonly data: Buffer
  readonly lengths: Uint32Array
  readonly ports: Uint16Array
  readonly addresses: Uint8Array
  readonly scopeIds: Uint32Array
  readonly flags: Uint8Array
  /** Metadata arrays (null unless the slab was made for metadata). */
  readonly tos: Uint8Array | null
  readonly destinations: Uint8Array | null
  readonly interfaces: Uint32Array | null
  readonly timestamps: BigUint64Array | null
  // Decoding cache: consecutive datagrams from one sender share one address string.
  private lastKey = -1
  private lastAddress = ''

  constructor(capacity: number, slotSize: number, metadata = false) {
    this.capacity = capacity
    this.slotSize = slotSize
    // One zero-filled block for every array (the binding reads it with one N-API call per
    // receive), laid out by the binding itself so that both sides agree on the offsets.
    const [data, timestamps, lengths, scopeIds, interfaces, ports, addresses, destinations, flags, tos, total] =
      native.NativeSocket.recvLayout(capacity, slotSize, metadata) as number[] as SlabOffsets
    const memory = new ArrayBuffer(total)
    this.memory = new Uint8Array(memory)
    this.data = Buffer.from(memory, data, capacity * slotSize)
    this.lengths = new Uint32Array(memory, lengths, capacity)
    this.ports = new Uint16Array(memory, ports, capacity)
    this.addresses = new Uint8Array(memory, addresses, 16 * capacity)
    this.scopeIds = new Uint32Array(memory, scopeIds, capacity)
    this.flags = new Uint8Array(memory, flags, capacity)
    this.metadata = metadata
    this.tos = metadata ? new Uint8Array(memory, tos, capacity) : null
    this.destinations = metadata ? new Uint8Array(memory, destinations, 16 * capacity) : null
    this.interfaces = metadata ? new Uint32Array(memory, interfaces, capacity) : null
    this.timestamps = metadata ? new BigUint64Array(memory, timestamps, capacity) : null
  }

  get byteLength(): number {
    return this.memory.byteLength
  }

  /** Where datagram `i` was sent to (empty without packet info). */
  destination(i: number, v6Socket: boolean): string {
    const f = this.flags[i] as number
    if (!(f & FLAG_HAS_DESTINATION) || this.destinations === null) return ''
    return formatAddress(this.destinations, 16 * i, (f & FLAG_DESTINATION_IPV6) !== 0 || v6Socket, 0)
  }

  /** The sender of datagram `i` as a string (cached across equal senders). */
  address(i: number): string {
    const f = this.flags[i] as number
    if (f & FLAG_NO_ADDRESS) return ''
    const a = this.addresses
    const o = 16 * i
    // A cheap key for IPv4 senders; IPv6 ones are formatted each time.
    if (!(f & FLAG_IPV6)) {
      const key = (((a[o + 12] as number) << 24) | ((a[o + 13] as number) << 16) | ((a[o + 14] as number) << 8) | (a[o + 15] as number)) >>> 0
      if (key === this.lastKey) return this.lastAddress
      this.lastKey = key
      this.lastAddress = formatAddress(a, o, false, 0)
      return this.lastAddress
    }
    return formatAddress(a, o, true, this.scopeIds[i] as number)
  }

  family(i: number, v6Socket: boolean): 'IPv4' | 'IPv6' {
    return (this.flags[i] as number) & FLAG_IPV6 || v6Socket ? 'IPv6' : 'IPv4'
  }

  /** Datagram `i` copied into a Buffer of its own. */
  copy(i: number): Buffer {
    const start = i * this.slotSize
    const len = this.lengths[i] as number
    const out = Buffer.allocUnsafe(len)
    this.data.copy(out, 0, start, start + len)
    return out
  }

  datagram(i: number, v6Socket: boolean): Datagram {
    const data = this.copy(i)
    const f = this.flags[i] as number
    const datagram: Datagram = {
      data,
      address: this.address(i),
      family: this.family(i, v6Socket),
      port: this.ports[i] as number,
      size: data.length,
      truncated: (f & FLAG_TRUNCATED) !== 0,
    }
    if (f & (FLAG_HAS_TOS | FLAG_HAS_DESTINATION | FLAG_HAS_TIMESTAMP)) this.addMetadata(datagram, i, f, v6Socket)
    return datagram
  }

  private addMetadata(datagram: Datagram, i: number, f: number, v6Socket: boolean): void {
    if (f & FLAG_HAS_TOS && this.tos !== null) {
      const tos = this.tos[i] as number
      datagram.ecn = tos & 3
      datagram.tos = tos
    }
    if (f & FLAG_HAS_DESTINATION && this.interfaces !== null) {
      datagram.destination = this.destination(i, v6Socket)
      datagram.interfaceIndex = this.interfaces[i] as number
    }
    if (f & FLAG_HAS_TIMESTAMP && this.timestamps !== null) datagram.timestamp = this.timestamps[i] as bigint
  }
}
