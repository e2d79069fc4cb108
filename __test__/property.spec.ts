// Property-based: random batches (datagrams of 0–1500 bytes gathered from 1–8 buffers, up to
// 5000 per batch, mixed destinations among 2–3 node:dgram receivers) sent through trySend,
// send() and trySendPacked arrive exactly once each, in order per destination, byte for byte.
//
// Each batch must fit the receivers' socket buffers (the whole batch is queued before node:dgram
// reads anything, and loopback drops beyond SO_RCVBUF), so batches are capped by the kernel's
// per-datagram memory cost measured against the receivers' actual buffer size.
import test from 'ava'
// fast-check's .d.ts imports `pure-rand/types/...` subpaths that `moduleResolution: node` (this
// repo's tsconfig, with skipLibCheck off) cannot resolve, so its types are not loaded here.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const fc: any = require('fast-check')

import { UdpSocket } from '../index'
import { patterned, prng, sink, Sink, sleep } from './reliability-helpers'

type Api = 'trySend' | 'send' | 'trySendPacked'

interface MessageSpec {
  dest: number
  /** Piece sizes; the datagram is their concatenation (0–1500 bytes in all). */
  pieces: number[]
  /** How the message is written: a bare buffer, `{ buffers }` with address+port, or port only. */
  shape: 'bare' | 'object' | 'portOnly' | 'single'
  /** Pieces as Buffer (views of the pool) or as plain Uint8Array views of the same memory. */
  uint8: boolean
}

interface BatchSpec {
  api: Api
  receivers: number
  seed: number
  messages: MessageSpec[]
}

/** Kernel memory one queued datagram costs on loopback (skb truesize, measured: ≤ 1280 up to
 * ~600 bytes, 2304 at 1500), with margin. */
const cost = (size: number) => (size <= 512 ? 1400 : size + 1100)
const MAX_PAYLOAD_TOTAL = 3_000_000

let sinks: Sink[] = []
let budget = 0
const stats = { batches: 0, datagrams: 0, bytes: 0, shortTrySends: 0, maxBatch: 0 }

test.before(async () => {
  sinks = [await sink(), await sink(), await sink()]
  // Use 3/4 of the smallest real receive buffer (rmem_max caps the 4 MiB asked for).
  budget = Math.floor(Math.min(...sinks.map((s) => s.socket.getRecvBufferSize())) * 0.75)
})

test.after.always(async () => {
  await Promise.all(sinks.map((s) => s.close()))
})

/** Drops messages from the end until every destination's queue and the total fit. */
function fit(messages: MessageSpec[]): MessageSpec[] {
  const used = [0, 0, 0]
  let total = 0
  const kept: MessageSpec[] = []
  for (const m of messages) {
    const size = m.pieces.reduce((a, b) => a + b, 0)
    if (used[m.dest] + cost(size) > budget || total + size > MAX_PAYLOAD_TOTAL) break
    used[m.dest] += cost(size)
    total += size
    kept.push(m)
  }
  return kept
}

