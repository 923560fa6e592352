//! ELF validation: every check `fs/binfmt_elf.c` makes before the point of no return, plus the
//! ones that would kill the process after it (a refusal with a reason is kinder than SIGSEGV).

pub mod ia32;
pub mod origin;
pub mod symbols;

use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf64::header::{ELFMAG, Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{PF_W, PF_X, PT_GNU_STACK, PT_INTERP, PT_LOAD, ProgramHeader, SIZEOF_PHDR};

use crate::{PAGE_SIZE, page_align, page_offset, page_start};

/// The end of the x86_64 user address space with 4-level paging (TASK_SIZE_MAX).
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// The kernel reads at most 64 KiB of program headers (1170 entries; measured on 6.18, which no
/// longer limits the table to ELF_MIN_ALIGN).
pub const MAX_PHDR_TABLE: usize = 65536;
/// Kernels before 6.17 also limit it to ELF_MIN_ALIGN, one page (73 entries): 6.17 removed that
/// limit ("binfmt_elf: remove the 4k limitation of program header size"); measured on 6.12.
pub const PAGE_PHDR_TABLE: usize = PAGE_SIZE as usize;
/// EM_386: the kernel runs these through IA32 emulation; preload loads x86_64 programs only.
pub const EM_386: u16 = 3;
/// EM_486, which the kernel's IA32 check accepts as well (elf_check_arch_ia32).
pub const EM_486: u16 = 6;
/// PATH_MAX bounds PT_INTERP.
pub const MAX_INTERP_LEN: u64 = 4096;
/// The end of the last file page mmap maps (file_mmap_ok): MAX_LFS_FILESIZE, LLONG_MAX, in
/// whole pages.
pub const MAX_MAPPED_FILE_END: u64 = i64::MAX as u64 & !(PAGE_SIZE - 1);
/// The refusal of file bytes past [`MAX_MAPPED_FILE_END`].
pub const OFFSET_BEYOND_MMAP: &str = "segment file offset beyond what mmap accepts";

/// A buffer with the alignment the ELF structures need.
#[repr(C, align(8))]
pub struct Aligned<const N: usize>(pub [u8; N]);

impl<const N: usize> Aligned<N> {
    pub const fn zeroed() -> Self {
        Self([0; N])
    }
}

/// The ELF header from the first bytes of a file.
pub fn header(bytes: &[u8]) -> Result<Header, &'static str> {
    if bytes.len() < SIZEOF_EHDR || &bytes[..4] != ELFMAG {
        return Err("not an ELF file");
    }
    let mut header = Header::default();
    plain::copy_from_bytes(&mut header, &bytes[..SIZEOF_EHDR]).map_err(|_| "not an ELF file")?;
    Ok(header)
}

/// Where the program header table lies in the file: (offset, length), after the kernel's checks
/// of the header.
pub fn phdr_table(header: &Header) -> Result<(u64, usize), &'static str> {
    check_type(header)?;
    if matches!(header.e_machine, EM_386 | EM_486) {
        return Err("an i386 (32-bit) program: preload runs x86_64 programs only");
    }
    if header.e_machine != EM_X86_64 {
        return Err("wrong machine: not an x86_64 program");
    }
    table_of(header, SIZEOF_PHDR)
}

/// The checks both loaders make of the type, before their own of the machine.
pub(crate) fn check_type(header: &Header) -> Result<(), &'static str> {
    match header.e_type {
        ET_EXEC | ET_DYN => Ok(()),
        _ => Err("not an executable or shared object (ELF type is neither EXEC nor DYN)"),
    }
}

/// The checks both loaders make of the table, with entries of `entry_size` bytes: (offset,
/// length).
pub(crate) fn table_of(header: &Header, entry_size: usize) -> Result<(u64, usize), &'static str> {
    if usize::from(header.e_phentsize) != entry_size {
        return Err("bad program header entry size");
    }
    let len = usize::from(header.e_phnum) * entry_size;
    if len == 0 || len > MAX_PHDR_TABLE {
        return Err("bad number of program headers");
    }
    Ok((header.e_phoff, len))
}

/// The running kernel's own limit on a table of `len` bytes that [`phdr_table`] accepted, for the
/// kernel release `release` (`uname -r`, e.g. `6.12.118+deb12-amd64`): up to 64 KiB from 6.17 on,
/// one page before. A release that does not parse as `MAJOR.MINOR` gets the current rule.
pub fn check_phdr_table_for_kernel(len: usize, release: &[u8]) -> Result<(), &'static str> {
    if len > PAGE_PHDR_TABLE && kernel_version(release).is_some_and(|version| version < (6, 17)) {
        return Err("bad number of program headers (this kernel reads one page of them)");
    }
    Ok(())
}

