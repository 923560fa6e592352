//! `--userns` (and `PRELOAD_USERNS=1`): a caller without the capability to set /proc/self/exe
//! gets it in a new user namespace of its own, with only its uid and gid mapped, to themselves.
//!
//! Programs that need exe (java through its `$ORIGIN` run path, a busybox pipeline, C and Rust
//! programs that re-execute themselves through /proc/self/exe, node) must give the direct run's output with
//! `--userns` and something else without it. What changes for the program is checked one by
//! one against util-linux's `unshare --user --map-user=U --map-group=G`, the same namespace made
//! by a plain exec: ids of other users and groups are the overflow ids, set-ID programs it
//! starts gain nothing, uid_map, gid_map and setgroups differ, the namespace is a new one (and
//! counts against user.max_user_namespaces). Where unprivileged user namespaces are disabled
//! (user.max_user_namespaces=0 inside a namespace of the test's own), `--userns` is refused
//! with 125.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Both, Invocation, NOBODY, Scratch, Variant, build_c, probe};

/// A uid and gid that are neither root's nor the overflow id (65534, nobody's), so that the
/// caller's own ids and the overflow ids can be told apart.
const USER: u32 = 4242;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `program ARGS` with a fixed environment.
fn plain(program: impl AsRef<OsStr>) -> Invocation {
    Invocation::new(program).env_clear().env("PATH", common::SYSTEM_PATH).env("LANG", "C")
}

/// Runs as `uid`/`uid` without capabilities, with `groups` as supplementary groups.
fn as_user(inv: Invocation, uid: u32, groups: &[u32]) -> Invocation {
    let setpriv = common::require_tool("setpriv");
    let groups = match groups {
        [] => "--clear-groups".to_string(),
        _ => format!("--groups={}", groups.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
    };
    inv.wrapped_in([
        setpriv.into_os_string(),
        format!("--reuid={uid}").into(),
        format!("--regid={uid}").into(),
        groups.into(),
        "--inh-caps=-all".into(),
        "--".into(),
    ])
}

/// The direct run, through `preload --userns`, and through preload without it; the first two
/// must agree and the third must not (the program needs exe), and the direct run must end with
/// `code`.
fn needs_exe(inv: Invocation, code: i32) -> Both {
    let direct = inv.run_direct();
    let with = inv.clone().preload_option("--userns").run_preloaded();
    let without = inv.run_preloaded();
    let both = Both { what: inv.describe(), direct, preloaded: with };
    both.expect_exit(code).assert_same();
    assert!(
        without.status.code() != Some(code)
            || without.stdout != both.direct.stdout
            || without.stderr != both.direct.stderr,
        "scenario check: `{}` through preload without --userns (exe the preloader) should differ, but gave the \
         direct run's output:\n{}{}",
        both.what,
        stdout(&without),
        stderr(&without)
    );
    both
}

#[test]
fn java_finds_its_libraries_through_origin() {
    let java = common::require_tool("java");
    let both = needs_exe(as_user(plain(&java).arg("-version"), NOBODY, &[]), 0);
    assert!(stderr(&both.direct).contains("openjdk version"), "scenario check: {}", stderr(&both.direct));
}

#[test]
fn busybox_pipeline_with_preload_userns_in_the_environment() {
    let busybox = common::require_tool("busybox");
    let script = "printf 'b\\na\\nc\\n' | sort | tr a-z A-Z; echo done | wc -c";
    let inv = as_user(plain(&busybox).args(["sh", "-c", script]), NOBODY, &[]);
    let both = needs_exe(inv.clone(), 0);
    assert_eq!(stdout(&both.direct), "A\nB\nC\n5\n", "scenario check");
    // PRELOAD_USERNS=1 asks for the same.
    let env = inv.env("PRELOAD_USERNS", "1");
    Both { what: env.describe(), direct: env.run_direct(), preloaded: env.run_preloaded() }.assert_same();
}

#[test]
fn program_reexecuting_itself_through_proc_self_exe() {
    let reexec = build_c("reexec", Variant::Pie);
    let both = needs_exe(as_user(plain(&reexec).args(["one", "two words"]), NOBODY, &[]), 7);
    let expected = format!(
        "parent: uid={NOBODY}\nchild of itself: argc=4 uid={NOBODY} exe={}\n  arg one\n  arg two words\n",
        reexec.display()
    );
    assert_eq!(stdout(&both.direct), expected, "scenario check");
}

#[test]
fn node_reexecuting_itself_through_exec_path() {
    let node = common::require_tool("node");
    let script =
        "process.stdout.write(require('child_process').execFileSync(process.execPath, ['-e', 'console.log(6*7)']))";
    let both = needs_exe(as_user(plain(&node).args(["-e", script]), NOBODY, &[]), 0);
    assert_eq!(stdout(&both.direct), "42\n", "scenario check");
}

/// A Rust program that re-executes itself through `std::env::current_exe` (a readlink of
/// /proc/self/exe), compiled with the rustc next to the cargo that builds the tests.
#[test]
fn rust_program_reexecuting_itself_through_current_exe() {
    let scratch = Scratch::new("userns-rust");
    let source = scratch.write(
        "reexec.rs",
        r#"fn main() {
    let exe = std::env::current_exe().expect("current_exe");
    if std::env::args().nth(1).as_deref() == Some("child") {
        println!("child: {}", exe.display());
        std::process::exit(3);
    }
    let status = std::process::Command::new(&exe).arg("child").status().expect("spawn");
    println!("parent: the child ended with {:?}", status.code());
}
"#,
        0o644,
    );
    let rustc = Path::new(env!("CARGO")).with_file_name("rustc");
    let program = scratch.path().join("reexec");
    let built = common::output(Command::new(&rustc).arg("-O").arg("-o").arg(&program).arg(&source));
    assert!(built.status.success(), "{} failed: {}", rustc.display(), stderr(&built));
    let both = needs_exe(as_user(plain(&program), NOBODY, &[]), 0);
    let expected = format!("child: {}\nparent: the child ended with Some(3)\n", program.display());
    assert_eq!(stdout(&both.direct), expected, "scenario check");
}

