//! Command-line parsing: `preload [OPTION]... [--] PROGRAM [ARG]...`.

use crate::PAGE_SIZE;
use crate::plan::reserve::{self, RangeList};

/// What the options ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// argv[0] for the program instead of PROGRAM as typed.
    pub argv0: Option<&'a [u8]>,
    /// Print the load plan and anything that could not be set, on stderr.
    pub verbose: bool,
    /// Print the plan, run nothing.
    pub dry_run: bool,
    /// Ranges to keep free (`--reserve`, repeatable).
    pub reserve: RangeList,
    /// Load address of a position-independent program's first page.
    pub base: Option<u64>,
    /// Interpreter to use instead of PT_INTERP.
    pub interp: Option<&'a [u8]>,
    /// Take the program from this inherited descriptor; PROGRAM is then only its name.
    pub fd: Option<i32>,
    /// Without the capability to set /proc/self/exe, get it in a new user namespace.
    pub userns: bool,
    /// The most bytes a program taken from a stream may have (`--max-size`); unset,
    /// [`DEFAULT_MAX_SIZE`].
    pub max_size: Option<u64>,
}

/// How much of a stream is taken in when `--max-size` does not say: 1 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

#[allow(
    clippy::large_enum_variant,
    reason = "the no_std preloader has no allocator to box into; the one Command lives on its stack"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Run the program found at `args[program]` (an index into the preloader's argv), with
    /// `args[program..]` as its arguments.
    Run {
        options: Options<'a>,
        program: usize,
    },
    Help,
    Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError<'a> {
    MissingProgram,
    UnknownOption(&'a [u8]),
    MissingValue(&'a [u8]),
    /// An option's value is malformed: the value and why.
    BadValue(&'a [u8], &'static str),
}

impl UsageError<'_> {
    /// The reason, to be followed by the offending argument where there is one.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingProgram => "missing PROGRAM",
            Self::UnknownOption(_) => "unknown option ",
            Self::MissingValue(_) => "option needs a value: ",
            Self::BadValue(_, reason) => reason,
        }
    }

    pub fn argument(&self) -> &[u8] {
        match self {
            Self::MissingProgram => b"",
            Self::UnknownOption(arg) | Self::MissingValue(arg) => arg,
            Self::BadValue(..) => b"",
        }
    }

    /// The malformed value, printed before the reason.
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            Self::BadValue(value, _) => Some(value),
            _ => None,
        }
    }
}

pub const USAGE: &str = "\
Usage: preload [OPTION]... [--] PROGRAM [ARG]...
Run PROGRAM as if the kernel had exec'd it, loading it and its ELF interpreter by hand.

  --argv0 NAME   pass NAME as argv[0] instead of PROGRAM
  --verbose      print the load plan, and anything that could not be set, on stderr
  --dry-run      print the load plan and exit without running anything
  --reserve START-END
                 keep [START,END) (hex) free for the program: reserved before
                 anything is mapped (repeatable; also PRELOAD_RESERVE=S-E[,S-E]...)
  --base ADDR    load a position-independent PROGRAM at ADDR (hex)
  --interp PATH  use PATH as the ELF interpreter instead of PROGRAM's PT_INTERP
  --fd N         take the program from inherited descriptor N (a file, memfd,
                 pipe, socket or terminal); PROGRAM is then only its name:
                 argv[0], AT_EXECFN and comm, never opened
  --userns       without the capability to set /proc/self/exe, run PROGRAM
                 in a new user namespace mapping only the caller's uid and gid,
                 where it can be set (also PRELOAD_USERNS=1)
  --max-size BYTES
                 refuse a program from a stream (--fd) longer than BYTES
                 (suffix K, M or G for KiB, MiB, GiB; default 1G); RLIMIT_FSIZE
                 bounds it too
  --help         print this help and exit
  --version      print the version and exit

PROGRAM without a '/' is searched for in PATH. Exit status: PROGRAM's own, or
125 usage error or preloader failure, 126 PROGRAM cannot be executed, 127 not found.
";

