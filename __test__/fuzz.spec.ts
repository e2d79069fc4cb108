// Fuzzer: fast-check builds hostile argument graphs for the raw binding (NativeSocket.send /
// recv, sendmmsg, trySendmmsg, recvmmsg) and the public trySend, with getters that detach,
// resize, close, re-enter, gc or throw. The loop runs in a child process
// (fixtures/fuzz-child.js, `--expose-gc`) so an abort is seen as an exit status or signal.
// Bounded by FUZZ_SECONDS (default 20; CI sets 60); FUZZ_SEED replays a run.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import path from 'node:path'

const seconds = Number(process.env.FUZZ_SECONDS ?? 20)
const seed = Number(process.env.FUZZ_SEED ?? (Date.now() % 0x7fffffff))

test('fuzz: hostile argument graphs never abort, never send foreign or duplicated bytes', (t) => {
  t.timeout((seconds + 30) * 1000)
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'fixtures', 'fuzz-child.js')], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    env: { ...process.env, FUZZ_SECONDS: String(seconds), FUZZ_SEED: String(seed) },
    timeout: (seconds + 25) * 1000,
    maxBuffer: 64 << 20,
  })
  const out = `${r.stdout}\n${r.stderr}`
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '))
  const result = line ? JSON.parse(line.slice(7)) as { seed: number; iterations: number; received: number; badCount: number; bad: string[]; calls: unknown } : undefined
  const report = `fuzz seed=${seed} iterations=${result?.iterations ?? '?'} calls=${JSON.stringify(result?.calls)} received=${result?.received ?? '?'} (replay: FUZZ_SEED=${seed})`
  t.log(report)
  console.log(report)
  t.is(r.signal, null, `child killed by ${r.signal}\n${out.slice(-4000)}`)
  t.is(r.status, 0, out.slice(-4000))
  t.truthy(result, out.slice(-4000))
  t.is(result?.seed, seed)
  t.true((result?.iterations ?? 0) > 0)
  t.deepEqual(result?.bad, [], `${result?.badCount} bad datagrams`)
})
