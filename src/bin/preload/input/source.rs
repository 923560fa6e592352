//! Finding and opening what to run, with the checks the kernel's open_exec makes.

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};

use preload::cstr;
use preload::elf::Aligned;
use preload::exec::search::{self, PATH_MAX};
use preload::input::HEAD_SIZE;
use preload::input::stream::{ByteStream, SCRIPT_WITHOUT_PATH};
use preload::report::msg::Msg;
use preload::report::refusal::Refusal;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{Access, AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::MapFlags;

#[cfg(feature = "sealed")]
use crate::input::sealed::Unsealed;
use crate::input::stream::{self, FdStream, Memfd};
use crate::sys::mem::Mapping;
use crate::sys::{io, proc};

/// How the program's bytes are held.
pub enum Held {
    /// In a file (or a memfd given with --fd), mapped like a file.
    File,
    /// In the sealed memfd a stream was taken into: mapped from it like a file (copied into
    /// anonymous memory only where executable memfds are refused).
    Stream(Memfd),
    /// Decrypted in anonymous memory, inflated on demand; the descriptor is the container's
    /// (for /proc/self/exe), and the segments are copied.
    #[cfg(feature = "sealed")]
    Sealed(Unsealed),
}

/// An executable file, open for reading.
pub struct File {
    pub fd: OwnedFd,
    /// The program's size (for a sealed program, the plain program's).
    pub size: u64,
    head: Aligned<HEAD_SIZE>,
    head_len: usize,
    pub held: Held,
}

impl File {
    pub fn head(&self) -> &[u8] {
        #[cfg(feature = "sealed")]
        if let Held::Sealed(program) = &self.held {
            return program.head();
        }
        &self.head.0[..self.head_len]
    }

    /// Keep the descriptor open past the File (the stub uses it, then closes it); the rest
    /// (a sealed program's plaintext) is released as when dropped.
    pub fn into_descriptor(self) -> i32 {
        use rustix::fd::IntoRawFd;
        let File { fd, .. } = self;
        fd.into_raw_fd()
    }

    /// Whether the segments are copied into anonymous memory instead of mapped from `fd`: a
    /// sealed program's plaintext (never in a memfd), or a stream held in a memfd that may not
    /// be mapped executable (vm.memfd_noexec=2). A stream in an executable memfd is mapped like
    /// a file: executable segments are executable from the start, as PR_SET_MDWE requires.
    pub fn copy_segments(&self) -> bool {
        match &self.held {
            Held::File => false,
            Held::Stream(memfd) => memfd.exec_refused.is_some(),
            #[cfg(feature = "sealed")]
            Held::Sealed(_) => true,
        }
    }

    /// Whether the program is held in memory (a stream or a sealed program), not in a file that
    /// existed before: its size was found by reading it to its end.
    pub fn held_in_memory(&self) -> bool {
        !matches!(self.held, Held::File)
    }

    /// The sealed container that was opened as this file, now holding `program`. Nothing of the
    /// plaintext is in the File itself (it is moved about on the stack): its head and every
    /// read come from the program's mapping.
    #[cfg(feature = "sealed")]
    pub fn unsealed(self, program: Unsealed) -> Self {
        Self { size: program.size(), head: Aligned::zeroed(), head_len: 0, held: Held::Sealed(program), ..self }
    }

    /// Read `buf.len()` bytes at `offset`, from the head when they are there already.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), &'static str> {
        let end = offset.checked_add(buf.len() as u64).ok_or("read beyond end of file")?;
        if end <= self.head_len as u64 {
            buf.copy_from_slice(&self.head.0[offset as usize..end as usize]);
            return Ok(());
        }
        self.read_exact_at(offset, buf).map_err(|_| "short read")
    }

    /// `len` bytes at `offset`: in place in the head when they are there (at an 8-aligned offset,
    /// so that ELF structures can be read in place), else read into `spill`.
    pub fn bytes<'a>(&'a self, offset: u64, len: usize, spill: &'a mut Spill) -> Result<&'a [u8], &'static str> {
        let end = offset.checked_add(len as u64).ok_or("read beyond end of file")?;
        let head = self.head();
        if end <= head.len() as u64 && (head.as_ptr() as u64).wrapping_add(offset).is_multiple_of(8) {
            return Ok(&head[offset as usize..end as usize]);
        }
        let buf = spill.storage(len)?;
        self.read_at(offset, buf)?;
        Ok(buf)
    }

    /// The program before `offset` will not be read again: a sealed program's body behind it
    /// may be released (`Unsealed::release_before`).
    #[cfg(feature = "sealed")]
    pub fn done_before(&self, offset: u64) {
        if let Held::Sealed(program) = &self.held {
            program.release_before(offset);
        }
    }

    /// Read all of `buf` from `offset`, in as many reads as it takes.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        #[cfg(feature = "sealed")]
        if let Held::Sealed(program) = &self.held {
            return program.read_exact_at(offset, buf);
        }
        io::pread_exact(&self.fd, offset, buf)
    }

    /// A file open as `fd`, with its first bytes read.
    fn with_head(fd: OwnedFd, size: u64, held: Held) -> Result<File, Refusal> {
        let mut file = File { fd, size, head: Aligned::zeroed(), head_len: 0, held };
        file.head_len = io::pread(&file.fd, &mut file.head.0[..], 0).map_err(refuse)?;
        Ok(file)
    }
}

