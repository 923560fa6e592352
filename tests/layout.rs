//! Layout control: `--reserve`, PRELOAD_RESERVE, `--base`, `--interp`, and the Wine
//! `wine_main_preload_info` hand-off, checked in the program's own /proc/self/maps.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Invocation, Scratch, Variant, build_c, render_status, require_tool};

/// One /proc/self/maps line: start, end, permissions, name.
struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    name: String,
}

fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?.to_string();
            let name = fields.nth(3).unwrap_or("").to_string();
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                perms,
                name,
            })
        })
        .collect()
}

fn stdout_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\nstderr: {}",
        render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// The maps of `cat /proc/self/maps` run through preload with `options` and `env`.
fn preloaded_maps(options: &[&str], env: &[(&str, &str)]) -> Vec<Mapping> {
    let mut invocation = Invocation::new("/bin/cat").arg("/proc/self/maps");
    for option in options {
        invocation = invocation.preload_option(option);
    }
    for (key, value) in env {
        invocation = invocation.env(key, value);
    }
    parse_maps(&stdout_of(&invocation.run_preloaded(), "cat /proc/self/maps through preload"))
}

/// Asserts that exactly [start, end) is one PROT_NONE private mapping with nothing else inside.
fn assert_reserved(maps: &[Mapping], start: u64, end: u64) {
    let inside: Vec<&Mapping> = maps.iter().filter(|m| m.start < end && start < m.end).collect();
    let rendered: Vec<String> =
        inside.iter().map(|m| format!("{:x}-{:x} {} {}", m.start, m.end, m.perms, m.name)).collect();
    assert!(
        inside.len() == 1 && inside[0].start == start && inside[0].end == end && inside[0].perms == "---p",
        "{start:#x}-{end:#x} is not exactly one ---p reservation: {rendered:?}"
    );
}

#[test]
fn reserve_option_keeps_each_range_as_one_inaccessible_mapping() {
    let maps = preloaded_maps(&["--reserve", "0x10000000-0x10100000", "--reserve=20000000-20200000"], &[]);
    assert_reserved(&maps, 0x1000_0000, 0x1010_0000);
    assert_reserved(&maps, 0x2000_0000, 0x2020_0000);
}

#[test]
fn preload_reserve_variable_reserves_its_list() {
    let maps = preloaded_maps(&[], &[("PRELOAD_RESERVE", "30000000-30001000,0x40000000-0x40002000")]);
    assert_reserved(&maps, 0x3000_0000, 0x3000_1000);
    assert_reserved(&maps, 0x4000_0000, 0x4000_2000);
}

#[test]
fn nothing_of_the_program_lands_in_a_reserved_range() {
    // A reservation over the whole low half of the mmap area: the interpreter, libraries and the
    // program's own mmaps must go elsewhere.
    let maps = preloaded_maps(&["--reserve", "0x600000000000-0x700000000000"], &[]);
    assert_reserved(&maps, 0x6000_0000_0000, 0x7000_0000_0000);
}

/// Runs preload with `args` and asserts exit 125 with a `preload: ` message containing `needles`.
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let output = common::run_preload(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(125),
        "preload {args:?}: {} (stderr: {stderr})",
        render_status(output.status)
    );
    assert!(stderr.starts_with("preload: "), "preload {args:?}: stderr {stderr:?}");
    for needle in needles {
        assert!(stderr.contains(needle), "preload {args:?}: stderr {stderr:?} lacks {needle:?}");
    }
}

#[test]
fn malformed_reservations_are_refused_with_125() {
    assert_usage_error(&["--reserve", "zz-30000", "/bin/true"], &["zz-30000", "hexadecimal"]);
    assert_usage_error(&["--reserve", "30000-20000", "/bin/true"], &["30000-20000", "END must be above START"]);
    assert_usage_error(&["--reserve", "30000", "/bin/true"], &["START-END"]);
    let env_output = Invocation::new("/bin/true").env("PRELOAD_RESERVE", "1-2,oops").run_preloaded();
    assert_eq!(env_output.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&env_output.stderr).starts_with("preload: PRELOAD_RESERVE: "));
}

#[test]
fn a_reservation_over_the_stack_is_refused_naming_both_ranges() {
    // The stack lies in the top 16 GiB below 0x7ffffffff000 whatever the randomisation.
    assert_usage_error(
        &["--reserve", "0x7ff000000000-0x7ffffffff000", "/bin/true"],
        &["0x7ff000000000-0x7ffffffff000 overlaps [stack] 0x7ff"],
    );
}

