//! Opening a sealed container: the key from the descriptor named by `PRELOAD_KEY_FD` (never
//! from an argument or an environment value), the whole body read into one anonymous mapping
//! and authenticated (each piece as it is read) before any of it is decrypted, then decoded on
//! demand as the loader copies the segments, as for a streamed program: LZ4 chunks decrypted
//! straight into the segments (the body stays encrypted), or zlib decrypted in place and
//! inflated through its ring. The key, the keystream, everything decrypted and the decoder's
//! state are wiped when done with; no plaintext is ever written to a file, a memfd included.

use core::cell::Cell;

use preload::input::sealed::{
    self, AUTHENTICATION_PIECE, Authenticator, Body, Chunks, Compressor, HEADER_SIZE, Header, InflateState, Inflating,
    KEY_SIZE, Key, Keystream, Secret, TAG_SIZE, Workspace,
};
use preload::input::{HEAD_SIZE, stream};
use preload::page_align;
use preload::report::refusal::Refusal;
use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::mm::MapFlags;

use crate::sys::io;
use crate::sys::mem::{self, Mapping};

/// The environment variable that names the key's descriptor.
pub const KEY_FD_VAR: &[u8] = b"PRELOAD_KEY_FD";

const NO_KEY: &str = "sealed program: no key (give its descriptor in PRELOAD_KEY_FD)";
const BAD_KEY_FD: &str = "sealed program: PRELOAD_KEY_FD must name an open descriptor above 2";
const KEY_UNREADABLE: &str = "sealed program: cannot read the key from PRELOAD_KEY_FD";
const KEY_TIMEOUT: &str = "sealed program: the key's descriptor sent nothing more for 10 s and did not end";
/// Why a program that is not a sealed container is refused when a key is offered.
pub const KEY_FOR_PLAIN: &str =
    "a key is offered (PRELOAD_KEY_FD) but this is not a sealed container: refusing to run it with the key";

/// How long to wait for more of the key before giving up on its descriptor.
const KEY_WAIT_SECONDS: i64 = 10;

/// The descriptor number in `PRELOAD_KEY_FD`: decimal, and not stdin, stdout or stderr, which
/// belong to the program.
fn key_fd(value: &[u8]) -> Option<i32> {
    if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let fd = value.iter().fold(0i32, |fd, digit| fd * 10 + i32::from(digit - b'0'));
    (fd > 2).then_some(fd)
}

