#!/usr/bin/env node
// Stages the root package as it is published: its `files`, README, LICENSE and a package.json
// that lists the per-platform packages as exact-version optionalDependencies (what napi-rs's
// prepublish step does). The repository's own package.json leaves them out so that `npm ci`
// works in a clone before those packages exist on the registry. The stage is then checked with
// scripts/check-pack.js (the same check as the root's `prepack`), so a broken stage fails here.
//
//   node scripts/platform/prepare-publish.js <repo root> <stage dir> [--platforms p1,p2] [--allow-missing-dgram]
//   --platforms            list only these sub-packages (tests that install one platform's tarball)
//   --allow-missing-dgram  tests only: tolerate a build without dist/dgram.* (never for publishing)
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { checkPackage, platformOf } = require('../check-pack.js')

const args = process.argv.slice(2)
const allowMissingDgram = args.includes('--allow-missing-dgram')
if (allowMissingDgram) args.splice(args.indexOf('--allow-missing-dgram'), 1)
let only
const i = args.indexOf('--platforms')
if (i >= 0) only = args.splice(i, 2)[1].split(',').filter(Boolean)
const [root, stage] = args
if (!root || !stage) {
  console.error('usage: prepare-publish.js <repo root> <stage dir> [--platforms p1,p2]')
  process.exit(2)
}
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const platforms = only || pkg.napi.targets.map(platformOf)
pkg.optionalDependencies = Object.fromEntries(platforms.map((p) => {
  const sub = JSON.parse(fs.readFileSync(path.join(root, 'npm', p, 'package.json'), 'utf8'))
  if (sub.version !== pkg.version) throw new Error(`npm/${p} is version ${sub.version}, the root ${pkg.version}`)
  return [sub.name, pkg.version]
}))
delete pkg.devDependencies
delete pkg.scripts // prepack's checker is not shipped; the stage is checked below instead

// `files` holds plain paths and `dir/**/*.ext` globs; expand both the simple way.
function expand(entry) {
  const m = /^([^*]+)\/\*\*\/\*(\.[^/*]+)$/.exec(entry)
  if (!m) return fs.existsSync(path.join(root, entry)) ? [entry] : []
  const out = []
  const walk = (rel) => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = `${rel}/${d.name}`
      if (d.isDirectory()) walk(r)
      else if (d.name.endsWith(m[2])) out.push(r)
    }
  }
  if (fs.existsSync(path.join(root, m[1]))) walk(m[1])
  return out
}
fs.rmSync(stage, { recursive: true, force: true })
fs.mkdirSync(stage, { recursive: true })
const copied = [...new Set([...pkg.files.flatMap(expand), 'README.md', 'LICENSE'])]
for (const file of copied) {
  if (!fs.existsSync(path.join(root, file))) continue // reported by checkPackage below
  fs.mkdirSync(path.dirname(path.join(stage, file)), { recursive: true })
  fs.copyFileSync(path.join(root, file), path.join(stage, file))
}
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')
const problems = checkPackage(stage, { platforms, allowMissingDgram })
if (problems.length) {
  console.error(`prepare-publish: the staged package in ${stage} is incomplete:\n  - ${problems.join('\n  - ')}`)
  process.exit(1)
}
console.log(`staged ${pkg.name}@${pkg.version} (${copied.length + 1} files) with optionalDependencies ${Object.keys(pkg.optionalDependencies).join(', ')}`)
