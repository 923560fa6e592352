//! The process as the kernel shows and sets it: /proc/self/maps and PR_SET_MM_MAP; and the
//! kernel's own exec check of a file.

use core::arch::asm;
use core::ffi::{CStr, c_char};

use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::PrctlMmMap;

use super::io;

/// Room for /proc/self/maps at launch time (a few dozen lines).
pub const MAPS_BUFFER: usize = 16384;

/// Read /proc/self/maps into `buf`; returns the length, or `buf.len()` if it may not all fit
/// (0 if it cannot be read).
pub fn read_maps(buf: &mut [u8]) -> usize {
    match rustix::fs::openat(CWD, c"/proc/self/maps", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => io::read_to_fill(&fd, buf).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Read /proc/self/maps through `buf` a window at a time, each window starting with the whole
/// lines of the previous one's second half, until `find` finds what it looks for in one: for
/// mappings that a program of thousands of segments pushes past what [`read_maps`] reads. A run
/// of adjacent lines shorter than half of `buf` is whole in some window. None if no window has
/// it, or the maps cannot be read.
pub fn scan_maps<T>(buf: &mut [u8], mut find: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let fd = rustix::fs::openat(CWD, c"/proc/self/maps", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            if let Some(found) = find(buf) {
                return Some(found);
            }
            len = preload::plan::reserve::keep_last_lines(buf);
        }
        match io::read(&fd, &mut buf[len..]) {
            Ok(0) | Err(_) => return find(&buf[..len]),
            Ok(n) => len += n,
        }
    }
}

/// `prctl(PR_SET_MM, PR_SET_MM_MAP, map)`: the mm fields, the saved auxv and (unless
/// `exe_fd` is -1) /proc/self/exe, all at once or nothing.
pub fn set_mm_map(map: &PrctlMmMap) -> Result<(), Errno> {
    // SAFETY: the fields only change what /proc reports and where brk grows; the kernel copies
    // `auxv_size` bytes from `auxv` (EFAULT if unreadable) and changes no mapping.
    unsafe { rustix::process::configure_virtual_memory_map(map) }
}

/// A system call rustix does not offer, with five arguments; returns the raw result (a
/// negative errno on failure).
///
/// # Safety
/// The call, with these arguments, must not touch memory other than what they describe as the
/// kernel's ABI for `nr` says, and that memory must be valid for it.
pub(crate) unsafe fn syscall5(nr: usize, args: [usize; 5]) -> isize {
    let ret: isize;
    // SAFETY: the caller's contract; `syscall` clobbers rcx and r11 only.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// execveat's flag that checks a file without executing it (Linux 6.14).
const AT_EXECVE_CHECK: usize = 0x10000;
const AT_EMPTY_PATH: usize = 0x1000;
const SYS_EXECVEAT: usize = 322;
const SYS_PRCTL: usize = 157;

/// Ask the kernel whether the open file `fd` may be executed, with every check a real exec of it
/// makes (a regular file, execute permission, a noexec mount, a file open for writing, LSM and
/// IMA exec policy): `execveat(fd, "", [name], [], AT_EMPTY_PATH | AT_EXECVE_CHECK)`. Nothing is
/// executed. Kernels before 6.14 answer EINVAL (the flag is unknown), before 3.19 ENOSYS.
pub fn execve_check(fd: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    let argv: [*const c_char; 2] = [name.as_ptr(), core::ptr::null()];
    let envp: [*const c_char; 1] = [core::ptr::null()];
    let args = [fd.as_raw_fd() as usize, c"".as_ptr() as usize, argv.as_ptr() as usize, envp.as_ptr() as usize];
    // SAFETY: execveat with AT_EXECVE_CHECK returns without executing anything, and every kernel
    // since execveat exists (3.19) refuses a flag it does not know with EINVAL before it opens the
    // file; the kernel only reads the NUL-terminated path and the two NULL-terminated arrays,
    // which outlive the call.
    let ret = unsafe { syscall5(SYS_EXECVEAT, [args[0], args[1], args[2], args[3], AT_EMPTY_PATH | AT_EXECVE_CHECK]) };
    match ret {
        0 => Ok(()),
        -4095..=-1 => Err(Errno::from_raw_os_error(-ret as i32)),
        _ => Err(Errno::IO),
    }
}

/// Why PR_SET_MM_MAP would be refused altogether, asked without changing anything: a seccomp
/// filter on prctl(PR_SET_MM), a kernel without CONFIG_CHECKPOINT_RESTORE (EINVAL).
pub fn mm_map_refused() -> Option<Errno> {
    const PR_SET_MM: usize = 35;
    const PR_SET_MM_MAP_SIZE: usize = 15;
    let mut size = 0u32;
    // SAFETY: PR_SET_MM_MAP_SIZE only writes the structure's size into the u32 it is given.
    let ret = unsafe { syscall5(SYS_PRCTL, [PR_SET_MM, PR_SET_MM_MAP_SIZE, (&raw mut size) as usize, 0, 0]) };
    (ret < 0).then(|| Errno::from_raw_os_error(-ret as i32))
}

/// Whether PR_SET_MDWE's PR_MDWE_REFUSE_EXEC_GAIN is in force (systemd's
/// MemoryDenyWriteExecute=yes): no memory may become executable after it was mapped.
pub fn refuses_exec_gain() -> bool {
    const PR_GET_MDWE: usize = 66;
    // SAFETY: prctl(PR_GET_MDWE, 0, 0, 0, 0) only reads a flag (EINVAL before Linux 6.3).
    let ret = unsafe { syscall5(SYS_PRCTL, [PR_GET_MDWE, 0, 0, 0, 0]) };
    ret > 0 && ret & 1 != 0
}
