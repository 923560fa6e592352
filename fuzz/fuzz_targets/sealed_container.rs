//! Sealed containers (`sealed`): `Header::parse` and `encode`, `parse_key`, `seal`, the
//! `Authenticator` and the `Keystream`, and the on-demand decoders the loader reads the program
//! through: `Chunks` (LZ4 chunks, format 2, over a plain body or an encrypted one decrypted as
//! it is read) and `Inflating` (zlib, format 1).
//!
//! Checks: arbitrary header bytes never panic; an accepted header has its sizes within the
//! documented bounds (program 1..=MAX_PROGRAM_SIZE, body 2..=max_body_size), a container size
//! that does not overflow, and encodes back to the same bytes; a key is accepted exactly when
//! it is 32 raw bytes or 64 hex digits with an optional newline, and decodes to those bytes;
//! authentication with arbitrary keys, headers, bodies and tags never panics, and accepts what
//! `seal` made (and nothing with one bit changed); the keystream decrypts what `seal` encrypted;
//! reads of a well-formed body (LZ4 chunks, plain or still encrypted, or zlib) at any offsets,
//! in any order, give exactly the program's bytes, and so do reads in file order from what is
//! kept of an encrypted body whose chunks before each read are forgotten (released, as the
//! preloader does behind its copy); an arbitrary body, chunked (plain or through the keystream)
//! or zlib, is refused rather than read past.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use preload::input::sealed::{
    self, AUTHENTICATION_PIECE, Authenticator, Body, CHUNK_SIZE, Chunks, Compressor, HEADER_SIZE, Header, InflateState,
    Inflating, KEY_SIZE, Keystream, MAGIC, MAX_PROGRAM_SIZE, Secret, TAG_SIZE, Workspace,
};

#[derive(Arbitrary, Debug)]
struct Input {
    header: [u8; HEADER_SIZE],
    /// Bits 0-3 put the constant fields (magic, version, AEAD, compressor) in place, so that
    /// the sizes are reached; bit 4 picks zlib (format 1) over LZ4 chunks (format 2), for those
    /// constants and for the round trip.
    constants: u8,
    key_text: Vec<u8>,
    body: Vec<u8>,
    tag: [u8; TAG_SIZE],
    /// The program to seal, repeated `repeat` times (and `chunks` times more for LZ4, to reach
    /// past the inflater's ring and over several chunks).
    program: Vec<u8>,
    repeat: u8,
    chunks: u16,
    level: u8,
    /// Bit to flip in the sealed container (header, body or tag).
    flip: u32,
    /// Reads (offset, length) through the inflater.
    reads: Vec<(u32, u16)>,
}

fuzz_target!(|input: Input| {
    let mut header_bytes = input.header;
    let compressor = if input.constants & 16 != 0 { Compressor::Zlib } else { Compressor::Lz4Chunks };
    let constants = Header { compressor, nonce: [0; 12], program_size: 0, body_size: 0 }.encode();
    for (bit, range) in [(0, 0..8), (1, 8..10), (2, 10..11), (3, 11..12)] {
        if input.constants & (1 << bit) != 0 {
            header_bytes[range.clone()].copy_from_slice(&constants[range]);
        }
    }
    check_header(&header_bytes);
    let key = check_key(&input.key_text);
    let key = key.unwrap_or(Secret::zeroed());

    // Arbitrary containers: authenticated or not, never a panic.
    let _ = authenticate(&key, &header_bytes, &input.body, &input.tag);
    let parsed = Header::parse(&header_bytes);
    let declared = parsed.as_ref().map_or(input.body.len() as u64, |h| h.program_size.min(1 << 22));
    for compressor in [Compressor::Zlib, Compressor::Lz4Chunks] {
        check_decode(compressor, &input.body, declared, &input.reads, None);
    }
    // An arbitrary body through the keystream too, as the preloader reads an LZ4 one.
    if let Ok(header) = &parsed {
        check_decode(Compressor::Lz4Chunks, &input.body, declared, &input.reads, Some((&key, header)));
    }

    let repeat = usize::from(input.repeat % 64).max(1);
    let program = match compressor {
        Compressor::Zlib => input.program.repeat(repeat),
        // Up to about 4 chunks: every chunk boundary and the short last chunk are reached.
        Compressor::Lz4Chunks => {
            let len = (input.program.len() * repeat).max(usize::from(input.chunks) * 64).min(4 * CHUNK_SIZE + 1000);
            input.program.iter().copied().cycle().take(len).collect()
        }
    };
    if program.is_empty() {
        return;
    }
    let compressed = match compressor {
        Compressor::Zlib => {
            let config = zlib_rs::DeflateConfig::new(i32::from(input.level % 10));
            let mut compressed = vec![0u8; zlib_rs::compress_bound(program.len())];
            let (compressed, rc) = zlib_rs::compress_slice(&mut compressed, &program, config);
            assert_eq!(rc, zlib_rs::ReturnCode::Ok);
            compressed.to_vec()
        }
        Compressor::Lz4Chunks => {
            let mut body = Vec::new();
            let mut out = vec![0u8; sealed::chunk_bound(CHUNK_SIZE)];
            for chunk in program.chunks(CHUNK_SIZE) {
                let len = sealed::compress_chunk(chunk, &mut out);
                body.extend_from_slice(&out[..len]);
            }
            body
        }
    };
    check_round_trip(&key, &input, compressor, &program, compressed);
});

