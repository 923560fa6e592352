//! The preloader's own image, as the linker describes it (`__ehdr_start`, `_end`; linker.ld).

use goblin::elf64::header::Header;
use preload::plan::reserve::Range;
use preload::{page_align, page_start};

unsafe extern "C" {
    /// The preloader's ELF header, at the start of its image (linked at vaddr 0).
    static __ehdr_start: Header;
    /// The end of its image.
    static _end: u8;
}

/// The pages the preloader's image spans.
pub fn span() -> Range {
    // Only the addresses of the linker-defined symbols are taken, which needs no unsafe.
    let (start, end) = (&raw const __ehdr_start as u64, &raw const _end as u64);
    Range::new(page_start(start), page_align(end))
}