/** Sends the batch and checks every receiver got exactly its datagrams, in order. */
async function sendAndCheck(spec: BatchSpec): Promise<void> {
  const messages = fit(spec.messages)
  const rxs = sinks.slice(0, spec.receivers)
  for (const s of rxs) s.received.length = 0
  // All bytes live in one pool, each piece a view of it, laid out in message order, so a run of
  // messages to one destination is also one contiguous packed buffer.
  const sizes = messages.map((m) => m.pieces.reduce((a, b) => a + b, 0))
  const pool = patterned(sizes.reduce((a, b) => a + b, 0), spec.seed)
  const expected: Buffer[][] = rxs.map(() => [])
  const jsMessages: Array<Uint8Array | { buffers: Uint8Array | Uint8Array[]; address?: string; port?: number }> = []
  let offset = 0
  const starts: number[] = []
  for (const m of messages) {
    starts.push(offset)
    const pieces = m.pieces.map((len) => {
      const view = m.uint8 ? new Uint8Array(pool.buffer, pool.byteOffset + offset, len) : pool.subarray(offset, offset + len)
      offset += len
      return view
    })
    expected[m.dest].push(Buffer.concat(pieces))
    const port = rxs[m.dest].port
    if (m.dest === 0 && m.shape === 'bare' && pieces.length === 1) jsMessages.push(pieces[0])
    else if (m.dest === 0 && m.shape === 'bare') jsMessages.push({ buffers: pieces })
    else if (m.shape === 'portOnly') jsMessages.push({ buffers: pieces, port })
    else if (m.shape === 'single' && pieces.length === 1) jsMessages.push({ buffers: pieces[0], address: '127.0.0.1', port })
    else jsMessages.push({ buffers: pieces, address: '127.0.0.1', port })
  }

  const tx = new UdpSocket('udp4')
  const txPort = tx.bind(0, '127.0.0.1').port
  try {
    if (spec.api === 'send') {
      const n = await tx.send(jsMessages, rxs[0].port, '127.0.0.1')
      if (n !== messages.length) throw new Error(`send resolved ${n}, not ${messages.length}`)
    } else if (spec.api === 'trySend') {
      let n = tx.trySend(jsMessages, rxs[0].port, '127.0.0.1')
      if (n < messages.length) {
        stats.shortTrySends++
        n += await tx.send(jsMessages.slice(n), rxs[0].port, '127.0.0.1')
      }
      if (n !== messages.length) throw new Error(`sent ${n}, not ${messages.length}`)
    } else {
      // trySendPacked takes one destination per call: one call per run of same-destination
      // messages, each a zero-copy slice of the pool.
      for (let i = 0; i < messages.length; ) {
        let j = i
        while (j < messages.length && messages[j].dest === messages[i].dest) j++
        const end = j < messages.length ? starts[j] : pool.length
        const packed = pool.subarray(starts[i], end)
        const lengths = sizes.slice(i, j)
        const useU32 = (spec.seed + i) % 2 === 0
        let n = tx.trySendPacked(packed, useU32 ? Uint32Array.from(lengths) : lengths, rxs[messages[i].dest].port, '127.0.0.1')
        if (n < lengths.length) {
          stats.shortTrySends++
          const rest = packed.subarray(lengths.slice(0, n).reduce((a, b) => a + b, 0))
          n += await tx.sendPacked(rest, lengths.slice(n), rxs[messages[i].dest].port, '127.0.0.1')
        }
        if (n !== lengths.length) throw new Error(`packed run sent ${n}, not ${lengths.length}`)
        i = j
      }
    }
    // Wait for everything, then linger so duplicates would show.
    const arrived = () => rxs.every((s, d) => s.from(txPort).length >= expected[d].length)
    for (let waited = 0; !arrived() && waited < 8000; waited += 10) await sleep(10)
    await sleep(25)
    for (let d = 0; d < rxs.length; d++) {
      const got = rxs[d].from(txPort).map((x) => x.data)
      const want = expected[d]
      if (got.length !== want.length) {
        throw new Error(`receiver ${d}: ${got.length} datagrams arrived, ${want.length} sent (drops reported by the kernel? budget ${budget})`)
      }
      for (let i = 0; i < want.length; i++) {
        if (!got[i].equals(want[i])) {
          throw new Error(`receiver ${d}, datagram ${i}: ${got[i].length} bytes ${got[i].subarray(0, 16).toString('hex')}… != ${want[i].length} bytes ${want[i].subarray(0, 16).toString('hex')}…`)
        }
      }
    }
    stats.batches++
    stats.datagrams += messages.length
    stats.bytes += pool.length
    stats.maxBatch = Math.max(stats.maxBatch, messages.length)
  } finally {
    tx.close()
  }
}

// A datagram of `size` bytes cut at up to 7 points into 1–8 pieces (empty pieces allowed).
const datagramArb = fc
  .record({
    size: fc.integer({ min: 0, max: 1500 }),
    cuts: fc.array(fc.integer({ min: 0, max: 1500 }), { maxLength: 7 }),
  })
  .map(({ size, cuts }: { size: number; cuts: number[] }) => {
    const points = cuts.map((c) => c % (size + 1)).sort((a, b) => a - b)
    const pieces: number[] = []
    let last = 0
    for (const p of points) {
      pieces.push(p - last)
      last = p
    }
    pieces.push(size - last)
    return pieces
  })

