//! i386 ELF validation over arbitrary file contents, read as `ia32.rs` in the shell reads a file:
//! `elf::ia32::is_ia32` (the kernel's choice of loader, by machine), the 32-bit header, its
//! program header table, `widen` and `elf::ia32::validate`.
//!
//! Checks that a header refusal names a rule the 32-bit header breaks, that widening keeps every
//! field of every entry, and that `validate` accepts exactly when no PT_LOAD breaks a rule of an
//! independent restatement of the compat loader's checks (inside the compat TASK_SIZE
//! 0xffffe000, `p_filesz <= p_memsz`, offset congruent to address, a writable segment's zeroed
//! bss page inside the file), each refusal naming a rule the first bad PT_LOAD breaks.
#![no_main]

use goblin::elf::header::{ET_DYN, ET_EXEC};
use goblin::elf64::header::ELFMAG;
use goblin::elf64::program_header::{PT_LOAD, ProgramHeader};
use libfuzzer_sys::fuzz_target;
use preload::elf::{self, ia32};

#[path = "common/load_rules.rs"]
mod load_rules;
use load_rules::broken_rules;

fn u32_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()))
}

fuzz_target!(|file: &[u8]| {
    let machine = file.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]]));
    assert_eq!(
        ia32::is_ia32(file),
        file.starts_with(ELFMAG) && matches!(machine, Some(elf::EM_386 | elf::EM_486)),
        "the loader is chosen by magic and machine alone"
    );
    let Ok(header) = ia32::header(file) else {
        assert!(file.len() < ia32::SIZEOF_EHDR || !file.starts_with(ELFMAG));
        return;
    };
    assert_eq!(header.e_entry, u32_at(file, 24));
    assert_eq!(header.e_phoff, u32_at(file, 28));
    let (offset, len) = match ia32::phdr_table(&header) {
        Ok(table) => table,
        Err(reason) => {
            let broken = match reason {
                "not an executable or shared object (ELF type is neither EXEC nor DYN)" => {
                    header.e_type != ET_EXEC && header.e_type != ET_DYN
                }
                "wrong machine: not an i386 program" => !matches!(header.e_machine, elf::EM_386 | elf::EM_486),
                "bad program header entry size" => usize::from(header.e_phentsize) != ia32::SIZEOF_PHDR,
                "bad number of program headers" => header.e_phnum == 0 || usize::from(header.e_phnum) > ia32::MAX_PHDRS,
                other => panic!("unexpected header refusal {other:?}"),
            };
            assert!(broken, "refused with {reason:?}, but the header does not break that rule: {header:?}");
            return;
        }
    };
    assert_eq!(len, usize::from(header.e_phnum) * ia32::SIZEOF_PHDR);
    let Some(table) = usize::try_from(offset).ok().and_then(|start| file.get(start..start.checked_add(len)?)) else {
        return;
    };
    let mut out = vec![ProgramHeader::default(); ia32::MAX_PHDRS];
    let phdrs = ia32::widen(table, &mut out);
    assert_eq!(phdrs.len(), usize::from(header.e_phnum));
    for (ph, raw) in phdrs.iter().zip(table.chunks_exact(ia32::SIZEOF_PHDR)) {
        let fields = [ph.p_type.into(), ph.p_offset, ph.p_vaddr, ph.p_paddr, ph.p_filesz, ph.p_memsz];
        assert_eq!(fields, [0, 4, 8, 12, 16, 20].map(|at| u32_at(raw, at)));
        assert_eq!((u64::from(ph.p_flags), ph.p_align), (u32_at(raw, 24), u32_at(raw, 28)));
    }
    let file_size = file.len() as u64;
    let loads = || phdrs.iter().filter(|ph| ph.p_type == PT_LOAD);
    match ia32::validate(&header, phdrs, file_size) {
        Ok(image) => {
            assert_eq!(image.relocatable, header.e_type == ET_DYN);
            for ph in image.loads() {
                assert!(broken_rules(ph, file_size, ia32::TASK_SIZE).is_empty(), "accepted {ph:?}");
                assert!(ph.p_vaddr + ph.p_memsz <= ia32::TASK_SIZE, "{ph:?}");
            }
        }
        Err(reason) => {
            let rules = loads()
                .map(|ph| broken_rules(ph, file_size, ia32::TASK_SIZE))
                .find(|rules| !rules.is_empty())
                .unwrap_or_else(|| panic!("refused with {reason:?}, but no PT_LOAD breaks a rule: {phdrs:?}"));
            assert!(rules.contains(&reason), "refused with {reason:?}, the first bad PT_LOAD breaks {rules:?}");
        }
    }
});
