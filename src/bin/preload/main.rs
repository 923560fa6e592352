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
#[path = "arch/ia32.rs"]
mod arch_ia32;
mod credentials;
mod exec;
mod finish;
mod ia32;
mod input;
mod load;
mod mm;
mod origin;
mod plan;
mod report;
mod reserve;
mod stack;
#[path = "arch/stage2.rs"]
mod stage2;
mod sys;
mod userns;
mod wine;

use preload::cli::{self, Command, Options, USAGE};
use preload::elf::symbols::Class;
use preload::exec::args::Level;
use preload::exec::binfmt::{self, AT_EXECFD, AT_FLAGS};
use preload::exec::script::MAX_SCRIPT_DEPTH;
use preload::exec::search::PATH_MAX;
use preload::plan::credentials::{Ids, ProgramCredentials};
use preload::plan::stack::AT_SECURE;
use preload::report::msg::Msg;
use rustix::fd::AsFd;

use crate::exec::Request;
use crate::input::source::{File, Spill};
use crate::report::{Error, Printer};
use crate::sys::initial_stack::{InitialStack, argument_tail};
use crate::sys::io::{STDERR, STDOUT, print};
use crate::sys::mem::{Lazy, Mapping};
use crate::sys::stage2::Handoff;

/// Called by `_start` with the kernel's initial stack pointer. A small frame: under a small
/// RLIMIT_STACK the soft limit is raised before the preloader's large frames are touched.
unsafe extern "C" fn preload_main(sp: *const u64) -> ! {
    match stack::Limit::make_room() {
        // SAFETY: `_start` passes the stack pointer the kernel entered with.
        Ok(stack_limit) => unsafe { main_with_room(sp, stack_limit) },
        Err(hard) => arch::exit(report::stack_limit_refusal(hard)),
    }
}

/// # Safety
/// `sp` is the stack pointer the kernel entered `_start` with.
#[inline(never)]
unsafe fn main_with_room(sp: *const u64, stack_limit: stack::Limit) -> ! {
    // SAFETY: the caller's contract.
    let stack = unsafe { InitialStack::from_sp(sp) };
    let ids = Ids::from_auxv(stack.auxv());
    if ids.is_setid() {
        arch::exit(report::setid_refusal(ids));
    }
    let binfmt = match binfmt::from_kernel(stack.args().count(), stack.aux(AT_FLAGS), stack.aux(AT_EXECFD)) {
        Some(Err(reason)) => arch::exit(report::binfmt_refusal(reason)),
        start => start.and_then(Result::ok),
    };
    let command = match binfmt {
        None => cli::parse(stack.args()),
        Some(start) => Ok(binfmt_command(&stack, start)),
    };
    let status = match command {
        Ok(Command::Help) => {
            print(STDOUT, USAGE.as_bytes());
            0
        }
        Ok(Command::Version) => {
            print(STDOUT, concat!("preload ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
            0
        }
        Ok(Command::Run { mut options, program }) => {
            options.userns =
                preload::plan::userns::wanted(options.userns, stack.getenv(preload::plan::userns::ENV_VAR));
            let first_arg = binfmt.map_or(program + 1, |start| start.first_arg);
            run(&stack, &options, program, first_arg, &stack_limit)
        }
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

/// Started by binfmt_misc with flag P or O (`preload::exec::binfmt`): the program it names,
/// its argv[0] kept with P, the opened binary taken with O; no options.
fn binfmt_command(stack: &InitialStack, start: binfmt::Binfmt) -> Command<'static> {
    let argv0 = (start.argv0 != start.path).then(|| stack.args().nth(start.argv0)).flatten();
    Command::Run { options: Options { argv0, fd: start.execfd, ..Options::default() }, program: start.path }
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
    /// An i386 program's program headers, widened.
    widened: Option<Mapping>,
}

/// Run the program; returns only on failure or after --dry-run, with the exit status.
fn run(
    stack: &InitialStack,
    options: &Options<'static>,
    program: usize,
    first_arg: usize,
    stack_limit: &stack::Limit,
) -> i32 {
    // One constant, so that the compiler clears the buffers in place instead of building each
    // part in a temporary and copying it in: every stack page touched costs a page fault.
    let mut buffers = Buffers::EMPTY;
    let mut opened = Opened { program: None, interpreter: None, widened: None };
    let request = Request { stack, options, program, first_arg, stack_limit: stack_limit.soft() };
    // The first mapping, before anything else is mapped top-down: where it lands tells where the
    // kernel put the vDSO (see `plan`).
    let mut handoff = match Handoff::map() {
        Ok(handoff) => handoff,
        Err(errno) => return Error::failure(request.name().to_bytes(), errno).report(),
    };
    match launch(&request, &mut buffers, &mut opened, &mut handoff) {
        Ok(None) => 0,
        Ok(Some(jump)) => {
            // The stub uses the descriptors (exe, the interpreter's mappings), then closes them.
            opened.program.take().map(File::into_descriptor);
            opened.interpreter.take().map(File::into_descriptor);
            opened.widened.take();
            buffers.release();
            // The unsealing's dead frames (key, cipher states) are below this one, on the stack
            // the stub copies the program's image onto; the hand-off is a mapping of its own.
            #[cfg(feature = "sealed")]
            if jump.sealed {
                sys::wipe::dead_stack();
                sys::wipe::vector_registers();
            }
            // Every file is opened and everything mapped: the stub's PR_SET_MM_MAP needs the
            // capability, and its capset then sets the program's sets.
            credentials::raise_for_mm(&jump.credentials);
            stack_limit.restore();
            // SAFETY: the hand-off is complete: its ops map and set everything, unmap the
            // preloader and the hand-off, and jump to `entry`, mapped executable by then.
            unsafe { sys::stage2::enter(jump.stub, handoff) }
        }
        Err(error) => error.report(),
    }
}

/// Where the jump goes: the stage-2 stub, which finds the rest in the hand-off.
struct Jump {
    stub: u64,
    /// The capability is raised for the stub.
    credentials: ProgramCredentials,
    /// The stack is wiped first.
    #[cfg(feature = "sealed")]
    sealed: bool,
}

/// The steps of a launch; `Ok(None)` after --dry-run.
fn launch<'b>(
    request: &Request,
    buffers: &'b mut Buffers,
    opened: &'b mut Opened,
    handoff: &mut Handoff,
) -> Result<Option<Jump>, Error<'b>> {
    let Buffers { path, levels, phdrs, interp_path, interp_phdrs, label } = buffers;
    let options = request.options;
    // The program's credentials as a plain exec would give them (AT_SECURE goes on its stack).
    let ids = Ids::from_auxv(request.stack.auxv());
    let kernel_secure = request.stack.aux(AT_SECURE) == Some(1);
    let credentials =
        credentials::plan(ids, kernel_secure).map_err(|errno| Error::failure(request.name().to_bytes(), errno))?;

    let resolved = exec::resolve(request, exec::Storage { path, levels, label, opened: &mut opened.program })?;
    if preload::elf::ia32::is_ia32(resolved.file.head()) {
        let (interp_file, widened) = (&mut opened.interpreter, &mut opened.widened);
        let storage = ia32::Storage { phdrs, interp_path, interp_phdrs, interp_file, widened };
        return ia32::launch(request, &resolved, storage, &credentials, handoff);
    }
    let chosen_interp = options.interp.map(argument_tail);
    let storage = load::Storage { phdrs, interp_path, interp_phdrs, interp_file: &mut opened.interpreter };
    let inspected = load::inspect_all(&resolved, chosen_interp, storage)?;
    let mut plan = plan::plan(request, &resolved, &inspected, handoff)?;

    let mut verbose = Printer::new(if options.dry_run { STDOUT } else { STDERR });
    if options.dry_run || options.verbose {
        report::plan(&mut verbose, &resolved, &inspected, &plan);
    }
    if options.dry_run {
        return Ok(None);
    }
    let verbose = options.verbose.then_some(&mut verbose);

    let mapped = load::map_all(request, &resolved, &inspected, &mut plan, verbose)?;
    let stack = stack::build(request, &resolved, &inspected, &plan, &mapped, credentials.secure, handoff)?;
    step_aside(
        request,
        &resolved,
        &inspected,
        Ready { plan: &plan, mapped: &mapped, stack: &stack },
        credentials,
        handoff,
    )
}

/// The program mapped and its stack image built, for the stub.
struct Ready<'r> {
    plan: &'r plan::Plan,
    mapped: &'r load::Mapped,
    stack: &'r stack::Built,
}

