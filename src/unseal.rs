//! Opening a sealed container: the key from the descriptor named by `PRELOAD_KEY_FD` (never
//! from an argument or an environment value), the whole body read into one anonymous mapping
//! and authenticated before any of it is decrypted, then inflated into a second anonymous
//! mapping from which the loader copies the segments, as for a streamed program. The key, the
//! decrypted body, the inflater's state and the inflated program are wiped when done with;
//! no plaintext is ever written to a file, a memfd included.

use core::ffi::c_void;

use preload::elf::Aligned;
use preload::error::Refusal;
use preload::page_align;
use preload::sealed::{self, HEADER_SIZE, Header, Inflater, KEY_SIZE, Key, Secret, TAG_SIZE};
use preload::stream;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::source::{File, HEAD_SIZE};

/// The environment variable that names the key's descriptor.
pub const KEY_FD_VAR: &[u8] = b"PRELOAD_KEY_FD";

const NO_KEY: &str = "sealed program: no key (give its descriptor in PRELOAD_KEY_FD)";
const BAD_KEY_FD: &str = "sealed program: PRELOAD_KEY_FD must name an open descriptor above 2";
const KEY_UNREADABLE: &str = "sealed program: cannot read the key from PRELOAD_KEY_FD";

/// The descriptor number in `PRELOAD_KEY_FD`: decimal, and not stdin, stdout or stderr, which
/// belong to the program.
fn key_fd(value: &[u8]) -> Option<i32> {
    if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let fd = value.iter().fold(0i32, |fd, digit| fd * 10 + i32::from(digit - b'0'));
    (fd > 2).then_some(fd)
}

/// Read the key, to the end of its descriptor, into `key`, and close the descriptor. `own` is
/// the one descriptor the preloader has opened itself by now (the container's): never the key's.
fn read_key(fd_var: Option<&[u8]>, own: BorrowedFd, key: &mut Key) -> Result<(), Refusal> {
    let fd = key_fd(fd_var.ok_or(Refusal::cannot_execute(NO_KEY))?).filter(|&fd| fd != own.as_raw_fd()).ok_or(Refusal::cannot_execute(BAD_KEY_FD))?;
    // SAFETY: only probed, while the number is not otherwise in use by the preloader.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).map_err(|_| Refusal::cannot_execute(BAD_KEY_FD))?;
    // SAFETY: the descriptor is open (checked above) and was handed over for the key alone;
    // the preloader owns it from here and closes it, so the program never sees it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // One byte more than the longest key form, to tell a longer text apart.
    let mut text = Secret::<{ 2 * KEY_SIZE + 2 }>::zeroed();
    let mut len = 0;
    while len < text.0.len() {
        match rustix::io::read(&fd, &mut text.0[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(_) => return Err(Refusal::cannot_execute(KEY_UNREADABLE)),
        }
    }
    sealed::parse_key(&text.0[..len], key).map_err(Refusal::cannot_execute)
}

/// A private anonymous read-write mapping holding plaintext: wiped and unmapped when dropped.
pub struct Plain {
    base: *mut u8,
    len: usize,
    /// How many bytes are meant to be read back (the program's size).
    size: u64,
}

impl Plain {
    fn new(size: u64) -> Result<Self, Refusal> {
        let len = page_align(size) as usize;
        // NORESERVE: sizes come from a header whose tag is not checked yet when the body is read.
        // SAFETY: a fresh private anonymous mapping, used only through the Plain that owns it.
        let base = unsafe { rustix::mm::mmap_anonymous(core::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE | MapFlags::NORESERVE) }
            .map_err(|errno| Refusal::failure_errno(errno.raw_os_error()))?;
        Ok(Self { base: base.cast::<u8>(), len, size })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the whole mapping, borrowed through `self` alone.
        unsafe { core::slice::from_raw_parts_mut(self.base, self.len) }
    }

    /// The first bytes, as [`File::head`] gives them for a file.
    pub fn head(&self) -> &[u8] {
        // SAFETY: at most `size` <= len bytes of the mapping; shared borrows only.
        unsafe { core::slice::from_raw_parts(self.base, self.size.min(HEAD_SIZE as u64) as usize) }
    }

    /// The sealed program's bytes at `offset`, as `pread` on the plain file would give them.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let end = offset.checked_add(buf.len() as u64).filter(|&end| end <= self.size).ok_or(Errno::IO)?;
        // SAFETY: [offset, end) lies within the first `size` <= len bytes of the mapping.
        buf.copy_from_slice(unsafe { core::slice::from_raw_parts(self.base.add(offset as usize), (end - offset) as usize) });
        Ok(())
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        sealed::wipe(self.bytes());
        // SAFETY: the mapping made in `new`; no borrow of it outlives the Plain.
        let _ = unsafe { rustix::mm::munmap(self.base.cast::<c_void>(), self.len) };
    }
}

/// Authenticate and decrypt `container` with the key from `key_fd_var`, and inflate it into
/// anonymous memory. The result reads like the plain program's file, keeps the container's
/// descriptor (so /proc/self/exe shows the container: there is no plain file) and has its
/// segments copied.
pub fn unseal(container: File, key_fd_var: Option<&[u8]>) -> Result<File, Refusal> {
    let mut key = Key::zeroed();
    read_key(key_fd_var, container.fd.as_fd(), &mut key)?;
    let mut header_bytes = [0u8; HEADER_SIZE];
    container.read_at(0, &mut header_bytes).map_err(|_| Refusal::cannot_execute(sealed::TRUNCATED))?;
    let header = Header::parse(&header_bytes)?;
    if container.size < header.container_size() {
        return Err(Refusal::cannot_execute(sealed::TRUNCATED));
    }
    if container.size > header.container_size() {
        return Err(Refusal::cannot_execute(sealed::TRAILING));
    }

    // The body, then the inflater's state, in one mapping. Header::parse bounds the body size
    // to about MAX_PROGRAM_SIZE, so none of this overflows.
    let body_len = header.body_size as usize;
    let inflater_at = page_align(body_len as u64) as usize;
    let mut body_mapping = Plain::new((inflater_at + size_of::<Inflater>()) as u64)?;
    let (body, inflater) = body_mapping.bytes().split_at_mut(inflater_at);
    let body = &mut body[..body_len];
    let io_error = |errno: Errno| Refusal::from_errno(errno.raw_os_error());
    container.read_exact_at(HEADER_SIZE as u64, body).map_err(io_error)?;
    let mut tag = [0u8; TAG_SIZE];
    container.read_exact_at((HEADER_SIZE + body_len) as u64, &mut tag).map_err(io_error)?;
    sealed::open(&key, &header_bytes, body, &tag)?;
    drop(key);

    let inflater = inflater.as_mut_ptr().cast::<Inflater>();
    // SAFETY: the inflater's place is page-aligned, inside the mapping, disjoint from the body,
    // and exclusively ours; it is written before it is borrowed.
    let inflater = unsafe {
        inflater.write(Inflater::new());
        &mut *inflater
    };
    let mut program = Plain::new(header.program_size)?;
    let size = header.program_size as usize;
    sealed::inflate(body, &mut program.bytes()[..size], inflater)?;
    // The compressed plaintext and the inflater's state go before the segments are made.
    drop(body_mapping);
    stream::check_start(&program.bytes()[..size.min(64)]).map_err(Refusal::cannot_execute)?;
    // Nothing of the plaintext in the File itself (it is moved about on the stack): its head
    // and every read come from the mapping.
    Ok(File { fd: container.fd, size: header.program_size, head: Aligned::zeroed(), head_len: 0, copy_segments: true, unsealed: Some(program) })
}
