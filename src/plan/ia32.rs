//! Where the kernel's IA32 emulation puts an i386 program (arch/x86: `mmap_is_ia32()` is true
//! once `set_personality_ia32` has set TIF_ADDR32), for the load plan of [`super::load`], whose
//! segment and extent rules are the same for both ABIs.

use crate::plan::load::{Extent, Placement};
use crate::plan::reserve::{Range, mappings};
use crate::{PAGE_SIZE, page_align, page_start};

/// ELF_ET_DYN_BASE of a compat exec: a PIE with an interpreter goes here, plus randomisation,
/// and a static-pie's heap starts here. Measured on 6.18 (`setarch -R`: an i386 PIE's first
/// page and a static-pie's [heap] both at 0x56555000; with ASLR, PIEs between 0x56556000 and
/// 0x56653000 over 80 runs, static-pie heaps 0x565c4000-0x58472000 over 40). The ia32 branch of
/// arch/x86/include/asm/elf.h reads 0x400000, which is not what a compat exec gets here.
pub const ELF_ET_DYN_BASE: u64 = 0x5655_5000;
/// CONFIG_ARCH_MMAP_RND_COMPAT_BITS default (arch_mmap_rnd for a compat exec): 8 bits of pages.
pub const MMAP_RND_COMPAT_BITS: u32 = 8;
/// arch_randomize_brk spreads a compat heap's start over 32 MiB.
pub const BRK_RND_RANGE: u64 = 32 << 20;
/// STACK_TOP of a compat task: IA32_PAGE_OFFSET.
pub const STACK_TOP: u64 = crate::elf::ia32::TASK_SIZE;
/// STACK_RND_MASK for ia32: the stack top moves down by up to 0x7ff pages (8 MiB).
pub const STACK_RND_MASK: u64 = 0x7ff;
/// mmap_base's bounds on the gap left for the stack below STACK_TOP.
const GAP_MIN: u64 = 128 << 20;
/// stack_guard_gap: 256 pages.
const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

/// `arch_mmap_rnd` of a compat exec: the random page offset added to the ia32 ELF_ET_DYN_BASE
/// and taken from the compat mmap base.
pub fn mmap_rnd(random: u64) -> u64 {
    (random & ((1 << MMAP_RND_COMPAT_BITS) - 1)) * PAGE_SIZE
}

/// The load bias of an i386 PIE with an interpreter (as [`super::load::pie_bias`], from the ia32
/// base).
pub fn pie_bias(extent: &Extent, rnd: u64) -> u64 {
    let base = (ELF_ET_DYN_BASE + rnd) & !(extent.align - 1);
    page_start(base.wrapping_sub(extent.first_start))
}

/// The main program's placement, as [`Placement::of_program`] with the ia32 base: ET_EXEC at
/// its addresses, a PIE with an interpreter at ELF_ET_DYN_BASE plus `rnd`, a static-pie in the
/// compat mmap area; `base` (--base) puts a position-independent program's first page there.
pub fn placement(
    relocatable: bool,
    has_interpreter: bool,
    base: Option<u64>,
    extent: &Extent,
    rnd: u64,
) -> Result<Placement, &'static str> {
    match (relocatable, base, has_interpreter) {
        (true, None, true) => Ok(Placement::Bias(pie_bias(extent, rnd))),
        _ => Placement::of_program(relocatable, has_interpreter, base, extent, rnd),
    }
}

/// Whether the image, placed by `placement`, ends at or below the compat TASK_SIZE, as the
/// kernel's mappings must: past it a compat exec fails after its point of no return (the
/// process is killed), where a 64-bit mmap from the preloader would succeed. A position-
/// independent image's first segment is mapped for the whole span (total_mapping_size, from the
/// lowest PT_LOAD) from its own address; an ET_EXEC's segments each at their own. A placement
/// left to mmap is checked by the compat mmap itself.
pub fn fits(placement: Placement, extent: &Extent) -> bool {
    let end = match placement {
        Placement::Fixed => Some(page_align(extent.end_bss)),
        Placement::Bias(bias) => bias.wrapping_add(extent.first_start).checked_add(page_align(extent.total_size)),
        Placement::Anywhere { .. } => return true,
    };
    end.is_some_and(|end| end <= STACK_TOP)
}

/// start_brk of an i386 program, as [`super::load::start_brk`] with the ia32 ELF_ET_DYN_BASE
/// (for a static-pie) and the 32 MiB compat randomisation.
pub fn start_brk(elf_brk: u64, static_pie: bool, randomize: bool, random: u64) -> u64 {
    super::load::start_brk_with(ELF_ET_DYN_BASE, BRK_RND_RANGE, elf_brk, static_pie, randomize, random)
}

/// The end of the `[stack]` mapping of a compat exec: randomize_stack_top takes up to 0x7ff
/// pages (the low 11 bits of `random`), then setup_arg_pages' arch_align_stack takes a further
/// 0-8191 bytes (the next 13 bits), aligns down to 16 and up to a page, so the end can drop by
/// one more page, or two.
pub fn stack_top(randomize: bool, random: u64) -> u64 {
    if !randomize {
        return page_align(STACK_TOP);
    }
    let top = page_align(STACK_TOP) - (random & STACK_RND_MASK) * PAGE_SIZE;
    page_align((top - (random >> 11) % 8192) & !0xf)
}

