//! Memory: every mmap, mprotect, mremap and munmap the preloader makes goes through here.
//! Functions that cannot replace or expose memory someone else holds are safe; those that act
//! on addresses the caller names are `unsafe fn`, each with the contract it needs.

use core::ffi::c_void;
use core::ptr::NonNull;

use preload::PAGE_SIZE;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

/// Where a new mapping may go. Neither way replaces anything already mapped.
#[derive(Clone, Copy, Debug)]
pub enum Place {
    /// Where the kernel's mmap chooses (top-down in the mmap area).
    Anywhere,
    /// Exactly here, or EEXIST if anything is in the way (MAP_FIXED_NOREPLACE).
    Exactly(u64),
}

impl Place {
    fn addr_and_flags(self) -> (*mut c_void, MapFlags) {
        match self {
            Self::Anywhere => (core::ptr::null_mut(), MapFlags::empty()),
            Self::Exactly(addr) => (addr as *mut c_void, MapFlags::FIXED_NOREPLACE),
        }
    }
}

/// Map `len` bytes of `fd` from `offset`, private, with `prot`; returns the address.
pub fn map_file(place: Place, len: u64, prot: ProtFlags, fd: BorrowedFd<'_>, offset: u64) -> Result<u64, Errno> {
    let (addr, flags) = place.addr_and_flags();
    // SAFETY: a new mapping where nothing is mapped (the kernel's choice, or FIXED_NOREPLACE).
    let mapped = unsafe { rustix::mm::mmap(addr, len as usize, prot, flags | MapFlags::PRIVATE, fd, offset) }?;
    Ok(mapped as u64)
}

/// Map `len` bytes of zero-filled private memory with `prot`; `reserve_only` for address space
/// that is not to be used as such (MAP_NORESERVE). Returns the address.
pub fn map_anonymous(place: Place, len: u64, prot: ProtFlags, reserve_only: bool) -> Result<u64, Errno> {
    let (addr, flags) = place.addr_and_flags();
    let noreserve = if reserve_only { MapFlags::NORESERVE } else { MapFlags::empty() };
    // SAFETY: a new mapping where nothing is mapped (the kernel's choice, or FIXED_NOREPLACE).
    let mapped =
        unsafe { rustix::mm::mmap_anonymous(addr, len as usize, prot, flags | noreserve | MapFlags::PRIVATE) }?;
    Ok(mapped as u64)
}

/// `map_file` at `addr` as MAP_FIXED does, replacing what is there.
///
/// # Safety
/// `[addr, addr + len)` holds nothing but mappings this launch made for the program, and
/// nothing refers to their contents.
pub unsafe fn map_file_over(
    addr: u64,
    len: u64,
    prot: ProtFlags,
    fd: BorrowedFd<'_>,
    offset: u64,
) -> Result<u64, Errno> {
    // SAFETY: the caller's contract.
    let mapped = unsafe {
        rustix::mm::mmap(addr as *mut c_void, len as usize, prot, MapFlags::FIXED | MapFlags::PRIVATE, fd, offset)
    }?;
    Ok(mapped as u64)
}

/// `map_anonymous` at `addr` as MAP_FIXED does, replacing what is there.
///
/// # Safety
/// As for [`map_file_over`].
pub unsafe fn map_anonymous_over(addr: u64, len: u64, prot: ProtFlags) -> Result<u64, Errno> {
    // SAFETY: the caller's contract.
    let mapped = unsafe {
        rustix::mm::mmap_anonymous(addr as *mut c_void, len as usize, prot, MapFlags::FIXED | MapFlags::PRIVATE)
    }?;
    Ok(mapped as u64)
}

/// Unmap `[addr, addr + len)`.
///
/// # Safety
/// Nothing refers to the range's contents any more, and it holds none of the preloader's own
/// memory.
pub unsafe fn unmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: the caller's contract.
    unsafe { rustix::mm::munmap(addr as *mut c_void, len as usize) }
}

/// Give `[addr, addr + len)` the protection `prot`.
///
/// # Safety
/// The range is mapped, and nothing uses it in a way `prot` no longer allows.
pub unsafe fn protect(addr: u64, len: u64, prot: ProtFlags) -> Result<(), Errno> {
    // SAFETY: the caller's contract.
    unsafe { rustix::mm::mprotect(addr as *mut c_void, len as usize, MprotectFlags::from_bits_retain(prot.bits())) }
}

/// Ask for transparent huge pages in `[addr, addr + len)` (MADV_HUGEPAGE: they are given for
/// the asking where THP is "madvise", the default): a large copy then takes one fault per 2 MiB
/// instead of one per page. Only a hint: an error (an old kernel, THP off) changes nothing.
pub fn advise_huge_pages(addr: u64, len: u64) {
    // SAFETY: advice only: it changes no contents and no protection, whatever is mapped there.
    let _ = unsafe { rustix::mm::madvise(addr as *mut c_void, len as usize, rustix::mm::Advice::LinuxHugepage) };
}

