//! i386 programs, validated as the kernel's IA32 emulation does (`fs/compat_binfmt_elf.c`, which
//! is `fs/binfmt_elf.c` compiled with `Elf32_Ehdr`, `Elf32_Phdr`, `compat_elf_check_arch` and the
//! compat TASK_SIZE).
//!
//! Like the kernel, the loader is chosen by `e_machine` alone (EM_386 or EM_486); EI_CLASS is
//! never looked at. The 32-bit header and program headers are read field by field and widened
//! to the 64-bit structures, so that the load plan ([`crate::plan::load`]) works on both alike.

use goblin::elf64::header::{ELFMAG, Header};
use goblin::elf64::program_header::ProgramHeader;

use super::{EM_386, EM_486, Image, MAX_PHDR_TABLE};

/// sizeof(Elf32_Ehdr).
pub const SIZEOF_EHDR: usize = 52;
/// sizeof(Elf32_Phdr): the only e_phentsize the compat loader accepts, and AT_PHENT.
pub const SIZEOF_PHDR: usize = 32;
/// At most 2048 program headers fit in the 64 KiB the kernel reads.
pub const MAX_PHDRS: usize = MAX_PHDR_TABLE / SIZEOF_PHDR;
/// The compat TASK_SIZE during the exec: IA32_PAGE_OFFSET (without the ADDR_LIMIT_3GB
/// personality), set by `set_personality_ia32` before the segments are checked and mapped.
pub const TASK_SIZE: u64 = 0xffff_e000;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Whether the kernel hands this file to its IA32 loader: the ELF magic and an i386 machine
/// (the 64-bit loader refuses every other machine first).
pub fn is_ia32(head: &[u8]) -> bool {
    head.len() >= 20 && &head[..4] == ELFMAG && matches!(u16_at(head, 18), EM_386 | EM_486)
}

/// The 32-bit ELF header from the first bytes of a file, widened.
pub fn header(bytes: &[u8]) -> Result<Header, &'static str> {
    if bytes.len() < SIZEOF_EHDR || &bytes[..4] != ELFMAG {
        return Err("not an ELF file");
    }
    let mut e_ident = [0; 16];
    e_ident.copy_from_slice(&bytes[..16]);
    Ok(Header {
        e_ident,
        e_type: u16_at(bytes, 16),
        e_machine: u16_at(bytes, 18),
        e_version: u32_at(bytes, 20),
        e_entry: u32_at(bytes, 24).into(),
        e_phoff: u32_at(bytes, 28).into(),
        e_shoff: u32_at(bytes, 32).into(),
        e_flags: u32_at(bytes, 36),
        e_ehsize: u16_at(bytes, 40),
        e_phentsize: u16_at(bytes, 42),
        e_phnum: u16_at(bytes, 44),
        e_shentsize: u16_at(bytes, 46),
        e_shnum: u16_at(bytes, 48),
        e_shstrndx: u16_at(bytes, 50),
    })
}

/// Where the 32-bit program header table lies in the file: (offset, length), after the compat
/// loader's checks of the header (the same checks as the 64-bit one, with 32-byte entries).
pub fn phdr_table(header: &Header) -> Result<(u64, usize), &'static str> {
    super::check_type(header)?;
    if !matches!(header.e_machine, EM_386 | EM_486) {
        return Err("wrong machine: not an i386 program");
    }
    super::table_of(header, SIZEOF_PHDR)
}

/// The 32-bit program headers in `table` (whole entries only, any alignment), widened into
/// `out`; as many as both hold.
pub fn widen<'o>(table: &[u8], out: &'o mut [ProgramHeader]) -> &'o [ProgramHeader] {
    let count = (table.len() / SIZEOF_PHDR).min(out.len());
    for (slot, entry) in out.iter_mut().zip(table.chunks_exact(SIZEOF_PHDR)) {
        let word = |at| u64::from(u32_at(entry, at));
        *slot = ProgramHeader {
            p_type: u32_at(entry, 0),
            p_offset: word(4),
            p_vaddr: word(8),
            p_paddr: word(12),
            p_filesz: word(16),
            p_memsz: word(20),
            p_flags: u32_at(entry, 24),
            p_align: word(28),
        };
    }
    &out[..count]
}

/// Check widened program headers as the compat loader does: the per-segment rules of
/// [`super::validate`] against the compat TASK_SIZE.
pub fn validate<'a>(header: &Header, phdrs: &'a [ProgramHeader], file_size: u64) -> Result<Image<'a>, &'static str> {
    super::validate_below(TASK_SIZE, header, phdrs, file_size)
}