/// Bytes of a file beyond its head, in a mapping of their own made only when needed: a buffer
/// on the stack would be touched, page by page, by every launch.
pub struct Spill {
    mapped: Option<Mapping>,
}

impl Spill {
    pub const fn new() -> Self {
        Self { mapped: None }
    }

    fn storage(&mut self, len: usize) -> Result<&mut [u8], &'static str> {
        self.release();
        if len == 0 {
            return Ok(&mut []);
        }
        let mapping = Mapping::new(len, MapFlags::empty()).map_err(|_| "no memory to read the file into")?;
        Ok(&mut self.mapped.insert(mapping).bytes()[..len])
    }

    /// Overwrite what it holds (a sealed program's headers are plaintext); `release` unmaps it.
    #[cfg(feature = "sealed")]
    pub fn wipe(&mut self) {
        if let Some(mapping) = &mut self.mapped {
            preload::input::sealed::wipe(mapping.bytes());
        }
    }

    /// Unmap the mapping, so that nothing of it reaches the program.
    pub fn release(&mut self) {
        self.mapped = None;
    }
}

fn refuse(errno: Errno) -> Refusal {
    Refusal::from_errno(errno.raw_os_error())
}

/// Execute permission for the effective credentials, as faccessat2 checks it (mode bits, ACLs, a
/// noexec mount). Where faccessat2 is missing (before Linux 5.8: ENOSYS) rustix asks faccessat,
/// which checks the real ids; where a filter refuses it (EPERM), so does this. Both are the
/// effective ids' answer: the preloader refuses to run with real ids that differ from the
/// effective ones.
fn executable(path: &CStr) -> Result<(), Errno> {
    match rustix::fs::accessat(CWD, path, Access::EXEC_OK, AtFlags::EACCESS) {
        Err(Errno::PERM) => rustix::fs::accessat(CWD, path, Access::EXEC_OK, AtFlags::empty()),
        other => other,
    }
}

/// Whether the kernel would execute the open file `fd`, named `path`: its own check
/// (AT_EXECVE_CHECK, Linux 6.14), which adds to the permission check what only exec checks (a file
/// open for writing, LSM and IMA exec policy); where the kernel does not know the flag (EINVAL) or
/// execveat is refused (ENOSYS), the permission check of `path`.
fn may_execute(fd: &OwnedFd, path: &CStr) -> Result<(), Errno> {
    match kernel_check(fd, path) {
        None => executable(path),
        Some(result) => result,
    }
}

/// Set once the kernel has answered that it has no AT_EXECVE_CHECK: the other files of this
/// launch skip the call (one extra system call per launch on older kernels, not one per file).
static NO_EXECVE_CHECK: AtomicBool = AtomicBool::new(false);

/// The kernel's own exec check of `fd`, or None where it has none (EINVAL: the flag is unknown,
/// before Linux 6.14; ENOSYS: execveat is missing or refused by a filter).
fn kernel_check(fd: &OwnedFd, name: &CStr) -> Option<Result<(), Errno>> {
    if NO_EXECVE_CHECK.load(Ordering::Relaxed) {
        return None;
    }
    match proc::execve_check(fd.as_fd(), name) {
        Err(Errno::INVAL | Errno::NOSYS) => {
            NO_EXECVE_CHECK.store(true, Ordering::Relaxed);
            None
        }
        other => Some(other),
    }
}

/// Why an executable file that cannot be read is refused: the preloader must read what it maps.
pub const EXECUTE_ONLY: &str = "Permission denied: executable but not readable, and preload must read what it maps";

