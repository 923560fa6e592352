//! `preload [OPTION]... [--] PROGRAM [ARG]...`: a manual execve.
//!
//! The story, top-down, one step per module: resolve PROGRAM (PATH, a sealed container, `#!`
//! scripts; [`exec`]), inspect it and its ELF interpreter ([`load`]), plan where they go
//! ([`plan`]), report the plan ([`report`]), map both as the kernel would ([`load`]), build the
//! initial stack ([`stack`]), set comm, the mm fields, the saved auxv and /proc/self/exe
//! ([`mm`]), and enter the interpreter ([`arch`]). Only [`sys`] and [`arch`] talk to the kernel
//! with raw calls.
#![no_std]
#![no_main]

#[path = "arch/x86_64.rs"]
mod arch;
mod credentials;
mod exec;
mod input;
mod load;
mod mm;
mod plan;
mod report;
mod reserve;
mod stack;
mod sys;
mod wine;

use preload::cli::{self, Command, Options, USAGE};
use preload::exec::args::Level;
use preload::exec::script::MAX_SCRIPT_DEPTH;
use preload::exec::search::PATH_MAX;
use preload::plan::credentials::Ids;
use preload::plan::stack::AT_SECURE;
use preload::report::msg::Msg;
use rustix::fd::AsFd;
use rustix::process::Resource;

use crate::exec::Request;
use crate::input::source::{File, Spill};
use crate::report::{Error, Printer};
use crate::sys::initial_stack::{InitialStack, argument_tail};
use crate::sys::io::{STDERR, STDOUT, print};
use crate::sys::mem::Lazy;