/// `mm->mmap_compat_base` (arch_pick_mmap_layout, mmap_base): the top of the area a compat
/// mmap without a fixed address allocates from, top-down, with RLIMIT_STACK `stack_limit`.
/// The kernel computes it at every exec, a 64-bit one too, so a 32-bit program entered from
/// the 64-bit preloader gets a compat mmap area all the same; `None` for an unlimited stack
/// (the legacy bottom-up layout).
pub fn mmap_compat_base(stack_limit: u64, randomize: bool, random: u64) -> Option<u64> {
    if stack_limit == u64::MAX {
        return None;
    }
    let pad = STACK_GUARD_GAP + if randomize { STACK_RND_MASK * PAGE_SIZE } else { 0 };
    let gap = stack_limit.saturating_add(pad).clamp(GAP_MIN, STACK_TOP / 6 * 5);
    let rnd = if randomize { mmap_rnd(random) } else { 0 };
    Some(page_align(STACK_TOP - gap - rnd))
}

/// Whether a mapping so named in /proc/self/maps is the vDSO's: [vvar], [vvar_vclock] (since
/// 6.13) or [vdso]. (A function, not a table of names: the preloader keeps no statics with
/// pointers, which would need relocating in its read-only load.)
pub fn is_vdso_mapping(name: &[u8]) -> bool {
    matches!(name, b"[vvar]" | b"[vvar_vclock]" | b"[vdso]")
}

