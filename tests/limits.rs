//! Limits, each against the kernel: argv plus environment at the kernel's E2BIG boundary, a sparse
//! 1 GiB program, 50-64 PT_LOADs, program header tables up to the kernel's limit (64 KiB, one page
//! before 6.17), PT_INTERP naming preload itself or another program, i386 programs, and crafted
//! segments that land on the preloader's own memory or hide the Wine symbol tables. (p_align of
//! 2 MiB: the `*_align2m` variants of differential.rs and probe.rs; execute-only files: errors.rs.)

mod common;

use common::elf::{Elf, PAGE, PT_DYNAMIC, PT_INTERP, Phdr};
use common::{Invocation, Scratch, Variant, build_c, preload, render_status, require_tool};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Asserts a one-line `preload: ` refusal with 126 that mentions `needle`.
fn assert_refused(output: &Output, needle: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(126),
        "{what}: preload ended with {} ({stderr:?})",
        render_status(output.status)
    );
    assert!(
        stderr.starts_with("preload: ") && stderr.lines().count() == 1,
        "{what}: one `preload: ` line, got {stderr:?}"
    );
    assert!(stderr.contains(needle), "{what}: stderr must mention {needle:?}, got {stderr:?}");
}

/// `elf` written executable as `name`.
fn write(scratch: &Scratch, name: &str, elf: &Elf) -> PathBuf {
    scratch.write(name, &elf.bytes, 0o755)
}

/// Points the (first) PT_INTERP of `elf` at `path`, stored at the end of the file.
fn set_interp(elf: &mut Elf, path: &Path) {
    let mut bytes = path.as_os_str().as_encoded_bytes().to_vec();
    bytes.push(0);
    let at = elf.append(&bytes, 1);
    let slot = elf.find(PT_INTERP).expect("a program with PT_INTERP");
    elf.set(slot + 8, 8, at as u64);
    elf.set(slot + 32, 8, bytes.len() as u64);
}

/// A directory path of about 300 bytes: a program found there through PATH has a long execfn,
/// while preload's own execve (argv[1] = the short name) stays below the kernel's limit.
fn long_directory(scratch: &Scratch) -> PathBuf {
    let mut dir = scratch.path().to_path_buf();
    while dir.as_os_str().len() < 300 {
        dir.push("d".repeat(100));
    }
    std::fs::create_dir_all(&dir).expect("create the long directory");
    dir
}

/// `name` from PATH=`dir` with `total` bytes of arguments (in pieces below MAX_ARG_STRLEN).
fn with_argument_bytes(dir: &Path, name: &str, total: usize) -> Invocation {
    let args: Vec<String> =
        (0..total.div_ceil(100_000)).map(|i| "a".repeat((total - i * 100_000).min(100_000))).collect();
    Invocation::new(name).env_clear().env("PATH", dir).args(args)
}

#[test]
fn arguments_up_to_the_kernels_limit_run_and_one_byte_more_is_e2big() {
    let scratch = Scratch::new("e2big");
    let dir = long_directory(&scratch);
    let within = dir.strip_prefix(scratch.path()).expect("the long directory is in the scratch directory");
    let mut wrong_machine = Elf::read(Path::new("/bin/true"));
    wrong_machine.set(18, 2, 40);
    // Through the scratch directory's writers, which no test spawn overlaps (ETXTBSY).
    scratch.copy(Path::new("/bin/true"), &within.join("t").to_string_lossy(), 0o755);
    scratch.write(&within.join("w").to_string_lossy(), &wrong_machine.bytes, 0o755);
    // The kernel's boundary, by bisection on the direct execve.
    let fits = |total| match with_argument_bytes(&dir, "t", total).try_run_direct() {
        Ok(output) => {
            assert!(output.status.success(), "true with {total} argument bytes: {}", render_status(output.status));
            true
        }
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(7), "the kernel refuses with E2BIG: {e}");
            false
        }
    };
    let (mut lo, mut hi) = (0, 8 << 20);
    assert!(fits(lo) && !fits(hi), "scenario check: the boundary lies between {lo} and {hi}");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid) { lo = mid } else { hi = mid }
    }
    let at_limit = with_argument_bytes(&dir, "t", lo).run_preloaded();
    assert!(
        at_limit.status.success(),
        "{lo} bytes, the kernel's most: preload {} ({})",
        render_status(at_limit.status),
        String::from_utf8_lossy(&at_limit.stderr)
    );
    assert_refused(
        &with_argument_bytes(&dir, "t", hi).run_preloaded(),
        "Argument list too long",
        &format!("{hi} bytes"),
    );
    // execve checks the arguments before it looks at the file, so E2BIG comes first.
    assert_eq!(
        with_argument_bytes(&dir, "w", hi).try_run_direct().unwrap_err().raw_os_error(),
        Some(7),
        "scenario check"
    );
    assert_refused(
        &with_argument_bytes(&dir, "w", hi).run_preloaded(),
        "Argument list too long",
        "a malformed program with too many arguments",
    );
}

