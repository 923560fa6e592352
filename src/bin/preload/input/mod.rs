//! Opening what to run ([`source`]): a file found by path, a descriptor, a stream taken into a
//! memfd ([`stream`]), or a sealed container opened with its key ([`sealed`]).

#[cfg(feature = "sealed")]
pub mod sealed;
pub mod source;
pub mod stream;
