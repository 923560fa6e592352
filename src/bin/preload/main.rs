//! `preload [OPTION]... [--] PROGRAM [ARG]...`: a manual execve.
//!
//! The story, top-down: find PROGRAM (PATH, `#!` scripts), validate it and its ELF interpreter,
//! map both as the kernel would, lay out the initial stack, point comm, the mm fields, the saved
//! auxv and /proc/self/exe at the program, and jump to the interpreter's entry.
#![no_std]
#![no_main]

#[path = "arch/x86_64.rs"]
mod arch;
mod credentials;
mod finish;
mod input;
mod load;
mod mm;
mod report;
mod reserve;
mod stack;
#[path = "arch/stage2.rs"]
mod stage2;
mod sys;
mod wine;

use core::ffi::{CStr, c_void};

use preload::cli::{self, Command, Options, USAGE};
use preload::elf::{self, Image};
use preload::exec::script::{self, MAX_SCRIPT_DEPTH};
use preload::exec::search::PATH_MAX;
use preload::plan::credentials::Ids;
use preload::plan::reserve::{RangeList, WINE_DEFAULT_RANGES};
use preload::plan::stack::{AT_SECURE, ProgramAux, StackImage, TooBig, program_auxv};
use preload::plan::{self, load::Extent};
use preload::report::msg::Msg;
use preload::report::refusal::Refusal;
use preload::{PAGE_SIZE, page_align, page_start};
use rustix::fd::AsFd;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use rustix::process::{PrctlMmMap, Resource};

use crate::input::source::{File, Origin, Spill, cstr};
use crate::load::Placement;
use crate::mm::ExeOutcome;
use crate::report::{Error, Printer};
use crate::stack::InitialStack;
use crate::sys::rt::{Lazy, STDERR, STDOUT, Zeroable, write_all};

/// The x86_64 stack top without randomisation (STACK_TOP with 4-level paging). The kernel put the
/// preloader's own stack exactly there when it did not randomise (personality ADDR_NO_RANDOMIZE,
/// as `setarch -R` sets, or randomize_va_space=0), so the stack top alone tells, with no
/// personality(2) call.
const UNRANDOMIZED_STACK_TOP: u64 = 0x7fff_ffff_f000;

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
            write_all(STDOUT, USAGE.as_bytes());
            0
        }
        Ok(Command::Version) => {
            write_all(STDOUT, concat!("preload ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
            0
        }
        Ok(Command::Run { options, program }) => run(&stack, &options, program),
        Err(usage) => {
            let mut out = Printer::new(STDERR);
            if let Some(value) = usage.value() {
                out.line().bytes(value).text(": ");
            }
            out.line().text(usage.reason()).bytes(usage.argument()).text(" (try 'preload --help')");
            out.end();
            125
        }
    };
    arch::exit(status)
}

/// One level of `#!` indirection: the interpreter named on the line, and its argument.
struct Shebang {
    interpreter: [u8; script::BINPRM_BUF_SIZE],
    argument: [u8; script::BINPRM_BUF_SIZE],
    has_argument: bool,
    argument_len: usize,
}

// SAFETY: byte arrays, a bool and a length: all zero is a line without an argument.
unsafe impl Zeroable for [Shebang; MAX_SCRIPT_DEPTH] {}

// SAFETY: a Msg is a byte array and a length: all zero is the empty message (Msg::new).
unsafe impl<const N: usize> Zeroable for Msg<N> {}

impl Shebang {
    const EMPTY: Self = Self {
        interpreter: [0; script::BINPRM_BUF_SIZE],
        argument: [0; script::BINPRM_BUF_SIZE],
        has_argument: false,
        argument_len: 0,
    };

    fn interpreter(&self) -> &CStr {
        cstr(&self.interpreter)
    }

    fn argument(&self) -> Option<&[u8]> {
        self.has_argument.then(|| &self.argument[..self.argument_len])
    }
}

/// The `#!` lines followed so far, outermost first.
struct Chain<'s> {
    levels: [&'s Shebang; MAX_SCRIPT_DEPTH],
    depth: usize,
}

static NO_SHEBANG: Shebang = Shebang::EMPTY;

