//! The layer that talks to the kernel: the only place, with the arch file, that holds unsafe
//! code. Every raw mmap/mprotect/mremap/munmap is in [`mem`], every read and write loop (EINTR
//! retried) in [`io`]; [`initial_stack`] reads what the kernel handed the preloader, [`image`]
//! is the preloader's own image, [`proc`] the process fields, [`rt`] what a no_std binary
//! provides itself, and [`wipe`] clears the stack a sealed program's unsealing used.

pub mod compat;
pub mod image;
pub mod initial_stack;
pub mod io;
pub mod mem;
pub mod ns;
pub mod proc;
pub mod rt;
pub mod stage2;
#[cfg(feature = "sealed")]
pub mod wipe;
