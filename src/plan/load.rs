//! The load plan: where each segment of a validated image goes, and the mm fields the kernel
//! derives from it (`load_elf_binary` and `elf_load` in fs/binfmt_elf.c).

use goblin::elf64::program_header::{PF_R, PF_W, PF_X, ProgramHeader};

use crate::elf::Image;
use crate::plan::reserve::{Range, find_in_maps};
use crate::{PAGE_SIZE, page_align, page_offset, page_start};

/// x86_64 ELF_ET_DYN_BASE: where a PIE with an interpreter is placed, before randomisation.
pub const ELF_ET_DYN_BASE: u64 = 0x5555_5555_4aaa;
/// CONFIG_ARCH_MMAP_RND_BITS default; /proc/sys/vm/mmap_rnd_bits is root-only, so it is assumed.
pub const MMAP_RND_BITS: u32 = 28;
/// arch_randomize_brk spreads the heap start over 1 GiB.
pub const BRK_RND_RANGE: u64 = 1 << 30;

/// How one PT_LOAD is mapped; addresses are unbiased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Page-aligned start of the mapping.
    pub start: u64,
    /// Length of the file-backed part (whole pages; 0 when the segment has no file bytes).
    pub file_len: u64,
    /// Page-aligned file offset of `start`.
    pub offset: u64,
    /// PF_R/PF_W/PF_X of the segment.
    pub flags: u32,
    /// The rest of the last file page after the file data, to be zeroed (writable segments only:
    /// the kernel ignores the failure on read-only ones, so they keep the file's bytes).
    pub zero: Option<(u64, u64)>,
    /// Anonymous pages for the rest of the bss, always read-write (plus exec for PF_X).
    pub anon: Option<(u64, u64)>,
}

impl Segment {
    pub fn of(ph: &ProgramHeader) -> Self {
        let start = page_start(ph.p_vaddr);
        let file_end = ph.p_vaddr + ph.p_filesz;
        let mem_end = ph.p_vaddr + ph.p_memsz;
        let (file_len, anon_start) =
            if ph.p_filesz > 0 { (page_align(file_end) - start, page_align(file_end)) } else { (0, start) };
        let writable = ph.p_flags & PF_W != 0;
        Self {
            start,
            file_len,
            offset: ph.p_offset.wrapping_sub(page_offset(ph.p_vaddr)),
            flags: ph.p_flags,
            // padzero clears to the end of the page, even past memsz.
            zero: (ph.p_filesz > 0 && ph.p_memsz > ph.p_filesz && writable && page_offset(file_end) != 0)
                .then_some((file_end, page_align(file_end))),
            anon: (page_align(mem_end) > anon_start && ph.p_memsz > ph.p_filesz)
                .then_some((anon_start, page_align(mem_end))),
        }
    }
}

/// What the kernel derives from the PT_LOADs of an image, unbiased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Page start of the first PT_LOAD's vaddr: the mapping that reserves the whole span.
    pub first_start: u64,
    /// `total_mapping_size`: from the lowest page to the highest byte of any PT_LOAD.
    pub total_size: u64,
    /// Largest power-of-two p_align, at least a page.
    pub align: u64,
    /// AT_PHDR: the address of e_phoff in the PT_LOAD whose file range holds it (0 if none).
    pub phdr: u64,
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    /// The end of the highest PT_LOAD in memory, where the heap starts.
    pub end_bss: u64,
    /// The first PT_LOAD's vaddr when it has no file bytes: the kernel's elf_load maps no file
    /// for it (Linux 6.7, and the stable kernels from 6.1.140 and 6.6.92 on), so no mapping of
    /// the whole span places a static-pie (see [`Placement::of_program`]).
    pub unreserved_first: Option<u64>,
}

