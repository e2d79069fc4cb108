// README as tests: every ```ts / ```js block of README.md runs against the built package (needs
// `npm run build`), each in its own child process with a timeout, and must exit 0. Blocks import
// 'sendmmsg' / 'sendmmsg/dgram', which resolve by self-reference (package name + "exports"), so
// the block is written to .tmp/ inside the repository. TypeScript blocks run through tsx.
//
// A block right after an HTML comment `<!-- not run -->` is skipped (and counted in the log).
// A block that names an IPv4/IPv6 address other than loopback / wildcard fails: README examples
// must not send anywhere but this machine.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { isIP } from 'node:net'
import path from 'node:path'

const root = path.resolve(__dirname, '..')
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const TIMEOUT_MS = 20_000

interface Block {
  lang: 'ts' | 'js'
  line: number
  code: string
  skipped: boolean
}

function extractBlocks(text: string): Block[] {
  const blocks: Block[] = []
  const lines = text.split('\n')
  let lastNonBlank = ''
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i] ?? '')
    if (!open) {
      if ((lines[i] ?? '').trim() !== '') lastNonBlank = (lines[i] ?? '').trim()
      continue
    }
    const fence = open[2] as string
    const lang = (open[3] ?? '').toLowerCase()
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !(lines[i] ?? '').trim().startsWith(fence); i++) body.push(lines[i] ?? '')
    const kind = lang === 'ts' || lang === 'typescript' ? 'ts' : lang === 'js' || lang === 'javascript' ? 'js' : null
    if (kind) blocks.push({ lang: kind, line: start + 1, code: body.join('\n'), skipped: /^<!--\s*not run\s*-->$/i.test(lastNonBlank) })
    lastNonBlank = fence
  }
  return blocks
}

/** IP literals in the code that are neither loopback nor the wildcard. */
function foreignAddresses(code: string): string[] {
  const candidates = new Set<string>()
  for (const m of code.matchAll(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g)) candidates.add(m[0])
  for (const m of code.matchAll(/(?<![\w:.])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])/g)) candidates.add(m[0])
  const ok = (a: string): boolean => {
    if (isIP(a) === 4) return a.startsWith('127.') || a === '0.0.0.0'
    const v6 = a.toLowerCase()
    return v6 === '::1' || v6 === '::' || /^::ffff:127\./.test(v6) || v6 === '::ffff:0.0.0.0'
  }
  return [...candidates].filter((a) => isIP(a) !== 0 && !ok(a))
}

const blocks = extractBlocks(readme)
const skipped = blocks.filter((b) => b.skipped)
const scratch = path.join(root, '.tmp', 'readme') // .tmp/ is gitignored; inside the package for self-reference

test.before(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) throw new Error('dist/ is not built: run `npm run build` first')
  fs.mkdirSync(scratch, { recursive: true })
})

test('README has code blocks to run', (t) => {
  t.true(blocks.length > 0, 'no ```ts / ```js blocks found in README.md')
  t.log(`${blocks.length} blocks: ${blocks.length - skipped.length} run, ${skipped.length} skipped (<!-- not run -->)` +
    (skipped.length ? `: lines ${skipped.map((b) => b.line).join(', ')}` : ''))
})

for (const block of blocks) {
  const title = `README.md:${block.line} (\`\`\`${block.lang})`
  test(`${title} names no address but loopback`, (t) => {
    t.deepEqual(foreignAddresses(block.code), [], `${title} mentions a non-loopback address`)
  })
  if (block.skipped) continue
  test(`${title} runs and exits 0`, (t) => {
    // .mts/.mjs: blocks use import/top-level await; a require-style block is written as .cts/.cjs
    const esm = /^\s*(import|export)\s|\bawait\b/m.test(block.code) || !/\brequire\(/.test(block.code)
    const ext = block.lang === 'ts' ? (esm ? 'mts' : 'cts') : esm ? 'mjs' : 'cjs'
    const file = path.join(scratch, `block-${block.line}.${ext}`)
    fs.writeFileSync(file, block.code + '\n')
    t.teardown(() => fs.rmSync(file, { force: true }))
    const args = block.lang === 'ts' ? ['--import', require.resolve('tsx'), file] : [file]
    const r = spawnSync(process.execPath, args, { cwd: scratch, encoding: 'utf8', timeout: TIMEOUT_MS, killSignal: 'SIGKILL' })
    const out = `${r.stdout}${r.stderr}`.trim()
    if (r.error || r.signal) t.fail(`${title} did not finish within ${TIMEOUT_MS} ms (${r.signal ?? String(r.error)}): ${out.slice(-2000)}`)
    else t.is(r.status, 0, `${title} exited ${r.status}:\n${out.slice(-2000)}`)
  })
}

test("README's figures are exactly what scripts/readme-figures.js makes from benchmark/results (a full run's, none typed by hand)", (t) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { renderReadme } = require('../scripts/readme-figures.js') as { renderReadme: (text: string) => { quick: boolean; text: string } | null }
  const rendered = renderReadme(readme)
  t.not(rendered, null, 'README.md has the figures markers')
  t.false(rendered!.quick, 'the committed results are a full run')
  t.is(rendered!.text, readme, 'run `node scripts/readme-figures.js` after `npm run bench` (a full run does it)')
})