/// `sh -c SCRIPT` as [`USER`] (with supplementary group 100): directly, through
/// `preload --userns`, and under `unshare --user --map-user=USER --map-group=USER`, the same
/// namespace made by util-linux and a plain exec.
struct Three {
    direct: Output,
    userns: Output,
    reference: Output,
}

/// `inv` run in a new user namespace made by util-linux's unshare, [`USER`] mapped to itself: the
/// reference for `preload --userns`.
fn under_unshare(inv: &Invocation) -> Invocation {
    let unshare = common::require_tool("unshare");
    inv.clone().wrapped_in([
        unshare.into_os_string(),
        "--user".into(),
        format!("--map-user={USER}").into(),
        format!("--map-group={USER}").into(),
        "--".into(),
    ])
}

fn three(script: &str, args: &[&OsStr]) -> Three {
    let inv = as_user(plain("/bin/sh").args(["-c", script, "sh"]).args(args), USER, &[100]);
    let reference = under_unshare(&inv);
    let three = Three {
        direct: inv.run_direct(),
        userns: inv.preload_option("--userns").run_preloaded(),
        reference: reference.run_direct(),
    };
    for (what, output) in [("direct", &three.direct), ("--userns", &three.userns), ("unshare", &three.reference)] {
        assert!(output.status.success(), "{what}: `{script}` failed: {}", stderr(output));
    }
    three
}

/// The probe (credentials, capability sets, AT_SECURE, dumpable, exe, fds, signals and the rest
/// tests/probe.rs compares) through `preload --userns` is the probe under util-linux's unshare.
#[test]
fn the_program_gets_what_a_plain_exec_in_the_namespace_gives() {
    let probe_program = build_c("probe", Variant::Pie);
    let inv = as_user(plain(&probe_program), USER, &[100]);
    let reference = under_unshare(&inv);
    let output = inv.preload_option("--userns").preload_option("--verbose").run_preloaded();
    let facts =
        |output: &Output, what| probe::facts(&probe::parse(&Output { stderr: Vec::new(), ..output.clone() }, what));
    let (expected, preloaded) = (facts(&reference.run_direct(), "under unshare"), facts(&output, "--userns"));
    probe::assert_relations(&expected, "scenario check, under unshare");
    let report = probe::differences(&expected, &preloaded, |_, _| false);
    assert!(report.is_empty(), "preload --userns differs from unshare --map-user:\n{report}");
    assert_eq!(preloaded["status.Uid"], format!("{USER} {USER} {USER} {USER}"));
    assert_eq!(preloaded["status.Groups"].trim(), "65534", "the supplementary group 100 is unmapped");
    for key in ["status.CapInh", "status.CapPrm", "status.CapEff", "status.CapAmb"] {
        assert_eq!(preloaded[key], "0000000000000000", "{key}");
    }
    assert_eq!(preloaded["status.CapBnd"], expected["status.CapBnd"], "the bounding set, full as after exec");
    assert_eq!(Path::new(&preloaded["exe"]), probe_program, "exe is the program");
    let verbose = stderr(&output);
    let line = format!(
        "preload: --userns: in a new user namespace, uid {USER} and gid {USER} mapped to themselves; \
         the program runs there without capabilities\n"
    );
    assert!(verbose.contains(&line), "--verbose: {verbose}");
    assert!(verbose.contains("preload: /proc/self/exe set to the program"), "--verbose: {verbose}");
    assert!(!verbose.contains("capabilities of the preloader's file"), "--verbose: {verbose}");
}

