// Runs inside the test's network namespace: receives numbered datagrams (see numberedPayloads)
// and prints one JSON line with what arrived. Bounded by count and time.
const dgram = require('node:dgram')
const [address, port, expected, timeoutMs] = process.argv.slice(2)
const want = Number(expected)
const seen = new Uint8Array(want)
let count = 0, inOrder = true, last = -1, duplicates = 0, corrupt = 0
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 })
const finish = () => {
  process.stdout.write(JSON.stringify({ count, inOrder, duplicates, corrupt }) + '\n')
  socket.close()
}
socket.on('message', (m) => {
  const i = m.readUInt32BE(0)
  for (let j = 4; j < m.length; j++) if (m[j] !== ((i * 31 + j) & 0xff)) { corrupt++; break }
  if (i >= want) { corrupt++; return }
  if (seen[i]) duplicates++
  seen[i] = 1
  if (i !== last + 1) inOrder = false
  last = i
  count++
  if (count === want) { clearTimeout(timer); setTimeout(finish, 200) }
})
const timer = setTimeout(finish, Number(timeoutMs))
socket.bind(Number(port), address, () => process.stdout.write('ready\n'))
