//! What only an i386 program needs from the kernel: a compat system call from 64-bit code (the
//! kernel's choice of address in the compat mmap area), the 32-bit vDSO, and a stack that grows
//! down below 4 GiB.

use core::arch::asm;
use core::ffi::c_void;

use preload::plan::ia32::{is_vdso_mapping, span_of};
use preload::plan::stack::Vdso32;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use super::mem;
use super::proc::{MAPS_BUFFER, scan_maps, syscall5};

/// Room the first 32-bit vDSO mapping is given, before its size is known.
const VDSO_PROBE: u64 = 1 << 20;

/// __NR_ia32_mmap2 and __NR_ia32_getpid.
const IA32_MMAP2: u32 = 192;
const IA32_GETPID: u32 = 20;
/// __NR_rt_sigaction, __NR_rt_sigprocmask, __NR_personality, __NR_arch_prctl.
const RT_SIGACTION: usize = 13;
const RT_SIGPROCMASK: usize = 14;
const PERSONALITY: usize = 135;
const ARCH_PRCTL: usize = 158;
/// READ_IMPLIES_EXEC.
pub const READ_IMPLIES_EXEC: u64 = 0x0040_0000;
/// ARCH_MAP_VDSO_32.
const ARCH_MAP_VDSO_32: usize = 0x2002;
const SIGSEGV: usize = 11;
const SIG_UNBLOCK: usize = 1;
const SIG_SETMASK: usize = 2;
const SA_SIGINFO: u64 = 4;
const SA_RESTORER: u64 = 0x0400_0000;

/// The kernel's `struct sigaction` on x86_64.
#[repr(C)]
#[derive(Default)]
struct SigAction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// A raw result: a negative errno, or the value.
fn result(raw: isize) -> Result<usize, Errno> {
    match raw {
        -4095..=-1 => Err(Errno::from_raw_os_error(-raw as i32)),
        value => Ok(value as usize),
    }
}

/// `int 0x80` with eax = `nr` and the other arguments zero, or `mmap2`'s from `args` (ecx, edx,
/// esi, edi; ebx and ebp zero); returns eax.
///
/// # Safety
/// The compat system call `nr` with these arguments touches no memory of the preloader's.
unsafe fn int80(nr: u32, args: [u32; 4]) -> u32 {
    let result: u32;
    // SAFETY: the caller's contract. rbx and rbp cannot be asm operands, so they are saved and
    // set inside; int 0x80 returns in eax and clears r8-r11.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "xor ebx, ebx",
            "xor ebp, ebp",
            "int 0x80",
            "pop rbp",
            "pop rbx",
            inout("eax") nr => result,
            in("ecx") args[0],
            in("edx") args[1],
            in("esi") args[2],
            in("edi") args[3],
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        )
    };
    result
}

/// Whether the kernel makes compat system calls, which is whether it runs i386 programs at all:
/// with its IA32 emulation switched off (`ia32_emulation=0`, 6.7+) or built without it, `int
/// 0x80` has no gate (a general protection fault, SIGSEGV) and its own exec refuses them
/// (ENOEXEC). Asked with a compat getpid, SIGSEGV caught and unblocked for the time of it, then
/// its action and the signal mask restored.
pub fn ia32_emulation() -> Result<bool, Errno> {
    let unblock = 1u64 << (SIGSEGV - 1);
    let mut mask = 0u64;
    // SAFETY: rt_sigprocmask(SIG_UNBLOCK, &unblock, &mask, 8) reads and writes the two words.
    result(unsafe {
        syscall5(RT_SIGPROCMASK, [SIG_UNBLOCK, (&raw const unblock) as usize, (&raw mut mask) as usize, 8, 0])
    })?;
    let catch = SigAction {
        handler: crate::arch_ia32::skip_int80 as *const () as u64,
        flags: SA_SIGINFO | SA_RESTORER,
        restorer: crate::arch_ia32::sigreturn as *const () as u64,
        mask: 0,
    };
    let mut previous = SigAction::default();
    // SAFETY: rt_sigaction(SIGSEGV, &catch, &previous, 8) reads and writes the two structures;
    // the handler only resumes the probe below.
    let installed = result(unsafe {
        syscall5(RT_SIGACTION, [SIGSEGV, (&raw const catch) as usize, (&raw mut previous) as usize, 8, 0])
    });
    // SAFETY: getpid touches no memory; where it faults, the handler resumes after it with 0.
    let pid = installed.map(|_| unsafe { int80(IA32_GETPID, [0; 4]) });
    if installed.is_ok() {
        // SAFETY: the action found before, put back.
        result(unsafe { syscall5(RT_SIGACTION, [SIGSEGV, (&raw const previous) as usize, 0, 8, 0]) })?;
    }
    // SAFETY: the mask found before, put back.
    result(unsafe { syscall5(RT_SIGPROCMASK, [SIG_SETMASK, (&raw const mask) as usize, 0, 8, 0]) })?;
    Ok(pid? != 0)
}

