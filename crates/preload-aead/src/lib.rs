//! ChaCha20-Poly1305 (RFC 8439) with a detached tag, for preload's sealed containers: sealing
//! a body in place (the AEAD crate's own code), authenticating one in pieces, and decrypting an
//! authenticated one at any offset (straight to where its bytes are needed, so that no plaintext
//! copy of the body is made).
//!
//! Why a crate of its own: the cipher's code is generic, so it is compiled (monomorphised) in
//! the crate that names the concrete types, with that crate's opt-level. preload builds at
//! opt-level "z" for size, where ChaCha20 runs at about a sixth of its speed; naming the types
//! here, in a crate the root Cargo.toml builds at opt-level 3, keeps the speed while the rest
//! stays small. The backends (AVX2, SSE2, portable) are chosen at run time: see .cargo/config.toml.
#![no_std]

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use poly1305::Poly1305;
use poly1305::universal_hash::UniversalHash;

pub const KEY_SIZE: usize = 32;
pub const NONCE_SIZE: usize = 12;
pub const TAG_SIZE: usize = 16;

/// Encrypt `body` in place and return the tag over `aad` and the ciphertext. `None` only for a
/// body over 256 GiB.
#[inline(never)]
pub fn seal(key: &[u8; KEY_SIZE], nonce: &[u8; NONCE_SIZE], aad: &[u8], body: &mut [u8]) -> Option<[u8; TAG_SIZE]> {
    // The cipher's copy of the key is wiped when it is dropped (the crate's zeroize feature).
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher.encrypt_inout_detached(&Nonce::from(*nonce), aad, body.into()).ok().map(Into::into)
}

/// The tag of [`seal`] computed over a body fed in pieces (RFC 8439 2.8: Poly1305 keyed with the
/// first 32 bytes of the ChaCha20 keystream, over `aad` padded to 16 bytes, the body padded, and
/// both lengths), so that a body can be authenticated as it is read, or without being held whole.
/// It decrypts nothing.
pub struct Authenticator {
    mac: Poly1305,
    aad_len: u64,
    body_len: u64,
}

impl Authenticator {
    #[inline(never)]
    pub fn new(key: &[u8; KEY_SIZE], nonce: &[u8; NONCE_SIZE], aad: &[u8]) -> Self {
        let mut one_time = [0u8; 32];
        // The keystream's copy of the key is wiped when it is dropped (zeroize).
        let mut keystream = ChaCha20::new(key.into(), nonce.into());
        keystream.apply_keystream(&mut one_time);
        drop(keystream);
        let mut mac = Poly1305::new((&one_time).into());
        // Overwritten (black_box keeps the stores); the shell also wipes the stack it was on.
        one_time.fill(0);
        core::hint::black_box(&one_time);
        mac.update_padded(aad);
        Self { mac, aad_len: aad.len() as u64, body_len: 0 }
    }

    /// The next `piece` of the body: every piece but the last must be a whole number of 16-byte
    /// blocks.
    #[inline(never)]
    pub fn update(&mut self, piece: &[u8]) {
        debug_assert!(self.body_len.is_multiple_of(16), "only the last piece may end inside a block");
        self.mac.update_padded(piece);
        self.body_len += piece.len() as u64;
    }

    /// How many body bytes were fed.
    pub fn fed(&self) -> u64 {
        self.body_len
    }

    /// Whether `tag` is the tag over `aad` and the body fed (constant-time comparison).
    #[inline(never)]
    pub fn verify(mut self, tag: &[u8; TAG_SIZE]) -> bool {
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&self.aad_len.to_le_bytes());
        lengths[8..].copy_from_slice(&self.body_len.to_le_bytes());
        self.mac.update_padded(&lengths);
        self.mac.verify(&(*tag).into()).is_ok()
    }
}

/// The ChaCha20 keystream that encrypts a body (RFC 8439 2.8: counter 1 at the body's first
/// byte; block 0 keys Poly1305), to decrypt any part of an authenticated body where it is
/// needed. Its copy of the key is wiped when it is dropped (zeroize).
pub struct Keystream(ChaCha20);

/// The keystream bytes before the body's first: block 0.
const BODY_START: u64 = 64;

impl Keystream {
    #[inline(never)]
    pub fn new(key: &[u8; KEY_SIZE], nonce: &[u8; NONCE_SIZE]) -> Self {
        Self(ChaCha20::new(key.into(), nonce.into()))
    }

    /// XOR `output` (the body's bytes at `offset`, copied or encrypted in place) with the
    /// keystream there. `None` past the 256 GiB a nonce covers.
    #[inline(never)]
    pub fn apply_at(&mut self, offset: u64, output: &mut [u8]) -> Option<()> {
        self.0.try_seek(BODY_START.checked_add(offset)?).ok()?;
        self.0.try_apply_keystream(output).ok()
    }

    /// Decrypt `input`, the body's bytes at `offset`, into `output` (of the same length):
    /// one pass, no copy of the plaintext but `output`. `None` for different lengths or past
    /// the 256 GiB a nonce covers.
    #[inline(never)]
    pub fn apply_at_into(&mut self, offset: u64, input: &[u8], output: &mut [u8]) -> Option<()> {
        self.0.try_seek(BODY_START.checked_add(offset)?).ok()?;
        self.0.try_apply_keystream_b2b(input, output).ok()
    }
}