/// Follow `#!` lines from `file` (at `path`) to the ELF file that will really be loaded, as
/// binfmt_script does; each line is kept in `storage`.
fn follow_scripts<'s>(
    mut file: File,
    path: &'s [u8],
    storage: &'s mut Lazy<[Shebang; MAX_SCRIPT_DEPTH]>,
) -> Result<(File, Chain<'s>), Error<'s>> {
    let mut chain = Chain { levels: [&NO_SHEBANG; MAX_SCRIPT_DEPTH], depth: 0 };
    let mut storage = Some(storage);
    let mut free: &'s mut [Shebang] = &mut [];
    let mut current = path;
    loop {
        let shebang = match script::parse(file.head()) {
            None => return Ok((file, chain)),
            Some(Err(reason)) => return Err(Error::cannot_execute(current, reason)),
            Some(Ok(shebang)) => shebang,
        };
        if let Some(lazy) = storage.take() {
            free = lazy.get().map_err(|errno| Error::at(path, Refusal::failure_errno(errno.raw_os_error())))?;
        }
        let Some((level, rest)) = core::mem::take(&mut free).split_first_mut() else {
            return Err(Error::cannot_execute(path, "Too many levels of #! interpreters"));
        };
        free = rest;
        // The parsed names are shorter than the buffers, so a NUL always follows the copy.
        level.interpreter[..shebang.interpreter.len()].copy_from_slice(shebang.interpreter);
        if let Some(argument) = shebang.argument {
            level.argument[..argument.len()].copy_from_slice(argument);
            level.has_argument = true;
            level.argument_len = argument.len();
        }
        let level: &'s Shebang = level;
        chain.levels[chain.depth] = level;
        chain.depth += 1;
        let interpreter = level.interpreter();
        file = input::source::open(interpreter)
            .map_err(|refusal| Error::interpreter(current, interpreter.to_bytes(), refusal))?;
        current = interpreter.to_bytes();
    }
}

/// argv for the program: without scripts, argv[0] (or --argv0) and the arguments; with them,
/// what binfmt_script builds: the innermost interpreter, its argument, the script it runs, and
/// so on outwards, then the original arguments without argv[0].
fn argv_prefix<'a>(
    levels: &[&'a Shebang],
    path: &'a [u8],
    argv0: &'a [u8],
    prefix: &mut [&'a [u8]; 1 + 2 * MAX_SCRIPT_DEPTH],
) -> usize {
    let mut len = 0;
    let mut push = |arg: &'a [u8]| {
        prefix[len] = arg;
        len += 1;
    };
    if levels.is_empty() {
        push(argv0);
        return len;
    }
    for (index, level) in levels.iter().enumerate().rev() {
        if index + 1 == levels.len() {
            push(level.interpreter().to_bytes());
        }
        if let Some(argument) = level.argument() {
            push(argument);
        }
        push(if index == 0 { path } else { levels[index - 1].interpreter().to_bytes() });
    }
    len
}

/// The kernel's E2BIG check of the program's argv (after the `#!` `levels` followed so far),
/// environment and execfn; the pointers are counted for the execve as made.
fn check_arguments<'a>(
    stack: &'a InitialStack,
    program: usize,
    levels: &[&'a Shebang],
    execfn: &'a [u8],
    argv0: &'a [u8],
    stack_limit: u64,
) -> Result<(), TooBig> {
    let mut prefix: [&[u8]; 1 + 2 * MAX_SCRIPT_DEPTH] = [&[]; 1 + 2 * MAX_SCRIPT_DEPTH];
    let prefix_len = argv_prefix(levels, execfn, argv0, &mut prefix);
    let args = stack.args().skip(program + 1).map(|arg| -> &[u8] { arg });
    let pointers = 1 + args.clone().count() as u64 + stack.env().count() as u64;
    let strings = prefix[..prefix_len]
        .iter()
        .copied()
        .chain(args)
        .chain(stack.env().map(|var| -> &[u8] { var }))
        .chain(core::iter::once(execfn));
    plan::stack::check_args(strings, pointers, stack_limit)
}

/// An interpreter named by PT_INTERP, open and validated.
struct Interpreter<'a, 'p> {
    path: &'a [u8],
    file: &'p File,
    image: Image<'p>,
}

/// Open the interpreter named by PT_INTERP, or by `--interp` (`chosen`) in its place; the file
/// is kept in `opened`, for its program headers are read in place.
fn open_interpreter<'a, 'p>(
    file: &'a File,
    image: &Image,
    chosen: Option<&'static CStr>,
    exe_path: &'a [u8],
    path_spill: &'a mut Spill,
    opened: &'p mut Option<File>,
    phdrs: &'p mut Spill,
) -> Result<Option<Interpreter<'a, 'p>>, Error<'a>> {
    let Some(ph) = image.interp() else {
        return match chosen {
            Some(_) => Err(Error::at(exe_path, Refusal::failure("--interp given, but the program has no PT_INTERP"))),
            None => Ok(None),
        };
    };
    let path = match chosen {
        Some(path) => path,
        None => {
            elf::check_interp(ph, file.size).map_err(|reason| Error::cannot_execute(exe_path, reason))?;
            let bytes = file
                .bytes(ph.p_offset, ph.p_filesz as usize, path_spill)
                .map_err(|reason| Error::cannot_execute(exe_path, reason))?;
            let len = elf::interp_path(bytes).map_err(|reason| Error::cannot_execute(exe_path, reason))?.len();
            cstr(&bytes[..=len])
        }
    };
    let interp_file: &File = opened
        .insert(input::source::open(path).map_err(|refusal| Error::interpreter(exe_path, path.to_bytes(), refusal))?);
    let interp_image = load::inspect(interp_file, phdrs)
        .and_then(|image| elf::check_has_loads(&image).map(|()| image))
        .map_err(|reason| Error::interpreter(exe_path, path.to_bytes(), Refusal::cannot_execute(reason)))?;
    Ok(Some(Interpreter { path: path.to_bytes(), file: interp_file, image: interp_image }))
}

