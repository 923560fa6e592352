//! What a no_std binary must provide itself: the mem functions (the toolchain's
//! compiler_builtins exports none), the panic handler, and raw output.

use core::arch::asm;
use core::ptr::NonNull;

use rustix::fd::BorrowedFd;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::arch;

pub const STDOUT: i32 = 1;
pub const STDERR: i32 = 2;

/// Write all of `bytes` to `fd`, giving up silently on error: there is nowhere to report it.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    // SAFETY: fds 1 and 2 are only borrowed for the call; a closed one just fails.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n..],
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    write_all(STDERR, b"preload: internal error\n");
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

/// # Safety
/// A private anonymous read-write mapping (zero-filled, whole pages) at an address of the
/// kernel's choosing, unmapped when dropped: buffers kept out of the launch's stack frame.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// At least `len` bytes (not 0); `flags` adds to MAP_PRIVATE.
    pub fn new(len: usize, flags: MapFlags) -> Result<Self, Errno> {
        let len = preload::page_align(len as u64) as usize;
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing,
        // owned by the Mapping from here on.
        let addr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | flags,
            )
        }?;
        Ok(Self { base: NonNull::new(addr.cast::<u8>()).ok_or(Errno::NOMEM)?, len })
    }

    /// The first byte, for owners that keep several parts in one mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// All of it.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes mapped read-write in `new`; `&mut self` is the only way in.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; no borrow of it outlives the Mapping.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// All-zero bytes are a valid value of the type.
pub unsafe trait Zeroable {}

/// Storage that only some launches need, mapped (zero-filled) on first use: in the stack frame
/// it would cost every launch a page fault for each of its pages. `release` unmaps it.
pub struct Lazy<T: Zeroable> {
    mapped: Option<NonNull<T>>,
}

impl<T: Zeroable> Lazy<T> {
    pub const fn new() -> Self {
        Self { mapped: None }
    }

    /// The storage: all zero when first mapped, then as last written.
    pub fn get(&mut self) -> Result<&mut T, Errno> {
        let ptr = match self.mapped {
            Some(ptr) => ptr,
            None => {
                // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing.
                let addr = unsafe {
                    rustix::mm::mmap_anonymous(
                        core::ptr::null_mut(),
                        size_of::<T>(),
                        ProtFlags::READ | ProtFlags::WRITE,
                        MapFlags::PRIVATE,
                    )
                }?;
                let ptr = NonNull::new(addr.cast::<T>()).ok_or(Errno::NOMEM)?;
                self.mapped = Some(ptr);
                ptr
            }
        };
        // SAFETY: the mapping is page-aligned (more than any T here needs) and size_of::<T>()
        // bytes, zero (a valid T, as Zeroable promises) or a T written through this reference;
        // only `&mut self` reaches it.
        Ok(unsafe { &mut *ptr.as_ptr() })
    }

    /// Unmap the storage; `&mut self` proves nothing borrows it.
    pub fn release(&mut self) {
        if let Some(ptr) = self.mapped.take() {
            // SAFETY: the mapping `get` made, of this size, no longer referred to.
            let _ = unsafe { rustix::mm::munmap(ptr.as_ptr().cast(), size_of::<T>()) };
        }
    }
}
