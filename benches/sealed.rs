//! Sealed-executable benchmark: for a 100 MB and a 10 MB program, the time
//! and peak memory to launch it sealed (LZ4 chunks, the default; and zlib), next to the same
//! program run directly and through preload unsealed, and the throughput of the steps the
//! preloader takes (authentication, decryption, decoding).
//!
//!     cargo bench --bench sealed
//!     PRELOAD_BENCH_MB=100,10 PRELOAD_BENCH_RUNS=7 cargo bench --bench sealed
//!     PRELOAD_BENCH_PRELOAD=old/preload PRELOAD_BENCH_SEAL=old/preload-seal cargo bench --bench sealed
//!
//! The programs are generated here, as startup was first measured: a C program whose .rodata
//! holds N MB of base64 text (of pseudo-random bytes: zlib takes it to about 75%, LZ4 not at
//! all, so its chunks are stored), which reads one byte of every 64 (so that every launch ends
//! with the whole program resident) and prints its own VmHWM. Through preload there is no exec
//! in between, so VmHWM includes the preloader's own peak: the decrypted body, the decoder's
//! buffer and the program's pages; it prints its CPU time (getrusage: the shell that execs it,
//! preload and itself) too, which a busy machine inflates far less than the wall time. The
//! goals: 100 MB sealed in at most 0.2 s, 10 MB in 25 ms, judged on the CPU time and on the
//! wall time apart (the load average, printed before and after, says how far other work
//! inflated the wall time).
//!
//! The throughputs are measured here, in this process, with the library functions the
//! preloader runs (`preload::input::sealed`, built with the same profile and cipher backends),
//! on the containers preload-seal made: authentication in pieces, decryption in place (what a
//! zlib body gets), then the decoder over the whole program (an LZ4-chunk body decrypted chunk
//! by chunk as it is decoded, as the preloader reads it). Needs gcc. PRELOAD_BENCH_PRELOAD and PRELOAD_BENCH_SEAL run other builds (an older
//! preload-seal writes zlib only: the LZ4 rows then show its default).
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

use preload::input::sealed::{
    self, AUTHENTICATION_PIECE, Authenticator, Body, Chunks, Compressor, HEADER_SIZE, Header, InflateState, Inflating,
    Key, Keystream, TAG_SIZE, Workspace,
};

const DEFAULT_SIZES: &str = "100,10";
const DEFAULT_RUNS: usize = 7;
/// The goals, in milliseconds, by program size in MB.
const GOALS: [(usize, f64); 2] = [(100, 200.0), (10, 25.0)];

const PROGRAM_C: &str = r#"#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
extern const unsigned char blob[], blob_end[];
__asm__(".section .rodata\n.balign 4096\n.globl blob\nblob:\n.incbin \"blob.bin\"\n.globl blob_end\nblob_end:\n.previous\n");
int main(void) {
    unsigned long sum = 0;
    for (const unsigned char *p = blob; p < blob_end; p += 64) sum += *p;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) fputs(line, stdout);
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage)) return 1;
    printf("cpu_us %ld\n", (long)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000
        + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    printf("maxrss_kb %ld\n", usage.ru_maxrss);
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

/// `megabytes` MB of base64 text of xorshift bytes, in 76-character lines.
fn base64_text(megabytes: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let len = megabytes << 20;
    let mut data = Vec::with_capacity(len + 80);
    while data.len() < len {
        for _ in 0..19 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // 24 random bits, four characters.
            let bits = state >> 40;
            data.extend((0..4).map(|i| ALPHABET[(bits >> (18 - 6 * i) & 63) as usize]));
        }
        data.push(b'\n');
    }
    data.truncate(len);
    data
}

fn build(dir: &Path, megabytes: usize) -> PathBuf {
    fs::write(dir.join("blob.bin"), base64_text(megabytes)).unwrap_or_else(|e| fail(&format!("blob.bin: {e}")));
    fs::write(dir.join("big.c"), PROGRAM_C).unwrap_or_else(|e| fail(&format!("big.c: {e}")));
    run_ok(Command::new("gcc").current_dir(dir).args(["-O1", "-o", "big", "big.c"]));
    dir.join("big")
}

