//! Startup benchmark: what a launch through `preload` costs next to the kernel's
//! own exec, next to glibc's direct invocation of ld.so, and next to two loaders that do less:
//! Debian's Wine preloader (`wine64-preloader`, package wine64-preloader) and a 9 KB static
//! program that only execve()s its argument (built here).
//!
//!     cargo bench --bench startup            # N = 2000 launches per case
//!     PRELOAD_BENCH_N=500 cargo bench --bench startup
//!
//! Prints the machine, then a table of launch times (median and p90 of fork+exec+wait as seen by
//! the parent, all cases alternated in rounds of one launch each, shuffled per round, so that
//! machine noise spreads evenly), the system calls the preloader makes from its entry to the
//! jump, its stripped size and its peak memory. Needs gcc with the static glibc (libc6-dev), strace, wine64-preloader and GNU time (page
//! faults).
//!
//! Std only, on purpose: dev-dependencies that enable `std` on rustix or goblin would break the
//! no_std preloader's build.
#![allow(
    clippy::disallowed_methods,
    reason = "a bench runs on one thread, so no write descriptor can leak into a child: the tests' spawn lock has nothing to guard here"
)]

/// The tests' strace parser (`tests/fast_path.rs` counts the same system calls).
#[allow(dead_code, reason = "the bench uses the parser, not the write policy")]
#[path = "../tests/common/strace.rs"]
mod strace;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const DEFAULT_N: usize = 2000;
/// Untimed launches of every case before the timed rounds (page cache, branch predictors, CPU clock).
const WARMUP_ROUNDS: usize = 20;
const MANY_ARGS: usize = 10_000;
const SPARSE_LEN: u64 = 1 << 30;
const TRUE: &str = "/bin/true";
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";
const WINE_PRELOADER: &str = "/usr/lib/wine/wine64-preloader";
/// Runs of each memory probe; the median is reported.
const MEMORY_RUNS: usize = 11;

// The project's goals for the fast path (before the stub: 1.12, 30 calls and 24 KiB).
const GOAL_RATIO: f64 = 1.10;
const GOAL_SYSCALLS: usize = 32;
/// No larger than before stage 2 (without sealed support).
const GOAL_BYTES: u64 = 46_944;

const EMPTY_C: &str = "int main(){return 0;}\n";
/// A loader that does the least: execve(argv[1], argv + 1, envp), nothing else, no libc.
const EXECVE_ONLY_C: &str = r#"__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start_c\n\thlt\n");
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    sys3(59, (long)argv[1], (long)(argv + 1), (long)(argv + argc + 1));
    sys3(231, 127, 0, 0);
}
"#;
/// An ELF interpreter that does nothing but exit 0 (a static-pie without libc): a PIE naming it
/// in PT_INTERP measures the loader alone. ld.so's own start is dominated by CPUID, which a VM
/// traps (about 23 µs each on the 2-core Firecracker machine of the README's figures, some 600 µs
/// of a /bin/true launch), and so hides what the loader costs.
const EXIT_INTERP_C: &str = r#"__asm__(".globl _start\n_start:\n\tmov $231, %eax\n\txor %edi, %edi\n\tsyscall\n");
"#;
/// Prints its own VmHWM (peak RSS of the mm, which through preload includes the preloader's own
/// pages) and VmRSS (what is still resident when main runs).
const VM_STATUS_C: &str = r#"#include <stdio.h>
#include <string.h>
int main(void) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6) || !strncmp(line, "VmRSS:", 6)) fputs(line, stdout);
    return 0;
}
"#;

