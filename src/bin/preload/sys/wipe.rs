//! Wiping what the unsealing of a sealed program left on the stack: its frames held the key,
//! the cipher's states and the Poly1305 one-time key, and the program's stack is the same
//! mapping, so whatever dead frames keep would be readable to the program (/proc/self/mem, a
//! core dump).

use preload::plan::reserve::{Range, find_in_maps};

use super::proc::{MAPS_BUFFER, read_maps};

/// Without /proc/self/maps, how far below the stack pointer to wipe: well beyond the deepest
/// the unsealing goes (about 100 KiB).
const WITHOUT_MAPS: u64 = 512 << 10;

/// Zero the whole stack below the caller's frames: from the lowest address of the `[stack]`
/// mapping (as far as any frame of the preloader has reached) up to the stack pointer; if
/// /proc/self/maps cannot be read, the [`WITHOUT_MAPS`] bytes below it (the kernel grows the
/// stack over what was never touched).
#[inline(never)]
pub fn dead_stack() {
    let marker = 0u8;
    let low = stack_start().unwrap_or_else(|| (core::ptr::addr_of!(marker) as u64).saturating_sub(WITHOUT_MAPS));
    // SAFETY: everything below the stack pointer, down to the start of the stack's mapping,
    // belongs to frames that have returned: no live reference points there (the preloader has
    // no signal handlers, and the asm block is not `nostack`, so the compiler keeps nothing in
    // the red zone across it). The mapping is writable, and the range ends at its start, so
    // nothing else is written. rep stosb runs forward with the direction flag clear (the ABI's).
    unsafe {
        core::arch::asm!(
            "mov rcx, rsp",
            "sub rcx, rdi",
            "jbe 2f",
            "xor eax, eax",
            "rep stosb",
            "2:",
            inout("rdi") low => _,
            out("rcx") _,
            out("rax") _,
        );
    }
}

/// The start of the mapping that holds the stack pointer, from /proc/self/maps. Out of line, so
/// that its buffer is in a frame of its own, below the caller's, and wiped with the rest.
#[inline(never)]
fn stack_start() -> Option<u64> {
    let mut maps = [0u8; MAPS_BUFFER];
    let len = read_maps(&mut maps);
    let marker = 0u8;
    let sp = core::ptr::addr_of!(marker) as u64;
    find_in_maps(&maps[..len], &Range::new(sp, sp + 1)).map(|(mapping, _)| mapping.start)
}
