//! Sealed executables: an ELF program compressed (LZ4 in independent chunks, or zlib) and
//! encrypted (ChaCha20-Poly1305), behind a small versioned header that is the AEAD's associated
//! data.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `\x7fPRLSEAL` |
//! | 8 | 2 | format version: 2 (LZ4 chunks) or 1 (zlib, still read and written) |
//! | 10 | 1 | AEAD id (1: ChaCha20-Poly1305, RFC 8439) |
//! | 11 | 1 | compressor id: 2 = LZ4 chunks (version 2 only), 1 = zlib, RFC 1950 (version 1 only) |
//! | 12 | 12 | nonce |
//! | 24 | 8 | program size: the ELF file's length |
//! | 32 | 8 | body size: the compressed program's length |
//! | 40 | body size | body: the compressed program, encrypted |
//! | 40 + body size | 16 | Poly1305 tag over header and body |
//!
//! The body of compressor 2 (LZ4 chunks), once decrypted: the program cut into chunks of
//! [`CHUNK_SIZE`] bytes (the last one shorter), each compressed on its own, one after another:
//!
//! | size | field |
//! | --- | --- |
//! | 4 | bits 0-30: the chunk's stored length L; bit 31: the chunk is stored as it is (LZ4 did not shrink it) |
//! | L | an LZ4 block (no frame, no checksum: the tag covers it) that decodes to exactly the chunk's size, or the chunk's bytes |
//!
//! repeated `ceil(program size / CHUNK_SIZE)` times, and nothing after the last chunk. Every
//! chunk decodes without any other, so a read at any offset decodes only the chunks it covers
//! (a whole chunk straight into the destination, the partial ones at a read's ends through one
//! chunk-sized buffer), and a read behind an earlier one costs nothing more than the hops over
//! the chunks' length words. Format 1 (zlib) has one stream: a read behind its 64 KiB window
//! inflates again from the start, so the loader reads in file order.
//!
//! Integers are little-endian. Nothing of the body is used before the tag has been checked:
//! [`Authenticator`] checks the whole body as held, then [`Keystream`] decrypts it: a zlib
//! body in place before [`Inflating`] inflates it on demand; an LZ4-chunk body chunk by chunk
//! as [`Chunks`] decodes it on demand (a stored chunk decrypted straight into its destination),
//! as the loader reads the program.

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress_with_limit, inflate_flags};

use crate::report::refusal::Refusal;

/// The first bytes of every container: neither `\x7fELF` nor `#!`, so never mistaken for either.
pub const MAGIC: [u8; 8] = *b"\x7fPRLSEAL";
/// The format of LZ4-chunk containers; an older preload refuses it as an unsupported version.
pub const VERSION: u16 = 2;
/// The format of zlib containers, which every preload with sealed support reads.
pub const VERSION_ZLIB: u16 = 1;
pub const AEAD_CHACHA20_POLY1305: u8 = 1;
pub const COMPRESSOR_ZLIB: u8 = 1;
pub const COMPRESSOR_LZ4_CHUNKS: u8 = 2;
/// The size of every chunk of an LZ4-chunk body but the last (which is 1 to CHUNK_SIZE bytes).
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Bit 31 of a chunk's length word: the chunk is stored, not compressed.
const STORED: u32 = 1 << 31;
pub const HEADER_SIZE: usize = 40;
pub const NONCE_SIZE: usize = 12;
pub const TAG_SIZE: usize = 16;
pub const KEY_SIZE: usize = 32;
/// The largest program a container may declare (64 GiB): checked before anything is allocated.
pub const MAX_PROGRAM_SIZE: u64 = 1 << 36;

/// Why a container is refused before or during authentication (one wording for every way a
/// container can fail to prove itself authentic).
pub const AUTHENTICATION_FAILED: &str = "authentication failed";
pub const TRUNCATED: &str = "authentication failed: container truncated";
pub const TRAILING: &str = "authentication failed: bytes after the container's tag";
const BAD_VERSION: &str = "authentication failed: unsupported container version (this preload reads 1 and 2)";
const BAD_AEAD: &str = "authentication failed: unknown AEAD algorithm";
const BAD_COMPRESSOR: &str =
    "authentication failed: unknown compressor (version 1 has zlib (1), version 2 LZ4 chunks (2))";
const BAD_SIZES: &str = "authentication failed: program or body size out of range";
/// After authentication: only a faulty sealer can produce these.
const CORRUPT: &str = "sealed program does not decompress";
const WRONG_SIZE: &str = "sealed program's size differs from its header";
/// A read behind what the loader said it was done with: a fault of the preloader's.
const FORGOTTEN: &str = "sealed program read again behind what was released";

/// Whether a file starts like a sealed container.
pub fn is_sealed(head: &[u8]) -> bool {
    head.starts_with(&MAGIC)
}

/// How the body is compressed; each comes with its own format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressor {
    /// Format 1: one zlib stream (RFC 1950).
    Zlib,
    /// Format 2: independent LZ4 blocks of [`CHUNK_SIZE`] bytes (see the module's table).
    Lz4Chunks,
}

impl Compressor {
    pub const fn version(self) -> u16 {
        match self {
            Self::Zlib => VERSION_ZLIB,
            Self::Lz4Chunks => VERSION,
        }
    }

    pub const fn id(self) -> u8 {
        match self {
            Self::Zlib => COMPRESSOR_ZLIB,
            Self::Lz4Chunks => COMPRESSOR_LZ4_CHUNKS,
        }
    }
}

