//! The program's argv after `#!` lines, as binfmt_script builds it, and the kernel's E2BIG check
//! of argv, environment and execfn at each level.

use core::ffi::CStr;

use crate::exec::script::{BINPRM_BUF_SIZE, MAX_SCRIPT_DEPTH, Shebang};
use crate::plan::stack::{self, TooBig};

/// One `#!` line kept until the jump: its interpreter and optional argument, each in a buffer of
/// the kernel's size (so a NUL always follows the copy). All-zero bytes are a line without an
/// argument, so storage for it can start as fresh anonymous memory.
pub struct Level {
    interpreter: [u8; BINPRM_BUF_SIZE],
    argument: [u8; BINPRM_BUF_SIZE],
    has_argument: bool,
    argument_len: usize,
}

impl Level {
    pub const EMPTY: Self = Self {
        interpreter: [0; BINPRM_BUF_SIZE],
        argument: [0; BINPRM_BUF_SIZE],
        has_argument: false,
        argument_len: 0,
    };

    /// Keep `shebang`, whose names are shorter than the buffers (the parser reads at most
    /// BINPRM_BUF_SIZE bytes).
    pub fn keep(&mut self, shebang: &Shebang) {
        *self = Self::EMPTY;
        self.interpreter[..shebang.interpreter.len()].copy_from_slice(shebang.interpreter);
        if let Some(argument) = shebang.argument {
            self.argument[..argument.len()].copy_from_slice(argument);
            self.has_argument = true;
            self.argument_len = argument.len();
        }
    }

    pub fn interpreter(&self) -> &CStr {
        crate::cstr(&self.interpreter)
    }

    pub fn argument(&self) -> Option<&[u8]> {
        self.has_argument.then(|| &self.argument[..self.argument_len])
    }
}

/// The longest argv prefix: argv[0], or the innermost interpreter, then an argument and a path
/// for each level.
pub const MAX_PREFIX: usize = 1 + 2 * MAX_SCRIPT_DEPTH;

/// The strings that replace argv[0]: without scripts, argv[0] (or --argv0) alone; with them, what
/// binfmt_script builds: the innermost interpreter, its argument, the script it runs, and so on
/// outwards to `path`. The original arguments without argv[0] follow them.
pub struct Prefix<'a> {
    strings: [&'a [u8]; MAX_PREFIX],
    len: usize,
}

impl<'a> Prefix<'a> {
    /// `levels` are the `#!` lines followed, outermost first; `path` is the program as opened.
    pub fn new(levels: &'a [Level], path: &'a [u8], argv0: &'a [u8]) -> Self {
        let mut prefix = Self { strings: [&[]; MAX_PREFIX], len: 0 };
        if levels.is_empty() {
            prefix.push(argv0);
            return prefix;
        }
        for (index, level) in levels.iter().enumerate().rev() {
            if index + 1 == levels.len() {
                prefix.push(level.interpreter().to_bytes());
            }
            if let Some(argument) = level.argument() {
                prefix.push(argument);
            }
            prefix.push(if index == 0 { path } else { levels[index - 1].interpreter().to_bytes() });
        }
        prefix
    }

    fn push(&mut self, string: &'a [u8]) {
        self.strings[self.len] = string;
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[&'a [u8]] {
        &self.strings[..self.len]
    }
}

/// The kernel's E2BIG check of the execve it would make after the `#!` `levels` followed so far:
/// the prefix, the original arguments after argv[0] (`rest`), the environment and execfn. The
/// pointers are counted for the execve as made, with the arguments as given.
pub fn check<'a, 'r: 'a, 'e: 'a>(
    levels: &'a [Level],
    execfn: &'a [u8],
    argv0: &'a [u8],
    rest: impl Iterator<Item = &'r [u8]> + Clone,
    env: impl Iterator<Item = &'e [u8]> + Clone,
    stack_limit: u64,
) -> Result<(), TooBig> {
    let prefix = Prefix::new(levels, execfn, argv0);
    let pointers = 1 + rest.clone().count() as u64 + env.clone().count() as u64;
    let (rest, env) = (rest.map(|arg| -> &'a [u8] { arg }), env.map(|var| -> &'a [u8] { var }));
    let strings = prefix.as_slice().iter().copied().chain(rest).chain(env).chain(core::iter::once(execfn));
    stack::check_args(strings, pointers, stack_limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::stack::MAX_ARG_STRLEN;

    fn level(interpreter: &[u8], argument: Option<&[u8]>) -> Level {
        let mut level = Level::EMPTY;
        level.keep(&Shebang { interpreter, argument });
        level
    }

    #[test]
    fn without_scripts_the_prefix_is_argv0() {
        assert_eq!(Prefix::new(&[], b"./prog", b"name").as_slice(), [b"name".as_slice()]);
    }

    #[test]
    fn one_script_gives_interpreter_argument_and_the_script_path() {
        let sh = level(b"/bin/sh", Some(b"-e x"));
        assert_eq!(Prefix::new(&[sh], b"./script", b"ignored").as_slice(), [&b"/bin/sh"[..], b"-e x", b"./script"]);
    }

    #[test]
    fn nested_scripts_run_innermost_first_each_with_the_outer_one_as_its_script() {
        // ./outer says "#!/tmp/inner -o", /tmp/inner says "#!/bin/sh".
        let levels = [level(b"/tmp/inner", Some(b"-o")), level(b"/bin/sh", None)];
        assert_eq!(
            Prefix::new(&levels, b"./outer", b"x").as_slice(),
            [&b"/bin/sh"[..], b"/tmp/inner", b"-o", b"./outer"]
        );
    }

    #[test]
    fn a_kept_level_is_reset_before_the_next_line() {
        let mut kept = level(b"/usr/bin/interpreter-with-a-long-name", Some(b"arg"));
        kept.keep(&Shebang { interpreter: b"/bin/sh", argument: None });
        assert_eq!(kept.interpreter().to_bytes(), b"/bin/sh");
        assert_eq!(kept.argument(), None);
    }

    #[test]
    fn the_check_counts_the_prefix_of_the_level_it_is_made_at() {
        let at_limit = level(&[b'a'; BINPRM_BUF_SIZE - 2], None);
        let none = core::iter::empty::<&[u8]>;
        assert_eq!(check(&[], b"./p", b"./p", none(), none(), 8 << 20), Ok(()));
        assert_eq!(check(&[at_limit], b"./p", b"./p", none(), none(), 8 << 20), Ok(()));
        // A single string of MAX_ARG_STRLEN bytes is refused, wherever it is.
        let huge = [b'b'; MAX_ARG_STRLEN];
        assert_eq!(check(&[], b"./p", b"./p", core::iter::once(&huge[..]), none(), 8 << 20), Err(TooBig));
        assert_eq!(check(&[], b"./p", b"./p", none(), core::iter::once(&huge[..]), 8 << 20), Err(TooBig));
    }
}
