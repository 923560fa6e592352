//! How a program's bytes arrive when they are not a plain file: a stream (pipe, socket,
//! terminal) or a sealed container.

#[cfg(feature = "sealed")]
pub mod sealed;
pub mod stream;

/// How much of a program is read up front: the ELF header, the `#!` line, and the program
/// headers and PT_INTERP of typical programs (up to 17 entries), used in place; a larger table
/// takes a mapping and one more read.
pub const HEAD_SIZE: usize = 1024;
