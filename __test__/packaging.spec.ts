// The package as consumers get it (needs `npm run build` first: dist/ and the x64 glibc .node).
//
//  - types: __test__/types/*.mts|*.cts consumers of 'sendmmsg' (and 'sendmmsg/dgram' once the
//    build ships it) under tsc --strict with nodenext and bundler resolution, resolved by
//    self-reference (package name + "exports"); each @ts-expect-error line must really be an error;
//  - packing: the repository root refuses `npm pack` (prepack: scripts/check-pack.js);
//  - install: the staged root + the linux-x64-gnu sub-package packed into a scratch dir,
//    installed offline into a scratch project, and an ESM, a CommonJS and a TypeScript consumer
//    run there against loopback (bytes checked; SendError identical through import and require).
import test from 'ava'
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const root = path.resolve(__dirname, '..')
const typesDir = path.join(root, '__test__', 'types')
const bin = (name: string): string => path.join(root, 'node_modules', '.bin', name)
const hasDgram = fs.existsSync(path.join(root, 'dist', 'dgram.d.ts'))
const TIMEOUT = 90_000

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: TIMEOUT })
}
const output = (r: SpawnSyncReturns<string>): string => `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}`

// sendmmsg/dgram consumers only once lib/dgram.ts is built (dist/dgram.d.ts)
function consumerFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /\.(mts|cts)$/.test(f) && (hasDgram || !f.startsWith('dgram.'))).map((f) => path.join(dir, f))
}

// A tsconfig extending one of __test__/types' with an explicit file list (written next to the files,
// so that 'sendmmsg' still resolves by self-reference).
function tsc(base: string, dir: string, files: string[]): SpawnSyncReturns<string> {
  const cfg = path.join(dir, `.tsconfig.${path.basename(base, '.json')}.${process.pid}.json`)
  fs.writeFileSync(cfg, JSON.stringify({ extends: base, include: [], files }))
  try {
    return run(bin('tsc'), ['-p', cfg], root)
  } finally {
    fs.rmSync(cfg, { force: true })
  }
}

test.before(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'index.js')) || !fs.existsSync(path.join(root, 'dist', 'index.d.mts'))) {
    throw new Error('dist/ is not built: run `npm run build` (or `npm run build:ts`) first')
  }
})

if (!hasDgram) test('sendmmsg/dgram consumers are skipped: dist/dgram.d.ts is not built', (t) => { t.log('lib/dgram.ts not built yet'); t.pass() })

for (const resolution of ['nodenext', 'bundler']) {
  test(`consumer types: tsc --strict, moduleResolution ${resolution}`, (t) => {
    const files = consumerFiles(typesDir)
    const r = tsc(path.join(typesDir, `tsconfig.${resolution}.json`), typesDir, files)
    t.is(r.status, 0, output(r))
    t.log(`${files.map((f) => path.basename(f)).join(', ')}: 0 errors`)
  })
}

test('consumer types: every @ts-expect-error line is a real error', (t) => {
  // copies without the directives, under the repo so self-reference still resolves
  fs.mkdirSync(path.join(root, '.tmp'), { recursive: true }) // .tmp/ is gitignored
  const dir = fs.mkdtempSync(path.join(root, '.tmp', 'types-misuse-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const expected = new Set<string>()
  for (const f of consumerFiles(typesDir)) {
    const lines = fs.readFileSync(f, 'utf8').split('\n')
    const kept: string[] = []
    for (const line of lines) {
      if (/^\s*\/\/ @ts-expect-error/.test(line)) expected.add(`${path.basename(f)}:${kept.length + 1}`)
      else kept.push(line)
    }
    fs.writeFileSync(path.join(dir, path.basename(f)), kept.join('\n'))
  }
  const r = tsc(path.join(typesDir, 'tsconfig.nodenext.json'), dir, consumerFiles(dir))
  const got = new Set([...output(r).matchAll(/([\w.]+\.[mc]ts)\((\d+),\d+\): error/g)].map((m) => `${m[1]}:${m[2]}`))
  t.deepEqual([...got].sort(), [...expected].sort(), output(r))
})

test('npm pack of the repository root is refused (prepack)', (t) => {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'sendmmsg-refuse-'))
  t.teardown(() => fs.rmSync(dest, { recursive: true, force: true }))
  const r = run('npm', ['pack', '--pack-destination', dest], root, { npm_config_update_notifier: 'false' })
  t.not(r.status, 0, output(r))
  t.regex(output(r), /check-pack: refusing to pack/)
  t.regex(output(r), /optionalDependencies must list sendmmsg-linux-x64-gnu@/)
  t.deepEqual(fs.readdirSync(dest), [], 'no tarball written')
})