/// The header's variable fields; the constant ones are checked by [`Header::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub compressor: Compressor,
    pub nonce: [u8; NONCE_SIZE],
    pub program_size: u64,
    pub body_size: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0u8; HEADER_SIZE];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&self.compressor.version().to_le_bytes());
        bytes[10] = AEAD_CHACHA20_POLY1305;
        bytes[11] = self.compressor.id();
        bytes[12..24].copy_from_slice(&self.nonce);
        bytes[24..32].copy_from_slice(&self.program_size.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.body_size.to_le_bytes());
        bytes
    }

    /// Check magic, version, algorithm ids and that both sizes are plausible, so that nothing
    /// is allocated from an absurd size before the tag has been checked.
    pub fn parse(bytes: &[u8; HEADER_SIZE]) -> Result<Self, Refusal> {
        let refuse = |reason| Err(Refusal::cannot_execute(reason));
        let u64_at = |at: usize| {
            u64::from_le_bytes([
                bytes[at],
                bytes[at + 1],
                bytes[at + 2],
                bytes[at + 3],
                bytes[at + 4],
                bytes[at + 5],
                bytes[at + 6],
                bytes[at + 7],
            ])
        };
        if !is_sealed(bytes) {
            return refuse("not a sealed container");
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION && version != VERSION_ZLIB {
            return refuse(BAD_VERSION);
        }
        if bytes[10] != AEAD_CHACHA20_POLY1305 {
            return refuse(BAD_AEAD);
        }
        let compressor = match (version, bytes[11]) {
            (VERSION_ZLIB, COMPRESSOR_ZLIB) => Compressor::Zlib,
            (VERSION, COMPRESSOR_LZ4_CHUNKS) => Compressor::Lz4Chunks,
            _ => return refuse(BAD_COMPRESSOR),
        };
        let mut nonce = [0u8; NONCE_SIZE];
        nonce.copy_from_slice(&bytes[12..24]);
        let header = Self { compressor, nonce, program_size: u64_at(24), body_size: u64_at(32) };
        if header.program_size == 0
            || header.program_size > MAX_PROGRAM_SIZE
            || header.body_size < 2
            || header.body_size > max_body_size(header.program_size)
        {
            return refuse(BAD_SIZES);
        }
        Ok(header)
    }

    /// The whole container's length: header, body and tag.
    pub fn container_size(&self) -> u64 {
        HEADER_SIZE as u64 + self.body_size + TAG_SIZE as u64
    }
}

/// More than any body of `program_size` bytes needs: a zlib stream's stored blocks cost 5 bytes
/// per 64 KiB, its header and checksum 6; an LZ4-chunk body's length words 4 bytes per 256 KiB.
pub const fn max_body_size(program_size: u64) -> u64 {
    program_size + program_size / 1024 + 64
}

/// Secret bytes that are overwritten when dropped.
pub struct Secret<const N: usize>(pub [u8; N]);

