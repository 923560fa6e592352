//! Wine's preloader protocol: a main program that exports `wine_main_preload_info` gets Wine's
//! default ranges (plus WINEPRELOADRESERVE) reserved, and the address of a table of the ranges
//! really reserved stored in that symbol.

use core::ffi::c_void;

use goblin::elf64::program_header::{PF_R, PF_W, PT_DYNAMIC};
use preload::dynsym::{self, Memory};
use preload::elf::Image;
use preload::ranges::Range;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

pub const SYMBOL: &[u8] = b"wine_main_preload_info";

/// A mapped image, read through its own PT_LOADs so that no read can fault.
struct Mapped<'a> {
    image: &'a Image<'a>,
    bias: u64,
    /// Segment flags every byte read must have.
    flags: u32,
}

impl Mapped<'_> {
    fn contains(&self, vaddr: u64, len: u64) -> bool {
        let Some(end) = vaddr.checked_add(len) else { return false };
        self.image.loads().any(|ph| ph.p_flags & self.flags == self.flags && ph.p_vaddr <= vaddr && end <= ph.p_vaddr + ph.p_memsz)
    }
}

impl Memory for Mapped<'_> {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
        if !self.contains(vaddr, buf.len() as u64) {
            return false;
        }
        // SAFETY: the bytes lie inside a PT_LOAD with the required flags, mapped at this bias. Only
        // a crafted image whose later PT_LOAD remaps them inaccessible breaks this (an open issue).
        unsafe { core::ptr::copy_nonoverlapping((self.bias + vaddr) as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// The biased address of `wine_main_preload_info` if the mapped program exports it as a
/// writable data object.
pub fn find_symbol(image: &Image, bias: u64) -> Option<u64> {
    let dynamic = image.phdrs.iter().find(|ph| ph.p_type == PT_DYNAMIC)?;
    let readable = Mapped { image, bias, flags: PF_R };
    let symbol = dynsym::find_object(&readable, dynamic.p_vaddr, dynamic.p_memsz, SYMBOL)?;
    let writable = Mapped { image, bias, flags: PF_R | PF_W };
    writable.contains(symbol, 8).then_some(bias + symbol)
}

/// Store in the symbol at `symbol` the address of a `{ void *addr; size_t size; }` table of
/// `reserved`, ended by a zero size, in a page of its own that stays mapped.
pub fn publish(reserved: &[Range], symbol: u64) -> Result<u64, Errno> {
    let bytes = (reserved.len() + 1) * 16;
    // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing, which
    // cannot be inside a reservation; it is only written here and then left to the program.
    let table = unsafe { rustix::mm::mmap_anonymous(core::ptr::null_mut::<c_void>(), bytes, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE) }? as *mut u64;
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
