#!/usr/bin/env node
// Stages the root package as it is published: its `files`, README and a package.json that lists
// the four per-platform packages as exact-version optionalDependencies (what napi-rs's
// prepublish step does). The repository's own package.json leaves them out so that `npm ci`
// works in a clone before those packages exist on the registry.
//
//   node scripts/platform/prepare-publish.js <repo root> <stage dir>
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const [root, stage] = process.argv.slice(2)
if (!root || !stage) {
  console.error('usage: prepare-publish.js <repo root> <stage dir>')
  process.exit(2)
}
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const platforms = fs.readdirSync(path.join(root, 'npm')).filter((d) => fs.existsSync(path.join(root, 'npm', d, 'package.json')))
pkg.optionalDependencies = Object.fromEntries(
  platforms.map((p) => [JSON.parse(fs.readFileSync(path.join(root, 'npm', p, 'package.json'), 'utf8')).name, pkg.version]),
)
delete pkg.devDependencies
delete pkg.scripts
fs.rmSync(stage, { recursive: true, force: true })
fs.mkdirSync(stage, { recursive: true })
for (const file of [...pkg.files, 'README.md']) fs.copyFileSync(path.join(root, file), path.join(stage, file))
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')
console.log(`staged ${pkg.name}@${pkg.version} with optionalDependencies ${Object.keys(pkg.optionalDependencies).join(', ')}`)
