//! Mapping an ELF image as `load_elf_binary` and `load_elf_interp` do.

use core::ffi::c_void;

use goblin::elf64::program_header::{PF_R, PF_W, PF_X};
use preload::elf::{self, Aligned, Image, MAX_PHDR_TABLE};
use preload::plan::{Extent, Segment};
use preload::{PAGE_SIZE, page_align};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::source::File;

pub type PhdrBuf = Aligned<MAX_PHDR_TABLE>;

/// Validate `file` as an ELF executable, reading its program headers into `phdrs`.
pub fn inspect<'p>(file: &File, phdrs: &'p mut PhdrBuf) -> Result<Image<'p>, &'static str> {
    let header = elf::header(file.head())?;
    let (offset, len) = elf::phdr_table(&header)?;
    file.read_at(offset, &mut phdrs.0[..len]).map_err(|_| "program headers beyond end of file")?;
    elf::validate(&header, elf::program_headers(phdrs, len), file.size)
}

/// Where the first segment goes.
#[derive(Clone, Copy, Debug)]
pub enum Placement {
    /// ET_EXEC: at its own addresses, never over an existing mapping.
    Fixed,
    /// At this load bias, never over an existing mapping (a PIE with an interpreter).
    Bias(u64),
    /// Wherever the kernel's mmap puts it (an interpreter, a static-pie), aligned to `align`.
    Anywhere { align: u64 },
}

/// The mmap protection for a segment's PF_R/PF_W/PF_X.
pub fn prot(flags: u32) -> ProtFlags {
    let mut prot = ProtFlags::empty();
    if flags & PF_R != 0 {
        prot |= ProtFlags::READ;
    }
    if flags & PF_W != 0 {
        prot |= ProtFlags::WRITE;
    }
    if flags & PF_X != 0 {
        prot |= ProtFlags::EXEC;
    }
    prot
}

/// Map every PT_LOAD of `image`; returns the load bias.
///
/// The first segment is mapped with the length of the whole image, which reserves the span,
/// and everything past its own pages is unmapped again: the holes between segments stay
/// unmapped, as with the kernel. The later segments then go to their places with MAP_FIXED.
pub fn map(file: &File, image: &Image, extent: &Extent, placement: Placement) -> Result<u64, Errno> {
    let total = page_align(extent.total_size);
    let mut bias = 0;
    for (index, ph) in image.loads().enumerate() {
        let seg = Segment::of(ph);
        if index == 0 {
            let (addr, flags, len) = match placement {
                Placement::Fixed => (seg.start, MapFlags::FIXED_NOREPLACE, seg.file_len),
                Placement::Bias(b) => (b.wrapping_add(seg.start), MapFlags::FIXED_NOREPLACE, total),
                Placement::Anywhere { align } => {
                    let (addr, flags) = aligned_hole(total, align)?;
                    (addr, flags, total)
                }
            };
            let mapped = map_file(file, addr, len, &seg, flags)?;
            bias = mapped.wrapping_sub(seg.start);
            if len > seg.file_len {
                unmap(mapped + seg.file_len, len - seg.file_len)?;
            }
        } else if seg.file_len > 0 {
            map_file(file, bias + seg.start, seg.file_len, &seg, MapFlags::FIXED)?;
        }
        fill_bss(&seg, bias)?;
    }
    Ok(bias)
}

/// Where to map `len` bytes at `align`: for an alignment beyond a page, an aligned hole found in
/// the mmap area (the kernel maps, unmaps and remaps likewise), taken with MAP_FIXED_NOREPLACE;
/// otherwise a hint of 0, and mmap chooses.
fn aligned_hole(len: u64, align: u64) -> Result<(u64, MapFlags), Errno> {
    if align <= PAGE_SIZE {
        return Ok((0, MapFlags::empty()));
    }
    let span = len + align;
    // SAFETY: a fresh PROT_NONE reservation at an address of the kernel's choosing, released
    // again at once; nothing else refers to it.
    unsafe {
        let start = rustix::mm::mmap_anonymous(core::ptr::null_mut(), span as usize, ProtFlags::empty(), MapFlags::PRIVATE | MapFlags::NORESERVE)? as u64;
        rustix::mm::munmap(start as *mut c_void, span as usize)?;
        Ok(((start + align - 1) & !(align - 1), MapFlags::FIXED_NOREPLACE))
    }
}

fn map_file(file: &File, addr: u64, len: u64, seg: &Segment, flags: MapFlags) -> Result<u64, Errno> {
    if len == 0 {
        return Ok(addr);
    }
    if file.copy_segments {
        return copy_segment(file, addr, len, seg, flags);
    }
    // SAFETY: the address is chosen by the kernel, or refused if occupied (FIXED_NOREPLACE), or
    // (FIXED) a page this image's own headers name, as the kernel maps it: for a well-formed
    // image that is its reserved span (ET_DYN) or its fixed addresses (ET_EXEC). A crafted image
    // can name the preloader's own pages; that kills this process only (an open issue).
    let mapped = unsafe { rustix::mm::mmap(addr as *mut c_void, len as usize, prot(seg.flags), flags | MapFlags::PRIVATE, &file.fd, seg.offset) }?;
    Ok(mapped as u64)
}

/// `map_file` for a streamed program: anonymous read-write pages at the same place, the file
/// pages' bytes read in (up to the end of the file, as a file mapping shows them), then the
/// segment's own protection. Nothing is writable and executable at once unless the segment
/// itself asks for it.
fn copy_segment(file: &File, addr: u64, len: u64, seg: &Segment, flags: MapFlags) -> Result<u64, Errno> {
    // SAFETY: the same placement as `map_file`'s (the first segment reserves `len`).
    let mapped = unsafe { rustix::mm::mmap_anonymous(addr as *mut c_void, len as usize, ProtFlags::READ | ProtFlags::WRITE, flags | MapFlags::PRIVATE) }?;
    let bytes = seg.file_len.min(file.size.saturating_sub(seg.offset));
    // SAFETY: the first `bytes` <= len bytes of the read-write mapping just made.
    file.read_exact_at(seg.offset, unsafe { core::slice::from_raw_parts_mut(mapped as *mut u8, bytes as usize) })?;
    // SAFETY: the segment's own pages, which hold nothing else.
    unsafe { rustix::mm::mprotect(mapped, seg.file_len as usize, MprotectFlags::from_bits_retain(prot(seg.flags).bits())) }?;
    Ok(mapped as u64)
}

fn unmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: the range is the unused tail of this image's own reservation.
    unsafe { rustix::mm::munmap(addr as *mut c_void, len as usize) }
}

fn fill_bss(seg: &Segment, bias: u64) -> Result<(), Errno> {
    if let Some((start, end)) = seg.zero {
        // SAFETY: the rest of the segment's last file page, mapped writable just above.
        unsafe { core::ptr::write_bytes((bias + start) as *mut u8, 0, (end - start) as usize) };
    }
    if let Some((start, end)) = seg.anon {
        let exec = if seg.flags & PF_X != 0 { ProtFlags::EXEC } else { ProtFlags::empty() };
        // SAFETY: the bss pages this image's headers name, as for `map_file`'s FIXED case.
        unsafe {
            rustix::mm::mmap_anonymous((bias + start) as *mut c_void, (end - start) as usize, ProtFlags::READ | ProtFlags::WRITE | exec, MapFlags::PRIVATE | MapFlags::FIXED)?;
        }
    }
    Ok(())
}
