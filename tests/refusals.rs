//! When the kernel or a sandbox refuses more: PR_SET_MM_MAP, memfd_create, getrandom,
//! faccessat2 or execveat refused by a seccomp filter (tests/c/refuse.c, which then execs the
//! rest of its arguments), exec refused by Landlock, a noexec mount or a writer. preload must
//! still run the program, or refuse it as a direct exec does, with one line and env(1)'s status.

mod common;

use common::{Invocation, Scratch, Variant, build_c, probe, render_status};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn refuse() -> PathBuf {
    build_c("refuse", Variant::Pie)
}

/// `refuse RULES... --`, to put in front of a command.
fn sandbox(rules: &[&str]) -> Vec<OsString> {
    let mut words = vec![refuse().into_os_string()];
    words.extend(rules.iter().map(OsString::from));
    words.push("--".into());
    words
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `preload ARGS...` inside the sandbox.
fn preload_in(rules: &[&str], args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(refuse());
    cmd.args(rules).arg("--").arg(common::preload()).args(args);
    common::output(&mut cmd)
}

/// A refusal: exit `code`, one `preload: ` line mentioning `mention`, nothing on stdout.
fn assert_refused(output: &Output, code: i32, mention: &str, what: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{what}: {} (stderr: {err:?})", render_status(output.status));
    assert!(err.starts_with("preload: ") && err.matches('\n').count() == 1, "{what}: one line expected: {err:?}");
    assert!(err.contains(mention), "{what}: stderr must mention {mention:?}: {err:?}");
    assert!(output.stdout.is_empty(), "{what}: unexpected stdout {:?}", stdout(output));
}

/// Runs `cmd` (spawned under the harness's lock) with `file` as its stdin.
fn with_stdin(mut cmd: Command, file: std::fs::File) -> Output {
    cmd.stdin(file).stdout(Stdio::piped()).stderr(Stdio::piped());
    common::spawn(&mut cmd).and_then(|child| child.wait_with_output()).expect("spawn")
}

fn assert_ran(output: &Output, what: &str) {
    assert!(output.status.success(), "{what}: {} (stderr: {:?})", render_status(output.status), stderr(output));
}

// ---------------------------------------------------------------------------------------------
// PR_SET_MM_MAP refused (a seccomp filter on prctl(PR_SET_MM = 35); the 2026 proposal to require
// CAP_CHECKPOINT_RESTORE for every call would look the same).

#[test]
fn whole_pr_set_mm_map_refused_keeps_cmdline_and_environ_whole() {
    let program = build_c("probe", Variant::Pie);
    let both = Invocation::new(&program)
        .args(["one", "two words"])
        .env_clear()
        .env("PATH", common::SYSTEM_PATH)
        .env("LANG", "C")
        .wrapped_in(sandbox(&["prctl:35=EPERM"]))
        .preload_option("--verbose")
        .run_both();
    let direct = probe::parse(&both.direct, "directly under the filter");
    let verbose = stderr(&both.preloaded);
    let preloaded = probe::parse(&Output { stderr: Vec::new(), ..both.preloaded.clone() }, "through preload");
    assert!(
        verbose.contains("preload: PR_SET_MM_MAP refused (Operation not permitted): /proc/self/cmdline shows preload's own command line"),
        "--verbose must say what /proc shows:\n{verbose}"
    );
    // environ: the program's environment, exactly (the kernel's env area is kept as it was).
    assert_eq!(probe::decode_hex(&preloaded["environ"]), probe::decode_hex(&direct["environ"]), "environ");
    // cmdline: preload's own command line, which ends with the program's, whole strings each.
    let expected: Vec<u8> = [
        common::preload().as_os_str(),
        "--verbose".as_ref(),
        program.as_os_str(),
        "one".as_ref(),
        "two words".as_ref(),
    ]
    .iter()
    .flat_map(|word| word.as_encoded_bytes().iter().copied().chain([0]))
    .collect();
    assert_eq!(
        probe::decode_hex(&preloaded["cmdline"]),
        format!("{:?}", String::from_utf8_lossy(&expected)),
        "cmdline"
    );
    assert!(probe::decode_hex(&preloaded["cmdline"]).ends_with(&probe::decode_hex(&direct["cmdline"])[1..]));
    // The program's own view is unchanged: its argv and environment are a direct run's.
    for key in ["argc", "at_execfn_str", "envp_follows_argv", "comm"] {
        assert_eq!(preloaded[key], direct[key], "{key}");
    }
    // Nothing was set: exe stays the preloader.
    assert_eq!(Path::new(&preloaded["exe"]), common::preload());
}

#[test]
fn whole_pr_set_mm_map_refused_runs_a_script_and_argv0() {
    // Strings that are not preload's own (a `#!` interpreter, --argv0) are copied below the kept
    // area; the program still sees exactly its arguments and environment.
    let scratch = Scratch::new("mm-refused-script");
    let script = scratch.write("script", "#!/bin/sh -e\nprintf '%s|' \"$0\" \"$@\"; printf '%s\\n' \"$X\"\n", 0o755);
    let both = Invocation::new(&script)
        .args(["a", "b c"])
        .env_clear()
        .env("X", "y")
        .wrapped_in(sandbox(&["prctl:35=EPERM"]))
        .run_both();
    both.assert_same().expect_exit(0).expect_stdout_contains("|a|b c|y");
    let hello = build_c("hello", Variant::Pie);
    let output =
        preload_in(&["prctl:35=EPERM"], &["--argv0".as_ref(), "renamed".as_ref(), hello.as_os_str(), "x".as_ref()]);
    assert_ran(&output, "--argv0 under the filter");
    assert!(stdout(&output).contains("argv[0]=\"renamed\"\nargv[1]=\"x\"\n"), "{}", stdout(&output));
}

#[test]
fn all_of_prctl_refused_still_runs_the_program() {
    // PR_SET_NAME is refused too: comm stays the preloader's, and --verbose says so.
    let program = build_c("probe", Variant::Pie);
    let output = preload_in(&["prctl=EPERM"], &["--verbose".as_ref(), program.as_os_str()]);
    let verbose = stderr(&output);
    let report = probe::parse(&Output { stderr: Vec::new(), ..output.clone() }, "through preload under prctl=EPERM");
    let own_name = common::preload().file_name().unwrap().to_string_lossy().chars().take(15).collect::<String>();
    assert_eq!(report["comm"], own_name, "comm");
    for line in [
        "preload: comm could not be set (Operation not permitted): it stays the preloader's\n",
        "preload: PR_SET_MM_MAP refused (Operation not permitted)",
    ] {
        assert!(verbose.contains(line), "--verbose must say {line:?}:\n{verbose}");
    }
    assert_eq!(report["argc"], "1");
}

// ---------------------------------------------------------------------------------------------
// memfd_create refused (ENOSYS before 3.17, or a filter).

#[test]
fn memfd_refused_refuses_a_stream_with_126_and_runs_a_file() {
    for errno in ["ENOSYS", "EPERM"] {
        let rule = format!("memfd_create={errno}");
        let what = format!("--fd 0 from a pipe with {rule}");
        let mut cmd = Command::new(refuse());
        cmd.args([rule.as_str(), "--"]).arg(common::preload()).args(["--fd", "0", "true"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = common::run(cmd, Some(&std::fs::read("/bin/true").unwrap()), &what);
        assert_refused(
            &output,
            126,
            "true (fd 0): a program from a stream is held in a memfd, and memfd_create is",
            &what,
        );
        // A file given by descriptor needs no memfd.
        let file = std::fs::File::open("/bin/true").unwrap();
        let mut cmd = Command::new(refuse());
        cmd.args([rule.as_str(), "--"]).arg(common::preload()).args(["--fd", "0", "true"]);
        let output = with_stdin(cmd, file);
        assert_ran(&output, &format!("--fd 0 from a file with {rule}"));
    }
}

// ---------------------------------------------------------------------------------------------
// getrandom refused (ENOSYS before 3.17, or a filter).

/// The random program's report, `key=value` lines.
fn randoms(output: &Output, what: &str) -> std::collections::BTreeMap<String, String> {
    assert_ran(output, what);
    stdout(output).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn getrandom_refused_still_randomises_everything() {
    let program = build_c("random", Variant::Pie);
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let output = preload_in(&["getrandom=ENOSYS"], &["--verbose".as_ref(), program.as_os_str()]);
            if i == 0 {
                assert!(
                    stderr(&output).contains("preload: getrandom refused (Function not implemented): AT_RANDOM is the kernel's own for preload's exec, the offsets from /dev/urandom\n"),
                    "--verbose must say where the randomness came from:\n{}",
                    stderr(&output)
                );
            }
            randoms(&output, "preload under getrandom=ENOSYS")
        })
        .collect();
    for key in ["at_random", "main", "brk", "stack"] {
        let distinct: BTreeSet<&str> = runs.iter().map(|run| run[key].as_str()).collect();
        assert_eq!(distinct.len(), runs.len(), "{key} must differ in every run: {distinct:?}");
    }
    // The program's AT_RANDOM bytes are not derived from anything it can see.
    for run in &runs {
        assert_ne!(run["at_random"], "0".repeat(32));
    }
}

/// `refuse getrandom=ENOSYS -- preload ARGS...` in a mount namespace whose /dev is an empty
/// tmpfs (no /dev/urandom), optionally under `setarch -R`.
fn without_urandom(no_randomize: bool, program: &Path) -> Output {
    let mut cmd = Command::new(common::require_tool("unshare"));
    cmd.args(["-m", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs none /dev && exec \"$@\"", "sh"]);
    if no_randomize {
        cmd.args([common::require_tool("setarch").as_os_str(), "x86_64".as_ref(), "-R".as_ref()]);
    }
    cmd.arg(refuse()).args(["getrandom=ENOSYS", "--"]).arg(common::preload()).arg(program);
    common::output(&mut cmd)
}

#[test]
fn getrandom_and_urandom_refused_is_125_unless_only_at_random_is_needed() {
    let program = build_c("random", Variant::Pie);
    let output = without_urandom(false, &program);
    assert_refused(
        &output,
        125,
        "no randomness: getrandom is refused and /dev/urandom cannot be read",
        "no randomness",
    );
    // Without address randomisation only AT_RANDOM is drawn, and the kernel's serves.
    let first = randoms(&without_urandom(true, &program), "setarch -R, no getrandom, no /dev/urandom");
    let second = randoms(&without_urandom(true, &program), "setarch -R, no getrandom, no /dev/urandom");
    assert_ne!(first["at_random"], second["at_random"], "AT_RANDOM must still be random");
    assert_eq!(first["main"], second["main"], "scenario check: setarch -R fixes the addresses");
}

// ---------------------------------------------------------------------------------------------
// faccessat2 refused (ENOSYS before 5.8; EPERM from older container seccomp profiles). execveat
// is refused too (ENOSYS), so that the permission check is what decides.

#[test]
fn faccessat2_refused_keeps_the_execute_check() {
    let scratch = Scratch::new("faccessat2");
    let plain = scratch.copy(Path::new("/bin/true"), "plain", 0o755);
    let no_x = scratch.copy(Path::new("/bin/true"), "no-x", 0o644);
    let root_only = scratch.copy(Path::new("/bin/true"), "root-only", 0o700);
    for errno in ["ENOSYS", "EPERM"] {
        let rules = [format!("faccessat2={errno}"), "execveat=ENOSYS".to_string()];
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        let what = |path: &Path| format!("{} with {rules:?}", path.display());
        for (path, runs) in [(&plain, true), (&no_x, false)] {
            let both = Invocation::new(path).wrapped_in(sandbox(&rules)).run_both();
            match runs {
                true => assert_ran(&both.preloaded, &what(path)),
                false => {
                    assert!(both.direct.status.code().is_none() || !both.direct.status.success(), "scenario check");
                    assert_refused(&both.preloaded, 126, "Permission denied", &what(path));
                }
            }
        }
        // As nobody, the effective ids decide: a root-only file cannot be executed.
        let env = common::require_tool("env");
        let both = Invocation::new(&root_only).unprivileged().wrapped_in(sandbox(&rules)).wrapped_in([&env]).run_both();
        assert_eq!(both.direct.status.code(), Some(126), "scenario check: nobody cannot exec a 0700 root file");
        assert_refused(&both.preloaded, 126, "Permission denied", &format!("nobody, {}", what(&root_only)));
        let both = Invocation::new(&plain).unprivileged().wrapped_in(sandbox(&rules)).run_both();
        assert_ran(&both.preloaded, &format!("nobody, {}", what(&plain)));
    }
}

// ---------------------------------------------------------------------------------------------
// AT_EXECVE_CHECK: the kernel's own exec check, which refuses what only exec checks.

/// Landlock rules allowing execution only of the system's programs and of preload.
fn exec_only_system() -> Vec<String> {
    let mut rules = Vec::new();
    for path in ["/usr", "/lib", "/lib64", "/bin"].iter().map(Path::new).chain([common::preload()]) {
        rules.push("--exec-only-beneath".to_string());
        rules.push(path.display().to_string());
    }
    rules
}

#[test]
fn a_file_landlock_forbids_executing_is_refused_as_exec_refuses_it() {
    let scratch = Scratch::new("landlock");
    let denied = scratch.copy(Path::new("/bin/true"), "denied", 0o755);
    let rules = exec_only_system();
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    let env = common::require_tool("env");
    let direct = common::output(Command::new(refuse()).args(&rules).arg("--").arg(&env).arg(&denied));
    assert_eq!(direct.status.code(), Some(126), "scenario check: Landlock refuses the exec: {}", stderr(&direct));
    assert!(stderr(&direct).contains("Permission denied"), "scenario check: {}", stderr(&direct));
    let output = preload_in(&rules, &[denied.as_os_str()]);
    assert_refused(
        &output,
        126,
        &format!("{}: Permission denied", denied.display()),
        "preload of a file Landlock forbids",
    );
    // The permission check alone (a kernel without AT_EXECVE_CHECK) does not see Landlock: this is
    // what the new check adds.
    let mut old = rules.clone();
    old.push("execveat=EINVAL");
    assert_ran(&preload_in(&old, &[denied.as_os_str()]), "scenario check: faccessat2 lets it through");
    // The same for the ELF interpreter and for a file given by descriptor.
    let interp = scratch.copy(Path::new("/lib64/ld-linux-x86-64.so.2"), "ld.so", 0o755);
    let output = preload_in(&rules, &["--interp".as_ref(), interp.as_os_str(), "/bin/true".as_ref()]);
    assert_refused(
        &output,
        126,
        &format!("/bin/true: interpreter {}: Permission denied", interp.display()),
        "--interp",
    );
    let mut cmd = Command::new(refuse());
    cmd.args(&rules).arg("--").arg(common::preload()).args(["--fd", "0", "denied"]);
    let output = with_stdin(cmd, std::fs::File::open(&denied).unwrap());
    assert_refused(&output, 126, "denied (fd 0): Permission denied", "--fd of a file Landlock forbids");
}

/// The calls `refuse RULES -- preload /bin/true` makes, by name, counted from `strace -f`.
fn count_calls(rules: &[&str], names: &[&str]) -> Vec<usize> {
    let scratch = Scratch::new("check-calls");
    let log = scratch.path().join("strace.log");
    let mut cmd = Command::new(common::require_tool("strace"));
    cmd.args(["-f", "-o"]).arg(&log).arg(refuse()).args(rules).arg("--").arg(common::preload()).arg("/bin/true");
    assert_ran(&common::output(&mut cmd), "strace preload /bin/true");
    let calls = common::strace::parse(&std::fs::read_to_string(&log).expect("the strace log"));
    names.iter().map(|name| calls.iter().filter(|call| call.name == *name).count()).collect()
}

#[test]
fn the_kernels_check_replaces_the_permission_check_and_is_asked_once_where_missing() {
    // 6.14 and later: one check per file (the program and ld.so), no faccessat2.
    assert_eq!(count_calls(&[], &["execveat", "faccessat2"]), [2, 0]);
    // Older kernels (EINVAL): asked once, then faccessat2 for each file.
    assert_eq!(count_calls(&["execveat=EINVAL"], &["execveat", "faccessat2"]), [1, 2]);
}

#[test]
fn a_file_open_for_writing_is_refused_as_exec_refuses_it() {
    let scratch = Scratch::new("txtbsy");
    let busy = scratch.copy(Path::new("/bin/true"), "busy", 0o755);
    // Held open for writing by this process while both runs happen (close-on-exec, so no child
    // holds it).
    let _writer = std::fs::OpenOptions::new().append(true).open(&busy).unwrap();
    let env = common::require_tool("env");
    let direct = common::output(Command::new(&env).arg(&busy));
    assert_eq!(direct.status.code(), Some(126), "scenario check: exec gives ETXTBSY: {}", stderr(&direct));
    assert!(stderr(&direct).contains("Text file busy"), "scenario check: {}", stderr(&direct));
    let output = common::run_preload([&busy]);
    assert_refused(&output, 126, &format!("{}: Text file busy", busy.display()), "preload of a file open for writing");
}

#[test]
fn a_noexec_mount_is_refused_with_and_without_the_kernels_check() {
    let script = "mount -t tmpfs -o noexec none \"$1\" && cp /bin/true \"$1/true\" && shift && exec \"$@\"";
    let scratch = Scratch::new("noexec");
    let mnt = scratch.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let run = |words: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new(common::require_tool("unshare"));
        cmd.args(["-m", "--propagation", "private", "/bin/sh", "-c", script, "sh"]).arg(&mnt).args(words);
        common::output(&mut cmd)
    };
    let program = mnt.join("true");
    let env = common::require_tool("env");
    let direct = run(&[env.as_os_str(), program.as_os_str()]);
    assert_eq!(direct.status.code(), Some(126), "scenario check: noexec refuses the exec: {}", stderr(&direct));
    for rules in [&[][..], &["execveat=EINVAL"][..]] {
        let mut all = sandbox(rules);
        all.push(common::preload().into());
        all.push(program.clone().into());
        let all: Vec<&std::ffi::OsStr> = all.iter().map(|w| w.as_os_str()).collect();
        let output = run(&all);
        assert_refused(&output, 126, "Permission denied", &format!("noexec mount with {rules:?}"));
    }
}
