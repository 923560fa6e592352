#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (nightly toolchain; the product itself builds on stable).
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (600) each, FUZZ_JOBS (2) at a time
#   scripts/fuzz.sh load_plan       just these targets
#   FUZZ_SECONDS=60 scripts/fuzz.sh a quick pass
# Corpora stay in fuzz/corpus/TARGET and crashes in fuzz/artifacts/TARGET (both ignored by git);
# each target's log is fuzz/logs/TARGET.log, and its final libFuzzer stats line is printed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-2}
command -v cargo-fuzz >/dev/null || { echo "scripts/fuzz.sh: install cargo-fuzz: cargo install cargo-fuzz" >&2; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

# Real executables as seeds for the ELF validator: a glibc PIE and a static program.
mkdir -p corpus/elf_validate logs
if [ -z "$(ls -A corpus/elf_validate)" ]; then
  for seed in /bin/true /usr/bin/env; do
    [ -f "$seed" ] && cp "$seed" "corpus/elf_validate/$(basename "$seed")"
  done
fi

# And i386 ones for the i386 validator (the interpreter and C library of gcc-multilib's glibc).
mkdir -p corpus/elf32_validate
if [ -z "$(ls -A corpus/elf32_validate)" ]; then
  for seed in /lib/ld-linux.so.2 /usr/lib32/libc.so.6; do
    [ -f "$seed" ] && cp -L "$seed" "corpus/elf32_validate/$(basename "$seed")"
  done
fi

nice -n 10 cargo +nightly fuzz build
run() {
  local extra=()
  # Whole executables as inputs; the structured targets keep libFuzzer's default of 4096.
  [ "$1" = elf_validate ] || [ "$1" = elf32_validate ] && extra=(-max_len=65536)
  nice -n 10 cargo +nightly fuzz run "$1" -- -max_total_time="$seconds" "${extra[@]}" >"logs/$1.log" 2>&1
}
status=0
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || status=1; done
  run "$target" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done

for target in "${targets[@]}"; do
  if grep -q "Test unit written" "logs/$target.log"; then
    echo "$target: CRASH, see fuzz/logs/$target.log and fuzz/artifacts/$target/"
    status=1
  else
    echo "$target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "logs/$target.log" | tail -1)"
  fi
done
exit "$status"
