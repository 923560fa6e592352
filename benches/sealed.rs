//! Sealed-executable benchmark: the time and peak memory to launch a 100 MB program
//! sealed, next to the same program run directly.
//!
//!     cargo bench --bench sealed
//!     PRELOAD_BENCH_MB=20 PRELOAD_BENCH_RUNS=3 cargo bench --bench sealed
//!
//! The program is generated here: a C program whose .data holds N MB of text-like bytes (words
//! drawn at random from a small vocabulary: compressible, but not trivially), which reads every
//! byte (so that both launches end with the whole program resident) and prints its own VmHWM.
//! Through preload there is no exec in between, so VmHWM includes the preloader's own peak: the
//! decrypted body and the program's pages. Needs gcc.
//!
//! Std only, on purpose: dev-dependencies that enable `std` on rustix or goblin would break the
//! no_std preloader's build.
#![allow(
    clippy::disallowed_methods,
    reason = "a bench runs on one thread, so no write descriptor can leak into a child: the tests' spawn lock has nothing to guard here"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const DEFAULT_MB: usize = 100;
const DEFAULT_RUNS: usize = 7;

const PROGRAM_C: &str = r#"#include <stdio.h>
#include <string.h>
extern const unsigned char blob[], blob_end[];
__asm__(".section .data\n.balign 4096\n.globl blob\nblob:\n.incbin \"blob.bin\"\n.globl blob_end\nblob_end:\n.previous\n");
int main(void) {
    unsigned long sum = 0;
    for (const unsigned char *p = blob; p < blob_end; p += 64) sum += *p;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) fputs(line, stdout);
    printf("sum %lu\n", sum);
    return 0;
}
"#;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

fn fail(message: &str) -> ! {
    eprintln!("benches/sealed: {message}");
    std::process::exit(1)
}

fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap_or_else(|e| fail(&format!("{cmd:?}: {e}")));
    if !output.status.success() {
        fail(&format!("{cmd:?}: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    output
}

/// `megabytes` MB of words from a 512-word vocabulary, chosen by xorshift.
fn text_like(megabytes: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: Vec<Vec<u8>> =
        (0..512).map(|_| (0..3 + next() % 8).map(|_| b'a' + (next() % 26) as u8).chain([b' ']).collect()).collect();
    let len = megabytes << 20;
    let mut data = Vec::with_capacity(len + 16);
    while data.len() < len {
        data.extend_from_slice(&words[(next() % 512) as usize]);
    }
    data.truncate(len);
    data
}

fn build(dir: &Path, megabytes: usize) -> PathBuf {
    fs::write(dir.join("blob.bin"), text_like(megabytes)).unwrap_or_else(|e| fail(&format!("blob.bin: {e}")));
    fs::write(dir.join("big.c"), PROGRAM_C).unwrap_or_else(|e| fail(&format!("big.c: {e}")));
    let program = dir.join("big");
    run_ok(Command::new("gcc").current_dir(dir).args(["-O1", "-o", "big", "big.c"]));
    program
}

/// One launch through `sh -c 'exec "$@" 3<KEY'` (both sides alike): wall time and VmHWM (KiB).
fn launch(words: &[&Path], key: &Path, env: &[(&str, &str)]) -> (f64, u64) {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(format!(r#"exec "$@" 3<'{}'"#, key.display())).arg("sh").args(words).envs(env.iter().copied());
    let start = Instant::now();
    let output = run_ok(&mut cmd);
    let seconds = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let hwm = stdout
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| fail(&format!("no VmHWM in {stdout:?}")));
    (seconds, hwm)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let megabytes = env_number("PRELOAD_BENCH_MB", DEFAULT_MB);
    let runs = env_number("PRELOAD_BENCH_RUNS", DEFAULT_RUNS);
    let preload = Path::new(env!("CARGO_BIN_EXE_preload"));
    let seal = Path::new(env!("CARGO_BIN_EXE_preload-seal"));
    let dir = std::env::temp_dir().join(format!("preload-bench-sealed-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));

    let program = build(&dir, megabytes);
    let key = dir.join("key");
    let sealed = dir.join("big.sealed");
    run_ok(Command::new(seal).arg("--new-key").arg(&key));
    let start = Instant::now();
    run_ok(Command::new(seal).arg("--key-file").arg(&key).arg("-o").arg(&sealed).arg(&program));
    let seal_seconds = start.elapsed().as_secs_f64();
    let size =
        |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "program {:.1} MiB, sealed {:.1} MiB ({:.0}%), sealing took {seal_seconds:.2} s",
        mib(size(&program)),
        mib(size(&sealed)),
        100.0 * size(&sealed) as f64 / size(&program) as f64
    );

    // (label, command line, extra environment)
    type Case<'a> = (&'a str, Vec<&'a Path>, Vec<(&'a str, &'a str)>);
    let cases: [Case; 3] = [
        ("direct", vec![program.as_path()], vec![]),
        ("preload (plain)", vec![preload, program.as_path()], vec![]),
        ("preload (sealed)", vec![preload, sealed.as_path()], vec![("PRELOAD_KEY_FD", "3")]),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let mut peaks = vec![Vec::new(); cases.len()];
    launch(&cases[0].1, &key, &cases[0].2); // page cache
    for _ in 0..runs {
        for (index, (_, words, env)) in cases.iter().enumerate() {
            let (seconds, hwm) = launch(words, &key, env);
            times[index].push(seconds);
            peaks[index].push(hwm as f64);
        }
    }
    println!("launch of a {megabytes} MB program, median of {runs} (round-robin); the program reads all its data");
    println!("{:<18} {:>10} {:>14} {:>12}", "case", "time ms", "peak MiB", "peak/program");
    for (index, (label, _, _)) in cases.iter().enumerate() {
        let seconds = median(&mut times[index]);
        let peak_kib = median(&mut peaks[index]);
        println!(
            "{label:<18} {:>10.1} {:>14.1} {:>12.2}",
            seconds * 1000.0,
            peak_kib / 1024.0,
            peak_kib * 1024.0 / size(&program) as f64
        );
    }
    let _ = fs::remove_dir_all(&dir);
}
