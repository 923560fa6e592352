//! Runs tests/c/probe.c directly and through preload and compares what the process sees of
//! itself: /proc (exe, comm, cmdline, environ, auxv, stat mm fields, maps), the auxv on the stack
//! and through getauxval, the stack layout, and the state an exec leaves (fds, signals, FPU).
//!
//! Deterministic values must be equal; randomised addresses are compared through relations
//! (e.g. AT_ENTRY == &_start, env_end == AT_EXECFN), evaluated on each run separately. Every
//! relation must hold on the direct run too, which checks the probe and this test themselves.

mod common;

use common::{Invocation, Scratch, Variant, build_c, per_variant};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;

/// key=value lines of one probe run.
type Report = BTreeMap<String, String>;

fn parse(output: &Output, what: &str) -> Report {
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "probe {what} failed: {}\nstderr: {}\nstdout: {}",
        common::render_status(output.status),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let text = String::from_utf8(output.stdout.clone()).expect("probe output is UTF-8");
    text.lines()
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("bad probe line {line:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

fn get<'a>(report: &'a Report, key: &str) -> &'a str {
    report.get(key).unwrap_or_else(|| panic!("probe output lacks {key}")).as_str()
}

fn num(report: &Report, key: &str) -> u64 {
    let value = get(report, key);
    u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{key}={value}: {e}"))
}

fn decode_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    format!("{:?}", String::from_utf8_lossy(&bytes))
}

fn page_up(x: u64) -> u64 {
    (x + 4095) & !4095
}

/// Address-space randomisation as the kernel applies it to this process.
fn randomized(report: &Report) -> bool {
    let va_space = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").expect("randomize_va_space");
    let personality = u64::from_str_radix(get(report, "personality").trim_start_matches("0x"), 16).unwrap();
    va_space.trim() == "2" && personality & 0x0040000 == 0 // ADDR_NO_RANDOMIZE
}

