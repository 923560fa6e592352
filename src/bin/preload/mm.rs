//! Pointing the mm fields, the saved auxv and /proc/self/exe at the program with one
//! PR_SET_MM_MAP.

use core::ffi::c_void;

use goblin::elf64::program_header::{PT_LOAD, ProgramHeader};
use preload::{page_align, page_start};
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, MremapFlags, ProtFlags};
use rustix::process::PrctlMmMap;

/// What became of /proc/self/exe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExeOutcome {
    /// Set on the first try: this kernel lets exe change while the old file is mapped.
    Set,
    /// Set after replacing the preloader's own file mappings with anonymous copies (EBUSY).
    SetAfterUnmapping,
    /// Not changed; the rest of the fields were set. Carries the reason.
    Unchanged(Errno),
    /// PR_SET_MM_MAP itself failed: nothing was set.
    Failed(Errno),
}

/// Apply `map`, trying to set exe to `exe` as described in [`ExeOutcome`]. Whenever the first
/// try fails, the preloader's own file mappings are replaced by anonymous copies: that is what
/// EBUSY asks for, and otherwise (EPERM) it keeps the preloader's file out of the program's
/// /proc/self/maps all the same.
pub fn set(map: &mut PrctlMmMap, exe: BorrowedFd<'_>) -> ExeOutcome {
    map.exe_fd = exe.as_raw_fd();
    let first = match apply(map) {
        Ok(()) => return ExeOutcome::Set,
        Err(errno) => errno,
    };
    match replace_own_file_mappings() {
        Ok(()) if first == Errno::BUSY => match apply(map) {
            Ok(()) => ExeOutcome::SetAfterUnmapping,
            Err(errno) => without_exe(map, errno),
        },
        Ok(()) => without_exe(map, first),
        Err(errno) => without_exe(map, errno),
    }
}

fn without_exe(map: &mut PrctlMmMap, why: Errno) -> ExeOutcome {
    map.exe_fd = -1;
    match apply(map) {
        Ok(()) => ExeOutcome::Unchanged(why),
        Err(errno) => ExeOutcome::Failed(errno),
    }
}

fn apply(map: &PrctlMmMap) -> Result<(), Errno> {
    // SAFETY: the fields describe the program's memory; the kernel copies the auxv from the
    // pointer before returning and changes no mapping.
    unsafe { rustix::process::configure_virtual_memory_map(map) }
}

unsafe extern "C" {
    /// The preloader's own ELF header, placed by the linker at the start of its image.
    static __ehdr_start: goblin::elf64::header::Header;
}

/// The kernel refuses a new exe while any mapping of the old one exists (EBUSY). Swap each of
/// the preloader's file-backed segments for an anonymous copy at the same address: map, copy,
/// protect, then mremap over the original in one step, so the code running here survives.
/// Only the pages with file contents are copied: linker.ld keeps the writable load free of file
/// bytes, so the kernel mapped it anonymous and it stays as it is.
fn replace_own_file_mappings() -> Result<(), Errno> {
    // SAFETY: the linker defines __ehdr_start; the program headers it points to are part of the
    // preloader's first segment and stay mapped (the copy keeps their contents).
    let (base, phdrs) = unsafe {
        let ehdr = &raw const __ehdr_start;
        let base = ehdr as u64;
        let phdrs =
            core::slice::from_raw_parts((base + (*ehdr).e_phoff) as *const ProgramHeader, usize::from((*ehdr).e_phnum));
        (base, phdrs)
    };
    for ph in phdrs.iter().filter(|ph| ph.p_type == PT_LOAD && ph.p_filesz > 0) {
        let start = page_start(base + ph.p_vaddr);
        let len = (page_align(base + ph.p_vaddr + ph.p_filesz) - start) as usize;
        // SAFETY: [start, start+len) are the file-backed pages of one of the preloader's own
        // segments, mapped and readable (every segment has PF_R). The copy gets the same bytes
        // and protection before it atomically replaces the original, so no code or data changes
        // under the running code.
        // POPULATE: every page is written at once, and allocating them in the mmap costs less
        // than a page fault for each.
        unsafe {
            let copy = rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )?;
            core::ptr::copy_nonoverlapping(start as *const u8, copy as *mut u8, len);
            let prot = crate::load::prot(ph.p_flags);
            if prot != ProtFlags::READ | ProtFlags::WRITE {
                rustix::mm::mprotect(copy, len, MprotectFlags::from_bits_retain(prot.bits()))?;
            }
            rustix::mm::mremap_fixed(copy, len, len, MremapFlags::MAYMOVE, start as *mut c_void)?;
        }
    }
    Ok(())
}