/// A static program with an extra read-only PT_LOAD of `len` bytes at file offset 64 MiB (a hole
/// in a sparse file), run directly and through preload; returns preload's read calls and bytes.
fn reads_with_a_segment_of(scratch: &Scratch, name: &str, len: u64) -> (usize, u64) {
    let mut elf = Elf::read(&build_c("hello", Variant::Static));
    let offset = 64 << 20;
    elf.move_table(&[Phdr::load(4, offset, 0x1000_0000, len, len)], elf.phnum() + 2);
    let program = write(scratch, name, &elf);
    let truncate =
        common::output(Command::new(require_tool("truncate")).arg("-s").arg((offset + len).to_string()).arg(&program))
            .status;
    assert!(truncate.success(), "truncate {}", program.display());
    Invocation::new(&program).assert_same().expect_exit(0);

    let log = scratch.path().join(format!("{name}.strace"));
    let mut strace = Command::new(require_tool("strace"));
    strace
        .args(["-e", "trace=read,pread64", "-o"])
        .arg(&log)
        .arg(preload())
        .arg(&program)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = common::run(strace, None, "strace preload");
    assert!(output.status.success(), "strace preload {name}: {}", render_status(output.status));
    let text = std::fs::read_to_string(&log).expect("read the strace log");
    let results: Vec<u64> = common::strace::parse(&text)
        .iter()
        .filter(|call| call.name == "read" || call.name == "pread64")
        .filter_map(|call| call.value().and_then(|v| u64::try_from(v).ok()))
        .collect();
    (results.len(), results.iter().sum())
}

#[test]
fn a_sparse_1_gib_program_is_read_no_more_than_a_small_one() {
    let scratch = Scratch::new("sparse");
    let small = reads_with_a_segment_of(&scratch, "small", PAGE);
    let big = reads_with_a_segment_of(&scratch, "big", 1 << 30);
    assert!(small.0 > 0, "scenario check: strace saw preload's reads");
    assert_eq!(big, small, "read calls and bytes of preload for a 1 GiB program (left) and a small one (right)");
}

/// `variant` of hello with its program header table moved and grown to `count` entries, with
/// `loads` extra tiny read-write PT_LOADs.
fn with_table(scratch: &Scratch, variant: Variant, loads: u64, count: usize) -> PathBuf {
    let mut elf = Elf::read(&build_c("hello", variant));
    let first = elf.end_of_image() + 64 * PAGE + 0x100_0000;
    let extra: Vec<Phdr> = (0..loads).map(|i| Phdr::load(6, 0, first + 2 * PAGE * i, 0, 16)).collect();
    elf.move_table(&extra, count);
    write(scratch, &format!("{}-{loads}-loads-{count}-phdrs", variant.name()), &elf)
}

#[test]
fn sixty_four_pt_loads_run_as_under_the_kernel() {
    let scratch = Scratch::new("many-loads");
    for variant in [Variant::Static, Variant::Pie, Variant::StaticPie] {
        // Before 6.17 the whole table must fit in a page (73 entries): as many tiny PT_LOADs as
        // fit there beside the program's own entries and the table's PT_LOAD.
        let own = Elf::read(&build_c("hello", variant)).phnum();
        let loads = 64.min(common::max_phdrs() - own - 1);
        assert!(loads >= 50, "scenario check: {loads} extra PT_LOADs");
        let program = with_table(&scratch, variant, loads as u64, own + 1 + loads);
        Invocation::new(&program).arg("x").assert_same().expect_exit(0).expect_stdout_contains("argv[1]=\"x\"");
    }
}