/// The `len` bytes at `addr`, to write.
///
/// # Safety
/// The range is mapped readable and writable, and nothing else refers to it while the slice
/// lives.
pub unsafe fn bytes_mut<'a>(addr: u64, len: u64) -> &'a mut [u8] {
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len as usize) }
}

/// Copy the bytes at `addr` into `buf`.
///
/// # Safety
/// `buf.len()` bytes at `addr` are mapped readable and cannot fault (no file page past the
/// file's end).
pub unsafe fn read(addr: u64, buf: &mut [u8]) {
    // SAFETY: the caller's contract; `buf` is ours, so the two cannot overlap.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Store `bytes` at `addr`.
///
/// # Safety
/// `bytes.len()` bytes at `addr` are mapped writable, in the program's memory, which nothing
/// here refers to.
pub unsafe fn write(addr: u64, bytes: &[u8]) {
    // SAFETY: the caller's contract; `bytes` is ours, so the two cannot overlap.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) }
}

/// An address where `len` bytes aligned to `align` fit in the mmap area, as the kernel finds
/// one for an image with a large p_align (it maps, unmaps and remaps likewise). Nothing stays
/// mapped: the caller maps there with `Place::Exactly`.
pub fn aligned_hole(len: u64, align: u64) -> Result<u64, Errno> {
    let span = len + align;
    let start = map_anonymous(Place::Anywhere, span, ProtFlags::empty(), true)?;
    // SAFETY: the reservation just made, which nothing refers to.
    unsafe { unmap(start, span) }?;
    Ok((start + align - 1) & !(align - 1))
}

/// Make the [stack] mapping that holds `addr` executable (PT_GNU_STACK with PF_X).
pub fn make_stack_executable(addr: u64) -> Result<(), Errno> {
    let page = preload::page_start(addr);
    // SAFETY: PROT_GROWSDOWN extends the change over the whole [stack] mapping, which holds
    // nothing but the stack; adding PROT_EXEC removes no access.
    unsafe {
        rustix::mm::mprotect(
            page as *mut c_void,
            PAGE_SIZE as usize,
            MprotectFlags::READ | MprotectFlags::WRITE | MprotectFlags::EXEC | MprotectFlags::GROWSDOWN,
        )
    }
}

/// A private anonymous read-write mapping (zero-filled, whole pages) at an address of the
/// kernel's choosing, unmapped when dropped: buffers kept out of the launch's stack frame.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// At least `len` bytes (not 0); `flags` adds to MAP_PRIVATE.
    pub fn new(len: usize, flags: MapFlags) -> Result<Self, Errno> {
        let len = preload::page_align(len as u64) as usize;
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing,
        // owned by the Mapping from here on.
        let addr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | flags,
            )
        }?;
        Ok(Self { base: NonNull::new(addr.cast::<u8>()).ok_or(Errno::NOMEM)?, len })
    }

    /// The first byte, for owners that keep several parts in one mapping (the sealed plaintext).
    #[cfg_attr(not(feature = "sealed"), allow(dead_code))]
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// All of it.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes mapped read-write in `new`; `&mut self` is the only way in.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; no borrow of it outlives the Mapping.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// All-zero bytes are a valid value of the type.
///
/// # Safety
/// Implement it only for types for which the all-zero bit pattern is a valid value.
pub unsafe trait Zeroable {}

/// Storage that only some launches need, mapped (zero-filled) on first use: in the stack frame
/// it would cost every launch a page fault for each of its pages. `release` unmaps it.
pub struct Lazy<T: Zeroable> {
    mapped: Option<NonNull<T>>,
}

impl<T: Zeroable> Lazy<T> {
    pub const fn new() -> Self {
        Self { mapped: None }
    }

    /// The storage: all zero when first mapped, then as last written.
    pub fn get(&mut self) -> Result<&mut T, Errno> {
        let ptr = match self.mapped {
            Some(ptr) => ptr,
            None => {
                // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing.
                let addr = unsafe {
                    rustix::mm::mmap_anonymous(
                        core::ptr::null_mut(),
                        size_of::<T>(),
                        ProtFlags::READ | ProtFlags::WRITE,
                        MapFlags::PRIVATE,
                    )
                }?;
                let ptr = NonNull::new(addr.cast::<T>()).ok_or(Errno::NOMEM)?;
                self.mapped = Some(ptr);
                ptr
            }
        };
        // SAFETY: the mapping is page-aligned (more than any T here needs) and size_of::<T>()
        // bytes, zero (a valid T, as Zeroable promises) or a T written through this reference;
        // only `&mut self` reaches it.
        Ok(unsafe { &mut *ptr.as_ptr() })
    }

    /// Unmap the storage; `&mut self` proves nothing borrows it.
    pub fn release(&mut self) {
        if let Some(ptr) = self.mapped.take() {
            // SAFETY: the mapping `get` made, of this size, no longer referred to.
            let _ = unsafe { rustix::mm::munmap(ptr.as_ptr().cast(), size_of::<T>()) };
        }
    }
}
