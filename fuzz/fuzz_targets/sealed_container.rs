//! Sealed containers (`sealed`): `Header::parse` and `encode`, `parse_key`, `seal` and `open`,
//! and `Inflating`, the on-demand inflater the loader reads the program through.
//!
//! Checks: arbitrary header bytes never panic; an accepted header has its sizes within the
//! documented bounds (program 1..=MAX_PROGRAM_SIZE, body 2..=max_body_size), a container size
//! that does not overflow, and encodes back to the same bytes; a key is accepted exactly when
//! it is 32 raw bytes or 64 hex digits with an optional newline, and decodes to those bytes;
//! `open` with arbitrary keys, headers, bodies and tags never panics, and authenticates what
//! `seal` made (and nothing with one bit changed), restoring the body; reads of a well-formed
//! zlib body at any offsets, in any order, give exactly the program's bytes, and an arbitrary
//! body is refused rather than read past.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use preload::input::sealed::{
    self, HEADER_SIZE, Header, InflateState, Inflating, KEY_SIZE, MAGIC, MAX_PROGRAM_SIZE, Secret, TAG_SIZE,
};

#[derive(Arbitrary, Debug)]
struct Input {
    header: [u8; HEADER_SIZE],
    /// Bits 0-3 put the constant fields (magic, version, AEAD, compressor) in place, so that
    /// the sizes are reached.
    constants: u8,
    key_text: Vec<u8>,
    body: Vec<u8>,
    tag: [u8; TAG_SIZE],
    /// The program to seal, repeated `repeat` times to reach past the inflater's ring.
    program: Vec<u8>,
    repeat: u8,
    level: u8,
    /// Bit to flip in the sealed container (header, body or tag).
    flip: u32,
    /// Reads (offset, length) through the inflater.
    reads: Vec<(u32, u16)>,
}

fuzz_target!(|input: Input| {
    let mut header_bytes = input.header;
    let constants = Header { nonce: [0; 12], program_size: 0, body_size: 0 }.encode();
    for (bit, range) in [(0, 0..8), (1, 8..10), (2, 10..11), (3, 11..12)] {
        if input.constants & (1 << bit) != 0 {
            header_bytes[range.clone()].copy_from_slice(&constants[range]);
        }
    }
    check_header(&header_bytes);
    let key = check_key(&input.key_text);
    let key = key.unwrap_or(Secret::zeroed());

    // Arbitrary containers: refused or not, never a panic, and a refused body stays as it was.
    let mut body = input.body.clone();
    if sealed::open(&key, &header_bytes, &mut body, &input.tag).is_err() {
        assert_eq!(body, input.body, "a refused body was changed");
    }
    check_inflate(
        &input.body,
        Header::parse(&header_bytes).map_or(input.body.len() as u64, |h| h.program_size.min(1 << 20)),
        &input.reads,
    );

    let program = input.program.repeat(usize::from(input.repeat % 64).max(1));
    if program.is_empty() {
        return;
    }
    let config = zlib_rs::DeflateConfig::new(i32::from(input.level % 10));
    let mut compressed = vec![0u8; zlib_rs::compress_bound(program.len())];
    let (compressed, rc) = zlib_rs::compress_slice(&mut compressed, &program, config);
    assert_eq!(rc, zlib_rs::ReturnCode::Ok);
    check_round_trip(&key, &input, &program, compressed.to_vec());
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

/// Reads through the inflater: each either refused or, when the whole program inflates, the
/// program's bytes at that offset.
fn check_inflate(body: &[u8], program_size: u64, reads: &[(u32, u16)]) {
    let mut state = Box::new(InflateState::new());
    let mut whole = vec![0u8; program_size as usize];
    let complete = Inflating::new(program_size, &mut state).read_exact_at(body, &mut state, 0, &mut whole).is_ok();
    let mut inflating = Inflating::new(program_size, &mut state);
    for &(offset, len) in reads {
        let (offset, mut buf) = (u64::from(offset) % (program_size + 1), vec![0u8; usize::from(len)]);
        match inflating.read_exact_at(body, &mut state, offset, &mut buf) {
            Ok(()) => assert_eq!(buf, whole[offset as usize..][..buf.len()], "read at {offset}"),
            Err(_) => {
                assert!(!complete || offset + buf.len() as u64 > program_size, "read at {offset}+{} refused", buf.len())
            }
        }
    }
}

fn check_round_trip(key: &sealed::Key, input: &Input, program: &[u8], compressed: Vec<u8>) {
    let header = Header {
        nonce: input.header[..12].try_into().unwrap(),
        program_size: program.len() as u64,
        body_size: compressed.len() as u64,
    };
    let header_bytes = header.encode();
    assert_eq!(Header::parse(&header_bytes), Ok(header), "what preload-seal writes must parse");
    let mut body = compressed.clone();
    let tag = sealed::seal(key, &header, &mut body);
    assert!(compressed.len() < 16 || body != compressed, "the body was not encrypted");

    // One bit changed anywhere in the container: refused, body untouched.
    let mut container = [&header_bytes[..], &body, &tag].concat();
    let bit = input.flip as usize % (container.len() * 8);
    container[bit / 8] ^= 1 << (bit % 8);
    let (flipped_header, rest) = container.split_at(HEADER_SIZE);
    let (flipped_body, flipped_tag) = rest.split_at(rest.len() - TAG_SIZE);
    let mut flipped_body = flipped_body.to_vec();
    assert!(
        sealed::open(key, flipped_header.try_into().unwrap(), &mut flipped_body, flipped_tag.try_into().unwrap())
            .is_err(),
        "bit {bit} flipped, still authentic"
    );
    assert_eq!(flipped_body, &rest[..rest.len() - TAG_SIZE]);

    sealed::open(key, &header_bytes, &mut body, &tag).expect("sealed with this key");
    assert_eq!(body, compressed);
    check_inflate(&body, header.program_size, &input.reads);
    let mut state = Box::new(InflateState::new());
    let mut out = vec![0u8; program.len()];
    Inflating::new(header.program_size, &mut state)
        .read_exact_at(&body, &mut state, 0, &mut out)
        .expect("a zlib body inflates");
    assert_eq!(out, program);
}