#[test]
fn ids_of_other_users_and_groups_are_the_overflow_ids() {
    let scratch = Scratch::new("userns-ids");
    let own = scratch.write("own", "", 0o644);
    std::os::unix::fs::chown(&own, Some(USER), Some(USER)).unwrap();
    let three = three(r#"stat -c %u:%g / "$1"; id -u; id -G"#, &[own.as_os_str()]);
    assert_eq!(stdout(&three.direct), format!("0:0\n{USER}:{USER}\n{USER}\n{USER} 100\n"), "scenario check");
    assert_eq!(stdout(&three.userns), format!("65534:65534\n{USER}:{USER}\n{USER}\n{USER} 65534\n"));
    assert_eq!(stdout(&three.userns), stdout(&three.reference), "as under unshare --map-user");
}

#[test]
fn set_id_programs_started_gain_nothing() {
    let scratch = Scratch::new("userns-setid");
    let program = scratch.copy(&build_c("probe", Variant::Pie), "setid-probe", 0o6755);
    let three = three(r#"exec "$1""#, &[program.as_os_str()]);
    let ids = |output: &Output, what| {
        let facts = probe::facts(&probe::parse(output, what));
        [facts["status.Uid"].clone(), facts["status.Gid"].clone(), facts["at_secure"].clone()]
    };
    let set_id = [format!("{USER} 0 0 0"), format!("{USER} 0 0 0"), "0x1".to_string()];
    assert_eq!(ids(&three.direct, "direct"), set_id, "scenario check: set-ID honoured in a direct run");
    let unchanged = [format!("{USER} {USER} {USER} {USER}"), format!("{USER} {USER} {USER} {USER}"), "0x0".to_string()];
    assert_eq!(ids(&three.userns, "--userns"), unchanged, "a set-ID-root program started in the namespace");
    assert_eq!(ids(&three.reference, "unshare"), unchanged, "as under unshare --map-user");
}

#[test]
fn uid_map_gid_map_and_setgroups_differ() {
    let three = three("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups", &[]);
    let words = |output: &Output| stdout(output).split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&three.direct), ["0", "0", "4294967295", "0", "0", "4294967295", "allow"], "scenario check");
    let one = USER.to_string();
    assert_eq!(words(&three.userns), [&one, &one, "1", &one, &one, "1", "deny"]);
    assert_eq!(words(&three.userns), words(&three.reference), "as under unshare --map-user");
}

#[test]
fn the_namespace_is_a_new_one() {
    let three = three("readlink /proc/self/ns/user", &[]);
    assert!(stdout(&three.direct).starts_with("user:["), "scenario check: {}", stdout(&three.direct));
    assert_ne!(stdout(&three.userns), stdout(&three.direct), "a new user namespace");
    assert_ne!(stdout(&three.userns), stdout(&three.reference), "a new one for each run");
}

/// `SCRIPT` inside `unshare -Ur` (a user namespace of the test's own, so that
/// user.max_user_namespaces, which is per namespace, can be set there without touching the
/// machine's), with $1 preload and $2 the path to run as a caller without capabilities.
fn in_own_namespace(script: &str, words: &[&str]) -> Output {
    let (preload, setpriv) = (common::preload(), common::require_tool("setpriv"));
    let words = [preload.as_os_str(), setpriv.as_os_str()].into_iter().chain(words.iter().map(OsStr::new));
    common::sh_under_unshare("-Ur", script, words)
}