/// Where the kernel would map a segment over its fresh address space, this address space still
/// holds the preloader (a documented difference).
const SEGMENT_OVER_PRELOADER: &str =
    "a segment overlaps memory the preloader holds (its own pages, the stack, the vDSO or a reservation)";

fn map_error(errno: rustix::io::Errno) -> Refusal {
    match errno {
        rustix::io::Errno::EXIST => Refusal::cannot_execute(SEGMENT_OVER_PRELOADER),
        other => Refusal::from_errno(other.raw_os_error()),
    }
}

/// Randomness for one launch: AT_RANDOM, then the PIE offset, brk offset and stack gap.
struct Random {
    at_random: [u8; 16],
    mmap: u64,
    brk: u64,
    gap: u64,
}

fn random_values() -> Result<Random, Refusal> {
    let mut bytes = [0u8; 40];
    match rustix::rand::getrandom(&mut bytes[..], rustix::rand::GetRandomFlags::empty()) {
        Ok(40) => {}
        _ => return Err(Refusal::failure("getrandom failed")),
    }
    let (at_random, words) = bytes.split_at(16);
    let mut words = words.chunks_exact(8).map(|word| u64::from_ne_bytes(word.try_into().unwrap_or([0; 8])));
    let mut next = || words.next().unwrap_or(0);
    Ok(Random { at_random: at_random.try_into().unwrap_or([0; 16]), mmap: next(), brk: next(), gap: next() })
}

/// Storage for what is read from the files, alive until the jump.
struct Buffers {
    path: [u8; PATH_MAX],
    levels: Lazy<[Shebang; MAX_SCRIPT_DEPTH]>,
    phdrs: Spill,
    /// PT_INTERP when it is not in the head.
    interp_path: Spill,
    interp_phdrs: Spill,
    /// With --fd, how messages name the program: "NAME (fd N)".
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