/// Called by `_start` with the kernel's initial stack pointer.
unsafe extern "C" fn preload_main(sp: *const u64) -> ! {
    // SAFETY: `_start` passes the stack pointer the kernel entered with.
    let stack = unsafe { InitialStack::from_sp(sp) };
    let ids = Ids::from_auxv(stack.auxv());
    if ids.is_setid() {
        arch::exit(report::setid_refusal(ids));
    }
    let status = match cli::parse(stack.args()) {
        Ok(Command::Help) => {
            print(STDOUT, USAGE.as_bytes());
            0
        }
        Ok(Command::Version) => {
            print(STDOUT, concat!("preload ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
            0
        }
        Ok(Command::Run { options, program }) => run(&stack, &options, program),
        Err(usage) => {
            let mut out = Printer::new(STDERR);
            if let Some(value) = usage.value() {
                out.line().escaped(value).text(": ");
            }
            out.line().text(usage.reason()).escaped(usage.argument()).text(" (try 'preload --help')");
            out.end();
            125
        }
    };
    arch::exit(status)
}

/// Storage for what is read from the files, alive until the jump.
struct Buffers {
    path: [u8; PATH_MAX],
    levels: Lazy<[Level; MAX_SCRIPT_DEPTH]>,
    phdrs: Spill,
    interp_path: Spill,
    interp_phdrs: Spill,
    label: Lazy<Msg<{ PATH_MAX + 32 }>>,
}

impl Buffers {
    const EMPTY: Self = Self {
        path: [0; PATH_MAX],
        levels: Lazy::new(),
        phdrs: Spill::new(),
        interp_path: Spill::new(),
        interp_phdrs: Spill::new(),
        label: Lazy::new(),
    };

    /// Unmap what was mapped for this launch, so that nothing of it reaches the program; a
    /// sealed program's header table copied out of its plaintext is wiped first.
    fn release(&mut self) {
        #[cfg(feature = "sealed")]
        self.phdrs.wipe();
        self.interp_path.release();
        self.levels.release();
        self.phdrs.release();
        self.interp_phdrs.release();
        self.label.release();
    }
}

/// The program and its interpreter, open until the jump: PT_INTERP and the program headers are
/// used in place in their heads. Not in `Buffers`: a `None` file is not all zero bytes, and an
/// `EMPTY` that is not would be copied in from a constant in the binary.
struct Opened {
    program: Option<File>,
    interpreter: Option<File>,
}

/// Run the program; returns only on failure or after --dry-run, with the exit status.
fn run(stack: &InitialStack, options: &Options<'static>, program: usize) -> i32 {
    // One constant, so that the compiler clears the buffers in place instead of building each
    // part in a temporary and copying it in: every stack page touched costs a page fault.
    let mut buffers = Buffers::EMPTY;
    let mut opened = Opened { program: None, interpreter: None };
    let stack_limit = rustix::process::getrlimit(Resource::Stack).current.unwrap_or(u64::MAX);
    let request = Request { stack, options, program, stack_limit };
    match launch(&request, &mut buffers, &mut opened) {
        Ok(None) => 0,
        Ok(Some(jump)) => {
            drop(opened);
            buffers.release();
            jump.enter()
        }
        Err(error) => error.report(),
    }
}

/// Everything the jump needs, once the preloader's own buffers are no longer referred to.
struct Jump {
    stack: stack::Built,
    entry: u64,
}

impl Jump {
    fn enter(self) -> ! {
        let (scratch, scratch_len) = self.stack.scratch.into_raw();
        let (sp, size) = (self.stack.layout.sp, self.stack.size);
        // SAFETY: the image is complete in the scratch mapping, which nothing refers to any more
        // and which is unmapped after the copy; `entry` is the interpreter's (or static
        // program's) entry, mapped executable.
        unsafe { arch::enter(scratch, sp, size, scratch, scratch_len, self.entry) }
    }
}

/// The steps of a launch; `Ok(None)` after --dry-run.
fn launch<'b>(request: &Request, buffers: &'b mut Buffers, opened: &'b mut Opened) -> Result<Option<Jump>, Error<'b>> {
    let Buffers { path, levels, phdrs, interp_path, interp_phdrs, label } = buffers;
    let options = request.options;
    // The program's credentials as a plain exec would give them (AT_SECURE goes on its stack).
    let ids = Ids::from_auxv(request.stack.auxv());
    let kernel_secure = request.stack.aux(AT_SECURE) == Some(1);
    let credentials =
        credentials::plan(ids, kernel_secure).map_err(|errno| Error::failure(request.name().to_bytes(), errno))?;

    let resolved = exec::resolve(request, exec::Storage { path, levels, label, opened: &mut opened.program })?;
    let chosen_interp = options.interp.map(argument_tail);
    let storage = load::Storage { phdrs, interp_path, interp_phdrs, interp_file: &mut opened.interpreter };
    let inspected = load::inspect_all(&resolved, chosen_interp, storage)?;
    let mut plan = plan::plan(request, &resolved, &inspected)?;

    let mut verbose = Printer::new(if options.dry_run { STDOUT } else { STDERR });
    if options.dry_run || options.verbose {
        report::plan(&mut verbose, &resolved, &inspected, &plan);
    }
    if options.dry_run {
        return Ok(None);
    }
    let verbose = options.verbose.then_some(&mut verbose);

    let mapped = load::map_all(request, &resolved, &inspected, &mut plan, verbose)?;
    let build = |keep| stack::build(request, &resolved, &inspected, &plan, &mapped, credentials.secure, keep);
    let mut stack = build(stack::Keep::Nothing)?;
    let set = mm::point_at_program(&resolved, &inspected, &mapped, &stack, &credentials, ids)?;
    if let mm::ExeOutcome::Failed(_) = set.exe {
        // The mm fields stay the preloader's: keep the strings they point to whole.
        stack = build(stack::Keep::KernelStrings)?;
    }
    if options.verbose {
        let mut out = Printer::new(STDERR);
        report::outcome(&mut out, &mapped, &stack, &set);
        let not_honoured = credentials::not_honoured(resolved.file.fd.as_fd(), ids);
        report::credentials(&mut out, resolved.exe_path, not_honoured, set.dropped);
    }
    // The unsealing's dead frames (key, cipher states) are below this one, on the stack the
    // program gets.
    #[cfg(feature = "sealed")]
    if resolved.is_sealed() {
        sys::wipe::dead_stack();
    }
    Ok(Some(Jump { entry: mapped.entry, stack }))
}