/// With user.max_user_namespaces 0, `--userns` is refused with 125 and one line that says so;
/// without it the program runs (exe stays the preloader).
#[test]
fn refused_where_user_namespaces_are_disabled() {
    let script = r#"
        preload=$1 setpriv=$2
        echo 0 > /proc/sys/user/max_user_namespaces || exit 90
        capless() { "$setpriv" --bounding-set=-all --inh-caps=-all -- "$@"; }
        capless unshare -U true 2>/dev/null; echo "direct unshare: $?"
        capless "$preload" --userns /bin/echo ran 2>&1; echo "preload --userns: $?"
        PRELOAD_USERNS=1 capless "$preload" /bin/echo ran 2>&1; echo "PRELOAD_USERNS=1: $?"
        capless "$preload" /bin/echo ran 2>&1; echo "preload: $?"
    "#;
    let output = in_own_namespace(script, &[]);
    assert!(output.status.success(), "{}: {}", common::render_status(output.status), stderr(&output));
    let message = "preload: /bin/echo: --userns: cannot create a user namespace (unshare: No space left on device): \
                   unprivileged user namespaces are disabled here (user.max_user_namespaces is 0) or their limit is reached";
    let expected = format!(
        "direct unshare: 1\n{message}\npreload --userns: 125\n{message}\nPRELOAD_USERNS=1: 125\nran\npreload: 0\n"
    );
    assert_eq!(stdout(&output), expected, "stderr: {}", stderr(&output));
}