    /// Unmap what was mapped for this launch, so that nothing of it reaches the program.
    fn release(&mut self) {
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

/// Everything the jump needs, once the preloader's own buffers are no longer referred to.
struct Jump {
    /// The stack image, in a scratch mapping of `scratch_len` bytes.
    scratch: *mut u8,
    scratch_len: usize,
    /// Where the image goes and its size.
    sp: u64,
    size: usize,
    entry: u64,
}

/// Run the program; returns only on failure or after --dry-run, with the exit status.
fn run(stack: &InitialStack, options: &Options<'static>, program: usize) -> i32 {
    // One constant, so that the compiler clears the buffers in place instead of building each
    // part in a temporary and copying it in: every stack page touched costs a page fault.
    let mut buffers = Buffers::EMPTY;
    let mut opened = Opened { program: None, interpreter: None };
    match launch(stack, options, program, &mut buffers, &mut opened) {
        Ok(None) => 0,
        Ok(Some(jump)) => {
            drop(opened);
            buffers.release();
            // SAFETY: the image is complete in the scratch mapping, which is unmapped after the
            // copy; `entry` is the interpreter's (or static program's) entry, mapped executable.
            unsafe { arch::enter(jump.scratch, jump.sp, jump.size, jump.scratch, jump.scratch_len, jump.entry) }
        }
        Err(error) => error.report(),
    }
}

fn launch<'b>(
    stack: &InitialStack,
    options: &Options<'static>,
    program: usize,
    buffers: &'b mut Buffers,
    opened: &'b mut Opened,
) -> Result<Option<Jump>, Error<'b>> {
    let Buffers { path, levels, phdrs, interp_path, interp_phdrs, label } = buffers;
    let Opened { program: program_file, interpreter: interp_file } = opened;
    let name = stack.arg(program);
    // The program's credentials as a plain exec would give them (AT_SECURE goes on its stack).
    let ids = Ids::from_auxv(stack.auxv());
    let credentials = credentials::plan(ids, stack.aux(AT_SECURE) == Some(1))
        .map_err(|errno| Error::at(name.to_bytes(), Refusal::failure_errno(errno.raw_os_error())))?;

    // args → source: the descriptor given with --fd (NAME is then only a name), or a PATH
    // search, then `#!` lines down to the ELF file.
    let (file, path, origin) = match options.fd {
        Some(fd) => {
            let label = label
                .get()
                .map_err(|errno| Error::at(name.to_bytes(), Refusal::failure_errno(errno.raw_os_error())))?;
            label.bytes(name.to_bytes()).text(" (fd ").dec(fd as u64).text(")");
            let label: &'b [u8] = label.as_bytes();
            let (file, origin) =
                input::source::from_fd(fd, name.to_bytes()).map_err(|refusal| Error::at(label, refusal))?;
            (file, name, Some((origin, label)))
        }
        None => {
            let (file, path) = input::source::find(name, stack.getenv(b"PATH"), path)
                .map_err(|refusal| Error::at(name.to_bytes(), refusal))?;
            (file, path, None)
        }
    };
    let execfn = path.to_bytes();
    // E2BIG, as execve checks it: on the arguments as given, then after each `#!` level.
    let argv0 = options.argv0.unwrap_or(name.to_bytes());
    let stack_limit = rustix::process::getrlimit(Resource::Stack).current.unwrap_or(u64::MAX);
    let too_big = |_| Error::at(execfn, Refusal::from_errno(rustix::io::Errno::TOOBIG.raw_os_error()));
    check_arguments(stack, program, &[], execfn, argv0, stack_limit).map_err(too_big)?;
    // A sealed program: authenticated and decrypted, to be inflated as it is loaded.
    #[cfg(feature = "sealed")]
    let (file, sealed) = match preload::input::sealed::is_sealed(file.head()) {
        true => (
            input::sealed::unseal(file, stack.getenv(input::sealed::KEY_FD_VAR))
                .map_err(|refusal| Error::at(origin.as_ref().map_or(execfn, |(_, label)| label), refusal))?,
            true,
        ),
        false => (file, false),
    };
    #[cfg(not(feature = "sealed"))]
    let sealed = false;
    let (file, chain) = follow_scripts(file, execfn, levels)?;
    let file: &'b File = program_file.insert(file);
    let levels = &chain.levels[..chain.depth];
    for depth in 1..=levels.len() {
        check_arguments(stack, program, &levels[..depth], execfn, argv0, stack_limit).map_err(too_big)?;
    }
    let named = origin.as_ref().map_or(execfn, |(_, label)| label);
    let exe_path = levels.last().map_or(named, |level| level.interpreter().to_bytes());