fn main() {
    let n = launches_per_case();
    print_machine();

    let preload = Path::new(env!("CARGO_BIN_EXE_preload"));
    let binary = inspect_binary(preload);
    require_tool("gcc", &["--version"], "gcc and libc6-dev (static glibc) build the test programs");
    require_tool("strace", &["-V"], "strace counts the preloader's system calls");
    if !Path::new(WINE_PRELOADER).exists() {
        fail(&format!("{WINE_PRELOADER} is missing: install wine64-preloader (scripts/test.sh does)"));
    }

    let scratch = preload
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| fail(&format!("unexpected binary path {}", preload.display())))
        .join("bench-scratch");
    fs::create_dir_all(&scratch).unwrap_or_else(|e| fail(&format!("{}: {e}", scratch.display())));
    // Both static programs that are timed are copies made the same way: a file just written by the
    // linker execs measurably slower (~10% here, with the same number of page faults) than a copy
    // of it, whatever its size, which would bias the file-size comparison.
    let compiled = compile(&scratch, "empty-static", EMPTY_C, true);
    let static_empty = copy_program(&compiled, &scratch.join("empty-static-copy"), None);
    let sparse = copy_program(&compiled, &scratch.join("empty-static-1g"), Some(SPARSE_LEN));
    let vm_static = compile(&scratch, "vm-status-static", VM_STATUS_C, true);
    let vm_dynamic = compile(&scratch, "vm-status-dynamic", VM_STATUS_C, false);
    let execve_only = compile_with(
        &scratch,
        "execve-only",
        EXECVE_ONLY_C,
        &["-static", "-nostdlib", "-fno-pie", "-no-pie", "-fno-stack-protector"],
    );
    let execve_only = copy_program(&execve_only, &scratch.join("execve-only-copy"), None);
    let loader_only = loader_only_program(&scratch);

    println!("preloader:  {} ({})", preload.display(), binary.describe());
    let meta = fs::metadata(&sparse).unwrap_or_else(|e| fail(&format!("{}: {e}", sparse.display())));
    println!("sparse:     {} ({} bytes, {} KiB allocated)", sparse.display(), meta.len(), meta.blocks() / 2);
    println!("launches:   {n} per case (PRELOAD_BENCH_N), after {WARMUP_ROUNDS} untimed, in shuffled rounds");
    println!();

    let programs = Programs { static_empty, sparse, execve_only, loader_only };
    let mut cases = timing_cases(preload, &programs);
    run_round_robin(&mut cases, n);
    print_table(&cases);
    println!();
    print_syscalls(preload, &scratch);
    print_faults(preload, &programs.static_empty);
    println!();
    print_size(&binary, preload, &scratch);
    println!();
    print_memory(preload, &vm_static, &vm_dynamic);
}

// ---------------------------------------------------------------------------------------------
// Setup

fn fail(message: &str) -> ! {
    eprintln!("startup bench: {message}");
    std::process::exit(1);
}

fn launches_per_case() -> usize {
    match std::env::var("PRELOAD_BENCH_N") {
        Err(_) => DEFAULT_N,
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => fail(&format!("PRELOAD_BENCH_N={text:?}: expected a positive integer")),
        },
    }
}

fn print_machine() {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
        .map_or("unknown", |(_, model)| model.trim());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("machine:    {model}, nproc {cpus}, Linux {}", kernel.trim());
}

/// Runs `tool ARGS` once to fail early, with what to install, when it is missing.
fn require_tool(tool: &str, args: &[&str], why: &str) {
    match Command::new(tool).args(args).output() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fail(&format!("{tool} is not installed ({why}); install it, e.g. apt-get install {tool}"))
        }
        Err(e) => fail(&format!("{tool}: {e}")),
    }
}