impl<const N: usize> Secret<N> {
    pub const fn zeroed() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

pub type Key = Secret<KEY_SIZE>;

/// Overwrite `bytes` with zeros in a way the optimiser may not remove.
pub fn wipe(bytes: &mut [u8]) {
    let (head, words, tail) = {
        // SAFETY: every bit pattern is a valid u64, and align_to_mut keeps the parts disjoint.
        unsafe { bytes.align_to_mut::<u64>() }
    };
    for byte in head.iter_mut().chain(tail.iter_mut()) {
        // SAFETY: `byte` is a valid, exclusive reference.
        unsafe { core::ptr::write_volatile(byte, 0) };
    }
    for word in words {
        // SAFETY: `word` is a valid, aligned, exclusive reference.
        unsafe { core::ptr::write_volatile(word, 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// Read a key as written in a key file or descriptor: exactly 32 raw bytes, or 64 hex digits
/// optionally followed by one newline. The key goes straight into `key`.
pub fn parse_key(text: &[u8], key: &mut Key) -> Result<(), &'static str> {
    const BAD_KEY: &str = "key must be 32 bytes, or 64 hex digits and an optional newline";
    if text.len() == KEY_SIZE {
        key.0.copy_from_slice(text);
        return Ok(());
    }
    let digits = text.strip_suffix(b"\n").unwrap_or(text);
    if digits.len() != 2 * KEY_SIZE {
        return Err(BAD_KEY);
    }
    for (byte, pair) in key.0.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(high), Some(low)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err(BAD_KEY);
        };
        *byte = high << 4 | low;
    }
    Ok(())
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Encrypt a compressed program in place and return the tag (the sealing side of [`open`]).
pub fn seal(key: &Key, header: &Header, body: &mut [u8]) -> [u8; TAG_SIZE] {
    // The only failure is a body over 256 GiB, far above MAX_PROGRAM_SIZE.
    preload_aead::seal(&key.0, &header.nonce, &header.encode(), body).unwrap_or([0; TAG_SIZE])
}

/// The tag of a container checked over a body fed in pieces (RFC 8439 2.8: Poly1305 keyed with
/// the first 32 bytes of the ChaCha20 keystream, over the header padded to 16 bytes, the body
/// padded, and both lengths): each piece as it is read into memory, while it is in the cache,
/// and, for a large body, first as read through a small window, in memory independent of the
/// size its header declares (a sparse file declaring 64 GiB is then refused before its body is
/// held). What is used is what was authenticated as held, so a file changed in between is
/// refused.
pub struct Authenticator {
    mac: preload_aead::Authenticator,
    body_size: u64,
}

impl Authenticator {
    pub fn new(key: &Key, header_bytes: &[u8; HEADER_SIZE]) -> Result<Self, Refusal> {
        let header = Header::parse(header_bytes)?;
        let mac = preload_aead::Authenticator::new(&key.0, &header.nonce, header_bytes);
        Ok(Self { mac, body_size: header.body_size })
    }

    /// The next `piece` of the body. Every piece but the last is a multiple of
    /// [`AUTHENTICATION_PIECE`] bytes (whole Poly1305 blocks).
    pub fn update(&mut self, piece: &[u8]) {
        self.mac.update(piece);
    }

    /// Whether `tag` is the container's: the whole body must have been fed.
    pub fn verify(self, tag: &[u8; TAG_SIZE]) -> Result<(), Refusal> {
        if self.mac.fed() != self.body_size {
            return Err(Refusal::cannot_execute(TRUNCATED));
        }
        match self.mac.verify(tag) {
            true => Ok(()),
            false => Err(Refusal::cannot_execute(AUTHENTICATION_FAILED)),
        }
    }
}

/// The size of the pieces the body is authenticated in (a multiple of Poly1305's 16 bytes).
pub const AUTHENTICATION_PIECE: usize = 64 * 1024;

/// How much inflated output stays readable behind the newest byte: twice deflate's 32 KiB
/// window, so that a segment may start up to 32 KiB before where the previous one ended (they
/// share at most a page in a normal ELF) without inflating again from the start.
pub const RING_SIZE: usize = 64 * 1024;

/// The inflater's state and its output ring: about 75 KiB derived from the plaintext, so it
/// lives where the caller can wipe it (the shell puts it in the body's mapping).
pub struct InflateState {
    decompressor: DecompressorOxide,
    ring: [u8; RING_SIZE],
}

impl InflateState {
    pub fn new() -> Self {
        Self { decompressor: DecompressorOxide::new(), ring: [0; RING_SIZE] }
    }
}

impl Default for InflateState {
    fn default() -> Self {
        Self::new()
    }
}

/// Where inflating the body has got to. The program is inflated on demand, as the loader reads
/// it (in file order, as segments are laid out), so only the compressed body and the program's
/// own pages are ever held whole; a read behind the ring starts again from the beginning.
#[derive(Clone, Copy, Debug)]
pub struct Inflating {
    size: u64,
    consumed: usize,
    /// Bytes inflated so far; the ring holds the last `min(produced, RING_SIZE)` of them.
    produced: u64,
    finished: bool,
    /// Reads behind the ring, each inflating again from the start.
    restarts: u32,
}

impl Inflating {
    /// For a body whose header declared `program_size`.
    pub fn new(program_size: u64, state: &mut InflateState) -> Self {
        state.decompressor.init();
        Self { size: program_size, consumed: 0, produced: 0, finished: false, restarts: 0 }
    }

    /// How often a read behind the ring made it inflate again from the start.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The program's bytes at `offset`, as `pread` on the plain file would give them.
    pub fn read_exact_at(
        &mut self,
        body: &[u8],
        state: &mut InflateState,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), Refusal> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.size)
            .ok_or(Refusal::cannot_execute(WRONG_SIZE))?;
        if offset < self.produced.saturating_sub(RING_SIZE as u64) {
            let restarts = self.restarts + 1;
            *self = Self::new(self.size, state);
            self.restarts = restarts;
        }
        let mut at = offset;
        while at < end {
            if at >= self.produced {
                self.inflate_more(body, state)?;
                continue;
            }
            let start = (at % RING_SIZE as u64) as usize;
            let len = (end.min(self.produced) - at).min((RING_SIZE - start) as u64) as usize;
            let filled = (at - offset) as usize;
            buf[filled..filled + len].copy_from_slice(&state.ring[start..start + len]);
            at += len as u64;
        }
        Ok(())
    }

    /// Inflate the next piece into the ring, up to its end (the oldest bytes make room).
    fn inflate_more(&mut self, body: &[u8], state: &mut InflateState) -> Result<(), Refusal> {
        if self.finished {
            return Err(Refusal::cannot_execute(WRONG_SIZE));
        }
        let pos = (self.produced % RING_SIZE as u64) as usize;
        let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER;
        let (status, read, written) = decompress_with_limit(
            &mut state.decompressor,
            &body[self.consumed..],
            &mut state.ring,
            pos,
            RING_SIZE - pos,
            flags,
        );
        self.consumed += read;
        self.produced += written as u64;
        match status {
            _ if self.produced > self.size => Err(Refusal::cannot_execute(WRONG_SIZE)),
            TINFLStatus::Done if self.produced < self.size => Err(Refusal::cannot_execute(WRONG_SIZE)),
            TINFLStatus::Done if self.consumed < body.len() => Err(Refusal::cannot_execute(CORRUPT)),
            TINFLStatus::Done => {
                self.finished = true;
                Ok(())
            }
            TINFLStatus::HasMoreOutput if written > 0 => Ok(()),
            _ => Err(Refusal::cannot_execute(CORRUPT)),
        }
    }
}

/// The space one chunk takes in an LZ4-chunk body at most: its length word and the larger of
/// LZ4's bound and the stored chunk.
pub const fn chunk_bound(len: usize) -> usize {
    let lz4 = lz4_flex::block::get_maximum_output_size(len);
    4 + if lz4 > len { lz4 } else { len }
}

/// Append one chunk (`chunk` is at most [`CHUNK_SIZE`] bytes) to an LZ4-chunk body in `out`,
/// which has room for [`chunk_bound`]`(chunk.len())` bytes; returns the bytes written. A chunk
/// that LZ4 does not shrink is stored as it is.
pub fn compress_chunk(chunk: &[u8], out: &mut [u8]) -> usize {
    let (word, data) = out.split_at_mut(4);
    let len = match lz4_flex::block::compress_into(chunk, data) {
        Ok(len) if len < chunk.len() => len as u32,
        _ => {
            data[..chunk.len()].copy_from_slice(chunk);
            chunk.len() as u32 | STORED
        }
    };
    word.copy_from_slice(&len.to_le_bytes());
    4 + (len & !STORED) as usize
}

/// The keystream of an authenticated body, to decrypt its bytes where they are needed (an
/// LZ4-chunk body is never decrypted in place: each chunk is decrypted straight into the
/// program's pages, or into the decoder's workspace). Its copy of the key is wiped when dropped.
pub struct Keystream(preload_aead::Keystream);

impl Keystream {
    pub fn new(key: &Key, header: &Header) -> Self {
        Self(preload_aead::Keystream::new(&key.0, &header.nonce))
    }

    /// Decrypt in place `bytes`, the body's at `offset` (a zlib body, whole).
    pub fn decrypt_at(&mut self, offset: usize, bytes: &mut [u8]) -> Result<(), Refusal> {
        self.0.apply_at(offset as u64, bytes).ok_or(Refusal::cannot_execute(CORRUPT))
    }
}

/// An LZ4-chunk body as held: still encrypted (the preloader's, authenticated, decrypted as it
/// is read), or plain; from `origin` on (what is before it is released: [`Chunks::forget_before`]).
pub struct Body<'b> {
    origin: usize,
    bytes: &'b [u8],
    keystream: Option<&'b mut Keystream>,
}

impl<'b> Body<'b> {
    pub fn plain(bytes: &'b [u8]) -> Self {
        Self { origin: 0, bytes, keystream: None }
    }

    /// An encrypted body, `bytes` from its offset `origin` on; only once its tag is checked.
    pub fn encrypted(origin: usize, bytes: &'b [u8], keystream: &'b mut Keystream) -> Self {
        Self { origin, bytes, keystream: Some(keystream) }
    }

