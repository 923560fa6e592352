//! The load plan over validated images and arbitrary placement inputs: `plan::Extent`,
//! `plan::Segment`, `Placement::of_program`, `pie_bias`, `start_brk`, `page_flags` and `has_flags`, as the
//! shell's `load.rs`, `plan.rs` and `wine.rs` use them.
//!
//! Checks what the mapping code relies on: every segment's pages are page-aligned, cover its
//! memory, stay inside TASK_SIZE and (position-independent images) inside the span the first
//! mapping reserves, unless they lie below the first PT_LOAD (out of address order, mapped on
//! their own as the kernel does); file pages map whole pages at the segment's offset (past the
//! end of the file too, as the kernel maps them); zeroing touches only the segment's own
//! writable last file page, which the file holds; the mm fields are ordered as PR_SET_MM_MAP
//! demands; the placement is the kernel's choice for the image's type; the PIE bias honours the
//! largest p_align; the heap starts above the program; a page's flags are those of the last
//! PT_LOAD that maps it (an independent model), and `has_flags` holds exactly when every page of
//! the range has the flags. A program with an interpreter may have no PT_LOAD at all.
//!
//! Also the check before a fixed-address segment is mapped, `load::foreign_mapping` over the
//! ranges recorded in `load::Owned`: against a model that subtracts every recorded range from the
//! target, it finds a mapping of /proc/self/maps exactly when one overlaps what is left, and the
//! mapping it names (range and name) is one of those; `Owned` keeps the first 64 ranges.
#![no_main]

use arbitrary::Arbitrary;
use goblin::elf::header::{ET_DYN, ET_EXEC};
use goblin::elf64::header::Header;
use goblin::elf64::program_header::{PF_R, PF_W, PF_X, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_PHDR, ProgramHeader};
use libfuzzer_sys::fuzz_target;
use preload::elf::{self, Image, TASK_SIZE};
use preload::plan::load::{self, BRK_RND_RANGE, ELF_ET_DYN_BASE, Extent, Owned, Placement, Segment};
use preload::plan::reserve::Range;
use preload::{PAGE_SIZE, page_align, page_offset, page_start};

#[derive(Arbitrary, Debug)]
enum Kind {
    Load,
    Interp,
    GnuStack,
    Phdr,
    Other(u32),
}

#[derive(Arbitrary, Debug)]
struct Phdr {
    kind: Kind,
    flags: u8,
    vaddr: u64,
    /// Page of the file offset; the offset is made congruent to vaddr unless `raw_offset`.
    offset_page: u32,
    raw_offset: Option<u64>,
    filesz: u32,
    /// memsz = filesz + bss, unless `raw_memsz`.
    bss: u32,
    raw_memsz: Option<u64>,
    align_log2: u8,
}

