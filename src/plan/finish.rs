//! The final operations ("stage 2"): what is left to do once the preloader has stepped aside.
//!
//! Stage 1 (the preloader) finds, checks and plans everything, builds the stack image, and
//! records the rest as a short list of [`Op`]s: raw system calls with their six arguments and
//! what to do with a failure, plus one pseudo-operation that zeroes bytes (a segment's partial
//! bss page). A small position-independent stub (`arch::stage2` in the binary) runs the list
//! after the preloader's own image is gone: it unmaps that image, maps the interpreter (or a
//! static-pie) at the top of the mmap area where the kernel would have put it, maps the vDSO
//! below it (`ARCH_MAP_VDSO_64`, where the kernel maps it for a program on 6.11+), sets the mm
//! fields and exe with one `PR_SET_MM_MAP`, drops the capabilities of the preloader's file,
//! closes the preloader's descriptors, then jumps. It first copies the stack image to its place
//! and the hand-off's head (the header, the ops and what they point to) onto the stack below it
//! ([`scratch_below`]), so that the hand-off goes in the same munmap as the preloader's image.
//! Everything the stub reads is in the [`Header`] it is handed, and in memory the ops point to;
//! it has no data of its own and no relocations.
//!
//! After the preloader is gone a failure cannot be reported through the normal path: the stub
//! writes the message stage 1 prepared ([`failure_message`]) and exits with 127, as the kernel
//! kills a process that fails after its point of no return.

use goblin::elf64::program_header::{PT_LOAD, ProgramHeader};

use crate::plan::load::Segment;
use crate::report::msg::Msg;
use crate::{PAGE_SIZE, page_align};

pub const SYS_WRITE: u64 = 1;
pub const SYS_CLOSE: u64 = 3;
pub const SYS_MMAP: u64 = 9;
pub const SYS_MUNMAP: u64 = 11;
pub const SYS_CAPSET: u64 = 126;
pub const SYS_PRCTL: u64 = 157;
pub const SYS_ARCH_PRCTL: u64 = 158;

pub const PR_SET_DUMPABLE: u64 = 4;
pub const PR_SET_MM: u64 = 35;
pub const PR_SET_MM_MAP: u64 = 14;
/// arch_prctl: map the 64-bit vDSO (and its vvar pages) at a hint; only while none is mapped
/// (EEXIST otherwise). Needs CONFIG_CHECKPOINT_RESTORE, as PR_SET_MM_MAP does.
pub const ARCH_MAP_VDSO_64: u64 = 0x2003;

pub const PROT_READ: u64 = 1;
pub const PROT_WRITE: u64 = 2;
pub const PROT_EXEC: u64 = 4;
pub const MAP_PRIVATE: u64 = 0x02;
pub const MAP_FIXED: u64 = 0x10;
pub const MAP_ANONYMOUS: u64 = 0x20;
pub const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;

/// x86_64 TASK_SIZE with 4-level paging: the end of the user address space.
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// Flags of an [`Op`]: how many ops to skip after a success (bits 0-7) or a failure (bits
/// 8-15), whether a failure ends the process (after the prepared message, status 127), and the
/// zeroing pseudo-op.
pub const SKIP_ON_OK_SHIFT: u32 = 0;
pub const SKIP_ON_ERR_SHIFT: u32 = 8;
pub const FATAL: u64 = 1 << 16;
pub const ZERO: u64 = 1 << 17;

/// One final operation, 64 bytes: `syscall(nr, args...)`, or with [`ZERO`], zero `args[1]`
/// bytes at `args[0]`. A result in -4095..=-1 is a failure.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Op {
    pub nr: u64,
    pub args: [u64; 6],
    pub flags: u64,
}

impl Op {
    /// A system call whose failure is fatal.
    pub const fn syscall(nr: u64, args: [u64; 6]) -> Self {
        Self { nr, args, flags: FATAL }
    }

    /// Zero `len` bytes at `addr` (never fails).
    pub const fn zero(addr: u64, len: u64) -> Self {
        Self { nr: 0, args: [addr, len, 0, 0, 0, 0], flags: ZERO }
    }

