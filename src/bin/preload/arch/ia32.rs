//! The SIGSEGV handler that lets the preloader ask whether the kernel makes compat system calls
//! (the entry into an i386 program is the stage-2 stub's, `arch/stage2.rs`).

use core::arch::naked_asm;

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