/// Where a compat mmap of `len` bytes with no address goes: the top-down slot in the compat mmap
/// area (`mm->mmap_compat_base`, below 4 GiB) that the kernel's IA32 exec would give the
/// interpreter, a static-pie or the vDSO. Found by mapping `len` bytes of PROT_NONE there with
/// `int 0x80` (which makes a compat system call from 64-bit code too) and unmapping them again.
pub fn compat_slot(len: u64) -> Result<u64, Errno> {
    let len = u32::try_from(len).map_err(|_| Errno::NOMEM)?;
    let flags = MapFlags::PRIVATE.bits() | 0x20 /* MAP_ANONYMOUS */ | MapFlags::NORESERVE.bits();
    // SAFETY: mmap2(NULL, len, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) makes
    // a new mapping where nothing is mapped.
    let result = unsafe { int80(IA32_MMAP2, [len, 0, flags, u32::MAX]) };
    if result > (-4096i32) as u32 {
        return Err(Errno::from_raw_os_error(-(result as i32)));
    }
    let addr = u64::from(result);
    // SAFETY: the mapping just made, which nothing refers to.
    unsafe { rustix::mm::munmap(addr as *mut c_void, len as usize) }?;
    Ok(addr)
}

/// `arch_prctl(ARCH_MAP_VDSO_32, hint)`: map the 32-bit vDSO (with its vvar pages below it) at
/// `hint` if that is free; returns the size of the vDSO image. Fails while a vDSO is mapped.
///
/// # Safety
/// Nothing of the preloader uses the vDSO (it calls the kernel directly), and whatever is
/// mapped at the kernel's fallback address belongs to no one.
pub unsafe fn map_vdso_32(hint: u64) -> Result<u64, Errno> {
    // SAFETY: the caller's contract; arch_prctl only adds the vDSO mappings.
    result(unsafe { syscall5(ARCH_PRCTL, [ARCH_MAP_VDSO_32, hint as usize, 0, 0, 0]) }).map(|size| size as u64)
}

fn personality(persona: u64) -> Result<usize, Errno> {
    // SAFETY: personality(2) changes only the execution domain flags of this process.
    result(unsafe { syscall5(PERSONALITY, [persona as usize, 0, 0, 0, 0]) })
}

/// Add `flags` to the process's personality (as `elf_read_implies_exec` adds READ_IMPLIES_EXEC
/// before anything of the program is mapped).
pub fn add_personality(flags: u64) -> Result<(), Errno> {
    let current = personality(0xffff_ffff)?;
    personality(current as u64 | flags).map(|_| ())
}

/// The span of the vDSO's mappings ([vvar], [vvar_vclock], [vdso]) and where [vdso] starts.
fn vdso_span() -> Option<(preload::plan::reserve::Range, u64)> {
    let mut maps = [0u8; MAPS_BUFFER];
    // The program, mapped by now, may have thousands of segments around the vDSO.
    scan_maps(&mut maps, |window| span_of(window, is_vdso_mapping, b"[vdso]"))
}

/// Replace the 64-bit vDSO with the 32-bit one, at the slot a compat exec gives it: the top-down
/// slot of the compat mmap area below the lowest mapping so far (below the interpreter, or at the
/// top of the area for a static program). Its size is learnt from a first mapping in a larger
/// slot, which is then unmapped. Returns its base and `__kernel_vsyscall` (its ELF entry).
pub fn replace_vdso() -> Result<Vdso32, Errno> {
    if let Some((span, _)) = vdso_span() {
        // SAFETY: the preloader never calls into the vDSO (it makes every system call itself).
        unsafe { mem::unmap(span.start, span.len()) }?;
    }
    let probe = compat_slot(VDSO_PROBE)?;
    // SAFETY: no vDSO is mapped and nothing uses one; `probe` is free.
    unsafe { map_vdso_32(probe) }?;
    let (span, _) = vdso_span().ok_or(Errno::NOENT)?;
    // SAFETY: the mappings just made, which nothing uses yet.
    unsafe { mem::unmap(span.start, span.len()) }?;
    let slot = compat_slot(span.len())?;
    // SAFETY: as above; the slot was free a moment ago.
    unsafe { map_vdso_32(slot) }?;
    let (span, base) = vdso_span().ok_or(Errno::NOENT)?;
    if span.start != slot {
        return Err(Errno::NOMEM);
    }
    let mut header = [0u8; 28];
    // SAFETY: the 32-bit vDSO begins with its ELF header, mapped readable.
    unsafe { mem::read(base, &mut header) };
    let entry = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    Ok(Vdso32 { base, entry: base + u64::from(entry) })
}

/// Map the `len` bytes below `top` as a stack that grows down (MAP_GROWSDOWN, as the kernel's
/// [stack] VMA), read-write, plus exec for an executable stack; never over anything.
pub fn map_stack(top: u64, len: u64, exec: bool) -> Result<u64, Errno> {
    let prot = ProtFlags::READ | ProtFlags::WRITE | if exec { ProtFlags::EXEC } else { ProtFlags::empty() };
    let flags = MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE | MapFlags::GROWSDOWN;
    // SAFETY: a new mapping where nothing is mapped (FIXED_NOREPLACE).
    let addr = unsafe { rustix::mm::mmap_anonymous((top - len) as *mut c_void, len as usize, prot, flags) }?;
    Ok(addr as u64)
}