    /// A failure is ignored (the next op follows).
    pub const fn tolerant(mut self) -> Self {
        self.flags &= !FATAL;
        self
    }

    /// After a success, skip the next `n` ops.
    pub const fn on_ok_skip(mut self, n: u8) -> Self {
        self.flags |= (n as u64) << SKIP_ON_OK_SHIFT;
        self
    }

    /// After a (tolerated) failure, skip the next `n` ops.
    pub const fn on_err_skip(mut self, n: u8) -> Self {
        self.flags = (self.flags & !FATAL) | (n as u64) << SKIP_ON_ERR_SHIFT;
        self
    }

    pub const fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> Self {
        Self::syscall(SYS_MMAP, [addr, len, prot, flags, fd, offset])
    }

    pub const fn munmap(addr: u64, len: u64) -> Self {
        Self::syscall(SYS_MUNMAP, [addr, len, 0, 0, 0, 0])
    }

    pub const fn close(fd: u64) -> Self {
        Self::syscall(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]).tolerant()
    }

    pub const fn write(fd: u64, buf: u64, len: u64) -> Self {
        Self::syscall(SYS_WRITE, [fd, buf, len, 0, 0, 0]).tolerant()
    }

    /// `prctl(PR_SET_MM, PR_SET_MM_MAP, map, size, 0)`.
    pub const fn set_mm_map(map: u64, size: u64) -> Self {
        Self::syscall(SYS_PRCTL, [PR_SET_MM, PR_SET_MM_MAP, map, size, 0, 0])
    }

    /// `arch_prctl(ARCH_MAP_VDSO_64, addr)`: the vDSO block where the kernel's get_unmapped_area
    /// puts it with `addr` as the hint.
    pub const fn map_vdso(addr: u64) -> Self {
        Self::syscall(SYS_ARCH_PRCTL, [ARCH_MAP_VDSO_64, addr, 0, 0, 0, 0])
    }
}

/// What the stub is handed (a pointer to it in rdi, at the start of the hand-off): the stack
/// image to copy to `sp`, the `scratch_len` bytes from the header on to copy to `scratch` (where
/// `ops` and `message` point, as does every op that points into the hand-off's head), and the
/// entry point. Field order is the stub's ABI.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub ops: u64,
    pub nops: u64,
    pub message: u64,
    pub message_len: u64,
    pub image: u64,
    pub image_len: u64,
    pub sp: u64,
    pub scratch: u64,
    pub scratch_len: u64,
    pub entry: u64,
    /// 0: the program is entered in 64-bit mode (a near return); else the code segment of a far
    /// jump to it, [`USER32_CS`] for an i386 program.
    pub code_segment: u64,
}

/// Bytes kept free between the scratch copy and `sp`: the stub pushes the entry point and the
/// flags there, and uses the slot below them for MXCSR.
pub const SCRATCH_MARGIN: u64 = 256;

/// Where the stub copies the hand-off's first `len` bytes: on the stack below the program's
/// stack pointer `sp` (pages the preloader's own frames have touched), 16-aligned, clear of the
/// image above and of what the stub pushes before the jump.
pub const fn scratch_below(sp: u64, len: u64) -> u64 {
    (sp - SCRATCH_MARGIN - len) & !15
}

/// __USER32_CS: the 32-bit user code segment of x86_64 Linux, where an i386 program runs.
pub const USER32_CS: u64 = 0x23;
/// __USER_DS, which is also __USER32_DS: an i386 program's ds and es (and ss, as for 64-bit).
pub const USER_DS: u64 = 0x2b;

/// Ops written into caller-provided storage (the hand-off mapping). Ops past its end are
/// dropped and the list remembers it ([`OpList::overflowed`]): one check at the end instead of
/// one at every push.
pub struct OpList<'a> {
    ops: &'a mut [Op],
    len: usize,
    overflowed: bool,
}