/// `elf_read_implies_exec` for an i386 program: without a PT_GNU_STACK (EXSTACK_DEFAULT) the
/// kernel adds READ_IMPLIES_EXEC to the personality, and the stack is executable.
pub fn read_implies_exec(image: &Image) -> bool {
    !image.phdrs.iter().any(|ph| ph.p_type == goblin::elf64::program_header::PT_GNU_STACK)
}

/// Whether the stack is executable: the last PT_GNU_STACK decides, and without one it is (the
/// i386 default, through READ_IMPLIES_EXEC).
pub fn executable_stack(image: &Image) -> bool {
    read_implies_exec(image) || image.executable_stack()
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::header::EM_X86_64;
    use goblin::elf::header::{ET_DYN, ET_EXEC};
    use goblin::elf64::program_header::{PF_R, PF_W, PF_X, PT_GNU_STACK, PT_INTERP, PT_LOAD};

    pub fn header_bytes(e_type: u16, machine: u16, phnum: u16) -> [u8; 52] {
        let mut h = [0u8; 52];
        h[..4].copy_from_slice(ELFMAG);
        h[4] = 1;
        h[5] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[24..28].copy_from_slice(&0x8049000u32.to_le_bytes());
        h[28..32].copy_from_slice(&52u32.to_le_bytes());
        h[42..44].copy_from_slice(&32u16.to_le_bytes());
        h[44..46].copy_from_slice(&phnum.to_le_bytes());
        h
    }

    fn phdr_bytes(values: [u32; 8]) -> [u8; 32] {
        let mut out = [0; 32];
        for (chunk, value) in out.chunks_exact_mut(4).zip(values) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// A load: type, offset, vaddr, paddr, filesz, memsz, flags, align.
    fn load(vaddr: u32, offset: u32, filesz: u32, memsz: u32, flags: u32) -> [u32; 8] {
        [PT_LOAD, offset, vaddr, vaddr, filesz, memsz, flags, 0x1000]
    }

    #[test]
    fn the_kernel_picks_the_ia32_loader_by_machine_alone() {
        assert!(is_ia32(&header_bytes(ET_EXEC, EM_386, 1)));
        assert!(is_ia32(&header_bytes(ET_EXEC, EM_486, 1)));
        let mut class64 = header_bytes(ET_EXEC, EM_386, 1);
        class64[4] = 2;
        assert!(is_ia32(&class64), "EI_CLASS is not checked");
        assert!(!is_ia32(&header_bytes(ET_EXEC, EM_X86_64, 1)));
        assert!(!is_ia32(b"#!/bin/sh\n\0\0\0\0\0\0\0\0\0\0\0\0"));
        assert!(!is_ia32(&header_bytes(ET_EXEC, EM_386, 1)[..19]));
    }

    #[test]
    fn reads_and_widens_the_32_bit_header() {
        let h = header(&header_bytes(ET_DYN, EM_386, 3)).unwrap();
        assert_eq!((h.e_type, h.e_machine, h.e_entry, h.e_phoff), (ET_DYN, EM_386, 0x8049000, 52));
        assert_eq!((h.e_phentsize, h.e_phnum), (32, 3));
        assert_eq!(phdr_table(&h), Ok((52, 96)));
        assert_eq!(header(&header_bytes(ET_DYN, EM_386, 3)[..51]).unwrap_err(), "not an ELF file");
    }

    #[test]
    fn refuses_what_the_compat_loader_refuses_in_the_header() {
        let rel = header(&header_bytes(1, EM_386, 1)).unwrap();
        assert!(phdr_table(&rel).unwrap_err().contains("neither EXEC nor DYN"));
        let x86_64 = header(&header_bytes(ET_EXEC, EM_X86_64, 1)).unwrap();
        assert_eq!(phdr_table(&x86_64).unwrap_err(), "wrong machine: not an i386 program");
        let none = header(&header_bytes(ET_EXEC, EM_386, 0)).unwrap();
        assert_eq!(phdr_table(&none).unwrap_err(), "bad number of program headers");
        let max = header(&header_bytes(ET_EXEC, EM_486, 2048)).unwrap();
        assert_eq!(phdr_table(&max), Ok((52, 65536)));
        let too_many = header(&header_bytes(ET_EXEC, EM_386, 2049)).unwrap();
        assert_eq!(phdr_table(&too_many).unwrap_err(), "bad number of program headers");
        let mut bytes = header_bytes(ET_EXEC, EM_386, 1);
        bytes[42] = 56;
        assert_eq!(phdr_table(&header(&bytes).unwrap()).unwrap_err(), "bad program header entry size");
    }

    #[test]
    fn widens_every_field_of_whole_entries() {
        let mut table = phdr_bytes([PT_INTERP, 0x154, 0x8048154, 0x8048155, 0x13, 0x14, PF_R, 1]).to_vec();
        table.extend_from_slice(&phdr_bytes([PT_LOAD, 0, 0xffff_f000, 0, 0x1000, 0x2000, PF_R | PF_X, 0x1000]));
        table.extend_from_slice(&[0; 31]);
        let mut out = [ProgramHeader::default(); 4];
        let phdrs = widen(&table, &mut out);
        assert_eq!(phdrs.len(), 2, "a partial entry is no entry");
        assert_eq!(
            phdrs[0],
            ProgramHeader {
                p_type: PT_INTERP,
                p_flags: PF_R,
                p_offset: 0x154,
                p_vaddr: 0x8048154,
                p_paddr: 0x8048155,
                p_filesz: 0x13,
                p_memsz: 0x14,
                p_align: 1,
            }
        );
        assert_eq!((phdrs[1].p_vaddr, phdrs[1].p_memsz, phdrs[1].p_flags), (0xffff_f000, 0x2000, PF_R | PF_X));
        let mut small = [ProgramHeader::default(); 1];
        assert_eq!(widen(&table, &mut small).len(), 1, "no more than the output holds");
        // Unaligned input is fine: the fields are read byte by byte.
        let shifted = [&[0u8][..], &table].concat();
        assert_eq!(widen(&shifted[1..], &mut out)[1].p_vaddr, 0xffff_f000);
    }

    fn validated(loads: &[[u32; 8]], file_size: u64) -> Result<usize, &'static str> {
        let table: Vec<u8> = loads.iter().flat_map(|&l| phdr_bytes(l)).collect();
        let mut out = vec![ProgramHeader::default(); loads.len()];
        let phdrs = widen(&table, &mut out);
        let h = header(&header_bytes(ET_EXEC, EM_386, loads.len() as u16)).unwrap();
        validate(&h, phdrs, file_size).map(|image| image.loads().count())
    }

    #[test]
    fn checks_segments_against_the_compat_task_size() {
        assert_eq!(validated(&[load(0x8048000, 0, 0x100, 0x2000, PF_R | PF_W)], 0x2000), Ok(1));
        // The last page below IA32_PAGE_OFFSET is the last a segment may use.
        assert_eq!(validated(&[load(0xffff_d000, 0, 0x100, 0x1000, PF_R)], 0x2000), Ok(1));
        let outside = Err("segment outside the user address space");
        assert_eq!(validated(&[load(0xffff_d000, 0, 0x100, 0x1001, PF_R)], 0x2000), outside);
        assert_eq!(validated(&[load(0xffff_e000, 0, 0, 0x10, PF_R)], 0x2000), outside);
        assert_eq!(validated(&[load(0xffff_f000, 0, 0, 0x10, PF_R)], 0x2000), outside);
        assert_eq!(
            validated(&[load(0x1000, 0x1000, 0x200, 0x100, PF_R)], 0x2000),
            Err("segment file size exceeds its memory size")
        );
        assert_eq!(
            validated(&[load(0x1010, 0x1000, 0x10, 0x10, PF_R)], 0x2000),
            Err("segment offset and address differ modulo the page size")
        );
        assert_eq!(
            validated(&[load(0x1000, 0x2000, 0x10, 0x20, PF_R | PF_W)], 0x2000),
            Err("a writable segment's bss starts past the end of the file")
        );
    }

    #[test]
    fn the_stack_is_executable_without_pt_gnu_stack() {
        let stack = |flags| ProgramHeader { p_type: PT_GNU_STACK, p_flags: flags, ..Default::default() };
        let image = |phdrs| Image { relocatable: false, entry: 0, phoff: 52, phdrs };
        assert!(read_implies_exec(&image(&[])) && executable_stack(&image(&[])));
        let rw = [stack(PF_R | PF_W)];
        assert!(!read_implies_exec(&image(&rw)) && !executable_stack(&image(&rw)));
        let rwx = [stack(PF_R | PF_W | PF_X)];
        assert!(!read_implies_exec(&image(&rwx)) && executable_stack(&image(&rwx)));
    }
}