/// One launch through `sh -c 'exec "$@" 3<KEY'` (every case alike): wall time, CPU time (user
/// and system, of the one process: the shell, preload and the program) in seconds, and VmHWM
/// (KiB). The CPU time is what a busy machine changes least.
fn launch(words: &[&Path], key: &Path, env: &[(&str, &str)]) -> (f64, f64, u64) {
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
    let cpu_us: u64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("cpu_us "))
        .and_then(|us| us.trim().parse().ok())
        .unwrap_or_else(|| fail(&format!("no cpu_us in {stdout:?}")));
    (seconds, cpu_us as f64 / 1e6, hwm)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The fastest of three runs of `step`, in seconds.
fn best_of_3(mut step: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// In-process throughputs on `container` (MB/s of body for the cipher, of program for the
/// decoder), each step as the preloader takes it: authentication alone (in pieces), decryption
/// in place (what a zlib body gets), decoding (zlib: inflating the decrypted body; LZ4:
/// decrypting each chunk as it is decoded, from the body as held), and the wipe of a body.
fn throughputs(container: &[u8], key_file: &Path) -> (Compressor, f64, f64, f64, f64) {
    let mut key = Key::zeroed();
    sealed::parse_key(&fs::read(key_file).unwrap_or_else(|e| fail(&format!("key: {e}"))), &mut key)
        .unwrap_or_else(|why| fail(why));
    let header_bytes: &[u8; HEADER_SIZE] = container[..HEADER_SIZE].try_into().unwrap();
    let header = Header::parse(header_bytes).unwrap_or_else(|refusal| fail(refusal.reason));
    let tag: [u8; TAG_SIZE] = container[container.len() - TAG_SIZE..].try_into().unwrap();
    let encrypted = &container[HEADER_SIZE..container.len() - TAG_SIZE];
    let auth = best_of_3(|| {
        let mut auth = Authenticator::new(&key, header_bytes).unwrap_or_else(|refusal| fail(refusal.reason));
        encrypted.chunks(AUTHENTICATION_PIECE).for_each(|piece| auth.update(piece));
        auth.verify(&tag).unwrap_or_else(|refusal| fail(refusal.reason));
    });
    let mut keystream = Keystream::new(&key, &header);
    let mut body = encrypted.to_vec();
    // Each run decrypts or encrypts again (XOR with the same keystream): the same work.
    let mut scratch = encrypted.to_vec();
    let decrypt = best_of_3(|| keystream.decrypt_at(0, &mut scratch).unwrap_or_else(|refusal| fail(refusal.reason)));
    drop(scratch);
    keystream.decrypt_at(0, &mut body).unwrap_or_else(|refusal| fail(refusal.reason));
    let mut program = vec![0u8; header.program_size as usize];
    let decode = best_of_3(|| match header.compressor {
        Compressor::Zlib => {
            let mut state = Box::new(InflateState::new());
            Inflating::new(header.program_size, &mut state)
                .read_exact_at(&body, &mut state, 0, &mut program)
                .unwrap_or_else(|refusal| fail(refusal.reason));
        }
        Compressor::Lz4Chunks => {
            let mut workspace = Box::new(Workspace::zeroed());
            let mut held = Body::encrypted(0, encrypted, &mut keystream);
            Chunks::new(header.program_size, &mut held)
                .and_then(|mut chunks| chunks.read_exact_at(&mut held, &mut workspace, 0, &mut program))
                .unwrap_or_else(|refusal| fail(refusal.reason));
        }
    });
    let wipe = best_of_3(|| sealed::wipe(&mut body));
    let mb = |bytes: usize, seconds: f64| bytes as f64 / 1e6 / seconds;
    (header.compressor, mb(body.len(), auth), mb(body.len(), decrypt), mb(program.len(), decode), mb(body.len(), wipe))
}

fn bench_size(megabytes: usize, runs: usize, preload: &Path, seal: &Path) {
    let dir = std::env::temp_dir().join(format!("preload-bench-sealed-{}-{megabytes}", std::process::id()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let program = build(&dir, megabytes);
    let key = dir.join("key");
    run_ok(Command::new(seal).arg("--new-key").arg(&key));
    let size =
        |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!("\n== {megabytes} MB of base64 text in .rodata: program {:.1} MiB", mib(size(&program)));

    let mut sealed_files = Vec::new();
    for (name, options) in [("lz4", &["--compress", "lz4"][..]), ("zlib", &["--compress", "zlib"][..])] {
        let sealed = dir.join(format!("big.{name}"));
        let start = Instant::now();
        let output =
            Command::new(seal).arg("--key-file").arg(&key).args(options).arg("-o").arg(&sealed).arg(&program).output();
        if !output.is_ok_and(|output| output.status.success()) {
            // An older preload-seal knows no --compress: its default (zlib) then, as the line says.
            run_ok(Command::new(seal).arg("--key-file").arg(&key).arg("-o").arg(&sealed).arg(&program));
        }
        let seconds = start.elapsed().as_secs_f64();
        let container = fs::read(&sealed).unwrap_or_else(|e| fail(&format!("{}: {e}", sealed.display())));
        let (compressor, auth, decrypt, decode, wipe) = throughputs(&container, &key);
        let decoding = match compressor {
            Compressor::Lz4Chunks => "decoding with decryption",
            Compressor::Zlib => "decoding",
        };
        println!(
            "sealed ({name}): {:.1} MiB ({:.0}%), {compressor:?}, sealing {seconds:.2} s; authentication {auth:.0} MB/s, \
             decryption in place {decrypt:.0} MB/s, {decoding} {decode:.0} MB/s, wiping {wipe:.0} MB/s",
            mib(size(&sealed)),
            100.0 * size(&sealed) as f64 / size(&program) as f64,
        );
        sealed_files.push((name, sealed));
    }

    let key_env = [("PRELOAD_KEY_FD", "3")];
    // (label, command line, extra environment)
    type Case<'a> = (String, Vec<&'a Path>, &'a [(&'a str, &'a str)]);
    let mut cases: Vec<Case> = vec![
        ("direct".into(), vec![program.as_path()], &[]),
        ("preload (plain)".into(), vec![preload, program.as_path()], &[]),
    ];
    for (name, sealed) in &sealed_files {
        cases.push((format!("preload (sealed, {name})"), vec![preload, sealed.as_path()], &key_env));
    }
    let mut times = vec![Vec::new(); cases.len()];
    let mut cpu = vec![Vec::new(); cases.len()];
    let mut peaks = vec![Vec::new(); cases.len()];
    for (_, words, env) in &cases {
        launch(words, &key, env); // page cache
    }
    for _ in 0..runs {
        for (index, (_, words, env)) in cases.iter().enumerate() {
            let (seconds, cpu_seconds, hwm) = launch(words, &key, env);
            times[index].push(seconds);
            cpu[index].push(cpu_seconds);
            peaks[index].push(hwm as f64);
        }
    }
    println!("launch, median of {runs} (round-robin); the program reads all its data");
    println!("{:<26} {:>10} {:>10} {:>12} {:>14}", "case", "time ms", "CPU ms", "VmHWM MiB", "VmHWM/program");
    let goal = GOALS.iter().find(|(mb, _)| *mb == megabytes).map(|(_, ms)| *ms);
    let verdict = |ms: f64, goal: f64| if ms <= goal { "met" } else { "missed" };
    for (index, (label, _, _)) in cases.iter().enumerate() {
        let ms = median(&mut times[index]) * 1000.0;
        let cpu_ms = median(&mut cpu[index]) * 1000.0;
        let peak_kib = median(&mut peaks[index]);
        let verdict = match goal {
            Some(goal) if label.ends_with("lz4)") => {
                format!("  (goal {goal:.0} ms: CPU time {}, wall time {})", verdict(cpu_ms, goal), verdict(ms, goal))
            }
            _ => String::new(),
        };
        println!(
            "{label:<26} {ms:>10.1} {cpu_ms:>10.1} {:>12.1} {:>14.2}{verdict}",
            peak_kib / 1024.0,
            peak_kib * 1024.0 / size(&program) as f64
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

fn main() {
    let runs = env_number("PRELOAD_BENCH_RUNS", DEFAULT_RUNS);
    let sizes = std::env::var("PRELOAD_BENCH_MB").unwrap_or(DEFAULT_SIZES.into());
    let from_env = |name: &str, built: &'static str| std::env::var_os(name).map_or(PathBuf::from(built), PathBuf::from);
    let preload = from_env("PRELOAD_BENCH_PRELOAD", env!("CARGO_BIN_EXE_preload"));
    let seal = from_env("PRELOAD_BENCH_SEAL", env!("CARGO_BIN_EXE_preload-seal"));
    println!("preload {}, preload-seal {}", preload.display(), seal.display());
    println!("load average before: {}", load_average());
    for megabytes in sizes.split(',').filter_map(|mb| mb.trim().parse().ok()) {
        bench_size(megabytes, runs, &preload, &seal);
    }
    println!("\nload average after: {}", load_average());
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_else(|e| fail(&format!("/proc/loadavg: {e}")));
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