impl Extent {
    pub fn of(image: &Image) -> Self {
        let first = image.loads().next().map_or(0, |ph| page_start(ph.p_vaddr));
        let unreserved_first = image.loads().next().filter(|ph| ph.p_filesz == 0).map(|ph| ph.p_vaddr);
        let mut extent = Self {
            first_start: first,
            total_size: 0,
            align: PAGE_SIZE,
            phdr: 0,
            start_code: u64::MAX,
            end_code: 0,
            start_data: 0,
            end_data: 0,
            end_bss: 0,
            unreserved_first,
        };
        let mut lowest = u64::MAX;
        for ph in image.loads() {
            lowest = lowest.min(page_start(ph.p_vaddr));
            let file_end = ph.p_vaddr + ph.p_filesz;
            if ph.p_flags & PF_X != 0 {
                extent.start_code = extent.start_code.min(ph.p_vaddr);
                extent.end_code = extent.end_code.max(file_end);
            }
            extent.start_data = extent.start_data.max(ph.p_vaddr);
            extent.end_data = extent.end_data.max(file_end);
            extent.end_bss = extent.end_bss.max(ph.p_vaddr + ph.p_memsz);
            if ph.p_align.is_power_of_two() {
                extent.align = extent.align.max(ph.p_align);
            }
            if ph.p_offset <= image.phoff && image.phoff - ph.p_offset < ph.p_filesz {
                extent.phdr = image.phoff - ph.p_offset + ph.p_vaddr;
            }
        }
        extent.total_size = extent.end_bss.saturating_sub(lowest);
        extent.align = page_align(extent.align);
        if extent.start_code >= extent.end_code {
            // No executable segment: the kernel would publish start_code > end_code, which
            // PR_SET_MM_MAP refuses. Use an empty-but-valid range at the first segment.
            extent.start_code = first;
            extent.end_code = first + 1;
        }
        extent
    }
}

/// The lowest address PR_SET_MM_MAP takes in any field: mmap_min_addr, the larger of
/// vm.mmap_min_addr and the LSM's bound (CONFIG_LSM_MMAP_MIN_ADDR, 64 KiB by default, as on
/// Debian); a vm.mmap_min_addr set higher is not followed.
pub const MM_MAP_MIN_ADDR: u64 = 0x1_0000;

/// The code or data range of the mm fields as PR_SET_MM_MAP takes it: raised to
/// [`MM_MAP_MIN_ADDR`] where it starts below (a program root maps near page 0), and kept
/// non-empty. Only /proc shows these ranges; left below, they would have the whole call refused,
/// and brk, exe and auxv with it.
pub fn mm_range(start: u64, end: u64) -> (u64, u64) {
    match start < MM_MAP_MIN_ADDR {
        true => (MM_MAP_MIN_ADDR, end.max(MM_MAP_MIN_ADDR + 1)),
        false => (start, end),
    }
}

/// Where the first segment of an image goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// ET_EXEC: at its own addresses, never over an existing mapping.
    Fixed,
    /// At this load bias, never over an existing mapping (a PIE with an interpreter, or --base).
    Bias(u64),
    /// Wherever the kernel's mmap puts it (an interpreter, a static-pie), aligned to `align`.
    Anywhere { align: u64 },
}

impl Placement {
    /// The main program's, as load_elf_binary chooses it: ET_EXEC at its addresses, a PIE with
    /// an interpreter at ELF_ET_DYN_BASE plus `rnd` (see [`mmap_rnd`]), a static-pie in the mmap
    /// area; `base` (--base) puts a position-independent program's first page there instead.
    pub fn of_program(
        relocatable: bool,
        has_interpreter: bool,
        base: Option<u64>,
        extent: &Extent,
        rnd: u64,
    ) -> Result<Self, &'static str> {
        Ok(match (relocatable, base, has_interpreter) {
            (false, Some(_), _) => return Err("--base needs a position-independent program"),
            (false, None, _) => Self::Fixed,
            (true, Some(base), _) => Self::Bias(base.wrapping_sub(extent.first_start)),
            (true, None, true) => Self::Bias(pie_bias(extent, rnd)),
            // No mapping places it when its first PT_LOAD has no file bytes: load_elf_binary's
            // bias page_start(0 - vaddr) stays, the first page at 0 when vaddr starts a page,
            // past the top of the address space otherwise.
            (true, None, false) => match extent.unreserved_first {
                Some(vaddr) => Self::Bias(page_start(0u64.wrapping_sub(vaddr))),
                None => Self::Anywhere { align: extent.align },
            },
        })
    }

    /// The interpreter's, as load_elf_interp chooses it: p_align is not honoured.
    pub fn of_interpreter(relocatable: bool) -> Self {
        if relocatable { Self::Anywhere { align: PAGE_SIZE } } else { Self::Fixed }
    }

    /// The load bias, when it is known before anything is mapped.
    pub fn planned_bias(self) -> Option<u64> {
        match self {
            Self::Fixed => Some(0),
            Self::Bias(bias) => Some(bias),
            Self::Anywhere { .. } => None,
        }
    }
}