    fn len(&self) -> usize {
        self.origin + self.bytes.len()
    }

    /// The body's plain bytes at `at`, into `out`.
    fn read(&mut self, at: usize, out: &mut [u8]) -> Result<(), Refusal> {
        let corrupt = || Refusal::cannot_execute(CORRUPT);
        let within = at.checked_sub(self.origin).ok_or(Refusal::failure(FORGOTTEN))?;
        let held = self.bytes.get(within..).and_then(|rest| rest.get(..out.len())).ok_or_else(corrupt)?;
        match &mut self.keystream {
            Some(keystream) => keystream.0.apply_at_into(at as u64, held, out).ok_or_else(corrupt),
            None => {
                out.copy_from_slice(held);
                Ok(())
            }
        }
    }
}

/// The LZ4-chunk decoder's buffers: the chunk decoded last (the partial chunks at a read's ends
/// come from it), and one chunk's compressed bytes (decrypted there, then decoded). Any bytes
/// are valid, zeros included.
#[repr(C)]
pub struct Workspace {
    decoded: [u8; CHUNK_SIZE],
    compressed: [u8; CHUNK_SIZE],
}

impl Workspace {
    pub const fn zeroed() -> Self {
        Self { decoded: [0; CHUNK_SIZE], compressed: [0; CHUNK_SIZE] }
    }
}

/// Where decoding an LZ4-chunk body has got to: the chunk whose length word is at `at`, and
/// which chunk the workspace holds decoded. Any chunk decodes on its own, so reads may come in
/// any order; reading behind the cursor walks the length words again from the start (a few
/// hundred words for 100 MB), or from the first chunk not forgotten, never decodes again what
/// it skips.
#[derive(Clone, Copy, Debug)]
pub struct Chunks {
    size: u64,
    /// The chunk whose length word is at `at`.
    next: u64,
    at: usize,
    /// 1 + the chunk the workspace holds, 0 for none.
    buffered: u64,
    /// Bytes decoded, those decoded twice included (for tests and the benchmark).
    decoded: u64,
    /// The first chunk still read, and where its length word is: a read behind the cursor
    /// walks again from here ([`Chunks::forget_before`]), not from the start.
    floor: (u64, usize),
}

impl Chunks {
    /// The decoder for `body`, whose header declared `program_size`: checks the chunk
    /// structure (one length word for each chunk, each within the body, stored chunks of the
    /// chunk's size, compressed ones shorter, nothing after the last) before anything is
    /// decoded.
    pub fn new(program_size: u64, body: &mut Body) -> Result<Self, Refusal> {
        let count = program_size.div_ceil(CHUNK_SIZE as u64);
        let mut chunks = Self { size: program_size, next: 0, at: 0, buffered: 0, decoded: 0, floor: (0, 0) };
        for index in 0..count {
            let (stored, len) = chunks.chunk(body)?;
            let size = chunks.len_of(index);
            if len == 0 || (stored && len != size) || (!stored && len >= size) {
                return Err(Refusal::cannot_execute(CORRUPT));
            }
            chunks.at += 4 + len;
            chunks.next += 1;
        }
        if chunks.at != body.len() {
            return Err(Refusal::cannot_execute(CORRUPT));
        }
        chunks.next = 0;
        chunks.at = 0;
        Ok(chunks)
    }

    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// The program before `offset` will not be read again (the loader has copied it): the
    /// chunks before it, as far as the cursor has walked, are forgotten, so that the body before
    /// them can be released. Returns where the first chunk still read starts in the body. A
    /// later read of a forgotten chunk is refused, never decoded from released bytes.
    pub fn forget_before(&mut self, offset: u64) -> usize {
        if offset / CHUNK_SIZE as u64 >= self.next {
            self.floor = (self.next, self.at);
        }
        self.floor.1
    }

    /// The decoded size of chunk `index`.
    fn len_of(&self, index: u64) -> usize {
        (self.size - index * CHUNK_SIZE as u64).min(CHUNK_SIZE as u64) as usize
    }

    /// The chunk at the cursor: whether it is stored, and its length, within the body.
    fn chunk(&self, body: &mut Body) -> Result<(bool, usize), Refusal> {
        let mut word = [0u8; 4];
        body.read(self.at, &mut word)?;
        let word = u32::from_le_bytes(word);
        let len = (word & !STORED) as usize;
        match body.len().checked_sub(self.at + 4) {
            Some(rest) if len <= rest => Ok((word & STORED != 0, len)),
            _ => Err(Refusal::cannot_execute(CORRUPT)),
        }
    }

    /// Decode chunk `index` into `out`, exactly its size; `compressed` holds its compressed
    /// bytes meanwhile (`Chunks::new` checked that they are shorter than the chunk).
    fn decode(&mut self, body: &mut Body, index: u64, out: &mut [u8], compressed: &mut [u8]) -> Result<(), Refusal> {
        if index < self.next {
            if index < self.floor.0 {
                return Err(Refusal::failure(FORGOTTEN));
            }
            (self.next, self.at) = self.floor;
        }
        while self.next < index {
            self.at += 4 + self.chunk(body)?.1;
            self.next += 1;
        }
        let (stored, len) = self.chunk(body)?;
        self.decoded += out.len() as u64;
        if stored {
            return body.read(self.at + 4, out);
        }
        let compressed = compressed.get_mut(..len).ok_or(Refusal::cannot_execute(CORRUPT))?;
        body.read(self.at + 4, compressed)?;
        match lz4_flex::block::decompress_into(compressed, out) {
            Ok(len) if len == out.len() => Ok(()),
            _ => Err(Refusal::cannot_execute(CORRUPT)),
        }
    }