impl<'a> OpList<'a> {
    pub fn new(ops: &'a mut [Op]) -> Self {
        Self { ops, len: 0, overflowed: false }
    }

    // Not inlined: each op is built once, in the caller's frame, instead of in every slot.
    #[inline(never)]
    pub fn push(&mut self, op: Op) {
        match self.ops.get_mut(self.len) {
            Some(slot) => {
                *slot = op;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    /// More ops were pushed than fit: the list is incomplete and must not run.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[Op] {
        &self.ops[..self.len]
    }
}

/// The mmap protection bits for a segment's PF_R (4), PF_W (2) and PF_X (1).
pub const fn prot(flags: u32) -> u64 {
    ((flags & 4 != 0) as u64 * PROT_READ)
        | ((flags & 2 != 0) as u64 * PROT_WRITE)
        | ((flags & 1 != 0) as u64 * PROT_EXEC)
}

/// Whether the PT_LOADs of `phdrs` follow each other without a hole, each with file pages,
/// from the first to the end of the `total` span: then mapping each where nothing is
/// (MAP_FIXED_NOREPLACE) gives what the kernel's reservation of the span, unmap of its tail and
/// MAP_FIXED give, with one system call fewer.
pub fn back_to_back(phdrs: &[ProgramHeader], total: u64) -> bool {
    let mut next = None;
    let mut first = 0;
    for seg in phdrs.iter().filter(|ph| ph.p_type == PT_LOAD).map(Segment::of) {
        if next.is_some_and(|next| next != seg.start) || seg.file_len == 0 {
            return false;
        }
        if next.is_none() {
            first = seg.start;
        }
        next = Some(seg.anon.map_or(seg.start + seg.file_len, |(_, end)| end));
    }
    next == Some(first + page_align(total))
}

/// The ops that map the PT_LOADs of `phdrs` from descriptor `fd` at `bias`, as `elf_load`
/// does: the first segment reserves the whole `total` span (MAP_FIXED_NOREPLACE: nothing may
/// be there), the rest of the span is unmapped again (holes stay unmapped), later segments go
/// over it with MAP_FIXED, each partial bss page of a writable segment is zeroed and the rest
/// of the bss is anonymous read-write (+exec) memory. When the segments follow each other
/// without a hole ([`back_to_back`]), each is mapped with MAP_FIXED_NOREPLACE on its own.
pub fn map_segments(phdrs: &[ProgramHeader], bias: u64, total: u64, fd: u64, ops: &mut OpList) {
    let contiguous = back_to_back(phdrs, total);
    let fixed = if contiguous { MAP_FIXED_NOREPLACE } else { MAP_FIXED };
    let total = page_align(total);
    for (index, seg) in phdrs.iter().filter(|ph| ph.p_type == PT_LOAD).map(Segment::of).enumerate() {
        let addr = bias.wrapping_add(seg.start);
        let first = index == 0 && !contiguous;
        let len = if first { total } else { seg.file_len };
        let flags = MAP_PRIVATE | if first { MAP_FIXED_NOREPLACE } else { fixed };
        if first && seg.file_len == 0 {
            ops.push(Op::mmap(addr, len, 0, flags | MAP_ANONYMOUS, !0, 0));
        } else if len > 0 {
            ops.push(Op::mmap(addr, len, prot(seg.flags), flags, fd, seg.offset));
        }
        if len > seg.file_len {
            ops.push(Op::munmap(addr + seg.file_len, len - seg.file_len));
        }
        if let Some((start, end)) = seg.zero {
            ops.push(Op::zero(bias.wrapping_add(start), end - start));
        }
        if let Some((start, end)) = seg.anon {
            let exec = if seg.flags & 1 != 0 { PROT_EXEC } else { 0 };
            let flags = MAP_PRIVATE | MAP_ANONYMOUS | fixed;
            ops.push(Op::mmap(bias.wrapping_add(start), end - start, PROT_READ | PROT_WRITE | exec, flags, !0, 0));
        }
    }
}

/// Where the kernel maps an interpreter or a static-pie of `size` bytes when the top of the
/// mmap area (mmap_base) is `top`: the highest free range below it (get_unmapped_area with a
/// hint of 0, top-down), aligned down to `align` (a static-pie's largest p_align); `None` when
/// it is larger than all that lies below `top`.
pub fn item_start(top: u64, size: u64, align: u64) -> Option<u64> {
    Some(top.checked_sub(page_align(size))? & !(align.max(PAGE_SIZE) - 1))
}

/// Where the kernel (6.11 and later) maps the vDSO block ([vvar], [vvar_vclock], [vdso]) of
/// `len` bytes after the program and its interpreter: get_unmapped_area(0), the highest gap
/// below `top` that fits: above the image placed at the top (`item`, start and end), else in the
/// highest hole between its segments (`loads` at `bias`: a 2 MiB-aligned static-pie has holes
/// of megabytes, which the kernel's exec leaves unmapped), else below it.
pub fn vdso_block_start(top: u64, item: Option<(u64, u64)>, phdrs: &[ProgramHeader], bias: u64, len: u64) -> u64 {
    match item {
        Some((_, end)) if top - end >= len => top - len,
        Some((start, _)) => highest_hole_end(phdrs, bias, len).map_or(start - len, |end| end - len),
        None => top - len,
    }
}

/// The end of the highest unmapped range of at least `len` bytes between the PT_LOADs of
/// `phdrs` at `bias`, in whatever order the table lists them: from the end of a segment that no
/// other covers up to the lowest start of a segment above it.
fn highest_hole_end(phdrs: &[ProgramHeader], bias: u64, len: u64) -> Option<u64> {
    let span = |ph: &ProgramHeader| {
        let start = bias.wrapping_add(ph.p_vaddr);
        (start & !(PAGE_SIZE - 1), page_align(start.wrapping_add(ph.p_memsz)))
    };
    // A PT_LOAD of no bytes maps nothing.
    let spans = || phdrs.iter().filter(|ph| ph.p_type == PT_LOAD && ph.p_memsz > 0).map(span);
    let mut highest = None;
    for (_, end) in spans() {
        if spans().any(|(start, stop)| start <= end && end < stop) {
            continue;
        }
        let next = spans().map(|(start, _)| start).filter(|&start| start > end).min();
        if let Some(next) = next.filter(|&next| next - end >= len) {
            highest = highest.max(Some(next));
        }
    }
    highest
}

/// Where the kernel put the vDSO for the preloader, and so what to do with it for the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vdso {
    /// No vDSO (vdso=0), or above the stack, where kernels before 6.11 map it (vdso_addr());
    /// they put it there for the program too, so it stays.
    Stays,
    /// In the mmap area right below the preloader, as kernels since 6.11 map it: the block
    /// ([vvar] pages, then the vDSO text at `text`, AT_SYSINFO_EHDR) is [start, end).
    Below { start: u64, text: u64, end: u64 },
    /// Anywhere else: the layout is not the one these rules describe; nothing is moved.
    Unknown,
}

/// The most the vvar pages and the vDSO text are taken to span (they are 8 pages on 6.18).
pub const MAX_VDSO_BLOCK: u64 = 64 * PAGE_SIZE;

impl Vdso {
    /// Tell the layout at run time, not from the version: `text` is AT_SYSINFO_EHDR (0 without
    /// a vDSO), `preloader` the start of the preloader's own image, `probe_end` the end of the
    /// first mapping the preloader made with a hint of 0 (get_unmapped_area put it right below
    /// whatever the kernel mapped last: the vvar pages, or the preloader itself when the vDSO
    /// is elsewhere), `stack_top` the end of [stack].
    pub fn locate(text: u64, preloader: u64, probe_end: u64, stack_top: u64) -> Self {
        if text == 0 || text >= stack_top {
            return Self::Stays;
        }
        if probe_end <= text && text < preloader && preloader - probe_end <= MAX_VDSO_BLOCK {
            return Self::Below { start: probe_end, text, end: preloader };
        }
        Self::Unknown
    }
}

/// Where the stub page (and the hand-off below it) goes: `len` bytes where no later mapping of
/// the program can come next to them. Above [stack] (at the very end of the user address
/// space) when there is room for them and a free page between; otherwise (the stack at the
/// unrandomised top: `setarch -R`) in the middle of the gap the kernel keeps between the
/// stack's room (RLIMIT_STACK) and the mmap area, which top-down mmap never reaches. None if
/// neither has room.
pub fn stub_zone(stack_top: u64, stack_limit: u64, mmap_top: u64, len: u64) -> Option<u64> {
    let len = page_align(len);
    if stack_top.checked_add(len + PAGE_SIZE).is_some_and(|end| end <= TASK_SIZE) {
        return Some(TASK_SIZE - len);
    }
    // The lowest the stack may grow, and the guard gap below it (stack_guard_gap: 1 MiB).
    let stack_low = stack_top.saturating_sub(stack_limit.min(stack_top)).saturating_sub(1 << 20);
    if stack_low <= mmap_top || stack_low - mmap_top < len + 4 * PAGE_SIZE {
        return None;
    }
    let middle = mmap_top + (stack_low - mmap_top) / 2;
    Some(middle & !(PAGE_SIZE - 1))
}

/// The failure message stage 2 writes before exiting with 127: `preload: NAME: ` and the reason.
pub const FAILURE_REASON: &str = "the exec could not be finished after the preloader had stepped aside (mapping the image, the vDSO or the mm fields failed)\n";

/// Writes `preload: NAME: reason\n` into `out`, cut to fit, NAME escaped ([`Msg::escaped`]);
/// returns the length.
pub fn failure_message(name: &[u8], out: &mut [u8]) -> usize {
    let mut escaped = Msg::<1024>::new();
    escaped.escaped(name);
    let mut len = 0;
    for part in [b"preload: ".as_slice(), escaped.as_bytes(), b": ", FAILURE_REASON.as_bytes()] {
        let take = part.len().min(out.len() - len);
        out[len..len + take].copy_from_slice(&part[..take]);
        len += take;
    }
    if len == out.len() && len > 0 {
        out[len - 1] = b'\n';
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::load;

    #[test]
    fn op_and_header_have_the_stubs_layout() {
        assert_eq!(core::mem::size_of::<Op>(), 64);
        assert_eq!(core::mem::size_of::<Header>(), 88);
        // The offsets arch/stage2.rs reads.
        assert_eq!(core::mem::offset_of!(Header, entry), 72);
        assert_eq!(core::mem::offset_of!(Header, code_segment), 80);
        let op = Op::write(2, 0x1000, 5).on_ok_skip(2).on_err_skip(1);
        assert_eq!(op.flags, 2 | 1 << 8);
        assert_eq!(Op::munmap(1, 2).flags, FATAL);
        assert_eq!(Op::zero(1, 2).flags, ZERO);
    }

    #[test]
    fn the_scratch_lies_below_the_stack_pointer_and_what_the_stub_pushes() {
        let sp = 0x7ffc_1234_5678;
        let at = scratch_below(sp, 0x2000);
        assert_eq!(at % 16, 0);
        assert!(at + 0x2000 + SCRATCH_MARGIN <= sp, "{at:#x}");
        assert!(sp - at < 0x2000 + SCRATCH_MARGIN + 16, "{at:#x}");
    }

    #[test]
    fn contiguous_segments_are_mapped_one_by_one_without_a_reservation() {
        // ld.so: r--, r-x, r--, rw- back to back.
        let phdrs = [
            load(0, 0, 0x1000, 0x1000, 4),
            load(0x1000, 0x1000, 0x26000, 0x26000, 5),
            load(0x27000, 0x27000, 0xa000, 0xa000, 4),
            load(0x31000, 0x31000, 0x4000, 0x4000, 6),
        ];
        assert!(back_to_back(&phdrs, 0x35000));
        let mut storage = [Op::default(); 16];
        let mut ops = OpList::new(&mut storage);
        map_segments(&phdrs, 0x7f00_0000_0000, 0x35000, 4, &mut ops);
        assert_eq!(ops.len(), 4);
        assert_eq!(
            ops.as_slice()[1],
            Op::mmap(0x7f00_0000_1000, 0x26000, 5, MAP_PRIVATE | MAP_FIXED_NOREPLACE, 4, 0x1000)
        );
    }

    #[test]
    fn a_hole_makes_the_kernels_reservation_and_unmap() {
        let phdrs = [load(0, 0, 0x1000, 0x1000, 5), load(0x10000, 0x1000, 0x800, 0x3000, 6)];
        assert!(!back_to_back(&phdrs, 0x13000));
        let mut storage = [Op::default(); 16];
        let mut ops = OpList::new(&mut storage);
        map_segments(&phdrs, 0x1000_0000, 0x13000, 3, &mut ops);
        let ops = ops.as_slice();
        assert_eq!(ops[0], Op::mmap(0x1000_0000, 0x13000, 5, MAP_PRIVATE | MAP_FIXED_NOREPLACE, 3, 0));
        assert_eq!(ops[1], Op::munmap(0x1000_1000, 0x12000));
        assert_eq!(ops[2], Op::mmap(0x1001_0000, 0x1000, 3, MAP_PRIVATE | MAP_FIXED, 3, 0x1000));
        assert_eq!(ops[3], Op::zero(0x1001_0800, 0x800));
        assert_eq!(ops[4].args[..4], [0x1001_1000, 0x2000, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED]);
        assert_eq!(ops.len(), 5);
    }

    #[test]
    fn a_full_list_says_so() {
        let mut storage = [Op::default(); 1];
        let mut ops = OpList::new(&mut storage);
        ops.push(Op::close(3));
        assert!(!ops.overflowed());
        ops.push(Op::close(4));
        assert!(ops.overflowed());
        assert_eq!(ops.len(), 1);
    }

    #[test]
    fn items_go_to_the_top_of_the_mmap_area() {
        assert_eq!(item_start(0x7fff_f7ff_f000, 0x34123, PAGE_SIZE), Some(0x7fff_f7fc_a000));
        assert_eq!(item_start(0x7fff_f7ff_f000, 0x1000, 0x20_0000), Some(0x7fff_f7e0_0000));
        // A span of nearly the whole address space (mutant 4900 of seed 20, memsz 0x7ffff7ffe000).
        assert_eq!(item_start(0x7fff_f7ff_f000, 0x7fff_f800_6000, PAGE_SIZE), None);
    }

    #[test]
    fn the_vdso_goes_below_the_item_or_into_the_gap_above_it() {
        let top = 0x7fff_f7ff_f000;
        let none = || &[][..];
        assert_eq!(vdso_block_start(top, Some((0x7fff_f7fc_a000, top)), none(), 0, 0x8000), 0x7fff_f7fc_2000);
        assert_eq!(vdso_block_start(top, Some((0x7fff_f7e0_0000, 0x7fff_f7e0_1000)), none(), 0, 0x8000), top - 0x8000);
        assert_eq!(vdso_block_start(top, None, none(), 0, 0x8000), top - 0x8000);
        // A 2 MiB-aligned static-pie at the top with less than the block above it (measured on
        // 6.18): the block goes into the highest hole between its segments that fits, at its top.
        let load = |vaddr: u64, memsz: u64| ProgramHeader {
            p_type: PT_LOAD,
            p_vaddr: vaddr,
            p_memsz: memsz,
            ..Default::default()
        };
        let loads = [load(0, 0x9000), load(0x20_0000, 0x7_9000), load(0x40_0000, 0x2_a000), load(0x7f_c000, 0xc000)];
        let bias = 0x7fa1_4160_0000;
        let item = Some((bias, bias + 0x80_8000));
        assert_eq!(vdso_block_start(bias + 0x80_d000, item, &loads, bias, 0x8000), 0x7fa1_41df_4000);
        // The same PT_LOADs out of order (mutant 965 of seed 1592651789, which crashed when the
        // holes were taken between neighbours in the table): the holes are the same.
        let shuffled = [loads[0], loads[2], loads[3], loads[1]];
        assert_eq!(vdso_block_start(bias + 0x80_d000, item, &shuffled, bias, 0x8000), 0x7fa1_41df_4000);
        // A PT_LOAD of no bytes inside the hole does not split it.
        let with_empty = [loads[0], loads[1], loads[2], load(0x7f_8010, 0), loads[3]];
        assert_eq!(vdso_block_start(bias + 0x80_d000, item, &with_empty, bias, 0x8000), 0x7fa1_41df_4000);
        let measured = [load(0, 0x9000), load(0x9_5000, 0x2_d000), load(0xc_2000, 0xc000), load(0x9000, 0x8_c000)];
        let item = Some((bias, bias + 0xce000));
        assert_eq!(vdso_block_start(bias + 0xd0000, item, &measured, bias, 0x8000), bias - 0x8000, "no hole");
        // No hole that fits: below the image.
        let tight = [load(0, 0x9000), load(0xa000, 0x5000)];
        assert_eq!(vdso_block_start(bias + 0x10_000, Some((bias, bias + 0xf000)), &tight, bias, 0x8000), bias - 0x8000);
    }

    #[test]
    fn the_vdso_layout_is_told_from_addresses() {
        let stack_top = 0x7fff_ffff_f000;
        // 6.18: [vvar][vvar_vclock][vdso] right below the preloader, the probe right below.
        assert_eq!(
            Vdso::locate(0x7fff_f7fe_c000, 0x7fff_f7fe_e000, 0x7fff_f7fe_6000, stack_top),
            Vdso::Below { start: 0x7fff_f7fe_6000, text: 0x7fff_f7fe_c000, end: 0x7fff_f7fe_e000 }
        );
        // 6.1: above the stack.
        assert_eq!(
            Vdso::locate(0x7fff_ffff_f000 + 0x1000, 0x7fff_f7fe_e000, 0x7fff_f7fe_d000, 0x7ffc_0000_0000),
            Vdso::Stays
        );
        assert_eq!(Vdso::locate(0, 1, 0, stack_top), Vdso::Stays);
        // Something else mapped first: not the layout described.
        assert_eq!(Vdso::locate(0x7fff_f7fe_c000, 0x7fff_f7fe_e000, 0x7fff_f000_0000, stack_top), Vdso::Unknown);
    }

    #[test]
    fn the_stub_goes_above_the_stack_or_into_the_gap() {
        assert_eq!(stub_zone(0x7ffd_0000_0000, 8 << 20, 0x7ffc_0000_0000, 0x5000), Some(TASK_SIZE - 0x5000));
        // setarch -R: the stack ends at TASK_SIZE.
        let zone = stub_zone(TASK_SIZE, 8 << 20, 0x7fff_f7ff_f000, 0x5000).unwrap();
        assert!(zone > 0x7fff_f7ff_f000 && zone + 0x5000 < TASK_SIZE - (9 << 20), "{zone:#x}");
        assert_eq!(stub_zone(TASK_SIZE, u64::MAX, 0x7fff_f7ff_f000, 0x5000), None);
    }

    #[test]
    fn the_failure_message_names_the_program_and_fits() {
        let mut out = [0u8; 512];
        let len = failure_message(b"/bin/true", &mut out);
        let text = core::str::from_utf8(&out[..len]).unwrap();
        assert!(text.starts_with("preload: /bin/true: the exec could not be finished"), "{text}");
        assert!(text.ends_with('\n'));
        let mut small = [0u8; 16];
        assert_eq!(failure_message(b"/bin/true", &mut small), 16);
        assert_eq!(small[15], b'\n');
        let len = failure_message(b"a\x1b[2J\nb", &mut out);
        assert!(out[..len].starts_with(b"preload: a\\x1b[2J\\nb: "), "{:?}", &out[..len]);
    }
}
