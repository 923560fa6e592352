//! i386 programs, launched as the kernel's IA32 emulation (fs/compat_binfmt_elf.c) would: the
//! same steps as [`crate::launch`] with the compat rules. Inspect the 32-bit headers (widened,
//! so that the x86_64 mapping code serves both); plan with the compat bases; map the program
//! and its interpreter below 4 GiB, where a compat mmap puts them; replace the 64-bit vDSO with
//! the 32-bit one (ARCH_MAP_VDSO_32) at the slot the exec would give it; build a 32-bit stack
//! image with the compat auxv for a new stack below 4 GiB; then the x86_64 launch's last steps
//! ([`crate::step_aside`]), with the 32-bit auxv as the saved one, and the stage-2 stub, which
//! also unmaps the preloader's 64-bit stack and enters the program in 32-bit mode.

use core::ffi::CStr;

use goblin::elf64::program_header::ProgramHeader;
use preload::elf::symbols::Class;
use preload::elf::{self, Image, ia32};
use preload::exec::args::Prefix;
use preload::plan::credentials::ProgramCredentials;
use preload::plan::ia32 as compat;
use preload::plan::load::{Extent, Owned, Placement};
use preload::plan::stack::{ProgramAux, StackImage, WORD32, compat_auxv};
use preload::report::refusal::Refusal;
use preload::{PAGE_SIZE, page_align, page_start};
use rustix::mm::MapFlags;

use crate::exec::{Request, Resolved};
use crate::input::source::{File, Spill};
use crate::load::{self, Inspected};
use crate::report::{Error, Printer};
use crate::stack::{Built, KEY_FD_ASSIGNMENT, Keep};
use crate::sys::compat as sys;
use crate::sys::mem::Mapping;
use crate::sys::proc::{MAPS_BUFFER, read_maps};
use crate::sys::stage2::Handoff;
use crate::{Jump, plan, reserve};

/// The kernel grows a new [stack] by 128 KiB below the pages the strings take (setup_arg_pages).
const STACK_EXPAND: u64 = 128 << 10;

/// Storage the inspected images refer to until the jump.
pub struct Storage<'b> {
    pub phdrs: &'b mut Spill,
    pub interp_path: &'b mut Spill,
    pub interp_phdrs: &'b mut Spill,
    pub interp_file: &'b mut Option<File>,
    /// The widened program headers of the program and of its interpreter.
    pub widened: &'b mut Option<Mapping>,
}

/// Validate `file` as an i386 executable: its 32-bit program headers are widened into `out`.
fn inspect<'p>(file: &'p File, spill: &'p mut Spill, out: &'p mut [ProgramHeader]) -> Result<Image<'p>, &'static str> {
    let header = ia32::header(file.head())?;
    let (offset, len) = ia32::phdr_table(&header)?;
    load::check_table_for_kernel(len)?;
    let table = file.bytes(offset, len, spill).map_err(|_| "program headers beyond end of file")?;
    let phdrs = ia32::widen(table, out);
    if file.copy_segments() {
        elf::check_segments_in_file(phdrs, file.size)?;
    }
    ia32::validate(&header, phdrs, file.size)
}

/// The program and its interpreter, inspected as in [`load::inspect_all`].
fn inspect_all<'b>(
    resolved: &Resolved<'b>,
    chosen: Option<&'static CStr>,
    storage: Storage<'b>,
) -> Result<Inspected<'b>, Error<'b>> {
    let Storage { phdrs, interp_path, interp_phdrs, interp_file, widened } = storage;
    let exe_path = resolved.exe_path;
    let size = core::mem::size_of::<ProgramHeader>();
    let mapping = widened.insert(
        Mapping::new(2 * ia32::MAX_PHDRS * size, MapFlags::empty()).map_err(|errno| Error::failure(exe_path, errno))?,
    );
    let all: &mut [ProgramHeader] = plain::slice_from_mut_bytes(mapping.bytes()).unwrap_or(&mut []);
    let (own, interp_out) = all.split_at_mut(all.len() / 2);
    let storage = load::Storage { phdrs, interp_path, interp_phdrs, interp_file };
    load::inspect_all_with(
        resolved,
        chosen,
        storage,
        move |file, spill| inspect(file, spill, own),
        move |file, spill| inspect(file, spill, interp_out),
    )
}

