//! User namespaces (`--userns`): entering a new one, and writing its id maps.

use core::ffi::CStr;

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;

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
pub fn write_proc_file(path: &CStr, text: &[u8]) -> Result<(), Errno> {
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