/// The PF_ flags the page at unbiased `page` of a mapped `image` has: the last PT_LOAD that maps
/// it decides, as it was mapped last; bss pages are read-write (plus exec for PF_X); file pages
/// past the end of the file (`file_size`) are mapped but fault, so they count as none.
pub fn page_flags(image: &Image, page: u64, file_size: u64) -> Option<u32> {
    page_run(image, page_start(page), file_size).map(|(flags, _)| flags)
}

/// The pieces a PT_LOAD maps, each with the flags its pages have: the file pages within the
/// file, those past its end (which fault), and the anonymous bss.
fn pieces(seg: &Segment, file_size: u64) -> [(u64, u64, u32); 3] {
    let in_file = seg.file_len.min(page_align(file_size.saturating_sub(seg.offset)));
    let file_end = seg.start.saturating_add(seg.file_len);
    let (bss_start, bss_end) = seg.anon.unwrap_or((0, 0));
    [
        (seg.start, seg.start.saturating_add(in_file), seg.flags),
        (seg.start.saturating_add(in_file), file_end, 0),
        (bss_start, bss_end, PF_R | PF_W | (seg.flags & PF_X)),
    ]
}

/// The flags of the page-aligned `page` ([`page_flags`]) and the end of the run of pages from
/// it that have them from the same piece of the same PT_LOAD: one answer per piece, however many
/// pages it has, in time linear in the number of PT_LOADs.
pub fn page_run(image: &Image, page: u64, file_size: u64) -> Option<(u32, u64)> {
    let count = image.loads().count();
    let (deciding, flags, piece_end) = image.loads().rev().enumerate().find_map(|(from_end, ph)| {
        let piece =
            pieces(&Segment::of(ph), file_size).into_iter().find(|&(start, end, _)| start <= page && page < end);
        piece.map(|(_, end, flags)| (count - 1 - from_end, flags, end))
    })?;
    // A later PT_LOAD that starts mapping further on takes over from there.
    let taken_over = image
        .loads()
        .skip(deciding + 1)
        .flat_map(|ph| pieces(&Segment::of(ph), file_size))
        .filter(|&(start, end, _)| start < end && start > page)
        .map(|(start, _, _)| start)
        .min()
        .unwrap_or(u64::MAX);
    Some((flags, piece_end.min(taken_over)))
}

/// Whether every page of the `len` bytes at unbiased `vaddr` has all of `flags`: checked run by
/// run ([`page_run`]), not page by page.
pub fn has_flags(image: &Image, vaddr: u64, len: u64, flags: u32, file_size: u64) -> bool {
    let Some(end) = vaddr.checked_add(len) else { return false };
    let mut page = page_start(vaddr);
    while page < end {
        match page_run(image, page, file_size) {
            Some((have, run_end)) if have & flags == flags => page = run_end,
            _ => return false,
        }
    }
    true
}

/// The ranges this launch mapped for the program and its interpreter: a later segment may
/// replace them (MAP_FIXED, as the kernel does), but nothing else.
pub struct Owned {
    ranges: [Range; Owned::CAPACITY],
    len: usize,
}

