//! Finding a defined symbol through an image's PT_DYNAMIC and its GNU or SysV hash table, as
//! Wine's preloader finds `wine_main_preload_info`, in ELFCLASS64 and ELFCLASS32 images alike.
//! Every read goes through [`Memory`], which refuses addresses outside the image, so a malformed
//! table ends the search, never the process.

use goblin::elf64::dynamic::{DT_GNU_HASH, DT_HASH, DT_NULL, DT_STRTAB, DT_SYMTAB};

/// Read access to an image by unbiased virtual address.
pub trait Memory {
    /// Fill `buf` from `vaddr`; false if any byte is outside the readable image.
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool;

    /// Fill `buf` from `base + offset`; false if that overflows or leaves the image (a table
    /// address in a malformed image can be anything).
    fn read_at(&self, base: u64, offset: u64, buf: &mut [u8]) -> bool {
        base.checked_add(offset).is_some_and(|vaddr| self.read(vaddr, buf))
    }

    fn u32_at(&self, base: u64, offset: u64) -> Option<u32> {
        let mut bytes = [0; 4];
        self.read_at(base, offset, &mut bytes).then(|| u32::from_le_bytes(bytes))
    }

    fn u64_at(&self, base: u64, offset: u64) -> Option<u64> {
        let mut bytes = [0; 8];
        self.read_at(base, offset, &mut bytes).then(|| u64::from_le_bytes(bytes))
    }

    /// An address-sized word of `class` (a dynamic entry's tag or value, a symbol's value).
    fn word_at(&self, class: Class, base: u64, offset: u64) -> Option<u64> {
        match class {
            Class::Elf32 => self.u32_at(base, offset).map(u64::from),
            Class::Elf64 => self.u64_at(base, offset),
        }
    }
}

/// What differs between the two ELF classes' dynamic sections, symbols and GNU hash tables: the
/// size of an address (Elf32_Addr or Elf64_Addr) and the order of a symbol's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

impl Class {
    /// Bytes of an address: half a dynamic entry, a symbol's value, a GNU bloom filter word.
    pub const fn word(self) -> u64 {
        match self {
            Self::Elf32 => 4,
            Self::Elf64 => 8,
        }
    }

    const fn dyn_size(self) -> u64 {
        2 * self.word()
    }

    const fn sym_size(self) -> u64 {
        match self {
            Self::Elf32 => 16,
            Self::Elf64 => 24,
        }
    }

    /// Where st_value and st_info (followed by st_other and st_shndx) lie in a symbol:
    /// Elf32_Sym is name, value, size, info; Elf64_Sym is name, info, other, shndx, value.
    const fn value_and_info_at(self) -> (u64, u64) {
        match self {
            Self::Elf32 => (4, 12),
            Self::Elf64 => (8, 4),
        }
    }
}

const STT_OBJECT: u8 = 1;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
/// No hash chain in a sane image is longer than this (a chain holds the symbols of one bucket:
/// a few at most, and a table whose every symbol is in one bucket still has fewer); it bounds
/// work on malformed ones.
pub const MAX_CHAIN: u32 = 1 << 16;

struct Tables {
    class: Class,
    symtab: u64,
    strtab: u64,
    gnu_hash: Option<u64>,
    hash: Option<u64>,
}

fn tables(mem: &impl Memory, class: Class, dynamic: u64, dynamic_len: u64) -> Option<Tables> {
    let mut tables = Tables { class, symtab: 0, strtab: 0, gnu_hash: None, hash: None };
    let size = class.dyn_size();
    for index in 0..dynamic_len / size {
        let tag = mem.word_at(class, dynamic, size * index)?;
        let value = mem.word_at(class, dynamic, size * index + class.word())?;
        match tag {
            DT_NULL => break,
            DT_SYMTAB => tables.symtab = value,
            DT_STRTAB => tables.strtab = value,
            DT_GNU_HASH => tables.gnu_hash = Some(value),
            DT_HASH => tables.hash = Some(value),
            _ => {}
        }
    }
    (tables.symtab != 0 && tables.strtab != 0).then_some(tables)
}