/// (major, minor) from a kernel release string.
fn kernel_version(release: &[u8]) -> Option<(u32, u32)> {
    let mut parts = release.split(|&b| b == b'.');
    let number = |part: Option<&[u8]>| {
        let digits = part?;
        let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
        if end == 0 || end > 6 {
            return None;
        }
        Some(digits[..end].iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
    };
    Some((number(parts.next())?, number(parts.next())?))
}

/// View a program header table read into an 8-aligned buffer (whole entries only; an unaligned
/// buffer gives none).
pub fn program_headers(table: &[u8]) -> &[ProgramHeader] {
    plain::slice_from_bytes(&table[..table.len() / SIZEOF_PHDR * SIZEOF_PHDR]).unwrap_or(&[])
}

/// An executable that passed validation.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    /// ET_DYN: position-independent, placed by the loader.
    pub relocatable: bool,
    pub entry: u64,
    pub phoff: u64,
    pub phdrs: &'a [ProgramHeader],
}

impl<'a> Image<'a> {
    pub fn loads(&self) -> impl DoubleEndedIterator<Item = &'a ProgramHeader> + Clone + 'a {
        self.phdrs.iter().filter(|ph| ph.p_type == PT_LOAD)
    }

    /// The first PT_INTERP, the only one the kernel reads.
    pub fn interp(&self) -> Option<&'a ProgramHeader> {
        self.phdrs.iter().find(|ph| ph.p_type == PT_INTERP)
    }

    /// The last PT_GNU_STACK decides; without one the x86_64 stack is not executable.
    pub fn executable_stack(&self) -> bool {
        self.phdrs.iter().rev().find(|ph| ph.p_type == PT_GNU_STACK).is_some_and(|ph| ph.p_flags & PF_X != 0)
    }
}

/// The kernel's checks of a program's PT_INTERP (an interpreter's own PT_INTERP is ignored).
pub fn check_interp(interp: &ProgramHeader, file_size: u64) -> Result<(), &'static str> {
    if interp.p_filesz < 2 || interp.p_filesz > MAX_INTERP_LEN {
        return Err("bad PT_INTERP size");
    }
    if interp.p_offset.checked_add(interp.p_filesz).is_none_or(|end| end > file_size) {
        return Err("PT_INTERP beyond end of file");
    }
    Ok(())
}

/// Check the program headers of a file of `file_size` bytes.
pub fn validate<'a>(header: &Header, phdrs: &'a [ProgramHeader], file_size: u64) -> Result<Image<'a>, &'static str> {
    validate_below(TASK_SIZE, header, phdrs, file_size)
}

/// `validate` against the end of the user address space of the exec's ABI, `task_size`.
fn validate_below<'a>(
    task_size: u64,
    header: &Header,
    phdrs: &'a [ProgramHeader],
    file_size: u64,
) -> Result<Image<'a>, &'static str> {
    let image = Image { relocatable: header.e_type == ET_DYN, entry: header.e_entry, phoff: header.e_phoff, phdrs };
    for ph in image.loads() {
        check_load(ph, file_size, task_size)?;
    }
    // An ET_DYN's first PT_LOAD with file bytes is mapped for the whole span
    // (total_mapping_size) from its offset, which must end where mmap maps files too.
    if let Some(first) = image.loads().next().filter(|ph| image.relocatable && ph.p_filesz > 0) {
        let lowest = image.loads().map(|ph| page_start(ph.p_vaddr)).min().unwrap_or(0);
        let highest = image.loads().map(|ph| ph.p_vaddr + ph.p_memsz).max().unwrap_or(0);
        if page_start(first.p_offset) + page_align(highest - lowest) > MAX_MAPPED_FILE_END {
            return Err(OFFSET_BEYOND_MMAP);
        }
    }
    Ok(image)
}

/// A program that arrived as a stream has no file to map past its end: every segment's file
/// bytes must have arrived.
pub fn check_segments_in_file(phdrs: &[ProgramHeader], file_size: u64) -> Result<(), &'static str> {
    let beyond = |ph: &ProgramHeader| ph.p_offset.checked_add(ph.p_filesz).is_none_or(|end| end > file_size);
    match phdrs.iter().any(|ph| ph.p_type == PT_LOAD && ph.p_filesz > 0 && beyond(ph)) {
        true => Err("segment beyond end of file"),
        false => Ok(()),
    }
}

