'use strict'
// Compiles the reference C programs (benchmark/c/*.c) with the system C compiler, `cc -O2`,
// into benchmark/results/tmp-bin (gitignored). Rebuilt when the source is newer than the binary.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const SRC_DIR = path.join(__dirname, '..', 'c')
const BIN_DIR = path.join(__dirname, '..', 'results', 'tmp-bin')
const PROGRAMS = ['sendmmsg_loop', 'recvmmsg_loop', 'sendmmsg_flows']

function compilerVersion() {
  try {
    return execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0].trim()
  } catch {
    return 'unknown'
  }
}

function buildC() {
  fs.mkdirSync(BIN_DIR, { recursive: true })
  const bins = {}
  const commands = []
  for (const name of PROGRAMS) {
    const src = path.join(SRC_DIR, `${name}.c`)
    const bin = path.join(BIN_DIR, name)
    const args = ['-O2', '-Wall', '-o', bin, src]
    commands.push(`cc ${args.join(' ')}`)
    const stale = !fs.existsSync(bin) || fs.statSync(bin).mtimeMs < fs.statSync(src).mtimeMs
    if (stale) {
      try {
        execFileSync('cc', args, { stdio: ['ignore', 'inherit', 'inherit'] })
      } catch (e) {
        throw new Error(`the benchmark compiles its C reference programs with the system C compiler; \`cc ${args.join(' ')}\` failed: ${e.message}`)
      }
    }
    bins[name] = bin
  }
  return { bins, compiler: compilerVersion(), commands }
}

module.exports = { buildC, BIN_DIR }
