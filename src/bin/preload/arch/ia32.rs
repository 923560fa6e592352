//! The entry into an i386 program: from the preloader's 64-bit code to compat mode; and the
//! SIGSEGV handler that lets the preloader ask whether the kernel makes compat system calls.

use core::arch::{asm, naked_asm};

/// __USER32_CS: the 32-bit user code segment of x86_64 Linux.
const USER32_CS: u64 = 0x23;
/// __USER_DS, which is also __USER32_DS (and already the 64-bit stack segment).
const USER_DS: u64 = 0x2b;

/// Leave the preloader's stack for the program's (already written), unmap the old one, and enter
/// `entry` in 32-bit mode in the state compat `start_thread` leaves: esp at argc, every general
/// register zero, ds/es/ss the user data segment, fs/gs null, default x87 and SSE control state,
/// zeroed xmm registers, eflags 0x202.
///
/// A far jump through a 6-byte pointer below the stack pointer switches modes, not an `iretq`
/// to the 32-bit code segment: qemu's TCG before 9.1 pops an iret or far-return frame with the
/// kernel's privilege, so on a CPU with SMAP the user-mode `iretq` faults in the kernel, which
/// kills the program with SIGKILL (seen under Debian's 6.1 and 6.12 in qemu 7.2). A far jump
/// reads its pointer as an ordinary user load.
///
/// # Safety
/// `sp` is the program's initial stack pointer in a mapped stack with room for 16 bytes below
/// it; `[old_stack, old_stack + old_len)` is the preloader's stack, which nothing is used from
/// any more; `entry` is mapped 32-bit code below 4 GiB.
pub unsafe fn enter(sp: u64, entry: u64, old_stack: u64, old_len: u64) -> ! {
    // SAFETY: the caller's contract; after the switch only the new stack is used.
    unsafe {
        asm!(
            "mov rsp, r12",
            // munmap(old_stack, old_len): nothing is read from the old stack after this.
            "mov eax, 11",
            "syscall",
            // The far pointer (offset, selector) 16 bytes below the stack pointer, below the
            // 8 bytes popfq uses.
            "mov dword ptr [rsp - 16], r13d",
            "mov word ptr [rsp - 12], {cs}",
            "mov dword ptr [rsp - 8], 0x1f80",
            "ldmxcsr [rsp - 8]",
            "fninit",
            "pxor xmm0, xmm0", "pxor xmm1, xmm1", "pxor xmm2, xmm2", "pxor xmm3, xmm3",
            "pxor xmm4, xmm4", "pxor xmm5, xmm5", "pxor xmm6, xmm6", "pxor xmm7, xmm7",
            "pxor xmm8, xmm8", "pxor xmm9, xmm9", "pxor xmm10, xmm10", "pxor xmm11, xmm11",
            "pxor xmm12, xmm12", "pxor xmm13, xmm13", "pxor xmm14, xmm14", "pxor xmm15, xmm15",
            "mov eax, {ds}",
            "mov ds, eax",
            "mov es, eax",
            "xor eax, eax",
            "mov fs, eax",
            "mov gs, eax",
            "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx",
            "xor esi, esi", "xor edi, edi", "xor ebp, ebp",
            "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
            "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
            // After the xors, which set ZF and PF.
            "push 0x202",
            "popfq",
            "jmp fword ptr [rsp - 16]",
            ds = const USER_DS,
            cs = const USER32_CS,
            in("r12") sp,
            in("r13") entry,
            in("rdi") old_stack,
            in("rsi") old_len,
            options(noreturn),
        )
    }
}

/// Offsets in the `ucontext_t` a SA_SIGINFO handler gets: uc_mcontext (after uc_flags, uc_link
/// and the 24-byte uc_stack) holds r8-r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip.
const CONTEXT_RAX: usize = 40 + 13 * 8;
const CONTEXT_RIP: usize = 40 + 16 * 8;

/// The SIGSEGV handler of [`crate::sys::compat::ia32_emulation`]'s probe: the fault is the
/// 2-byte `int 0x80` itself (without IA32 emulation the kernel has no gate for it), so the
/// interrupted code resumes after it with rax 0, which no getpid returns.
///
/// # Safety
/// Installed with SA_SIGINFO and SA_RESTORER (the kernel passes the context in rdx and returns
/// through [`sigreturn`]) only around that `int 0x80`.
#[unsafe(naked)]
pub unsafe extern "C" fn skip_int80() {
    naked_asm!(
        "add qword ptr [rdx + {rip}], 2",
        "mov qword ptr [rdx + {rax}], 0",
        "ret",
        rip = const CONTEXT_RIP,
        rax = const CONTEXT_RAX,
    )
}

/// The restorer a handler returns to: `rt_sigreturn`, which the kernel requires on x86_64.
///
/// # Safety
/// Only the kernel calls it, as a signal handler's return address.
#[unsafe(naked)]
pub unsafe extern "C" fn sigreturn() {
    naked_asm!("mov eax, 15", "syscall", "ud2")
}
