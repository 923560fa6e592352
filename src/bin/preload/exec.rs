//! The first step, resolve: from PROGRAM (or the descriptor given with --fd) to the ELF file
//! that will really be loaded: PATH search, a sealed container opened, `#!` lines followed as
//! binfmt_script does, and the kernel's E2BIG check at each level.

use core::ffi::CStr;

use preload::cli::Options;
use preload::exec::args::{self, Level};
use preload::exec::script::{self, MAX_SCRIPT_DEPTH};
use preload::exec::search::PATH_MAX;
use preload::report::msg::Msg;
use preload::report::refusal::Refusal;
use rustix::io::Errno;

#[cfg(feature = "sealed")]
use crate::input::source::Held;
use crate::input::source::{self, File};
use crate::report::Error;
use crate::sys::initial_stack::{InitialStack, Strings};
use crate::sys::mem::{Lazy, Zeroable};

/// What was asked for: the preloader's own stack, its options, and where PROGRAM is in argv.
pub struct Request<'s> {
    pub stack: &'s InitialStack,
    pub options: &'s Options<'static>,
    /// argv index of PROGRAM (or NAME with --fd).
    pub program: usize,
    /// argv index of the program's first argument after argv[0] (`program + 1`, unless
    /// binfmt_misc's flag P put the original argv[0] after PROGRAM).
    pub first_arg: usize,
    /// RLIMIT_STACK, which bounds the arguments (E2BIG) and where reservations may go.
    pub stack_limit: u64,
}

impl Request<'_> {
    /// PROGRAM as typed.
    pub fn name(&self) -> &'static CStr {
        self.stack.arg(self.program)
    }

    /// argv[0] for the program: --argv0, or PROGRAM as typed.
    pub fn argv0(&self) -> &'static [u8] {
        self.options.argv0.unwrap_or(self.name().to_bytes())
    }

    /// The program's arguments after argv[0].
    pub fn rest(&self) -> Strings {
        self.stack.args_from(self.first_arg)
    }
}

/// Storage the resolved program refers to until the jump.
pub struct Storage<'b> {
    /// The path found by the PATH search, NUL-terminated.
    pub path: &'b mut [u8; PATH_MAX],
    pub levels: &'b mut Lazy<[Level; MAX_SCRIPT_DEPTH]>,
    /// With --fd, how messages name the program: "NAME (fd N)".
    pub label: &'b mut Lazy<Msg<{ PATH_MAX + 32 }>>,
    pub opened: &'b mut Option<File>,
}

// SAFETY: byte arrays, a bool and a length: all zero is a line without an argument.
unsafe impl Zeroable for [Level; MAX_SCRIPT_DEPTH] {}

// SAFETY: a Msg is a byte array and a length: all zero is the empty message (Msg::new).
unsafe impl<const N: usize> Zeroable for Msg<N> {}

/// The ELF file to load, and how it was reached.
pub struct Resolved<'b> {
    pub file: &'b File,
    /// The path as opened (NAME with --fd): AT_EXECFN, comm, and the script path in argv.
    pub path: &'b CStr,
    /// How messages name what is loaded: the innermost `#!` interpreter, else the path (or
    /// "NAME (fd N)").
    pub exe_path: &'b [u8],
    levels: &'b [Level],
}

impl<'b> Resolved<'b> {
    /// The `#!` lines followed, outermost first.
    pub fn levels(&self) -> &'b [Level] {
        self.levels
    }

    pub fn execfn(&self) -> &'b [u8] {
        self.path.to_bytes()
    }

    /// A sealed container, whose key's descriptor is closed and must not be named to the program.
    pub fn is_sealed(&self) -> bool {
        #[cfg(feature = "sealed")]
        if let Held::Sealed(_) = self.file.held {
            return true;
        }
        false
    }
}

