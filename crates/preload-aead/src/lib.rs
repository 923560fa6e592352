//! ChaCha20-Poly1305 (RFC 8439) over a body in place, with a detached tag: the two operations
//! preload's sealed containers need, as plain functions.
//!
//! Why a crate of its own: the cipher's code is generic, so it is compiled (monomorphised) in
//! the crate that names the concrete types, with that crate's opt-level. preload builds at
//! opt-level "z" for size, where ChaCha20 runs at about a sixth of its speed; naming the types
//! here, in a crate the root Cargo.toml builds at opt-level 3, keeps the speed while the rest
//! stays small. The backends (AVX2, SSE2, portable) are chosen at run time: see .cargo/config.toml.
#![no_std]

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
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

/// Check `tag` over `aad` and `body`, and only then decrypt `body` in place: on failure the
/// body is left as it was.
#[inline(never)]
pub fn open(key: &[u8; KEY_SIZE], nonce: &[u8; NONCE_SIZE], aad: &[u8], body: &mut [u8], tag: &[u8; TAG_SIZE]) -> bool {
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher.decrypt_inout_detached(&Nonce::from(*nonce), aad, body.into(), &Tag::from(*tag)).is_ok()
}

/// The tag of [`open`] computed over a body fed in pieces (RFC 8439 2.8: Poly1305 keyed with the
/// first 32 bytes of the ChaCha20 keystream, over `aad` padded to 16 bytes, the body padded, and
/// both lengths), so that a body can be authenticated without being held whole. It decrypts
/// nothing.
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
