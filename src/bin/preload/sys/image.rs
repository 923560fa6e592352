//! The preloader's own image, as the linker describes it (`__ehdr_start`, `_end`; linker.ld).

use goblin::elf64::header::Header;
use goblin::elf64::program_header::{PT_LOAD, ProgramHeader};
use preload::plan::reserve::Range;
use preload::{page_align, page_start};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MremapFlags, ProtFlags};

use super::mem::{self, Mapping};

unsafe extern "C" {
    /// The preloader's ELF header, at the start of its image (linked at vaddr 0).
    static __ehdr_start: Header;
    /// The end of its image.
    static _end: u8;
    /// The start of the room at the end of its image, which it never touches.
    static __room: u8;
}

/// The pages the preloader's image spans.
pub fn span() -> Range {
    // Only the addresses of the linker-defined symbols are taken, which needs no unsafe.
    let (start, end) = (&raw const __ehdr_start as u64, &raw const _end as u64);
    Range::new(page_start(start), page_align(end))
}

/// The preloader's program headers.
fn program_headers() -> &'static [ProgramHeader] {
    // SAFETY: the linker defines __ehdr_start; the header and the program headers it points to
    // are part of the preloader's first segment, mapped read-only for the whole run (an
    // anonymous copy keeps their contents).
    unsafe {
        let ehdr = &raw const __ehdr_start;
        let table = (ehdr as u64 + (*ehdr).e_phoff) as *const ProgramHeader;
        core::slice::from_raw_parts(table, usize::from((*ehdr).e_phnum))
    }
}

/// The kernel refuses a new exe while any mapping of the old one exists (EBUSY): for an i386
/// program, which the stub does not launch, the preloader stays mapped. Swap each of
/// the preloader's loads with file bytes for an anonymous copy at the same address: map, copy,
/// protect, then mremap over the original in one step, so the code running here survives.
/// The copy spans the whole load, so that each stays one mapping, but only the bytes before
/// linker.ld's room are copied (the room is never touched, and stays without pages); a load
/// without file bytes (the writable one of a build without .data) was mapped anonymous by the
/// kernel, and stays as it is.
pub fn replace_own_file_mappings() -> Result<(), Errno> {
    let base = span().start;
    // Only the address of the linker-defined symbol is taken, which needs no unsafe.
    let room = &raw const __room as u64;
    for ph in program_headers().iter().filter(|ph| ph.p_type == PT_LOAD && ph.p_filesz > 0) {
        let start = page_start(base + ph.p_vaddr);
        let end = page_align(base + ph.p_vaddr + ph.p_memsz);
        let used = page_align(end.min(room)) - start;
        // POPULATE where every page is written (the text load): allocating them in the mmap
        // costs less than a page fault for each.
        let populate = if start + used == end { MapFlags::POPULATE } else { MapFlags::empty() };
        let mut copy = Mapping::new((end - start) as usize, populate)?;
        // SAFETY: [start, start+used) are the pages of one of the preloader's own loads before
        // the room, mapped and readable (every load has PF_R).
        unsafe { mem::read(start, &mut copy.bytes()[..used as usize]) };
        let (copy, len) = copy.into_raw();
        let prot = crate::load::prot(ph.p_flags);
        // SAFETY: the copy is ours alone; it gets the original's bytes and protection before it
        // atomically replaces the original, so no code or data changes under the running code.
        unsafe {
            if prot != ProtFlags::READ | ProtFlags::WRITE {
                mem::protect(copy as u64, len as u64, prot)?;
            }
            rustix::mm::mremap_fixed(copy.cast(), len, len, MremapFlags::MAYMOVE, start as *mut _)?;
        }
    }
    Ok(())
}
