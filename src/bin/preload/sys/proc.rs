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
