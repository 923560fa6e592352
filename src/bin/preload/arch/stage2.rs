//! The stage-2 stub: the final operations (`preload::plan::finish`), run after the preloader has
//! stepped aside.
//!
//! Position-independent machine code without relocations and without data of its own: its
//! bytes are copied into a memfd and mapped PROT_READ|PROT_EXEC (never writable there, allowed
//! under PR_SET_MDWE) away from everything the program will map, or, when no such page can be
//! made, run in place in the preloader's own text. It is entered with rdi = the
//! [`Header`](preload::plan::finish::Header) and uses no stack until the jump:
//!
//! 1. each op: a system call with its six arguments (or the zeroing pseudo-op); on a failure
//!    marked fatal, write the prepared message to stderr and exit_group(127), as the kernel ends
//!    a process that fails past its point of no return; otherwise skip as the op's flags say;
//! 2. copy the stack image to the real stack, unmap the hand-off it was in, and enter the program
//!    in the state the kernel leaves: rsp at argc, every general register zero, default x87 and
//!    SSE control state, zeroed xmm registers, rflags 0x202; an i386 program in 32-bit mode, by a
//!    far jump to the header's code segment, with ds and es the user data segment.

use core::arch::{asm, global_asm};

use preload::plan::finish::{Header, USER_DS};

global_asm!(
    ".pushsection .text.stage2,\"ax\",@progbits",
    ".globl preload_stage2",
    ".hidden preload_stage2",
    ".globl preload_stage2_end",
    ".hidden preload_stage2_end",
    ".p2align 4",
    "preload_stage2:",
    "mov r15, rdi",
    "mov r13, [r15]",
    "mov r14, [r15 + 8]",
    // The ops: r13 the current one, r14 how many are left.
    "2:",
    "test r14, r14",
    "jz 8f",
    "mov rbx, [r13 + 56]",
    "bt rbx, 17",
    "jc 5f",
    "mov rax, [r13]",
    "mov rdi, [r13 + 8]",
    "mov rsi, [r13 + 16]",
    "mov rdx, [r13 + 24]",
    "mov r10, [r13 + 32]",
    "mov r8, [r13 + 40]",
    "mov r9, [r13 + 48]",
    "syscall",
    "cmp rax, -4095",
    "jae 3f",
    "movzx ecx, bl",
    "jmp 6f",
    "3:",
    "bt rbx, 16",
    "jc 7f",
    "movzx ecx, bh",
    "jmp 6f",
    // Zero args[1] bytes at args[0].
    "5:",
    "mov rdi, [r13 + 8]",
    "mov rcx, [r13 + 16]",
    "xor eax, eax",
    "rep stosb",
    "xor ecx, ecx",
    // Advance past this op and the ones to skip.
    "6:",
    "inc rcx",
    "cmp rcx, r14",
    "jae 8f",
    "sub r14, rcx",
    "shl rcx, 6",
    "add r13, rcx",
    "jmp 2b",
    // A fatal failure: the prepared message, then exit_group(127).
    "7:",
    "mov eax, 1",
    "mov edi, 2",
    "mov rsi, [r15 + 16]",
    "mov rdx, [r15 + 24]",
    "syscall",
    "mov eax, 231",
    "mov edi, 127",
    "syscall",
    "ud2",
    // The stack image onto the stack, the hand-off unmapped (if any), the jump.
    "8:",
    "mov rsi, [r15 + 32]",
    "mov rcx, [r15 + 40]",
    "mov rdi, [r15 + 48]",
    "mov rsp, rdi",
    "rep movsb",
    "mov r10, [r15 + 72]",
    "mov r9, [r15 + 80]",
    "mov rdi, [r15 + 56]",
    "mov rsi, [r15 + 64]",
    "test rsi, rsi",
    "jz 9f",
    "mov eax, 11",
    "syscall",
    // The entry, [sp - 8], for a near return; for an i386 program a far pointer below it,
    // offset [sp - 24] and code segment [sp - 20] (0 otherwise), with ds and es its data segment.
    "9:",
    "push r10",
    "push 0x202",
    "mov [rsp - 8], r10d",
    "mov [rsp - 4], r9w",
    "test r9d, r9d",
    "jz 10f",
    "mov eax, {user_ds}",
    "mov ds, eax",
    "mov es, eax",
    "10:",
    "mov dword ptr [rsp - 16], 0x1f80",
    "ldmxcsr [rsp - 16]",
    "mov qword ptr [rsp - 16], 0",
    "fninit",
    "pxor xmm0, xmm0",
    "pxor xmm1, xmm1",
    "pxor xmm2, xmm2",
    "pxor xmm3, xmm3",
    "pxor xmm4, xmm4",
    "pxor xmm5, xmm5",
    "pxor xmm6, xmm6",
    "pxor xmm7, xmm7",
    "pxor xmm8, xmm8",
    "pxor xmm9, xmm9",
    "pxor xmm10, xmm10",
    "pxor xmm11, xmm11",
    "pxor xmm12, xmm12",
    "pxor xmm13, xmm13",
    "pxor xmm14, xmm14",
    "pxor xmm15, xmm15",
    "xor eax, eax",
    "xor ebx, ebx",
    "xor ecx, ecx",
    "xor edx, edx",
    "xor esi, esi",
    "xor edi, edi",
    "xor ebp, ebp",
    "xor r8d, r8d",
    "xor r9d, r9d",
    "xor r10d, r10d",
    "xor r11d, r11d",
    "xor r12d, r12d",
    "xor r13d, r13d",
    "xor r14d, r14d",
    "xor r15d, r15d",
    "cmp word ptr [rsp - 4], 0",
    "jne 11f",
    "popfq",
    "ret",
    // A far jump, not an iretq: qemu's TCG before 9.1 pops an iretq frame with the kernel's
    // privilege, which SMAP refuses (README, "32-bit (i386) programs"). lea keeps the flags.
    "11:",
    "popfq",
    "lea rsp, [rsp + 8]",
    "jmp fword ptr [rsp - 24]",
    "preload_stage2_end:",
    ".popsection",
    user_ds = const USER_DS,
);

unsafe extern "C" {
    static preload_stage2: u8;
    static preload_stage2_end: u8;
}

/// The stub's machine code, as linked into the preloader's text.
pub fn code() -> &'static [u8] {
    // SAFETY: both symbols are defined above, in this order, in one section of the text load.
    unsafe {
        let start = &raw const preload_stage2;
        let end = &raw const preload_stage2_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

/// Run the stub at `stub` (its copy, or `code()` itself) with `header`.
///
/// # Safety
/// `stub` holds the stub's code, executable; `header` and everything its ops point to are
/// complete and stay mapped until the ops unmap them; nothing of the caller's stack is used
/// again (the image is copied over it).
pub unsafe fn run(stub: *const u8, header: *const Header) -> ! {
    // SAFETY: the caller's contract.
    unsafe { asm!("jmp {stub}", stub = in(reg) stub, in("rdi") header, options(noreturn)) }
}
