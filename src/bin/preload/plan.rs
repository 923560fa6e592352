//! The third step, plan: the randomisation the kernel would apply, where the program goes, and
//! the ranges to keep free.

use preload::plan::Random;
use preload::plan::finish::{Vdso, item_start, stub_zone};
use preload::plan::load::{Extent, Placement, mmap_rnd};
use preload::plan::reserve::{Range, RangeList};
use preload::plan::stack::AT_SYSINFO_EHDR;
use preload::report::refusal::Refusal;
use preload::{PAGE_SIZE, page_start};
use rustix::io::Errno;

use crate::exec::{Request, Resolved};
use crate::load::Inspected;
use crate::report::Error;
use crate::sys::image;
use crate::sys::io::read_file;
use crate::sys::stage2::{self as sys_stage2, Handoff};

/// The x86_64 stack top without randomisation (STACK_TOP with 4-level paging). The kernel put the
/// preloader's own stack exactly there when it did not randomise (personality ADDR_NO_RANDOMIZE,
/// as `setarch -R` sets, or randomize_va_space=0), so the stack top alone tells, with no
/// personality(2) call.
const UNRANDOMIZED_STACK_TOP: u64 = 0x7fff_ffff_f000;

pub struct Plan {
    /// The end of the [stack] mapping, where the program's stack image ends.
    pub top: u64,
    pub randomize: bool,
    pub random: Random,
    pub placement: Placement,
    /// --reserve and PRELOAD_RESERVE (Wine's ranges are added when a Wine loader is mapped).
    pub reserved: RangeList,
    /// Where the randomness came from.
    pub random_source: RandomSource,
    pub stage2: Stage2,
}

/// Where a launch's random bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomSource {
    Getrandom,
    /// getrandom was refused (ENOSYS before Linux 3.17, or a seccomp filter): AT_RANDOM is the
    /// kernel's own for preload's exec, the offsets (when randomising) read from /dev/urandom.
    Fallback(Errno),
}

/// How the preloader steps aside (see `finish.rs`).
pub struct Stage2 {
    /// The top of the mmap area (mmap_base): the end of the preloader's image, which the kernel
    /// mapped there with a hint of 0.
    pub mmap_top: u64,
    /// The stub's page, mapped executable away from everything: the preloader's image is then
    /// unmapped by the stub. None: the stub runs in place, in the preloader's text, and the
    /// preloader's pages stay.
    pub stub: Option<u64>,
    /// Where the kernel put the vDSO for the preloader.
    pub vdso: Vdso,
    /// The interpreter (or a static-pie) is mapped by the stub at the top of the mmap area, and
    /// the vDSO below it where the kernel maps it for a program on this kernel.
    pub top: Option<Top>,
    /// The vDSO block can be unmapped with the preloader and mapped again where the kernel maps
    /// it for a program (6.11 and later: below the image at the top); `load` decides.
    pub move_vdso: bool,
    /// An i386 program is entered in 32-bit mode on a stack of its own below 4 GiB: the
    /// preloader's stack, which the stub then unmaps too (`ia32`).
    pub ia32_stack: Option<Range>,
}

/// The image mapped at the top of the mmap area by the stub: the interpreter, or a static-pie.
#[derive(Clone, Copy)]
pub enum Top {
    Interpreter,
    Program,
}

/// The most PT_LOADs an image at the top may have: the stub's op list has 64 entries, and each
/// segment takes up to three (file pages, partial bss page, anonymous bss).
const MAX_TOP_SEGMENTS: usize = 16;

pub fn plan<'b>(
    request: &Request,
    resolved: &Resolved<'b>,
    inspected: &Inspected,
    handoff: &Handoff,
) -> Result<Plan, Error<'b>> {
    let fail = |refusal| Error::at(resolved.exe_path, refusal);
    let top = request.stack.stack_top().ok_or(fail(Refusal::failure("no AT_EXECFN in the preloader's auxv")))?;
    let randomize = top != UNRANDOMIZED_STACK_TOP;
    let (random, random_source) = random_values(request, randomize).map_err(fail)?;
    let image = &inspected.image;
    let rnd = if randomize { mmap_rnd(random.mmap) } else { 0 };
    let has_interpreter = inspected.interpreter.is_some();
    let placement =
        Placement::of_program(image.relocatable, has_interpreter, request.options.base, &inspected.extent, rnd)
            .map_err(|reason| fail(Refusal::failure(reason)))?;
    let mut reserved = request.options.reserve;
    if let Some(list) = request.stack.getenv(b"PRELOAD_RESERVE") {
        reserved.extend_from_list(list).map_err(|reason| Error::at(b"PRELOAD_RESERVE", Refusal::failure(reason)))?;
    }
    let stage2 = stage2(request, resolved, inspected, handoff, top, placement);
    Ok(Plan { top, randomize, random, placement, reserved, random_source, stage2 })
}

