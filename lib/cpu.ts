// The calling thread's CPU affinity, for a server that runs one worker per core (see
// `UdpSocket.steerByCpu`). Node.js has no API for it; in a `worker_threads` worker the calling
// thread is the worker's own OS thread, so a worker can pin itself without touching the others.
import { native } from './native'
import { fromNative, invalidArgType, outOfRange, typeError } from './errors'

/** Highest CPU number {@link setThreadAffinity} accepts. */
const MAX_CPU = 65535

/**
 * Pins the calling thread (in a worker: the worker's own thread; on the main thread: only the
 * main thread, not libuv's or V8's helper threads) to `cpus`, with `sched_setaffinity(0, ...)`.
 * Throws `ERR_INVALID_ARG_VALUE` for an empty list, `ERR_OUT_OF_RANGE` for a CPU that is not an
 * integer 0–65535, and the kernel's `EINVAL` (syscall `sched_setaffinity`) when none of the CPUs
 * is online and allowed to this process.
 */
export function setThreadAffinity(cpus: readonly number[]): void {
  if (!Array.isArray(cpus)) throw invalidArgType('cpus', 'an array of CPU numbers', cpus)
  if (cpus.length === 0) throw typeError('ERR_INVALID_ARG_VALUE', 'The argument \'cpus\' must name at least one CPU. Received []')
  const plain: number[] = new Array<number>(cpus.length)
  for (let i = 0; i < cpus.length; i++) {
    const cpu: unknown = cpus[i]
    if (typeof cpu !== 'number') throw invalidArgType(`cpus[${i}]`, 'of type number', cpu)
    if (!Number.isInteger(cpu) || cpu < 0 || cpu > MAX_CPU) throw outOfRange(`cpus[${i}]`, `an integer >= 0 and <= ${MAX_CPU}`, cpu)
    plain[i] = cpu
  }
  try {
    native.setThreadAffinity(plain)
  } catch (error) {
    throw fromNative(error)
  }
}

/** The CPUs the calling thread may run on, ascending (`sched_getaffinity(0, ...)`). */
export function getThreadAffinity(): number[] {
  try {
    return native.getThreadAffinity()
  } catch (error) {
    throw fromNative(error)
  }
}