const messageArb = fc.record({
  dest: fc.integer({ min: 0, max: 2 }),
  pieces: datagramArb,
  shape: fc.constantFrom('bare', 'object', 'portOnly', 'single'),
  uint8: fc.boolean(),
})

const apiArb = fc.constantFrom('trySend', 'send', 'trySendPacked')

test.serial('small batches (shrinkable): every datagram exactly once, in order per destination, byte for byte', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({ api: apiArb, receivers: fc.integer({ min: 2, max: 3 }), seed: fc.integer(), messages: fc.array(messageArb, { minLength: 1, maxLength: 64 }) }),
      async (spec: BatchSpec) => {
        spec.messages = spec.messages.map((m: MessageSpec) => ({ ...m, dest: m.dest % spec.receivers }))
        await sendAndCheck(spec)
      },
    ),
    { numRuns: 30 },
  )
  t.pass()
})

// Large batches: fast-check picks the count (up to 5000), the mix and a seed; the seed derives
// the individual datagrams (generating 5000 records through fast-check would dominate the run).
interface LargeParams {
  api: Api
  receivers: number
  seed: number
  count: number
  maxPieces: number
  sizes: 'tiny' | 'small' | 'mixed' | 'mtu'
  destinations: 'round-robin' | 'random' | 'runs'
}

function largeSpec(p: LargeParams): BatchSpec {
  const random = prng(p.seed)
  const int = (n: number) => Math.floor(random() * n)
  const size = () =>
    p.sizes === 'tiny' ? int(17) : p.sizes === 'small' ? int(201) : p.sizes === 'mtu' ? 1400 + int(101) : random() < 0.1 ? 0 : int(1501)
  const shapes: MessageSpec['shape'][] = ['bare', 'object', 'portOnly', 'single']
  let dest = 0
  const messages: MessageSpec[] = Array.from({ length: p.count }, (_, i) => {
    if (p.destinations === 'round-robin') dest = i % p.receivers
    else if (p.destinations === 'random') dest = int(p.receivers)
    else if (random() < 0.02) dest = int(p.receivers)
    const total = size()
    const n = 1 + int(p.maxPieces)
    const cuts = Array.from({ length: n - 1 }, () => int(total + 1)).sort((a, b) => a - b)
    const pieces = [...cuts, total].map((c, k, all) => c - (k === 0 ? 0 : all[k - 1]))
    return { dest, pieces, shape: shapes[int(4)], uint8: random() < 0.5 }
  })
  return { api: p.api, receivers: p.receivers, seed: p.seed, messages }
}

const largeArb = fc.record({
  api: apiArb,
  receivers: fc.integer({ min: 2, max: 3 }),
  seed: fc.integer(),
  count: fc.integer({ min: 1, max: 5000 }),
  maxPieces: fc.integer({ min: 1, max: 8 }),
  sizes: fc.constantFrom('tiny', 'small', 'mixed', 'mtu'),
  destinations: fc.constantFrom('round-robin', 'random', 'runs'),
})

test.serial('large batches (up to 5000 datagrams): exactly once, in order per destination, byte for byte', async (t) => {
  const started = Date.now()
  await fc.assert(
    fc.asyncProperty(largeArb, async (params: LargeParams) => {
      await sendAndCheck(largeSpec(params))
    }),
    {
      numRuns: 24,
      // Always include the full 5000 through each API (fast-check adds its random runs).
      examples: (['trySend', 'send', 'trySendPacked'] as const).map((api) => [
        { api, receivers: 3, seed: 5000, count: 5000, maxPieces: 8, sizes: 'small', destinations: 'random' } as LargeParams,
      ]),
    },
  )
  t.log(`${stats.batches} batches, ${stats.datagrams} datagrams, ${(stats.bytes / 1e6).toFixed(1)} MB, largest batch ${stats.maxBatch}, short trySends ${stats.shortTrySends}, ${Date.now() - started} ms`)
  t.true(stats.maxBatch >= 1000, 'some batch had at least a thousand datagrams')
})
