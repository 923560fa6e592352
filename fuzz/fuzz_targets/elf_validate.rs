//! ELF validation over arbitrary file contents, read as `load::inspect` reads a file: header,
//! program header table, `validate`, then the PT_INTERP path.
//!
//! Checks that an accepted image keeps every promise the loader relies on (segments inside the
//! user address space and the file, offsets congruent to addresses, PT_LOADs of an ET_DYN in
//! address order,
//! a bounded NUL-terminated PT_INTERP), and that every refusal names a rule the file breaks.
#![no_main]

use goblin::elf::header::ET_DYN;
use goblin::elf64::program_header::{PT_INTERP, PT_LOAD, ProgramHeader, SIZEOF_PHDR};
use libfuzzer_sys::fuzz_target;
use preload::elf::{self, Aligned, MAX_INTERP_LEN, MAX_PHDR_TABLE, TASK_SIZE};
use preload::page_offset;

fuzz_target!(|file: &[u8]| {
    let Ok(header) = elf::header(file) else { return };
    let Ok((offset, len)) = elf::phdr_table(&header) else { return };
    assert!(len > 0 && len <= MAX_PHDR_TABLE && len % SIZEOF_PHDR == 0);
    assert_eq!(len / SIZEOF_PHDR, usize::from(header.e_phnum));
    let Some(table_bytes) = usize::try_from(offset).ok().and_then(|start| file.get(start..start.checked_add(len)?)) else { return };
    let mut table = Aligned::<MAX_PHDR_TABLE>::zeroed();
    table.0[..len].copy_from_slice(table_bytes);
    let phdrs = elf::program_headers(&table, len);
    assert_eq!(phdrs.len(), usize::from(header.e_phnum));
    let file_size = file.len() as u64;
    match elf::validate(&header, phdrs, file_size) {
        Ok(image) => check_accepted(&image, header.e_type, file, file_size),
        Err(reason) => check_refusal(reason, header.e_type == ET_DYN, phdrs, file_size),
    }
});

fn in_file(offset: u64, size: u64, file_size: u64) -> bool {
    offset.checked_add(size).is_some_and(|end| end <= file_size)
}

fn check_accepted(image: &elf::Image, e_type: u16, file: &[u8], file_size: u64) {
    assert_eq!(image.relocatable, e_type == ET_DYN);
    assert!(image.loads().next().is_some(), "accepted without a PT_LOAD");
    let mut previous = 0;
    for ph in image.loads() {
        assert!(ph.p_vaddr < TASK_SIZE && ph.p_vaddr + ph.p_memsz <= TASK_SIZE, "{ph:?}");
        assert!(ph.p_filesz <= ph.p_memsz, "{ph:?}");
        if ph.p_filesz > 0 {
            assert!(in_file(ph.p_offset, ph.p_filesz, file_size), "{ph:?}");
            assert_eq!(page_offset(ph.p_offset), page_offset(ph.p_vaddr), "{ph:?}");
        }
        assert!(!image.relocatable || ph.p_vaddr >= previous, "PT_LOADs out of address order");
        previous = ph.p_vaddr;
    }
    if let Some(interp) = image.interp() {
        assert!((2..=MAX_INTERP_LEN).contains(&interp.p_filesz));
        assert!(in_file(interp.p_offset, interp.p_filesz, file_size));
        let bytes = &file[interp.p_offset as usize..][..interp.p_filesz as usize];
        match elf::interp_path(bytes) {
            Ok(path) => {
                // main.rs keeps the path NUL-terminated in a PATH_MAX + 1 buffer.
                assert!(path.len() < bytes.len() && !path.contains(&0));
                assert_eq!(&bytes[..path.len()], path);
                assert_eq!(bytes[path.len()], 0);
            }
            Err(_) => assert_ne!(bytes.last(), Some(&0)),
        }
    }
}

/// The refusal's reason must describe something really wrong with the headers.
fn check_refusal(reason: &str, relocatable: bool, phdrs: &[ProgramHeader], file_size: u64) {
    let interp = phdrs.iter().find(|ph| ph.p_type == PT_INTERP);
    let mut loads = phdrs.iter().filter(|ph| ph.p_type == PT_LOAD);
    let broken = match reason {
        "bad PT_INTERP size" => interp.is_some_and(|ph| !(2..=MAX_INTERP_LEN).contains(&ph.p_filesz)),
        "PT_INTERP beyond end of file" => interp.is_some_and(|ph| !in_file(ph.p_offset, ph.p_filesz, file_size)),
        "no loadable segment" => loads.next().is_none(),
        "segment outside the user address space" => loads.any(|ph| ph.p_vaddr.checked_add(ph.p_memsz).is_none_or(|end| end > TASK_SIZE) || ph.p_vaddr >= TASK_SIZE),
        "segment file size exceeds its memory size" => loads.any(|ph| ph.p_filesz > ph.p_memsz),
        "segment offset and address differ modulo the page size" => loads.any(|ph| ph.p_filesz > 0 && page_offset(ph.p_offset) != page_offset(ph.p_vaddr)),
        "segment beyond end of file" => loads.any(|ph| ph.p_filesz > 0 && !in_file(ph.p_offset, ph.p_filesz, file_size)),
        "PT_LOAD segments not in ascending address order" => relocatable && loads.clone().zip(loads.skip(1)).any(|(a, b)| b.p_vaddr < a.p_vaddr),
        other => panic!("unexpected refusal {other:?}"),
    };
    assert!(broken, "refused with {reason:?}, but no header breaks that rule: {phdrs:?}");
}
