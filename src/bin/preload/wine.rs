//! Wine's preloader protocol: a main program that exports `wine_main_preload_info` gets Wine's
//! default ranges (plus WINEPRELOADRESERVE) reserved, and the address of a table of the ranges
//! really reserved stored in that symbol.

use core::cell::Cell;

use goblin::elf64::program_header::{PF_R, PF_W, PT_DYNAMIC};
use preload::elf::Image;
use preload::elf::symbols::{self, Memory};
use preload::page_start;
use preload::plan::load::{has_flags, page_run};
use preload::plan::reserve::{self, Range, RangeList, WINE_DEFAULT_RANGES};
use preload::report::refusal::Refusal;
use rustix::io::Errno;
use rustix::mm::MapFlags;

use crate::report::{Error, Printer};
use crate::reserve::{self as reservation, Protected};
use crate::sys::initial_stack::InitialStack;
use crate::sys::mem::{self, Mapping};

pub const SYMBOL: &[u8] = b"wine_main_preload_info";

/// A mapped image, read through its own PT_LOADs so that no read can fault.
struct Mapped<'a> {
    image: &'a Image<'a>,
    bias: u64,
    /// File pages past the end of the file are mapped but fault (SIGBUS).
    file_size: u64,
    /// The last run of readable pages found ([`page_run`]), unbiased: the reads of a lookup
    /// mostly fall in it, and each check costs a pass over every PT_LOAD.
    readable: Cell<(u64, u64)>,
}

impl Mapped<'_> {
    fn readable(&self, vaddr: u64, len: u64) -> bool {
        let Some(end) = vaddr.checked_add(len) else { return false };
        let (start, run_end) = self.readable.get();
        if start <= vaddr && end <= run_end {
            return true;
        }
        let page = page_start(vaddr);
        match page_run(self.image, page, self.file_size) {
            Some((flags, run_end)) if flags & PF_R != 0 => {
                self.readable.set((page, run_end));
                end <= run_end || has_flags(self.image, vaddr, len, PF_R, self.file_size)
            }
            _ => false,
        }
    }
}

impl Memory for Mapped<'_> {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
        if !self.readable(vaddr, buf.len() as u64) {
            return false;
        }
        // SAFETY: every page of the bytes is mapped readable at this bias, within the file, as
        // the last PT_LOAD over it mapped it.
        unsafe { mem::read(self.bias + vaddr, buf) };
        true
    }
}

/// The biased address of `wine_main_preload_info` if the mapped program exports it as a
/// writable data object.
pub fn find_symbol(image: &Image, bias: u64, file_size: u64) -> Option<u64> {
    let dynamic = image.phdrs.iter().find(|ph| ph.p_type == PT_DYNAMIC)?;
    let symbol = symbols::find_object(
        &Mapped { image, bias, file_size, readable: Cell::new((0, 0)) },
        dynamic.p_vaddr,
        dynamic.p_memsz,
        SYMBOL,
    )?;
    has_flags(image, symbol, 8, PF_R | PF_W, file_size).then_some(bias + symbol)
}

/// Store in the symbol at `symbol` the address of a `{ void *addr; size_t size; }` table of
/// `reserved`, ended by a zero size, in a page of its own that stays mapped for the program.
///
/// # Safety
/// `symbol` is what [`find_symbol`] returned for the program as it is still mapped.
pub unsafe fn publish(reserved: &[Range], symbol: u64) -> Result<u64, Errno> {
    // At an address of the kernel's choosing, which cannot be inside a reservation.
    let mut table = Mapping::new((reserved.len() + 1) * 16, MapFlags::empty())?;
    for (entry, range) in table.bytes().chunks_exact_mut(16).zip(reserved) {
        entry[..8].copy_from_slice(&range.start.to_ne_bytes());
        entry[8..].copy_from_slice(&range.len().to_ne_bytes());
    }
    let (table, _) = table.into_raw();
    // SAFETY: `find_symbol` checked that the 8 bytes at `symbol` are in a writable segment of
    // the program, which nothing here refers to.
    unsafe { mem::write_u64(symbol, table as u64) };
    Ok(table as u64)
}

/// Wine's default ranges and WINEPRELOADRESERVE, added to `reserved` where they could be
/// reserved; one that cannot is left out (and so never published), as Wine's preloader does.
pub fn reserve(
    stack: &InitialStack,
    protected: &Protected,
    reserved: &mut RangeList,
    mut verbose: Option<&mut Printer>,
) -> Result<(), Error<'static>> {
    let mut wanted = RangeList::default();
    for range in WINE_DEFAULT_RANGES {
        let _ = wanted.push(range);
    }
    if let Some(text) = stack.getenv(b"WINEPRELOADRESERVE")
        && let Some(range) = reserve::parse_wine_reserve(text)
            .map_err(|reason| Error::at(b"WINEPRELOADRESERVE", Refusal::failure(reason)))?
    {
        let _ = wanted.push(range);
    }
    for range in wanted.as_slice() {
        let outcome = reservation::reserve(range, protected);
        if let Some(out) = verbose.as_deref_mut() {
            out.line()
                .text(if outcome.is_ok() { "reserve for Wine " } else { "could not reserve for Wine " })
                .hex(range.start)
                .text("-")
                .hex(range.end);
            out.end();
        }
        if outcome.is_ok() {
            reserved.push(*range).map_err(|reason| Error::at(b"WINEPRELOADRESERVE", Refusal::failure(reason)))?;
        }
    }
    Ok(())
}

/// The program mapped at `bias`, read as [`find_symbol`] reads it, for other readers of its
/// dynamic section (`origin`).
pub fn mapped<'a>(image: &'a Image<'a>, bias: u64, file_size: u64) -> impl Memory + 'a {
    Mapped { image, bias, file_size, readable: Cell::new((0, 0)) }
}