/// `variant` with a table of `max_phdrs` entries (`loads` of them extra PT_LOADs) runs as under
/// the kernel; with one entry more it is refused, as the kernel refuses it (ENOEXEC).
fn table_limit_holds(scratch: &Scratch, variant: Variant, loads: u64, max_phdrs: usize) {
    let max = with_table(scratch, variant, loads, max_phdrs);
    Invocation::new(&max).assert_same().expect_exit(0);
    let over = with_table(scratch, variant, 100, max_phdrs + 1);
    assert_eq!(common::elf::execve_errno(&over), Some(8), "scenario check: ENOEXEC for {} entries", max_phdrs + 1);
    assert_refused(
        &Invocation::new(&over).run_preloaded(),
        "bad number of program headers",
        &format!("{} program headers ({}), one more than the kernel reads", max_phdrs + 1, variant.name()),
    );
}

#[test]
fn program_header_tables_up_to_the_kernels_limit_run_and_larger_ones_are_refused() {
    let scratch = Scratch::new("big-table");
    // The running kernel's limit: 1170 entries from 6.17 on, 73 (one page) before.
    let max_phdrs = common::max_phdrs();
    for variant in [Variant::Static, Variant::Pie] {
        table_limit_holds(&scratch, variant, 40, max_phdrs);
    }
    if max_phdrs < 1170 {
        // Refused by this kernel, whatever a newer one does.
        let newer_max = with_table(&scratch, Variant::Static, 40, 1170);
        assert_eq!(
            common::elf::execve_errno(&newer_max),
            Some(8),
            "scenario check: ENOEXEC for 1170 entries before 6.17"
        );
        assert_refused(
            &Invocation::new(&newer_max).run_preloaded(),
            "bad number of program headers",
            "1170 program headers before 6.17",
        );
    }
}

/// The same limit for i386 tables of 32-byte entries: 2048 from 6.17 on, 128 (one page) before.
/// The largest is filled with tiny PT_LOADs, whose mappings put thousands of lines of
/// /proc/self/maps around the vDSO, which preload replaces.
#[test]
fn i386_program_header_tables_up_to_the_kernels_limit_run_and_larger_ones_are_refused() {
    let scratch = Scratch::new("big-table-i386");
    let max_phdrs = if common::kernel_version() >= (6, 17) { 2048 } else { 128 };
    for variant in [Variant::I386Static, Variant::I386StaticPie, Variant::I386Pie] {
        let own = Elf::read(&build_c("hello", variant)).phnum();
        table_limit_holds(&scratch, variant, (max_phdrs - own - 1) as u64, max_phdrs);
    }
}

#[test]
fn pt_interp_naming_preload_itself_runs_it_as_the_kernel_does() {
    // The kernel loads the named file as the interpreter, whatever it is: preload, started with
    // the program's argv, runs argv[1].
    let scratch = Scratch::new("interp-preload");
    let mut elf = Elf::read(&build_c("hello", Variant::Pie));
    set_interp(&mut elf, preload());
    let program = write(&scratch, "interp-is-preload", &elf);
    Invocation::new(&program)
        .args([require_tool("echo").to_str().unwrap(), "through", "preload"])
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("through preload");
}

#[test]
fn a_first_segment_without_file_bytes_maps_no_file() {
    // Its p_offset is never used (here not even congruent to its address): the kernel maps
    // anonymous memory and runs the interpreter (preload itself, which wants a PROGRAM: 125).
    let scratch = Scratch::new("first-bss-only");
    let mut elf = Elf::read(&build_c("hello", Variant::Pie));
    let first = (0..elf.phnum())
        .map(|i| elf.ph(i))
        .find(|&ph| elf.get(ph, 4) == u64::from(common::elf::PT_LOAD))
        .expect("a PT_LOAD");
    elf.set(first + 8, 8, 0x4_0000_0001);
    elf.set(first + 32, 8, 0);
    set_interp(&mut elf, preload());
    Invocation::new(write(&scratch, "first-bss-only", &elf)).assert_same().expect_exit(125);
}

