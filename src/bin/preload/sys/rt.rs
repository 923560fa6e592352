//! What a no_std binary must provide itself: the mem functions (the toolchain's
//! compiler_builtins exports none) and the panic handler.

use core::arch::asm;

use super::io;
use crate::arch;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    io::print(io::STDERR, b"preload: internal error\n");
    arch::exit(125)
}

/// The precompiled libcore refers to it in builds without LTO; panics abort, so it is never used.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

// The mem functions use string instructions: short, fast, and LLVM cannot turn them back into
// calls to themselves as it does with loops.

/// # Safety
/// The C contract: non-overlapping valid ranges of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags))
    };
    dest
}

/// # Safety
/// The C contract: valid ranges of `n` bytes, which may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: copying forwards never reads a byte it already wrote.
        unsafe { memcpy(dest, src, n) }
    } else {
        // SAFETY: dest overlaps the end of src, so copy backwards (DF set, then cleared again).
        unsafe {
            asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, options(nostack));
        }
        dest
    }
}

/// # Safety
/// The C contract: a valid range of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, byte: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") byte as u8, options(nostack, preserves_flags))
    };
    dest
}

/// # Safety
/// The C contract: valid ranges of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, inside both ranges.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        // SAFETY: an empty asm statement; it only keeps LLVM from turning this loop into a
        // call to memcmp.
        unsafe { asm!("", options(nomem, nostack, preserves_flags)) };
    }
    0
}

/// # Safety
/// The C contract: valid ranges of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` points to a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut len = 0;
    // SAFETY: the string is NUL-terminated, so every byte up to the NUL is readable.
    while unsafe { *s.add(len) } != 0 {
        len += 1;
        // SAFETY: an empty asm statement that keeps LLVM from calling strlen here.
        unsafe { asm!("", options(nomem, nostack, preserves_flags)) };
    }
    len
}
