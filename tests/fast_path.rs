//! Keeps the fast path from regressing silently: the system calls `preload /bin/true` makes from
//! its entry to its jump to ld.so, and the page faults it adds to a direct run, against the
//! figures below. Both are printed (`-- --nocapture`). `benches/startup.rs` measures the same
//! system calls (with the same parser) next to launch times.

mod common;

use common::{Scratch, preload, require_tool, strace};
use std::process::Command;

/// System calls of `preload /bin/true` (as root, empty environment) from the preloader's entry to
/// its jump to ld.so (the stage-2 stub's calls included), counted by
/// `common::strace::preloader_calls`. Measured 2026-12 with the two-stage shell (the hand-off
/// unmapped with the preloader); a change to the shell's steps moves it: update it to the figure
/// this test prints.
const SYSCALLS: usize = 31;
/// How far the count may move either way before the test fails: more is a regression, fewer an
/// improvement to record here, so that the next regression is caught from the new figure.
const SYSCALL_MARGIN: usize = 2;

/// Minor page faults of `preload /bin/true` minus those of `/bin/true` run directly (median of
/// [`RUNS`] runs each, getrusage of the child; `/usr/bin/time -f %R` agrees): the preloader's own
/// pages, its stack and what it maps. Measured as [`SYSCALLS`] (as root, empty environment);
/// update it in the same way.
const EXTRA_FAULTS: i64 = 15;
/// How far the difference may move either way before the test fails.
const FAULT_MARGIN: i64 = 8;
/// Runs of each side, alternated; the median is compared.
const RUNS: usize = 21;

const TRUE: &str = "/bin/true";

#[test]
fn system_calls_from_entry_to_jump_stay_at_the_measured_figure() {
    let scratch = Scratch::new("fast-path");
    let log = scratch.path().join("strace.log");
    let mut cmd = Command::new(require_tool("strace"));
    cmd.env_clear().args(["-f", "-o"]).arg(&log).arg(preload()).arg(TRUE);
    let output = common::output(&mut cmd);
    assert!(output.status.success(), "strace preload {TRUE}: {}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&log).expect("the strace log");
    let calls = strace::parse(&text);
    let preloader = strace::preloader_calls(&calls).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let count = preloader.len();
    let listing: Vec<&str> = preloader.iter().map(|call| call.text.as_str()).collect();
    println!("system calls of preload {TRUE}, entry to jump: {count} (expected {SYSCALLS} ± {SYSCALL_MARGIN})");
    println!("  {}", strace::summary(preloader));
    assert!(
        count.abs_diff(SYSCALLS) <= SYSCALL_MARGIN,
        "preload {TRUE} made {count} system calls from entry to jump, expected {SYSCALLS} ± {SYSCALL_MARGIN}; \
         if the change is meant, update SYSCALLS in tests/fast_path.rs:\n{}",
        listing.join("\n")
    );
}

/// Minor page faults of `argv` (empty environment), median of [`RUNS`] runs.
fn median_faults(runs: &mut [Vec<u64>; 2], sides: [&[&std::ffi::OsStr]; 2]) -> [u64; 2] {
    for _ in 0..RUNS {
        for (side, argv) in sides.iter().enumerate() {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..]).env_clear();
            let (status, faults) = common::run_counting_faults(&mut cmd);
            assert!(status.success(), "{argv:?}: {}", common::render_status(status));
            runs[side].push(faults);
        }
    }
    runs.each_mut().map(|faults| {
        faults.sort_unstable();
        faults[faults.len() / 2]
    })
}

#[test]
fn page_faults_added_to_a_direct_run_stay_at_the_measured_figure() {
    let program = std::ffi::OsStr::new(TRUE);
    let mut runs = [Vec::new(), Vec::new()];
    let [direct, preloaded] = median_faults(&mut runs, [&[program], &[preload().as_os_str(), program]]);
    let extra = preloaded as i64 - direct as i64;
    println!(
        "minor page faults, median of {RUNS}: {TRUE} {direct}, preload {TRUE} {preloaded}: {extra:+} \
         (expected {EXTRA_FAULTS:+} ± {FAULT_MARGIN})"
    );
    assert!(
        (extra - EXTRA_FAULTS).abs() <= FAULT_MARGIN,
        "preload adds {extra} minor page faults to {TRUE} (direct {direct}, preloaded {preloaded}), expected \
         {EXTRA_FAULTS} ± {FAULT_MARGIN}; if the change is meant, update EXTRA_FAULTS in tests/fast_path.rs\n\
         all runs, direct: {:?}\npreloaded: {:?}",
        runs[0],
        runs[1]
    );
}