    // ELF check: the program, then its interpreter.
    let image = load::inspect(file, &mut *phdrs).map_err(|reason| Error::cannot_execute(exe_path, reason))?;
    let extent = Extent::of(&image);
    let chosen_interp = options.interp.map(stack::argument_tail);
    let interp = open_interpreter(file, &image, chosen_interp, exe_path, interp_path, interp_file, &mut *interp_phdrs)?;
    if interp.is_none() {
        elf::check_has_loads(&image).map_err(|reason| Error::cannot_execute(exe_path, reason))?;
    }

    // Plan: randomisation as the kernel would apply it.
    let fail = |refusal| Error::at(exe_path, refusal);
    let top = stack.stack_top().ok_or(fail(Refusal::failure("no AT_EXECFN in the preloader's auxv")))?;
    let randomize = top != UNRANDOMIZED_STACK_TOP;
    let random = random_values().map_err(fail)?;
    let placement = match (image.relocatable, options.base, &interp) {
        (false, Some(_), _) => return Err(fail(Refusal::failure("--base needs a position-independent program"))),
        (false, None, _) => Placement::Fixed,
        (true, Some(base), _) => Placement::Bias(base.wrapping_sub(extent.first_start)),
        (true, None, Some(_)) => Placement::Bias(plan::load::pie_bias(
            &extent,
            if randomize { plan::load::mmap_rnd(random.mmap) } else { 0 },
        )),
        (true, None, None) => Placement::Anywhere { align: extent.align },
    };
    let mut reserved = options.reserve;
    if let Some(list) = stack.getenv(b"PRELOAD_RESERVE") {
        reserved.extend_from_list(list).map_err(|reason| Error::at(b"PRELOAD_RESERVE", Refusal::failure(reason)))?;
    }

    let mut verbose = Printer::new(if options.dry_run { STDOUT } else { STDERR });
    if options.dry_run || options.verbose {
        for range in reserved.as_slice() {
            verbose.line().text("reserve ").hex(range.start).text("-").hex(range.end);
            verbose.end();
        }
        let planned = match placement {
            Placement::Fixed => Some(0),
            Placement::Bias(bias) => Some(bias),
            Placement::Anywhere { .. } => None,
        };
        if let Some((Origin::Stream(memfd), _)) = &origin {
            report_stream(&mut verbose, exe_path, file.size, memfd);
        }
        if sealed {
            verbose
                .line()
                .bytes(exe_path)
                .text(": sealed, authenticated; ")
                .dec(file.size)
                .text(" bytes inflated into anonymous memory, segments copied; its container stands for it as exe");
            verbose.end();
        }
        report::image(&mut verbose, "program", exe_path, &image, planned);
        if let Some(interp) = &interp {
            report::image(
                &mut verbose,
                "interpreter",
                interp.path,
                &interp.image,
                if interp.image.relocatable { None } else { Some(0) },
            );
        }
    }
    if options.dry_run {
        return Ok(None);
    }

    // Reserve, then map the program; a Wine loader gets Wine's ranges before its interpreter.
    let protected = reserve::Protected::new(top, stack_limit);
    for range in reserved.as_slice() {
        reserve::reserve(range, &protected).map_err(|why| Error::reservation(*range, why))?;
    }
    let mut owned = plan::load::Owned::default();
    let bias =
        load::map(file, &image, &extent, placement, &mut owned).map_err(|errno| match (errno, options.base) {
            (rustix::io::Errno::EXIST, Some(_)) => {
                fail(Refusal::failure("--base: the program's address range is already in use"))
            }
            _ => fail(map_error(errno)),
        })?;
    if let Some(symbol) = wine::find_symbol(&image, bias, file.size) {
        reserve_for_wine(stack, &protected, &mut reserved, options.verbose.then_some(&mut verbose))?;
        let table = wine::publish(reserved.as_slice(), symbol)
            .map_err(|errno| fail(Refusal::failure_errno(errno.raw_os_error())))?;
        if options.verbose {
            verbose
                .line()
                .text("wine_main_preload_info at ")
                .hex(symbol)
                .text(" -> table at ")
                .hex(table)
                .text(", ")
                .dec(reserved.as_slice().len() as u64)
                .text(" ranges");
            verbose.end();
        }
    }
    let (base, entry) = match &interp {
        Some(interp) => {
            let interp_extent = Extent::of(&interp.image);
            let placement =
                if interp.image.relocatable { Placement::Anywhere { align: PAGE_SIZE } } else { Placement::Fixed };
            let interp_bias = load::map(interp.file, &interp.image, &interp_extent, placement, &mut owned)
                .map_err(|errno| Error::interpreter(exe_path, interp.path, map_error(errno)))?;
            (interp_bias, interp_bias.wrapping_add(interp.image.entry))
        }
        None => (0, bias.wrapping_add(image.entry)),
    };
    let start_brk =
        plan::load::start_brk(bias + extent.end_bss, image.relocatable && interp.is_none(), randomize, random.brk);

