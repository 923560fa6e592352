//! x86_64 entry, self-relocation and the final jump: the only assembly in the preloader.

use core::arch::{asm, naked_asm};

/// The kernel enters here with rsp at argc. Before any Rust code runs (Rust code reads globals
/// through the GOT), apply our own R_X86_64_RELATIVE relocations: the binary is linked at vaddr
/// 0, so `__ehdr_start` is the load bias, and `_DYNAMIC` gives DT_RELA/DT_RELASZ.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "mov rdi, rsp",
        "lea r8, [rip + __ehdr_start]",
        "lea rcx, [rip + _DYNAMIC]",
        "xor esi, esi",
        "xor edx, edx",
        // Find DT_RELA (7) and DT_RELASZ (8) in the dynamic section.
        "2:",
        "mov rax, [rcx]",
        "test rax, rax",
        "jz 5f",
        "cmp rax, 7",
        "jne 3f",
        "mov rsi, [rcx + 8]",
        "3:",
        "cmp rax, 8",
        "jne 4f",
        "mov rdx, [rcx + 8]",
        "4:",
        "add rcx, 16",
        "jmp 2b",
        // Apply each RELATIVE entry: *(bias + r_offset) = bias + r_addend.
        "5:",
        "add rsi, r8",
        "add rdx, rsi",
        "6:",
        "cmp rsi, rdx",
        "jae 8f",
        "cmp dword ptr [rsi + 8], 8",
        "jne 7f",
        "mov rax, [rsi + 16]",
        "add rax, r8",
        "mov rcx, [rsi]",
        "mov [rcx + r8], rax",
        "7:",
        "add rsi, 24",
        "jmp 6b",
        // rsp is 16-aligned here, so the callee sees the ABI's entry alignment.
        "8:",
        "xor ebp, ebp",
        "call {main}",
        "ud2",
        main = sym crate::preload_main,
    )
}

/// exit_group(2); rustix keeps its exit private.
pub fn exit(status: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe { asm!("syscall", in("rax") 231, in("rdi") status, options(noreturn, nostack)) }
}

/// Copy the stack image onto the real stack, unmap the scratch buffer it was built in, and
/// enter the program in the state the kernel leaves: rsp at argc, every general register zero,
/// default x87 and SSE control state, zeroed xmm registers, rflags 0x202.
///
/// # Safety
/// `image` holds `len` bytes to be copied to `sp`, the top of the real stack; `scratch` and
/// `scratch_len` are an anonymous mapping owned by nobody else; `entry` is mapped code. Nothing
/// of the caller's stack is used again.
pub unsafe fn enter(image: *const u8, sp: u64, len: usize, scratch: *mut u8, scratch_len: usize, entry: u64) -> ! {
    // SAFETY: the caller's contract; the asm uses no memory but the destination and the 16 bytes
    // below it, and never returns.
    unsafe {
        asm!(
            "mov rsp, rdi",
            "rep movsb",
            "mov rdi, r8",
            "mov rsi, r9",
            "mov eax, 11",
            "syscall",
            "push r10",
            "push 0x202",
            "mov dword ptr [rsp - 8], 0x1f80",
            "ldmxcsr [rsp - 8]",
            "mov qword ptr [rsp - 8], 0",
            "fninit",
            "pxor xmm0, xmm0", "pxor xmm1, xmm1", "pxor xmm2, xmm2", "pxor xmm3, xmm3",
            "pxor xmm4, xmm4", "pxor xmm5, xmm5", "pxor xmm6, xmm6", "pxor xmm7, xmm7",
            "pxor xmm8, xmm8", "pxor xmm9, xmm9", "pxor xmm10, xmm10", "pxor xmm11, xmm11",
            "pxor xmm12, xmm12", "pxor xmm13, xmm13", "pxor xmm14, xmm14", "pxor xmm15, xmm15",
            "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx",
            "xor esi, esi", "xor edi, edi", "xor ebp, ebp",
            "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
            "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
            "popfq",
            "ret",
            in("rdi") sp,
            in("rsi") image,
            in("rcx") len,
            in("r8") scratch,
            in("r9") scratch_len,
            in("r10") entry,
            options(noreturn),
        )
    }
}