test('packed tarballs install offline and run as ESM, CommonJS and TypeScript consumers', (t) => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sendmmsg-pack-'))
  t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }))
  const pack = path.join(scratch, 'pack')
  fs.mkdirSync(pack)
  const version: string = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version

  // root, staged as published but listing only the x64 glibc sub-package
  const stage = path.join(scratch, 'stage')
  const stageArgs = [path.join(root, 'scripts/platform/prepare-publish.js'), root, stage, '--platforms', 'linux-x64-gnu']
  if (!hasDgram) stageArgs.push('--allow-missing-dgram')
  let r = run(process.execPath, stageArgs, root)
  t.is(r.status, 0, output(r))
  r = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', pack, stage], scratch)
  t.is(r.status, 0, output(r))

  // the sub-package, with the binary from build:all, else the one `npm run build` left in the root
  const sub = path.join(scratch, 'linux-x64-gnu')
  fs.mkdirSync(sub)
  for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(root, 'npm/linux-x64-gnu', f), path.join(sub, f))
  const node = ['npm/linux-x64-gnu/sendmmsg.linux-x64-gnu.node', 'sendmmsg.linux-x64-gnu.node'].map((f) => path.join(root, f)).find((f) => fs.existsSync(f))
  if (!node) return t.fail('no sendmmsg.linux-x64-gnu.node: run npm run build')
  fs.copyFileSync(node, path.join(sub, 'sendmmsg.linux-x64-gnu.node'))
  r = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', pack, sub], scratch)
  t.is(r.status, 0, output(r))

  const rootTgz = path.join(pack, `sendmmsg-${version}.tgz`)
  const listing = run('tar', ['tzf', rootTgz], scratch).stdout.split('\n').filter(Boolean)
  t.false(listing.some((f) => f.endsWith('.node')), 'the root tarball holds no .node')
  for (const f of ['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'dist/index.js.map', 'native.js', 'binding.js', 'binding.d.ts', 'package.json', 'README.md', 'LICENSE']) {
    t.true(listing.includes(`package/${f}`), `root tarball has ${f}`)
  }

  // consumer project: offline, empty cache, no install scripts
  const app = path.join(scratch, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({
    name: 'sendmmsg-consumer', version: '1.0.0', private: true,
    dependencies: { sendmmsg: `file:${rootTgz}` },
    overrides: { 'sendmmsg-linux-x64-gnu': `file:${path.join(pack, `sendmmsg-linux-x64-gnu-${version}.tgz`)}` },
  }))
  r = run('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], app, {
    npm_config_cache: path.join(scratch, 'cache'), npm_config_update_notifier: 'false',
  })
  t.is(r.status, 0, output(r))
  t.true(fs.existsSync(path.join(app, 'node_modules/sendmmsg-linux-x64-gnu/sendmmsg.linux-x64-gnu.node')))

  // TypeScript: the type consumers compiled against the installed package, then run as emitted
  // ESM (.mjs) and CommonJS (.cjs); the ESM one also straight from source through tsx.
  for (const f of ['esm.mts', 'cjs.cts']) fs.copyFileSync(path.join(typesDir, f), path.join(app, f))
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', outDir: 'out',
      types: ['node'], typeRoots: [path.join(root, 'node_modules/@types')], skipLibCheck: false,
    },
    files: ['esm.mts', 'cjs.cts'],
  }))
  r = run(bin('tsc'), ['-p', 'tsconfig.json'], app)
  t.is(r.status, 0, output(r))
  const runs: Array<[string, string[], RegExp]> = [
    ['ESM (compiled .mjs)', ['out/esm.mjs'], /^TYPES ESM OK sent=2 .*SendError EMSGSIZE index=1 sent=1 \(import === require\)/m],
    ['CommonJS (compiled .cjs)', ['out/cjs.cjs'], /^TYPES CJS OK sent=1 .*bytes=18 SendError EMSGSIZE/m],
    ['TypeScript (tsx, from source)', ['--import', require.resolve('tsx'), 'esm.mts'], /^TYPES ESM OK sent=2 /m],
  ]
  for (const [label, args, want] of runs) {
    r = run(process.execPath, args, app)
    t.is(r.status, 0, `${label}: ${output(r)}`)
    t.regex(r.stdout, want, label)
    t.log(`${label}: ${r.stdout.trim()}`)
  }

  // plain JavaScript consumers, as most users write them
  fs.writeFileSync(path.join(app, 'plain.mjs'), `
import { createSocket, SendError } from 'sendmmsg'
import { createRequire } from 'node:module'
const cjs = createRequire(import.meta.url)('sendmmsg')
if (SendError !== cjs.SendError || createSocket !== cjs.createSocket) throw new Error('dual-package hazard')
console.log('PLAIN ESM OK', typeof createSocket('udp4').close)
process.exit(0)
`)
  fs.writeFileSync(path.join(app, 'plain.cjs'), `
const { createSocket } = require('sendmmsg')
const s = createSocket('udp4').bind(0, '127.0.0.1')
console.log('PLAIN CJS OK port', s.address().port > 0)
s.close()
`)
  for (const f of ['plain.mjs', 'plain.cjs']) {
    r = run(process.execPath, [f], app)
    t.is(r.status, 0, `${f}: ${output(r)}`)
    t.regex(r.stdout, /^PLAIN (ESM|CJS) OK/m)
  }

  // without the sub-package (what --omit=optional leaves): the error names the package and causes
  fs.renameSync(path.join(app, 'node_modules/sendmmsg-linux-x64-gnu'), path.join(scratch, 'moved-away'))
  r = run(process.execPath, ['-e', "try { require('sendmmsg') } catch (e) { console.log(e.code + '\\n' + e.message) }"], app)
  t.regex(r.stdout, /^ERR_SENDMMSG_BINARY_MISSING$/m, output(r))
  t.regex(r.stdout, /npm install sendmmsg-linux-x64-gnu@/)
  t.regex(r.stdout, /--omit=optional/)
  t.regex(r.stdout, /lockfile was made on another platform/)
  t.notRegex(r.stdout, /wasi/i)
})
