//! ChaCha20-Poly1305 (RFC 8439) over a body in place, with a detached tag: the two operations
//! preload's sealed containers need, as plain functions.
//!
//! Why a crate of its own: the cipher's code is generic, so it is compiled (monomorphised) in
//! the crate that names the concrete types, with that crate's opt-level. preload builds at
//! opt-level "z" for size, where ChaCha20 runs at about a sixth of its speed; naming the types
//! here, in a crate the root Cargo.toml builds at opt-level 3, keeps the speed while the rest
//! stays small. Which backends are used is chosen by the `chacha20_backend` and
//! `poly1305_backend` cfgs in .cargo/config.toml.
#![no_std]

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

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