    // Stack: argv, envp and auxv in a scratch buffer, copied onto the real stack at the jump.
    let mut prefix: [&[u8]; 1 + 2 * MAX_SCRIPT_DEPTH] = [&[]; 1 + 2 * MAX_SCRIPT_DEPTH];
    let prefix_len = argv_prefix(levels, execfn, argv0, &mut prefix);
    let aux = ProgramAux {
        phdr: bias + extent.phdr,
        phnum: image.phdrs.len() as u64,
        base,
        entry: bias.wrapping_add(image.entry),
        secure: u64::from(credentials.secure),
    };
    let spec = StackImage {
        top,
        argv: prefix[..prefix_len].iter().copied().chain(stack.args().skip(program + 1).map(|arg| -> &[u8] { arg })),
        // The key's descriptor is closed: the program's environment does not name it either.
        envp: stack.env().filter(move |var| !(sealed && var.starts_with(b"PRELOAD_KEY_FD="))),
        execfn,
        platform: stack.platform(),
        random: random.at_random,
        gap: if randomize { random.gap % 8192 } else { 0 },
        auxv: program_auxv(stack.auxv(), aux),
    };
    let layout = spec.layout();
    let size = layout.size(top);
    let scratch_len = page_align(size as u64) as usize;
    // SAFETY: a fresh private anonymous mapping that only this function uses. POPULATE: all of
    // it is written, and allocating the pages in the mmap costs less than a fault for each.
    let scratch = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            scratch_len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::POPULATE,
        )
    }
    .map_err(|errno| fail(Refusal::failure_errno(errno.raw_os_error())))?;
    // SAFETY: the mapping is scratch_len >= size bytes, zeroed, and exclusively ours.
    let image_bytes = unsafe { core::slice::from_raw_parts_mut(scratch as *mut u8, size) };
    spec.write(&layout, image_bytes);

    // mm fields: comm, an executable stack if asked for, then one PR_SET_MM_MAP.
    let comm =
        execfn.iter().rposition(|&b| b == b'/').map_or(path, |slash| cstr(&path.to_bytes_with_nul()[slash + 1..]));
    let _ = rustix::thread::set_name(comm);
    if image.executable_stack() {
        // SAFETY: PROT_GROWSDOWN extends the change over the whole [stack] mapping, which holds
        // nothing but the stack; adding PROT_EXEC removes no access.
        let exec_stack = unsafe {
            rustix::mm::mprotect(
                page_start(top - 1) as *mut c_void,
                PAGE_SIZE as usize,
                MprotectFlags::READ | MprotectFlags::WRITE | MprotectFlags::EXEC | MprotectFlags::GROWSDOWN,
            )
        };
        if exec_stack.is_err() && options.verbose {
            verbose.line().text("could not make the stack executable");
            verbose.end();
        }
    }
    let mut map = PrctlMmMap {
        start_code: bias + extent.start_code,
        end_code: bias + extent.end_code,
        start_data: bias + extent.start_data,
        end_data: bias + extent.end_data,
        start_brk,
        brk: start_brk,
        start_stack: layout.sp,
        arg_start: layout.arg_start,
        arg_end: layout.arg_end,
        env_start: layout.env_start,
        env_end: layout.env_end,
        auxv: (scratch as u64 + (layout.auxv - layout.sp)) as *mut u64,
        auxv_size: layout.auxv_len as u32,
        exe_fd: -1,
    };
    let outcome = mm::set(&mut map, file.fd.as_fd());
    // The capabilities of the preloader's file served PR_SET_MM_MAP: the program must not keep them.
    let dropped = credentials::apply(&credentials)
        .map_err(|_| fail(Refusal::failure("cannot drop the capabilities of the preloader's file")))?;
    if options.verbose {
        report_outcome(&mut verbose, base, entry, start_brk, layout.sp, outcome);
        report::credentials(&mut verbose, exe_path, credentials::not_honoured(file.fd.as_fd(), ids), dropped);
    }

    // The caller closes the files, releases the buffers and jumps; a sealed program's table
    // copied out of its plaintext (into a Spill: the head's stays in its own pages) is wiped.
    #[cfg(feature = "sealed")]
    if sealed {
        phdrs.wipe();
    }
    Ok(Some(Jump { scratch: scratch as *mut u8, scratch_len, sp: layout.sp, size, entry }))
}

