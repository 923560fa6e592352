//! `$ORIGIN` in a program's run paths: glibc's ld.so expands it from `/proc/self/exe`, so a
//! program that finds its libraries through it needs exe set (`--verbose` says so when it could
//! not be). Every read goes through [`Memory`], so a malformed dynamic section ends the search,
//! never the process.

use goblin::elf64::dynamic::{DT_NULL, DT_RPATH, DT_RUNPATH, DT_STRTAB};

use super::symbols::{Class, Memory};

/// Run paths longer than this are not searched further (PATH_MAX).
const MAX_PATH_LEN: u64 = 4096;

/// Which dynamic entry names a run path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPath {
    /// DT_RPATH.
    Rpath,
    /// DT_RUNPATH.
    Runpath,
}

impl RunPath {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rpath => "RPATH",
            Self::Runpath => "RUNPATH",
        }
    }
}

/// The first of DT_RPATH and DT_RUNPATH (in the order of the dynamic section) whose string
/// holds `$ORIGIN` or `${ORIGIN}`, read through the PT_DYNAMIC at `dynamic` (`len` bytes) of
/// an image of `class`.
pub fn uses_origin(mem: &impl Memory, class: Class, dynamic: u64, len: u64) -> Option<RunPath> {
    let mut strtab = None;
    let mut paths: [Option<(RunPath, u64)>; 4] = [None; 4];
    let mut count = 0;
    let entry = 2 * class.word();
    for index in 0..len / entry {
        let tag = mem.word_at(class, dynamic, entry * index)?;
        let value = mem.word_at(class, dynamic, entry * index + class.word())?;
        let kind = match tag {
            DT_NULL => break,
            DT_STRTAB => {
                strtab = Some(value);
                continue;
            }
            DT_RPATH => RunPath::Rpath,
            DT_RUNPATH => RunPath::Runpath,
            _ => continue,
        };
        if count < paths.len() {
            paths[count] = Some((kind, value));
            count += 1;
        }
    }
    let strtab = strtab?;
    paths.iter().flatten().find(|(_, offset)| string_has_origin(mem, strtab, *offset)).map(|&(kind, _)| kind)
}

