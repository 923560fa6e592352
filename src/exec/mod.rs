//! What to run: PROGRAM found as execvp(3) finds it, `#!` scripts followed as the kernel
//! follows them, and the argv and E2BIG check that result.

pub mod args;
pub mod binfmt;
pub mod script;
pub mod search;