/// The span from the lowest to the highest mapping of `maps` (the text of /proc/self/maps) whose
/// name is `wanted`, and the start of the first one named `marker`; `None` without a `marker`.
pub fn span_of(maps: &[u8], wanted: impl Fn(&[u8]) -> bool, marker: &[u8]) -> Option<(Range, u64)> {
    // One pass: /proc/self/maps may have thousands of lines (a program of 2048 PT_LOADs).
    let (mut span, mut marked) = (None::<Range>, None);
    for (mapping, name) in mappings(maps) {
        if wanted(name) {
            span = Some(span.map_or(mapping, |s| Range::new(s.start.min(mapping.start), s.end.max(mapping.end))));
        }
        if name == marker && marked.is_none() {
            marked = Some(mapping.start);
        }
    }
    Some((span?, marked?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::Image;
    use crate::elf::tests::load;
    use goblin::elf64::program_header::{PF_R, PF_X};

    #[test]
    fn an_image_must_end_below_the_compat_task_size() {
        let phdrs = [load(0, 0, 0x3a4, 0x3a4, PF_R), load(0x1000, 0x1000, 0x200, 0xc000_0000, PF_R)];
        let huge = Extent::of(&Image { relocatable: true, entry: 0x1040, phoff: 52, phdrs: &phdrs });
        assert!(!fits(Placement::Bias(ELF_ET_DYN_BASE), &huge), "3 GiB of bss from 0x56555000");
        assert!(fits(Placement::Bias(0x1000_0000), &huge), "the same from 0x10000000");
        assert!(fits(Placement::Anywhere { align: PAGE_SIZE }, &huge), "left to the compat mmap");
        let phdrs = [load(0xffff_d000, 0, 0x1000, 0x1000, PF_R)];
        let top = Extent::of(&Image { relocatable: false, entry: 0, phoff: 52, phdrs: &phdrs });
        assert!(fits(Placement::Fixed, &top), "the last page below TASK_SIZE");
        assert!(!fits(Placement::Bias(0x1000), &top), "one page further");
        // An ET_EXEC with an empty PT_LOAD at 0 after its first (mutant 5956 of seed 74): its span
        // from 0 is not mapped from its first segment's address.
        let phdrs = [load(0x0804_8000, 0, 0x208, 0x208, PF_R), load(0x080c_9000, 0x1000, 0x10, 0xf7da_c000, PF_R)];
        let empty_at_0 = [phdrs[0], phdrs[1], load(0, 0, 0, 0, PF_R)];
        let exec = Extent::of(&Image { relocatable: false, entry: 0, phoff: 52, phdrs: &empty_at_0 });
        assert!(fits(Placement::Fixed, &exec), "ends at 0xffe75000");
    }

    #[test]
    fn a_pie_goes_to_the_ia32_dyn_base() {
        let phdrs = [load(0, 0, 0x3a4, 0x3a4, PF_R), load(0x1000, 0x1000, 0x200, 0x200, PF_R | PF_X)];
        let extent = Extent::of(&Image { relocatable: true, entry: 0x1040, phoff: 52, phdrs: &phdrs });
        assert_eq!(placement(true, true, None, &extent, 0), Ok(Placement::Bias(0x5655_5000)));
        assert_eq!(placement(true, true, None, &extent, mmap_rnd(0x1234_5678)), Ok(Placement::Bias(0x565c_d000)));
        assert_eq!(mmap_rnd(u64::MAX), 0xff_000, "8 bits of pages: at most 1 MiB - 4 KiB");
        assert_eq!(placement(false, true, None, &extent, 0), Ok(Placement::Fixed));
        assert_eq!(placement(true, false, None, &extent, 0), Ok(Placement::Anywhere { align: PAGE_SIZE }));
        assert_eq!(placement(true, true, Some(0x1000_0000), &extent, 0), Ok(Placement::Bias(0x1000_0000)));
        assert!(placement(false, false, Some(0x1000_0000), &extent, 0).is_err());
        let aligned = [load(0x1000, 0x1000, 0x10, 0x10, PF_R)].map(|mut ph| {
            ph.p_align = 0x20_0000;
            ph
        });
        let extent = Extent::of(&Image { relocatable: true, entry: 0, phoff: 52, phdrs: &aligned });
        assert_eq!(
            pie_bias(&extent, 0xff_000),
            0x5660_0000 - 0x1000,
            "aligned down to p_align, then moved by the first vaddr"
        );
    }

    #[test]
    fn brk_follows_the_bss_or_the_ia32_dyn_base_with_32_mib_of_randomness() {
        assert_eq!(start_brk(0x804_c123, false, false, 7), 0x804_d000);
        assert_eq!(start_brk(0x804_c123, false, true, 0), 0x804_e000, "one page of gap");
        assert_eq!(start_brk(0x804_c123, false, true, u64::MAX), 0x804_e000 + (8191 << 12));
        assert_eq!(start_brk(0xf7f0_0000, true, false, 0), 0x5655_5000, "a static-pie's heap");
        assert_eq!(start_brk(0xf7f0_0000, true, true, 8192 + 3), 0x5655_8000);
    }

    #[test]
    fn the_stack_and_mmap_area_end_below_4_gib() {
        assert_eq!(stack_top(false, u64::MAX), 0xffff_e000);
        assert_eq!(stack_top(true, 0), 0xffff_e000);
        assert_eq!(stack_top(true, 0x7ff), 0xff7f_f000, "8 MiB - 4 KiB of pages");
        assert_eq!(stack_top(true, 8176 << 11 | 0x7ff), 0xff7f_e000, "one more page by the alignment gap");
        assert_eq!(stack_top(true, u64::MAX), 0xff7f_d000, "two when it is 8177-8191, aligned to 16 first");
        assert_eq!(stack_top(true, 4096 << 11), 0xffff_d000, "a gap of 4096 bytes drops a page");
        assert_eq!(stack_top(true, 4095 << 11), 0xffff_d000, "as does 4095, aligned to 16 first");
        assert_eq!(stack_top(true, 4080 << 11), 0xffff_e000);
        // With the default 8 MiB stack limit the gap is its minimum, 128 MiB.
        assert_eq!(mmap_compat_base(8 << 20, false, 0), Some(0xf7ff_e000));
        assert_eq!(mmap_compat_base(8 << 20, true, 0xff), Some(0xf7ef_f000));
        assert_eq!(mmap_compat_base(1 << 30, false, 0), Some(0xbfef_e000), "a 1 GiB limit: gap 1 GiB + guard");
        assert_eq!(mmap_compat_base(u64::MAX - 1, false, 0), Some(0x2aaa_b000), "at most 5/6 of the space");
        assert_eq!(mmap_compat_base(u64::MAX, true, 0), None);
    }

    #[test]
    fn finds_the_vdso_span_by_name() {
        let maps = b"08048000-08049000 r--p 00000000 fe:00 1 /tmp/p\n\
f7efc000-f7f00000 r--p 00000000 00:00 0                                  [vvar]\n\
f7f00000-f7f02000 r--p 00000000 00:00 0                                  [vvar_vclock]\n\
f7f02000-f7f04000 r-xp 00000000 00:00 0                                  [vdso]\n\
ffb29000-ffb4a000 rw-p 00000000 00:00 0                                  [stack]\n";
        let vdso = Some((Range::new(0xf7ef_c000, 0xf7f0_4000), 0xf7f0_2000));
        assert_eq!(span_of(maps, is_vdso_mapping, b"[vdso]"), vdso);
        let stack = Some((Range::new(0xffb2_9000, 0xffb4_a000), 0xffb2_9000));
        assert_eq!(span_of(maps, |name| name == b"[stack]", b"[stack]"), stack);
        assert_eq!(span_of(maps, |name| name == b"[heap]", b"[heap]"), None);
        let without_vdso = b"f7efc000-f7f00000 r--p 00000000 00:00 0   [vvar]\n";
        assert_eq!(span_of(without_vdso, is_vdso_mapping, b"[vdso]"), None, "no [vdso], no span");
        assert_eq!(span_of(b"", is_vdso_mapping, b"[vdso]"), None);
        assert!(!is_vdso_mapping(b"[vsyscall]") && !is_vdso_mapping(b"/lib/vdso"));
    }
}
