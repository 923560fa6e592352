//! The sixth step, build the stack: argv, envp and auxv laid out as `create_elf_tables` does, in
//! a scratch mapping that the final jump copies onto the real [stack].

use preload::exec::args::Prefix;
use preload::plan::stack::{ProgramAux, StackImage, StackLayout, program_auxv};
use rustix::mm::MapFlags;

use crate::exec::{Request, Resolved};
use crate::load::{Inspected, Mapped};
use crate::plan::Plan;
use crate::report::Error;
use crate::sys::mem::{self, Mapping};

/// The environment variable that names a sealed program's key descriptor, which is closed: the
/// program's environment does not name it either.
const KEY_FD_ASSIGNMENT: &[u8] = b"PRELOAD_KEY_FD=";

/// The program's initial stack, built.
pub struct Built {
    /// The image, at the start of its own mapping.
    pub scratch: Mapping,
    pub layout: StackLayout,
    /// Its size in bytes, from the stack pointer to the top.
    pub size: usize,
    /// PT_GNU_STACK asked for an executable stack and the kernel refused it (under MDWE, say).
    pub exec_refused: bool,
}

impl Built {
    /// Where the image's auxv is in the scratch mapping (PR_SET_MM_MAP copies it from there).
    pub fn auxv(&self) -> *mut u64 {
        self.scratch.as_ptr().wrapping_add((self.layout.auxv - self.layout.sp) as usize).cast()
    }
}

/// Where the image's strings go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Where `create_elf_tables` puts them, at the top of the stack (PR_SET_MM_MAP then points
    /// the mm fields at them).
    Nothing,
    /// Below the strings the kernel copied for the preloader's exec, which stay in place and are
    /// pointed to where the program's are the same: for when PR_SET_MM_MAP is refused and
    /// /proc/self/cmdline and environ go on reading there.
    KernelStrings,
}

pub fn build<'b>(
    request: &Request,
    resolved: &Resolved<'b>,
    inspected: &Inspected,
    plan: &Plan,
    mapped: &Mapped,
    secure: bool,
    keep: Keep,
) -> Result<Built, Error<'b>> {
    let (image, extent, stack) = (&inspected.image, &inspected.extent, request.stack);
    let prefix = Prefix::new(resolved.levels(), resolved.execfn(), request.argv0());
    let aux = ProgramAux {
        phdr: mapped.bias + extent.phdr,
        phnum: image.phdrs.len() as u64,
        base: mapped.base,
        entry: mapped.bias.wrapping_add(image.entry),
        secure: u64::from(secure),
    };
    let sealed = resolved.is_sealed();
    let spec = StackImage {
        top: plan.top,
        argv: prefix.as_slice().iter().copied().chain(request.rest().map(|arg| -> &[u8] { arg })),
        envp: stack.env().filter(move |var| !(sealed && var.starts_with(KEY_FD_ASSIGNMENT))),
        execfn: resolved.execfn(),
        platform: stack.platform(),
        random: plan.random.at_random,
        gap: if plan.randomize { plan.random.gap % 8192 } else { 0 },
        auxv: program_auxv(stack.auxv(), aux),
    };
    let layout = match (keep, stack.string_area()) {
        (Keep::KernelStrings, Some(area)) => spec.layout_keeping(area),
        _ => spec.layout(),
    };
    let size = layout.image_size();
    // POPULATE: all of it is written, and allocating the pages in the mmap costs less than a
    // fault for each.
    let mut scratch =
        Mapping::new(size, MapFlags::POPULATE).map_err(|errno| Error::failure(resolved.exe_path, errno))?;
    spec.write(&layout, &mut scratch.bytes()[..size]);
    let exec_refused = image.executable_stack() && mem::make_stack_executable(plan.top - 1).is_err();
    Ok(Built { scratch, layout, size, exec_refused })
}
