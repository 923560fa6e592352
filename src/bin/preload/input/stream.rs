//! Taking in a program that arrives as a stream: every byte goes, as it arrives, into a sealed
//! memfd named after the program, which becomes /proc/self/exe where the kernel allows
//! executable memfds. Nothing is written to any file system. The segments are then copied
//! from the memfd into anonymous memory (see `load::map`): at most the program and one copy.

use preload::cstr;
use preload::input::stream::{self, ByteStream, Limit};
use preload::report::msg::Msg;
use preload::report::refusal::Refusal;
use rustix::fd::OwnedFd;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::MapFlags;
use rustix::process::Resource;

use crate::sys::io;
use crate::sys::mem::Mapping;

/// How much of a stream is in flight at once: a pipe's default capacity.
const WINDOW: usize = 64 * 1024;

/// The longest memfd name (NAME_MAX less the "memfd:" prefix).
const MEMFD_NAME_MAX: usize = 249;

/// The memfd holding a streamed program.
#[derive(Clone, Copy, Debug)]
pub struct Memfd {
    /// The kernel allowed an executable memfd, so it can become /proc/self/exe; otherwise
    /// (vm.memfd_noexec) carries why not.
    pub exec_refused: Option<Errno>,
}

/// A descriptor read to its end.
pub struct FdStream(OwnedFd);

impl FdStream {
    pub fn new(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

impl ByteStream for FdStream {
    /// A descriptor inherited non-blocking (a socket, say) is waited on with poll when it has
    /// nothing yet: its O_NONBLOCK belongs to the open file description the caller shares, and
    /// is left as the caller set it.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Refusal> {
        loop {
            match io::read(&self.0, buf) {
                Err(Errno::AGAIN) => {
                    io::wait_readable(&self.0, -1).map_err(|errno| Refusal::from_errno(errno.raw_os_error()))?;
                }
                other => return other.map_err(|errno| Refusal::from_errno(errno.raw_os_error())),
            }
        }
    }
}

/// The stream loader: `stream` to its end into a sealed memfd named after `name`, refused when
/// longer than `max_size` (`--max-size`, or its default) or than RLIMIT_FSIZE allows the memfd
/// (a write past it would raise SIGXFSZ: no byte past it is written).
pub fn load(
    stream: &mut impl ByteStream,
    name: &[u8],
    max_size: Option<u64>,
) -> Result<(OwnedFd, u64, Memfd), Refusal> {
    let limit = Limit::new(max_size, rustix::process::getrlimit(Resource::Fsize).current);
    let (memfd, held) = create(name)?;
    // The bytes in flight, in a mapping of their own (the launch stack stays small).
    let mut window = Mapping::new(WINDOW, MapFlags::empty()).map_err(failure)?;
    let size = stream::drain(stream, window.bytes(), limit, |chunk| io::write_all(&memfd, chunk).map_err(failure))?;
    drop(window);
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    rustix::fs::fcntl_add_seals(&memfd, seals).map_err(failure)?;
    Ok((memfd, size, held))
}

/// A memfd named after the basename of `name`, executable if the kernel allows it.
fn create(name: &[u8]) -> Result<(OwnedFd, Memfd), Refusal> {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    let mut memfd_name = Msg::<{ MEMFD_NAME_MAX + 1 }>::new();
    memfd_name.bytes(&base[..base.len().min(MEMFD_NAME_MAX)]).text("\0");
    let name = cstr(memfd_name.as_bytes());
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    match rustix::fs::memfd_create(name, flags | MemfdFlags::EXEC) {
        Ok(fd) => Ok((fd, Memfd { exec_refused: None })),
        // No memfd at all: before Linux 3.17, or a seccomp filter.
        Err(why @ (Errno::NOSYS | Errno::PERM)) => Err(memfd_refused(why)),
        // Before Linux 6.3 there is no MFD_EXEC, and every memfd is executable.
        Err(Errno::INVAL) => {
            Ok((rustix::fs::memfd_create(name, flags).map_err(memfd_refused)?, Memfd { exec_refused: None }))
        }
        // vm.memfd_noexec=2 refuses executable memfds (EACCES): hold the program all the same.
        Err(why) => Ok((
            rustix::fs::memfd_create(name, flags | MemfdFlags::NOEXEC_SEAL).map_err(memfd_refused)?,
            Memfd { exec_refused: Some(why) },
        )),
    }
}

/// A stream cannot be held without a memfd (preload writes a program to no file system): where
/// memfds are refused, 126, as for a program that cannot be executed, with the reason.
#[cold]
fn memfd_refused(why: Errno) -> Refusal {
    Refusal::cannot_execute(match why {
        Errno::NOSYS => {
            "a program from a stream is held in a memfd, and memfd_create is not available \
             (Function not implemented: before Linux 3.17, or a seccomp filter); give it as a file"
        }
        Errno::PERM => {
            "a program from a stream is held in a memfd, and memfd_create is refused \
             (Operation not permitted: a seccomp filter?); give it as a file"
        }
        // ENOMEM, EMFILE...: a failure of the preloader itself (125).
        _ => return failure(why),
    })
}

fn failure(errno: Errno) -> Refusal {
    Refusal::failure_errno(errno.raw_os_error())
}
