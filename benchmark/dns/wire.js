'use strict'
// DNS wire format for the load generator: the query mix (names and the A record each must
// answer with), query templates, and a strict, allocation-free answer check. Shared by the
// sendmmsg and node:dgram clients so both do exactly the same work per query.

const ZONE = 'bench.test.'
const MAX_NAMES = 65535

/** Name i of the zone and the address unbound is configured to answer it with. */
const nameOf = (i) => `h${i}.${ZONE}`
const addressOf = (i) => `127.0.${(i + 1) >> 8}.${(i + 1) & 255}`

/**
 * The query order, identical for every client (dnsperf reads it from a file): all names once,
 * shuffled with a fixed seed so consecutive queries do not walk the zone in order.
 */
function queryOrder(count) {
  if (!(count >= 1 && count <= MAX_NAMES)) throw new RangeError(`names must be 1..${MAX_NAMES}`)
  const order = Array.from({ length: count }, (_, i) => i)
  let seed = 0x2545f491
  for (let i = count - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0 // LCG: deterministic, good enough to shuffle
    const j = seed % (i + 1)
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

/** QNAME + QTYPE A + QCLASS IN, the part of the query the answer must echo byte for byte. */
function questionBytes(name) {
  const labels = name.split('.').filter(Boolean)
  const parts = []
  for (const label of labels) parts.push(Buffer.from([label.length]), Buffer.from(label, 'ascii'))
  parts.push(Buffer.from([0, 0, 1, 0, 1]))
  return Buffer.concat(parts)
}

/**
 * Per-name data for the hot path: the question bytes (after the 12-byte header) and the
 * expected A record as a 32-bit integer.
 */
function buildTable(count) {
  const questions = []
  const expected = new Uint32Array(count)
  for (let i = 0; i < count; i++) {
    questions.push(questionBytes(nameOf(i)))
    const [a, b, c, d] = addressOf(i).split('.').map(Number)
    expected[i] = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0
  }
  return { questions, expected, maxQueryLength: 12 + Math.max(...questions.map((q) => q.length)) }
}

/** Writes a query (RD set, no EDNS: what dnsperf sends by default) at `off`; returns its length. */
function writeQuery(buf, off, id, question) {
  buf[off] = id >> 8
  buf[off + 1] = id & 255
  buf[off + 2] = 0x01 // RD
  buf[off + 3] = 0
  buf[off + 4] = 0
  buf[off + 5] = 1 // QDCOUNT 1
  buf.fill(0, off + 6, off + 12) // AN/NS/AR 0
  question.copy(buf, off + 12)
  return 12 + question.length
}

// Reasons an answer fails the check (indexes into the counters the clients report).
const FAIL = { malformed: 1, header: 2, question: 3, address: 4 }
const FAIL_NAMES = ['ok', 'malformed', 'header', 'question', 'address']

/** Offset just past the (possibly compressed) name at `p`, or -1 if it runs past `end`. */
function skipName(buf, p, end) {
  for (let guard = 0; guard < 128 && p < end; guard++) {
    const len = buf[p]
    if (len === 0) return p + 1
    if ((len & 0xc0) === 0xc0) return p + 2 <= end ? p + 2 : -1
    if (len & 0xc0) return -1
    p += 1 + len
  }
  return -1
}

/**
 * Whether the name at `p` equals the question name at `q` (both in the message starting at
 * `base`), following compression pointers (bounded), comparing labels case-insensitively.
 */
function sameName(buf, base, end, p, q) {
  for (let guard = 0; guard < 128; guard++) {
    while (p < end && (buf[p] & 0xc0) === 0xc0) {
      if (p + 1 >= end || guard++ > 128) return false
      p = base + (((buf[p] & 0x3f) << 8) | buf[p + 1])
    }
    while (q < end && (buf[q] & 0xc0) === 0xc0) {
      if (q + 1 >= end || guard++ > 128) return false
      q = base + (((buf[q] & 0x3f) << 8) | buf[q + 1])
    }
    if (p >= end || q >= end) return false
    const len = buf[p]
    if (len !== buf[q] || len & 0xc0) return false
    if (len === 0) return true
    if (p + 1 + len > end || q + 1 + len > end) return false
    for (let i = 1; i <= len; i++) if ((buf[p + i] | 0x20) !== (buf[q + i] | 0x20)) return false
    p += 1 + len
    q += 1 + len
  }
  return false
}

/**
 * Checks one answer (`len` bytes at `off`) against the query it claims to answer: a response
 * (QR) to a standard query, NOERROR, not truncated, one question equal byte for byte to what we
 * sent, and at least one A/IN record for that name, every one of them the expected address.
 * Returns 0 or a FAIL code. The caller has already matched the id.
 */
function checkAnswer(buf, off, len, question, expected) {
  const end = off + len
  if (len < 12) return FAIL.malformed
  const flags = (buf[off + 2] << 8) | buf[off + 3]
  // QR=1, opcode 0, TC=0, RCODE 0
  if ((flags & 0x8000) === 0 || (flags & 0x7800) !== 0 || (flags & 0x0200) !== 0 || (flags & 0x000f) !== 0) return FAIL.header
  const qd = (buf[off + 4] << 8) | buf[off + 5]
  const an = (buf[off + 6] << 8) | buf[off + 7]
  if (qd !== 1 || an === 0) return FAIL.header
  const qEnd = off + 12 + question.length
  if (qEnd > end) return FAIL.question
  for (let i = 0; i < question.length; i++) if (buf[off + 12 + i] !== question[i]) return FAIL.question
  let p = qEnd
  let matched = 0
  for (let r = 0; r < an; r++) {
    const owner = p
    p = skipName(buf, p, end)
    if (p < 0 || p + 10 > end) return FAIL.malformed
    const type = (buf[p] << 8) | buf[p + 1]
    const cls = (buf[p + 2] << 8) | buf[p + 3]
    const rdlen = (buf[p + 8] << 8) | buf[p + 9]
    const rdata = p + 10
    if (rdata + rdlen > end) return FAIL.malformed
    if (type === 1 && cls === 1) {
      // The compressed pointer to the question (0xc00c) is the usual case: no walk needed.
      const mine = (buf[owner] === 0xc0 && buf[owner + 1] === 12) || sameName(buf, off, end, owner, off + 12)
      if (mine) {
        if (rdlen !== 4) return FAIL.address
        const got = ((buf[rdata] << 24) | (buf[rdata + 1] << 16) | (buf[rdata + 2] << 8) | buf[rdata + 3]) >>> 0
        if (got !== expected) return FAIL.address
        matched++
      }
    }
    p = rdata + rdlen
  }
  return matched > 0 ? 0 : FAIL.address
}

module.exports = { ZONE, MAX_NAMES, nameOf, addressOf, queryOrder, questionBytes, buildTable, writeQuery, checkAnswer, FAIL, FAIL_NAMES }
