//! Symbol lookup through PT_DYNAMIC and a GNU or SysV hash table: `dynsym::find_object`, in
//! ELFCLASS64 and ELFCLASS32 layouts.
//!
//! Two inputs: arbitrary memory (a malformed table must end the search, never the process, and
//! a symbol is only found if its name really is in memory), and well-formed tables built from
//! arbitrary symbols, where every name must resolve exactly as a linear scan of the symbol
//! table says (defined global or weak data objects only). The built images lie at any page, have
//! a GNU table, a SysV table or both (in either order in the dynamic section: the GNU table is
//! used whenever there is one, as ld.so does), and symbols before the GNU table's `symoffset`
//! (unhashed, as a linker puts undefined imports there), which only a SysV lookup can find.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use preload::elf::symbols::{Class, Memory, find_object, gnu_hash, sysv_hash};

/// Memory starting at vaddr `base`.
struct Flat {
    base: u64,
    bytes: Vec<u8>,
}

impl Memory for Flat {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> bool {
        let Some(start) = vaddr.checked_sub(self.base).and_then(|s| usize::try_from(s).ok()) else { return false };
        match self.bytes.get(start..start.saturating_add(buf.len())) {
            Some(src) if src.len() == buf.len() => {
                buf.copy_from_slice(src);
                true
            }
            _ => false,
        }
    }
}

impl Flat {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        if self.bytes.len() < at + bytes.len() {
            self.bytes.resize(at + bytes.len(), 0);
        }
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

#[derive(Arbitrary, Debug)]
struct Symbol {
    name: Vec<u8>,
    info: u8,
    shndx: u16,
    value: u64,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        elf32: bool,
        base: u64,
        bytes: Vec<u8>,
        dynamic: u64,
        dynamic_len: u64,
        name: Vec<u8>,
    },
    Built {
        elf32: bool,
        style: HashStyle,
        base_page: u32,
        buckets: u8,
        unhashed: Vec<Symbol>,
        symbols: Vec<Symbol>,
        query: Vec<u8>,
    },
}