/// An interpreter, or a program without one, needs a PT_LOAD (the kernel kills the process
/// otherwise); a program with an interpreter may have none, as the kernel runs it.
pub fn check_has_loads(image: &Image) -> Result<(), &'static str> {
    if image.loads().next().is_none() {
        return Err("no loadable segment");
    }
    Ok(())
}

fn check_load(ph: &ProgramHeader, file_size: u64, task_size: u64) -> Result<(), &'static str> {
    if ph.p_vaddr >= task_size || ph.p_memsz > task_size - ph.p_vaddr {
        return Err("segment outside the user address space");
    }
    if ph.p_filesz > ph.p_memsz {
        return Err("segment file size exceeds its memory size");
    }
    if ph.p_filesz > 0 {
        if page_offset(ph.p_offset) != page_offset(ph.p_vaddr) {
            return Err("segment offset and address differ modulo the page size");
        }
        // File pages past the end of the file are mapped as the kernel maps them (SIGBUS only if
        // touched), but the kernel must zero the rest of a writable segment's last file page.
        let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or("segment beyond end of file")?;
        // mmap refuses file pages past MAX_LFS_FILESIZE (or wrapping), where exec then kills.
        if file_end > MAX_MAPPED_FILE_END {
            return Err(OFFSET_BEYOND_MMAP);
        }
        let zeroed = ph.p_flags & PF_W != 0 && ph.p_memsz > ph.p_filesz && page_offset(file_end) != 0;
        if zeroed && page_start(file_end) >= file_size {
            return Err("a writable segment's bss starts past the end of the file");
        }
    }
    Ok(())
}

