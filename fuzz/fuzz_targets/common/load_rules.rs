//! What both ELF fuzz targets check PT_LOAD entries against (a 32-bit entry widened to 64 bits).

use goblin::elf64::program_header::{PF_W, ProgramHeader};
use preload::{page_offset, page_start};

/// The rules a PT_LOAD breaks for the loaders (`elf::check_load` and the compat loader of
/// `elf::ia32`, with their TASK_SIZE), restated independently.
pub fn broken_rules(ph: &ProgramHeader, file_size: u64, task_size: u64) -> Vec<&'static str> {
    let mut rules = Vec::new();
    if ph.p_vaddr >= task_size || ph.p_vaddr.checked_add(ph.p_memsz).is_none_or(|end| end > task_size) {
        rules.push("segment outside the user address space");
    }
    if ph.p_filesz > ph.p_memsz {
        rules.push("segment file size exceeds its memory size");
    }
    if ph.p_filesz > 0 {
        if page_offset(ph.p_offset) != page_offset(ph.p_vaddr) {
            rules.push("segment offset and address differ modulo the page size");
        }
        match ph.p_offset.checked_add(ph.p_filesz) {
            None => rules.push("segment beyond end of file"),
            // mmap's limit, MAX_LFS_FILESIZE (2^63 - 1), for the page holding the last byte.
            Some(file_end) if file_end > (1 << 63) - 0x1000 => {
                rules.push("segment file offset beyond what mmap accepts")
            }
            Some(file_end)
                if ph.p_flags & PF_W != 0
                    && ph.p_memsz > ph.p_filesz
                    && page_offset(file_end) != 0
                    && page_start(file_end) >= file_size =>
            {
                rules.push("a writable segment's bss starts past the end of the file")
            }
            Some(_) => {}
        }
    }
    rules
}
