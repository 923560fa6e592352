//! The preloader's inputs from argv and the environment: `cli::parse` over arbitrary argv,
//! PRELOAD_RESERVE and WINEPRELOADRESERVE (`ranges`), PATH (`search`), plus the
//! /proc/self/maps lines `reserve::find_in_maps` reads and the `msg` formatting of addresses.
//!
//! Checks that accepted options are well-formed (program index in argv, page-aligned non-zero
//! base, a non-negative descriptor, non-empty page-aligned ranges, values taken from argv),
//! that options and range lists round-trip (print as the preloader prints, parse again, get the
//! same), that PATH joins are exact and bounded by PATH_MAX, and that a found mapping overlaps
//! the range asked for.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use preload::PAGE_SIZE;
use preload::cli::{self, Command, Options, UsageError};
use preload::exec::search::{self, PATH_MAX};
use preload::plan::reserve::{self, Range, RangeList};
use preload::report::msg::Msg;

#[derive(Arbitrary, Debug)]
struct Input {
    argv: Vec<Vec<u8>>,
    preload_reserve: Vec<u8>,
    wine_reserve: Vec<u8>,
    path: Option<Vec<u8>>,
    program: Vec<u8>,
    maps: Vec<u8>,
    query: (u64, u64),
}

fuzz_target!(|input: Input| {
    check_cli(&input.argv);
    check_range_list(&input.preload_reserve);
    check_wine_reserve(&input.wine_reserve);
    check_path_search(input.path.as_deref(), &input.program);
    check_maps(&input.maps, Range::new(input.query.0, input.query.1));
});

fn well_formed(range: &Range) -> bool {
    range.start % PAGE_SIZE == 0 && range.end % PAGE_SIZE == 0 && range.start < range.end
}

/// `0xSTART-0xEND` as --verbose and --dry-run print a reservation.
fn print_range(msg: &mut Msg<128>, range: &Range) {
    msg.hex(range.start).text("-").hex(range.end);
}

fn is_part_of(value: &[u8], argv: &[Vec<u8>]) -> bool {
    let inside = |arg: &Vec<u8>| {
        arg.as_ptr_range().contains(&value.as_ptr()) || (value.is_empty() && value.as_ptr() == arg.as_ptr_range().end)
    };
    argv.iter().any(|arg| inside(arg) && value.as_ptr_range().end <= arg.as_ptr_range().end)
}

fn check_cli(argv: &[Vec<u8>]) {
    match cli::parse(argv.iter().map(Vec::as_slice)) {
        Ok(Command::Run { options, program }) => {
            assert!(program >= 1 && program < argv.len());
            let name = &argv[program];
            assert!(
                name == b"-" || !name.starts_with(b"-") || argv[program - 1] == b"--",
                "option {name:?} taken as PROGRAM"
            );
            if let Some(base) = options.base {
                assert!(base != 0 && base % PAGE_SIZE == 0, "--base {base:#x}");
            }
            assert!(options.fd.is_none_or(|fd| fd >= 0), "--fd {:?}", options.fd);
            assert!(options.reserve.as_slice().iter().all(well_formed), "{:?}", options.reserve);
            for value in [options.argv0, options.interp].into_iter().flatten() {
                assert!(is_part_of(value, argv), "option value not taken from argv");
            }
            check_options_round_trip(&options);
        }
        Ok(Command::Help) => assert!(argv.iter().skip(1).any(|a| a == b"--help" || a == b"-h")),
        Ok(Command::Version) => assert!(argv.iter().skip(1).any(|a| a == b"--version" || a == b"-V")),
        Err(UsageError::UnknownOption(arg) | UsageError::MissingValue(arg)) => {
            assert!(arg.starts_with(b"-") && is_part_of(arg, argv))
        }
        Err(UsageError::BadValue(value, reason)) => assert!(is_part_of(value, argv) && !reason.is_empty()),
        Err(UsageError::MissingProgram) => {}
    }
}