/// Whether the NUL-terminated string at `strtab + offset` holds `$ORIGIN` or `${ORIGIN}`
/// (ld.so's spellings); a string that cannot be read to its NUL counts as what was read.
fn string_has_origin(mem: &impl Memory, strtab: u64, offset: u64) -> bool {
    let Some(start) = strtab.checked_add(offset) else { return false };
    // The bytes of the two spellings seen so far, as a small matcher over a sliding window.
    let mut window = [0u8; 9];
    for at in 0..MAX_PATH_LEN {
        let mut byte = [0u8];
        if !mem.read_at(start, at, &mut byte) || byte[0] == 0 {
            return false;
        }
        window.copy_within(1.., 0);
        window[8] = byte[0];
        if window.ends_with(b"$ORIGIN") || window.ends_with(b"${ORIGIN}") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::symbols::tests::Flat;

    const DYN: usize = 0x100;
    const STRTAB: usize = 0x400;

    /// A dynamic section of `class` with `entries` (DT_NULL appended) and a string table of
    /// `strings` at their offsets.
    fn image_of(class: Class, entries: &[(u64, u64)], strings: &[(usize, &[u8])]) -> Flat {
        let mut img = Flat(vec![0u8; 0x800]);
        let word = class.word() as usize;
        for (i, (tag, value)) in entries.iter().chain(&[(DT_NULL, 0)]).enumerate() {
            img.put(DYN + 2 * word * i, &tag.to_le_bytes()[..word]);
            img.put(DYN + 2 * word * i + word, &value.to_le_bytes()[..word]);
        }
        for (offset, text) in strings {
            img.put(STRTAB + offset, text);
        }
        img
    }

    fn image(entries: &[(u64, u64)], strings: &[(usize, &[u8])]) -> Flat {
        image_of(Class::Elf64, entries, strings)
    }

    /// The answer for an ELFCLASS64 image, checked to be the same for an ELFCLASS32 one.
    fn check(entries: &[(u64, u64)], strings: &[(usize, &[u8])]) -> Option<RunPath> {
        let answer = uses_origin(&image(entries, strings), Class::Elf64, DYN as u64, 16 * 8);
        let elf32 = uses_origin(&image_of(Class::Elf32, entries, strings), Class::Elf32, DYN as u64, 8 * 8);
        assert_eq!(answer, elf32, "ELFCLASS32: {entries:x?}");
        answer
    }

    #[test]
    fn finds_origin_in_runpath_and_rpath() {
        let strtab = (DT_STRTAB, STRTAB as u64);
        // The JDK's java: RUNPATH $ORIGIN/../lib.
        assert_eq!(check(&[strtab, (DT_RUNPATH, 1)], &[(1, b"$ORIGIN/../lib\0")]), Some(RunPath::Runpath));
        assert_eq!(check(&[(DT_RPATH, 8), strtab], &[(8, b"/opt/x:${ORIGIN}/lib\0")]), Some(RunPath::Rpath));
        // The first entry with $ORIGIN is named, whatever came before.
        let both = [strtab, (DT_RPATH, 1), (DT_RUNPATH, 20)];
        assert_eq!(check(&both, &[(1, b"/usr/lib\0"), (20, b"lib:$ORIGIN\0")]), Some(RunPath::Runpath));
    }

    #[test]
    fn other_run_paths_do_not_count() {
        let strtab = (DT_STRTAB, STRTAB as u64);
        assert_eq!(check(&[strtab, (DT_RUNPATH, 1)], &[(1, b"/usr/lib/x86_64-linux-gnu\0")]), None);
        assert_eq!(check(&[strtab, (DT_RUNPATH, 1)], &[(1, b"$ORIGI\0N")]), None, "cut by its NUL");
        assert_eq!(check(&[strtab, (DT_RUNPATH, 1)], &[(1, b"$origin\0")]), None, "case matters to ld.so");
        assert_eq!(check(&[strtab], &[(1, b"$ORIGIN\0")]), None, "no run path");
        assert_eq!(check(&[(DT_RUNPATH, 1)], &[(1, b"$ORIGIN\0")]), None, "no string table");
        // Entries after DT_NULL are not part of the section.
        assert_eq!(check(&[strtab, (DT_NULL, 0), (DT_RUNPATH, 1)], &[(1, b"$ORIGIN\0")]), None);
    }

    #[test]
    fn malformed_sections_end_the_search() {
        let strtab = (DT_STRTAB, STRTAB as u64);
        // A string running off the end of the image without a NUL.
        let img = image(&[strtab, (DT_RUNPATH, 0x3f0)], &[]);
        assert_eq!(uses_origin(&img, Class::Elf64, DYN as u64, 64), None);
        // A string offset that overflows the address.
        assert_eq!(check(&[(DT_STRTAB, u64::MAX - 2), (DT_RUNPATH, 8)], &[]), None);
        // An ELFCLASS32 section read as 8-byte entries would find nothing, and the other way round.
        let entries = [(DT_STRTAB, STRTAB as u64), (DT_RUNPATH, 1)];
        let elf32 = image_of(Class::Elf32, &entries, &[(1, b"$ORIGIN\0")]);
        assert_eq!(uses_origin(&elf32, Class::Elf32, DYN as u64, 64), Some(RunPath::Runpath));
        assert_eq!(uses_origin(&elf32, Class::Elf64, DYN as u64, 64), None);
        // A dynamic section outside the image, or cut in the middle of an entry.
        assert_eq!(uses_origin(&image(&[], &[]), Class::Elf64, 0x7f8, 64), None);
        assert_eq!(uses_origin(&Flat(vec![0; 8]), Class::Elf64, 0, 64), None);
        // $ORIGIN found across the whole 4096-byte bound, not beyond it.
        let mut long = vec![b'a'; 4089];
        long.extend_from_slice(b"$ORIGIN\0");
        let mut img = image(&[strtab, (DT_RUNPATH, 0)], &[]);
        img.0.resize(STRTAB + 8192, 0);
        img.0[STRTAB..STRTAB + long.len()].copy_from_slice(&long);
        assert_eq!(uses_origin(&img, Class::Elf64, DYN as u64, 64), Some(RunPath::Runpath));
        img.0.splice(STRTAB..STRTAB, [b'a']);
        assert_eq!(uses_origin(&img, Class::Elf64, DYN as u64, 64), None, "past 4096 bytes");
    }
}