/// Parse the preloader's own argv (`args[0]` is the preloader's name).
pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Result<Command<'a>, UsageError<'a>> {
    // Spellings are compared with `==`, not matched as patterns: a byte-string pattern compiles
    // to a comparison per byte, several times longer.
    let is = |arg: &[u8], long: &str, short: &str| arg == long.as_bytes() || arg == short.as_bytes();
    let mut options = Options::default();
    let mut args = args.into_iter().enumerate().skip(1);
    while let Some((index, arg)) = args.next() {
        if arg == b"--" {
            return args.next().map(|(program, _)| Command::Run { options, program }).ok_or(UsageError::MissingProgram);
        } else if is(arg, "--help", "-h") {
            return Ok(Command::Help);
        } else if is(arg, "--version", "-V") {
            return Ok(Command::Version);
        } else if is(arg, "--verbose", "-v") {
            options.verbose = true;
        } else if is(arg, "--dry-run", "-n") {
            options.dry_run = true;
        } else if arg == b"--userns" {
            options.userns = true;
        } else if arg.len() > 1 && arg[0] == b'-' {
            let (name, inline) = match arg.iter().position(|&b| b == b'=') {
                Some(eq) => (&arg[..eq], Some(&arg[eq + 1..])),
                None => (arg, None),
            };
            let Some(option) = Valued::named(name) else {
                return Err(UsageError::UnknownOption(arg));
            };
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or(UsageError::MissingValue(arg))?.1,
            };
            set_valued_option(&mut options, option, value)?;
        } else {
            return Ok(Command::Run { options, program: index });
        }
    }
    Err(UsageError::MissingProgram)
}

/// The options that take a value.
#[derive(Clone, Copy)]
enum Valued {
    Argv0,
    Interp,
    Reserve,
    Fd,
    MaxSize,
    Base,
}

impl Valued {
    const ALL: [Self; 6] = [Self::Argv0, Self::Interp, Self::Reserve, Self::Fd, Self::MaxSize, Self::Base];

    fn spelling(self) -> &'static str {
        match self {
            Self::Argv0 => "--argv0",
            Self::Interp => "--interp",
            Self::Reserve => "--reserve",
            Self::Fd => "--fd",
            Self::MaxSize => "--max-size",
            Self::Base => "--base",
        }
    }

    fn named(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|option| option.spelling().as_bytes() == name)
    }
}

fn set_valued_option<'a>(options: &mut Options<'a>, option: Valued, value: &'a [u8]) -> Result<(), UsageError<'a>> {
    let bad = |reason| UsageError::BadValue(value, reason);
    match option {
        Valued::Argv0 => options.argv0 = Some(value),
        Valued::Interp => options.interp = Some(value),
        Valued::Reserve => options.reserve.push(reserve::parse_range(value).map_err(bad)?).map_err(bad)?,
        Valued::Fd => options.fd = Some(parse_fd(value).ok_or(bad("--fd needs a descriptor number"))?),
        Valued::MaxSize => {
            options.max_size =
                Some(parse_size(value).ok_or(bad("--max-size needs a size in bytes (suffix K, M or G)"))?)
        }
        Valued::Base => {
            let base = reserve::parse_address(value).map_err(bad)?;
            if base % PAGE_SIZE != 0 || base == 0 {
                return Err(bad("--base needs a non-zero page-aligned address"));
            }
            options.base = Some(base);
        }
    }
    Ok(())
}

/// A size: decimal digits, optionally followed by K, M or G (powers of 1024, either case); more
/// than 0, and less than 2^63.
fn parse_size(value: &[u8]) -> Option<u64> {
    let (digits, shift) = match value.last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 10),
        b'm' | b'M' => (&value[..value.len() - 1], 20),
        b'g' | b'G' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = digits.iter().fold(0u64, |n, &digit| n * 10 + u64::from(digit - b'0'));
    let size = number.checked_mul(1 << shift).filter(|&size| size > 0 && size < 1 << 63)?;
    Some(size)
}