/// The interpreter path from the PT_INTERP bytes, which must end with a NUL; like the kernel,
/// the path stops at the first NUL.
pub fn interp_path(bytes: &[u8]) -> Result<&[u8], &'static str> {
    match bytes.split_last() {
        Some((0, path)) => Ok(path.split(|&b| b == 0).next().unwrap_or(path)),
        _ => Err("PT_INTERP not NUL-terminated"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use goblin::elf64::program_header::{PF_R, PF_W};

    pub fn load(vaddr: u64, offset: u64, filesz: u64, memsz: u64, flags: u32) -> ProgramHeader {
        ProgramHeader {
            p_type: PT_LOAD,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: PAGE_SIZE,
        }
    }

    pub fn header_bytes(e_type: u16, machine: u16, phnum: u16) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(ELFMAG);
        h[4] = 2;
        h[5] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&phnum.to_le_bytes());
        h
    }

    #[test]
    fn accepts_a_plain_header_and_locates_the_table() {
        let h = header(&header_bytes(ET_DYN, EM_X86_64, 3)).unwrap();
        assert_eq!(phdr_table(&h), Ok((64, 168)));
    }

    #[test]
    fn refuses_what_the_kernel_refuses_in_the_header() {
        assert_eq!(header(b"#!/bin/sh\n").unwrap_err(), "not an ELF file");
        assert_eq!(header(&header_bytes(ET_DYN, EM_X86_64, 1)[..63]).unwrap_err(), "not an ELF file");
        let rel = header(&header_bytes(1, EM_X86_64, 1)).unwrap();
        assert!(phdr_table(&rel).unwrap_err().contains("neither EXEC nor DYN"));
        let arm = header(&header_bytes(ET_EXEC, 40, 1)).unwrap();
        assert!(phdr_table(&arm).unwrap_err().contains("wrong machine"));
        let none = header(&header_bytes(ET_EXEC, EM_X86_64, 0)).unwrap();
        assert_eq!(phdr_table(&none).unwrap_err(), "bad number of program headers");
        let too_many = header(&header_bytes(ET_EXEC, EM_X86_64, 1171)).unwrap();
        assert_eq!(phdr_table(&too_many).unwrap_err(), "bad number of program headers");
        let max = header(&header_bytes(ET_EXEC, EM_X86_64, 1170)).unwrap();
        assert_eq!(phdr_table(&max), Ok((64, 65520)));
        let i386 = header(&header_bytes(ET_EXEC, EM_386, 1)).unwrap();
        assert!(phdr_table(&i386).unwrap_err().contains("i386"));
        // Found by a 20,000-mutant run (seed 4): the kernel runs EM_486 through IA32 emulation too.
        let i486 = header(&header_bytes(ET_EXEC, EM_486, 1)).unwrap();
        assert!(phdr_table(&i486).unwrap_err().contains("i386"));
        let mut bytes = header_bytes(ET_EXEC, EM_X86_64, 1);
        bytes[54] = 32;
        assert_eq!(phdr_table(&header(&bytes).unwrap()).unwrap_err(), "bad program header entry size");
    }

    #[test]
    fn follows_the_running_kernels_table_limit() {
        let page = 73 * SIZEOF_PHDR;
        let above = 74 * SIZEOF_PHDR;
        for old in [&b"6.1.0-57-amd64"[..], b"6.12.118+deb12-amd64", b"6.16.9", b"5.10.0", b"4.19.0-27-amd64", b"6.16"]
        {
            assert_eq!(check_phdr_table_for_kernel(page, old), Ok(()), "{}", core::str::from_utf8(old).unwrap());
            assert!(check_phdr_table_for_kernel(above, old).is_err(), "{}", core::str::from_utf8(old).unwrap());
            assert!(check_phdr_table_for_kernel(MAX_PHDR_TABLE, old).is_err());
        }
        for new in [&b"6.17.0"[..], b"6.18.44-fc-v1147", b"7.0.1", b"6.17-rc1", b"10.2"] {
            assert_eq!(check_phdr_table_for_kernel(above, new), Ok(()), "{}", core::str::from_utf8(new).unwrap());
            assert_eq!(check_phdr_table_for_kernel(MAX_PHDR_TABLE - 16, new), Ok(()));
        }
        // Unparsable: the current rule.
        for odd in [&b""[..], b"6", b"x.y", b".17", b"6.", b"99999999.1"] {
            assert_eq!(check_phdr_table_for_kernel(above, odd), Ok(()), "{:?}", odd);
        }
        assert_eq!(kernel_version(b"6.12.118+deb12-amd64"), Some((6, 12)));
        assert_eq!(kernel_version(b"6.1.0-57-amd64"), Some((6, 1)));
        assert_eq!(kernel_version(b"6.17-rc1"), Some((6, 17)));
    }

    #[test]
    fn checks_segments_like_elf_load() {
        let h = header(&header_bytes(ET_DYN, EM_X86_64, 1)).unwrap();
        let ok = [load(0x1000, 0x1000, 0x100, 0x2000, PF_R | PF_W)];
        assert!(validate(&h, &ok, 0x2000).is_ok());
        let cases: [(ProgramHeader, &str); 7] = [
            (load(TASK_SIZE, 0, 0, 0x10, PF_R), "segment outside the user address space"),
            (load(TASK_SIZE - 0x1000, 0, 0, 0x2000, PF_R), "segment outside the user address space"),
            (load(0x1000, 0x1000, 0x200, 0x100, PF_R), "segment file size exceeds its memory size"),
            (load(0x1010, 0x1000, 0x10, 0x10, PF_R), "segment offset and address differ modulo the page size"),
            (load(0x1000, 0x2000, 0x10, 0x20, PF_R | PF_W), "a writable segment's bss starts past the end of the file"),
            // Found by the mutants harness: its page wraps to 0 (the kernel's exec dies in mmap).
            (load(0x3ff000, u64::MAX - 0xfff, 0x1c8, 0x1c8, 0), "segment file offset beyond what mmap accepts"),
            (load(0x1000, 1 << 63, 0x10, 0x10, PF_R), "segment file offset beyond what mmap accepts"),
        ];
        assert!(
            validate(&h, &[load(0x1000, (1 << 63) - 0x2000, 0x1000, 0x1000, PF_R)], 0x2000).is_ok(),
            "the last page mmap takes"
        );
        // An ET_DYN's first segment is mapped for the whole span from its offset.
        let span = [load(0x1000, (1 << 63) - 0x2000, 0x1000, 0x1000, PF_R), load(0x3000, 0x1000, 0x10, 0x10, PF_R)];
        assert_eq!(validate(&h, &span, 0x2000).unwrap_err(), "segment file offset beyond what mmap accepts");
        let exec = header(&header_bytes(ET_EXEC, EM_X86_64, 1)).unwrap();
        assert!(validate(&exec, &span, 0x2000).is_ok(), "an ET_EXEC's segments are mapped each by itself");
        assert!(
            validate(&h, &[load(0x1000, 0x1000, 0x5001, 0x5001, PF_R)], 0x2000).is_ok(),
            "file pages past the end, as the kernel maps them"
        );
        assert!(
            validate(&h, &[load(0x1000, 0x1000, 0x5001, 0x6000, PF_R)], 0x2000).is_ok(),
            "a read-only segment's last page is not zeroed"
        );
        assert_eq!(
            check_segments_in_file(&[load(0x1000, 0x1000, 0x1001, 0x1001, PF_R)], 0x2000),
            Err("segment beyond end of file")
        );
        assert_eq!(check_segments_in_file(&[load(0x1000, 0x1000, 0x1000, 0x1001, PF_R)], 0x2000), Ok(()));
        for (ph, reason) in cases {
            assert_eq!(validate(&h, &[ph], 0x2000).unwrap_err(), reason, "{ph:?}");
        }
        let none = validate(&h, &[], 0x2000).unwrap();
        assert_eq!(check_has_loads(&none).unwrap_err(), "no loadable segment");
    }

    /// Found by fuzz/elf_validate (minimized): a PT_LOAD below the first one lies outside the
    /// span the first one reserves. The kernel maps it all the same, and so does preload: the
    /// shell maps such segments MAP_FIXED_NOREPLACE and refuses only when they would land on
    /// memory the preloader holds (tests/limits.rs).
    #[test]
    fn accepts_pt_loads_out_of_address_order_as_the_kernel_does() {
        let mut file = header_bytes(ET_DYN, EM_X86_64, 2).to_vec();
        for ph in [load(0x1_0000_00e9, 0, 0, 0x34d8, 0), load(0, 0x4_0000_0001, 0, 0x478, 0)] {
            file.extend_from_slice(&ph.p_type.to_le_bytes());
            file.extend_from_slice(&ph.p_flags.to_le_bytes());
            for field in [ph.p_offset, ph.p_vaddr, ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_align] {
                file.extend_from_slice(&field.to_le_bytes());
            }
        }
        let h = header(&file).unwrap();
        let (offset, len) = phdr_table(&h).unwrap();
        let mut table = Aligned::<4096>::zeroed();
        table.0[..len].copy_from_slice(&file[offset as usize..][..len]);
        let phdrs = program_headers(&table.0[..len]);
        assert!(validate(&h, phdrs, file.len() as u64).is_ok(), "a position-independent image's segments in any order");
        let fixed = header(&header_bytes(ET_EXEC, EM_X86_64, 2)).unwrap();
        assert!(
            validate(&fixed, phdrs, file.len() as u64).is_ok(),
            "an ET_EXEC's segments go to their own addresses in any order"
        );
    }

    #[test]
    fn checks_pt_interp_bounds_and_nul() {
        let h = header(&header_bytes(ET_DYN, EM_X86_64, 2)).unwrap();
        let interp = |size| ProgramHeader { p_type: PT_INTERP, p_offset: 0x100, p_filesz: size, ..Default::default() };
        let seg = load(0, 0, 0x200, 0x200, PF_R);
        assert_eq!(check_interp(&interp(1), 0x2000).unwrap_err(), "bad PT_INTERP size");
        assert_eq!(check_interp(&interp(4097), 0x2000).unwrap_err(), "bad PT_INTERP size");
        assert_eq!(check_interp(&interp(0x101), 0x200).unwrap_err(), "PT_INTERP beyond end of file");
        assert_eq!(check_interp(&interp(0x100), 0x200), Ok(()));
        let phdrs = [interp(1), seg];
        assert_eq!(
            validate(&h, &phdrs, 0x2000).unwrap().interp().unwrap().p_filesz,
            1,
            "an interpreter's own PT_INTERP is not checked"
        );
        assert_eq!(interp_path(b"/lib/ld.so\0"), Ok(&b"/lib/ld.so"[..]));
        assert_eq!(interp_path(b"/a\0junk\0"), Ok(&b"/a"[..]));
        assert_eq!(interp_path(b"/lib/ld.so"), Err("PT_INTERP not NUL-terminated"));
    }

    #[test]
    fn last_gnu_stack_decides_executability() {
        let stack = |flags| ProgramHeader { p_type: PT_GNU_STACK, p_flags: flags, ..Default::default() };
        let img = |phdrs: &'static [ProgramHeader]| Image { relocatable: true, entry: 0, phoff: 64, phdrs };
        assert!(!img(&[]).executable_stack());
        let rwx: &'static [ProgramHeader] = Box::leak(Box::new([stack(PF_R | PF_W), stack(PF_R | PF_W | PF_X)]));
        assert!(img(rwx).executable_stack());
        let rw: &'static [ProgramHeader] = Box::leak(Box::new([stack(PF_R | PF_W | PF_X), stack(PF_R | PF_W)]));
        assert!(!img(rw).executable_stack());
    }

    #[test]
    fn program_headers_view_whole_entries_only() {
        let mut table = Aligned::<4096>::zeroed();
        table.0[0] = PT_LOAD as u8;
        assert_eq!(program_headers(&table.0[..56 * 2 + 5]).len(), 2);
        assert_eq!(program_headers(&table.0[..56])[0].p_type, PT_LOAD);
        assert_eq!(program_headers(&table.0).len(), 73);
        assert_eq!(program_headers(&table.0[1..]).len(), 0, "unaligned");
    }
}
