//! Wine's preloader protocol: a main program that exports `wine_main_preload_info` gets Wine's
//! default ranges for its class (x86_64 or i386, plus WINEPRELOADRESERVE) reserved, and the
//! address of a table of the ranges really reserved stored in that symbol.

use core::cell::Cell;

use goblin::elf64::program_header::{PF_R, PF_W, PT_DYNAMIC};
use preload::elf::Image;
use preload::elf::symbols::{self, Class, Memory};
use preload::plan::load::{has_flags, page_run};
use preload::plan::reserve::{self, Range, RangeList, WINE_DEFAULT_RANGES, WINE_EXEC_PAGE, WINE_I386_DEFAULT_RANGES};
use preload::report::refusal::{Refusal, errno_text};
use preload::{page_align, page_start};
use rustix::io::Errno;
use rustix::mm::ProtFlags;

use crate::report::{Error, Printer};
use crate::reserve::{self as reservation, Protected};
use crate::sys::compat;
use crate::sys::initial_stack::InitialStack;
use crate::sys::mem::{self, Place};

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

/// The biased address of `wine_main_preload_info` if the mapped program of `class` exports it
/// as a writable data object of a pointer's size.
fn find_symbol(image: &Image, class: Class, bias: u64, file_size: u64) -> Option<u64> {
    let dynamic = image.phdrs.iter().find(|ph| ph.p_type == PT_DYNAMIC)?;
    let symbol =
        symbols::find_object(&mapped(image, bias, file_size), class, dynamic.p_vaddr, dynamic.p_memsz, SYMBOL)?;
    has_flags(image, symbol, class.word(), PF_R | PF_W, file_size).then_some(bias + symbol)
}

/// Wine's default table for the program's class.
fn default_ranges(class: Class) -> &'static [Range] {
    match class {
        Class::Elf32 => &WINE_I386_DEFAULT_RANGES,
        Class::Elf64 => &WINE_DEFAULT_RANGES,
    }
}

/// Whether the words of `class` can hold `range`: an i386 program's table holds no range above
/// 4 GiB (a WINEPRELOADRESERVE or --reserve range there is kept free, but not published).
fn fits(class: Class, range: &Range) -> bool {
    class == Class::Elf64 || range.end <= 1 << 32
}

/// Store `value` at `addr` as an address of `class`, little-endian as on x86.
///
/// # Safety
/// As for [`mem::write`] of the class's word.
unsafe fn write_word(addr: u64, class: Class, value: u64) {
    // SAFETY: the caller's contract.
    unsafe { mem::write(addr, &value.to_le_bytes()[..class.word() as usize]) }
}

/// Store in the symbol at `symbol` the address of a `{ void *addr; size_t size; }` table of
/// `reserved` in the words of `class`, ended by a zero size, in a page of its own that stays
/// mapped for the program: where the kernel's mmap puts it, for an i386 program a compat mmap
/// (below 4 GiB).
///
/// # Safety
/// `symbol` is what [`find_symbol`] returned for the program as it is still mapped.
unsafe fn publish(reserved: &[Range], class: Class, symbol: u64) -> Result<u64, Errno> {
    let entry = 2 * class.word();
    let len = page_align((reserved.len() as u64 + 1) * entry);
    let place = match class {
        Class::Elf32 => Place::Exactly(compat::compat_slot(len)?),
        Class::Elf64 => Place::Anywhere,
    };
    // Outside every reservation, as every mapping made without MAP_FIXED is.
    let table = mem::map_anonymous(place, len, ProtFlags::READ | ProtFlags::WRITE, false)?;
    // The mapping is zero-filled: the entry after the last is the end.
    for (at, range) in (table..).step_by(entry as usize).zip(reserved.iter().filter(|range| fits(class, range))) {
        // SAFETY: the table's pages were just mapped read-write for the program, and the
        // entries fit in them; nothing else refers to them.
        unsafe {
            write_word(at, class, range.start);
            write_word(at + class.word(), class, range.len());
        }
    }
    // SAFETY: `find_symbol` checked that the word at `symbol` is in a writable segment of the
    // program, which nothing here refers to.
    unsafe { write_word(symbol, class, table) };
    Ok(table)
}

/// Wine's protocol for the program of `class` just mapped at `bias`: if it exports
/// `wine_main_preload_info`, Wine's default ranges and WINEPRELOADRESERVE are reserved and added
/// to `reserved` where they could be (one that cannot is left out, and so never published, as
/// Wine's preloader does), then the symbol gets the table of `reserved`.
pub fn offer_ranges<'b>(
    program: (&Image, Class, u64, u64),
    exe_path: &'b [u8],
    stack: &InitialStack,
    protected: &Protected,
    reserved: &mut RangeList,
    mut verbose: Option<&mut Printer>,
) -> Result<(), Error<'b>> {
    let (image, class, bias, file_size) = program;
    let Some(symbol) = find_symbol(image, class, bias, file_size) else { return Ok(()) };
    let fail = |reason| Error::at(b"WINEPRELOADRESERVE", Refusal::failure(reason));
    let mut wanted = RangeList::default();
    for range in default_ranges(class) {
        wanted.push(*range).map_err(fail)?;
    }
    if let Some(text) = stack.getenv(b"WINEPRELOADRESERVE")
        && let Some(range) = reserve::parse_wine_reserve(text).map_err(fail)?
    {
        wanted.push(range).map_err(fail)?;
    }
    let mut exec_page = false;
    for range in wanted.as_slice() {
        let outcome = if fits(class, range) { reservation::reserve(range, protected).is_ok() } else { false };
        if let Some(out) = verbose.as_deref_mut() {
            out.line()
                .text(if outcome { "reserve for Wine " } else { "could not reserve for Wine " })
                .hex(range.start)
                .text("-")
                .hex(range.end);
            out.end();
        }
        if outcome {
            reserved.push(*range).map_err(fail)?;
            exec_page |= range.start <= WINE_EXEC_PAGE.start && WINE_EXEC_PAGE.end <= range.end;
        }
    }
    if exec_page {
        // Wine makes the reserved page executable afterwards; here it is mapped so from the
        // start (never made executable after the fact). As for Wine, a failure changes nothing.
        // SAFETY: the page is inside a reservation just made for the program, which holds nothing.
        let mapped = unsafe {
            mem::map_anonymous_over(WINE_EXEC_PAGE.start, WINE_EXEC_PAGE.len(), ProtFlags::READ | ProtFlags::EXEC)
        };
        if let (Err(errno), Some(out)) = (mapped, verbose.as_deref_mut()) {
            out.line().text("could not map Wine's executable page: ").text(errno_text(errno.raw_os_error()));
            out.end();
        }
    }
    let reserved = reserved.as_slice();
    // SAFETY: the symbol was found in the program as it is mapped.
    let table = unsafe { publish(reserved, class, symbol) }.map_err(|errno| Error::failure(exe_path, errno))?;
    if let Some(out) = verbose {
        let published = reserved.iter().filter(|range| fits(class, range)).count();
        out.line().text("wine_main_preload_info at ").hex(symbol).text(" -> table at ").hex(table);
        out.line().text(", ").dec(published as u64).text(" ranges");
        out.end();
    }
    Ok(())
}

/// The program mapped at `bias`, read through its own PT_LOADs (by [`find_symbol`] and by other
/// readers of its dynamic section, `origin`).
pub fn mapped<'a>(image: &'a Image<'a>, bias: u64, file_size: u64) -> impl Memory + 'a {
    Mapped { image, bias, file_size, readable: Cell::new((0, 0)) }
}
