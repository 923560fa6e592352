//! The eighth step, finish: the final operations, for the stub (`arch/stage2.rs`) to carry out
//! once the preloader has stepped aside (`preload::plan::finish`):
//!
//! 1. unmap the preloader's image (and the vDSO block right below it, when it is mapped again),
//!    so that nothing of the preloader is left and the kernel's EBUSY rule for exe is met with
//!    nothing copied;
//! 2. map the interpreter (or a static-pie) where the kernel would have put it: at the top of the
//!    mmap area, which the preloader's image held;
//! 3. map the vDSO where the kernel maps it for a program on this kernel (below that image, on
//!    6.11 and later; left alone above the stack before);
//! 4. one PR_SET_MM_MAP with exe (and, should exe be refused, one without it), then the
//!    capabilities the program keeps (of the preloader's file, or of a new user namespace), then
//!    close the preloader's descriptors.
//!
//! Without the stub's own page (no memfd can be mapped executable and no anonymous page made
//! so) the stub runs in place in the preloader's text: steps 1 to 3 are left out (the images are
//! mapped by the fifth step), and PR_SET_MM_MAP is tried with exe while the preloader is still
//! mapped, which only a kernel without the EBUSY rule accepts.

use preload::plan::finish::{
    Header, Op, PR_SET_DUMPABLE, SYS_CAPSET, SYS_PRCTL, USER32_CS, failure_message, map_segments,
};
use preload::plan::load::Extent;
use preload::report::refusal::Refusal;
use rustix::fd::AsRawFd;

use crate::exec::Resolved;
use crate::load::{Inspected, Mapped};
use crate::mm::MmOutcome;
use crate::plan::{Plan, Top};
use crate::report::Error;
use crate::stack::Built;
use crate::stage2;
use crate::sys::image;
use crate::sys::stage2::Handoff;

/// Where the jump goes: the stub's copy, or its code in the preloader's text.
pub struct Finish {
    pub stub: u64,
}

/// Write the op list and the header into the hand-off.
pub fn prepare<'b>(
    resolved: &Resolved<'b>,
    inspected: &Inspected,
    plan: &Plan,
    mapped: &Mapped,
    stack: &Built,
    set: &MmOutcome,
    handoff: &mut Handoff,
) -> Result<Finish, Error<'b>> {
    let (maps, caps, message) = (handoff.addr_of_maps(), handoff.addr_of_caps(), handoff.addr_of_message());
    let (ops_at, image, range) = (handoff.addr_of_ops(), handoff.addr_of_image(), handoff.range());
    let parts = handoff.parts();
    let mut ops = parts.ops;
    let message_len = failure_message(resolved.exe_path, parts.message) as u64;
    let stage2 = &plan.stage2;
    if let Some(old) = stage2.ia32_stack {
        ops.push(Op::munmap(old.start, old.len()));
    }
    if stage2.stub.is_some() {
        let own = image::span();
        let start = mapped.vdso.map_or(own.start, |vdso| vdso.old_start.min(own.start));
        ops.push(Op::munmap(start, stage2.mmap_top - start));
    }
    let top_image = match (stage2.top, &inspected.interpreter) {
        (Some(Top::Program), _) => Some((&inspected.image, resolved.file, mapped.bias)),
        (Some(Top::Interpreter), Some(interp)) => Some((&interp.image, interp.file, mapped.base)),
        _ => None,
    };
    if let Some((image, file, bias)) = top_image {
        let total = Extent::of(image).total_size;
        map_segments(image.phdrs, bias, total, file.fd.as_raw_fd() as u64, &mut ops);
    }
    if let Some(vdso) = mapped.vdso {
        ops.push(Op::map_vdso(vdso.at));
    }
    let size = core::mem::size_of::<rustix::process::PrctlMmMap>() as u64;
    ops.push(Op::set_mm_map(maps, size).tolerant().on_ok_skip(1));
    ops.push(Op::set_mm_map(maps + size, size).tolerant());
    if set.dropped || set.left {
        // The capabilities of the preloader's file, or of a new user namespace, served
        // PR_SET_MM_MAP: the program must not keep them.
        ops.push(Op::syscall(SYS_CAPSET, [caps, caps + 8, 0, 0, 0, 0]));
    }
    if set.dropped {
        // Dumpable again as after a plain exec (a new namespace changes nothing there).
        ops.push(Op::syscall(SYS_PRCTL, [PR_SET_DUMPABLE, 1, 0, 0, 0, 0]));
    }
    ops.push(Op::close(resolved.file.fd.as_raw_fd() as u64));
    if let Some(interp) = &inspected.interpreter {
        ops.push(Op::close(interp.file.fd.as_raw_fd() as u64));
    }
    if ops.overflowed() {
        return Err(Error::at(resolved.exe_path, Refusal::failure("too many final operations")));
    }
    *parts.header = Header {
        ops: ops_at,
        nops: ops.len() as u64,
        message,
        message_len,
        image,
        image_len: stack.size as u64,
        sp: stack.layout.sp,
        unmap: range.0,
        unmap_len: range.1 - range.0,
        entry: mapped.entry,
        code_segment: if stage2.ia32_stack.is_some() { USER32_CS } else { 0 },
    };
    let stub = stage2.stub.unwrap_or(stage2::code().as_ptr() as u64);
    Ok(Finish { stub })
}
