//! `$ORIGIN` in the mapped program's DT_RPATH or DT_RUNPATH (`preload::elf::origin`), read
//! through its PT_DYNAMIC, for --verbose when /proc/self/exe could not be set.

use goblin::elf64::program_header::PT_DYNAMIC;
use preload::elf::Image;
use preload::elf::origin::{self, RunPath};
use preload::elf::symbols::Class;

/// Which run path of the program (of `class`), mapped at `bias`, uses `$ORIGIN`, if one does.
pub fn run_path(image: &Image, class: Class, bias: u64, file_size: u64) -> Option<RunPath> {
    let dynamic = image.phdrs.iter().find(|ph| ph.p_type == PT_DYNAMIC)?;
    origin::uses_origin(&crate::wine::mapped(image, bias, file_size), class, dynamic.p_vaddr, dynamic.p_memsz)
}
