//! Shared helpers for the integration tests, by purpose:
//!
//! - [`scratch`]: scratch directories and the copy of the binary under test;
//! - [`spawn`]: the spawn lock and every way a test starts a process (runners with a timeout,
//!   tools, a child that calls execve itself, page-fault counts);
//! - [`build`]: the C test programs in several variants;
//! - [`invocation`] and [`compare`]: a program run directly and through `preload`, and the
//!   comparison of the two;
//! - [`strace`]: the one parser of strace logs, with the policy of what counts as a write to a
//!   file;
//! - [`elf`] and [`probe`]: editing ELF files, and the `/proc` probe's reports.
//!
//! Everything tests use is re-exported here (`common::run_preload`, `common::build_c`...).
//!
//! Std only, on purpose: dev-dependencies that enable `std` on rustix or goblin would break the
//! no_std preloader's build.
#![allow(dead_code)] // every test crate uses a different subset

pub mod build;
pub mod compare;
pub mod elf;
pub mod invocation;
pub mod probe;
pub mod scratch;
pub mod spawn;
pub mod strace;

// Every test crate uses a different subset.
#[allow(unused_imports)]
pub use build::{Variant, build_c};
#[allow(unused_imports)]
pub use compare::{Both, diff_text, escape, render_status};
#[allow(unused_imports)]
pub use invocation::Invocation;
#[allow(unused_imports)]
pub use scratch::{Scratch, preload, set_mode};
#[allow(unused_imports)]
pub use spawn::{
    NOBODY, SYSTEM_PATH, execve_in_child, output, require_tool, run, run_counting_faults, run_preload,
    sh_under_unshare, spawn,
};

/// Generates one `#[test]` per variant calling `$check(Variant::X)`.
#[allow(unused_macros)]
macro_rules! per_variant {
    ($check:ident: $($test:ident => $variant:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $check(common::Variant::$variant)
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use per_variant;

/// (major, minor) of the running kernel, from /proc/sys/kernel/osrelease: tests of behaviour that
/// changed between kernels (scripts/test-kernels.sh runs them on older ones) follow the kernel.
pub fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("read /proc/sys/kernel/osrelease");
    let number =
        |part: Option<&str>| -> Option<u32> { part?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok() };
    let mut parts = release.trim().split('.');
    match (number(parts.next()), number(parts.next())) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("cannot parse the kernel release {release:?}"),
    }
}

/// The most program headers the running kernel reads: 64 KiB of them (1170) from 6.17 on, one
/// page (73) before ("binfmt_elf: remove the 4k limitation of program header size").
pub fn max_phdrs() -> usize {
    if kernel_version() >= (6, 17) { 1170 } else { 73 }
}