fn class(elf32: bool) -> Class {
    if elf32 { Class::Elf32 } else { Class::Elf64 }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum HashStyle {
    Gnu,
    Sysv,
    /// Both tables, DT_GNU_HASH first in the dynamic section.
    Both,
    /// Both tables, DT_HASH first.
    BothSysvFirst,
}

fuzz_target!(|input: Input| match input {
    Input::Raw { elf32, base, bytes, dynamic, dynamic_len, name } => {
        let mem = Flat { base, bytes };
        if find_object(&mem, class(elf32), dynamic, dynamic_len, &name).is_some() {
            let mut terminated = name.clone();
            terminated.push(0);
            assert!(
                mem.bytes.windows(terminated.len()).any(|w| w == terminated),
                "found {name:?}, which is not in memory"
            );
        }
    }
    Input::Built { elf32, style, base_page, buckets, unhashed, symbols, query } => {
        // An ELFCLASS32 image lies below 2 GiB, so that its addresses fit its words.
        let base = u64::from(base_page) << 12;
        let base = if elf32 { base % (1 << 31) } else { base };
        check_built(class(elf32), style, base, u32::from(buckets).max(1), unhashed, symbols, &query)
    }
});

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_GNU_HASH: u64 = 0x6fff_fef5;

/// A dynamic section of `class` at `base`, then the string table, the symbol table (null symbol first, then
/// `unhashed`, then `symbols`) and the hash tables, in a fresh image; `symbols` are sorted by
/// bucket as a GNU table requires.
fn check_built(
    class: Class,
    style: HashStyle,
    base: u64,
    nbuckets: u32,
    mut unhashed: Vec<Symbol>,
    mut symbols: Vec<Symbol>,
    query: &[u8],
) {
    // An address of the class: a dynamic entry's halves, a symbol's value, a bloom word. An
    // ELFCLASS32 symbol value is 32 bits.
    let word = |value: u64| -> Vec<u8> {
        match class {
            Class::Elf32 => (value as u32).to_le_bytes().to_vec(),
            Class::Elf64 => value.to_le_bytes().to_vec(),
        }
    };
    let (sym_size, word_size) = (if class == Class::Elf32 { 16 } else { 24 }, class.word() as usize);
    if class == Class::Elf32 {
        for sym in unhashed.iter_mut().chain(&mut symbols) {
            sym.value &= u64::from(u32::MAX);
        }
    }
    // Symbol names are C strings, and so is every name the preloader looks up.
    for sym in unhashed.iter_mut().chain(&mut symbols) {
        sym.name.retain(|&b| b != 0);
    }
    let query: Vec<u8> = query.iter().copied().filter(|&b| b != 0).collect();
    let (gnu, sysv) = match style {
        HashStyle::Gnu => (true, false),
        HashStyle::Sysv => (false, true),
        HashStyle::Both | HashStyle::BothSysvFirst => (true, true),
    };
    if gnu {
        symbols.sort_by_key(|sym| gnu_hash(&sym.name) % nbuckets);
    }
    // Symbol index 0 is the null symbol; the unhashed ones follow, then the hashed ones.
    let symoffset = unhashed.len() as u32 + 1;
    let all: Vec<&Symbol> = unhashed.iter().chain(&symbols).collect();
    let mut img = Flat { base, bytes: Vec::new() };
    // Room for the dynamic section's five entries at most.
    let strtab = 96;
    let mut names = vec![0u8];
    let name_offsets: Vec<u32> = all
        .iter()
        .map(|sym| {
            let offset = names.len() as u32;
            names.extend_from_slice(&sym.name);
            names.push(0);
            offset
        })
        .collect();
    img.put(strtab, &names);
    let symtab = (strtab + names.len() + 7) & !7;
    for (index, (sym, &name)) in all.iter().zip(&name_offsets).enumerate() {
        // Elf32_Sym: name, value, size, info, other, shndx; Elf64_Sym: name, info, other,
        // shndx, value, size.
        let at = symtab + sym_size * (index + 1);
        let (value_at, info_at) = if class == Class::Elf32 { (4, 12) } else { (8, 4) };
        img.put(at, &name.to_le_bytes());
        img.put(at + info_at, &[sym.info, 0]);
        img.put(at + info_at + 2, &sym.shndx.to_le_bytes());
        img.put(at + value_at, &word(sym.value));
    }
    let mut table = symtab + sym_size * (all.len() + 1);
    let mut dynamic = vec![(DT_STRTAB, base + strtab as u64), (DT_SYMTAB, base + symtab as u64)];
    if gnu {
        // nbuckets, symoffset, one bloom word that lets everything through, the buckets, then
        // one chain word per hashed symbol with the low bit marking the end of a bucket's run.
        let mut heads = vec![0u32; nbuckets as usize];
        img.put(
            table,
            &[nbuckets.to_le_bytes(), symoffset.to_le_bytes(), 1u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
        );
        img.put(table + 16, &word(u64::MAX));
        let buckets = table + 16 + word_size;
        let chains = buckets + 4 * nbuckets as usize;
        for (index, sym) in symbols.iter().enumerate() {
            let bucket = gnu_hash(&sym.name) % nbuckets;
            let last = symbols.get(index + 1).is_none_or(|next| gnu_hash(&next.name) % nbuckets != bucket);
            if heads[bucket as usize] == 0 {
                heads[bucket as usize] = symoffset + index as u32;
            }
            img.put(chains + 4 * index, &((gnu_hash(&sym.name) & !1) | u32::from(last)).to_le_bytes());
        }
        for (bucket, head) in heads.iter().enumerate() {
            img.put(buckets + 4 * bucket, &head.to_le_bytes());
        }
        dynamic.push((DT_GNU_HASH, base + table as u64));
        table = (chains + 4 * symbols.len() + 7) & !7;
    }
    if sysv {
        // nbucket, nchain, the buckets, then chain[index] linking each bucket's symbols: every
        // symbol, the unhashed ones included.
        let mut heads = vec![0u32; nbuckets as usize];
        let count = all.len() as u32;
        img.put(table, &[nbuckets.to_le_bytes(), (count + 1).to_le_bytes()].concat());
        let chains = table + 8 + 4 * nbuckets as usize;
        img.put(chains + 4 * count as usize, &[0; 4]);
        for (index, sym) in all.iter().enumerate() {
            let bucket = (sysv_hash(&sym.name) % nbuckets) as usize;
            img.put(chains + 4 * (index + 1), &heads[bucket].to_le_bytes());
            heads[bucket] = index as u32 + 1;
        }
        for (bucket, head) in heads.iter().enumerate() {
            img.put(table + 8 + 4 * bucket, &head.to_le_bytes());
        }
        let entry = (DT_HASH, base + table as u64);
        if style == HashStyle::BothSysvFirst { dynamic.insert(2, entry) } else { dynamic.push(entry) }
    }
    dynamic.push((DT_NULL, 0));
    assert!(dynamic.len() * 2 * word_size <= strtab, "the dynamic section fits below the string table");
    for (index, (tag, value)) in dynamic.iter().enumerate() {
        img.put(2 * word_size * index, &[word(*tag), word(*value)].concat());
    }

    // With a GNU table, only the symbols it hashes can be found.
    let findable: &[&Symbol] = if gnu { &all[unhashed.len()..] } else { &all };
    let defined_object =
        |sym: &Symbol| sym.shndx != 0 && sym.info & 0xf == 1 && matches!(sym.info >> 4, 1 | 2) && sym.name.len() < 64;
    for name in all.iter().map(|sym| sym.name.as_slice()).chain([query.as_slice()]) {
        let candidates: Vec<u64> =
            findable.iter().filter(|sym| sym.name == name && defined_object(sym)).map(|sym| sym.value).collect();
        let found = find_object(&img, class, base, strtab as u64, name);
        match found {
            Some(value) => {
                assert!(candidates.contains(&value), "{name:?} resolved to {value:#x}, not one of {candidates:x?}")
            }
            None => assert!(candidates.is_empty(), "{name:?} not found, though defined as {candidates:x?}"),
        }
    }
}