/// Runs a command to completion, failing the bench with its stderr unless it exits 0.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| fail(&format!("{cmd:?}: {e}")));
    if !out.status.success() {
        fail(&format!("{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    out
}

/// Compiles `source` with `gcc -O2` (and `-static`) into `scratch/name`.
fn compile(scratch: &Path, name: &str, source: &str, statically: bool) -> PathBuf {
    compile_with(scratch, name, source, if statically { &["-static"] } else { &[] })
}

/// Compiles `source` with `gcc -O2 FLAGS` into `scratch/name`.
fn compile_with(scratch: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let c_file = scratch.join(format!("{name}.c"));
    let exe = scratch.join(name);
    fs::write(&c_file, source).unwrap_or_else(|e| fail(&format!("{}: {e}", c_file.display())));
    run_ok(Command::new("gcc").arg("-O2").args(flags).arg("-o").arg(&exe).arg(&c_file));
    exe
}

/// Copies a program, and extends the copy with a hole to `len` bytes if given: the segments of a
/// static program are at the start, so it still runs, and only a loader that reads the whole file
/// pays for the size.
fn copy_program(program: &Path, copy: &Path, len: Option<u64>) -> PathBuf {
    let _ = fs::remove_file(copy);
    fs::copy(program, copy).unwrap_or_else(|e| fail(&format!("{}: {e}", copy.display())));
    if let Some(len) = len {
        let file = fs::OpenOptions::new().write(true).open(copy);
        file.and_then(|f| f.set_len(len)).unwrap_or_else(|e| fail(&format!("{}: set_len: {e}", copy.display())));
    }
    copy.to_path_buf()
}

/// A PIE (the empty C program) whose PT_INTERP names [`EXIT_INTERP_C`], both copied as the
/// other timed programs are.
fn loader_only_program(scratch: &Path) -> PathBuf {
    let flags = ["-nostdlib", "-static-pie", "-fPIE", "-fno-stack-protector"];
    let interp = compile_with(scratch, "exit-interp", EXIT_INTERP_C, &flags);
    let interp = copy_program(&interp, &scratch.join("exit-interp-copy"), None);
    let dynamic_linker = format!("-Wl,--dynamic-linker={}", interp.display());
    let program = compile_with(scratch, "loader-only", EMPTY_C, &["-pie", "-fPIE", &dynamic_linker]);
    copy_program(&program, &scratch.join("loader-only-copy"), None)
}

/// What the section headers say about the preloader binary.
struct Binary {
    bytes: u64,
    symbols: bool,
    debug_info: bool,
}

impl Binary {
    fn describe(&self) -> String {
        let profile = match (self.debug_info, self.symbols) {
            (true, _) => "DEBUG INFO: not the release build",
            (false, true) => "optimized, not stripped",
            (false, false) => "optimized and stripped",
        };
        format!("{} bytes, {profile}", self.bytes)
    }
}

/// Checks that `cargo bench` gave the release-profile binary (the bench profile inherits release:
/// opt-level "z", LTO, strip) and not a debug build.
fn inspect_binary(path: &Path) -> Binary {
    let data = fs::read(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    let names = section_names(&data).unwrap_or_else(|| fail(&format!("{}: malformed ELF", path.display())));
    let binary = Binary {
        bytes: data.len() as u64,
        symbols: names.iter().any(|name| name == ".symtab"),
        debug_info: names.iter().any(|name| name.starts_with(".debug_")),
    };
    if binary.debug_info {
        fail(&format!("{} has debug info: not the optimized release build", path.display()));
    }
    binary
}

/// The section names of an ELF64 little-endian file, or None if the headers do not fit.
fn section_names(data: &[u8]) -> Option<Vec<String>> {
    let field = |at: usize, len: usize| -> Option<u64> {
        let bytes = data.get(at..at + len)?;
        Some(bytes.iter().rev().fold(0, |value, &byte| value << 8 | u64::from(byte)))
    };
    if data.get(..4)? != b"\x7fELF" {
        return None;
    }
    let (shoff, shentsize) = (field(0x28, 8)? as usize, field(0x3a, 2)? as usize);
    let (shnum, shstrndx) = (field(0x3c, 2)? as usize, field(0x3e, 2)? as usize);
    if shnum == 0 {
        return Some(Vec::new());
    }
    let strtab = field(shoff + shstrndx * shentsize + 0x18, 8)? as usize;
    (0..shnum)
        .map(|index| {
            let start = strtab + field(shoff + index * shentsize, 4)? as usize;
            let rest = data.get(start..)?;
            let len = rest.iter().position(|&byte| byte == 0)?;
            Some(String::from_utf8_lossy(&rest[..len]).into_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Launch times

struct Case {
    group: &'static str,
    how: &'static str,
    cmd: Command,
    nanos: Vec<u64>,
}

/// The programs built for the bench.
struct Programs {
    static_empty: PathBuf,
    sparse: PathBuf,
    execve_only: PathBuf,
    loader_only: PathBuf,
}

fn timing_cases(preload: &Path, programs: &Programs) -> Vec<Case> {
    let Programs { static_empty, sparse, execve_only, loader_only } = programs;
    let many: Vec<String> = (0..MANY_ARGS).map(|i| format!("argument-{i:05}")).collect();
    let case = |group, how, program: &Path, args: &[&Path]| {
        let mut cmd = Command::new(program);
        // Wine's preloader says "wine_main_preload_info not found" for a program that is not
        // Wine's loader: its write is part of its cost, its text not part of the report.
        cmd.args(args).stderr(std::process::Stdio::null());
        Case { group, how, cmd, nanos: Vec::new() }
    };
    let true_path = Path::new(TRUE);
    let mut cases = vec![
        case("/bin/true", "direct", true_path, &[]),
        case("/bin/true", "preload", preload, &[true_path]),
        case("/bin/true", "ld.so", Path::new(LD_SO), &[true_path]),
        case("/bin/true", "wine-pre", Path::new(WINE_PRELOADER), &[true_path]),
        case("/bin/true", "execve", execve_only, &[true_path]),
        case("static C", "direct", static_empty, &[]),
        case("static C", "preload", preload, &[static_empty]),
        case("static C", "execve", execve_only, &[static_empty]),
        case("/bin/true, 10k args", "direct", true_path, &[]),
        case("/bin/true, 10k args", "preload", preload, &[true_path]),
        case("static C, 1 GiB sparse", "direct", sparse, &[]),
        case("static C, 1 GiB sparse", "preload", preload, &[sparse]),
        case("loader only", "direct", loader_only, &[]),
        case("loader only", "preload", preload, &[loader_only]),
        case("loader only", "wine-pre", Path::new(WINE_PRELOADER), &[loader_only]),
        case("loader only", "execve", execve_only, &[loader_only]),
    ];
    for case in cases.iter_mut().filter(|case| case.group.contains("10k")) {
        case.cmd.args(&many);
    }
    cases
}

/// Launches every case `n` times, one launch of each per round, in an order shuffled afresh each
/// round: with a fixed or merely rotated order a case nearly always follows the same one, and
/// what that one leaves behind (caches, the other CPU's load) biases it by a few µs.
fn run_round_robin(cases: &mut [Case], n: usize) {
    let started = Instant::now();
    let mut order: Vec<usize> = (0..cases.len()).collect();
    let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);
    for round in 0..WARMUP_ROUNDS + n {
        for last in (1..order.len()).rev() {
            order.swap(last, random.below(last + 1));
        }
        for &index in &order {
            let nanos = launch(&mut cases[index].cmd);
            if round >= WARMUP_ROUNDS {
                cases[index].nanos.push(nanos);
            }
        }
    }
    let launches = cases.len() * (WARMUP_ROUNDS + n);
    eprintln!("({launches} launches in {:.1} s)", started.elapsed().as_secs_f64());
}

/// A fixed-seed xorshift64 generator: the same shuffles in every run, and no dependency.
struct Xorshift(u64);

impl Xorshift {
    /// A number below `bound` (the modulo bias is negligible for a few dozen cases).
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

/// One fork+exec+wait (std spawns with posix_spawn), in nanoseconds.
fn launch(cmd: &mut Command) -> u64 {
    let start = Instant::now();
    let status = cmd.status().unwrap_or_else(|e| fail(&format!("{cmd:?}: {e}")));
    let nanos = start.elapsed().as_nanos() as u64;
    if !status.success() {
        fail(&format!("{:?} ...: {status}", cmd.get_program()));
    }
    nanos
}

/// Median and p90 (nearest rank) in microseconds.
fn stats(nanos: &[u64]) -> (f64, f64) {
    let mut sorted = nanos.to_vec();
    sorted.sort_unstable();
    let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    (rank(0.5) as f64 / 1e3, rank(0.9) as f64 / 1e3)
}

fn print_table(cases: &[Case]) {
    let find = |group: &str, how: &str| {
        let case = cases.iter().find(|case| case.group == group && case.how == how);
        case.map(|case| stats(&case.nanos))
    };
    let ratio = |a: (f64, f64), b: (f64, f64)| format!("{:.3} (p90 {:.3})", a.0 / b.0, a.1 / b.1);
    println!(
        "{:<24} {:<8} {:>10} {:>10}   {:<20} {:<20} {:<20} {:<20}",
        "launch time",
        "",
        "median µs",
        "p90 µs",
        "preload/direct",
        "preload/ld.so",
        "preload/wine-pre",
        "preload/execve"
    );
    const PEERS: [&str; 3] = ["ld.so", "wine-pre", "execve"];
    for case in cases.iter().filter(|case| case.how == "direct") {
        for how in ["direct", "preload", "ld.so", "wine-pre", "execve"] {
            let Some(mine) = find(case.group, how) else { continue };
            let label = if how == "direct" { case.group } else { "" };
            let mut columns = vec![String::new(); 4];
            if how == "preload" {
                columns[0] = ratio(mine, find(case.group, "direct").unwrap());
                for (index, peer) in PEERS.iter().enumerate() {
                    if let Some(theirs) = find(case.group, peer) {
                        columns[index + 1] = ratio(mine, theirs);
                    }
                }
            }
            println!(
                "{label:<24} {how:<8} {:>10.1} {:>10.1}   {:<20} {:<20} {:<20} {:<20}",
                mine.0, mine.1, columns[0], columns[1], columns[2], columns[3]
            );
        }
    }

    println!();
    for group in ["/bin/true", "static C"] {
        let (direct, preload) = (find(group, "direct").unwrap(), find(group, "preload").unwrap());
        let ratio = preload.0 / direct.0;
        println!("goal: preload/direct ≤ {GOAL_RATIO} for {group:<10} {ratio:.3}  {}", verdict(ratio <= GOAL_RATIO));
    }
    let preload_true = find("/bin/true", "preload").unwrap();
    for (peer, name) in [("wine-pre", "the Wine preloader"), ("execve", "the execve-only static program")] {
        let ratio = preload_true.0 / find("/bin/true", peer).unwrap().0;
        println!("goal: preload/{peer} ≤ 1.0 for /bin/true ({name}) {ratio:.3}  {}", verdict(ratio <= 1.0));
    }
    let loader = |how| find("loader only", how).unwrap().0;
    println!(
        "loader only, added to a direct run (median µs): preload {:+.1}, wine-pre {:+.1}, execve {:+.1}",
        loader("preload") - loader("direct"),
        loader("wine-pre") - loader("direct"),
        loader("execve") - loader("direct"),
    );
    let small = find("static C", "preload").unwrap();
    let big = find("static C, 1 GiB sparse", "preload").unwrap();
    let (small_direct, big_direct) =
        (find("static C", "direct").unwrap(), find("static C, 1 GiB sparse", "direct").unwrap());
    println!(
        "file size: 1 GiB sparse / small static program, median: preload {:.3}, direct {:.3}  {}",
        big.0 / small.0,
        big_direct.0 / small_direct.0,
        verdict(big.0 / small.0 <= 1.05),
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "[met]" } else { "[MISSED]" }
}

// ---------------------------------------------------------------------------------------------
// System calls from entry to jump

/// Counts the system calls of `preload /bin/true` between the preloader's entry and its jump to
/// ld.so, from `strace -f -o FILE` (the markers: [`strace::preloader_calls`]). As a check, the
/// last of them must be the stub's last op, the `close` of ld.so's descriptor just before the
/// jump; a warning is printed otherwise.
fn print_syscalls(preload: &Path, scratch: &Path) {
    let log = scratch.join("strace.log");
    run_ok(Command::new("strace").arg("-f").arg("-o").arg(&log).arg(preload).arg(TRUE));
    let text = fs::read_to_string(&log).unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
    let calls = strace::parse(&text);
    let preloader = strace::preloader_calls(&calls).unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
    let count = preloader.len();
    println!(
        "system calls, entry to jump (preload /bin/true): {count}  {}  (goal ≤ {GOAL_SYSCALLS})",
        verdict(count <= GOAL_SYSCALLS)
    );
    // A failed call is e.g. "prctl EBUSY" (PR_SET_MM_MAP while the preloader's own file is still
    // mapped; EPERM without CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE).
    println!("  {}", strace::summary(preloader));
    if preloader.last().is_none_or(|call| call.name != "close") {
        println!("  warning: the last call before brk(NULL) is not close; the boundary may be off ({})", log.display());
    }
}

/// Page faults (minor, major) of a launch, from GNU time's %R and %F: the median of
/// MEMORY_RUNS, direct and through preload.
fn print_faults(preload: &Path, static_empty: &Path) {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        println!("page faults: /usr/bin/time (GNU time) is not installed");
        return;
    }
    let faults = |args: &[&Path]| -> (u64, u64) {
        let mut runs: Vec<(u64, u64)> = (0..MEMORY_RUNS)
            .map(|_| {
                let out = run_ok(Command::new(time).args(["-f", "%R %F"]).args(args));
                let text = String::from_utf8_lossy(&out.stderr);
                let mut fields = text.trim().lines().last().unwrap_or("").split_whitespace();
                let mut next = || fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
                (next(), next())
            })
            .collect();
        runs.sort_unstable();
        runs[MEMORY_RUNS / 2]
    };
    let true_path = Path::new(TRUE);
    for (label, program) in [("/bin/true", true_path), ("static C", static_empty)] {
        let (direct, preloaded) = (faults(&[program]), faults(&[preload, program]));
        println!(
            "page faults (minor/major, median of {MEMORY_RUNS}), {label}: direct {}/{}, preload {}/{} (+{})",
            direct.0,
            direct.1,
            preloaded.0,
            preloaded.1,
            preloaded.0 as i64 - direct.0 as i64
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Size and memory

fn print_size(binary: &Binary, preload: &Path, scratch: &Path) {
    let bytes = if binary.symbols {
        let stripped = scratch.join("preload.stripped");
        run_ok(Command::new("strip").arg("-o").arg(&stripped).arg(preload));
        fs::metadata(&stripped).map_or(0, |m| m.len())
    } else {
        binary.bytes
    };
    let features = if cfg!(feature = "sealed") { "with sealed support" } else { "without sealed support" };
    println!("stripped size ({features}): {bytes} bytes = {:.1} KiB", bytes as f64 / 1024.0);
    if cfg!(feature = "sealed") {
        // Sealed-executable support is measured separately: the same binary without it.
        let target = scratch.join("without-sealed");
        run_ok(
            Command::new(env!("CARGO"))
                .args(["build", "--release", "--bin", "preload", "--no-default-features", "--quiet", "--manifest-path"])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target),
        );
        let core = fs::metadata(target.join("release/preload")).map_or(0, |m| m.len());
        println!(
            "stripped size (without sealed support): {core} bytes = {:.1} KiB  {}  (goal ≤ {GOAL_BYTES} bytes, the size before stage 2; sealed support adds {:.1} KiB)",
            core as f64 / 1024.0,
            verdict(core <= GOAL_BYTES),
            (bytes as f64 - core as f64) / 1024.0
        );
    }
}

/// The median (VmHWM, VmRSS) in KiB that a vm-status program prints about itself.
fn vm_status(program: &Path, through: &[&Path]) -> (u64, u64) {
    let mut hwm = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..MEMORY_RUNS {
        let mut cmd = match through.split_first() {
            Some((loader, rest)) => {
                let mut cmd = Command::new(loader);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        let out = String::from_utf8_lossy(&run_ok(&mut cmd).stdout).into_owned();
        let value = |key: &str| -> u64 {
            let line = out.lines().find(|line| line.starts_with(key));
            let kib = line.and_then(|line| line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok());
            kib.unwrap_or_else(|| fail(&format!("{cmd:?}: no {key} in {out:?}")))
        };
        hwm.push(value("VmHWM:"));
        rss.push(value("VmRSS:"));
    }
    hwm.sort_unstable();
    rss.sort_unstable();
    (hwm[MEMORY_RUNS / 2], rss[MEMORY_RUNS / 2])
}

/// Peak memory: a program that prints its own VmHWM and VmRSS, run directly and through preload.
/// Through preload the mm is the preloader's own (there is no exec in between), so VmHWM includes
/// the preloader's peak and VmRSS whatever it leaves resident.
fn print_memory(preload: &Path, vm_static: &Path, vm_dynamic: &Path) {
    println!("peak memory (median of {MEMORY_RUNS}, KiB)   VmHWM  VmRSS   preload − direct");
    let ld_so = Path::new(LD_SO);
    for (label, program) in [("static C", vm_static), ("dynamic C", vm_dynamic)] {
        let direct = vm_status(program, &[]);
        let mut rows = vec![("direct", direct), ("preload", vm_status(program, &[preload]))];
        if label == "dynamic C" {
            rows.push(("ld.so", vm_status(program, &[ld_so])));
        }
        for (how, (hwm, rss)) in rows {
            let label = if how == "direct" { label } else { "" };
            let delta = if how == "preload" {
                format!("HWM {:+}, RSS {:+}", hwm as i64 - direct.0 as i64, rss as i64 - direct.1 as i64)
            } else {
                String::new()
            };
            println!("  {label:<12} {how:<24} {hwm:>6} {rss:>6}   {delta}");
        }
    }
    // The same figure as the shell sees it, if GNU time is installed: the max RSS of the process
    // (for small programs, largely the forked copy of `time` itself before the exec).
    let time = Path::new("/usr/bin/time");
    if time.exists() {
        let max_rss = |args: &[&Path]| -> u64 {
            let mut all: Vec<u64> = (0..MEMORY_RUNS)
                .map(|_| {
                    let out = run_ok(Command::new(time).args(["-f", "%M"]).args(args));
                    let text = String::from_utf8_lossy(&out.stderr);
                    text.trim().lines().last().and_then(|l| l.parse().ok()).unwrap_or(0)
                })
                .collect();
            all.sort_unstable();
            all[MEMORY_RUNS / 2]
        };
        let true_path = Path::new(TRUE);
        println!(
            "  /usr/bin/time -f %M /bin/true: direct {} KiB, preload {} KiB",
            max_rss(&[true_path]),
            max_rss(&[preload, true_path])
        );
    }
}