#[test]
fn a_reservation_over_the_vdso_or_the_preloader_is_refused_naming_it() {
    // The stack top is at least 0x7ffbfffff000 (16 GiB of randomisation), so with 8 MiB of
    // RLIMIT_STACK its room starts above 0x7ffbff7ff000. The mmap area, where the kernel put the
    // vdso and the preloader, starts below it by at least that gap and at most 1 TiB more.
    let output = common::run_preload(["--reserve", "0x7e0000000000-0x7ffbff000000", "/bin/true"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        ["[vdso]", "[vvar]", "[vvar_vclock]", "preload itself"]
            .iter()
            .any(|name| stderr.contains(&format!("0x7e0000000000-0x7ffbff000000 overlaps {name} 0x"))),
        "{stderr}"
    );
}

#[test]
fn base_puts_a_pie_first_mapping_at_the_address() {
    let output = Invocation::new("/bin/cat")
        .arg("/proc/self/maps")
        .preload_option("--base")
        .preload_option("0x300000000")
        .run_preloaded();
    let maps = parse_maps(&stdout_of(&output, "cat through preload --base"));
    let cat = maps.iter().filter(|m| m.name.ends_with("/cat")).map(|m| m.start).min();
    assert_eq!(cat, Some(0x3_0000_0000), "cat's first mapping");
    let taken = Invocation::new("/bin/true")
        .preload_option("--reserve")
        .preload_option("0x300000000-0x300100000")
        .preload_option("--base")
        .preload_option("0x300000000")
        .run_preloaded();
    assert_eq!(
        taken.status.code(),
        Some(125),
        "a --base collision is an error: {}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(String::from_utf8_lossy(&taken.stderr).contains("--base: the program's address range is already in use"));
}

#[test]
fn base_is_refused_for_a_fixed_address_program_and_for_a_bad_address() {
    let nopie = build_c("hello", Variant::NoPie);
    let nopie = nopie.to_str().expect("utf-8 path");
    assert_usage_error(&["--base", "0x200000000", nopie], &[nopie, "--base needs a position-independent program"]);
    assert_usage_error(&["--base", "0x200000001", "/bin/true"], &["page-aligned"]);
}

#[test]
fn interp_runs_the_program_through_the_named_interpreter() {
    Invocation::new("/bin/echo")
        .args(["through", "an explicit ld.so"])
        .preload_option("--interp")
        .preload_option("/lib64/ld-linux-x86-64.so.2")
        .assert_same();
    let output =
        Invocation::new("/bin/true").preload_option("--interp").preload_option("/nonexistent/ld.so").run_preloaded();
    assert_eq!(output.status.code(), Some(126));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("interpreter /nonexistent/ld.so: No such file or directory")
    );
}

/// Builds tests/c/wine_info.c with its symbol exported, as Wine's loader is linked.
fn wine_info(scratch: &Scratch, pie: bool) -> PathBuf {
    wine_info_with(
        scratch,
        if pie { "wine_info-pie" } else { "wine_info-nopie" },
        &[if pie { "-pie" } else { "-no-pie" }],
    )
}

/// tests/c/wine_info.c built as `name` with `flags` added.
fn wine_info_with(scratch: &Scratch, name: &str, flags: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/wine_info.c");
    let out = scratch.path().join(name);
    let result = common::output(
        Command::new(require_tool("gcc"))
            .args(["-O1", "-Wall", "-Werror", "-rdynamic"])
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&source),
    );
    assert!(
        result.status.success(),
        "compiling {} ({flags:?}) failed: {}",
        source.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Wine's top range, which the randomised stack sometimes overlaps.
const WINE_TOP_RANGE: &str = "7ffffe000000-7fffffff0000 reserved";

/// The `start-end reserved` lines the test program printed for its table, and whether its stack
/// lay where it would overlap Wine's top range (Some(true)), clearly not (Some(false)), or within
/// the few pages between its variables and the stack top where either can be right (None).
fn published(output: &Output) -> (Vec<String>, Option<bool>) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wine_info: {} stdout: {stdout} stderr: {}",
        render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let stack = lines
        .next()
        .and_then(|line| line.strip_prefix("stack "))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .expect("a `stack ADDR` line first");
    let top_range_start = 0x7fff_fe00_0000;
    let overlaps = if stack >= top_range_start {
        Some(true)
    } else if stack + (1 << 20) < top_range_start {
        Some(false)
    } else {
        None
    };
    (lines.map(str::to_string).collect(), overlaps)
}

/// Asserts that `output` published exactly `expected`, where Wine's top range (listed in
/// `expected`) is left out when, and only when, the program's stack overlaps it.
fn assert_published(output: &Output, expected: &[&str]) {
    let (table, stack_overlaps) = published(output);
    let without_top: Vec<&str> = expected.iter().copied().filter(|line| *line != WINE_TOP_RANGE).collect();
    match stack_overlaps {
        Some(false) => assert_eq!(table, expected),
        Some(true) => assert_eq!(table, without_top, "the stack overlaps Wine's top range, which cannot be reserved"),
        None => assert!(table == expected || table == without_top, "{table:?}"),
    }
}

#[test]
fn wine_loader_gets_exactly_the_ranges_reserved_for_it() {
    let scratch = Scratch::new("wine-info");
    let pie = wine_info(&scratch, true);
    let direct = Invocation::new(&pie).run_direct();
    assert_eq!(direct.status.code(), Some(2), "run directly, nobody fills the table");
    let output = Invocation::new(&pie).env("WINEPRELOADRESERVE", "140000000-1401a1000").run_preloaded();
    assert_published(
        &output,
        &[
            "10000-110000 reserved",
            "110000-68000000 reserved",
            "7ff00000-7fff0000 reserved",
            WINE_TOP_RANGE,
            "140000000-1401a1000 reserved",
        ],
    );
}

#[test]
fn wine_table_leaves_out_ranges_that_could_not_be_reserved() {
    // The non-PIE program sits at 0x400000, inside Wine's low range, which therefore cannot be
    // reserved and must not be published; a user reservation is published too.
    let scratch = Scratch::new("wine-info-nopie");
    let nopie = wine_info(&scratch, false);
    let output = Invocation::new(&nopie)
        .env("WINEPRELOADRESERVE", "0-0")
        .preload_option("--reserve")
        .preload_option("50000000000-50000001000")
        .run_preloaded();
    assert_published(
        &output,
        &["50000000000-50000001000 reserved", "10000-110000 reserved", "7ff00000-7fff0000 reserved", WINE_TOP_RANGE],
    );
}

#[test]
fn dry_run_and_verbose_show_the_reservations() {
    let dry = common::run_preload(["--dry-run", "--reserve", "0x10000000-0x10100000", "/bin/true"]);
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success() && stdout.contains("preload: reserve 0x10000000-0x10100000\n"),
        "{}: {stdout}",
        render_status(dry.status)
    );
    assert!(stdout.contains("preload: program /bin/true"), "{stdout}");

    let scratch = Scratch::new("wine-info-verbose");
    let pie = wine_info(&scratch, true);
    let verbose = Invocation::new(&pie).preload_option("--verbose").run_preloaded();
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    for line in [
        "preload: reserve for Wine 0x10000-0x110000\n",
        "preload: reserve for Wine 0x7ffffe000000-0x7fffffff0000\n",
        "preload: wine_main_preload_info at 0x",
    ] {
        assert!(stderr.contains(line), "--verbose lacks {line:?}:\n{stderr}");
    }
}