    /// The program's bytes at `offset`, as `pread` on the plain file would give them: whole
    /// chunks are decoded (a stored one decrypted) straight into `buf`, the ends through the
    /// workspace, which keeps the last chunk decoded there (the next segment usually starts in
    /// it).
    pub fn read_exact_at(
        &mut self,
        body: &mut Body,
        workspace: &mut Workspace,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), Refusal> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.size)
            .ok_or(Refusal::cannot_execute(WRONG_SIZE))?;
        let mut at = offset;
        while at < end {
            let index = at / CHUNK_SIZE as u64;
            let len = self.len_of(index);
            let within = (at - index * CHUNK_SIZE as u64) as usize;
            let take = ((end - at) as usize).min(len - within);
            let filled = (at - offset) as usize;
            let out = &mut buf[filled..filled + take];
            if take == len && self.buffered != index + 1 {
                self.decode(body, index, out, &mut workspace.compressed)?;
            } else {
                if self.buffered != index + 1 {
                    self.buffered = 0;
                    self.decode(body, index, &mut workspace.decoded[..len], &mut workspace.compressed)?;
                    self.buffered = index + 1;
                }
                out.copy_from_slice(&workspace.decoded[within..within + take]);
            }
            at += take as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_SIZE] = [7; KEY_SIZE];

    const BOTH: [Compressor; 2] = [Compressor::Lz4Chunks, Compressor::Zlib];

    /// An LZ4-chunk body, as preload-seal makes it.
    fn lz4_chunks(program: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for chunk in program.chunks(CHUNK_SIZE) {
            let mut out = vec![0u8; chunk_bound(chunk.len())];
            let len = compress_chunk(chunk, &mut out);
            body.extend_from_slice(&out[..len]);
        }
        body
    }

    fn compress_with(compressor: Compressor, program: &[u8]) -> Vec<u8> {
        match compressor {
            Compressor::Zlib => compress(program),
            Compressor::Lz4Chunks => lz4_chunks(program),
        }
    }

    /// What preload-seal writes: header, encrypted body, tag.
    fn seal_with(compressor: Compressor, program: &[u8], key: &[u8; KEY_SIZE]) -> Vec<u8> {
        let mut body = compress_with(compressor, program);
        let header = Header {
            compressor,
            nonce: [3; NONCE_SIZE],
            program_size: program.len() as u64,
            body_size: body.len() as u64,
        };
        let tag = seal(&Secret(*key), &header, &mut body);
        [&header.encode()[..], &body, &tag].concat()
    }

    fn seal_program(program: &[u8], key: &[u8; KEY_SIZE]) -> Vec<u8> {
        seal_with(Compressor::Lz4Chunks, program, key)
    }

    /// The whole program from a decrypted body, as the shell reads it.
    fn decode_all(compressor: Compressor, body: &[u8], size: u64) -> Result<Vec<u8>, Refusal> {
        let mut program = vec![0u8; size as usize];
        match compressor {
            Compressor::Zlib => {
                let mut state = Box::new(InflateState::new());
                Inflating::new(size, &mut state).read_exact_at(body, &mut state, 0, &mut program)?;
            }
            Compressor::Lz4Chunks => {
                let mut workspace = Box::new(Workspace::zeroed());
                let mut body = Body::plain(body);
                Chunks::new(size, &mut body)?.read_exact_at(&mut body, &mut workspace, 0, &mut program)?;
            }
        }
        Ok(program)
    }

    /// The reading side, as the shell does it: the body authenticated, then a zlib body
    /// decrypted in place and inflated, an LZ4-chunk body decoded as it is decrypted.
    fn unseal(container: &[u8], key: &[u8; KEY_SIZE]) -> Result<Vec<u8>, Refusal> {
        let header_bytes: &[u8; HEADER_SIZE] = container[..HEADER_SIZE].try_into().unwrap();
        let header = Header::parse(header_bytes)?;
        if (container.len() as u64) < header.container_size() {
            return Err(Refusal::cannot_execute(TRUNCATED));
        }
        authenticate(container, key, AUTHENTICATION_PIECE)?;
        let mut body = container[HEADER_SIZE..container.len() - TAG_SIZE].to_vec();
        let mut keystream = Keystream::new(&Secret(*key), &header);
        match header.compressor {
            Compressor::Zlib => {
                keystream.decrypt_at(0, &mut body)?;
                decode_all(header.compressor, &body, header.program_size)
            }
            Compressor::Lz4Chunks => {
                let mut program = vec![0u8; header.program_size as usize];
                let mut workspace = Box::new(Workspace::zeroed());
                let mut body = Body::encrypted(0, &body, &mut keystream);
                let mut chunks = Chunks::new(header.program_size, &mut body)?;
                chunks.read_exact_at(&mut body, &mut workspace, 0, &mut program)?;
                Ok(program)
            }
        }
    }

    /// The tag checked as the shell checks a large container: the body in pieces of `piece`.
    fn authenticate(container: &[u8], key: &[u8; KEY_SIZE], piece: usize) -> Result<(), Refusal> {
        let header_bytes: &[u8; HEADER_SIZE] = container[..HEADER_SIZE].try_into().unwrap();
        let mut auth = Authenticator::new(&Secret(*key), header_bytes)?;
        let tag_at = container.len() - TAG_SIZE;
        for chunk in container[HEADER_SIZE..tag_at].chunks(piece) {
            auth.update(chunk);
        }
        auth.verify(container[tag_at..].try_into().unwrap())
    }

    #[test]
    fn authentication_in_pieces_of_any_size_agrees_with_the_aead() {
        for len in [1, 15, 16, 17, 1000, 200_000] {
            let container = seal_program(&sample(len), &KEY);
            for piece in [16, 64, AUTHENTICATION_PIECE] {
                assert_eq!(authenticate(&container, &KEY, piece), Ok(()), "{len} bytes in pieces of {piece}");
                assert_eq!(
                    authenticate(&container, &[8; KEY_SIZE], piece),
                    Err(Refusal::cannot_execute(AUTHENTICATION_FAILED)),
                    "wrong key"
                );
            }
            for at in [HEADER_SIZE - 1, HEADER_SIZE, container.len() / 2 + HEADER_SIZE / 2, container.len() - 1] {
                let mut flipped = container.clone();
                flipped[at] ^= 0x10;
                let piecewise = authenticate(&flipped, &KEY, 64);
                assert!(piecewise.is_err(), "{len} bytes, byte {at} flipped");
            }
        }
        // A body fed short is refused.
        let container = seal_program(&sample(1000), &KEY);
        let header_bytes: &[u8; HEADER_SIZE] = container[..HEADER_SIZE].try_into().unwrap();
        let mut auth = Authenticator::new(&Secret(KEY), header_bytes).unwrap();
        auth.update(&container[HEADER_SIZE..HEADER_SIZE + 16]);
        assert_eq!(auth.verify(&[0; TAG_SIZE]), Err(Refusal::cannot_execute(TRUNCATED)));
    }

    /// Compressible but not trivial: a text-like pattern with a pseudo-random part.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 5 == 0 { state as u8 } else { b"sealed program "[i % 15] }
            })
            .collect()
    }

    #[test]
    fn header_round_trips_and_is_little_endian() {
        for (compressor, constants) in [(Compressor::Lz4Chunks, [2, 0, 1, 2]), (Compressor::Zlib, [1, 0, 1, 1])] {
            let header = Header { compressor, nonce: *b"0123456789ab", program_size: 0x1234, body_size: 0x100 };
            let bytes = header.encode();
            assert_eq!(&bytes[..8], b"\x7fPRLSEAL");
            assert_eq!(&bytes[8..12], &constants);
            assert_eq!(&bytes[24..26], &[0x34, 0x12]);
            assert_eq!(Header::parse(&bytes), Ok(header));
            assert_eq!(header.container_size(), 40 + 0x100 + 16);
        }
    }

    #[test]
    fn header_refuses_unknown_versions_ids_and_sizes() {
        let good =
            Header { compressor: Compressor::Lz4Chunks, nonce: [0; NONCE_SIZE], program_size: 1000, body_size: 500 }
                .encode();
        let with = |edits: &[(usize, u8)]| {
            let mut bytes = good;
            for &(at, value) in edits {
                bytes[at] = value;
            }
            Header::parse(&bytes)
                .map(|header| header.compressor)
                .map_err(|refusal| (refusal.status as u8, refusal.reason))
        };
        assert_eq!(with(&[]), Ok(Compressor::Lz4Chunks));
        assert_eq!(with(&[(8, 1), (11, 1)]), Ok(Compressor::Zlib));
        assert_eq!(with(&[(0, b'E')]), Err((126, "not a sealed container")));
        assert_eq!(with(&[(8, 3)]), Err((126, BAD_VERSION)));
        assert_eq!(with(&[(8, 0)]), Err((126, BAD_VERSION)));
        assert_eq!(with(&[(9, 1)]), Err((126, BAD_VERSION)));
        assert_eq!(with(&[(10, 2)]), Err((126, BAD_AEAD)));
        assert_eq!(with(&[(11, 0)]), Err((126, BAD_COMPRESSOR)));
        assert_eq!(with(&[(11, 3)]), Err((126, BAD_COMPRESSOR)));
        // Each compressor only with its own version.
        assert_eq!(with(&[(11, 1)]), Err((126, BAD_COMPRESSOR)));
        assert_eq!(with(&[(8, 1)]), Err((126, BAD_COMPRESSOR)));
        let sizes = |program_size, body_size| {
            let header = Header { compressor: Compressor::Lz4Chunks, nonce: [0; NONCE_SIZE], program_size, body_size };
            Header::parse(&header.encode()).map(|_| ())
        };
        assert_eq!(sizes(0, 10), Err(Refusal::cannot_execute(BAD_SIZES)));
        assert_eq!(sizes(MAX_PROGRAM_SIZE + 1, 10), Err(Refusal::cannot_execute(BAD_SIZES)));
        assert_eq!(sizes(MAX_PROGRAM_SIZE, 10), Ok(()));
        assert_eq!(sizes(1000, max_body_size(1000)), Ok(()));
        assert_eq!(sizes(1000, max_body_size(1000) + 1), Err(Refusal::cannot_execute(BAD_SIZES)));
        assert_eq!(sizes(1000, u64::MAX), Err(Refusal::cannot_execute(BAD_SIZES)));
        assert_eq!(sizes(1000, 1), Err(Refusal::cannot_execute(BAD_SIZES)));
    }

    #[test]
    fn magic_is_neither_elf_nor_a_script() {
        assert!(!MAGIC.starts_with(b"\x7fELF") && !MAGIC.starts_with(b"#!"));
        assert!(is_sealed(b"\x7fPRLSEAL\x01\x00"));
        assert!(!is_sealed(b"\x7fPRLSEA"));
    }

    #[test]
    fn seal_then_unseal_gives_the_program_back() {
        for compressor in BOTH {
            for len in [1, 1000, 300_000, CHUNK_SIZE, 2 * CHUNK_SIZE + 1] {
                let program = sample(len);
                let container = seal_with(compressor, &program, &KEY);
                assert_eq!(unseal(&container, &KEY).unwrap(), program, "{compressor:?}, {len} bytes");
            }
            assert!(
                seal_with(compressor, &sample(300_000), &KEY).len() < 200_000,
                "{compressor:?}: the sample compresses"
            );
        }
    }

    #[test]
    fn incompressible_chunks_are_stored() {
        let mut state = 1u64;
        let noise: Vec<u8> = (0..CHUNK_SIZE + 100)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let body = lz4_chunks(&noise);
        assert_eq!(body.len(), noise.len() + 8, "two stored chunks: only their length words are added");
        assert_eq!(&body[..4], &(CHUNK_SIZE as u32 | STORED).to_le_bytes());
        assert_eq!(decode_all(Compressor::Lz4Chunks, &body, noise.len() as u64).unwrap(), noise);
    }

    #[test]
    fn the_body_is_encrypted() {
        let program = vec![b'A'; 10_000];
        for compressor in BOTH {
            let container = seal_with(compressor, &program, &KEY);
            let plain = compress_with(compressor, &program);
            assert_eq!(container.len(), HEADER_SIZE + plain.len() + TAG_SIZE);
            assert_ne!(&container[HEADER_SIZE..HEADER_SIZE + plain.len()], &plain[..]);
        }
    }

    #[test]
    fn every_flipped_bit_wrong_key_or_truncation_fails_authentication() {
        for compressor in BOTH {
            flipped_wrong_or_truncated(compressor);
        }
    }

    fn flipped_wrong_or_truncated(compressor: Compressor) {
        let program = sample(2000);
        let container = seal_with(compressor, &program, &KEY);
        for at in 8..container.len() {
            let mut bad = container.clone();
            bad[at] ^= 0x10;
            let refusal = unseal(&bad, &KEY).unwrap_err();
            assert_eq!(refusal.status as u8, 126, "byte {at}");
            assert!(refusal.reason.starts_with(AUTHENTICATION_FAILED), "byte {at}: {}", refusal.reason);
        }
        let mut wrong = KEY;
        wrong[31] ^= 1;
        assert_eq!(unseal(&container, &wrong), Err(Refusal::cannot_execute(AUTHENTICATION_FAILED)));
        assert_eq!(unseal(&container[..container.len() - 1], &KEY), Err(Refusal::cannot_execute(TRUNCATED)));
    }

    #[test]
    fn a_body_that_inflates_to_another_size_or_not_at_all_is_refused() {
        let program = sample(5000);
        let compressed = compress(&program);
        let read_all = |body: &[u8], declared: u64| {
            let mut state = Box::new(InflateState::new());
            Inflating::new(declared, &mut state).read_exact_at(body, &mut state, 0, &mut vec![0u8; declared as usize])
        };
        for declared in [4999, 5001] {
            assert_eq!(
                read_all(&compressed, declared),
                Err(Refusal::cannot_execute(WRONG_SIZE)),
                "declared {declared}"
            );
        }
        let trailing = [&compressed[..], b"x"].concat();
        assert_eq!(read_all(&trailing, 5000), Err(Refusal::cannot_execute(CORRUPT)));
        assert_eq!(read_all(b"\x78\x9cgarbage", 16), Err(Refusal::cannot_execute(CORRUPT)));
        assert_eq!(read_all(&compressed[..100], 5000), Err(Refusal::cannot_execute(CORRUPT)));
    }

    fn compress(program: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; zlib_rs::compress_bound(program.len())];
        let (compressed, _) = zlib_rs::compress_slice(&mut body, program, zlib_rs::DeflateConfig::default());
        compressed.to_vec()
    }

    #[test]
    fn reads_in_any_order_give_the_program_bytes() {
        let program = sample(500_000);
        let body = compress(&program);
        let mut state = Box::new(InflateState::new());
        let mut inflating = Inflating::new(program.len() as u64, &mut state);
        // Headers, then segments in file order sharing pages, then far back, then the end.
        for (offset, len) in [
            (0, 64),
            (64, 504),
            (0, 4096),
            (4000, 100_000),
            (100_000, 200_000),
            (299_000, 1),
            (10, 20),
            (250_000, 250_000),
        ] {
            let mut buf = vec![0u8; len];
            inflating.read_exact_at(&body, &mut state, offset as u64, &mut buf).unwrap();
            assert!(buf == program[offset..offset + len], "{len} bytes at {offset}");
        }
        assert_eq!(
            inflating.read_exact_at(&body, &mut state, 499_999, &mut [0; 2]),
            Err(Refusal::cannot_execute(WRONG_SIZE))
        );
    }

    #[test]
    fn a_chunk_body_of_another_size_or_shape_is_refused() {
        let program = sample(CHUNK_SIZE + 5000);
        let body = lz4_chunks(&program);
        let corrupt = Err(Refusal::cannot_execute(CORRUPT));
        // Declared sizes that need another number of chunks, or another last chunk.
        for declared in [5000, CHUNK_SIZE as u64, 2 * CHUNK_SIZE as u64 + 1] {
            assert_eq!(Chunks::new(declared, &mut Body::plain(&body)).map(|_| ()), corrupt, "declared {declared}");
        }
        assert_eq!(decode_all(Compressor::Lz4Chunks, &body, program.len() as u64 - 1).map(|_| ()), corrupt);
        assert_eq!(decode_all(Compressor::Lz4Chunks, &body, program.len() as u64 + 1).map(|_| ()), corrupt);
        // Trailing bytes, a cut body, a length word that runs past the end.
        assert_eq!(
            Chunks::new(program.len() as u64, &mut Body::plain(&[&body[..], b"x"].concat())).map(|_| ()),
            corrupt
        );
        assert_eq!(Chunks::new(program.len() as u64, &mut Body::plain(&body[..body.len() - 1])).map(|_| ()), corrupt);
        let mut long = body.clone();
        long[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        assert_eq!(Chunks::new(program.len() as u64, &mut Body::plain(&long)).map(|_| ()), corrupt);
        // A stored chunk of the wrong length; an empty chunk.
        let stored = [&(10u32 | STORED).to_le_bytes()[..], &[0u8; 10]].concat();
        assert_eq!(Chunks::new(11, &mut Body::plain(&stored)).map(|_| ()), corrupt);
        assert_eq!(decode_all(Compressor::Lz4Chunks, &stored, 10).unwrap(), vec![0u8; 10]);
        assert_eq!(Chunks::new(1, &mut Body::plain(&0u32.to_le_bytes())).map(|_| ()), corrupt);
        // A compressed chunk no shorter than the chunk (preload-seal stores those): it would not
        // fit the workspace's place for compressed bytes.
        let unshrunk = [&10u32.to_le_bytes()[..], &[0u8; 10]].concat();
        assert_eq!(Chunks::new(10, &mut Body::plain(&unshrunk)).map(|_| ()), corrupt);
        // LZ4 data that does not decode to the chunk's size: the structure is fine, the read fails.
        let mut garbled = lz4_chunks(&program[..5000]);
        garbled[4] = 0xff;
        garbled[6] ^= 0x55;
        assert_eq!(decode_all(Compressor::Lz4Chunks, &garbled, 5000).map(|_| ()), corrupt);
    }

    #[test]
    fn chunk_reads_in_any_order_decode_each_chunk_about_once() {
        let program = sample(10 * CHUNK_SIZE + 777);
        let plain = lz4_chunks(&program);
        chunk_reads_in_any_order(&program, &mut Body::plain(&plain));
        // As the preloader holds it: encrypted, decrypted only as it is read.
        let header =
            Header { compressor: Compressor::Lz4Chunks, nonce: [3; NONCE_SIZE], program_size: 0, body_size: 0 };
        let mut encrypted = plain.clone();
        seal(&Secret(KEY), &header, &mut encrypted);
        assert_ne!(encrypted, plain);
        let mut keystream = Keystream::new(&Secret(KEY), &header);
        chunk_reads_in_any_order(&program, &mut Body::encrypted(0, &encrypted, &mut keystream));
    }

    fn chunk_reads_in_any_order(program: &[u8], body: &mut Body) {
        let mut workspace = Box::new(Workspace::zeroed());
        let mut chunks = Chunks::new(program.len() as u64, body).unwrap();
        // Segments in reverse file order, sharing their boundary chunks, then the headers again.
        let pieces = [
            (8 * CHUNK_SIZE + 100, 2 * CHUNK_SIZE + 677),
            (3 * CHUNK_SIZE + 4096, 5 * CHUNK_SIZE - 3996),
            (4096, 3 * CHUNK_SIZE),
            (0, 4096),
            (0, 64),
        ];
        let mut read = |chunks: &mut Chunks, body: &mut Body, (offset, len): (usize, usize)| {
            let mut buf = vec![0u8; len];
            chunks.read_exact_at(body, &mut workspace, offset as u64, &mut buf).unwrap();
            assert!(buf == program[offset..offset + len], "{len} bytes at {offset}");
        };
        for piece in pieces {
            read(&mut chunks, body, piece);
        }
        // At most the two partial chunks at a read's ends again: nothing is decoded from the start.
        assert!(
            chunks.decoded() <= (program.len() + 2 * pieces.len() * CHUNK_SIZE) as u64,
            "decoded {} bytes of {}",
            chunks.decoded(),
            program.len()
        );
        // In file order, every chunk exactly once.
        let mut in_order = Chunks::new(program.len() as u64, body).unwrap();
        for piece in pieces.iter().rev().skip(1) {
            read(&mut in_order, body, *piece);
        }
        assert_eq!(in_order.decoded(), program.len() as u64);
        assert_eq!(
            chunks.read_exact_at(body, &mut workspace, program.len() as u64 - 1, &mut [0; 2]),
            Err(Refusal::cannot_execute(WRONG_SIZE))
        );
    }

    #[test]
    fn forgotten_chunks_are_refused_and_the_rest_reads_from_what_is_kept() {
        let program = sample(6 * CHUNK_SIZE + 99);
        let header =
            Header { compressor: Compressor::Lz4Chunks, nonce: [3; NONCE_SIZE], program_size: 0, body_size: 0 };
        let mut body = lz4_chunks(&program);
        seal(&Secret(KEY), &header, &mut body);
        let mut keystream = Keystream::new(&Secret(KEY), &header);
        let mut workspace = Box::new(Workspace::zeroed());
        let mut chunks = Chunks::new(program.len() as u64, &mut Body::encrypted(0, &body, &mut keystream)).unwrap();
        let mut first = vec![0u8; 3 * CHUNK_SIZE];
        chunks.read_exact_at(&mut Body::encrypted(0, &body, &mut keystream), &mut workspace, 0, &mut first).unwrap();
        // The cursor is at chunk 2: it and what follows are kept, and read from there.
        let kept = chunks.forget_before(3 * CHUNK_SIZE as u64);
        assert!(kept > CHUNK_SIZE && kept < 3 * CHUNK_SIZE, "chunk 2 starts at {kept}");
        let mut read = |offset: usize, len: usize| {
            let mut buf = vec![0u8; len];
            let mut held = Body::encrypted(kept, &body[kept..], &mut keystream);
            chunks.read_exact_at(&mut held, &mut workspace, offset as u64, &mut buf).map(|()| buf)
        };
        assert_eq!(read(5 * CHUNK_SIZE, CHUNK_SIZE + 99).unwrap(), &program[5 * CHUNK_SIZE..]);
        assert_eq!(read(2 * CHUNK_SIZE + 5, 2 * CHUNK_SIZE).unwrap(), &program[2 * CHUNK_SIZE + 5..][..2 * CHUNK_SIZE]);
        for offset in [0, CHUNK_SIZE + 1, 2 * CHUNK_SIZE - 1] {
            assert_eq!(read(offset, 10), Err(Refusal::failure(FORGOTTEN)), "read at {offset}");
        }
    }

    #[test]
    fn zlib_reads_behind_the_ring_inflate_again_from_the_start() {
        let program = sample(500_000);
        let body = compress(&program);
        let mut state = Box::new(InflateState::new());
        let mut inflating = Inflating::new(program.len() as u64, &mut state);
        let mut buf = vec![0u8; 100_000];
        inflating.read_exact_at(&body, &mut state, 400_000, &mut buf).unwrap();
        inflating.read_exact_at(&body, &mut state, 300_000, &mut buf).unwrap();
        assert_eq!(inflating.restarts(), 1, "reverse order: the loader must read a zlib body in file order");
        inflating.read_exact_at(&body, &mut state, 395_000, &mut buf).unwrap();
        assert_eq!(inflating.restarts(), 1, "within the ring");
    }

    #[test]
    fn keys_are_raw_or_hex() {
        let mut key = Key::zeroed();
        assert_eq!(parse_key(&[9; 32], &mut key), Ok(()));
        assert_eq!(key.0, [9; 32]);
        let hex = b"000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n";
        assert_eq!(parse_key(hex, &mut key), Ok(()));
        assert_eq!(key.0, core::array::from_fn(|i| i as u8));
        assert_eq!(parse_key(&hex[..64], &mut key), Ok(()));
        assert!(parse_key(&hex[..63], &mut key).is_err());
        assert!(parse_key(&[9; 33], &mut key).is_err());
        assert!(parse_key(b"zz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", &mut key).is_err());
        assert!(parse_key(b"", &mut key).is_err());
    }

    #[test]
    fn wipe_zeroes_every_byte_at_any_alignment() {
        let mut bytes = [0xa5u8; 67];
        wipe(&mut bytes[3..]);
        assert_eq!(&bytes[..3], &[0xa5; 3]);
        assert!(bytes[3..].iter().all(|&b| b == 0));
        let mut secret = core::mem::ManuallyDrop::new(Secret([1u8; 4]));
        // SAFETY: dropped once; afterwards only its plain bytes are read.
        unsafe { core::mem::ManuallyDrop::drop(&mut secret) };
        assert_eq!(secret.0, [0; 4]);
    }
}
