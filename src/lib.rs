//! The pure core of `preload`: everything that can be decided without touching the process.
//!
//! Data flows one way: [`cli`] parses the options; [`exec`] finds what to run (PATH, `#!`
//! scripts, the argv they make); [`input`] takes in programs that are streams or sealed;
//! [`elf`] validates them as the kernel's `binfmt_elf` does; [`plan`] computes where every
//! segment goes, the mm fields, the initial stack image, the reservations and the credentials;
//! [`report`] words every refusal. The binary (`src/bin/preload/`) applies the result with
//! system calls, through the same names.
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

/// The C string at the start of `bytes`, which were built with their NUL (empty without one).
pub fn cstr(bytes: &[u8]) -> &core::ffi::CStr {
    // A plain scan: CStr::from_bytes_until_nul brings in core's word-at-a-time memchr, several
    // times longer, for strings of a few bytes.
    match bytes.iter().position(|&b| b == 0) {
        // SAFETY: `len` is the first NUL, so the slice ends with it and holds no other.
        Some(len) => unsafe { core::ffi::CStr::from_bytes_with_nul_unchecked(&bytes[..=len]) },
        None => c"",
    }
}

/// Round `value` up to a page boundary (saturating at the last page).
// Not inlined: at each of its many callers the saturating add is longer than a call.
#[inline(never)]
pub const fn page_align(value: u64) -> u64 {
    page_start(value.saturating_add(PAGE_SIZE - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstr_ends_at_the_first_nul() {
        assert_eq!(cstr(b"/bin/sh\0rest\0").to_bytes(), b"/bin/sh");
        assert_eq!(cstr(b"\0").to_bytes(), b"");
        assert_eq!(cstr(b"no nul").to_bytes(), b"");
        assert_eq!(cstr(b"").to_bytes(), b"");
    }
}