/// The comparable view of a run: every deterministic value as printed, plus `ok.*` relations
/// (which must hold) and `rel.*` values derived from randomised addresses (which must be equal).
fn facts(report: &Report) -> BTreeMap<String, String> {
    let mut facts: BTreeMap<String, String> = report
        .iter()
        .filter(|(key, _)| !key.starts_with("addr."))
        .map(|(key, value)| match key.as_str() {
            "cmdline" | "environ" => (key.clone(), decode_hex(value)),
            _ => (key.clone(), value.clone()),
        })
        .collect();
    let a = |key: &str| num(report, &format!("addr.{key}"));
    let mut ok = |name: &str, holds: bool| facts.insert(format!("ok.{name}"), holds.to_string());

    let bias = a("prog_first") - num(report, "elf.first_load_vaddr");
    let (stack_start, stack_end) = (a("stack_start"), a("stack_end"));
    let in_stack = |addr: u64| stack_start <= addr && addr < stack_end;
    let execfn_len = get(report, "at_execfn_str").len() as u64;
    let has_interp = !get(report, "interp_path").is_empty();
    let static_pie = get(report, "elf.type") == "3" && !has_interp;

    ok("proc_auxv_is_stack_auxv", get(report, "addr.proc_auxv") == get(report, "addr.stack_auxv"));
    ok("at_entry_is_start", a("at_entry") == a("start"));
    ok("at_entry_is_bias_plus_e_entry", a("at_entry") == bias + num(report, "elf.entry"));
    ok("at_phdr_in_program_first_mapping", a("prog_first") <= a("at_phdr") && a("at_phdr") < a("prog_first_end"));
    ok("dl_first_phdr_is_at_phdr", a("dl_first_phdr") == a("at_phdr"));
    ok("dl_first_addr_is_load_bias", a("dl_first_addr") == bias);
    ok(
        "at_base_is_interpreter_first_mapping",
        if has_interp { a("at_base") == a("interp_first") } else { a("at_base") == 0 },
    );
    ok("arg_start_is_argv0", a("stat.arg_start") == a("argv0"));
    ok("arg_end_is_end_of_arg_strings", a("stat.arg_end") == a("args_end"));
    ok("arg_end_is_env_start", a("stat.arg_end") == a("stat.env_start"));
    ok("env_start_is_env0", a("stat.env_start") == if a("env0") != 0 { a("env0") } else { a("args_end") });
    ok("env_end_is_end_of_env_strings", a("stat.env_end") == a("env_strings_end"));
    ok("env_end_is_at_execfn", a("stat.env_end") == a("at_execfn"));
    ok("at_execfn_at_stack_top", stack_end - a("at_execfn") == execfn_len + 1 + 8);
    ok("start_stack_is_initial_sp", a("stat.start_stack") == a("sp"));
    ok(
        "initial_data_in_stack_mapping",
        ["sp", "argv0", "at_random", "at_platform", "at_execfn"].iter().all(|k| in_stack(a(k))),
    );
    ok("at_random_then_at_platform", a("at_random") % 16 == 9 && a("at_platform") == a("at_random") + 16);
    ok("load_bias_aligned_to_max_p_align", bias.is_multiple_of(num(report, "elf.max_load_align").max(4096)));
    ok("sysinfo_ehdr_is_vdso", a("at_sysinfo_ehdr") == a("vdso_start"));
    ok("heap_starts_at_start_brk", a("heap_start") == a("stat.start_brk"));
    ok("brk_not_below_start_brk", a("brk") >= a("stat.start_brk"));
    // fs/binfmt_elf.c: start_brk = PAGE_ALIGN(end of the program's bss), moved to
    // ELF_ET_DYN_BASE for a static-pie (also without ASLR: measured under setarch -R), then
    // randomised by up to 1 GiB.
    let base = page_up(if static_pie { 0x5555_5555_4aaa } else { bias + num(report, "elf.load_end_vaddr") });
    let start_brk = a("stat.start_brk");
    ok(
        "start_brk_follows_kernel_rule",
        if randomized(report) { base <= start_brk && start_brk < base + (1 << 30) + 4096 } else { start_brk == base },
    );

    let mut rel = |name: &str, value: u64| facts.insert(format!("rel.{name}"), format!("{value:#x}"));
    for field in ["start_code", "end_code", "start_data", "end_data"] {
        rel(&format!("{field}_minus_bias"), a(&format!("stat.{field}")).wrapping_sub(bias));
    }
    rel("at_phdr_minus_bias", a("at_phdr") - bias);
    rel("prog_first_minus_bias", a("prog_first") - bias);
    rel("at_platform_minus_sp", a("at_platform") - a("sp"));
    rel("arg_bytes", a("stat.arg_end") - a("stat.arg_start"));
    rel("env_bytes", a("stat.env_end") - a("stat.env_start"));
    facts.insert("rel.heap_above_program".into(), (start_brk >= a("prog_end")).to_string());
    if !randomized(report) {
        // Without ASLR the kernel's choices are fixed addresses, and the preloader must make
        // the same ones (a static-pie is placed by mmap, below whatever is mapped already).
        let mut fixed = |name: &str, value: u64| facts.insert(format!("fixed.{name}"), format!("{value:#x}"));
        if !static_pie {
            fixed("load_bias", bias);
            fixed("start_brk", start_brk);
        }
        fixed("stack_end", stack_end);
        fixed("initial_sp", a("sp"));
        fixed("at_execfn", a("at_execfn"));
    }
    facts
}

/// Asserts every `ok.*` relation holds in `facts`.
fn assert_relations(facts: &BTreeMap<String, String>, what: &str) {
    let broken: Vec<&str> =
        facts.iter().filter(|(k, v)| k.starts_with("ok.") && *v != "true").map(|(k, _)| k.as_str()).collect();
    assert!(broken.is_empty(), "{what}: relations that do not hold: {broken:?}");
}

/// Runs `inv` both ways and compares the probe's facts. With `exe_may_be_preloader` (an
/// unprivileged run) /proc/self/exe may name the preloader; otherwise it must be the program.
fn check(inv: &Invocation, exe_may_be_preloader: bool) -> BTreeMap<String, String> {
    let both = inv.run_both();
    let direct = facts(&parse(&both.direct, &format!("`{}` (direct)", both.what)));
    let preloaded = facts(&parse(&both.preloaded, &format!("`preload {}`", both.what)));
    assert_relations(&direct, &format!("scenario check, direct run of `{}`", both.what));

    let preload_path = common::preload().to_string_lossy().into_owned();
    let mut report = String::new();
    for key in direct.keys().chain(preloaded.keys().filter(|k| !direct.contains_key(*k))) {
        let (d, p) = (direct.get(key), preloaded.get(key));
        let accepted = key == "exe" && exe_may_be_preloader && p == Some(&preload_path);
        if d != p && !accepted {
            let show = |v: Option<&String>| v.map_or("(missing)".to_string(), |v| common::escape(v.as_bytes()));
            let _ = writeln!(report, "  {key}:\n    direct:    {}\n    preloaded: {}", show(d), show(p));
        }
    }
    assert!(report.is_empty(), "`preload {}` differs from the direct run:\n{report}", both.what);
    direct
}

