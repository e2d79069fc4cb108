#!/usr/bin/env node
'use strict'
// Runs Node's own test/*/test-dgram-*.js against sendmmsg/dgram, from a bare git mirror of
// denoland/node_test (a copy of Node's test/ directory). `dgram` and `node:dgram` are resolved
// to dist/dgram.js by a preload (CommonJS) and a resolve hook (ES modules).
//
//   node scripts/node-dgram-tests.js [mirror-git-dir]   (default: $NODE_TEST_MIRROR or
//   /work/.mirror/denoland+node_test/repo). Without the mirror (no network in CI) it skips.
//
// Tests that reach into Node internals (--expose-internals, internalBinding, internal/...,
// kStateSymbol, _createSocketHandle) or need cluster are not run: they test Node, not dgram.
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const mirror = process.argv[2] || process.env.NODE_TEST_MIRROR || '/work/.mirror/denoland+node_test/repo'
const dropIn = path.join(root, 'dist', 'dgram.js')
const TIMEOUT_MS = 30000

if (!fs.existsSync(mirror)) {
  console.log(`SKIP: no denoland/node_test mirror at ${mirror} (needs network to fetch); nothing run.`)
  process.exit(0)
}
if (!fs.existsSync(dropIn)) {
  console.error(`dist/dgram.js is missing: run npm run build:ts first`)
  process.exit(1)
}

const git = (...args) => execFileSync('git', ['--git-dir', mirror, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 })
// The mirror's history vendors several Node versions: use the one of the running Node (its
// test/common needs that Node's features), else the newest. NODE_TEST_REF overrides.
const major = process.versions.node.split('.')[0]
const ref = process.env.NODE_TEST_REF || git('log', '--format=%H %s').split('\n')
  .map((line) => line.split(' '))
  .filter(([, ...subject]) => new RegExp(`\\bv?${major}\\.\\d+\\.\\d+`).test(subject.join(' ')))
  .map(([hash]) => hash)[0] || 'HEAD'
console.log(`Node ${process.versions.node}; tests from ${git('log', '-1', '--format=%h %s', ref).trim()}`)
const files = git('ls-tree', '-r', '--name-only', ref, 'test/')
  .split('\n')
  .filter((f) => /^test\/(parallel|sequential)\/test-dgram-.*\.m?js$/.test(f))

// A scratch copy of test/common (and the tests) for the tests' require('../common').
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'node-dgram-tests-'))
execFileSync('sh', ['-c', `git --git-dir "${mirror}" archive ${ref} test/common 2>/dev/null | tar -x -C "${work}"`])

const preload = path.join(work, 'use-sendmmsg-dgram.cjs')
fs.writeFileSync(preload, `'use strict'
const Module = require('node:module')
const original = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (request === 'dgram' || request === 'node:dgram') return ${JSON.stringify(dropIn)}
  return original.call(this, request, ...rest)
}
if (typeof Module.register === 'function') Module.register(${JSON.stringify('file://' + path.join(work, 'hooks.mjs'))})
`)
fs.writeFileSync(path.join(work, 'hooks.mjs'), `
export async function resolve(specifier, context, next) {
  if (specifier === 'dgram' || specifier === 'node:dgram') return { url: ${JSON.stringify('file://' + dropIn)}, shortCircuit: true }
  return next(specifier, context)
}
`)

const INTERNALS = /--expose-internals|internalBinding|require\('internal\/|kStateSymbol|_createSocketHandle|require\('cluster'\)|common\/udp/

let passed = 0
let failed = 0
let skipped = 0
const failures = []
for (const file of files) {
  const source = git('show', `${ref}:${file}`)
  const name = path.basename(file)
  if (INTERNALS.test(source)) {
    console.log(`skip  ${name} (Node internals or cluster)`)
    skipped++
    continue
  }
  const target = path.join(work, file)
  fs.mkdirSync(path.dirname(target), { recursive: true })
  fs.writeFileSync(target, source)
  const flagLine = /^\/\/ Flags: (.*)$/m.exec(source)
  const flags = flagLine ? flagLine[1].trim().split(/\s+/) : []
  const run = spawnSync(process.execPath, ['--require', preload, ...flags, target], {
    cwd: path.dirname(target),
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
  })
  const ok = run.status === 0
  if (ok) passed++
  else {
    failed++
    const output = `${run.stderr || ''}${run.stdout || ''}`.trim().split('\n').slice(0, 12).join('\n      ')
    failures.push(name)
    console.log(`FAIL  ${name} (${run.signal ? `signal ${run.signal}` : `exit ${run.status}`})\n      ${output}`)
    continue
  }
  console.log(`pass  ${name}`)
}
fs.rmSync(work, { recursive: true, force: true })
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped (of ${files.length} test-dgram-* files)`)
if (failures.length) console.log(`failed: ${failures.join(' ')}`)
process.exit(failed > 0 ? 1 : 0)
