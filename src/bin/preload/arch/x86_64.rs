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