/// A placement the kernel leaves to a compat mmap becomes a bias at the slot that mmap gives.
fn in_compat_area(placement: Placement, extent: &Extent) -> Result<Placement, rustix::io::Errno> {
    Ok(match placement {
        Placement::Anywhere { align } => {
            let total = page_align(extent.total_size);
            let slot = sys::compat_slot(total + align - PAGE_SIZE)?;
            let start = (slot + align - 1) & !(align - 1);
            Placement::Bias(start.wrapping_sub(extent.first_start))
        }
        other => other,
    })
}

/// Launch the i386 program `resolved`; `Ok(None)` after --dry-run. Out of line: its buffers
/// (/proc/self/maps) would otherwise enlarge the x86_64 launch's stack frame, whose every page
/// the stack probes touch.
#[inline(never)]
pub fn launch<'b>(
    request: &Request,
    resolved: &Resolved<'b>,
    storage: Storage<'b>,
    credentials: &ProgramCredentials,
    handoff: &mut Handoff,
) -> Result<Option<Jump>, Error<'b>> {
    let options = request.options;
    let exe_path = resolved.exe_path;
    let fail = |refusal| Error::at(exe_path, refusal);
    let failure = |errno| Error::failure(exe_path, errno);
    if !sys::ia32_emulation().map_err(failure)? {
        // What the kernel's exec answers then (ENOEXEC), before it looks at the program headers.
        return Err(fail(Refusal::cannot_execute(
            "an i386 (32-bit) program, and this kernel's IA32 emulation is off (ia32_emulation=0)",
        )));
    }
    let chosen_interp = options.interp.map(crate::sys::initial_stack::argument_tail);
    let inspected = inspect_all(resolved, chosen_interp, storage)?;
    let (image, extent) = (&inspected.image, &inspected.extent);

    // The randomisation and reservations as for x86_64, then the compat placement.
    let mut plan = plan::plan(request, resolved, &inspected, handoff)?;
    // Nothing for the stub to map: the images and the 32-bit vDSO are mapped below.
    (plan.stage2.top, plan.stage2.move_vdso) = (None, false);
    let rnd = if plan.randomize { compat::mmap_rnd(plan.random.mmap) } else { 0 };
    let has_interpreter = inspected.interpreter.is_some();
    plan.placement = compat::placement(image.relocatable, has_interpreter, options.base, extent, rnd)
        .map_err(|reason| fail(Refusal::failure(reason)))?;
    if !compat::fits(plan.placement, extent) {
        return Err(fail(Refusal::cannot_execute("a segment ends beyond the compat address space (0xffffe000)")));
    }
    let top = compat::stack_top(plan.randomize, plan.random.mmap >> 32);
    if options.dry_run || options.verbose {
        let mut out = Printer::new(if options.dry_run { crate::sys::io::STDOUT } else { crate::sys::io::STDERR });
        out.line().text("i386 program (IA32 emulation); stack top ").hex(top);
        out.end();
        crate::report::plan(&mut out, resolved, &inspected, &plan);
    }
    if options.dry_run {
        return Ok(None);
    }

    // The preloader's own stack, to unmap at the jump: found before PR_SET_MM_MAP names another.
    let mut maps = [0u8; MAPS_BUFFER];
    let len = read_maps(&mut maps);
    let (old_stack, _) = compat::span_of(&maps[..len], |name| name == b"[stack]", b"[stack]")
        .ok_or(fail(Refusal::failure("no [stack] in /proc/self/maps")))?;

    // Without PT_GNU_STACK the kernel adds READ_IMPLIES_EXEC before mapping anything: every
    // readable mapping of the program, its interpreter and what it maps later is executable.
    if ia32::read_implies_exec(image) {
        sys::add_personality(sys::READ_IMPLIES_EXEC).map_err(failure)?;
    }
    let protected = reserve::Protected::new(top, request.stack_limit);
    for range in plan.reserved.as_slice() {
        reserve::reserve(range, &protected).map_err(|why| Error::Reservation { range: *range, why })?;
    }
    let mut owned = Owned::default();
    // No compat slot for the image is the kernel's mapping failure (ENOMEM): refused as such.
    let placement = in_compat_area(plan.placement, extent).map_err(|errno| fail(load::map_error(errno)))?;
    let bias = load::map(resolved.file, image, extent, placement, &mut owned).map_err(|errno| match errno {
        rustix::io::Errno::EXIST if options.base.is_some() => {
            fail(Refusal::failure("--base: the program's address range is already in use"))
        }
        _ => fail(load::map_error(errno)),
    })?;
    let mut verbose = Printer::new(crate::sys::io::STDERR);
    let program = (image, Class::Elf32, bias, resolved.file.size);
    let verbose = options.verbose.then_some(&mut verbose);
    crate::wine::offer_ranges(program, exe_path, request.stack, &protected, &mut plan.reserved, verbose)?;
    let (base, entry) = match &inspected.interpreter {
        Some(interp) => {
            let interp_extent = Extent::of(&interp.image);
            let interp_error = |errno| Error::Interpreter {
                path: exe_path,
                interpreter: interp.path,
                refusal: load::map_error(errno),
            };
            let placement = in_compat_area(Placement::of_interpreter(interp.image.relocatable), &interp_extent)
                .map_err(interp_error)?;
            let interp_bias =
                load::map(interp.file, &interp.image, &interp_extent, placement, &mut owned).map_err(interp_error)?;
            (interp_bias, interp_bias.wrapping_add(interp.image.entry))
        }
        None => (0, bias.wrapping_add(image.entry)),
    };
    let vdso = sys::replace_vdso().map_err(failure)?;
    let static_pie = image.relocatable && !has_interpreter;
    let start_brk = compat::start_brk(bias + extent.end_bss, static_pie, plan.randomize, plan.random.brk);

    // The stack image, built in the hand-off, which the stub copies onto a new [stack] below
    // 4 GiB.
    let stack = request.stack;
    let prefix = Prefix::new(resolved.levels(), resolved.execfn(), request.argv0());
    let aux = ProgramAux {
        phdr: bias + extent.phdr,
        phnum: image.phdrs.len() as u64,
        base,
        entry: bias.wrapping_add(image.entry),
        secure: u64::from(credentials.secure),
    };
    let sealed = resolved.is_sealed();
    let spec = StackImage {
        top,
        argv: prefix.as_slice().iter().copied().chain(request.rest().map(|arg| -> &[u8] { arg })),
        envp: stack.env().filter(move |var| !(sealed && var.starts_with(KEY_FD_ASSIGNMENT))),
        execfn: resolved.execfn(),
        platform: Some(b"i686"),
        random: plan.random.at_random,
        gap: if plan.randomize { plan.random.gap % 8192 } else { 0 },
        auxv: compat_auxv(stack.auxv(), aux, Some(vdso)),
        word: WORD32,
    };
    let layout = spec.layout();
    let size = layout.size(top);
    handoff.fit(size as u64).map_err(failure)?;
    spec.write(&layout, &mut handoff.parts().image[..size]);
    let vma_len = top - page_start(layout.arg_start) + STACK_EXPAND;
    // A segment where the stack goes (the kernel's bss mapping would unmap that part of the
    // stack) is refused as one over the preloader's memory.
    sys::map_stack(top, vma_len, ia32::executable_stack(image)).map_err(|errno| fail(load::map_error(errno)))?;
    let built = Built { image: handoff.addr_of_image(), layout, size, exec_refused: false, keep: Keep::Nothing };

    // comm, the mm fields with the 32-bit auxv as the saved one (what a compat exec leaves in
    // saved_auxv: 4-byte keys and values), exe and the capabilities as for x86_64, by the stub,
    // which unmaps the preloader's stack too and enters the program in 32-bit mode.
    if options.verbose {
        let mut out = Printer::new(crate::sys::io::STDERR);
        out.line().text("32-bit vDSO ").hex(vdso.base).text(", __kernel_vsyscall ").hex(vdso.entry);
        out.end();
    }
    plan.stage2.ia32_stack = Some(old_stack);
    let mapped = load::Mapped { bias, base, entry, start_brk, vdso: None };
    let ready = crate::Ready { plan: &plan, mapped: &mapped, stack: &built };
    crate::step_aside(request, resolved, &inspected, ready, *credentials, handoff)
}
