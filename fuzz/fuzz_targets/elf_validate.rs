//! ELF validation over arbitrary file contents, read as `load::inspect` reads a file: header,
//! program header table, `validate` (after `check_segments_in_file` for a streamed program),
//! then `check_has_loads` and the PT_INTERP checks as `main.rs` runs them; and
//! `stream::check_start` on every prefix of the header, as `stream::drain` sees it arrive.
//!
//! Checks that an accepted image keeps every promise the loader relies on (segments inside the
//! user address space, offsets congruent to addresses, a writable segment's partial last file
//! page inside the file so that zeroing it cannot fault, a bounded NUL-terminated PT_INTERP),
//! that every refusal (header or program headers) names a rule the file breaks, and that the
//! start of a stream is refused as soon as it is refused at all, for the reason the whole
//! header would get.
#![no_main]

use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf64::header::{ELFMAG, Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{PF_W, PT_LOAD, ProgramHeader, SIZEOF_PHDR};
use libfuzzer_sys::fuzz_target;
use preload::elf::{self, Aligned, MAX_INTERP_LEN, MAX_PHDR_TABLE, TASK_SIZE};
use preload::input::stream;
use preload::{page_offset, page_start};

#[path = "common/load_rules.rs"]
mod load_rules;
use load_rules::broken_rules;

fuzz_target!(|file: &[u8]| {
    check_stream_start(file);
    let Ok(header) = elf::header(file) else {
        assert!(file.len() < SIZEOF_EHDR || !file.starts_with(ELFMAG));
        return;
    };
    let (offset, len) = match elf::phdr_table(&header) {
        Ok(table) => table,
        Err(reason) => return check_header_refusal(reason, &header),
    };
    assert!(len > 0 && len <= MAX_PHDR_TABLE && len % SIZEOF_PHDR == 0);
    assert_eq!(len / SIZEOF_PHDR, usize::from(header.e_phnum));
    let Some(table_bytes) = usize::try_from(offset).ok().and_then(|start| file.get(start..start.checked_add(len)?))
    else {
        return;
    };
    let mut table = Aligned::<MAX_PHDR_TABLE>::zeroed();
    table.0[..len].copy_from_slice(table_bytes);
    let phdrs = elf::program_headers(&table.0[..len]);
    assert_eq!(phdrs.len(), usize::from(header.e_phnum));
    let file_size = file.len() as u64;
    let loads = || phdrs.iter().filter(|ph| ph.p_type == PT_LOAD);
    let beyond_file = |ph: &ProgramHeader| ph.p_filesz > 0 && !in_file(ph.p_offset, ph.p_filesz, file_size);
    assert_eq!(elf::check_segments_in_file(phdrs, file_size).is_err(), loads().any(beyond_file));
    let span_beyond = header.e_type == ET_DYN && span_beyond_mmap(phdrs);
    match elf::validate(&header, phdrs, file_size) {
        Ok(image) => {
            assert!(!span_beyond, "accepted an ET_DYN whose span, from its first offset, mmap refuses: {phdrs:?}");
            check_accepted(&image, header.e_type, file, file_size)
        }
        Err(reason) => {
            let first_broken = loads().map(|ph| broken_rules(ph, file_size, TASK_SIZE)).find(|rules| !rules.is_empty());
            if first_broken.is_none() && span_beyond {
                return assert_eq!(reason, "segment file offset beyond what mmap accepts");
            }
            let rules = first_broken
                .unwrap_or_else(|| panic!("refused with {reason:?}, but no PT_LOAD breaks a rule: {phdrs:?}"));
            assert!(
                rules.contains(&reason),
                "refused with {reason:?}, but the first bad PT_LOAD breaks {rules:?}: {phdrs:?}"
            );
        }
    }
});

/// Whether the first PT_LOAD, with file bytes, mapped for the whole span of the PT_LOADs (the
/// kernel's total_mapping_size) from its offset, ends past the last file page mmap maps.
fn span_beyond_mmap(phdrs: &[ProgramHeader]) -> bool {
    let loads = || phdrs.iter().filter(|ph| ph.p_type == PT_LOAD);
    let Some(first) = loads().next().filter(|ph| ph.p_filesz > 0) else { return false };
    let lowest = loads().map(|ph| page_start(ph.p_vaddr)).min().unwrap_or(0);
    let highest = loads().map(|ph| ph.p_vaddr.saturating_add(ph.p_memsz)).max().unwrap_or(0);
    let span = highest.saturating_sub(lowest).saturating_add(0xfff) & !0xfff;
    page_start(first.p_offset).saturating_add(span) > (1 << 63) - 0x1000
}

/// A refused header breaks the rule the reason names.
fn check_header_refusal(reason: &str, header: &Header) {
    let broken = match reason {
        "not an executable or shared object (ELF type is neither EXEC nor DYN)" => {
            header.e_type != ET_EXEC && header.e_type != ET_DYN
        }
        // EM_386 or EM_486 (6), both of which the kernel's IA32 check accepts.
        "an i386 (32-bit) program: preload runs x86_64 programs only" => matches!(header.e_machine, elf::EM_386 | 6),
        "wrong machine: not an x86_64 program" => header.e_machine != EM_X86_64,
        "bad program header entry size" => usize::from(header.e_phentsize) != SIZEOF_PHDR,
        "bad number of program headers" => {
            header.e_phnum == 0 || usize::from(header.e_phnum) * SIZEOF_PHDR > MAX_PHDR_TABLE
        }
        other => panic!("unexpected header refusal {other:?}"),
    };
    assert!(broken, "refused with {reason:?}, but the header does not break that rule: {header:?}");
}

fn in_file(offset: u64, size: u64, file_size: u64) -> bool {
    offset.checked_add(size).is_some_and(|end| end <= file_size)
}

fn check_accepted(image: &elf::Image, e_type: u16, file: &[u8], file_size: u64) {
    assert_eq!(image.relocatable, e_type == ET_DYN);
    // Without a PT_LOAD only a program with an interpreter runs (main.rs checks the rest).
    assert_eq!(elf::check_has_loads(image).is_ok(), image.loads().next().is_some());
    for ph in image.loads() {
        assert!(broken_rules(ph, file_size, TASK_SIZE).is_empty(), "accepted {ph:?}");
        assert!(ph.p_vaddr < TASK_SIZE && ph.p_vaddr + ph.p_memsz <= TASK_SIZE, "{ph:?}");
        assert!(ph.p_filesz <= ph.p_memsz, "{ph:?}");
        if ph.p_filesz > 0 {
            assert_eq!(page_offset(ph.p_offset), page_offset(ph.p_vaddr), "{ph:?}");
            // File pages past the end are mapped as the kernel maps them; but the page the
            // preloader zeroes after a writable segment's data must exist in the file.
            let file_end = ph.p_offset + ph.p_filesz;
            if ph.p_flags & PF_W != 0 && ph.p_memsz > ph.p_filesz && page_offset(file_end) != 0 {
                assert!(
                    page_start(file_end) < file_size,
                    "zeroing would touch a page past the end of the file: {ph:?}"
                );
            }
        }
    }
    let Some(interp) = image.interp() else { return };
    match elf::check_interp(interp, file_size) {
        Ok(()) => {
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
        Err("bad PT_INTERP size") => assert!(!(2..=MAX_INTERP_LEN).contains(&interp.p_filesz)),
        Err("PT_INTERP beyond end of file") => assert!(!in_file(interp.p_offset, interp.p_filesz, file_size)),
        Err(other) => panic!("unexpected PT_INTERP refusal {other:?}"),
    }
}

/// `drain` judges the header as it arrives, in chunks of any size: a refused prefix must stay
/// refused (else the verdict would depend on how the bytes were split), a script is refused at
/// its `#!`, and the whole header gets the same verdict as the file's own checks.
fn check_stream_start(file: &[u8]) {
    let head = &file[..file.len().min(SIZEOF_EHDR)];
    let mut refused = None;
    for end in 0..=head.len() {
        match (stream::check_start(&head[..end]), refused) {
            (Ok(()), Some((at, reason))) => panic!("prefix of {at} bytes refused ({reason}), but {end} bytes accepted"),
            (Err(reason), None) => refused = Some((end, reason)),
            _ => {}
        }
    }
    if head.starts_with(b"#!") {
        assert_eq!(refused, Some((2, stream::SCRIPT_WITHOUT_PATH)));
    } else if head.len() == SIZEOF_EHDR && !head.starts_with(&preload::input::sealed::MAGIC) {
        let whole = match elf::ia32::is_ia32(head) {
            true => elf::ia32::header(head).and_then(|header| elf::ia32::phdr_table(&header)).map(|_| ()),
            false => elf::header(head).and_then(|header| elf::phdr_table(&header)).map(|_| ()),
        };
        assert_eq!(stream::check_start(head), whole);
    }
}