impl Default for Owned {
    fn default() -> Self {
        Self { ranges: [Range::new(0, 0); Self::CAPACITY], len: 0 }
    }
}

impl Owned {
    /// Beyond this many ranges, later ones are not recorded, so that replacing them is refused.
    const CAPACITY: usize = 64;

    pub fn push(&mut self, start: u64, len: u64) {
        if let Some(slot) = self.ranges.get_mut(self.len) {
            *slot = Range::new(start, start.saturating_add(len));
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.ranges[..self.len]
    }
}

/// A mapping of `maps` (/proc/self/maps) that overlaps `target` outside every `owned` range, with
/// its name.
pub fn foreign_mapping<'m>(maps: &'m [u8], target: Range, owned: &[Range]) -> Option<(Range, &'m [u8])> {
    if target.is_empty() {
        return None;
    }
    let Some((first, rest)) = owned.split_first() else {
        return find_in_maps(maps, &target);
    };
    if !first.overlaps(&target) {
        return foreign_mapping(maps, target, rest);
    }
    let below = Range::new(target.start, target.end.min(first.start));
    let above = Range::new(target.start.max(first.end), target.end);
    foreign_mapping(maps, below, rest).or_else(|| foreign_mapping(maps, above, rest))
}

/// `arch_mmap_rnd`: the random page offset added to ELF_ET_DYN_BASE.
pub fn mmap_rnd(random: u64) -> u64 {
    (random & ((1 << MMAP_RND_BITS) - 1)) * PAGE_SIZE
}

/// The load bias of a PIE with an interpreter: ELF_ET_DYN_BASE plus randomisation, aligned to
/// the largest p_align, then moved so that the first segment lands there.
pub fn pie_bias(extent: &Extent, rnd: u64) -> u64 {
    let base = (ELF_ET_DYN_BASE + rnd) & !(extent.align - 1);
    page_start(base.wrapping_sub(extent.first_start))
}

/// start_brk for the program, after `elf_brk` (the biased end of its bss): a static-pie gets its
/// heap at ELF_ET_DYN_BASE; with randomisation a one-page gap (not for static-pie) and up to
/// 1 GiB of random pages follow, as `arch_randomize_brk` does.
pub fn start_brk(elf_brk: u64, static_pie: bool, randomize: bool, random: u64) -> u64 {
    start_brk_with(ELF_ET_DYN_BASE, BRK_RND_RANGE, elf_brk, static_pie, randomize, random)
}