/// Take over the key's descriptor named by `fd_var`: it is the preloader's from here, and is
/// closed when the result is dropped. `own` is the one descriptor the preloader has opened
/// itself by now (the container's): never the key's.
fn take_key_fd(fd_var: Option<&[u8]>, own: BorrowedFd) -> Result<OwnedFd, Refusal> {
    let fd = key_fd(fd_var.ok_or(Refusal::cannot_execute(NO_KEY))?)
        .filter(|&fd| fd != own.as_raw_fd())
        .ok_or(Refusal::cannot_execute(BAD_KEY_FD))?;
    // SAFETY: only probed, while the number is not otherwise in use by the preloader.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).map_err(|_| Refusal::cannot_execute(BAD_KEY_FD))?;
    // SAFETY: the descriptor is open (checked above) and was handed over for the key alone;
    // the preloader owns it from here and closes it, so the program never sees it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A key is offered (`fd_var`, PRELOAD_KEY_FD's value) to a program that is not a sealed
/// container (`own` is its descriptor): close the key's descriptor, and refuse. The key is for
/// a container's authentication alone; a plain program (or a script) must never run with it.
pub fn refuse_key(fd_var: &[u8], own: BorrowedFd) -> Refusal {
    drop(take_key_fd(Some(fd_var), own));
    Refusal::cannot_execute(KEY_FOR_PLAIN)
}

/// Read the key, to the end of its descriptor, into `key`, and close the descriptor. Each wait
/// for more of it is bounded (a descriptor that sends part of a key and never ends would
/// otherwise hold the launch forever).
fn read_key(fd_var: Option<&[u8]>, own: BorrowedFd, key: &mut Key) -> Result<(), Refusal> {
    let fd = take_key_fd(fd_var, own)?;
    // One byte more than the longest key form, to tell a longer text apart.
    let mut text = Secret::<{ 2 * KEY_SIZE + 2 }>::zeroed();
    let mut len = 0;
    while len < text.0.len() {
        match io::wait_readable(&fd, KEY_WAIT_SECONDS) {
            Ok(true) => {}
            Ok(false) => return Err(Refusal::cannot_execute(KEY_TIMEOUT)),
            Err(_) => return Err(Refusal::cannot_execute(KEY_UNREADABLE)),
        }
        match io::read(&fd, &mut text.0[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::AGAIN) => {}
            Err(_) => return Err(Refusal::cannot_execute(KEY_UNREADABLE)),
        }
    }
    sealed::parse_key(&text.0[..len], key).map_err(Refusal::cannot_execute)
}

/// The largest body read whole before its tag is checked; a larger one is authenticated in
/// pieces first, so that what a forged header declares is never held (a sparse container
/// declaring 64 GiB would fill memory until the OOM killer came). Memory before authentication
/// is thus at most this much, whatever the header says. Not lower: the check in pieces is a
/// second pass of Poly1305 over the file (about 30% more CPU time for a 100 MB container,
/// measured), which a body read whole is spared.
const HELD_BEFORE_AUTHENTICATION: usize = 128 << 20;

/// Check the tag of the container's body (`body_len` bytes after the header), read in pieces
/// through a small window: memory independent of the size the header declares.
#[cold]
fn authenticate_in_pieces(
    container: BorrowedFd<'_>,
    key: &Key,
    header_bytes: &[u8; HEADER_SIZE],
    body_len: usize,
    tag: &[u8; TAG_SIZE],
) -> Result<(), Refusal> {
    let mut auth = Authenticator::new(key, header_bytes)?;
    let mut window = Mapping::new(AUTHENTICATION_PIECE, MapFlags::empty())
        .map_err(|errno| Refusal::failure_errno(errno.raw_os_error()))?;
    let mut offset = 0;
    while offset < body_len {
        let piece = &mut window.bytes()[..AUTHENTICATION_PIECE.min(body_len - offset)];
        io::pread_exact(container, (HEADER_SIZE + offset) as u64, piece)
            .map_err(|errno| Refusal::from_errno(errno.raw_os_error()))?;
        auth.update(piece);
        offset += piece.len();
    }
    auth.verify(tag)
}

/// A private anonymous read-write mapping whose bytes from `secret_from` on hold secrets (the
/// keystream, plaintext): those are wiped, then the whole is unmapped, when it is dropped.
struct Plain {
    mapping: Mapping,
    len: usize,
    secret_from: usize,
}

impl Plain {
    fn new(len: usize, secret_from: usize) -> Result<Self, Refusal> {
        // NORESERVE: sizes come from a header whose tag is not checked yet when the body is read.
        let mapping =
            Mapping::new(len, MapFlags::NORESERVE).map_err(|errno| Refusal::failure_errno(errno.raw_os_error()))?;
        Ok(Self { mapping, len, secret_from })
    }

    fn base(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        // SAFETY: the bytes from `secret_from` to `len` stay mapped until the mapping is
        // dropped (only body pages before them are ever unmapped: `release_before`), and
        // nothing refers to them any more.
        let secret =
            unsafe { core::slice::from_raw_parts_mut(self.base().add(self.secret_from), self.len - self.secret_from) };
        sealed::wipe(secret);
    }
}

/// Where decoding the body has got to; its workspace (the zlib inflater's state and ring, or
/// the buffer for one LZ4 chunk) is in the mapping.
#[derive(Clone, Copy)]
enum Decoder {
    Zlib(Inflating),
    Chunks(Chunks),
}

/// A sealed program, authenticated, read as the loader asks: one mapping holds the body (an
/// LZ4-chunk one still encrypted, a zlib one decrypted), the keystream, the decoder's workspace,
/// and a copy of the program's first bytes; the program is decoded on demand straight into the
/// loader's buffers, so it is never held whole outside its own pages.
pub struct Unsealed {
    mapping: Plain,
    body_len: usize,
    /// The body before this offset is unmapped (an LZ4-chunk body, once copied from).
    released: Cell<usize>,
    keystream_at: usize,
    state_at: usize,
    head_at: usize,
    head_len: usize,
    program_size: u64,
    decoder: Cell<Decoder>,
}

impl Unsealed {
    /// The plain program's size.
    pub fn size(&self) -> u64 {
        self.program_size
    }

    /// The first bytes, as `File::head` gives them for a file.
    pub fn head(&self) -> &[u8] {
        // SAFETY: the head copy's place in the mapping, written in `unseal` and only read since.
        unsafe { core::slice::from_raw_parts(self.mapping.base().add(self.head_at), self.head_len) }
    }

    /// The program's bytes at `offset`, as `pread` on the plain file would give them.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let mut decoder = self.decoder.get();
        // SAFETY: body (from `released` on: what is still mapped), keystream and workspace are
        // disjoint places in the mapping; the body is only read, and keystream and workspace
        // (written in `unseal` to what they must be) are touched by this method alone, which
        // does not recurse: no other reference to them exists while these live. `buf` is the
        // caller's, outside the mapping.
        let result = unsafe {
            let released = self.released.get();
            let body = core::slice::from_raw_parts(self.mapping.base().add(released), self.body_len - released);
            let workspace = self.mapping.base().add(self.state_at);
            match &mut decoder {
                Decoder::Zlib(inflating) => {
                    inflating.read_exact_at(body, &mut *workspace.cast::<InflateState>(), offset, buf)
                }
                Decoder::Chunks(chunks) => {
                    let keystream = &mut *self.mapping.base().add(self.keystream_at).cast::<Keystream>();
                    let workspace = &mut *workspace.cast::<Workspace>();
                    chunks.read_exact_at(&mut Body::encrypted(released, body, keystream), workspace, offset, buf)
                }
            }
        };
        self.decoder.set(decoder);
        result.map_err(|_| Errno::IO)
    }

    /// The program before `offset` will not be read again (the loader copies the segments in
    /// file order): an LZ4-chunk body's pages before the chunks still read are unmapped, in
    /// whole huge pages, so that the program's pages, written next, take their place instead of
    /// fresh memory (the peak is then about the program, not the program and the body). A zlib
    /// body is kept whole: a read behind its window inflates again from its start.
    pub fn release_before(&self, offset: u64) {
        let mut decoder = self.decoder.get();
        if let Decoder::Chunks(chunks) = &mut decoder {
            let end = chunks.forget_before(offset) & !(RELEASE_STEP - 1);
            let start = self.released.get();
            let (addr, len) = (self.mapping.base() as u64 + start as u64, end.saturating_sub(start) as u64);
            // SAFETY: body pages of the mapping before the first chunk still read: the decoder
            // refuses to read a forgotten chunk, and read_exact_at borrows the body only from
            // `released` on; nothing else refers to them. Nothing of the preloader's own.
            if len > 0 && unsafe { mem::unmap(addr, len) }.is_ok() {
                self.released.set(end);
            }
        }
        self.decoder.set(decoder);
    }
}