/// A descriptor number: decimal digits only, within the range of an `int`.
fn parse_fd(value: &[u8]) -> Option<i32> {
    if value.is_empty() || value.len() > 10 {
        return None;
    }
    let mut fd: u64 = 0;
    for &digit in value {
        if !digit.is_ascii_digit() {
            return None;
        }
        fd = fd * 10 + u64::from(digit - b'0');
    }
    i32::try_from(fd).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs<'a>(args: &[&'a str]) -> Result<Command<'a>, UsageError<'a>> {
        parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn program_ends_the_options() {
        let cmd = parse_strs(&["preload", "--verbose", "ls", "--help"]).unwrap();
        assert_eq!(cmd, Command::Run { options: Options { verbose: true, ..Options::default() }, program: 2 });
    }

    #[test]
    fn every_spelling_of_every_option_is_recognised_and_nothing_close_to_one() {
        let run = |options| Ok(Command::Run { options, program: 2 });
        let flags = [
            ("--verbose", Options { verbose: true, ..Options::default() }),
            ("-v", Options { verbose: true, ..Options::default() }),
            ("--dry-run", Options { dry_run: true, ..Options::default() }),
            ("-n", Options { dry_run: true, ..Options::default() }),
            ("--userns", Options { userns: true, ..Options::default() }),
        ];
        for (flag, options) in flags {
            assert_eq!(parse_strs(&["p", flag, "prog"]), run(options), "{flag}");
        }
        for help in ["--help", "-h"] {
            assert_eq!(parse_strs(&["p", help, "prog"]), Ok(Command::Help));
        }
        for version in ["--version", "-V"] {
            assert_eq!(parse_strs(&["p", version, "prog"]), Ok(Command::Version));
        }
        let mut reserve = RangeList::default();
        reserve.push(reserve::parse_range(b"1000-2000").unwrap()).unwrap();
        let valued = [
            ("--argv0=a", Options { argv0: Some(b"a"), ..Options::default() }),
            ("--interp=/l", Options { interp: Some(b"/l"), ..Options::default() }),
            ("--reserve=1000-2000", Options { reserve, ..Options::default() }),
            ("--fd=3", Options { fd: Some(3), ..Options::default() }),
            ("--max-size=1K", Options { max_size: Some(1024), ..Options::default() }),
            ("--base=1000", Options { base: Some(0x1000), ..Options::default() }),
        ];
        for (option, options) in valued {
            assert_eq!(parse_strs(&["p", option, "prog"]), run(options), "{option}");
        }
        for unknown in ["--verbos", "--verbose=1", "--userns=1", "-vn", "--fd3", "--argv", "---", "-"] {
            let expected = if unknown == "-" {
                Ok(Command::Run { options: Options::default(), program: 1 })
            } else {
                Err(UsageError::UnknownOption(unknown.as_bytes()))
            };
            assert_eq!(parse_strs(&["p", unknown, "prog"]), expected, "{unknown}");
        }
    }

    #[test]
    fn double_dash_lets_a_program_start_with_a_dash() {
        let cmd = parse_strs(&["preload", "--", "-weird", "x"]).unwrap();
        assert_eq!(cmd, Command::Run { options: Options::default(), program: 2 });
    }

    #[test]
    fn argv0_takes_a_value_in_both_spellings() {
        let expected = Options { argv0: Some(&b"name"[..]), dry_run: true, ..Options::default() };
        assert_eq!(
            parse_strs(&["p", "--argv0", "name", "-n", "prog"]).unwrap(),
            Command::Run { options: expected, program: 4 }
        );
        assert_eq!(
            parse_strs(&["p", "--argv0=name", "--dry-run", "prog"]).unwrap(),
            Command::Run { options: expected, program: 3 }
        );
        assert_eq!(parse_strs(&["p", "--argv0="]).unwrap_err(), UsageError::MissingProgram);
    }

    #[test]
    fn layout_options_take_checked_values() {
        let Command::Run { options, program } = parse_strs(&[
            "p",
            "--reserve",
            "10000-20000",
            "--reserve=0x30000-0x40000",
            "--base",
            "0x7f0000000000",
            "--interp=/lib/ld.so",
            "prog",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(program, 7);
        assert_eq!(
            options.reserve.as_slice(),
            [reserve::Range::new(0x10000, 0x20000), reserve::Range::new(0x30000, 0x40000)]
        );
        assert_eq!(options.base, Some(0x7f00_0000_0000));
        assert_eq!(options.interp, Some(&b"/lib/ld.so"[..]));
        assert_eq!(
            parse_strs(&["p", "--reserve", "20000-10000", "x"]).unwrap_err(),
            UsageError::BadValue(b"20000-10000", "END must be above START")
        );
        assert_eq!(
            parse_strs(&["p", "--base", "0x1001", "x"]).unwrap_err(),
            UsageError::BadValue(b"0x1001", "--base needs a non-zero page-aligned address")
        );
        assert_eq!(
            parse_strs(&["p", "--base=zz", "x"]).unwrap_err(),
            UsageError::BadValue(b"zz", "not a hexadecimal address")
        );
        assert_eq!(parse_strs(&["p", "--interp"]).unwrap_err(), UsageError::MissingValue(b"--interp"));
        assert_eq!(parse_strs(&["p", "--verbose=1", "x"]).unwrap_err(), UsageError::UnknownOption(b"--verbose=1"));
    }

    #[test]
    fn fd_takes_a_decimal_descriptor() {
        let Command::Run { options, program } = parse_strs(&["p", "--fd", "3", "name", "arg"]).unwrap() else {
            panic!()
        };
        assert_eq!((options.fd, program), (Some(3), 3));
        assert_eq!(
            parse_strs(&["p", "--fd=0", "-v", "x"]).unwrap(),
            Command::Run { options: Options { fd: Some(0), verbose: true, ..Options::default() }, program: 3 }
        );
        assert_eq!(
            parse_strs(&["p", "--fd=2147483647", "x"]).unwrap(),
            Command::Run { options: Options { fd: Some(i32::MAX), ..Options::default() }, program: 2 }
        );
        for bad in ["", "-1", "3x", "0x3", " 3", "2147483648", "99999999999"] {
            assert_eq!(
                parse_strs(&["p", "--fd", bad, "x"]).unwrap_err(),
                UsageError::BadValue(bad.as_bytes(), "--fd needs a descriptor number"),
                "{bad:?}"
            );
        }
        assert_eq!(parse_strs(&["p", "--fd"]).unwrap_err(), UsageError::MissingValue(b"--fd"));
    }

    #[test]
    fn userns_is_a_flag() {
        assert_eq!(
            parse_strs(&["p", "--userns", "-v", "prog"]).unwrap(),
            Command::Run { options: Options { userns: true, verbose: true, ..Options::default() }, program: 3 }
        );
        assert_eq!(parse_strs(&["p", "--userns=1", "x"]).unwrap_err(), UsageError::UnknownOption(b"--userns=1"));
    }

    #[test]
    fn max_size_takes_bytes_with_an_optional_binary_suffix() {
        fn size(value: &str) -> Result<u64, UsageError<'_>> {
            match parse_strs(&["p", "--max-size", value, "x"]) {
                Ok(Command::Run { options, program: 3 }) => Ok(options.max_size.unwrap()),
                Ok(other) => panic!("{other:?}"),
                Err(err) => Err(err),
            }
        }
        assert_eq!(size("1"), Ok(1));
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("10K"), Ok(10 << 10));
        assert_eq!(size("10k"), Ok(10 << 10));
        assert_eq!(size("3M"), Ok(3 << 20));
        assert_eq!(size("2g"), Ok(2 << 30));
        assert_eq!(size("8589934591G"), Ok(8_589_934_591 << 30));
        for bad in ["", "0", "0K", "K", "1T", "1KB", "-1", "1.5M", " 1", "0x10", "8589934592G", "9223372036854775808"] {
            assert_eq!(
                size(bad),
                Err(UsageError::BadValue(bad.as_bytes(), "--max-size needs a size in bytes (suffix K, M or G)")),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_strs(&["p", "--max-size=1M", "x"]).unwrap(),
            Command::Run { options: Options { max_size: Some(1 << 20), ..Options::default() }, program: 2 }
        );
        assert_eq!(parse_strs(&["p", "--max-size"]).unwrap_err(), UsageError::MissingValue(b"--max-size"));
        assert_eq!(
            parse_strs(&["p", "x"])
                .map(|cmd| matches!(cmd, Command::Run { options, .. } if options.max_size.is_none())),
            Ok(true)
        );
    }

    #[test]
    fn usage_errors_name_the_argument() {
        assert_eq!(parse_strs(&["p"]).unwrap_err(), UsageError::MissingProgram);
        assert_eq!(parse_strs(&[]).unwrap_err(), UsageError::MissingProgram);
        assert_eq!(parse_strs(&["p", "--"]).unwrap_err(), UsageError::MissingProgram);
        assert_eq!(parse_strs(&["p", "--argv0"]).unwrap_err(), UsageError::MissingValue(b"--argv0"));
        let err = parse_strs(&["p", "--bogus", "ls"]).unwrap_err();
        assert_eq!((err.reason(), err.argument()), ("unknown option ", &b"--bogus"[..]));
    }

    #[test]
    fn help_and_version_win_where_they_appear_before_the_program() {
        assert_eq!(parse_strs(&["p", "-v", "--help", "ls"]).unwrap(), Command::Help);
        assert_eq!(parse_strs(&["p", "--version"]).unwrap(), Command::Version);
        assert_eq!(parse_strs(&["p", "-", "x"]).unwrap(), Command::Run { options: Options::default(), program: 1 });
    }
}