/// The DT_GNU_HASH function (public for the fuzz target that builds tables).
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

/// The DT_HASH function of the System V ABI.
pub fn sysv_hash(name: &[u8]) -> u32 {
    name.iter().fold(0u32, |h, &c| {
        let h = (h << 4).wrapping_add(u32::from(c));
        let high = h & 0xf000_0000;
        (h ^ (high >> 24)) & !high
    })
}

/// The value of symbol `index` if it is a defined global or weak data object named `name`.
fn matching_value(mem: &impl Memory, tables: &Tables, index: u32, name: &[u8]) -> Option<u64> {
    let class = tables.class;
    let sym = tables.symtab.checked_add(u64::from(index) * class.sym_size())?;
    let (value_at, info_at) = class.value_and_info_at();
    let st_name = mem.u32_at(sym, 0)?;
    let mut info = [0u8; 4];
    if !mem.read_at(sym, info_at, &mut info) {
        return None;
    }
    let (st_info, st_shndx) = (info[0], u16::from_le_bytes([info[2], info[3]]));
    let binding = st_info >> 4;
    if st_shndx == 0 || st_info & 0xf != STT_OBJECT || (binding != STB_GLOBAL && binding != STB_WEAK) {
        return None;
    }
    let mut candidate = [0u8; 64];
    let wanted = name.len() + 1;
    if wanted > candidate.len() || !mem.read_at(tables.strtab, u64::from(st_name), &mut candidate[..wanted]) {
        return None;
    }
    (&candidate[..name.len()] == name && candidate[name.len()] == 0)
        .then(|| mem.word_at(class, sym, value_at))
        .flatten()
}

/// One past the highest symbol index the symbol table can have: it ends where the string table
/// starts when that follows it (as every linker lays them out), else [`MAX_CHAIN`] bounds it.
/// A DT_GNU_HASH chain cannot run past the last symbol.
fn symbol_count_bound(tables: &Tables) -> u32 {
    match tables.strtab.checked_sub(tables.symtab) {
        Some(size) if size > 0 => u32::try_from(size / tables.class.sym_size()).unwrap_or(u32::MAX),
        _ => u32::MAX,
    }
}

fn lookup_gnu(mem: &impl Memory, tables: &Tables, table: u64, name: &[u8]) -> Option<u64> {
    let nbuckets = mem.u32_at(table, 0)?;
    let symoffset = mem.u32_at(table, 4)?;
    let bloom_words = mem.u32_at(table, 8)?;
    if nbuckets == 0 {
        return None;
    }
    let hash = gnu_hash(name);
    let buckets = table.checked_add(16 + tables.class.word() * u64::from(bloom_words))?;
    let chains = buckets.checked_add(4 * u64::from(nbuckets))?;
    let mut index = mem.u32_at(buckets, 4 * u64::from(hash % nbuckets))?;
    let symbols = symbol_count_bound(tables);
    if index < symoffset {
        return None;
    }
    for _ in 0..MAX_CHAIN {
        if index >= symbols {
            return None;
        }
        let chain_hash = mem.u32_at(chains, 4 * u64::from(index - symoffset))?;
        if chain_hash | 1 == hash | 1
            && let Some(value) = matching_value(mem, tables, index, name)
        {
            return Some(value);
        }
        if chain_hash & 1 != 0 {
            return None;
        }
        index = index.checked_add(1)?;
    }
    None
}

