//! Runs tests/c/probe.c directly and through preload and compares what the process sees of
//! itself: /proc (exe, comm, cmdline, environ, auxv, stat mm fields, maps), the auxv on the stack
//! and through getauxval, the stack layout, and the state an exec leaves (fds, signals, FPU).
//!
//! Deterministic values must be equal; randomised addresses are compared through relations
//! (e.g. AT_ENTRY == &_start, env_end == AT_EXECFN), evaluated on each run separately. Every
//! relation must hold on the direct run too, which checks the probe and this test themselves.

mod common;

use common::probe::{assert_relations, differences, facts, parse};
use common::{Invocation, Scratch, Variant, build_c, per_variant};
use std::collections::BTreeMap;
use std::path::Path;

/// Runs `inv` both ways and compares the probe's facts. With `exe_may_be_preloader` (an
/// unprivileged run) /proc/self/exe may name the preloader; otherwise it must be the program.
fn check(inv: &Invocation, exe_may_be_preloader: bool) -> BTreeMap<String, String> {
    let both = inv.run_both();
    let direct = facts(&parse(&both.direct, &format!("`{}` (direct)", both.what)));
    let preloaded = facts(&parse(&both.preloaded, &format!("`preload {}`", both.what)));
    assert_relations(&direct, &format!("scenario check, direct run of `{}`", both.what));

    let preload_path = common::preload().to_string_lossy().into_owned();
    let report =
        differences(&direct, &preloaded, |key, p| key == "exe" && exe_may_be_preloader && p == Some(&preload_path));
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