/// Open `path` as the kernel's open_exec would accept it: a regular file with execute
/// permission for the effective credentials. Unlike the kernel, it must also be readable.
pub fn open(path: &CStr) -> Result<File, Refusal> {
    // NONBLOCK: a FIFO must be refused below, not waited on (it changes nothing for files).
    let fd = rustix::fs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|errno| match errno {
        Errno::ACCESS if executable(path).is_ok() => Refusal::cannot_execute(EXECUTE_ONLY),
        _ => refuse(errno),
    })?;
    let stat = rustix::fs::fstat(&fd).map_err(refuse)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(Refusal::cannot_execute("Is a directory")),
        _ => return Err(Refusal::cannot_execute("Permission denied: not a regular file")),
    }
    may_execute(&fd, path).map_err(refuse)?;
    File::with_head(fd, stat.st_size as u64, Held::File)
}

/// Take the program from inherited descriptor `fd`, named `name`. A regular file or memfd is
/// used as it is; anything else is read to its end into a sealed memfd named after `name`.
/// The descriptor itself is closed (stdin, stdout and stderr excepted): the program gets the
/// descriptors a direct run would have.
pub fn from_fd(fd: i32, name: &[u8], max_size: Option<u64>) -> Result<File, Refusal> {
    let own = io::dup_inherited(fd).map_err(refuse)?;
    io::close_inherited(fd);
    let stat = rustix::fs::fstat(&own).map_err(refuse)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {
            descriptor_executable(&own, name).map_err(refuse)?;
            let file = File::with_head(own, stat.st_size as u64, Held::File)?;
            match preload::exec::script::parse(file.head()) {
                Some(_) => Err(Refusal::cannot_execute(SCRIPT_WITHOUT_PATH)),
                None => Ok(file),
            }
        }
        FileType::Directory => Err(Refusal::cannot_execute("Is a directory")),
        _ => from_stream(&mut FdStream::new(own), name, max_size),
    }
}

/// Take a program that arrives as `stream` (at most `max_size` bytes) into a sealed memfd
/// named after `name`, to be loaded from there as anonymous copies of its segments.
pub fn from_stream(stream: &mut impl ByteStream, name: &[u8], max_size: Option<u64>) -> Result<File, Refusal> {
    let (memfd, size, held) = stream::load(stream, name, max_size)?;
    File::with_head(memfd, size, Held::Stream(held))
}

/// Execute permission on an open file named `name`, as exec checks it: the kernel's own check
/// where it has one, else the permission check (mode bits and a noexec mount) through its
/// /proc/self/fd link; without /proc the mapping itself is the check.
fn descriptor_executable(fd: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    let mut label = Msg::<256>::new();
    label.bytes(&name[..name.len().min(255)]).text("\0");
    if let Some(result) = kernel_check(fd, CStr::from_bytes_until_nul(label.as_bytes()).unwrap_or(c"")) {
        return result;
    }
    let mut link = Msg::<32>::new();
    link.text("/proc/self/fd/").dec(fd.as_raw_fd() as u64).text("\0");
    match executable(cstr(link.as_bytes())) {
        Err(Errno::NOENT) => Ok(()),
        other => other,
    }
}

/// Find `name` as execvp does: as a path if it has a slash, else in each PATH directory, where
/// a candidate that exists but cannot be executed is skipped and reported only if nothing else
/// is found. The path that was opened is left NUL-terminated in `found`.
pub fn find<'b>(
    name: &CStr,
    path_var: Option<&[u8]>,
    found: &'b mut [u8; PATH_MAX],
) -> Result<(File, &'b CStr), Refusal> {
    let bytes = name.to_bytes();
    if search::is_path(bytes) || bytes.is_empty() {
        let len = name.to_bytes_with_nul().len();
        if len > PATH_MAX {
            return Err(Refusal::from_errno(Errno::NAMETOOLONG.raw_os_error()));
        }
        found[..len].copy_from_slice(name.to_bytes_with_nul());
        let file = open(name)?;
        return Ok((file, cstr(&found[..len])));
    }
    let mut refusal = Refusal::from_errno(Errno::NOENT.raw_os_error());
    // A candidate that exists but cannot be executed decides the error, as EACCES in execvp.
    let mut found_unexecutable = false;
    for dir in search::directories(path_var) {
        let Some(candidate) = search::join(dir, bytes, found) else {
            refusal = Refusal::from_errno(Errno::NAMETOOLONG.raw_os_error());
            continue;
        };
        match open(cstr(candidate)) {
            Ok(file) => {
                let len = candidate.len();
                return Ok((file, cstr(&found[..len])));
            }
            Err(err) if err.path_search_goes_on() => {
                if !found_unexecutable {
                    refusal = err;
                }
            }
            // execvp would have run this one: stop rather than run a later namesake.
            Err(err) if err.reason == EXECUTE_ONLY => return Err(err),
            Err(err) => {
                refusal = err;
                found_unexecutable = true;
            }
        }
    }
    Err(refusal)
}