fn check_header(bytes: &[u8; HEADER_SIZE]) {
    match Header::parse(bytes) {
        Ok(header) => {
            assert!(bytes.starts_with(&MAGIC));
            assert!((1..=MAX_PROGRAM_SIZE).contains(&header.program_size), "{header:?}");
            assert!((2..=sealed::max_body_size(header.program_size)).contains(&header.body_size), "{header:?}");
            assert!(
                header
                    .body_size
                    .checked_add((HEADER_SIZE + TAG_SIZE) as u64)
                    .is_some_and(|size| size == header.container_size())
            );
            assert_eq!(&header.encode(), bytes, "parse, encode: other bytes");
        }
        Err(refusal) => {
            assert!(
                refusal.reason.starts_with(sealed::AUTHENTICATION_FAILED) || !sealed::is_sealed(bytes),
                "{refusal:?}"
            );
        }
    }
}

fn check_key(text: &[u8]) -> Option<sealed::Key> {
    let mut key = Secret::zeroed();
    let parsed = sealed::parse_key(text, &mut key);
    let hex = text.strip_suffix(b"\n").unwrap_or(text);
    let expected: Option<Vec<u8>> = match text.len() {
        KEY_SIZE => Some(text.to_vec()),
        _ if hex.len() == 2 * KEY_SIZE && hex.iter().all(u8::is_ascii_hexdigit) => Some(
            hex.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect(),
        ),
        _ => None,
    };
    assert_eq!(parsed.is_ok(), expected.is_some(), "{text:?}");
    let expected = expected?;
    assert_eq!(key.0.as_slice(), expected.as_slice());
    Some(key)
}

/// The preloader's check of a body it holds: every piece as it is read.
fn authenticate(key: &sealed::Key, header_bytes: &[u8; HEADER_SIZE], body: &[u8], tag: &[u8; TAG_SIZE]) -> bool {
    let Ok(mut auth) = Authenticator::new(key, header_bytes) else { return false };
    body.chunks(AUTHENTICATION_PIECE).for_each(|piece| auth.update(piece));
    auth.verify(tag).is_ok()
}

/// A decoder for `body` of `compressor`, as the shell keeps it (an LZ4-chunk body decrypted as
/// it is read when a keystream is given); `None` when the body's structure is refused up front
/// (LZ4 chunks).
enum Decoder {
    Zlib(Inflating, Box<InflateState>),
    Chunks(Chunks, Box<Workspace>, Option<Keystream>),
}

/// What an encrypted body's keystream is made from.
type Sealing<'a> = Option<(&'a sealed::Key, &'a Header)>;

impl Decoder {
    fn new(compressor: Compressor, body: &[u8], size: u64, sealing: Sealing) -> Option<Self> {
        match compressor {
            Compressor::Zlib => {
                let mut state = Box::new(InflateState::new());
                Some(Decoder::Zlib(Inflating::new(size, &mut state), state))
            }
            Compressor::Lz4Chunks => {
                let mut keystream = sealing.map(|(key, header)| Keystream::new(key, header));
                let chunks = Chunks::new(size, &mut held(body, 0, keystream.as_mut())).ok()?;
                Some(Decoder::Chunks(chunks, Box::new(Workspace::zeroed()), keystream))
            }
        }
    }

    fn read(&mut self, body: &[u8], offset: u64, buf: &mut [u8]) -> bool {
        self.read_kept(body, 0, offset, buf)
    }

    /// A read from what is kept of an LZ4-chunk body: `body[kept..]`, as the preloader holds it
    /// once it has released the rest (`Chunks::forget_before`).
    fn read_kept(&mut self, body: &[u8], kept: usize, offset: u64, buf: &mut [u8]) -> bool {
        match self {
            Decoder::Zlib(inflating, state) => inflating.read_exact_at(body, state, offset, buf).is_ok(),
            Decoder::Chunks(chunks, workspace, keystream) => {
                chunks.read_exact_at(&mut held(body, kept, keystream.as_mut()), workspace, offset, buf).is_ok()
            }
        }
    }
}

