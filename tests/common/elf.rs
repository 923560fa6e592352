//! Editing ELF files for tests: header and program header fields (at the offsets of the file's
//! class, ELFCLASS64 or ELFCLASS32), a moved and extended program header table, and a hand-made
//! i386 program.

pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;
pub const PT_PHDR: u32 = 6;
pub const PT_TLS: u32 = 7;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
pub const PT_GNU_PROPERTY: u32 = 0x6474_e553;
pub const PHDR_SIZE: usize = 56;
pub const PHDR32_SIZE: usize = 32;
pub const PAGE: u64 = 4096;

/// A field of the ELF header, or of a program header (from the entry's start): its offset and
/// size in an ELFCLASS64 and in an ELFCLASS32 file.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub elf64: (usize, usize),
    pub elf32: (usize, usize),
}

const fn field(elf64: (usize, usize), elf32: (usize, usize)) -> Field {
    Field { elf64, elf32 }
}

pub const E_TYPE: Field = field((16, 2), (16, 2));
pub const E_MACHINE: Field = field((18, 2), (18, 2));
pub const E_ENTRY: Field = field((24, 8), (24, 4));
pub const E_PHOFF: Field = field((32, 8), (28, 4));
pub const E_PHENTSIZE: Field = field((54, 2), (42, 2));
pub const E_PHNUM: Field = field((56, 2), (44, 2));
pub const P_TYPE: Field = field((0, 4), (0, 4));
pub const P_FLAGS: Field = field((4, 4), (24, 4));
pub const P_OFFSET: Field = field((8, 8), (4, 4));
pub const P_VADDR: Field = field((16, 8), (8, 4));
pub const P_FILESZ: Field = field((32, 8), (16, 4));
pub const P_MEMSZ: Field = field((40, 8), (20, 4));
pub const P_ALIGN: Field = field((48, 8), (28, 4));

/// One program header.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl Phdr {
    pub fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
        Phdr {
            p_type: PT_LOAD,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: PAGE,
        }
    }

    /// The entry as an Elf64_Phdr, or an Elf32_Phdr (values cut to 32 bits).
    pub fn bytes(&self, elf32: bool) -> Vec<u8> {
        let mut e = Vec::with_capacity(PHDR_SIZE);
        e.extend_from_slice(&self.p_type.to_le_bytes());
        if elf32 {
            for v in [self.p_offset, self.p_vaddr, self.p_vaddr, self.p_filesz, self.p_memsz] {
                e.extend_from_slice(&(v as u32).to_le_bytes());
            }
            e.extend_from_slice(&self.p_flags.to_le_bytes());
            e.extend_from_slice(&(self.p_align as u32).to_le_bytes());
        } else {
            e.extend_from_slice(&self.p_flags.to_le_bytes());
            for v in [self.p_offset, self.p_vaddr, self.p_vaddr, self.p_filesz, self.p_memsz, self.p_align] {
                e.extend_from_slice(&v.to_le_bytes());
            }
        }
        e
    }
}

/// An ELF file's bytes; reads and writes outside the file are ignored (read as 0).
pub struct Elf {
    pub bytes: Vec<u8>,
}

