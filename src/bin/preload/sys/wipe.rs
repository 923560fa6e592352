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

/// Zero what the stub's SSE reset leaves of the vector registers: the cipher's AVX2 and AVX-512
/// backends (chosen at run time) keep its state, the key's words among it, in the upper parts
/// of ymm/zmm0-15 and in zmm16-31, which the program would otherwise start with (a plain exec
/// starts it with all of them zero). Only what this CPU and kernel have: `vzeroall` with AVX
/// (ymm0-15, and zmm0-15 whole), zmm16-31 and the mask registers with AVX-512.
#[inline(never)]
pub fn vector_registers() {
    let (avx, avx512) = vector_state();
    if avx {
        // SAFETY: the CPU has AVX and the kernel keeps its state (vector_state); the registers
        // are declared clobbered, and nothing of the caller lives in them.
        unsafe { zero_avx() };
    }
    if avx512 {
        // SAFETY: as above, for AVX-512.
        unsafe { zero_avx512() };
    }
}

/// Whether AVX, and AVX-512F, can be used: CPUID says the CPU has them and the OS has enabled
/// XSAVE, and XCR0 has their state components (SSE and AVX; and opmask, ZMM_Hi256, Hi16_ZMM).
fn vector_state() -> (bool, bool) {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let leaf1 = __cpuid(1);
    let (osxsave, avx) = (leaf1.ecx & (1 << 27) != 0, leaf1.ecx & (1 << 28) != 0);
    if !(osxsave && avx) {
        return (false, false);
    }
    // SAFETY: OSXSAVE is set, so XGETBV is enabled.
    let xcr0 = unsafe { xcr0() };
    let avx512f = __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ebx & (1 << 16) != 0;
    (xcr0 & 0x6 == 0x6, avx512f && xcr0 & 0xe6 == 0xe6)
}

/// # Safety
/// CPUID.1:ECX.OSXSAVE is set.
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: the caller's contract.
    unsafe { core::arch::x86_64::_xgetbv(0) }
}

/// # Safety
/// The CPU has AVX and XCR0 enables its state.
#[target_feature(enable = "avx")]
unsafe fn zero_avx() {
    // SAFETY: the caller's contract; every register it changes is declared.
    unsafe {
        core::arch::asm!(
            "vzeroall",
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nomem, nostack, preserves_flags),
        )
    };
}

/// # Safety
/// The CPU has AVX-512F and XCR0 enables its state.
#[target_feature(enable = "avx512f")]
unsafe fn zero_avx512() {
    // SAFETY: the caller's contract; every register it changes is declared (k0 is written only
    // by the template: it cannot be an operand).
    unsafe {
        core::arch::asm!(
            "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18", "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20", "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22", "vpxord zmm23, zmm23, zmm23",
            "vpxord zmm24, zmm24, zmm24", "vpxord zmm25, zmm25, zmm25",
            "vpxord zmm26, zmm26, zmm26", "vpxord zmm27, zmm27, zmm27",
            "vpxord zmm28, zmm28, zmm28", "vpxord zmm29, zmm29, zmm29",
            "vpxord zmm30, zmm30, zmm30", "vpxord zmm31, zmm31, zmm31",
            "kxorw k0, k0, k0", "kxorw k1, k1, k1", "kxorw k2, k2, k2", "kxorw k3, k3, k3",
            "kxorw k4, k4, k4", "kxorw k5, k5, k5", "kxorw k6, k6, k6", "kxorw k7, k7, k7",
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            out("zmm28") _, out("zmm29") _, out("zmm30") _, out("zmm31") _,
            out("k1") _, out("k2") _, out("k3") _, out("k4") _, out("k5") _, out("k6") _, out("k7") _,
            options(nomem, nostack, preserves_flags),
        )
    };
}
