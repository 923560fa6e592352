#!/usr/bin/env bash
# Runs the integration tests inside other Linux kernels: Debian's kernel packages, booted under
# qemu with this machine's / shared read-only (virtio-9p), one kernel after the other.
#
#   scripts/test-kernels.sh [KERNEL_PACKAGE]... [-- TEST_ARG...]
#
# KERNEL_PACKAGE: a Debian package such as linux-image-6.1.0-57-amd64, or a series such as 6.1
# or 6.12 for the newest package of it the package lists offer (linux-image-6.1.0-N-amd64,
# linux-image-6.12.N+debM-amd64); by default 6.1 and 6.12.
# TEST_ARGs are passed to every test binary (libtest arguments: a name filter, --skip NAME,
# --exact, --nocapture...).
#
# Environment:
#   PRELOAD_KERNEL_TESTS    the test binaries (tests/*.rs names) to run, space-separated;
#                           default: all of them (but wine under TCG, where Wine crashes by
#                           itself); empty (set but empty): none
#   PRELOAD_KERNEL_COMMAND  a bash command to run first, in the repository, as root (for looking
#                           at a kernel: e.g. 'setarch -R cat /proc/self/maps'); it counts as a test
#   PRELOAD_KERNEL_APPEND   more kernel command-line arguments (e.g. ia32_emulation=0, which
#                           6.7+ knows: IA32 emulation off)
#   PRELOAD_KERNEL_TIMEOUT  seconds one kernel may take from boot to power-off (default 3600);
#                           a kernel that does not report within it is a failure
#   PRELOAD_KERNEL_CPUS     guest CPUs (default 2), PRELOAD_KERNEL_MEMORY guest MiB (default 2048)
#   PRELOAD_KERNEL_CPU      qemu's CPU model (default: host with KVM, max,la57=off under TCG);
#                           e.g. Nehalem, a CPU without AVX, for the code paths of older CPUs
#   PRELOAD_KERNEL_NICE     niceness of qemu (default 10)
#   PRELOAD_* (e.g. PRELOAD_MUTANTS), RUST_BACKTRACE, RUST_TEST_THREADS are passed to the tests.
#
# The host side builds first (cargo build --release, cargo test --release --no-run) and installs
# what it needs (qemu-system-x86, busybox-static, xz-utils, zstd, python3; as root). In the guest
# a busybox initramfs loads the 9p/virtio modules, mounts / from the host read-only with fresh
# proc, sysfs, devtmpfs, devpts and tmpfs (/tmp, /run, /dev/shm) over it, switch_root's into it
# and runs each test binary as root with the repository as cwd and TMPDIR=/tmp. The guest's
# init prints one line per test binary and one per kernel on the serial console:
#   PRELOAD-KERNEL-TEST <kernel release> <test> <exit status> <seconds>
#   PRELOAD-KERNEL-RESULT <kernel release> <passed|failed>
# then powers off (sysrq o). Exit status: 0 when every kernel booted and passed every test.
set -euo pipefail
# The whole script is one block, read before any of it runs: editing the file (a git checkout)
# while a run is under way cannot change what that run does.
{
cd "$(dirname "$0")/.."
repo=$(pwd -P)

me=scripts/test-kernels.sh
die() { echo "$me: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }

all_tests=(differential errors fd layout limits mutants privilege probe sealed wine)
read -r -a tests <<<"${PRELOAD_KERNEL_TESTS-${all_tests[*]}}"
if [ -z "${PRELOAD_KERNEL_TESTS+set}" ] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qE '^flags.*\b(vmx|svm)\b' /proc/cpuinfo; }; then
  # Not a skip of a preload check: Wine run directly, without preload, crashes under qemu's TCG
  # (wineboot.exe faults on an iretq of its syscall dispatcher; seen under 6.1 and 6.12).
  tests=(differential errors fd layout limits mutants privilege probe sealed)
  say "wine left out by default under TCG, where Wine itself crashes (PRELOAD_KERNEL_TESTS names it to run it)"
fi
[ ${#tests[@]} -gt 0 ] || [ -n "${PRELOAD_KERNEL_COMMAND:-}" ] || die "PRELOAD_KERNEL_TESTS names no test"
timeout_s=${PRELOAD_KERNEL_TIMEOUT:-3600}
cpus=${PRELOAD_KERNEL_CPUS:-2}
memory=${PRELOAD_KERNEL_MEMORY:-2048}
niceness=${PRELOAD_KERNEL_NICE:-10}
for n in "$timeout_s" "$cpus" "$memory" "$niceness"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n (PRELOAD_KERNEL_TIMEOUT, _CPUS, _MEMORY, _NICE)"
done

packages=()
test_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; test_args=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (test arguments go after --)" ;;
    *) packages+=("$1"); shift ;;
  esac
done

# --- what the host needs -------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is not installed"
missing=()
have() { PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" command -v "$1" >/dev/null; }
have qemu-system-x86_64 || missing+=(qemu-system-x86)
# The initramfs needs a busybox that runs without shared libraries.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
have xz || missing+=(xz-utils)
have zstd || missing+=(zstd)
have python3 || missing+=(python3)
have cpio || missing+=(cpio)
have dpkg-deb || die "dpkg-deb is missing: this script needs a Debian system"
have apt-get || die "apt-get is missing: this script needs a Debian system"
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; run as root or install them with: apt-get install ${missing[*]}"
  say "installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
[ "$(id -u)" -eq 0 ] || say "warning: not root; the tests inside the guest run as root anyway"

# --- cleanup: no process and no file is left behind ------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/preload-kernels.XXXXXX")
chmod 755 "$work" # apt-get download hands the file to its _apt user
qemu_pid=
tail_pid=
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  for pid in $qemu_pid $tail_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $qemu_pid $tail_pid; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- the kernels ---------------------------------------------------------------------------
# The newest package whose name matches the extended regex $1 and that has an installable
# candidate version.
newest_package() {
  local regex=$1 name candidate
  local -a names
  mapfile -t names < <(apt-cache search --names-only "$regex" | awk '{print $1}' | grep -E "$regex" | sort -V -r)
  for name in "${names[@]}"; do
    candidate=$(apt-cache policy "$name" | awk '/Candidate:/ {print $2}')
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
      echo "$name"
      return 0
    fi
  done
  return 1
}
# A series (6.1, 6.12) stands for its newest package: Debian names them linux-image-6.1.0-N-amd64
# and linux-image-6.12.N+debM-amd64.
[ ${#packages[@]} -gt 0 ] || packages=(6.1 6.12)
for i in "${!packages[@]}"; do
  series=${packages[$i]}
  [[ $series =~ ^[0-9]+\.[0-9]+$ ]] || continue
  regex="^linux-image-${series//./\\.}(\\.0-[0-9]+|\\.[0-9]+\\+deb[0-9]+)-amd64\$"
  if ! package=$(newest_package "$regex"); then
    # The lists may be missing or stale (a fresh machine): update them once and look again.
    [ "$(id -u)" -eq 0 ] || die "no package matches $regex (apt-get update needs root)"
    say "no package matches $regex; running apt-get update"
    apt-get update >/dev/null
    package=$(newest_package "$regex") || die "no package matches $regex after apt-get update"
  fi
  packages[$i]=$package
done
say "kernels: ${packages[*]}"

# --- build on the host ---------------------------------------------------------------------
cargo build --release
# The preloader without sealed support that tests/errors.rs runs (the guest has no toolchain).
cargo build --release --bin preload --no-default-features --target-dir target/without-sealed
export PRELOAD_WITHOUT_SEALED=$PWD/target/without-sealed/release/preload
cargo test --release --no-run --message-format=json >"$work/build.json"
declare -A test_binary=()
while IFS=$'\t' read -r name path; do
  test_binary[$name]=$path
done < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"] + "\t" + m["executable"])
' "$work/build.json")
for t in "${tests[@]}"; do
  [ -n "${test_binary[$t]:-}" ] || die "no test binary named '$t' (built: ${!test_binary[*]})"
done
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

# --- the guest's two init scripts ----------------------------------------------------------
# Stage 1, in the initramfs (busybox): modules, the shared root, fresh kernel file systems,
# switch_root. Stage 2, bash in the shared root as PID 1: the tests.
cat >"$work/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /keep.conf
fail() {
  echo
  echo "PRELOAD-KERNEL-RESULT $(uname -r) boot-failed: $*"
  echo 1 >/proc/sys/kernel/sysrq
  echo o >/proc/sysrq-trigger
  sleep 600
}
# Load the modules in a loop until all are in: simpler than working out their order.
pending=$(cd /modules && ls)
while [ -n "$pending" ]; do
  left=
  for m in $pending; do
    insmod "/modules/$m" 2>/dev/null || left="$left $m"
  done
  [ "$(echo $left)" != "$(echo $pending)" ] || fail "cannot load the modules:$left"
  pending=$left
done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || fail "cannot mount the host's / over 9p"
# Paths the tests need that lie under a directory which gets a fresh tmpfs: kept by bind mounts.
i=0
for p in $KEEP; do
  mkdir -p "/keep/$i" && mount --bind "/host$p" "/keep/$i" || fail "cannot keep $p"
  i=$((i + 1))
done
mount -t proc proc /host/proc || fail "proc"
mount -t sysfs sysfs /host/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /host/dev || fail "devtmpfs"
mkdir -p /host/dev/pts /host/dev/shm
# What udev would add to a devtmpfs (strace -o /dev/stderr, bash's <(...) and the like use them).
ln -s /proc/self/fd /host/dev/fd
ln -s /proc/self/fd/0 /host/dev/stdin
ln -s /proc/self/fd/1 /host/dev/stdout
ln -s /proc/self/fd/2 /host/dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /host/dev/pts || fail "devpts"
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm || fail "tmpfs /dev/shm"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "tmpfs /tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run || fail "tmpfs /run"
i=0
for p in $KEEP; do
  mkdir -p "/host$p" && mount --move "/keep/$i" "/host$p" || fail "cannot put back $p"
  i=$((i + 1))
done
mkdir -p /host/run/preload-kernel
cp /stage2 /config /host/run/preload-kernel/ || fail "cannot copy stage 2"
umount /proc /sys /dev
exec switch_root /host /bin/bash /run/preload-kernel/stage2
EOF

cat >"$work/stage2" <<'EOF'
# PID 1 in the shared root.
. /run/preload-kernel/config
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp LANG=C.UTF-8
kernel=$(uname -r)
power_off() {
  sync
  echo 1 >/proc/sys/kernel/sysrq
  echo o >/proc/sysrq-trigger
  sleep 600
}
trap power_off EXIT
echo
echo "PRELOAD-KERNEL-BOOTED $kernel ($(nproc) CPUs, $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB)"
cd "$REPO" || { echo; echo "PRELOAD-KERNEL-RESULT $kernel boot-failed: no $REPO in the guest"; exit; }
result=passed
if [ -n "$COMMAND" ]; then
  echo
  echo "PRELOAD-KERNEL-START $kernel command"
  start=$(date +%s)
  bash -c "$COMMAND" </dev/null 2>&1
  status=$?
  echo
  echo "PRELOAD-KERNEL-TEST $kernel command $status $(($(date +%s) - start))"
  [ "$status" -eq 0 ] || result=failed
fi
for t in "${TESTS[@]}"; do
  name=${t%%=*} binary=${t#*=}
  echo
  echo "PRELOAD-KERNEL-START $kernel $name"
  start=$(date +%s)
  "$binary" --color never "${TEST_ARGS[@]}" </dev/null 2>&1
  status=$?
  echo
  echo "PRELOAD-KERNEL-TEST $kernel $name $status $(($(date +%s) - start))"
  [ "$status" -eq 0 ] || result=failed
done
echo
echo "PRELOAD-KERNEL-RESULT $kernel $result"
EOF

# What stage 1 (busybox sh) and stage 2 (bash) read.
keep=()
for p in "$repo" "$target_dir"; do
  case $p/ in /tmp/*|/run/*|/dev/shm/*) keep+=("$p") ;; esac
done
echo "KEEP='${keep[*]}'" >"$work/keep.conf"
{
  printf 'REPO=%q\n' "$repo"
  printf 'COMMAND=%q\n' "${PRELOAD_KERNEL_COMMAND:-}"
  printf 'TESTS=('
  for t in "${tests[@]}"; do printf '%q ' "$t=${test_binary[$t]}"; done
  printf ')\nTEST_ARGS=('
  for a in "${test_args[@]}"; do printf '%q ' "$a"; done
  printf ')\n'
  for name in $(compgen -e); do
    case $name in
      PRELOAD_KERNEL_*) ;;
      PRELOAD_*|RUST_BACKTRACE|RUST_TEST_THREADS) printf 'export %s=%q\n' "$name" "${!name}" ;;
    esac
  done
} >"$work/config"
for p in "$repo" "$target_dir"; do
  case $p in *' '*) die "$p contains a blank, which the guest's init cannot keep" ;; esac
done

# --- accelerator ---------------------------------------------------------------------------
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qE '^flags.*\b(vmx|svm)\b' /proc/cpuinfo; then
  accel=(-accel kvm -cpu "${PRELOAD_KERNEL_CPU:-host}")
else
  # /dev/kvm may exist without the CPU offering virtualisation: then only TCG works. Without
  # la57: with 5-level paging a kernel maps fixed segments above 47 bits, which a machine with
  # 4-level paging (and preload, which assumes it) refuses.
  accel=(-accel tcg -cpu "${PRELOAD_KERNEL_CPU:-max,la57=off}")
fi

# --- one kernel ----------------------------------------------------------------------------
# Sets kernel_release, and kernel_failure when the kernel did not pass.
summary=()
run_kernel() {
  local package=$1 dir=$work/kernel root vmlinuz release mod initramfs log
  rm -rf "$dir"
  mkdir -p "$dir/deb" "$dir/root" "$dir/initramfs/modules" "$dir/initramfs/bin"
  (cd "$dir/deb" && apt-get download "$package" >/dev/null) || { kernel_failure="apt-get download $package failed"; return; }
  dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
  root=$dir/root
  vmlinuz=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
  [ -n "$vmlinuz" ] || { kernel_failure="no boot/vmlinuz-* in $package"; return; }
  release=${vmlinuz##*/vmlinuz-}
  kernel_release=$release
  local moddir=$root/lib/modules/$release
  [ -d "$moddir" ] || moddir=$root/usr/lib/modules/$release
  for mod in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p; do
    local file
    file=$(find "$moddir/kernel" -name "$mod.ko" -o -name "$mod.ko.xz" -o -name "$mod.ko.zst" -o -name "$mod.ko.gz" | head -n 1)
    if [ -z "$file" ]; then
      # Built in (or absent from this version, as virtio_pci_legacy_dev before 5.14).
      continue
    fi
    case $file in
      *.xz) xz -dc "$file" >"$dir/initramfs/modules/$mod.ko" ;;
      *.zst) zstd -qdc "$file" >"$dir/initramfs/modules/$mod.ko" ;;
      *.gz) gzip -dc "$file" >"$dir/initramfs/modules/$mod.ko" ;;
      *) cp "$file" "$dir/initramfs/modules/$mod.ko" ;;
    esac
  done
  cp /bin/busybox "$dir/initramfs/bin/busybox"
  cp "$work/init" "$work/stage2" "$work/config" "$work/keep.conf" "$dir/initramfs/"
  chmod 755 "$dir/initramfs/init"
  mkdir -p "$dir/initramfs/proc" "$dir/initramfs/sys" "$dir/initramfs/dev"
  initramfs=$dir/initramfs.cpio
  (cd "$dir/initramfs" && find . | cpio -o -H newc --quiet) >"$initramfs"

  log=$dir/console.log
  : >"$log"
  say "booting $release ($package) under ${accel[*]}, $cpus CPUs, $memory MiB, at most ${timeout_s} s${PRELOAD_KERNEL_APPEND:+, with $PRELOAD_KERNEL_APPEND}"
  local started=$SECONDS
  # mitigations=off: the guest only runs the tests, and TCG pays dearly for page table switches.
  nice -n "$niceness" timeout -k 10 "$timeout_s" qemu-system-x86_64 "${accel[@]}" \
    -smp "$cpus" -m "$memory" -nodefaults -no-reboot -display none -monitor none \
    -serial "file:$log" \
    -kernel "$vmlinuz" -initrd "$initramfs" \
    -append "console=ttyS0 panic=-1 loglevel=4 mitigations=off${PRELOAD_KERNEL_APPEND:+ $PRELOAD_KERNEL_APPEND}" \
    -virtfs local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap \
    </dev/null >"$dir/qemu.out" 2>&1 &
  qemu_pid=$!
  tail -n +1 -f --pid="$qemu_pid" "$log" &
  tail_pid=$!
  local qemu_status=0
  wait "$qemu_pid" || qemu_status=$?
  qemu_pid=
  wait "$tail_pid" 2>/dev/null || true
  tail_pid=
  local elapsed=$((SECONDS - started))
  kernel_seconds=$elapsed

  local clean result running line booted=
  clean=$(tr -d '\r' <"$log")
  # Marker lines, matched field by field (a release such as 6.12.118+deb12-amd64 is no regex).
  marker() { awk -v m="PRELOAD-KERNEL-$1" -v r="$release" '$1 == m && $2 == r { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' <<<"$clean"; }
  result=$(marker RESULT | tail -n 1)
  running=$(marker START | tail -n 1)
  if [ -n "$(marker BOOTED)" ]; then booted=1; fi
  # The per-test lines, for the summary: TEST STATUS SECONDS.
  while read -r line; do
    set -- $line
    [ $# -eq 3 ] || continue
    kernel_tests+=("$1: $([ "$2" = 0 ] && echo passed || echo "FAILED (exit $2)") in $3 s")
  done < <(marker TEST)
  if [ -n "$result" ] && [ "$result" = passed ]; then
    :
  elif [ -n "$result" ]; then
    kernel_failure=$result
  elif [ "$qemu_status" -eq 124 ] || { [ "$qemu_status" -eq 137 ] && [ "$elapsed" -ge "$timeout_s" ]; }; then
    if [ -n "$booted" ]; then
      kernel_failure="timed out after ${timeout_s} s${running:+ while running $running} (PRELOAD_KERNEL_TIMEOUT)"
    else
      kernel_failure="did not boot within ${timeout_s} s (no PRELOAD-KERNEL-BOOTED line on the console)"
    fi
  elif [ "$qemu_status" -gt 128 ]; then
    kernel_failure="qemu was killed by signal $((qemu_status - 128)) after ${elapsed} s${running:+ while running $running} (a SIGKILL may be the host's OOM killer: see dmesg)"
  else
    kernel_failure="the guest stopped without a result (qemu exit $qemu_status$([ -n "$booted" ] || echo ', it never booted')${running:+, while running $running}); qemu said: $(tr '\n' ' ' <"$dir/qemu.out")"
  fi
  if [ -n "$kernel_failure" ]; then
    echo "--- last console lines of $release ---" >&2
    tail -n 40 <<<"$clean" >&2
  fi
}

failed=0
for package in "${packages[@]}"; do
  kernel_release=$package kernel_failure= kernel_seconds=0 kernel_tests=()
  run_kernel "$package"
  if [ -n "$kernel_failure" ]; then
    failed=1
    summary+=("$kernel_release: FAILED: $kernel_failure (${kernel_seconds} s)")
  else
    summary+=("$kernel_release: passed (${kernel_seconds} s)")
  fi
  for t in "${kernel_tests[@]}"; do summary+=("    $t"); done
  rm -rf "$work/kernel"
done

echo
echo "$me: tests: ${tests[*]}${test_args[*]:+ (arguments: ${test_args[*]})}"
for line in "${summary[@]}"; do echo "$me: $line"; done
[ "$failed" -eq 0 ] || die "a kernel failed"
echo "$me: every kernel passed"
exit 0
}