/// The rule of [`start_brk`] with a loader's own ELF_ET_DYN_BASE and randomisation range.
pub(crate) fn start_brk_with(
    dyn_base: u64,
    rnd_range: u64,
    elf_brk: u64,
    static_pie: bool,
    randomize: bool,
    random: u64,
) -> u64 {
    let mut brk = page_align(if static_pie { dyn_base } else { elf_brk });
    if randomize {
        if !static_pie {
            brk += PAGE_SIZE;
        }
        brk += (random % (rnd_range / PAGE_SIZE)) * PAGE_SIZE;
    }
    brk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::load;

    fn image(phdrs: &[ProgramHeader]) -> Image<'_> {
        Image { relocatable: true, entry: 0x1040, phoff: 64, phdrs }
    }

    /// The layout of a typical gcc PIE: R, RX, R, RW with bss.
    fn pie() -> [ProgramHeader; 4] {
        [
            load(0, 0, 0x628, 0x628, PF_R),
            load(0x1000, 0x1000, 0x1c5, 0x1c5, PF_R | PF_X),
            load(0x2000, 0x2000, 0x104, 0x104, PF_R),
            load(0x3de8, 0x2de8, 0x248, 0x258, PF_R | PF_W),
        ]
    }

    #[test]
    fn mm_ranges_below_64_kib_are_raised_to_what_pr_set_mm_map_takes() {
        assert_eq!(mm_range(0x40_0000, 0x40_1000), (0x40_0000, 0x40_1000));
        assert_eq!(mm_range(0x3000, 0x8_3604), (0x1_0000, 0x8_3604), "a program at page 0");
        assert_eq!(mm_range(0x3000, 0x9000), (0x1_0000, 0x1_0001), "all of it below");
        assert_eq!(mm_range(0x40_5000, 0x40_5000), (0x40_5000, 0x40_5000), "an empty data range stays");
    }

    #[test]
    fn placement_follows_load_elf_binary() {
        let phdrs = pie();
        let extent = Extent::of(&image(&phdrs));
        let rnd = mmap_rnd(0x1234);
        assert_eq!(Placement::of_program(false, true, None, &extent, rnd), Ok(Placement::Fixed));
        assert_eq!(Placement::of_program(true, true, None, &extent, rnd), Ok(Placement::Bias(pie_bias(&extent, rnd))));
        assert_eq!(
            Placement::of_program(true, false, None, &extent, rnd),
            Ok(Placement::Anywhere { align: PAGE_SIZE })
        );
        assert_eq!(
            Placement::of_program(true, true, Some(0x7000_0000), &extent, rnd),
            Ok(Placement::Bias(0x7000_0000))
        );
        assert!(Placement::of_program(false, false, Some(0x7000_0000), &extent, rnd).is_err());
        // A static-pie whose first PT_LOAD has no file bytes stays at page_start(0 - vaddr); a
        // PIE with an interpreter, or --base, is placed as ever.
        assert_eq!(extent.unreserved_first, None, "file bytes in the first PT_LOAD");
        let without_file = |vaddr| Extent::of(&image(&[load(vaddr, 0x3710, 0, 0x1000, PF_R | PF_W), phdrs[1]]));
        assert_eq!(without_file(0x14).unreserved_first, Some(0x14));
        let static_pie = |vaddr| Placement::of_program(true, false, None, &without_file(vaddr), rnd);
        assert_eq!(static_pie(0), Ok(Placement::Bias(0)), "the first page at 0");
        assert_eq!(static_pie(0x10000), Ok(Placement::Bias(0u64.wrapping_sub(0x10000))));
        assert_eq!(static_pie(0x14), Ok(Placement::Bias(0u64.wrapping_sub(0x1000))));
        assert_eq!(
            Placement::of_program(true, false, Some(0x7000), &without_file(0), rnd),
            Ok(Placement::Bias(0x7000)),
            "--base"
        );
        let pie = Placement::of_program(true, true, None, &without_file(0), rnd);
        assert_eq!(pie, Ok(Placement::Bias(pie_bias(&without_file(0), rnd))), "a PIE");
        assert_eq!(Placement::of_interpreter(true), Placement::Anywhere { align: PAGE_SIZE });
        assert_eq!(Placement::of_interpreter(false).planned_bias(), Some(0));
        assert_eq!(Placement::Anywhere { align: PAGE_SIZE }.planned_bias(), None);
    }

    #[test]
    fn a_run_spans_a_whole_piece_whatever_the_empty_segments_around_it() {
        // 1168 empty PT_LOADs (as in a hostile Wine program) and one 4 MiB read-only segment.
        let mut phdrs = vec![load(0, 0, 0, 0, PF_R); 1168];
        phdrs.push(load(0x10000, 0x10000, 4 << 20, 4 << 20, PF_R));
        let big = image(&phdrs);
        assert_eq!(page_run(&big, 0x10000, 8 << 20), Some((PF_R, 0x10000 + (4 << 20))), "one run for 1024 pages");
        assert_eq!(page_run(&big, 0x20000, 8 << 20), Some((PF_R, 0x10000 + (4 << 20))));
        assert!(has_flags(&big, 0x10000, 4 << 20, PF_R, 8 << 20));
        // Past the end of the file the rest of the segment faults.
        assert_eq!(page_run(&big, 0x10000, 0x20000 + 5), Some((PF_R, 0x21000)));
        assert_eq!(page_run(&big, 0x21000, 0x20000 + 5), Some((0, 0x10000 + (4 << 20))));
        // A later segment takes over where it starts.
        let phdrs = [load(0, 0, 0x10000, 0x10000, PF_R), load(0x4000, 0x4000, 0x1000, 0x1000, PF_R | PF_W)];
        let later = image(&phdrs);
        assert_eq!(page_run(&later, 0, 0x10000), Some((PF_R, 0x4000)));
        assert_eq!(page_run(&later, 0x4000, 0x10000), Some((PF_R | PF_W, 0x5000)));
        assert_eq!(page_run(&later, 0x5000, 0x10000), Some((PF_R, 0x10000)));
        assert!(has_flags(&later, 0, 0x10000, PF_R, 0x10000));
        assert!(!has_flags(&later, 0x3000, 0x2000, PF_W, 0x10000));
    }

    #[test]
    fn page_flags_take_the_last_segment_over_a_page_and_bss_is_read_write() {
        let phdrs = [
            load(0, 0, 0x800, 0x800, PF_R),
            load(0x1000, 0x1000, 0x100, 0x3000, PF_R | PF_X),
            // Overlaps the first page of the code's bss, mapped after it.
            load(0x2000, 0x2000, 0x10, 0x10, PF_R),
        ];
        let image = image(&phdrs);
        assert_eq!(page_flags(&image, 0, 0x10000), Some(PF_R));
        assert_eq!(page_flags(&image, 0x1000, 0x10000), Some(PF_R | PF_X));
        assert_eq!(page_flags(&image, 0x2000, 0x10000), Some(PF_R));
        assert_eq!(page_flags(&image, 0x3000, 0x10000), Some(PF_R | PF_W | PF_X));
        assert_eq!(page_flags(&image, 0x4000, 0x10000), None);
        // File pages past the end of the file fault.
        assert_eq!(page_flags(&image, 0x1000, 0x1000), Some(0));
        assert!(has_flags(&image, 0x800, 0x1000, PF_R, 0x10000));
        assert!(!has_flags(&image, 0x800, 0x1000, PF_R | PF_W, 0x10000));
        assert!(!has_flags(&image, 0x3ff0, 0x20, PF_R, 0x10000), "the page after the bss is not mapped");
        assert!(!has_flags(&image, u64::MAX - 4, 8, PF_R, 0x10000));
    }

    #[test]
    fn extent_follows_the_kernel_rules() {
        let phdrs = pie();
        let extent = Extent::of(&image(&phdrs));
        assert_eq!(extent.first_start, 0);
        assert_eq!(extent.total_size, 0x4040);
        assert_eq!(extent.phdr, 64);
        assert_eq!((extent.start_code, extent.end_code), (0x1000, 0x11c5));
        assert_eq!((extent.start_data, extent.end_data), (0x3de8, 0x4030));
        assert_eq!(extent.end_bss, 0x4040);
        assert_eq!(extent.align, PAGE_SIZE);
    }

    #[test]
    fn phdr_comes_from_the_segment_whose_file_range_holds_it() {
        let phdrs = [load(0x400000, 0, 0x1000, 0x1000, PF_R | PF_X)];
        let mut img = image(&phdrs);
        img.phoff = 0x40;
        assert_eq!(Extent::of(&img).phdr, 0x400040);
        img.phoff = 0x1000;
        assert_eq!(Extent::of(&img).phdr, 0, "e_phoff outside every file range");
    }

    #[test]
    fn only_power_of_two_alignments_count() {
        let mut phdrs = pie();
        phdrs[0].p_align = 0x200000;
        phdrs[1].p_align = 0x300000;
        assert_eq!(Extent::of(&image(&phdrs)).align, 0x200000);
    }

    #[test]
    fn segments_split_into_file_zero_and_anonymous_parts() {
        let rw = Segment::of(&load(0x3de8, 0x2de8, 0x248, 0x2258, PF_R | PF_W));
        assert_eq!((rw.start, rw.file_len, rw.offset), (0x3000, 0x2000, 0x2000));
        assert_eq!(rw.zero, Some((0x4030, 0x5000)));
        assert_eq!(rw.anon, Some((0x5000, 0x7000)));

        let small_bss = Segment::of(&load(0x3de8, 0x2de8, 0x248, 0x258, PF_R | PF_W));
        assert_eq!(small_bss.zero, Some((0x4030, 0x5000)), "padzero clears the whole rest of the page");
        assert_eq!(small_bss.anon, None);

        let read_only_bss = Segment::of(&load(0x1000, 0x1000, 0x10, 0x3000, PF_R));
        assert_eq!(read_only_bss.zero, None, "the kernel leaves file bytes in read-only segments");
        assert_eq!(read_only_bss.anon, Some((0x2000, 0x4000)));

        let no_bss = Segment::of(&load(0x1000, 0x1000, 0x10, 0x10, PF_R | PF_W));
        assert_eq!((no_bss.zero, no_bss.anon), (None, None), "memsz == filesz zeroes nothing");

        let only_bss = Segment::of(&load(0x5010, 0, 0, 0x100, PF_R | PF_W));
        assert_eq!((only_bss.file_len, only_bss.zero, only_bss.anon), (0, None, Some((0x5000, 0x6000))));
    }

    #[test]
    fn pie_bias_matches_the_kernel_without_randomisation() {
        let phdrs = pie();
        let extent = Extent::of(&image(&phdrs));
        assert_eq!(pie_bias(&extent, 0), 0x5555_5555_4000);
        let mut big = phdrs;
        big[0].p_align = 0x200000;
        assert_eq!(pie_bias(&Extent::of(&image(&big)), 0), 0x5555_5540_0000);
        assert_eq!(pie_bias(&extent, mmap_rnd(u64::MAX)), 0x5555_5555_4000 + ((1 << 28) - 1) * 4096);
    }

    #[test]
    fn mm_fields_stay_valid_without_an_executable_segment() {
        let phdrs = [load(0x1000, 0x1000, 0x10, 0x10, PF_R)];
        let extent = Extent::of(&image(&phdrs));
        assert!(extent.start_code < extent.end_code);
    }

    #[test]
    fn only_mappings_outside_the_owned_ranges_are_foreign() {
        let maps =
            b"00400000-00402000 r-xp 00000000 08:01 12 /prog\n7ffff7fc0000-7ffff7fc4000 r--p 00000000 00:00 0 [vvar]\n";
        let owned = [Range::new(0x400000, 0x401000), Range::new(0x401000, 0x402000)];
        assert_eq!(foreign_mapping(maps, Range::new(0x400000, 0x403000), &owned), None);
        assert_eq!(foreign_mapping(maps, Range::new(0x400000, 0x403000), &owned[..1]).unwrap().1, b"/prog");
        let (vvar, name) = foreign_mapping(maps, Range::new(0x401000, 0x7ffff7fc1000), &owned).unwrap();
        assert_eq!((vvar.start, name), (0x7ffff7fc0000, &b"[vvar]"[..]));
        let mut recorded = Owned::default();
        for page in 0..100 {
            recorded.push(page * PAGE_SIZE, PAGE_SIZE);
        }
        assert_eq!(
            recorded.as_slice().len(),
            64,
            "beyond its capacity nothing is recorded, so nothing more may be replaced"
        );
    }

    #[test]
    fn brk_follows_bss_or_moves_to_the_dyn_base() {
        assert_eq!(start_brk(0x5555_5555_8040, false, false, 7), 0x5555_5555_9000);
        assert_eq!(start_brk(0x5555_5555_8040, false, true, 0), 0x5555_5555_a000);
        assert_eq!(start_brk(0x5555_5555_8040, false, true, (1 << 18) + 3), 0x5555_5555_a000 + 3 * 4096);
        assert_eq!(start_brk(0x7f00_0000_0000, true, false, 0), 0x5555_5555_5000);
        assert_eq!(start_brk(0x7f00_0000_0000, true, true, 1), 0x5555_5555_6000);
    }
}
