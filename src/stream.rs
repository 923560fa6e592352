//! Programs that arrive as a stream of bytes in file order rather than as a file that can be
//! mapped: a pipe, a socket, a terminal, or the plaintext of a sealed container.

use crate::error::Refusal;

/// The program's bytes, from offset 0 onwards, each exactly once.
pub trait ByteStream {
    /// Fill the start of `buf` with the next bytes and say how many; `Ok(0)` only at the end
    /// of the program (or when `buf` is empty).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Refusal>;
}