#[test]
fn pt_interp_naming_a_program_with_its_own_interpreter_runs_it_as_the_kernel_does() {
    // The interpreter's own PT_INTERP is ignored: /bin/true is entered unrelocated, and both
    // runs end the same way.
    let scratch = Scratch::new("interp-program");
    let true_copy = scratch.copy(Path::new("/bin/true"), "true", 0o755);
    let mut elf = Elf::read(&build_c("hello", Variant::Pie));
    set_interp(&mut elf, &true_copy);
    let both = Invocation::new(write(&scratch, "interp-is-true", &elf)).run_both();
    both.assert_same();
    // The interpreter's own PT_INTERP is not even checked: a malformed one changes nothing.
    let mut interp = Elf::read(&build_c("hello", Variant::StaticPie));
    let slot = interp.find(common::elf::PT_GNU_STACK).expect("PT_GNU_STACK to turn into PT_INTERP");
    interp.set(slot, 4, u64::from(PT_INTERP));
    interp.set(slot + 32, 8, 1);
    let interp = write(&scratch, "interp-with-bad-interp", &interp);
    Invocation::new(without_pt_load(&scratch, "uses-interp-with-bad-interp", &interp)).assert_same().expect_exit(0);
    // A static ET_EXEC interpreter at the program's own addresses replaces it (MAP_FIXED).
    let mut musl = Elf::read(&build_c("hello", Variant::MuslStatic));
    let slot = musl.find(common::elf::PT_GNU_STACK).expect("PT_GNU_STACK to turn into PT_INTERP");
    musl.set(slot, 4, u64::from(PT_INTERP));
    set_interp(&mut musl, &build_c("hello", Variant::Static));
    Invocation::new(write(&scratch, "interp-over-program", &musl)).assert_same().expect_exit(0);
}

#[test]
fn a_program_without_pt_load_runs_its_interpreter_as_the_kernel_does() {
    // The kernel maps nothing of the program (its load bias stays 0, and so AT_PHDR) and enters
    // the interpreter; a static-pie interpreter then runs as itself.
    let scratch = Scratch::new("no-load");
    let program = without_pt_load(&scratch, "no-load", &build_c("hello", Variant::StaticPie));
    Invocation::new(program).arg("x").assert_same().expect_exit(0).expect_stdout_contains("argv[1]=\"x\"");
}

/// The PIE hello with its PT_LOADs turned into PT_NULL and `interp` as its interpreter.
fn without_pt_load(scratch: &Scratch, name: &str, interp: &Path) -> PathBuf {
    let mut elf = Elf::read(&build_c("hello", Variant::Pie));
    for index in 0..elf.phnum() {
        if elf.get(elf.ph(index), 4) == u64::from(common::elf::PT_LOAD) {
            elf.set(elf.ph(index), 4, u64::from(common::elf::PT_NULL));
        }
    }
    set_interp(&mut elf, interp);
    write(scratch, name, &elf)
}

#[test]
fn i386_programs_run_as_the_kernel_runs_them() {
    // The kernel runs them through IA32 emulation, preload in compat mode (tests/ia32.rs); with
    // the emulation off (ia32_emulation=0, scripts/test-kernels.sh's PRELOAD_KERNEL_APPEND) the
    // kernel refuses them with ENOEXEC, and preload with 126 before it maps anything.
    let scratch = Scratch::new("i386");
    let program = scratch.write("i386", common::elf::i386_exit_42(), 0o755);
    match common::elf::execve_errno(&program) {
        None => {
            Invocation::new(&program).assert_same().expect_exit(42);
        }
        Some(8) => {
            eprintln!("IA32 emulation is off: the kernel refuses i386 programs (ENOEXEC)");
            let output = Invocation::new(&program).run_preloaded();
            assert_refused(&output, "IA32 emulation is off", "an i386 program without IA32 emulation");
        }
        Some(errno) => panic!("scenario check: the kernel refuses the i386 program with errno {errno}"),
    }
}