/// Where the stub goes and what it maps: the stub's page is installed here (not for --dry-run).
fn stage2(
    request: &Request,
    resolved: &Resolved,
    inspected: &Inspected,
    handoff: &Handoff,
    stack_top: u64,
    placement: Placement,
) -> Stage2 {
    let own = image::span();
    let vdso = Vdso::locate(request.stack.aux(AT_SYSINFO_EHDR).unwrap_or(0), own.start, handoff.probe_end(), stack_top);
    let zone = stub_zone(stack_top, request.stack_limit, own.end, PAGE_SIZE);
    let stub = match request.options.dry_run {
        true => None,
        false => zone.and_then(|at| sys_stage2::install_stub(at).ok()),
    };
    // The image the kernel would put at the top of the mmap area (a relocatable interpreter, or
    // a static-pie), and whether the stub can map it there: from a file, with few segments.
    // It and the vDSO below it must fall inside the preloader's own span (linker.ld's room):
    // what the preloader maps meanwhile lies below that, out of their way.
    let vdso_len = match vdso {
        Vdso::Below { start, end, .. } => end - start,
        _ => 0,
    };
    // Its PT_LOADs in address order (out of order, the kernel maps the later ones below its
    // reservation), few of them, and where it goes at its alignment inside the span.
    let fits = |image: &preload::elf::Image, align| {
        let extent = Extent::of(image);
        let lowest = image.loads().map(|ph| page_start(ph.p_vaddr)).min();
        image.loads().count() <= MAX_TOP_SEGMENTS
            && lowest == Some(extent.first_start)
            && item_start(own.end, extent.total_size, align)
                .and_then(|start| start.checked_sub(vdso_len))
                .is_some_and(|low| low >= own.start)
    };
    let item = match &inspected.interpreter {
        Some(interp) if interp.image.relocatable => fits(&interp.image, PAGE_SIZE).then_some(Top::Interpreter),
        Some(_) => None,
        None => match placement {
            Placement::Anywhere { align } => {
                (!resolved.file.copy_segments() && fits(&inspected.image, align)).then_some(Top::Program)
            }
            _ => None,
        },
    };
    // The vDSO must then be where the kernel puts it for a program: left alone above the stack,
    // or mapped again (arch_prctl(ARCH_MAP_VDSO_64), whether it can is asked only here).
    let move_vdso = stub.is_some() && matches!(vdso, Vdso::Below { .. }) && sys_stage2::can_map_vdso();
    let layout = stub.is_some() && (matches!(vdso, Vdso::Stays) || move_vdso);
    let top = if layout { item } else { None };
    Stage2 { mmap_top: own.end, stub, vdso, top, move_vdso, ia32_stack: None }
}

/// The launch's random bytes, from getrandom. Where it is refused, AT_RANDOM is the 16 bytes the
/// kernel drew for preload's own exec, which nothing has used (as random as the kernel's for
/// this exec, and never derived from anything the program can see), and the offsets, needed only
/// when randomising, come from /dev/urandom; without either, nothing runs (125).
fn random_values(request: &Request, randomize: bool) -> Result<(Random, RandomSource), Refusal> {
    let mut bytes = [0u8; Random::BYTES];
    let why = match rustix::rand::getrandom(&mut bytes[..], rustix::rand::GetRandomFlags::empty()) {
        Ok(Random::BYTES) => return Ok((Random::from_bytes(&bytes), RandomSource::Getrandom)),
        Ok(_) => Errno::IO,
        Err(errno) => errno,
    };
    let rest = match request.stack.at_random() {
        Some(kernel) => {
            bytes[..16].copy_from_slice(&kernel);
            16
        }
        None => 0,
    };
    if rest < Random::BYTES && (randomize || rest == 0) {
        read_file(c"/dev/urandom", &mut bytes[rest..])
            .map_err(|_| Refusal::failure("no randomness: getrandom is refused and /dev/urandom cannot be read"))?;
    }
    Ok((Random::from_bytes(&bytes), RandomSource::Fallback(why)))
}
