// The entry point: one clear error on platforms without sendmmsg(2); the binding elsewhere.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'

const run = promisify(execFile)
const entry = path.join(__dirname, '..', 'index.js')

for (const [platform, arch] of [['darwin', 'arm64'], ['win32', 'x64'], ['freebsd', 'x64'], ['linux', 'ia32'], ['linux', 'arm']]) {
  test(`${platform}-${arch} gets one clear error naming it and the supported platforms`, async (t) => {
    const script = `
      Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} })
      Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} })
      try { require(${JSON.stringify(entry)}); console.log('loaded') }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`
    const { stdout } = await run(process.execPath, ['-e', script])
    const error = JSON.parse(stdout)
    t.is(error.code, 'ERR_SENDMMSG_UNSUPPORTED_PLATFORM')
    t.true(error.message.includes(`${platform}-${arch}`))
    for (const supported of ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl']) {
      t.true(error.message.includes(supported))
    }
  })
}

test('on this Linux machine the entry point loads the binding (CommonJS and ESM)', async (t) => {
  const cjs = await run(process.execPath, ['-e', `const m = require(${JSON.stringify(entry)}); console.log(typeof m.UdpSocket, typeof m.sendmmsg)`])
  t.is(cjs.stdout.trim(), 'function function')
  const esm = await run(process.execPath, ['--input-type=module', '-e', `import { UdpSocket, recvmmsg } from ${JSON.stringify(entry)}; console.log(typeof UdpSocket, typeof recvmmsg)`])
  t.is(esm.stdout.trim(), 'function function')
})