/// An address inside the preloader's own image while it runs (its pages at the top of the mmap
/// area, where the interpreter goes once the preloader has stepped aside), as a program run
/// through preload without randomisation can tell: the end of the interpreter is that top.
fn preloader_pages() -> u64 {
    let cat = Invocation::new(require_tool("cat"))
        .arg("/proc/self/maps")
        .wrapped_in(["setarch", "x86_64", "-R"])
        .run_preloaded();
    let maps = String::from_utf8_lossy(&cat.stdout).into_owned();
    let interp = maps
        .lines()
        .rfind(|l| l.contains("/ld-linux-x86-64.so.2"))
        .unwrap_or_else(|| panic!("no interpreter in:\n{maps}"));
    let end = interp.split(['-', ' ']).nth(1).unwrap();
    u64::from_str_radix(end, 16).unwrap() - 2 * PAGE
}

#[test]
fn a_segment_over_the_preloader_is_refused_not_a_crash() {
    let scratch = Scratch::new("over-preloader");
    let target = preloader_pages();
    for (name, flags) in [("data", 6), ("bss", 6), ("code", 5)] {
        let mut elf = Elf::read(&build_c("hello", Variant::NoPie));
        let (offset, filesz) = if name == "bss" { (0, 0) } else { (0, 16) };
        elf.move_table(&[Phdr::load(flags, offset, target, filesz, 2 * PAGE)], elf.phnum() + 2);
        let program = write(&scratch, name, &elf);
        let output = Invocation::new(&program).wrapped_in(["setarch", "x86_64", "-R"]).run_preloaded();
        assert_refused(&output, "overlaps memory the preloader holds", &format!("a {name} segment at {target:#x}"));
    }
}

#[test]
fn wine_symbol_lookup_respects_a_later_segment_that_hides_the_tables() {
    // A later PT_LOAD maps the page of the dynamic section PROT_NONE: ld.so crashes on it under
    // the kernel, and so must it under preload, after preload has started the program.
    let scratch = Scratch::new("wine-hidden");
    let built = scratch.path().join("wine_info");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/wine_info.c");
    let gcc = common::output(
        Command::new(require_tool("gcc")).args(["-O1", "-rdynamic", "-pie", "-o"]).arg(&built).arg(&source),
    )
    .status;
    assert!(gcc.success(), "compiling {}", source.display());
    let mut elf = Elf::read(&built);
    let dynamic = elf.find(PT_DYNAMIC).expect("PT_DYNAMIC");
    let page = elf.get(dynamic + 16, 8) & !(PAGE - 1);
    let offset = (0..elf.phnum())
        .map(|i| elf.ph(i))
        .find(|&ph| {
            elf.get(ph, 4) == 1
                && elf.get(ph + 16, 8) & !(PAGE - 1) <= page
                && page < elf.get(ph + 16, 8) + elf.get(ph + 40, 8)
        })
        .map(|ph| elf.get(ph + 8, 8) - (elf.get(ph + 16, 8) - page))
        .expect("the PT_LOAD holding the dynamic section")
        & !(PAGE - 1);
    elf.move_table(&[Phdr::load(0, offset, page, PAGE, PAGE)], elf.phnum() + 2);
    let inv = Invocation::new(write(&scratch, "wine-hidden", &elf)).preload_option("--verbose");
    let both = inv.run_both();
    assert_eq!(
        both.direct.status.signal(),
        Some(11),
        "scenario check: ld.so crashes under the kernel ({})",
        render_status(both.direct.status)
    );
    let stderr = String::from_utf8_lossy(&both.preloaded.stderr);
    assert!(
        stderr.contains("preload: interpreter base "),
        "preload must start the program, got {} with {stderr:?}",
        render_status(both.preloaded.status)
    );
    assert_eq!(both.preloaded.status.signal(), Some(11), "then ld.so crashes the same way");
}

