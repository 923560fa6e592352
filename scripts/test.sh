#!/usr/bin/env bash
# Installs what the integration tests need, checks formatting and lints, runs the core's unit
# tests, then builds the release binary and runs the whole test suite (as root).
# Extra arguments are passed to the last `cargo test --release` (e.g. a test name filter, or
# `-- --nocapture`).
#
# Then, in CI (CI=true) or with PRELOAD_TEST_KERNELS=1, it also runs a subset of the integration
# tests inside Debian's 6.1 LTS kernel under qemu (scripts/test-kernels.sh; about 14 minutes
# under TCG). PRELOAD_TEST_KERNELS=0 leaves that out, in CI too.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/test.sh: $*" >&2; exit 1; }

# Whether to run the tests inside 6.1 as well (see above).
case ${PRELOAD_TEST_KERNELS:-} in
  1) kernels=1 ;;
  0) kernels=0 ;;
  '') if [ "${CI:-}" = true ]; then kernels=1; else kernels=0; fi ;;
  *) die "PRELOAD_TEST_KERNELS must be 0 or 1, not ${PRELOAD_TEST_KERNELS}" ;;
esac

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
  [time]=time
  [strace]=strace
  [setcap]=libcap2-bin
  [unshare]=util-linux
  [groff]=groff-base
  [busybox]=busybox
  [java]=openjdk-17-jre-headless
  [node]=nodejs
  [valgrind]=valgrind
  [i686-w64-mingw32-gcc]=gcc-mingw-w64-i686
)
missing=()
for cmd in "${!package_of[@]}"; do
  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" command -v "$cmd" >/dev/null \
    || missing+=("${package_of[$cmd]}")
done
# Files (not commands) the tests need -> package.
[ -x /usr/lib/wine/wine64 ] || missing+=(wine64)
# The startup benchmark's peer (cargo bench --bench startup).
[ -x /usr/lib/wine/wine64-preloader ] || missing+=(wine64-preloader)
# gcc -static needs the static glibc (libc6-dev); check it like the tests will.
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
# gcc -m32 (tests/ia32.rs) needs gcc-multilib, and the i386 glibc to link and run against.
compgen -G '/usr/lib/gcc/x86_64-linux-gnu/*/32/crtbegin.o' >/dev/null || missing+=(gcc-multilib)
[ -e /usr/lib32/libc.a ] || missing+=(libc6-dev-i386)
[ -e /lib/ld-linux.so.2 ] || missing+=(libc6-i386)
# Wine's i386 side (tests/wine.rs): Debian's i386 loader and Wine's own i386 preloader, the
# oracle, from the i386 architecture (added below when missing).
[ -x /usr/lib/wine/wine ] || missing+=(wine32:i386)
[ -x /usr/lib/wine/wine-preloader ] || missing+=(wine32-preloader:i386)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}; run as root or install them with: apt-get install ${missing[*]}"
  fi
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  echo "scripts/test.sh: installing ${missing[*]}" >&2
  if [[ " ${missing[*]}" == *:i386* ]] && ! dpkg --print-foreign-architectures | grep -qx i386; then
    dpkg --add-architecture i386
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# musl i386 (tests/ia32.rs): musl-dev:i386 depends on Debian's i686 cross compiler, which
# conflicts with gcc-multilib, so musl:i386 and musl-dev:i386 are unpacked into target/musl-i386
# (not installed); the tests link the i386 probe against that tree with gcc -m32.
musl_i386=target/musl-i386
if [ ! -e "$musl_i386/usr/lib/i386-linux-musl/libc.a" ] || [ ! -e "$musl_i386/lib/ld-musl-i386.so.1" ]; then
  dpkg --print-foreign-architectures | grep -qx i386 \
    || die "the i386 architecture is missing (dpkg --add-architecture i386; apt-get update), which musl i386 needs"
  echo "scripts/test.sh: unpacking musl:i386 and musl-dev:i386 into $musl_i386" >&2
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download musl:i386 musl-dev:i386) || die "cannot download musl:i386 and musl-dev:i386"
  mkdir -p "$musl_i386"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$musl_i386"; done
  rm -rf "$debs"
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
# The preloader without sealed support that tests/errors.rs runs (the guest has no toolchain).
cargo build --release --bin preload --no-default-features --target-dir target/without-sealed
export PRELOAD_WITHOUT_SEALED=$PWD/target/without-sealed/release/preload
# --no-fail-fast: report every failing test binary, not just the first.
host_status=0
cargo test --release --no-fail-fast "$@" || host_status=$?

if [ "$kernels" -eq 0 ]; then
  exit "$host_status"
fi

# The 6.1 run (the newest linux-image-6.1.0-N-amd64), about 14 minutes under TCG on the 2-core
# CI machine (README "Supported kernels" has the figures per test binary; ia32 adds about 3
# minutes, for the i386 programs that no other kernel run checks). Left out to stay
# there: privilege (2 min; credentials and capabilities do not differ between these kernels),
# sealed (4 min; its inflating and authenticating are kernel-independent, and its memfd path is
# fd.rs's) and wine (Wine itself crashes under TCG, run directly too); 300 mutants, not 1500.
# The timeout is generous (an hour): on a loaded machine the run took 6 times as long.
# Left out on 6.1, with the reason: the two MDWE tests of tests/stage2.rs: PR_SET_MDWE is Linux
# 6.3 and later (6.1 refuses it with EINVAL).
kernel_skips=(--skip the_mdwe_helper_really_refuses_exec_gain --skip under_mdwe_everything_runs_with_exe_set)
sealed_on_an_older_cpu=(correct_key_runs ls_sealed_behaves_as_ls segments_in_reverse_file_order wrong_key_fails
  sealed_program_from_a_pipe nothing_of_the_key_stays a_sealed_program_starts_with_zeroed_vector_registers
  chacha20_block_is_rfc_8439s)
kernel_status=0
PRELOAD_KERNEL_TESTS=${PRELOAD_KERNEL_TESTS:-"differential errors fd ia32 layout limits mutants probe stage2"} \
  PRELOAD_MUTANTS=${PRELOAD_MUTANTS:-300} \
  PRELOAD_KERNEL_TIMEOUT=${PRELOAD_KERNEL_TIMEOUT:-3600} \
  scripts/test-kernels.sh 6.1 -- "${kernel_skips[@]}" || kernel_status=$?

# The cipher's SSE2 ChaCha20 and portable Poly1305, which a CPU with AVX2 never runs: sealed
# programs launched on qemu's Nehalem model (SSE4.2, no AVX), the guest's first check failing
# the run if its CPU shows AVX. The tests that decrypt, and the vector registers' check.
cpu_status=0
PRELOAD_KERNEL_CPU=Nehalem PRELOAD_KERNEL_TESTS=sealed PRELOAD_KERNEL_COMMAND='! grep -qw avx /proc/cpuinfo' \
  PRELOAD_KERNEL_TIMEOUT=${PRELOAD_KERNEL_TIMEOUT:-3600} \
  scripts/test-kernels.sh 6.1 -- "${sealed_on_an_older_cpu[@]}" || cpu_status=$?

[ "$host_status" -eq 0 ] || die "the host's tests failed (cargo test exited $host_status)"
[ "$kernel_status" -eq 0 ] || die "the tests under 6.1 failed (scripts/test-kernels.sh exited $kernel_status)"
[ "$cpu_status" -eq 0 ] || die "the sealed tests on a CPU without AVX failed (scripts/test-kernels.sh exited $cpu_status)"
