//! The runtime a no_std binary provides itself.

pub mod rt;
