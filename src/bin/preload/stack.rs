//! The sixth step, build the stack: argv, envp and auxv laid out as `create_elf_tables` does, in
//! the stage-2 hand-off, which the stub copies onto the real [stack] at the jump.

use preload::exec::args::Prefix;
use preload::plan::stack::{
    AT_SYSINFO_EHDR, ProgramAux, StackImage, StackLayout, WORD, preloader_stack_limit, program_auxv,
};
use rustix::io::Errno;
use rustix::process::{self, Resource, Rlimit};

use crate::exec::{Request, Resolved};
use crate::load::{Inspected, Mapped};
use crate::plan::Plan;
use crate::report::Error;
use crate::sys::stage2::Handoff;
use crate::sys::{mem, proc};

/// The environment variable that names a sealed program's key descriptor, which is closed: the
/// program's environment does not name it either.
pub const KEY_FD_ASSIGNMENT: &[u8] = b"PRELOAD_KEY_FD=";

/// The program's initial stack, built.
pub struct Built {
    /// Where the image is in the hand-off.
    pub image: u64,
    pub layout: StackLayout,
    /// Its size in bytes, from the stack pointer to the top.
    pub size: usize,
    /// PT_GNU_STACK asked for an executable stack and the kernel refused it (under MDWE, say).
    pub exec_refused: bool,
    pub keep: Keep,
}

impl Built {
    /// Where the image's auxv is in the scratch mapping (PR_SET_MM_MAP copies it from there).
    pub fn auxv(&self) -> u64 {
        self.image + (self.layout.auxv - self.layout.sp)
    }
}

/// Where the image's strings go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Where `create_elf_tables` puts them, at the top of the stack (PR_SET_MM_MAP then points
    /// the mm fields at them).
    Nothing,
    /// Below the strings the kernel copied for the preloader's exec, which stay in place and are
    /// pointed to where the program's are the same: for when PR_SET_MM_MAP is refused (with
    /// this errno) and /proc/self/cmdline and environ go on reading there.
    KernelStrings(Errno),
}

impl Keep {
    /// Where the strings go, once asked whether PR_SET_MM_MAP is refused.
    pub fn asking_the_kernel() -> Self {
        match proc::mm_map_refused() {
            Some(why) => Self::KernelStrings(why),
            None => Self::Nothing,
        }
    }
}

pub fn build<'b>(
    request: &Request,
    resolved: &Resolved<'b>,
    inspected: &Inspected,
    plan: &Plan,
    mapped: &Mapped,
    secure: bool,
    handoff: &mut Handoff,
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
        // The vDSO the program sees: where the stub maps it again, if it does.
        auxv: program_auxv(stack.auxv(), aux).map(|(key, value)| match (key, mapped.vdso) {
            (AT_SYSINFO_EHDR, Some(vdso)) => (key, vdso.text),
            _ => (key, value),
        }),
        word: WORD,
    };
    // If PR_SET_MM_MAP is refused, the mm fields keep pointing at the kernel's strings.
    let keep = Keep::asking_the_kernel();
    let layout = match (keep, stack.string_area()) {
        (Keep::KernelStrings(_), Some(area)) => spec.layout_keeping(area),
        _ => spec.layout(),
    };
    let size = layout.image_size();
    handoff.fit(size as u64).map_err(|errno| Error::failure(resolved.exe_path, errno))?;
    let image_at = handoff.addr_of_image();
    spec.write(&layout, &mut handoff.parts().image[..size]);
    let exec_refused = image.executable_stack() && mem::make_stack_executable(plan.top - 1).is_err();
    Ok(Built { image: image_at, layout, size, exec_refused, keep })
}

/// RLIMIT_STACK as the caller set it, which the program's layout follows, and whether the
/// preloader raised its soft limit for its own frames (`preload::plan::stack::PRELOADER_STACK`).
pub struct Limit {
    caller: Rlimit,
    raised: bool,
}

impl Limit {
    /// Read RLIMIT_STACK and raise the soft limit where it leaves the preloader too little
    /// stack; `Err(hard)` when the hard limit does. Runs before the preloader's large frames.
    pub fn make_room() -> Result<Self, u64> {
        let caller = process::getrlimit(Resource::Stack);
        let raised = match preloader_stack_limit(caller.current, caller.maximum)? {
            None => false,
            Some(soft) => {
                process::setrlimit(Resource::Stack, Rlimit { current: Some(soft), maximum: caller.maximum }).is_ok()
            }
        };
        Ok(Self { caller, raised })
    }

    /// The caller's soft limit (`u64::MAX`: unlimited).
    pub fn soft(&self) -> u64 {
        self.caller.current.unwrap_or(u64::MAX)
    }

    /// Put the caller's limit back before the stub runs: the preloader's frames have grown the
    /// stack over every page the stub writes, and the program grows it under the caller's limit.
    pub fn restore(&self) {
        if self.raised {
            // Lowering a soft limit to what it was cannot fail but for a seccomp filter, which
            // then leaves the program the preloader's room: nothing to report at this point.
            let _ = process::setrlimit(Resource::Stack, self.caller);
        }
    }
}