/// The probe with awkward arguments (including option-like ones, which belong to the program)
/// and a small fixed environment.
fn probe(variant: Variant) -> Invocation {
    Invocation::new(build_c("probe", variant))
        .args(["first", "", "with space", "ünïcödé\ttab", "-x", "--verbose", "--"])
        .env_clear()
        .env("PATH", common::SYSTEM_PATH)
        .env("LANG", "C")
        .env("PROBE_VAR", "value with spaces")
        .env("EMPTY", "")
}

fn probe_as_root(variant: Variant) {
    let facts = check(&probe(variant), false);
    assert_eq!(facts["exe"], build_c("probe", variant).to_string_lossy(), "scenario check: exe of the direct run");
}

fn probe_unprivileged(variant: Variant) {
    let facts = check(&probe(variant).unprivileged(), true);
    assert_eq!(facts["status.Uid"], "65534 65534 65534 65534", "scenario check: the probe ran as nobody");
}

per_variant!(probe_as_root:
    probe_pie => Pie,
    probe_nopie => NoPie,
    probe_static => Static,
    probe_staticpie => StaticPie,
    probe_musl_static => MuslStatic,
    probe_musl_dynamic => MuslDynamic,
    probe_pie_execstack => PieExecStack,
    probe_pie_align2m => PieHugeAlign,
    probe_staticpie_align2m => StaticPieHugeAlign,
);

per_variant!(probe_unprivileged:
    probe_nobody_pie => Pie,
    probe_nobody_nopie => NoPie,
    probe_nobody_static => Static,
    probe_nobody_staticpie => StaticPie,
);

#[test]
fn probe_execstack_stack_is_executable() {
    let facts = check(&probe(Variant::PieExecStack), false);
    assert_eq!(facts["stack_perms"], "rwxp", "scenario check: -z execstack gives an executable [stack]");
}

#[test]
fn probe_without_environment() {
    let facts = check(&Invocation::new(build_c("probe", Variant::Pie)).arg("alone").env_clear(), false);
    assert_eq!(facts["environ"], "\"\"", "scenario check: empty environment");
}

#[test]
fn probe_found_by_path_search() {
    let program = build_c("probe", Variant::Pie);
    let dir = program.parent().unwrap();
    let name = program.file_name().unwrap();
    let inv = Invocation::new(name).arg("x").env_clear().env("PATH", format!("/nonexistent:{}", dir.display()));
    let facts = check(&inv, false);
    // execvp passes "<dir>/<name>" to execve: that is AT_EXECFN.
    assert_eq!(facts["at_execfn_str"], program.to_string_lossy(), "scenario check: AT_EXECFN after PATH search");
}

#[test]
fn probe_relative_path() {
    let program = build_c("probe", Variant::Pie);
    let inv = Invocation::new(format!("./{}", program.file_name().unwrap().to_string_lossy()))
        .cwd(program.parent().unwrap())
        .env_clear();
    let facts = check(&inv, false);
    assert!(facts["at_execfn_str"].starts_with("./"), "scenario check: AT_EXECFN is the path as typed");
}

#[test]
fn probe_argv0_option() {
    let inv = probe(Variant::Pie).argv0("renamed-by-argv0");
    let facts = check(&inv, false);
    assert!(facts["cmdline"].starts_with("\"renamed-by-argv0\\0"), "scenario check: argv[0] is replaced");
    assert_eq!(facts["comm"], "probe-pie", "scenario check: comm comes from the path, not argv[0]");
}

#[test]
fn probe_through_long_symlink_name() {
    let scratch = Scratch::new("probe-symlink");
    let link = scratch.path().join("a-rather-long-symlink-name");
    std::os::unix::fs::symlink(build_c("probe", Variant::Pie), &link).unwrap();
    let facts = check(&Invocation::new(&link).env_clear().env("A", "b"), false);
    // comm: the basename of the path given to execve, cut to 15 bytes; exe: the resolved file.
    assert_eq!(facts["comm"], "a-rather-long-s", "scenario check: comm of a symlinked program");
    assert_eq!(facts["exe"], build_c("probe", Variant::Pie).to_string_lossy());
}

/// Writes `#!<probe> -x` scripts and checks what the kernel does with them.
fn shebang_script(scratch: &Scratch, name: &str) -> std::path::PathBuf {
    let interpreter = build_c("probe", Variant::Pie);
    scratch.write(name, format!("#!{} -x\nnot read by the probe\n", interpreter.display()), 0o755)
}