impl Phdr {
    fn build(&self) -> ProgramHeader {
        let p_type = match self.kind {
            Kind::Load => PT_LOAD,
            Kind::Interp => PT_INTERP,
            Kind::GnuStack => PT_GNU_STACK,
            Kind::Phdr => PT_PHDR,
            Kind::Other(t) => t,
        };
        let filesz = u64::from(self.filesz);
        ProgramHeader {
            p_type,
            p_flags: u32::from(self.flags & 7),
            p_offset: self.raw_offset.unwrap_or(u64::from(self.offset_page) * PAGE_SIZE + page_offset(self.vaddr)),
            p_vaddr: self.vaddr,
            p_paddr: self.vaddr,
            p_filesz: filesz,
            p_memsz: self.raw_memsz.unwrap_or(filesz + u64::from(self.bss)),
            p_align: 1u64.checked_shl(u32::from(self.align_log2)).unwrap_or(u64::from(self.align_log2)),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    relocatable: bool,
    entry: u64,
    phoff: u64,
    file_size: u64,
    phdrs: Vec<Phdr>,
    has_interp: bool,
    randomize: bool,
    /// `--base`: a page number.
    base_page: Option<u64>,
    random_mmap: u64,
    random_brk: u64,
    /// A range whose pages' flags are asked for: its start, and its length in pages and bytes.
    probe: (u64, u8, u16),
    probe_flags: u8,
    maps: Maps,
}

/// /proc/self/maps as pairs of addresses (made into start < end), the ranges a launch mapped,
/// and the range a segment is about to take.
#[derive(Arbitrary, Debug)]
struct Maps {
    mappings: Vec<(u64, u64, bool)>,
    owned: Vec<(u64, u64)>,
    target: (u64, u64),
}

fuzz_target!(|input: Input| {
    check_foreign_mapping(&input.maps);
    let phdrs: Vec<ProgramHeader> = input.phdrs.iter().map(Phdr::build).collect();
    let header = Header {
        e_type: if input.relocatable { ET_DYN } else { ET_EXEC },
        e_entry: input.entry,
        e_phoff: input.phoff,
        ..Header::default()
    };
    // A file size is an off_t: below 2^63.
    let file_size = input.file_size & i64::MAX as u64;
    let Ok(image) = elf::validate(&header, &phdrs, file_size) else { return };
    // main.rs refuses a program without PT_LOAD unless it has an interpreter.
    if !input.has_interp && elf::check_has_loads(&image).is_err() {
        return;
    }
    let extent = Extent::of(&image);
    check_extent(&image, &extent);
    for ph in image.loads() {
        check_segment(ph, &Segment::of(ph), &extent, image.relocatable, file_size);
    }
    check_placement(&image, &extent, &input);
    check_page_flags(&image, file_size);
    check_has_flags(&image, file_size, &input);
});

fn span_end(extent: &Extent) -> u64 {
    extent.first_start + page_align(extent.total_size)
}

fn check_extent(image: &Image, extent: &Extent) {
    let Some(first) = image.loads().next() else {
        // Nothing to map: an empty extent whose code range PR_SET_MM_MAP still accepts.
        assert_eq!((extent.first_start, extent.total_size, extent.end_bss, extent.phdr), (0, 0, 0, 0), "{extent:?}");
        assert!(extent.start_code < extent.end_code && extent.start_data <= extent.end_data, "{extent:?}");
        return;
    };
    assert_eq!(extent.first_start, page_start(first.p_vaddr));
    assert!(extent.align.is_power_of_two() && extent.align >= PAGE_SIZE, "{extent:?}");
    // total_mapping_size: from the lowest page of any PT_LOAD, wherever it is in the table.
    let lowest = image.loads().map(|ph| page_start(ph.p_vaddr)).min().unwrap();
    assert_eq!(
        extent.total_size,
        image.loads().map(|ph| ph.p_vaddr + ph.p_memsz).max().unwrap() - lowest,
        "{extent:?}"
    );
    assert!(!image.relocatable || lowest + page_align(extent.total_size) <= TASK_SIZE, "{extent:?}");
    assert!(
        extent.start_code < extent.end_code && extent.end_code <= TASK_SIZE,
        "PR_SET_MM_MAP needs start_code < end_code: {extent:?}"
    );
    assert!(extent.start_data <= extent.end_data && extent.end_data <= extent.end_bss, "{extent:?}");
    assert_eq!(extent.end_bss, image.loads().map(|ph| ph.p_vaddr + ph.p_memsz).max().unwrap());
    if extent.phdr != 0 {
        assert!(
            image.loads().any(|ph| ph.p_vaddr <= extent.phdr
                && extent.phdr - ph.p_vaddr < ph.p_filesz
                && ph.p_offset + (extent.phdr - ph.p_vaddr) == image.phoff),
            "AT_PHDR {:#x} is not e_phoff inside a PT_LOAD's file bytes",
            extent.phdr
        );
    }
}

fn check_segment(ph: &ProgramHeader, seg: &Segment, extent: &Extent, relocatable: bool, file_size: u64) {
    let file_end = ph.p_vaddr + ph.p_filesz;
    let mem_end = ph.p_vaddr + ph.p_memsz;
    assert_eq!(seg.start, page_start(ph.p_vaddr));
    assert_eq!(seg.file_len % PAGE_SIZE, 0, "{seg:?}");
    assert_eq!(seg.file_len == 0, ph.p_filesz == 0, "{seg:?}");
    let mut end = seg.start + seg.file_len;
    if seg.file_len > 0 {
        assert_eq!(seg.offset % PAGE_SIZE, 0, "{seg:?}");
        assert!(end >= file_end && end - file_end < PAGE_SIZE, "{seg:?}");
        assert_eq!(seg.offset + (ph.p_vaddr - seg.start), ph.p_offset, "{seg:?}");
    }
    match seg.zero {
        Some((start, stop)) => {
            assert!(ph.p_flags & PF_W != 0, "zeroes a read-only page: {seg:?}");
            assert_eq!((start, stop), (file_end, page_align(file_end)));
            assert!(seg.start < start && stop <= end && ph.p_memsz > ph.p_filesz, "{seg:?}");
            // The page being zeroed is a file page the file holds: touching it cannot SIGBUS.
            assert!(
                seg.offset + (page_start(start) - seg.start) < file_size,
                "zeroes a page past the end of the file: {seg:?}"
            );
        }
        None => assert!(
            ph.p_flags & PF_W == 0 || ph.p_memsz == ph.p_filesz || page_offset(file_end) == 0 || ph.p_filesz == 0
        ),
    }
    if let Some((start, stop)) = seg.anon {
        assert!(start % PAGE_SIZE == 0 && stop % PAGE_SIZE == 0 && start < stop, "{seg:?}");
        assert_eq!(start, end, "anonymous pages must follow the file pages: {seg:?}");
        assert_eq!(stop, page_align(mem_end), "{seg:?}");
        end = stop;
    }
    assert!(end >= mem_end || ph.p_memsz == 0, "memory [{:#x}, {mem_end:#x}) not all mapped: {seg:?}", ph.p_vaddr);
    // An ET_EXEC reserves no span: each segment goes to its own address; so does a segment
    // below the first PT_LOAD (MAP_FIXED_NOREPLACE in the shell).
    assert!(
        !relocatable || seg.start < extent.first_start || end <= span_end(extent),
        "segment {:#x}-{end:#x} outside the reserved span {:#x}-{:#x}",
        seg.start,
        extent.first_start,
        span_end(extent)
    );
}

fn check_placement(image: &Image, extent: &Extent, input: &Input) {
    let static_pie = image.relocatable && !input.has_interp;
    let rnd = if input.randomize { load::mmap_rnd(input.random_mmap) } else { 0 };
    assert!(rnd < (1 << 40) && rnd % PAGE_SIZE == 0);
    let base = input.base_page.map(|page| page.wrapping_mul(PAGE_SIZE));
    match Placement::of_program(image.relocatable, input.has_interp, base, extent, rnd) {
        Err(_) => assert!(!image.relocatable && base.is_some(), "refused a placement the kernel makes"),
        Ok(Placement::Fixed) => assert!(!image.relocatable && base.is_none()),
        Ok(Placement::Bias(bias)) => {
            assert!(image.relocatable && (base.is_some() || input.has_interp));
            let expected = match base {
                Some(base) => base.wrapping_sub(extent.first_start),
                None => load::pie_bias(extent, rnd),
            };
            assert_eq!(bias, expected);
        }
        Ok(Placement::Anywhere { align }) => {
            assert!(static_pie && base.is_none());
            assert_eq!(align, extent.align);
        }
    }
    let bias = match (image.relocatable, input.base_page) {
        (false, _) => 0,
        (true, Some(page)) => page.wrapping_mul(PAGE_SIZE).wrapping_sub(extent.first_start),
        (true, None) if input.has_interp => {
            let bias = load::pie_bias(extent, rnd);
            let first = bias.wrapping_add(extent.first_start);
            assert_eq!(first % extent.align, 0, "first page {first:#x} not aligned to {:#x}", extent.align);
            assert!(first <= ELF_ET_DYN_BASE + rnd && ELF_ET_DYN_BASE + rnd - first < extent.align, "{first:#x}");
            bias
        }
        // Anywhere: mmap picks an address aligned to extent.align; take the lowest.
        (true, None) => extent.align.wrapping_sub(extent.first_start),
    };
    assert_eq!(bias % PAGE_SIZE, 0);
    // load::map fails unless the biased program is inside the user address space.
    let Some(end) = bias.checked_add(page_align(extent.end_bss)).filter(|&end| end <= TASK_SIZE) else { return };
    let elf_brk = bias + extent.end_bss;
    let brk = load::start_brk(elf_brk, static_pie, input.randomize, input.random_brk);
    assert_eq!(brk % PAGE_SIZE, 0);
    let low = if static_pie { page_align(ELF_ET_DYN_BASE) } else { page_align(elf_brk) };
    let high = low + if input.randomize { BRK_RND_RANGE } else { 0 };
    assert!(brk >= low && brk <= high, "brk {brk:#x} outside [{low:#x}, {high:#x}]");
    if !static_pie {
        assert!(brk >= end, "heap at {brk:#x} inside the program, which ends at {end:#x}");
        if input.randomize {
            assert!(brk > end, "no guard page between the program and the randomised heap");
        }
    }
}

/// `page_flags` against a model that maps the PT_LOADs in order, each over the ones before.
fn check_page_flags(image: &Image, file_size: u64) {
    let pages = image.loads().flat_map(|ph| {
        let seg = Segment::of(ph);
        [seg.start, seg.start.wrapping_add(PAGE_SIZE), page_start(ph.p_vaddr.wrapping_add(ph.p_memsz))]
    });
    for page in pages.take(64) {
        let mut model = None;
        for ph in image.loads() {
            let seg = Segment::of(ph);
            if seg.start <= page && page - seg.start < seg.file_len {
                let past_eof = seg.offset.saturating_add(page - seg.start) >= file_size;
                model = Some(if past_eof { 0 } else { ph.p_flags });
            } else if seg.anon.is_some_and(|(start, end)| start <= page && page < end) {
                model = Some(PF_R | PF_W | (ph.p_flags & PF_X));
            }
        }
        assert_eq!(load::page_flags(image, page, file_size), model, "page {page:#x}");
    }
}

/// `has_flags` over the probe range: true exactly when every page of it has the flags, as
/// `page_flags` (checked above) says.
fn check_has_flags(image: &Image, file_size: u64, input: &Input) {
    let (vaddr, pages, extra) = input.probe;
    let len = u64::from(pages) * PAGE_SIZE + u64::from(extra);
    let flags = u32::from(input.probe_flags & 7);
    let expected = vaddr.checked_add(len).is_some_and(|end| {
        (page_start(vaddr)..end)
            .step_by(PAGE_SIZE as usize)
            .all(|page| load::page_flags(image, page, file_size).is_some_and(|have| have & flags == flags))
    });
    assert_eq!(load::has_flags(image, vaddr, len, flags, file_size), expected, "{vaddr:#x}+{len:#x} {flags:#o}");
}

fn check_foreign_mapping(input: &Maps) {
    // The kernel's text: "start-end perms offset dev inode name", lower-case hex; a name for
    // some (with a space in it, as paths may have), none for anonymous memory.
    let mappings: Vec<(Range, Vec<u8>)> = input
        .mappings
        .iter()
        .enumerate()
        .filter(|(_, (a, b, _))| a != b)
        .map(|(index, &(a, b, named))| {
            let name = if named { format!("/lib/m {index}").into_bytes() } else { Vec::new() };
            (Range::new(a.min(b), a.max(b)), name)
        })
        .collect();
    let mut maps = Vec::new();
    for (range, name) in &mappings {
        maps.extend_from_slice(format!("{:x}-{:x} r--p 00000000 00:00 0 ", range.start, range.end).as_bytes());
        maps.extend_from_slice(name);
        maps.push(b'\n');
    }
    let mut owned = Owned::default();
    for &(start, len) in &input.owned {
        owned.push(start, len);
    }
    let recorded = owned.as_slice();
    assert_eq!(recorded.len(), input.owned.len().min(64), "Owned keeps the first 64 ranges");
    for (range, &(start, len)) in recorded.iter().zip(&input.owned) {
        assert_eq!(*range, Range::new(start, start.saturating_add(len)));
    }
    let target = Range::new(input.target.0, input.target.1);

    // The model: what is left of the target once every recorded range is taken out.
    let mut left = if target.is_empty() { Vec::new() } else { vec![target] };
    for own in recorded.iter().filter(|own| !own.is_empty()) {
        left = left
            .into_iter()
            .flat_map(|piece| {
                if !piece.overlaps(own) {
                    return vec![piece];
                }
                [Range::new(piece.start, own.start), Range::new(own.end, piece.end)]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .collect()
            })
            .collect();
    }
    let foreign = |range: &Range| left.iter().any(|piece| piece.overlaps(range));
    match load::foreign_mapping(&maps, target, recorded) {
        Some((range, name)) => {
            assert!(
                mappings.iter().any(|(r, n)| *r == range && n.as_slice() == name),
                "{range:x?} {name:?} is not a mapping of the text"
            );
            assert!(foreign(&range), "{range:x?} lies inside the recorded ranges or outside {target:x?}");
        }
        None => assert!(
            !mappings.iter().any(|(range, _)| foreign(range)),
            "a mapping overlaps {target:x?} outside the recorded ranges {recorded:x?}, and was not found"
        ),
    }
}