/// Wine 8.0's i386 loader is a non-PIE at 0x7d000000, outside every range of its table.
const WINE_I386_LOADER: [&str; 3] = ["-m32", "-no-pie", "-Wl,-Ttext-segment=0x7d000000"];

/// Whether this process may map the low 64 KiB (below vm.mmap_min_addr): CAP_SYS_RAWIO.
fn may_map_page_zero() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let effective = status.lines().find_map(|line| line.strip_prefix("CapEff:")).expect("CapEff");
    u64::from_str_radix(effective.trim(), 16).expect("CapEff is hex") & (1 << 17) != 0
}

/// Wine's i386 table as reserved for a loader at 0x7d000000, with `extra` after the defaults,
/// and Wine's executable page last.
fn i386_table(extra: &[&'static str]) -> Vec<&'static str> {
    let low = may_map_page_zero().then_some("0-10000 reserved");
    let defaults = ["10000-110000 reserved", "110000-68000000 reserved", "7f000000-82000000 reserved"];
    low.into_iter().chain(defaults).chain(extra.iter().copied()).chain(["7ffff000 r-xp"]).collect()
}

#[test]
fn i386_wine_loader_gets_wines_i386_ranges_in_32_bit_words() {
    let scratch = Scratch::new("wine-info-i386");
    let loader = wine_info_with(&scratch, "wine_info-i386", &WINE_I386_LOADER);
    let direct = Invocation::new(&loader).run_direct();
    assert_eq!(direct.status.code(), Some(2), "run directly, nobody fills the table");
    let output = Invocation::new(&loader).env("WINEPRELOADRESERVE", "70000000-70100000").run_preloaded();
    assert_published(&output, &i386_table(&["70000000-70100000 reserved"]));

    // A range above 4 GiB is kept free but cannot be published in 32-bit words: neither
    // WINEPRELOADRESERVE nor --reserve; a --reserve range below 4 GiB is published first.
    let output = Invocation::new(&loader)
        .env("WINEPRELOADRESERVE", "140000000-1401a1000")
        .preload_option("--reserve")
        .preload_option("50000000000-50000001000")
        .preload_option("--reserve")
        .preload_option("90000000-90001000")
        .run_preloaded();
    let mut expected = vec!["90000000-90001000 reserved"];
    expected.extend(i386_table(&[]));
    assert_published(&output, &expected);
}

#[test]
fn i386_wine_table_leaves_out_the_range_the_program_lies_in() {
    // An i386 PIE goes to the compat ELF_ET_DYN_BASE (0x56555000 and up), inside Wine's low
    // memory range, which therefore cannot be reserved and must not be published.
    let scratch = Scratch::new("wine-info-i386-pie");
    let pie = wine_info_with(&scratch, "wine_info-i386-pie", &["-m32", "-pie"]);
    let output = Invocation::new(&pie).run_preloaded();
    let (table, _) = published(&output);
    let expected: Vec<&str> = i386_table(&[]).into_iter().filter(|line| !line.starts_with("110000-")).collect();
    assert_eq!(table, expected);
}
