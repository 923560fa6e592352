//! The pure core of `preload`: everything that can be decided without touching the process.
//!
//! Data flows one way: [`cli`] parses the options, [`script`] and [`search`] find what to run,
//! [`elf`] validates it as the kernel's `binfmt_elf` does, [`plan`] computes where every segment
//! goes and the mm fields, and [`stack`] lays out the initial stack image (strings, argv, envp,
//! auxv). The binary (`src/main.rs`) applies the result with system calls.
#![cfg_attr(not(test), no_std)]

pub mod cli;
pub mod elf;
pub mod exec;
pub mod input;
pub mod plan;
pub mod report;

/// The page size of x86_64 Linux, which the ELF rules below are written against.
pub const PAGE_SIZE: u64 = 4096;

/// Round `value` down to a page boundary.
pub const fn page_start(value: u64) -> u64 {
    value & !(PAGE_SIZE - 1)
}

/// The offset of `value` within its page.
pub const fn page_offset(value: u64) -> u64 {
    value & (PAGE_SIZE - 1)
}

/// Round `value` up to a page boundary (saturating at the last page).
pub const fn page_align(value: u64) -> u64 {
    page_start(value.saturating_add(PAGE_SIZE - 1))
}