pub fn resolve<'b>(request: &Request, storage: Storage<'b>) -> Result<Resolved<'b>, Error<'b>> {
    let Storage { path, levels, label, opened } = storage;
    let name = request.name();
    let (file, path, named): (File, &'b CStr, &'b [u8]) = match request.options.fd {
        Some(fd) => {
            let label = label.get().map_err(|errno| Error::failure(name.to_bytes(), errno))?;
            label.bytes(name.to_bytes()).text(" (fd ").dec(fd as u64).text(")");
            let label: &'b [u8] = label.as_bytes();
            (
                source::from_fd(fd, name.to_bytes(), request.options.max_size)
                    .map_err(|refusal| Error::at(label, refusal))?,
                name,
                label,
            )
        }
        None => {
            let (file, path) = source::find(name, request.stack.getenv(b"PATH"), path)
                .map_err(|refusal| Error::at(name.to_bytes(), refusal))?;
            (file, path, path.to_bytes())
        }
    };
    let execfn = path.to_bytes();
    // E2BIG, as execve checks it: on the arguments as given, then after each `#!` level.
    check_arguments(request, &[], execfn)?;
    #[cfg(feature = "sealed")]
    let mut file = unseal(file, request, named)?;
    #[cfg(not(feature = "sealed"))]
    let mut file = match request.stack.getenv(b"PRELOAD_KEY_FD") {
        // Without sealed support nothing is a container the key could authenticate: a key
        // offered must not reach the program all the same.
        Some(_) => {
            return Err(Error::cannot_execute(
                named,
                "a key is offered (PRELOAD_KEY_FD) but this preload has no sealed support",
            ));
        }
        None => file,
    };
    // The levels followed are `chain[..depth]`, filled in order; a message names one after
    // `chain` is given up for good (`named_by`).
    let mut chain: &'b mut [Level] = &mut [];
    let mut depth = 0;
    let mut storage = Some(levels);
    loop {
        let shebang = match script::parse(file.head()) {
            None => break,
            Some(Err(reason)) => return Err(Error::cannot_execute(named_by(chain, depth, execfn), reason)),
            Some(Ok(shebang)) => shebang,
        };
        if let Some(lazy) = storage.take() {
            chain = lazy.get().map_err(|errno| Error::failure(execfn, errno))?;
        }
        let Some(level) = chain.get_mut(depth) else {
            return Err(Error::cannot_execute(execfn, "Too many levels of #! interpreters"));
        };
        level.keep(&shebang);
        depth += 1;
        check_arguments(request, &chain[..depth], execfn)?;
        if let Err(refusal) = source::open(chain[depth - 1].interpreter()).map(|opened| file = opened) {
            let (path, interpreter) = (named_by(chain, depth - 1, execfn), named_by(chain, depth, execfn));
            return Err(Error::Interpreter { path, interpreter, refusal });
        }
    }
    let levels: &'b [Level] = chain;
    let levels = &levels[..depth];
    let exe_path = if depth > 0 { named_by(levels, depth, execfn) } else { named };
    Ok(Resolved { file: &*opened.insert(file), path, exe_path, levels })
}

/// What is run after following `depth` of the `#!` levels: the innermost interpreter, or
/// `execfn` before the first.
fn named_by<'b>(levels: &'b [Level], depth: usize, execfn: &'b [u8]) -> &'b [u8] {
    depth.checked_sub(1).and_then(|last| levels.get(last)).map_or(execfn, |level| level.interpreter().to_bytes())
}

/// A sealed container: authenticated and decrypted, to be inflated as it is loaded.
#[cfg(feature = "sealed")]
fn unseal<'b>(file: File, request: &Request, named: &'b [u8]) -> Result<File, Error<'b>> {
    use crate::input::sealed;
    use rustix::fd::AsFd;
    let key_fd_var = request.stack.getenv(sealed::KEY_FD_VAR);
    if !preload::input::sealed::is_sealed(file.head()) {
        return match key_fd_var {
            None => Ok(file),
            // A plain program (or a script) in place of a container must not get the key.
            Some(value) => Err(Error::at(named, sealed::refuse_key(value, file.fd.as_fd()))),
        };
    }
    let program =
        sealed::unseal(file.fd.as_fd(), file.size, key_fd_var).map_err(|refusal| Error::at(named, refusal))?;
    Ok(file.unsealed(program))
}

/// The kernel's E2BIG check after the `levels` followed so far.
fn check_arguments<'b>(request: &Request, levels: &[Level], execfn: &'b [u8]) -> Result<(), Error<'b>> {
    args::check(levels, execfn, request.argv0(), request.rest(), request.stack.env(), request.stack_limit)
        .map_err(|_| Error::at(execfn, Refusal::from_errno(Errno::TOOBIG.raw_os_error())))
}
