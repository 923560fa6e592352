#!/usr/bin/env bash
# Installs what the integration tests need, checks formatting and lints, runs the core's unit
# tests, then builds the release binary and runs the whole test suite (as root).
# Extra arguments are passed to the last `cargo test --release` (e.g. a test name filter, or
# `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/test.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not installed (Rust toolchain 1.95+ is required)"

# command -> Debian package that provides it
declare -A package_of=(
  [gcc]=gcc
  [musl-gcc]=musl-tools
  [python3]=python3
  [perl]=perl
  [setpriv]=util-linux
  [sha256sum]=coreutils
  [kill]=procps
  [strace]=strace
  [setcap]=libcap2-bin
  [unshare]=util-linux
  [groff]=groff-base
)
missing=()
for cmd in "${!package_of[@]}"; do
  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" command -v "$cmd" >/dev/null \
    || missing+=("${package_of[$cmd]}")
done
# Files (not commands) the tests need -> package.
[ -x /usr/lib/wine/wine64 ] || missing+=(wine64)
# gcc -static needs the static glibc (libc6-dev); check it like the tests will.
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}; run as root or install them with: apt-get install ${missing[*]}"
  fi
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  echo "scripts/test.sh: installing ${missing[*]}" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The quick checks first, each naming what failed: formatting (the root package and fuzz/, a
# package of its own), lints (every target: the binaries, the core, tests, benches), then the
# core's unit tests, which need neither root nor the tools above.
cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing; install it with: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy is missing; install it with: rustup component add clippy"
cargo fmt --check || die "formatting differs: run cargo fmt"
(cd fuzz && cargo fmt --check) || die "formatting differs in fuzz/: run (cd fuzz && cargo fmt)"
cargo clippy --release --all-targets -- -D warnings || die "clippy found problems (see above)"
cargo test --release --lib || die "the core's unit tests failed"

cargo build --release
# --no-fail-fast: report every failing test binary, not just the first.
exec cargo test --release --no-fail-fast "$@"
