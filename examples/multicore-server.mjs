// All cores: a UDP echo server with one worker thread per CPU.
//
// Every worker pins itself to its CPU, opens a reusePort socket on the same port (in order, so
// worker i is socket i of the port's group), and the first one steers the group by CPU: a
// datagram received on CPU c goes to worker c % workers, which runs on that CPU. Each worker
// receives with the batch API (onBatch, one recvmmsg per batch) and echoes each batch back with
// one sendmmsg. At the end it prints how many datagrams each worker handled.
//
//   node examples/multicore-server.mjs [--port 0] [--host 127.0.0.1] [--workers N] [--seconds S]
//
// --workers defaults to os.availableParallelism() (the CPUs this process may use); without
// --seconds it runs until Ctrl-C. Try it with a sender pinned to one CPU, e.g.
//   taskset -c 1 python3 -c "import socket; s=socket.socket(2,2); [s.sendto(b'hi',('127.0.0.1',PORT)) for _ in range(100)]"
// and worker 1 % workers gets all 100.
import os from 'node:os'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { createRecvBatch, createSocket, getThreadAffinity, setThreadAffinity } from 'sendmmsg'

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback
}

if (isMainThread) {
  await main()
} else {
  serve(workerData)
}

async function main() {
  const host = option('host', '127.0.0.1')
  const seconds = Number(option('seconds', 'Infinity'))
  const parallelism = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
  const workers = Number(option('workers', String(parallelism)))
  if (!Number.isInteger(workers) || workers < 1 || workers > 65535) throw new RangeError('--workers must be 1 to 65535')
  // The CPUs this process may run on (taskset, cgroups). Worker i serves the datagrams received
  // on CPUs c with c % workers === i, so it runs on exactly those.
  const allowed = getThreadAffinity()
  const threads = []
  let port = Number(option('port', '0'))
  for (let index = 0; index < workers; index++) {
    const cpus = allowed.filter((cpu) => cpu % workers === index)
    const worker = new Worker(new URL(import.meta.url), { workerData: { index, workers, cpus, host, port } })
    // Bind one after the other: the group numbers its sockets in the order they were bound.
    const bound = await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    port = bound.port
    threads.push(worker)
  }
  console.log(`listening ${host}:${port}: ${workers} workers, steered by CPU (cpu % ${workers})`)

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    const results = await Promise.all(
      threads.map((worker) => {
        const done = new Promise((resolve) => worker.once('message', resolve))
        worker.postMessage('stop')
        return done
      }),
    )
    for (const r of results) {
      console.log(`worker ${r.index} (CPUs ${r.cpus.join(',') || 'any'}): received ${r.received}, echoed ${r.echoed}`)
    }
    console.log(`result ${JSON.stringify({ host, port, workers: results })}`)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  if (Number.isFinite(seconds)) setTimeout(stop, seconds * 1000)
}

function serve({ index, workers, cpus, host, port }) {
  // Only this worker's own thread: the others (and the main thread) keep their affinity.
  if (cpus.length > 0) setThreadAffinity(cpus)
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reusePort: true, recvBufferSize: 4 << 20 })
  socket.bind(port, host)
  if (index === 0) socket.steerByCpu(workers)

  let received = 0
  let echoed = 0
  const batch = createRecvBatch(256, 2048)
  const replies = []
  socket.onBatch(batch, (b) => {
    received += b.count
    replies.length = b.count
    for (let i = 0; i < b.count; i++) {
      // A view of the received bytes: sent back without a copy, before the next receive.
      replies[i] = { data: b.datagram(i), address: b.address(i), port: b.ports[i] }
    }
    // Fewer than the batch when the send buffer is full: UDP, so those echoes are dropped.
    echoed += socket.trySend(replies)
  })

  parentPort.on('message', () => {
    socket.close()
    parentPort.postMessage({ index, cpus: getThreadAffinity(), received, echoed })
    parentPort.close()
  })
  parentPort.postMessage({ port: socket.address().port })
}
