//! Reading and writing descriptors, each loop retrying on EINTR in this one place.

use rustix::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;

pub const STDOUT: i32 = 1;
pub const STDERR: i32 = 2;

/// Write all of `bytes` to stdout or stderr, giving up silently on error: there is nowhere to
/// report it.
pub fn print(fd: i32, bytes: &[u8]) {
    // SAFETY: only borrowed for the writes; a closed descriptor just fails with EBADF.
    let _ = write_all(unsafe { BorrowedFd::borrow_raw(fd) }, bytes);
}

/// Write all of `bytes`, in as many writes as it takes.
pub fn write_all(fd: impl AsFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(&fd, bytes) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// One read, retried when a signal interrupts it; 0 at the end.
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::read(&fd, &mut *buf) {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Read until `buf` is full or the end; returns the length read.
pub fn read_to_fill(fd: impl AsFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut len = 0;
    while len < buf.len() {
        match read(&fd, &mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    Ok(len)
}

/// Wait until `fd` can be read (or is at its end, or in error), at most `seconds` (without
/// limit if negative): false when the time ran out. Retried when a signal interrupts it.
pub fn wait_readable(fd: impl AsFd, seconds: i64) -> Result<bool, Errno> {
    let timeout = rustix::event::Timespec { tv_sec: seconds, tv_nsec: 0 };
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, (seconds >= 0).then_some(&timeout)) {
            Ok(ready) => return Ok(ready > 0),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// Fill `buf` from the start of the file at `path` (EIO if it is shorter).
pub fn read_file(path: &core::ffi::CStr, buf: &mut [u8]) -> Result<(), Errno> {
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    match read_to_fill(&fd, buf)? {
        n if n == buf.len() => Ok(()),
        _ => Err(Errno::IO),
    }
}

/// One positioned read, retried when a signal interrupts it.
pub fn pread(fd: impl AsFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    loop {
        match rustix::io::pread(&fd, &mut *buf, offset) {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Read all of `buf` from `offset`; EIO if the file ends first.
pub fn pread_exact(fd: impl AsFd, mut offset: u64, mut buf: &mut [u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match pread(&fd, buf, offset)? {
            0 => return Err(Errno::IO),
            n => {
                offset += n as u64;
                buf = &mut buf[n..];
            }
        }
    }
    Ok(())
}

/// A close-on-exec duplicate (numbered 3 or above) of descriptor `fd` inherited from the caller.
pub fn dup_inherited(fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: only borrowed for the dup; a number that is not open fails with EBADF.
    rustix::io::fcntl_dupfd_cloexec(unsafe { BorrowedFd::borrow_raw(fd) }, 3)
}

/// Close descriptor `fd`, inherited from the caller and handed to the preloader (by --fd, or as
/// the key's), so that the program does not inherit it.
pub fn close_inherited(fd: i32) {
    if fd > 2 {
        // SAFETY: the caller handed this descriptor over, and nothing here holds it as an
        // OwnedFd: closing it ends no other owner's use.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}
