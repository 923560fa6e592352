//! What to run: PROGRAM found as execvp(3) finds it, and `#!` scripts followed as the kernel
//! follows them.

pub mod script;
pub mod search;
