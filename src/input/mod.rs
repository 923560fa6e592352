//! How a program's bytes arrive when they are not a plain file: a stream (pipe, socket,
//! terminal) or a sealed container.

#[cfg(feature = "sealed")]
pub mod sealed;
pub mod stream;