/// `body` from `kept` on (what is before it released), read through the keystream if given.
fn held<'b>(body: &'b [u8], kept: usize, keystream: Option<&'b mut Keystream>) -> Body<'b> {
    match keystream {
        Some(keystream) => Body::encrypted(kept, &body[kept..], keystream),
        None => {
            assert_eq!(kept, 0, "only the preloader's encrypted body is released");
            Body::plain(body)
        }
    }
}

/// Reads through the decoder: each either refused or, when the whole program decodes, the
/// program's bytes at that offset.
fn check_decode(compressor: Compressor, body: &[u8], program_size: u64, reads: &[(u32, u16)], sealing: Sealing) {
    let mut whole = vec![0u8; program_size as usize];
    let complete =
        Decoder::new(compressor, body, program_size, sealing).is_some_and(|mut d| d.read(body, 0, &mut whole));
    let Some(mut decoder) = Decoder::new(compressor, body, program_size, sealing) else { return };
    for &(offset, len) in reads {
        let (offset, mut buf) = (u64::from(offset) % (program_size + 1), vec![0u8; usize::from(len)]);
        if decoder.read(body, offset, &mut buf) {
            assert_eq!(buf, whole[offset as usize..][..buf.len()], "{compressor:?}: read at {offset}");
        } else {
            assert!(
                !complete || offset + buf.len() as u64 > program_size,
                "{compressor:?}: read at {offset}+{} refused",
                buf.len()
            );
        }
    }
    // As the loader copies a sealed program: in file order, forgetting what lies before each read
    // and reading from what is kept of the body. No read in that order meets a forgotten chunk.
    let Some(mut decoder) = Decoder::new(compressor, body, program_size, sealing) else { return };
    let mut in_order: Vec<(u64, usize)> =
        reads.iter().map(|&(offset, len)| (u64::from(offset) % (program_size + 1), usize::from(len))).collect();
    in_order.sort_unstable();
    let mut kept = 0;
    for (offset, len) in in_order {
        if let Decoder::Chunks(chunks, _, Some(_)) = &mut decoder {
            kept = chunks.forget_before(offset);
        }
        let mut buf = vec![0u8; len];
        if decoder.read_kept(body, kept, offset, &mut buf) {
            assert_eq!(buf, whole[offset as usize..][..len], "{compressor:?}: read at {offset}, {kept} kept");
        } else {
            assert!(
                !complete || offset + len as u64 > program_size,
                "{compressor:?}: in order, read at {offset}+{len}"
            );
        }
    }
}

fn check_round_trip(key: &sealed::Key, input: &Input, compressor: Compressor, program: &[u8], compressed: Vec<u8>) {
    let header = Header {
        compressor,
        nonce: input.header[..12].try_into().unwrap(),
        program_size: program.len() as u64,
        body_size: compressed.len() as u64,
    };
    let header_bytes = header.encode();
    assert_eq!(Header::parse(&header_bytes), Ok(header), "what preload-seal writes must parse");
    let mut body = compressed.clone();
    let tag = sealed::seal(key, &header, &mut body);
    assert!(compressed.len() < 16 || body != compressed, "the body was not encrypted");

    // One bit changed anywhere in the container: refused.
    let mut container = [&header_bytes[..], &body, &tag].concat();
    let bit = input.flip as usize % (container.len() * 8);
    container[bit / 8] ^= 1 << (bit % 8);
    let (flipped_header, rest) = container.split_at(HEADER_SIZE);
    let (flipped_body, flipped_tag) = rest.split_at(rest.len() - TAG_SIZE);
    assert!(
        !authenticate(key, flipped_header.try_into().unwrap(), flipped_body, flipped_tag.try_into().unwrap()),
        "bit {bit} flipped, still authentic"
    );
    assert!(authenticate(key, &header_bytes, &body, &tag), "sealed with this key");

    // As the preloader reads it: an LZ4-chunk body still encrypted, decrypted as it is read; a
    // zlib one decrypted in place first.
    let sealing = match compressor {
        Compressor::Lz4Chunks => Some((key, &header)),
        Compressor::Zlib => {
            Keystream::new(key, &header).decrypt_at(0, &mut body).expect("within the nonce's keystream");
            assert_eq!(body, compressed);
            None
        }
    };
    check_decode(compressor, &body, header.program_size, &input.reads, sealing);
    let mut out = vec![0u8; program.len()];
    let mut decoder =
        Decoder::new(compressor, &body, header.program_size, sealing).expect("a sealed body's structure is accepted");
    assert!(decoder.read(&body, 0, &mut out), "{compressor:?}: a sealed body decodes");
    assert_eq!(out, program);
}