/// `#!` lines at binfmt_script's edges, run directly and through preload: a terminator in the
/// buffer's last byte, blanks before a NUL, a blank then a NUL, a NUL before the newline.
#[test]
fn shebang_edge_cases_as_binfmt_script() {
    let scratch = Scratch::new("shebang-edges");
    let echo = require_tool("echo");
    let echo = echo.to_str().unwrap();
    let mut last_byte = format!("#!{echo} ").into_bytes();
    last_byte.resize(255, b'x');
    last_byte.push(b' ');
    // The interpreter path itself runs up to byte 254: `/usr/bin/././.../echo`.
    let (dir, file) = echo.rsplit_once('/').unwrap();
    let mut padded = format!("#!{dir}");
    while padded.len() + 1 + file.len() < 255 {
        padded.push_str(if (255 - padded.len() - 1 - file.len()) % 2 == 1 { "/" } else { "/." });
    }
    let mut interp_to_last_byte = format!("{padded}/{file}").into_bytes();
    assert_eq!(interp_to_last_byte.len(), 255, "scenario check");
    interp_to_last_byte.push(b' ');
    let cases: [(&str, Vec<u8>); 6] = [
        ("terminator-at-255", last_byte),
        ("interp-up-to-255", interp_to_last_byte),
        ("blanks-before-nul", format!("#!{echo} arg  \0junk\n").into_bytes()),
        ("blank-then-nul", format!("#!{echo} \0\n").into_bytes()),
        ("nul-before-newline", format!("#!{echo}\0 arg\n").into_bytes()),
        ("only-blanks", b"#!   ".to_vec()),
    ];
    for (name, contents) in cases {
        let script = scratch.write(name, contents, 0o755);
        let inv = Invocation::new(&script).arg("A");
        match common::elf::execve_errno(&script) {
            None => {
                inv.assert_same();
            }
            Some(errno) => {
                let output = inv.run_preloaded();
                assert!(
                    matches!(output.status.code(), Some(126 | 127)),
                    "{name}: the kernel refuses (errno {errno}), preload {}",
                    render_status(output.status)
                );
            }
        }
    }
}

/// ENOTDIR: env(1) says 126 (only ENOENT is 127), and so must preload, for a path and for PATH.
#[test]
fn not_a_directory_is_126_as_with_env() {
    let env = require_tool("env");
    for (path_var, program) in [
        (common::SYSTEM_PATH, "/etc/passwd/x"),
        ("/etc/passwd", "x"),
        ("/nonexistent:/etc/passwd", "x"),
        ("/etc/passwd:/nonexistent", "x"),
    ] {
        let run = |preloaded: bool| {
            let mut cmd = Command::new(&env);
            cmd.env("PATH", path_var).stdout(Stdio::piped()).stderr(Stdio::piped());
            if preloaded {
                cmd.arg(preload());
            }
            cmd.arg(program);
            common::run(cmd, None, program).status.code()
        };
        let (direct, through) = (run(false), run(true));
        assert!(
            matches!(direct, Some(126 | 127)),
            "scenario check: env {program} with PATH={path_var} fails: {direct:?}"
        );
        assert_eq!(through, direct, "preload {program} with PATH={path_var}");
    }
}

/// A soft RLIMIT_STACK far below the preloader's own stack use (20 KiB, where a dynamic shell
/// still runs directly): preload raises its soft limit for its own frames and puts the caller's
/// back, so the program runs and sees the limits it was given. With the hard limit as small,
/// preload refuses with 125 and one line instead of crashing on its own stack.
#[test]
fn a_small_stack_limit_is_the_programs_not_the_preloaders() {
    let prlimit = require_tool("prlimit");
    let script = "ulimit -Ss; ulimit -Hs; grep 'Max stack size' /proc/self/limits";
    for program in [Invocation::new("/bin/sh").args(["-c", script]), Invocation::new("/bin/true")] {
        let both = program.wrapped_in([prlimit.as_os_str(), "--stack=20480:unlimited".as_ref()]).assert_same();
        both.expect_exit(0);
    }
    let output =
        Invocation::new("/bin/true").wrapped_in([prlimit.as_os_str(), "--stack=20480:20480".as_ref()]).run_preloaded();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "hard 20 KiB: {} ({stderr:?})", render_status(output.status));
    assert!(
        stderr.starts_with("preload: ") && stderr.lines().count() == 1 && stderr.contains("RLIMIT_STACK"),
        "hard 20 KiB: one `preload: ` line naming RLIMIT_STACK, got {stderr:?}"
    );
}
