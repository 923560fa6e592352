//! Started by binfmt_misc: what the kernel's `load_misc_binary` handed the preloader, and what
//! the program gets from it.
//!
//! binfmt_misc runs the registered interpreter with argv `[INTERPRETER, PATH, ARG...]`: PATH is
//! the file as execve was given it, and the original argv[0] is dropped, unless the entry has
//! flag `P` (preserve argv[0]), which gives `[INTERPRETER, PATH, ARGV0, ARG...]` and sets bit 0
//! of AT_FLAGS. With flag `O` (open binary; `C` implies it) the kernel opens the file itself,
//! whatever its read permission, and passes the descriptor as AT_EXECFD. Neither shows without
//! those flags, so only then is the command line taken as binfmt_misc's rather than parsed as
//! options: PATH names the program (AT_EXECFN, comm, messages), and with `O` the program is read
//! from the descriptor, never opened by path (an execute-only file can run).

pub use crate::plan::stack::{AT_EXECFD, AT_FLAGS};

/// Bit 0 of AT_FLAGS: binfmt_misc's "argv[0] preserved".
pub const AT_FLAGS_PRESERVE_ARGV0: u64 = 1;

/// Where the program's parts are in the preloader's argv, started by binfmt_misc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binfmt {
    /// argv index of the program's path (always 1).
    pub path: usize,
    /// argv index of the program's argv[0]: the original argv[0] (flag `P`), or else the path,
    /// as without `P` the kernel kept nothing better.
    pub argv0: usize,
    /// argv index of the program's first argument after argv[0].
    pub first_arg: usize,
    /// The descriptor of the opened binary (flag `O`).
    pub execfd: Option<i32>,
}

/// Why a binfmt_misc start cannot be used.
pub const NO_PATH: &str = "started by binfmt_misc without the program's path";
pub const BAD_EXECFD: &str = "started by binfmt_misc with an AT_EXECFD that is not a descriptor";

/// The binfmt_misc start told by the preloader's own auxv (`at_flags`, `at_execfd`) for an
/// argv of `argc` strings; `None` for an ordinary start, whose command line holds options.
pub fn from_kernel(argc: usize, at_flags: Option<u64>, at_execfd: Option<u64>) -> Option<Result<Binfmt, &'static str>> {
    let preserved = at_flags.is_some_and(|flags| flags & AT_FLAGS_PRESERVE_ARGV0 != 0);
    if !preserved && at_execfd.is_none() {
        return None;
    }
    Some(decide(argc, preserved, at_execfd))
}

fn decide(argc: usize, preserved: bool, at_execfd: Option<u64>) -> Result<Binfmt, &'static str> {
    if argc < 2 {
        return Err(NO_PATH);
    }
    let execfd = match at_execfd {
        Some(fd) => Some(i32::try_from(fd).map_err(|_| BAD_EXECFD)?),
        None => None,
    };
    // The kernel gives every exec an argv[0] ("" for an empty argv), so with `P` argv[2] is
    // there; without it, the path stands for it.
    let (argv0, first_arg) = if preserved && argc >= 3 { (2, 3) } else { (1, 2) };
    Ok(Binfmt { path: 1, argv0, first_arg, execfd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_start_parses_options() {
        assert_eq!(from_kernel(3, Some(0), None), None);
        assert_eq!(from_kernel(1, None, None), None);
        assert_eq!(from_kernel(3, Some(2), None), None, "only bit 0 is binfmt_misc's");
    }

    #[test]
    fn without_p_the_path_is_argv0() {
        // `./app one two` registered with `O`: [preload, ./app, one, two], AT_EXECFD 3.
        let binfmt = from_kernel(4, Some(0), Some(3)).unwrap().unwrap();
        assert_eq!(binfmt, Binfmt { path: 1, argv0: 1, first_arg: 2, execfd: Some(3) });
    }

    #[test]
    fn with_p_the_original_argv0_is_kept() {
        // `exec -a name ./app one` registered with `P`: [preload, ./app, name, one].
        let binfmt = from_kernel(4, Some(AT_FLAGS_PRESERVE_ARGV0), None).unwrap().unwrap();
        assert_eq!(binfmt, Binfmt { path: 1, argv0: 2, first_arg: 3, execfd: None });
        // And with `O` as well.
        let binfmt = from_kernel(3, Some(1), Some(5)).unwrap().unwrap();
        assert_eq!(binfmt, Binfmt { path: 1, argv0: 2, first_arg: 3, execfd: Some(5) });
        // Defensive: no argv[0] after the path.
        assert_eq!(from_kernel(2, Some(1), None), Some(Ok(Binfmt { path: 1, argv0: 1, first_arg: 2, execfd: None })));
    }

    #[test]
    fn a_start_without_path_or_with_a_bad_descriptor_is_refused() {
        assert_eq!(from_kernel(1, Some(1), None), Some(Err(NO_PATH)));
        assert_eq!(from_kernel(0, None, Some(3)), Some(Err(NO_PATH)));
        assert_eq!(from_kernel(2, None, Some(1 << 31)), Some(Err(BAD_EXECFD)));
    }
}