/// Wine's default ranges and WINEPRELOADRESERVE, added to `reserved` where they could be
/// reserved; one that cannot is left out (and so never published), as Wine's preloader does.
fn reserve_for_wine(
    stack: &InitialStack,
    protected: &reserve::Protected,
    reserved: &mut RangeList,
    mut verbose: Option<&mut Printer>,
) -> Result<(), Error<'static>> {
    let mut wanted = RangeList::default();
    for range in WINE_DEFAULT_RANGES {
        let _ = wanted.push(range);
    }
    if let Some(text) = stack.getenv(b"WINEPRELOADRESERVE") {
        if let Some(range) = preload::plan::reserve::parse_wine_reserve(text)
            .map_err(|reason| Error::at(b"WINEPRELOADRESERVE", Refusal::failure(reason)))?
        {
            let _ = wanted.push(range);
        }
    }
    for range in wanted.as_slice() {
        let outcome = reserve::reserve(range, protected);
        if let Some(out) = verbose.as_deref_mut() {
            out.line()
                .text(if outcome.is_ok() { "reserve for Wine " } else { "could not reserve for Wine " })
                .hex(range.start)
                .text("-")
                .hex(range.end);
            out.end();
        }
        if outcome.is_ok() {
            reserved.push(*range).map_err(|reason| Error::at(b"WINEPRELOADRESERVE", Refusal::failure(reason)))?;
        }
    }
    Ok(())
}

fn report_stream(out: &mut Printer, name: &[u8], size: u64, memfd: &input::stream::Memfd) {
    out.line()
        .bytes(name)
        .text(": a stream of ")
        .dec(size)
        .text(" bytes, held in a sealed memfd; segments copied into anonymous memory");
    out.end();
    if let Some(why) = memfd.exec_refused {
        out.line()
            .text("executable memfds are refused (")
            .text(preload::report::refusal::errno_text(why.raw_os_error()))
            .text(", vm.memfd_noexec): /proc/self/exe cannot show the program");
        out.end();
    }
}

fn report_outcome(out: &mut Printer, base: u64, entry: u64, brk: u64, sp: u64, outcome: ExeOutcome) {
    out.line()
        .text("interpreter base ")
        .hex(base)
        .text(", entry ")
        .hex(entry)
        .text(", brk ")
        .hex(brk)
        .text(", stack ")
        .hex(sp);
    out.end();
    match outcome {
        ExeOutcome::Set => out.line().text("/proc/self/exe set to the program"),
        ExeOutcome::SetAfterUnmapping => {
            out.line().text("/proc/self/exe set to the program after replacing the preloader's file mappings")
        }
        ExeOutcome::Unchanged(errno) => out
            .line()
            .text("/proc/self/exe could not be set (")
            .text(preload::report::refusal::errno_text(errno.raw_os_error()))
            .text("): it stays the preloader"),
        ExeOutcome::Failed(errno) => out
            .line()
            .text("PR_SET_MM_MAP failed (")
            .text(preload::report::refusal::errno_text(errno.raw_os_error()))
            .text("): /proc shows the preloader's mm fields"),
    };
    out.end();
}
