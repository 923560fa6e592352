//! Keeping address ranges free: PROT_NONE reservations that never replace an existing mapping.

use preload::page_start;
use preload::plan::reserve::{Range, find_in_maps};
use rustix::io::Errno;
use rustix::mm::ProtFlags;

use crate::sys::image;
use crate::sys::mem::{self, Place};
use crate::sys::proc::{MAPS_BUFFER, read_maps};

/// Why a range could not be reserved.
pub enum ReserveError {
    /// It overlaps `other`, named `name` (the stack, the preloader, or a line of /proc/self/maps).
    Overlap {
        other: Range,
        name: [u8; 64],
        name_len: u8,
    },
    Failed(Errno),
}

impl ReserveError {
    fn overlap(other: Range, name: &[u8]) -> Self {
        let mut stored = [0u8; 64];
        let name_len = name.len().min(stored.len());
        stored[..name_len].copy_from_slice(&name[..name_len]);
        Self::Overlap { other, name: stored, name_len: name_len as u8 }
    }
}

/// Regions no reservation may cover, though they are not (yet) wholly mapped.
pub struct Protected {
    /// The stack with the room RLIMIT_STACK lets it grow into.
    stack: Range,
    preloader: Range,
}

impl Protected {
    pub fn new(stack_top: u64, stack_limit: u64) -> Self {
        let room = stack_limit.clamp(128 << 10, 1 << 32);
        Self { stack: Range::new(page_start(stack_top - room), stack_top), preloader: image::span() }
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
    match mem::map_anonymous(Place::Exactly(range.start), range.len(), ProtFlags::empty(), true) {
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
