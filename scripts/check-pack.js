#!/usr/bin/env node
// Refuses to pack or publish a root package that would install broken (package.json `prepack`).
//
// The root package carries no .node of its own: it needs (a) the built JS/types in dist/ and
// the loader files, and (b) the four per-platform packages listed as exact-version
// optionalDependencies, which only the publish staging step adds (scripts/platform/prepare-publish.js;
// the repository's own package.json leaves them out so `npm ci` works in a clone). A tarball
// missing either loads with "Cannot find module" or "Cannot find native binding" on every machine.
//
//   node scripts/check-pack.js [package dir]        (default: the current directory)
//   require('./check-pack.js').checkPackage(dir, { platforms }) -> list of problems
'use strict'
const fs = require('node:fs')
const path = require('node:path')

// napi target triple -> platform package suffix (npm/<platform>)
function platformOf(triple) {
  const m = /^(x86_64|aarch64)-unknown-linux-(gnu|musl)$/.exec(triple)
  if (!m) throw new Error(`check-pack: unknown napi target ${triple}`)
  return `linux-${m[1] === 'x86_64' ? 'x64' : 'arm64'}-${m[2]}`
}

// Every file an "exports" target names (conditions nest; strings are targets).
function exportTargets(node, out = []) {
  if (typeof node === 'string') out.push(node)
  else if (node && typeof node === 'object') for (const v of Object.values(node)) exportTargets(v, out)
  return out
}

function checkPackage(dir, { platforms, allowMissingDgram = false } = {}) {
  const problems = []
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
  const has = (f) => fs.existsSync(path.join(dir, f))

  // (a) built output and loader files
  const required = ['native.js', 'binding.js', 'binding.d.ts', 'README.md', 'LICENSE', pkg.main, pkg.types]
  for (const entry of ['index', 'dgram']) {
    for (const ext of ['js', 'mjs', 'd.ts', 'd.mts']) required.push(`dist/${entry}.${ext}`)
  }
  required.push(...exportTargets(pkg.exports))
  // allowMissingDgram: test staging only, while lib/dgram.ts is not written yet; never for publishing
  const missing = [...new Set(required.filter(Boolean).map((f) => f.replace(/^\.\//, '')))]
    .filter((f) => !has(f) && !(allowMissingDgram && f.startsWith('dist/dgram.')))
  if (missing.length) {
    problems.push(`missing ${missing.join(', ')}` +
      (missing.some((f) => f.startsWith('dist/')) ? ' (run `npm run build`, which also runs build:ts)' : ''))
  }
  if (has('dist') && fs.readdirSync(path.join(dir, 'dist')).some((f) => f.endsWith('.node'))) {
    problems.push('dist/ holds a .node file: binaries ship only in the per-platform packages')
  }

  // (b) the per-platform packages as exact optionalDependencies
  const want = platforms || ((pkg.napi && pkg.napi.targets) || []).map(platformOf)
  if (want.length === 0) problems.push('package.json names no napi.targets')
  const opt = pkg.optionalDependencies || {}
  const wrong = want.map((p) => `${pkg.name}-${p}`).filter((n) => opt[n] !== pkg.version)
  if (wrong.length) {
    problems.push(`optionalDependencies must list ${wrong.map((n) => `${n}@${pkg.version}`).join(', ')} ` +
      '(the platform packages are not staged)')
  }
  return problems
}

module.exports = { checkPackage, platformOf }

if (require.main === module) {
  const dir = path.resolve(process.argv[2] || '.')
  const problems = checkPackage(dir)
  if (problems.length) {
    console.error(`check-pack: refusing to pack ${dir}: the tarball would not work when installed.`)
    for (const p of problems) console.error(`  - ${p}`)
    console.error('The root package is published from a staged copy, after building every platform:')
    console.error('  npm run build && npm run build:all')
    console.error('  node scripts/platform/prepare-publish.js . .tmp/publish && (cd .tmp/publish && npm publish)')
    console.error('  (and npm publish in each npm/<platform> directory first)')
    process.exit(1)
  }
  console.log(`check-pack: ${dir} is complete`)
}
