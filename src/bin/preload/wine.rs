//! Wine's preloader protocol: a main program that exports `wine_main_preload_info` gets Wine's
//! default ranges (plus WINEPRELOADRESERVE) reserved, and the address of a table of the ranges
//! really reserved stored in that symbol.

use core::ffi::c_void;

use goblin::elf64::program_header::{PF_R, PF_W, PF_X, PT_DYNAMIC};
use preload::elf::Image;
use preload::elf::symbols::{self, Memory};
use preload::plan::load::Segment;
use preload::plan::reserve::Range;
use preload::{PAGE_SIZE, page_start};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

pub const SYMBOL: &[u8] = b"wine_main_preload_info";

/// A mapped image, read through its own PT_LOADs so that no read can fault.
struct Mapped<'a> {
    image: &'a Image<'a>,
    bias: u64,
    /// Segment flags every byte read must have.
    flags: u32,
    /// File pages past the end of the file are mapped but fault (SIGBUS).
    file_size: u64,
}

impl Mapped<'_> {
    /// The PF_ flags the page at unbiased `page` was mapped with: the last PT_LOAD that maps it
    /// decides, as it was mapped last; bss pages are read-write (plus exec for PF_X).
    fn page_flags(&self, page: u64) -> Option<u32> {
        self.image.loads().rev().find_map(|ph| {
            let seg = Segment::of(ph);
            let in_file = seg.start <= page && page - seg.start < seg.file_len;
            let in_bss = seg.anon.is_some_and(|(start, end)| start <= page && page < end);
            let past_eof = in_file && seg.offset.saturating_add(page - seg.start) >= self.file_size;
            (in_file || in_bss).then(|| match (in_file, past_eof) {
                (true, false) => ph.p_flags,
                (true, true) => 0,
                (false, _) => PF_R | PF_W | (ph.p_flags & PF_X),
            })
        })
    }

    fn contains(&self, vaddr: u64, len: u64) -> bool {
        let Some(end) = vaddr.checked_add(len) else { return false };
        let mut page = page_start(vaddr);
        while page < end {
            if self.page_flags(page).is_none_or(|flags| flags & self.flags != self.flags) {
                return false;
            }
            page += PAGE_SIZE;
        }
        true
    }
}

impl Memory for Mapped<'_> {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
        if !self.contains(vaddr, buf.len() as u64) {
            return false;
        }
        // SAFETY: every page of the bytes is mapped at this bias with the required flags, as the
        // last PT_LOAD over it mapped it.
        unsafe { core::ptr::copy_nonoverlapping((self.bias + vaddr) as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// The biased address of `wine_main_preload_info` if the mapped program exports it as a
/// writable data object.
pub fn find_symbol(image: &Image, bias: u64, file_size: u64) -> Option<u64> {
    let dynamic = image.phdrs.iter().find(|ph| ph.p_type == PT_DYNAMIC)?;
    let readable = Mapped { image, bias, flags: PF_R, file_size };
    let symbol = symbols::find_object(&readable, dynamic.p_vaddr, dynamic.p_memsz, SYMBOL)?;
    let writable = Mapped { image, bias, flags: PF_R | PF_W, file_size };
    writable.contains(symbol, 8).then_some(bias + symbol)
}

/// Store in the symbol at `symbol` the address of a `{ void *addr; size_t size; }` table of
/// `reserved`, ended by a zero size, in a page of its own that stays mapped.
pub fn publish(reserved: &[Range], symbol: u64) -> Result<u64, Errno> {
    let bytes = (reserved.len() + 1) * 16;
    // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing, which
    // cannot be inside a reservation; it is only written here and then left to the program.
    let table = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut::<c_void>(),
            bytes,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }? as *mut u64;
    for (index, range) in reserved.iter().enumerate() {
        // SAFETY: index < reserved.len(), inside the table; the terminator stays zero.
        unsafe {
            table.add(2 * index).write(range.start);
            table.add(2 * index + 1).write(range.len());
        }
    }
    // SAFETY: `find_symbol` checked that the 8 bytes at `symbol` are in a writable segment.
    unsafe { (symbol as *mut u64).write_unaligned(table as u64) };
    Ok(table as u64)
}