impl Elf {
    pub fn read(path: &std::path::Path) -> Elf {
        Elf { bytes: std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())) }
    }

    pub fn get(&self, at: usize, len: usize) -> u64 {
        let mut v = [0u8; 8];
        if let Some(src) = self.bytes.get(at..at.saturating_add(len)) {
            v[..len].copy_from_slice(src);
        }
        u64::from_le_bytes(v)
    }

    pub fn set(&mut self, at: usize, len: usize, value: u64) {
        if let Some(dst) = self.bytes.get_mut(at..at.saturating_add(len)) {
            dst.copy_from_slice(&value.to_le_bytes()[..len]);
        }
    }

    /// Whether e_ident says ELFCLASS32 (read at every access: a mutation may change it).
    pub fn is_elf32(&self) -> bool {
        self.bytes.get(4) == Some(&1)
    }

    /// Where `field` lies, from `base` (0 for the ELF header, a program header's offset), and its
    /// size, in this file's class.
    pub fn locate(&self, base: usize, field: Field) -> (usize, usize) {
        let (offset, len) = if self.is_elf32() { field.elf32 } else { field.elf64 };
        (base.saturating_add(offset), len)
    }

    pub fn field(&self, base: usize, field: Field) -> u64 {
        let (at, len) = self.locate(base, field);
        self.get(at, len)
    }

    pub fn set_field(&mut self, base: usize, field: Field, value: u64) {
        let (at, len) = self.locate(base, field);
        self.set(at, len, value);
    }

    /// The size of a program header in this file's class.
    pub fn phdr_size(&self) -> usize {
        if self.is_elf32() { PHDR32_SIZE } else { PHDR_SIZE }
    }

    pub fn phoff(&self) -> usize {
        self.field(0, E_PHOFF).min(usize::MAX as u64 >> 1) as usize
    }

    pub fn phnum(&self) -> usize {
        self.field(0, E_PHNUM) as usize
    }

    /// File offset of program header `index`.
    pub fn ph(&self, index: usize) -> usize {
        self.phoff().saturating_add(index * self.phdr_size())
    }

    /// File offset of the first program header of `p_type`.
    pub fn find(&self, p_type: u32) -> Option<usize> {
        (0..self.phnum()).map(|i| self.ph(i)).find(|&at| self.get(at, 4) == u64::from(p_type))
    }

    /// Appends `bytes` at the next `align` boundary; returns their offset.
    pub fn append(&mut self, bytes: &[u8], align: usize) -> usize {
        let at = self.bytes.len().next_multiple_of(align);
        self.bytes.resize(at, 0);
        self.bytes.extend_from_slice(bytes);
        at
    }

    /// The end of the highest PT_LOAD in memory, page-aligned.
    pub fn end_of_image(&self) -> u64 {
        (0..self.phnum())
            .map(|i| self.ph(i))
            .filter(|&at| self.get(at, 4) == u64::from(PT_LOAD))
            .map(|at| self.field(at, P_VADDR).saturating_add(self.field(at, P_MEMSZ)))
            .max()
            .unwrap_or(0)
            .next_multiple_of(PAGE)
    }

    /// Moves the program header table to a new page at the end of the file, followed by a
    /// read-only PT_LOAD that maps it 16 pages above the image (so AT_PHDR stays valid; PT_PHDR
    /// follows it) and by `extra`, then PT_NULL entries up to `count` entries in all (the table
    /// is cut at `count`). Returns the address the table is mapped at.
    pub fn move_table(&mut self, extra: &[Phdr], count: usize) -> u64 {
        let (old_off, old_num, size, elf32) = (self.phoff(), self.phnum(), self.phdr_size(), self.is_elf32());
        let mut table =
            self.bytes.get(old_off..old_off.saturating_add(old_num * size)).map(<[u8]>::to_vec).unwrap_or_default();
        let vaddr = self.end_of_image() + 16 * PAGE;
        let table_len = (count * size) as u64;
        let offset = self.append(&vec![0; count * size], PAGE as usize) as u64;
        for entry in table.chunks_exact_mut(size).take(count) {
            if u32::from_le_bytes(entry[..4].try_into().unwrap()) == PT_PHDR {
                let moved = Phdr {
                    p_type: PT_PHDR,
                    p_flags: 4,
                    p_offset: offset,
                    p_vaddr: vaddr,
                    p_filesz: table_len,
                    p_memsz: table_len,
                    p_align: 8,
                };
                entry.copy_from_slice(&moved.bytes(elf32));
            }
        }
        table.extend(Phdr::load(4, offset, vaddr, table_len, table_len).bytes(elf32));
        for phdr in extra {
            table.extend(phdr.bytes(elf32));
        }
        table.resize(count * size, 0);
        self.bytes[offset as usize..].copy_from_slice(&table);
        self.set_field(0, E_PHOFF, offset);
        self.set_field(0, E_PHNUM, count as u64);
        vaddr
    }
}

/// A hand-made i386 ELF that exits 42 (`mov ebx,42; mov eax,1; int 0x80`): the kernel runs it
/// through IA32 emulation.
pub fn i386_exit_42() -> Vec<u8> {
    let code = [0xbb, 42, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0xcd, 0x80];
    let base = 0x0804_8000u32;
    let size = (52 + 32 + code.len()) as u32;
    let mut b = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for half in [2u16, 3] {
        b.extend_from_slice(&half.to_le_bytes());
    }
    for word in [1, base + 84, 52, 0, 0] {
        b.extend_from_slice(&word.to_le_bytes());
    }
    for half in [52u16, 32, 1, 0, 0, 0] {
        b.extend_from_slice(&half.to_le_bytes());
    }
    for word in [1, 0, base, base, size, size, 5, 0x1000] {
        b.extend_from_slice(&word.to_le_bytes());
    }
    b.extend_from_slice(&code);
    b
}

/// The errno with which the kernel refuses to execve `path` (no arguments, empty environment), or
/// None if it runs it. std's own spawning would use execvp, whose ENOEXEC fallback to /bin/sh
/// hides the kernel's verdict.
pub fn execve_errno(path: &std::path::Path) -> Option<i32> {
    let mut cmd = std::process::Command::new(path);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // SAFETY: no setup, so nothing but execve runs in the child.
    unsafe { super::execve_in_child(&mut cmd, &[path.as_os_str()], || {}) };
    match super::spawn(&mut cmd) {
        Ok(mut child) => {
            let _ = child.wait();
            None
        }
        Err(e) => e.raw_os_error(),
    }
}
