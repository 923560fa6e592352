//! Mapping an ELF image as `load_elf_binary` and `load_elf_interp` do.

use core::ffi::c_void;

use goblin::elf64::program_header::{PF_R, PF_W, PF_X};
use preload::elf::{self, Image};
use preload::plan::{Extent, Owned, Segment, foreign_mapping};
use preload::ranges::Range;
use preload::{PAGE_SIZE, page_align};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::reserve::{MAPS_BUFFER, read_maps};
use crate::source::{File, Spill};

/// Validate `file` as an ELF executable, with its program headers in place in its head or, for
/// a larger table, read into `spill`.
pub fn inspect<'p>(file: &'p File, spill: &'p mut Spill) -> Result<Image<'p>, &'static str> {
    let header = elf::header(file.head())?;
    let (offset, len) = elf::phdr_table(&header)?;
    if len > elf::PAGE_PHDR_TABLE {
        // Kernels before 6.17 read one page of program headers: asked only for a larger table.
        elf::check_phdr_table_for_kernel(len, rustix::system::uname().release().to_bytes())?;
    }
    let table = file.bytes(offset, len, spill).map_err(|_| "program headers beyond end of file")?;
    let phdrs = elf::program_headers(table);
    if file.copy_segments {
        elf::check_segments_in_file(phdrs, file.size)?;
    }
    elf::validate(&header, phdrs, file.size)
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

/// Map every PT_LOAD of `image`; returns the load bias. Every mapping made is added to `owned`.
///
/// The first segment is mapped with the length of the whole image, which reserves the span,
/// and everything past its own pages is unmapped again: the holes between segments stay
/// unmapped, as with the kernel. The later segments then go to their places as with MAP_FIXED,
/// but only over what this launch mapped itself: over anything else (the preloader's own pages,
/// the stack, the vDSO, a reservation) the result is EEXIST.
pub fn map(file: &File, image: &Image, extent: &Extent, placement: Placement, owned: &mut Owned) -> Result<u64, Errno> {
    let total = page_align(extent.total_size);
    // Without any PT_LOAD the kernel's load bias stays 0 (it is set at the first one).
    let mut bias = 0;
    for (index, ph) in image.loads().enumerate() {
        let seg = Segment::of(ph);
        match placement {
            Placement::Bias(_) | Placement::Anywhere { .. } if index == 0 => {
                let (addr, flags) = match placement {
                    Placement::Anywhere { align } => aligned_hole(total, align)?,
                    _ => (bias_of(placement).wrapping_add(seg.start), MapFlags::FIXED_NOREPLACE),
                };
                // A segment without file bytes maps no file, as in the kernel (its p_offset may be
                // anything): the span is then reserved with anonymous memory.
                let mapped = match seg.file_len {
                    // SAFETY: the kernel chooses the address, or refuses an occupied one.
                    0 => unsafe { rustix::mm::mmap_anonymous(addr as *mut c_void, total as usize, ProtFlags::empty(), flags | MapFlags::PRIVATE | MapFlags::NORESERVE) }? as u64,
                    // SAFETY: as above.
                    _ => unsafe { map_file(file, addr, total, &seg, flags) }?,
                };
                bias = mapped.wrapping_sub(seg.start);
                if total > seg.file_len {
                    unmap(mapped + seg.file_len, total - seg.file_len)?;
                }
                owned.push(mapped, seg.file_len);
            }
            _ => {
                let addr = bias.wrapping_add(seg.start);
                // SAFETY: `place` maps over nothing but this launch's own mappings.
                place(addr, seg.file_len, owned, |flags| unsafe { map_file(file, addr, seg.file_len, &seg, flags) })?;
            }
        }
        fill_bss(&seg, bias, owned)?;
    }
    Ok(bias)
}

fn bias_of(placement: Placement) -> u64 {
    match placement {
        Placement::Bias(bias) => bias,
        _ => 0,
    }
}

/// Map `len` bytes at `addr` with `map`: with MAP_FIXED_NOREPLACE, then, if something is in the
/// way and all of it is `owned`, with MAP_FIXED as the kernel would; otherwise EEXIST.
fn place(addr: u64, len: u64, owned: &mut Owned, map: impl Fn(MapFlags) -> Result<u64, Errno>) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    match map(MapFlags::FIXED_NOREPLACE) {
        Err(Errno::EXIST) if !held_by_others(Range::new(addr, addr.saturating_add(len)), owned) => map(MapFlags::FIXED)?,
        result => result?,
    };
    owned.push(addr, len);
    Ok(())
}

/// Whether anything not `owned` is mapped in `target` (also when /proc/self/maps cannot be read
/// whole). Out of line: its buffer is needed only for overlapping segments.
#[cold]
#[inline(never)]
fn held_by_others(target: Range, owned: &Owned) -> bool {
    let mut maps = [0u8; MAPS_BUFFER];
    let len = read_maps(&mut maps);
    len == 0 || len == maps.len() || foreign_mapping(&maps[..len], target, owned.as_slice()).is_some()
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

/// # Safety
/// With MAP_FIXED, `addr..addr + len` must hold nothing but this launch's own mappings.
unsafe fn map_file(file: &File, addr: u64, len: u64, seg: &Segment, flags: MapFlags) -> Result<u64, Errno> {
    if file.copy_segments {
        return copy_segment(file, addr, len, seg, flags);
    }
    // SAFETY: as the caller guarantees; otherwise the kernel chooses or refuses the address.
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

fn fill_bss(seg: &Segment, bias: u64, owned: &mut Owned) -> Result<(), Errno> {
    if let Some((start, end)) = seg.zero {
        // SAFETY: the rest of the segment's last file page, mapped writable just above.
        unsafe { core::ptr::write_bytes((bias + start) as *mut u8, 0, (end - start) as usize) };
    }
    if let Some((start, end)) = seg.anon {
        let exec = if seg.flags & PF_X != 0 { ProtFlags::EXEC } else { ProtFlags::empty() };
        let (addr, len) = (bias + start, end - start);
        place(addr, len, owned, |flags| {
            // SAFETY: `place` maps over nothing but this launch's own mappings.
            let mapped = unsafe { rustix::mm::mmap_anonymous(addr as *mut c_void, len as usize, ProtFlags::READ | ProtFlags::WRITE | exec, MapFlags::PRIVATE | flags) }?;
            Ok(mapped as u64)
        })?;
    }
    Ok(())
}