#[test]
fn probe_as_shebang_interpreter() {
    let scratch = Scratch::new("probe-shebang");
    let script = shebang_script(&scratch, "my-script.sh");
    let facts = check(&Invocation::new(&script).args(["arg 1", "arg2"]).env_clear().env("K", "v"), false);
    let interpreter = build_c("probe", Variant::Pie);
    // Measured on the kernel: exe = interpreter, comm and AT_EXECFN = the script,
    // argv = interpreter path (as written after #!), its argument, script path, arguments.
    assert_eq!(facts["exe"], interpreter.to_string_lossy());
    assert_eq!(facts["comm"], "my-script.sh");
    assert_eq!(facts["at_execfn_str"], script.to_string_lossy());
    let expected_cmdline = format!("{}\0-x\0{}\0arg 1\0arg2\0", interpreter.display(), script.display());
    assert_eq!(facts["cmdline"], format!("{expected_cmdline:?}"));
}

#[test]
fn probe_as_shebang_interpreter_nobody() {
    let scratch = Scratch::new("probe-shebang-nobody");
    let script = shebang_script(&scratch, "s");
    check(&Invocation::new(&script).arg("a").env_clear().unprivileged(), true);
}

#[test]
fn probe_as_shebang_interpreter_found_by_path_search() {
    let scratch = Scratch::new("probe-shebang-path");
    let script = shebang_script(&scratch, "script-in-path");
    let inv =
        Invocation::new("script-in-path").env_clear().env("PATH", format!("/nonexistent:{}", scratch.path().display()));
    let facts = check(&inv, false);
    assert_eq!(Path::new(&facts["at_execfn_str"]), script);
}

fn probe_without_aslr(variant: Variant) {
    let facts = check(
        &probe(variant).wrapped_in([common::require_tool("setarch").as_os_str(), "x86_64".as_ref(), "-R".as_ref()]),
        false,
    );
    assert!(facts.contains_key("fixed.stack_end"), "scenario check: setarch -R turned ASLR off");
}

per_variant!(probe_without_aslr:
    probe_no_aslr_pie => Pie,
    probe_no_aslr_nopie => NoPie,
    probe_no_aslr_static => Static,
    probe_no_aslr_staticpie => StaticPie,
    probe_no_aslr_musl_dynamic => MuslDynamic,
);

/// An unlimited RLIMIT_STACK gives the legacy bottom-up mmap layout.
fn probe_unlimited_stack(variant: Variant) {
    check(
        &probe(variant).wrapped_in([common::require_tool("prlimit").as_os_str(), "--stack=unlimited".as_ref()]),
        false,
    );
}

per_variant!(probe_unlimited_stack:
    probe_unlimited_stack_pie => Pie,
    probe_unlimited_stack_nopie => NoPie,
    probe_unlimited_stack_staticpie => StaticPie,
);

#[test]
fn probe_small_stack_limit() {
    let prlimit = common::require_tool("prlimit");
    check(&probe(Variant::Pie).wrapped_in([prlimit.as_os_str(), "--stack=262144".as_ref()]), false);
}

/// A parent's blocked and ignored signals and its inheritable descriptors survive exec: the
/// preloader must pass them on untouched.
#[test]
fn probe_inherits_signal_state_and_descriptors() {
    let perl = common::require_tool("perl");
    let script = "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGUSR1, SIGTERM)); \
                  $SIG{USR2} = 'IGNORE'; $SIG{HUP} = 'IGNORE'; $^F = 100; open(my $keep, '<', '/dev/null'); \
                  exec {$ARGV[0]} @ARGV or die";
    let facts = check(&probe(Variant::Pie).wrapped_in([perl.as_os_str(), "-e".as_ref(), script.as_ref()]), false);
    assert_ne!(facts["status.SigBlk"], "0000000000000000", "scenario check: signals are blocked");
    assert!(facts["fds"].starts_with("0,1,2,3,"), "scenario check: fd 3 is inherited: {}", facts["fds"]);
}

#[test]
fn probe_large_arguments_and_environment() {
    let big = "b".repeat(100_000);
    let args: Vec<String> = (0..12).map(|i| format!("{i}{big}")).collect();
    check(&probe(Variant::Pie).args(&args).env("BIG", &big), false);
}

#[test]
fn probe_through_preload_twice() {
    // `preload preload PROGRAM`: the preloader is itself a static-pie it can load.
    check(&probe(Variant::Pie).preload_option(common::preload()), false);
}
