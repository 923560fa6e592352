//! The process as the kernel shows and sets it: /proc/self/maps and PR_SET_MM_MAP.

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

/// `prctl(PR_SET_MM, PR_SET_MM_MAP, map)`: the mm fields, the saved auxv and (unless
/// `exe_fd` is -1) /proc/self/exe, all at once or nothing.
pub fn set_mm_map(map: &PrctlMmMap) -> Result<(), Errno> {
    // SAFETY: the fields only change what /proc reports and where brk grows; the kernel copies
    // `auxv_size` bytes from `auxv` (EFAULT if unreadable) and changes no mapping.
    unsafe { rustix::process::configure_virtual_memory_map(map) }
}

/// `unshare(CLONE_NEWUSER)`: the process moves into a new user namespace, child of its own,
/// with every capability there and its ids unmapped until uid_map and gid_map are written.
pub fn unshare_user_namespace() -> Result<(), Errno> {
    // SAFETY: CLONE_NEWUSER alone (which implies CLONE_THREAD and CLONE_FS, refused with EINVAL
    // when shared): the descriptor table is not unshared, so no descriptor changes meaning, and
    // the preloader has no other thread.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }
}

/// Write `text` to the process file `path` (uid_map, gid_map, setgroups) in the single write
/// those files take.
pub fn write_proc_file(path: &core::ffi::CStr, text: &[u8]) -> Result<(), Errno> {
    let fd = rustix::fs::openat(CWD, path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    loop {
        match rustix::io::write(&fd, text) {
            Ok(n) if n == text.len() => return Ok(()),
            Ok(_) => return Err(Errno::IO),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}