/// The body is released in steps of a huge page (2 MiB): a page freed whole can hold a
/// segment's next huge page.
const RELEASE_STEP: usize = 2 << 20;

/// Authenticate and decrypt the container open as `container` (`container_size` bytes) with the
/// key from `key_fd_var`. The result reads like the plain program's file (inflating on demand);
/// the caller keeps the container's descriptor, so /proc/self/exe shows the container: there is
/// no plain file.
// Out of line: its frame (the inflater state is built before it is moved into the mapping) is
// large, and must not be probed on every launch.
#[inline(never)]
pub fn unseal(container: BorrowedFd<'_>, container_size: u64, key_fd_var: Option<&[u8]>) -> Result<Unsealed, Refusal> {
    let mut key = Key::zeroed();
    read_key(key_fd_var, container, &mut key)?;
    let mut header_bytes = [0u8; HEADER_SIZE];
    io::pread_exact(container, 0, &mut header_bytes).map_err(|_| Refusal::cannot_execute(sealed::TRUNCATED))?;
    let header = Header::parse(&header_bytes)?;
    if container_size < header.container_size() {
        return Err(Refusal::cannot_execute(sealed::TRUNCATED));
    }
    if container_size > header.container_size() {
        return Err(Refusal::cannot_execute(sealed::TRAILING));
    }

    // Header::parse bounds the body size to about MAX_PROGRAM_SIZE, so none of this overflows.
    let body_len = header.body_size as usize;
    let mut tag = [0u8; TAG_SIZE];
    let io_error = |errno: Errno| Refusal::from_errno(errno.raw_os_error());
    io::pread_exact(container, (HEADER_SIZE + body_len) as u64, &mut tag).map_err(io_error)?;
    if body_len > HELD_BEFORE_AUTHENTICATION {
        authenticate_in_pieces(container, &key, &header_bytes, body_len, &tag)?;
    }
    let keystream_at = page_align(body_len as u64) as usize;
    let state_at = keystream_at + page_align(size_of::<Keystream>() as u64) as usize;
    let workspace = match header.compressor {
        Compressor::Zlib => size_of::<InflateState>(),
        Compressor::Lz4Chunks => size_of::<Workspace>(),
    };
    let head_at = state_at + page_align(workspace as u64) as usize;
    // A zlib body is decrypted in place: secret too.
    let secret_from = if header.compressor == Compressor::Zlib { 0 } else { keystream_at };
    let mapping = Plain::new(head_at + HEAD_SIZE, secret_from)?;
    // Huge pages where the kernel has them for the asking (THP "madvise"): a 100 MB body read
    // in takes 50 faults instead of 25,600. Only a hint: an error changes nothing.
    crate::sys::mem::advise_huge_pages(mapping.base() as u64, body_len as u64);
    // SAFETY: the body's place at the start of the mapping, which nothing else refers to yet.
    let body = unsafe { core::slice::from_raw_parts_mut(mapping.base(), body_len) };
    // Authenticated as held, each piece as it is read (while it is in the cache): a container
    // changed since a check in pieces above is refused here.
    let mut auth = Authenticator::new(&key, &header_bytes)?;
    for (index, piece) in body.chunks_mut(AUTHENTICATION_PIECE).enumerate() {
        io::pread_exact(container, (HEADER_SIZE + index * AUTHENTICATION_PIECE) as u64, piece).map_err(io_error)?;
        auth.update(piece);
    }
    auth.verify(&tag)?;
    let keystream = mapping.base().wrapping_add(keystream_at).cast::<Keystream>();
    // SAFETY: the keystream's place is page-aligned, inside the mapping and disjoint from the
    // body and the workspace; it is written before it is borrowed, and wiped with the mapping.
    let keystream = unsafe {
        keystream.write(Keystream::new(&key, &header));
        &mut *keystream
    };
    drop(key);

    let decoder = match header.compressor {
        Compressor::Zlib => {
            keystream.decrypt_at(0, body)?;
            let state = mapping.base().wrapping_add(state_at).cast::<InflateState>();
            // SAFETY: the state's place is page-aligned, inside the mapping and disjoint from
            // the body; it is written before it is borrowed, and the borrow ends with this block.
            Decoder::Zlib(unsafe {
                state.write(InflateState::new());
                Inflating::new(header.program_size, &mut *state)
            })
        }
        // The workspace is the mapping's zero pages: any bytes are a valid Workspace.
        Compressor::Lz4Chunks => {
            Decoder::Chunks(Chunks::new(header.program_size, &mut Body::encrypted(0, body, keystream))?)
        }
    };
    let head_len = header.program_size.min(HEAD_SIZE as u64) as usize;
    let unsealed = Unsealed {
        mapping,
        body_len,
        released: Cell::new(0),
        keystream_at,
        state_at,
        head_at,
        head_len,
        program_size: header.program_size,
        decoder: Cell::new(decoder),
    };
    // SAFETY: the head copy's place, after the state, inside the mapping and disjoint from both.
    let head = unsafe { core::slice::from_raw_parts_mut(unsealed.mapping.base().add(head_at), head_len) };
    unsealed.read_exact_at(0, head).map_err(|_| Refusal::cannot_execute("sealed program does not decompress"))?;
    stream::check_start(&head[..head_len.min(64)]).map_err(Refusal::cannot_execute)?;
    Ok(unsealed)
}