/// Spell `options` out as a command line and parse it again.
fn check_options_round_trip(options: &Options) {
    let mut args: Vec<Vec<u8>> = vec![b"preload".to_vec()];
    if options.verbose {
        args.push(b"--verbose".to_vec());
    }
    if options.dry_run {
        args.push(b"-n".to_vec());
    }
    for range in options.reserve.as_slice() {
        let mut msg = Msg::<128>::new();
        print_range(&mut msg, range);
        args.extend([b"--reserve".to_vec(), msg.as_bytes().to_vec()]);
    }
    if let Some(base) = options.base {
        let mut msg = Msg::<128>::new();
        args.push(msg.text("--base=").hex(base).as_bytes().to_vec());
    }
    if let Some(fd) = options.fd {
        args.extend([b"--fd".to_vec(), fd.to_string().into_bytes()]);
    }
    if let Some(max_size) = options.max_size {
        args.extend([b"--max-size".to_vec(), max_size.to_string().into_bytes()]);
    }
    for (name, value) in [(&b"--argv0"[..], options.argv0), (b"--interp", options.interp)] {
        if let Some(value) = value {
            args.extend([name.to_vec(), value.to_vec()]);
        }
    }
    args.extend([b"--".to_vec(), b"prog".to_vec()]);
    let parsed = cli::parse(args.iter().map(Vec::as_slice));
    assert_eq!(parsed, Ok(Command::Run { options: *options, program: args.len() - 1 }), "round trip through {args:?}");
}

fn check_range_list(text: &[u8]) {
    let mut list = RangeList::default();
    if list.extend_from_list(text).is_err() {
        return;
    }
    assert_eq!(list.as_slice().len(), text.iter().filter(|&&b| b == b',').count() + 1);
    assert!(list.as_slice().iter().all(well_formed), "{list:?}");
    let mut printed = Vec::new();
    for (index, range) in list.as_slice().iter().enumerate() {
        let mut msg = Msg::<128>::new();
        print_range(&mut msg, range);
        if index > 0 {
            printed.push(b',');
        }
        printed.extend_from_slice(msg.as_bytes());
    }
    let mut again = RangeList::default();
    assert_eq!(again.extend_from_list(&printed), Ok(()));
    assert_eq!(again, list, "{printed:?}");
}

fn check_wine_reserve(text: &[u8]) {
    match reserve::parse_wine_reserve(text) {
        Ok(Some(range)) => {
            assert!(well_formed(&range));
            assert_eq!(reserve::parse_range(text), Ok(range));
        }
        Ok(None) => assert_eq!(reserve::parse_range(text), Err("END must be above START")),
        Err(reason) => assert_eq!(reserve::parse_range(text), Err(reason)),
    }
}

fn check_path_search(path: Option<&[u8]>, program: &[u8]) {
    let dirs: Vec<&[u8]> = search::directories(path).collect();
    assert_eq!(dirs.len(), path.unwrap_or(search::DEFAULT_PATH).iter().filter(|&&b| b == b':').count() + 1);
    let mut buf = [0u8; PATH_MAX];
    for dir in dirs {
        let mut expected = dir.to_vec();
        if !dir.is_empty() {
            expected.push(b'/');
        }
        expected.extend_from_slice(program);
        expected.push(0);
        match search::join(dir, program, &mut buf) {
            Some(joined) => assert_eq!(joined, expected.as_slice()),
            None => assert!(expected.len() > PATH_MAX),
        }
    }
}

fn check_maps(maps: &[u8], query: Range) {
    if let Some((mapping, name)) = reserve::find_in_maps(maps, &query) {
        assert!(mapping.overlaps(&query), "{mapping:?} does not overlap {query:?}");
        assert!(maps.as_ptr_range().contains(&name.as_ptr()) || name.is_empty());
        assert!(!name.contains(&b'\n'));
    }
}