/// The last steps of every launch, x86_64 or i386: the user namespace, the mm fields, exe and
/// the capabilities prepared for the stub, the final operations, and --verbose's outcome.
fn step_aside<'b>(
    request: &Request,
    resolved: &exec::Resolved<'b>,
    inspected: &load::Inspected,
    ready: Ready,
    credentials: ProgramCredentials,
    handoff: &mut Handoff,
) -> Result<Option<Jump>, Error<'b>> {
    let Ready { plan, mapped, stack } = ready;
    let options = request.options;
    let ids = Ids::from_auxv(request.stack.auxv());
    let userns_failed = |failure| Error::Userns { path: resolved.exe_path, failure };
    let userns = userns::enter(options.userns, ids).map_err(userns_failed)?;
    let left = userns::program_caps(userns, ids).map_err(|errno| Error::failure(resolved.exe_path, errno))?;
    let grant = mm::Grant { credentials: &credentials, left, ids };
    let mut set = mm::point_at_program(resolved, inspected, mapped, stack, &grant, handoff);
    // In a new namespace, the stub's PR_SET_MM_MAP refusing exe would run the program without
    // it: the probe tells now, while a refusal can still be reported.
    if options.verbose || userns == userns::Outcome::Entered {
        set.exe = mm::probe(handoff, stack, set.exe, plan.stage2.stub.is_some(), &credentials);
    }
    userns::check_exe(userns, &set.exe).map_err(userns_failed)?;
    let finish = finish::prepare(resolved, inspected, plan, mapped, stack, &set, handoff)?;
    if options.verbose {
        let mut out = Printer::new(STDERR);
        report::outcome(&mut out, mapped, stack, &set);
        report::userns(&mut out, userns, ids);
        let exe_set = matches!(set.exe, mm::ExeOutcome::Set | mm::ExeOutcome::SetAfterSteppingAside);
        let class = if plan.stage2.ia32_stack.is_some() { Class::Elf32 } else { Class::Elf64 };
        if let Some(run_path) =
            origin::run_path(&inspected.image, class, mapped.bias, resolved.file.size).filter(|_| !exe_set)
        {
            report::origin(&mut out, resolved.exe_path, run_path);
        }
        let not_honoured = credentials::not_honoured(resolved.file.fd.as_fd(), ids);
        report::credentials(&mut out, resolved.exe_path, not_honoured, set.dropped);
    }
    Ok(Some(Jump {
        stub: finish.stub,
        credentials,
        #[cfg(feature = "sealed")]
        sealed: resolved.is_sealed(),
    }))
}
