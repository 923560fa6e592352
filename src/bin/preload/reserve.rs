//! Keeping address ranges free: PROT_NONE reservations that never replace an existing mapping.

use core::ffi::c_void;

use preload::plan::reserve::{Range, find_in_maps};
use preload::{page_align, page_start};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// Why a range could not be reserved.
pub enum ReserveError {
    /// It overlaps `other`, named `name` (the stack, the preloader, or a line of /proc/self/maps).
    Overlap {
        other: Range,
        name: [u8; 64],
        name_len: usize,
    },
    Failed(Errno),
}

impl ReserveError {
    fn overlap(other: Range, name: &[u8]) -> Self {
        let mut stored = [0u8; 64];
        let name_len = name.len().min(stored.len());
        stored[..name_len].copy_from_slice(&name[..name_len]);
        Self::Overlap { other, name: stored, name_len }
    }
}

/// Regions no reservation may cover, though they are not (yet) wholly mapped.
pub struct Protected {
    /// The stack with the room RLIMIT_STACK lets it grow into.
    stack: Range,
    preloader: Range,
}

unsafe extern "C" {
    static __ehdr_start: u8;
    static _end: u8;
}

impl Protected {
    pub fn new(stack_top: u64, stack_limit: u64) -> Self {
        let room = stack_limit.clamp(128 << 10, 1 << 32);
        // Only the addresses of the linker-defined symbols are taken, which needs no unsafe.
        let (start, end) = (&raw const __ehdr_start as u64, &raw const _end as u64);
        Self {
            stack: Range::new(page_start(stack_top - room), stack_top),
            preloader: Range::new(page_start(start), page_align(end)),
        }
    }
}

/// Reserve `range` as PROT_NONE, MAP_NORESERVE memory, refusing anything already there.
pub fn reserve(range: &Range, protected: &Protected) -> Result<(), ReserveError> {
    if range.overlaps(&protected.stack) {
        return Err(ReserveError::overlap(protected.stack, b"[stack]"));
    }
    if range.overlaps(&protected.preloader) {
        return Err(ReserveError::overlap(protected.preloader, b"preload itself"));
    }
    // SAFETY: FIXED_NOREPLACE never replaces an existing mapping; the new one is inaccessible.
    let mapped = unsafe {
        rustix::mm::mmap_anonymous(
            range.start as *mut c_void,
            range.len() as usize,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE | MapFlags::NORESERVE,
        )
    };
    match mapped {
        Ok(_) => Ok(()),
        Err(Errno::EXIST) => Err(existing_mapping(range)),
        Err(errno) => Err(ReserveError::Failed(errno)),
    }
}

/// Name the mapping that was in the way, from /proc/self/maps. Kept out of line so that its
/// buffer does not grow every launch's stack frame.
#[cold]
#[inline(never)]
fn existing_mapping(range: &Range) -> ReserveError {
    let mut maps = [0u8; MAPS_BUFFER];
    let len = read_maps(&mut maps);
    match find_in_maps(&maps[..len], range) {
        Some((other, name)) => {
            ReserveError::overlap(other, if name.is_empty() { b"an anonymous mapping" } else { name })
        }
        None => ReserveError::Failed(Errno::EXIST),
    }
}

/// Room for /proc/self/maps at launch time (a few dozen lines).
pub const MAPS_BUFFER: usize = 16384;

/// Read /proc/self/maps into `buf`; returns the length, or `buf.len()` if it may not all fit.
pub fn read_maps(buf: &mut [u8]) -> usize {
    let mut len = 0;
    if let Ok(fd) = rustix::fs::openat(CWD, c"/proc/self/maps", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        while let Ok(n @ 1..) = rustix::io::read(&fd, &mut buf[len..]) {
            len += n;
        }
    }
    len
}
