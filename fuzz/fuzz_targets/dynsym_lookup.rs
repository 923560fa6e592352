//! Symbol lookup through PT_DYNAMIC and a GNU or SysV hash table: `dynsym::find_object`.
//!
//! Two inputs: arbitrary memory (a malformed table must end the search, never the process, and
//! a symbol is only found if its name really is in memory), and well-formed tables built from
//! arbitrary symbols, where every name must resolve exactly as a linear scan of the symbol
//! table says (defined global or weak data objects only).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use preload::elf::symbols::{Memory, find_object, gnu_hash, sysv_hash};

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
    Raw { base: u64, bytes: Vec<u8>, dynamic: u64, dynamic_len: u64, name: Vec<u8> },
    Built { gnu: bool, buckets: u8, symbols: Vec<Symbol>, query: Vec<u8> },
}

fuzz_target!(|input: Input| match input {
    Input::Raw { base, bytes, dynamic, dynamic_len, name } => {
        let mem = Flat { base, bytes };
        if find_object(&mem, dynamic, dynamic_len, &name).is_some() {
            let mut terminated = name.clone();
            terminated.push(0);
            assert!(
                mem.bytes.windows(terminated.len()).any(|w| w == terminated),
                "found {name:?}, which is not in memory"
            );
        }
    }
    Input::Built { gnu, buckets, symbols, query } => check_built(gnu, u32::from(buckets).max(1), symbols, &query),
});

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_GNU_HASH: u64 = 0x6fff_fef5;

/// A dynamic section at 0, then the string table, the symbol table (null symbol first) and the
/// hash table, in a fresh image; symbols are sorted by bucket as a GNU table requires.
fn check_built(gnu: bool, nbuckets: u32, mut symbols: Vec<Symbol>, query: &[u8]) {
    // Symbol names are C strings, and so is every name the preloader looks up.
    for sym in &mut symbols {
        sym.name.retain(|&b| b != 0);
    }
    let query: Vec<u8> = query.iter().copied().filter(|&b| b != 0).collect();
    let hash = |name: &[u8]| if gnu { gnu_hash(name) } else { sysv_hash(name) };
    if gnu {
        symbols.sort_by_key(|sym| hash(&sym.name) % nbuckets);
    }
    let mut img = Flat { base: 0, bytes: Vec::new() };
    let strtab = 64;
    let mut names = vec![0u8];
    let name_offsets: Vec<u32> = symbols
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
    for (index, (sym, &name)) in symbols.iter().zip(&name_offsets).enumerate() {
        let at = symtab + 24 * (index + 1);
        img.put(at, &name.to_le_bytes());
        img.put(at + 4, &[sym.info, 0]);
        img.put(at + 6, &sym.shndx.to_le_bytes());
        img.put(at + 8, &sym.value.to_le_bytes());
    }
    let table = symtab + 24 * (symbols.len() + 1);
    let count = symbols.len() as u32;
    let mut heads = vec![0u32; nbuckets as usize];
    if gnu {
        // nbuckets, symoffset 1, one bloom word that lets everything through, the buckets, then
        // one chain word per symbol with the low bit marking the end of a bucket's run.
        img.put(table, &[nbuckets.to_le_bytes(), 1u32.to_le_bytes(), 1u32.to_le_bytes(), 0u32.to_le_bytes()].concat());
        img.put(table + 16, &u64::MAX.to_le_bytes());
        let chains = table + 24 + 4 * nbuckets as usize;
        for (index, sym) in symbols.iter().enumerate() {
            let bucket = hash(&sym.name) % nbuckets;
            let last = symbols.get(index + 1).is_none_or(|next| hash(&next.name) % nbuckets != bucket);
            if heads[bucket as usize] == 0 {
                heads[bucket as usize] = index as u32 + 1;
            }
            img.put(chains + 4 * index, &((hash(&sym.name) & !1) | u32::from(last)).to_le_bytes());
        }
        for (bucket, head) in heads.iter().enumerate() {
            img.put(table + 24 + 4 * bucket, &head.to_le_bytes());
        }
    } else {
        // nbucket, nchain, the buckets, then chain[index] linking each bucket's symbols.
        img.put(table, &[nbuckets.to_le_bytes(), (count + 1).to_le_bytes()].concat());
        let chains = table + 8 + 4 * nbuckets as usize;
        img.put(chains + 4 * count as usize, &[0; 4]);
        for (index, sym) in symbols.iter().enumerate() {
            let bucket = (hash(&sym.name) % nbuckets) as usize;
            img.put(chains + 4 * (index + 1), &heads[bucket].to_le_bytes());
            heads[bucket] = index as u32 + 1;
        }
        for (bucket, head) in heads.iter().enumerate() {
            img.put(table + 8 + 4 * bucket, &head.to_le_bytes());
        }
    }
    let dynamic = [
        (DT_STRTAB, strtab as u64),
        (DT_SYMTAB, symtab as u64),
        (if gnu { DT_GNU_HASH } else { DT_HASH }, table as u64),
        (DT_NULL, 0),
    ];
    for (index, (tag, value)) in dynamic.iter().enumerate() {
        img.put(16 * index, &[tag.to_le_bytes(), value.to_le_bytes()].concat());
    }

    let defined_object =
        |sym: &Symbol| sym.shndx != 0 && sym.info & 0xf == 1 && matches!(sym.info >> 4, 1 | 2) && sym.name.len() < 64;
    for name in symbols.iter().map(|sym| sym.name.as_slice()).chain([query.as_slice()]) {
        let candidates: Vec<u64> =
            symbols.iter().filter(|sym| sym.name == name && defined_object(sym)).map(|sym| sym.value).collect();
        let found = find_object(&img, 0, 64, name);
        match found {
            Some(value) => {
                assert!(candidates.contains(&value), "{name:?} resolved to {value:#x}, not one of {candidates:x?}")
            }
            None => assert!(candidates.is_empty(), "{name:?} not found, though defined as {candidates:x?}"),
        }
    }
}