/// A system call refused with EPERM (tests/c/deny.c, a seccomp filter) stands in for a kernel
/// that refuses unprivileged user namespaces (Debian's kernel.unprivileged_userns_clone=0 makes
/// unshare fail with EPERM) and for an LSM that denies capabilities in them (AppArmor's
/// restriction: setting exe there fails with EPERM): both refuse `--userns` with 125.
#[test]
fn refused_where_unshare_or_exe_is_denied() {
    let deny = build_c("deny", Variant::Pie);
    let echo = common::require_tool("echo");
    let run = |syscall: &str, arg0: &str, userns: bool| {
        let inv = as_user(plain(&deny).args([syscall, arg0]).arg(common::preload()), NOBODY, &[]);
        let inv = if userns { inv.arg("--userns") } else { inv };
        inv.arg(&echo).arg("ran").run_direct()
    };
    let cases = [
        (
            "272",
            "any",
            "cannot create a user namespace (unshare: Operation not permitted): unprivileged user \
                        namespaces are disabled here (kernel.unprivileged_userns_clone=0, a seccomp filter, or a chroot)",
        ),
        (
            "157",
            "35",
            "cannot set /proc/self/exe in the new user namespace (PR_SET_MM_MAP: Operation not permitted): \
                       capabilities in new user namespaces are denied here (AppArmor's \
                       kernel.apparmor_restrict_unprivileged_userns, or another LSM)",
        ),
    ];
    for (syscall, arg0, reason) in cases {
        let output = run(syscall, arg0, true);
        assert_eq!(output.status.code(), Some(125), "system call {syscall} denied: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "nothing runs: {}", stdout(&output));
        assert_eq!(stderr(&output), format!("preload: {}: --userns: {reason}\n", echo.display()));
        let without = run(syscall, arg0, false);
        assert_eq!((without.status.code(), stdout(&without)), (Some(0), "ran\n".to_string()), "without --userns");
    }
}

/// The namespace counts: the program can create one namespace fewer than a direct run. In a
/// namespace A of the test's own with user.max_user_namespaces 2, a namespace B (util-linux's
/// `unshare --map-user`) holds the caller, uid [`USER`] without capabilities; B counts 1 in A,
/// preload's namespace 2, and a namespace the program then creates would be the third. Each
/// case in a fresh A: a namespace is counted until the kernel has freed it, some time after its
/// last process exits.
#[test]
fn the_namespace_counts_against_the_limit() {
    let script = r#"
        preload=$1 setpriv=$2; shift 2
        echo 2 > /proc/sys/user/max_user_namespaces || exit 90
        unshare --user --map-user="$USER_ID" --map-group="$USER_ID" -- "$@" 2>&1; echo "status $?"
    "#;
    let run = |words: &[&str]| {
        let output = in_own_namespace(&script.replace("$USER_ID", &USER.to_string()), words);
        assert!(output.status.success(), "{}: {}", common::render_status(output.status), stderr(&output));
        stdout(&output)
    };
    let preload = common::preload().to_str().unwrap();
    let id = ["sh", "-c", "id -u; unshare -U true"];
    assert_eq!(run(&id), format!("{USER}\nstatus 0\n"), "scenario check: direct");
    let without: Vec<&str> = [preload].into_iter().chain(id).collect();
    assert_eq!(run(&without), format!("{USER}\nstatus 0\n"), "without --userns");
    let with: Vec<&str> = [preload, "--userns"].into_iter().chain(id).collect();
    assert_eq!(
        run(&with),
        format!("{USER}\nunshare: unshare failed: No space left on device\nstatus 1\n"),
        "the program runs in a namespace that counts"
    );
}

/// Root (and any caller with the capability) needs no namespace: nothing changes.
#[test]
fn root_needs_no_namespace() {
    let probe_program = build_c("probe", Variant::Pie);
    let both = plain(&probe_program).preload_option("--userns").preload_option("--verbose").run_both();
    let facts =
        |output: &Output, what| probe::facts(&probe::parse(&Output { stderr: Vec::new(), ..output.clone() }, what));
    let (direct, preloaded) = (facts(&both.direct, "direct"), facts(&both.preloaded, "--userns"));
    let report = probe::differences(&direct, &preloaded, |_, _| false);
    assert!(report.is_empty(), "root through preload --userns differs from the direct run:\n{report}");
    let verbose = stderr(&both.preloaded);
    assert!(
        verbose.contains("preload: --userns: not needed, the caller can set /proc/self/exe where it is\n"),
        "{verbose}"
    );
}

/// A C program whose RUNPATH (or RPATH) is `$ORIGIN/lib`, built in `scratch` with gcc's `flags`
/// (`-m32`: an i386 program).
fn with_run_path(scratch: &Scratch, name: &str, dtags: &str, flags: &[&str]) -> PathBuf {
    let out = scratch.path().join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/hello.c");
    let gcc = common::require_tool("gcc");
    let built = common::output(
        Command::new(gcc)
            .args(flags)
            .args(["-O1", "-pthread", "-o"])
            .arg(&out)
            .arg(&source)
            .arg("-Wl,-rpath,$ORIGIN/lib")
            .arg(format!("-Wl,{dtags}")),
    );
    assert!(built.status.success(), "gcc: {}", stderr(&built));
    out
}

/// --verbose, when exe could not be set, names a run path with `$ORIGIN`; not otherwise.
#[test]
fn verbose_names_an_origin_run_path_when_exe_is_not_set() {
    let scratch = Scratch::new("userns-origin");
    let note = |path: &Path, tag: &str| {
        format!(
            "preload: {}: its {tag} uses $ORIGIN, which ld.so takes from /proc/self/exe, the preloader here: \
             libraries found through it may be missing (--userns or the capability sets exe)\n",
            path.display()
        )
    };
    let java = common::require_tool("java");
    for (program, tag) in [
        (java.clone(), "RPATH"),
        (with_run_path(&scratch, "runpath", "--enable-new-dtags", &[]), "RUNPATH"),
        (with_run_path(&scratch, "rpath", "--disable-new-dtags", &[]), "RPATH"),
        // An i386 program's dynamic section, of 4-byte words.
        (with_run_path(&scratch, "runpath32", "--enable-new-dtags", &["-m32"]), "RUNPATH"),
        (with_run_path(&scratch, "rpath32", "--disable-new-dtags", &["-m32"]), "RPATH"),
    ] {
        let arg = if program == java { "-version" } else { "x" };
        let output = as_user(plain(&program).arg(arg), NOBODY, &[]).preload_option("--verbose").run_preloaded();
        let verbose = stderr(&output);
        assert!(verbose.contains("/proc/self/exe could not be set"), "scenario check: {verbose}");
        assert_eq!(verbose.matches(&note(&program, tag)).count(), 1, "{}: {verbose}", program.display());
        // With exe set (--userns, or root), nothing to say.
        for inv in [as_user(plain(&program).arg(arg), NOBODY, &[]).preload_option("--userns"), plain(&program).arg(arg)]
        {
            let output = inv.preload_option("--verbose").run_preloaded();
            assert!(!stderr(&output).contains("$ORIGIN"), "{}", stderr(&output));
        }
    }
    let hello = build_c("hello", Variant::Pie);
    let output = as_user(plain(&hello), NOBODY, &[]).preload_option("--verbose").run_preloaded();
    assert!(!stderr(&output).contains("$ORIGIN"), "no run path: {}", stderr(&output));
}
