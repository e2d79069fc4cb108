// A small lab of network namespaces that a test makes for itself and always tears down: named
// namespaces joined by veth pairs (with an MTU, addresses, optional forwarding), and Node scripts
// run inside them as child processes (the test process itself stays in the root namespace).
// Names carry the pid and a per-lab tag so parallel test files never collide.
//
// The lab's namespaces are linked only to each other (never to the root namespace) and get no
// default route: the private addresses the tests give them (10.24x.0.0/16, fd00:24x::/32) are
// reachable only from inside the lab, so nothing a test sends can leave the machine.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { resolve } from 'node:path'

let labsMade = 0

export interface VethEnd {
  /** Namespace name (as given to `lab.namespace`). */
  ns: string
  /** Interface name inside that namespace. */
  name: string
  /** Addresses with prefix, e.g. `10.241.1.1/24` or `fd00:241:1::1/64`. */
  addresses: string[]
}

export interface NodeResult {
  code: number | null
  stdout: string
  stderr: string
  /** The last stdout line parsed as JSON (what the scripts here print as their result). */
  json: unknown
}

/** The package's root directory, for `require(ROOT)` inside scripts run in a namespace. */
export const PACKAGE_ROOT = resolve(__dirname, '..')

export class NetnsLab {
  readonly tag: string
  readonly #namespaces: string[] = []
  readonly #children = new Set<ChildProcess>()

  constructor() {
    this.tag = `${process.pid % 100000}x${labsMade++}`
  }

  /** Runs `ip` with `args` (throws with stderr on failure). */
  ip(...args: string[]): string {
    return execFileSync('ip', args, { stdio: 'pipe', encoding: 'utf8' })
  }

  /** Runs a command inside `ns` and returns its stdout. */
  exec(ns: string, file: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name(ns), file, ...args], { stdio: 'pipe', encoding: 'utf8' })
  }

  /** The real (unique) name of the lab's namespace `ns`. */
  name(ns: string): string {
    return `sm${ns}${this.tag}`
  }

  /** Creates namespace `ns` with `lo` up. */
  namespace(ns: string): string {
    const real = this.name(ns)
    try { this.ip('netns', 'del', real) } catch { /* not there */ }
    this.ip('netns', 'add', real)
    this.#namespaces.push(real)
    this.ip('-n', real, 'link', 'set', 'lo', 'up')
    return real
  }

  /** A veth pair between two of the lab's namespaces, both ends up, with `mtu` if given. */
  veth(a: VethEnd, b: VethEnd, options: { mtu?: number } = {}): void {
    const tmpA = `va${this.tag}`.slice(0, 15)
    const tmpB = `vb${this.tag}`.slice(0, 15)
    this.ip('link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB)
    for (const [tmp, end] of [[tmpA, a], [tmpB, b]] as const) {
      const ns = this.name(end.ns)
      this.ip('link', 'set', tmp, 'netns', ns)
      this.ip('-n', ns, 'link', 'set', tmp, 'name', end.name)
      if (options.mtu !== undefined) this.ip('-n', ns, 'link', 'set', end.name, 'mtu', String(options.mtu))
      for (const address of end.addresses) {
        // nodad: IPv6 addresses usable at once instead of after duplicate address detection
        const extra = address.includes(':') ? ['nodad'] : []
        this.ip('-n', ns, 'addr', 'add', address, 'dev', end.name, ...extra)
      }
      this.ip('-n', ns, 'link', 'set', end.name, 'up')
    }
  }

  /** Turns on IPv4 and IPv6 forwarding in `ns` (a router between two links). */
  forward(ns: string): void {
    this.exec(ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
    this.exec(ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1')
  }

  /** Adds a route in `ns`, e.g. `route('a', '10.241.2.0/24', 'via', '10.241.1.2')`. */
  route(ns: string, ...args: string[]): void {
    this.ip('-n', this.name(ns), 'route', 'add', ...args)
  }

  /**
   * Starts `node -e script ...args` inside `ns` (the script can `require(process.env.PACKAGE_ROOT)`).
   * The child is killed on `destroy()`; `ready` resolves at its first stdout line that starts
   * with `ready` (scripts print it once they listen), `done` when it exits.
   */
  startNode(ns: string, script: string, args: string[] = [], timeoutMs = 20_000): {
    child: ChildProcess
    ready: Promise<string>
    done: Promise<NodeResult>
  } {
    const child = spawn('ip', ['netns', 'exec', this.name(ns), process.execPath, '-e', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PACKAGE_ROOT },
    })
    this.#children.add(child)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    let stdout = ''
    let stderr = ''
    let readyLine: ((line: string) => void) | undefined
    let readyFailed: ((e: Error) => void) | undefined
    const ready = new Promise<string>((res, rej) => { readyLine = res; readyFailed = rej })
    ready.catch(() => { /* seen by whoever awaits it; runNode does not */ })
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d
      const line = stdout.split('\n').find((l) => l.startsWith('ready'))
      if (line !== undefined) readyLine?.(line)
    })
    child.stderr!.on('data', (d: Buffer) => (stderr += d))
    const done = new Promise<NodeResult>((res) => {
      child.once('exit', (code) => {
        clearTimeout(timer)
        this.#children.delete(child)
        readyFailed?.(new Error(`node in ${ns} exited ${code} before ready: ${stderr}`))
        const last = stdout.trim().split('\n').pop() ?? ''
        let json: unknown
        try { json = JSON.parse(last) } catch { json = undefined }
        res({ code, stdout, stderr, json })
      })
    })
    return { child, ready, done }
  }

  /** Runs a script inside `ns` to completion. */
  async runNode(ns: string, script: string, args: string[] = [], timeoutMs = 20_000): Promise<NodeResult> {
    return this.startNode(ns, script, args, timeoutMs).done
  }

  /**
   * Starts `file ...args` inside `ns` (stdout and stderr piped), for tools such as tcpdump; the
   * child is killed on `destroy()` if it is still running.
   */
  spawnIn(ns: string, file: string, args: string[] = []): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name(ns), file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#children.add(child)
    child.once('exit', () => this.#children.delete(child))
    return child
  }

  /** Interface `name` in `ns` as `ip -j link show` reports it: its index and MAC address. */
  link(ns: string, name: string): { ifindex: number; address: string } {
    const [info] = JSON.parse(this.ip('-n', this.name(ns), '-j', 'link', 'show', 'dev', name)) as Array<{ ifindex: number; address: string }>
    if (info === undefined) throw new Error(`no interface ${name} in ${ns}`)
    return { ifindex: info.ifindex, address: info.address }
  }

  /** Kills the lab's children and deletes its namespaces (their veths go with them). */
  destroy(): void {
    for (const child of this.#children) child.kill('SIGKILL')
    for (const ns of this.#namespaces.splice(0)) {
      try { this.ip('netns', 'del', ns) } catch { /* already gone */ }
    }
  }
}
