#!/usr/bin/env bash
# Builds the four release .node files on this x86_64 Debian host and places them in the npm
# sub-packages:  npm/<platform>/sendmmsg.<platform>.node
#
#   linux-x64-gnu    rustc/cargo from PATH (rustup stable, else Debian's), linked by the napi-rs
#                    cross GCC whose sysroot is glibc 2.17
#   linux-arm64-gnu  Debian's /usr/bin/rustc (arm64 std via multiarch), same napi-rs cross GCC route
#   linux-x64-musl   Debian's rustc + -Zbuild-std=std,panic_unwind from rust-web-src, linked by
#   linux-arm64-musl musl-gcc / aarch64-linux-musl-gcc; -lgcc_s resolves to LLVM's libunwind.a
#
# usage: build-all.sh [platform ...]     (default: all four; run install-toolchains.sh first)
# env:   CARGO_TARGET_DIR (default <repo>/target-cross), BUILD_ALL_LOCKED=1 to pass --locked
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

# Keep the builds independent of whatever the caller's shell sets for its own cargo runs.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER \
  CARGO_BUILD_RUSTC_WRAPPER RUSTC_BOOTSTRAP CARGO_TARGET_DIR
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

missing_tools() {
  local f
  for f in "$TOOLCHAINS/x86_64-unknown-linux-gnu/bin/x86_64-unknown-linux-gnu-gcc" \
    "$TOOLCHAINS/aarch64-unknown-linux-gnu/bin/aarch64-unknown-linux-gnu-gcc" \
    /usr/bin/rustc /usr/bin/cargo /usr/bin/musl-gcc /usr/bin/aarch64-linux-musl-gcc \
    "$DEBIAN_RUST_SRC/Cargo.lock" "$MUSL_LINK/x86_64/libgcc_s.so" "$MUSL_LINK/aarch64/libgcc_s.so"; do
    [ -e "$f" ] || echo "$f"
  done
}
m=$(missing_tools)
[ -z "$m" ] || die "missing toolchain pieces (run scripts/platform/install-toolchains.sh):
$m"

LOCKED=()
[ "${BUILD_ALL_LOCKED:-0}" = 1 ] && LOCKED=(--locked)

# Run cargo build for one target and print the path of the cdylib it produced.
# The musl builds get their own target dir: they run with RUSTC_BOOTSTRAP=1, which build scripts
# such as proc-macro2's watch, so sharing host artifacts with the arm64-gnu build (same rustc)
# would rebuild them on every alternation.
cargo_cdylib() { # <cargo> <triple> <cargo args...>
  local cargo=$1 triple=$2; shift 2
  local json dir=$CROSS_TARGET_DIR
  case "$triple" in *-musl) dir=$CROSS_TARGET_DIR/musl ;; esac
  json=$(cd "$ROOT" && "$cargo" build --release --lib -p sendmmsg-node --target "$triple" \
    --target-dir "$dir" --message-format=json-render-diagnostics "${LOCKED[@]}" "$@") ||
    die "cargo build for $triple failed"
  printf '%s\n' "$json" | node -e '
    const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean)
    const found = lines.map((l) => { try { return JSON.parse(l) } catch { return null } })
      .filter((m) => m && m.reason === "compiler-artifact" && m.target.kind.includes("cdylib"))
      .flatMap((m) => m.filenames).filter((f) => f.endsWith(".so"))
    if (found.length !== 1) { console.error("expected one cdylib, got", found); process.exit(1) }
    console.log(found[0])'
}

build_linux_x64_gnu() {
  local tc=$TOOLCHAINS/x86_64-unknown-linux-gnu
  local cargo rustc
  cargo=$(command -v cargo) || die "no cargo on PATH"
  rustc=$(command -v rustc) || die "no rustc on PATH"
  RUSTC=$rustc CC_x86_64_unknown_linux_gnu=$tc/bin/x86_64-unknown-linux-gnu-gcc \
    cargo_cdylib "$cargo" x86_64-unknown-linux-gnu \
    --config "target.x86_64-unknown-linux-gnu.linker=\"$tc/bin/x86_64-unknown-linux-gnu-gcc\""
}

build_linux_arm64_gnu() {
  local tc=$TOOLCHAINS/aarch64-unknown-linux-gnu
  RUSTC=/usr/bin/rustc CC_aarch64_unknown_linux_gnu=$tc/bin/aarch64-unknown-linux-gnu-gcc \
    cargo_cdylib /usr/bin/cargo aarch64-unknown-linux-gnu \
    --config "target.aarch64-unknown-linux-gnu.linker=\"$tc/bin/aarch64-unknown-linux-gnu-gcc\""
}

# -Zbuild-std compiles std from Debian's rust-web-src. Its dependencies (hashbrown, libc, ...) are
# resolved from library/Cargo.lock like any other crate, i.e. fetched from crates.io into the
# normal cargo cache, so no source replacement is needed and the project's own crates are untouched.
build_musl() { # <triple> <linker> <musl-link dir>
  local triple=$1 linker=$2 linkdir=$3
  export "CC_${triple//-/_}=$linker"   # (runs in the $(...) subshell of the caller)
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 cargo_cdylib /usr/bin/cargo "$triple" -Zbuild-std=std,panic_unwind \
    --config "target.$triple.linker=\"$linker\"" \
    --config "target.$triple.rustflags=[\"-C\", \"target-feature=-crt-static\", \"-L\", \"$linkdir\"]"
}
build_linux_x64_musl() { build_musl x86_64-unknown-linux-musl musl-gcc "$MUSL_LINK/x86_64"; }
build_linux_arm64_musl() { build_musl aarch64-unknown-linux-musl aarch64-linux-musl-gcc "$MUSL_LINK/aarch64"; }

strip_tool() { case "$1" in linux-x64-*) echo strip ;; linux-arm64-*) echo aarch64-linux-gnu-strip ;; esac; }

platforms=("$@")
[ ${#platforms[@]} -eq 0 ] && platforms=("${PLATFORMS[@]}")
for p in "${platforms[@]}"; do triple_of "$p" >/dev/null || die "unknown platform $p (known: ${PLATFORMS[*]})"; done

total=$SECONDS
inspect_args=()
for p in "${platforms[@]}"; do
  t=$SECONDS
  log "building $p ($(triple_of "$p"))"
  so=$("build_${p//-/_}")
  out=$(binary_path "$p")
  mkdir -p "$(dirname "$out")"
  cp "$so" "$out.tmp"
  # profile.release has strip = "symbols"; strip again only if something is left
  if readelf -SW "$out.tmp" | grep -qE '\s\.symtab\s|\s\.debug_'; then "$(strip_tool "$p")" --strip-unneeded "$out.tmp"; fi
  mv "$out.tmp" "$out"
  log "$p built in $((SECONDS - t)) s -> ${out#"$ROOT"/}"
  inspect_args+=("$p=$out")
done

echo
node "$PLATFORM_DIR/inspect.js" "${inspect_args[@]}"
echo
if ! GLIBC_FLOOR_MAX=$GLIBC_FLOOR_MAX node "$PLATFORM_DIR/inspect.js" --check "${inspect_args[@]}" >/dev/null; then
  die "a built .node breaks a rule (see FAIL lines above)"
fi
log "all ${#platforms[@]} built and checked in $((SECONDS - total)) s"