fn lookup_sysv(mem: &impl Memory, tables: &Tables, table: u64, name: &[u8]) -> Option<u64> {
    let nbucket = mem.u32_at(table, 0)?;
    let nchain = mem.u32_at(table, 4)?;
    if nbucket == 0 {
        return None;
    }
    let chains = table.checked_add(8 + 4 * u64::from(nbucket))?;
    let mut index = mem.u32_at(table, 8 + 4 * u64::from(sysv_hash(name) % nbucket))?;
    for _ in 0..nchain.min(MAX_CHAIN) {
        if index == 0 {
            return None;
        }
        if let Some(value) = matching_value(mem, tables, index, name) {
            return Some(value);
        }
        index = mem.u32_at(chains, 4 * u64::from(index))?;
    }
    None
}

/// The unbiased address of the data object `name` defined by the image of `class` whose
/// PT_DYNAMIC is at `dynamic` (`dynamic_len` bytes).
pub fn find_object(mem: &impl Memory, class: Class, dynamic: u64, dynamic_len: u64, name: &[u8]) -> Option<u64> {
    let tables = tables(mem, class, dynamic, dynamic_len)?;
    match (tables.gnu_hash, tables.hash) {
        (Some(table), _) => lookup_gnu(mem, &tables, table, name),
        (None, Some(table)) => lookup_sysv(mem, &tables, table, name),
        (None, None) => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A flat image starting at vaddr 0 (origin.rs's tests read it too).
    pub(in crate::elf) struct Flat(pub(in crate::elf) Vec<u8>);

    impl Memory for Flat {
        fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
            let Some(src) =
                usize::try_from(vaddr).ok().and_then(|start| self.0.get(start..start.checked_add(buf.len())?))
            else {
                return false;
            };
            buf.copy_from_slice(src);
            true
        }
    }

    impl Flat {
        pub(in crate::elf) fn put(&mut self, at: usize, bytes: &[u8]) {
            if self.0.len() < at + bytes.len() {
                self.0.resize(at + bytes.len(), 0);
            }
            self.0[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn put_u32(&mut self, at: usize, v: u32) {
            self.put(at, &v.to_le_bytes());
        }
        fn put_u64(&mut self, at: usize, v: u64) {
            self.put(at, &v.to_le_bytes());
        }
    }

    const DYN: usize = 0;
    const STRTAB: usize = 0x100;
    const SYMTAB: usize = 0x200;
    const HASH: usize = 0x400;
    const NAMES: [&[u8]; 3] = [b"main", b"wine_main_preload_info", b"other_data"];

    /// Symbols 1..=3 named NAMES, all defined global objects with value 0x1000 * index, unless
    /// `info` overrides symbol 2's st_info, in the layout of `class`.
    fn image_of(class: Class, gnu: bool, info: u8) -> Flat {
        let mut img = Flat(Vec::new());
        let word = |value: u64| -> Vec<u8> {
            match class {
                Class::Elf32 => (value as u32).to_le_bytes().to_vec(),
                Class::Elf64 => value.to_le_bytes().to_vec(),
            }
        };
        let (value_at, info_at) = class.value_and_info_at();
        let mut offset = 1;
        for (i, name) in NAMES.iter().enumerate() {
            img.put(STRTAB + offset, name);
            let sym = SYMTAB + class.sym_size() as usize * (i + 1);
            img.put_u32(sym, offset as u32);
            img.put(sym + info_at as usize, &[if i == 1 { info } else { 0x11 }, 0, 1, 0]);
            img.put(sym + value_at as usize, &word(0x1000 * (i as u64 + 1)));
            offset += name.len() + 1;
        }
        let entries: [(u64, u64); 4] = [
            (DT_STRTAB, STRTAB as u64),
            (DT_SYMTAB, SYMTAB as u64),
            (if gnu { DT_GNU_HASH } else { DT_HASH }, HASH as u64),
            (DT_NULL, 0),
        ];
        let size = class.dyn_size() as usize;
        for (i, (tag, value)) in entries.iter().enumerate() {
            img.put(DYN + size * i, &word(*tag));
            img.put(DYN + size * i + size / 2, &word(*value));
        }
        if gnu {
            // One bucket holding symbols 1..=3 (symoffset 1), one bloom word.
            let buckets = HASH + 16 + class.word() as usize;
            img.put_u32(HASH, 1);
            img.put_u32(HASH + 4, 1);
            img.put_u32(HASH + 8, 1);
            img.put_u32(HASH + 12, 6);
            img.put(HASH + 16, &word(u64::MAX));
            img.put_u32(buckets, 1);
            for (i, name) in NAMES.iter().enumerate() {
                let end = u32::from(i == NAMES.len() - 1);
                img.put_u32(buckets + 4 + 4 * i, (gnu_hash(name) & !1) | end);
            }
        } else {
            // Two buckets; chains link every symbol of a bucket.
            img.put_u32(HASH, 2);
            img.put_u32(HASH + 4, 4);
            let mut heads = [0u32; 2];
            for (i, name) in NAMES.iter().enumerate() {
                let bucket = (sysv_hash(name) % 2) as usize;
                img.put_u32(HASH + 16 + 4 * (i + 1), heads[bucket]);
                heads[bucket] = i as u32 + 1;
            }
            img.put_u32(HASH + 8, heads[0]);
            img.put_u32(HASH + 12, heads[1]);
        }
        img
    }

    /// [`image_of`] an ELFCLASS64 image (the layout the offsets in the tests below are of).
    fn image(gnu: bool, info: u8) -> Flat {
        image_of(Class::Elf64, gnu, info)
    }

    const CLASSES: [Class; 2] = [Class::Elf32, Class::Elf64];

    #[test]
    fn finds_objects_through_either_hash_table() {
        for (class, gnu) in CLASSES.into_iter().flat_map(|class| [(class, true), (class, false)]) {
            let img = image_of(class, gnu, 0x11);
            let find = |name: &[u8]| find_object(&img, class, DYN as u64, 64, name);
            assert_eq!(find(b"wine_main_preload_info"), Some(0x2000), "{class:?} gnu={gnu}");
            assert_eq!(find(b"other_data"), Some(0x3000), "{class:?} gnu={gnu}");
            assert_eq!(find(b"absent"), None, "{class:?} gnu={gnu}");
            assert_eq!(find(b"wine_main_preload_inf"), None, "{class:?} gnu={gnu}");
        }
    }

    /// An image read as the other class yields nothing: the field offsets come from the class.
    #[test]
    fn the_class_decides_the_layout() {
        for gnu in [true, false] {
            let elf32 = image_of(Class::Elf32, gnu, 0x11);
            assert_eq!(find_object(&elf32, Class::Elf64, DYN as u64, 64, b"other_data"), None, "gnu={gnu}");
            let elf64 = image_of(Class::Elf64, gnu, 0x11);
            assert_eq!(find_object(&elf64, Class::Elf32, DYN as u64, 64, b"other_data"), None, "gnu={gnu}");
        }
    }

    #[test]
    fn only_defined_global_objects_count() {
        for (class, gnu) in CLASSES.into_iter().flat_map(|class| [(class, true), (class, false)]) {
            let find = |info| find_object(&image_of(class, gnu, info), class, 0, 64, b"wine_main_preload_info");
            assert_eq!(find(0x12), None, "a function, {class:?} gnu={gnu}");
            assert_eq!(find(0x01), None, "a local, {class:?} gnu={gnu}");
            assert_eq!(find(0x21), Some(0x2000), "a weak object, {class:?} gnu={gnu}");
            let mut undefined = image_of(class, gnu, 0x11);
            let shndx = SYMTAB + 2 * class.sym_size() as usize + class.value_and_info_at().1 as usize + 2;
            undefined.put(shndx, &[0, 0]);
            assert_eq!(find_object(&undefined, class, 0, 64, b"wine_main_preload_info"), None, "{class:?}");
        }
    }

    /// The image of [`image`] at 0, plus one unknown dynamic entry in the last 16 bytes of the
    /// address space, whose successor would wrap around to the image.
    struct WrapsAround(Flat);

    impl Memory for WrapsAround {
        fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
            match vaddr.checked_sub(u64::MAX - 15) {
                Some(at) => {
                    let top = [0x7fff_ffffu64.to_le_bytes(), [0; 8]].concat();
                    let Some(src) = top.get(at as usize..at as usize + buf.len()) else { return false };
                    buf.copy_from_slice(src);
                    true
                }
                None => self.0.read(vaddr, buf),
            }
        }
    }

    /// Found by fuzz/dynsym_lookup: a PT_DYNAMIC at the top of the address space overflowed
    /// the entry address (a panic in debug builds, a read of wrapped-around memory otherwise).
    #[test]
    fn addresses_past_the_top_end_the_search() {
        for gnu in [true, false] {
            let mem = WrapsAround(image(gnu, 0x11));
            assert_eq!(find_object(&mem, Class::Elf64, 0, 64, b"main"), Some(0x1000), "the image alone resolves");
            assert_eq!(find_object(&mem, Class::Elf64, u64::MAX - 15, 16 * 5, b"main"), None, "gnu={gnu}");
        }
    }

    /// Counts the reads of the memory it wraps.
    struct Counting<M>(M, core::cell::Cell<u64>);

    impl<M: Memory> Memory for Counting<M> {
        fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
            self.1.set(self.1.get() + 1);
            self.0.read(vaddr, buf)
        }
    }

    /// Issue 15, finding 8: a DT_GNU_HASH chain that never ends (no entry with the low bit set)
    /// in a 4 MiB image is followed no further than the symbol table or MAX_CHAIN allows.
    #[test]
    fn a_chain_that_never_ends_is_bounded_by_the_table() {
        for gnu_first in [false, true] {
            let mut img = image(true, 0x11);
            // Every chain entry from symbol 1 on: a hash that matches nothing, never an end.
            for i in 0..(4 << 20) / 4 - (HASH + 28) / 4 {
                img.put_u32(HASH + 28 + 4 * i, 0x5555_5554);
            }
            if gnu_first {
                // The symbol table then ends where the string table starts: 16 symbols.
                img.put_u64(DYN + 8, (SYMTAB + 16 * 24) as u64);
            }
            let mem = Counting(img, core::cell::Cell::new(0));
            assert_eq!(find_object(&mem, Class::Elf64, DYN as u64, 64, b"absent"), None);
            let reads = mem.1.get();
            let bound = if gnu_first { 64 } else { u64::from(MAX_CHAIN) + 64 };
            assert!(reads <= bound, "{reads} reads (at most {bound}), strtab after symtab: {gnu_first}");
        }
    }

    #[test]
    fn malformed_tables_end_the_search() {
        let mut img = image(true, 0x11);
        img.put_u32(HASH, 0);
        assert_eq!(find_object(&img, Class::Elf64, 0, 64, b"main"), None, "no buckets");
        let mut img = image(true, 0x11);
        img.put_u32(HASH + 24, 0xffff_fff0);
        assert_eq!(find_object(&img, Class::Elf64, 0, 64, b"main"), None, "bucket points outside");
        let mut img = image(false, 0x11);
        for i in 0..4 {
            img.put_u32(HASH + 16 + 4 * i, 1);
        }
        img.put_u32(HASH + 8, 1);
        img.put_u32(HASH + 12, 1);
        assert_eq!(find_object(&img, Class::Elf64, 0, 64, b"absent"), None, "a cyclic chain");
        assert_eq!(find_object(&Flat(vec![0; 8]), Class::Elf64, 0, 64, b"main"), None, "truncated dynamic section");
        assert_eq!(find_object(&image(true, 0x11), Class::Elf64, 0, 0, b"main"), None, "empty PT_DYNAMIC");
    }
}
