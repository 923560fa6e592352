//! Privilege: preload as nobody, as root of a user namespace, deployed with
//! `cap_checkpoint_restore+ep`, as a set-ID binary (refused), running a set-ID program, and what
//! it must leave behind (fds, signal state).
//!
//! The oracle is tests/c/probe.c run directly: its credentials (status Uid/Gid/Groups/Cap*,
//! NoNewPrivs, AT_SECURE, AT_UID..AT_EGID, dumpable), fds, signal state and all the other facts
//! tests/probe.rs compares must be equal.

mod common;

use common::{Invocation, NOBODY, Scratch, Variant, build_c, probe};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The probe's facts (tests/common/probe.rs), relations included. preload's `--verbose` lines
/// on stderr are left to each test.
fn facts(output: &Output, what: &str) -> BTreeMap<String, String> {
    probe::facts(&probe::parse(&Output { stderr: Vec::new(), ..output.clone() }, what))
}

/// Asserts the two runs' facts are equal except for the keys in `except`; the direct run's
/// relations must hold (a check of the scenario).
fn assert_same(direct: &BTreeMap<String, String>, preloaded: &BTreeMap<String, String>, except: &[&str], what: &str) {
    probe::assert_relations(direct, &format!("scenario check, direct run for {what}"));
    let report = probe::differences(direct, preloaded, |key, _| except.contains(&key));
    assert!(report.is_empty(), "{what} differs from the direct run:\n{report}");
}

fn probe_program() -> PathBuf {
    build_c("probe", Variant::Pie)
}

/// The probe with a fixed environment, as `program` (the probe or something that runs it).
fn probe_run(program: impl AsRef<std::ffi::OsStr>) -> Invocation {
    Invocation::new(program).env_clear().env("PATH", common::SYSTEM_PATH).env("LANG", "C")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// setcap and getcap live in /usr/sbin (Debian's libcap2-bin), outside common::SYSTEM_PATH.
fn admin_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"].iter().map(|dir| Path::new(dir).join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("required tool `{name}` not found in /usr/sbin or /sbin: run scripts/test.sh, which installs it")
    })
}

/// A copy of the preloader with `cap_checkpoint_restore+ep`, deployed as README says.
fn capable_preload(scratch: &Scratch) -> PathBuf {
    let copy = scratch.copy(common::preload(), "preload", 0o755);
    let set = common::output(Command::new(admin_tool("setcap")).arg("cap_checkpoint_restore+ep").arg(&copy));
    assert!(set.status.success(), "setcap on {}: {}", copy.display(), stderr(&set));
    let get = common::output(Command::new(admin_tool("getcap")).arg(&copy));
    assert!(
        String::from_utf8_lossy(&get.stdout).contains("cap_checkpoint_restore=ep"),
        "scenario check: the file system of {} does not keep file capabilities (getcap: {:?}); \
         point TMPDIR at one that does (ext4, xfs, btrfs, tmpfs)",
        copy.display(),
        String::from_utf8_lossy(&get.stdout)
    );
    copy
}

#[test]
fn nobody_keeps_preloader_exe_and_verbose_says_so() {
    let both = probe_run(probe_program()).unprivileged().preload_option("--verbose").run_both();
    let direct = facts(&both.direct, "as nobody");
    let preloaded = facts(&both.preloaded, "through preload as nobody");
    assert_eq!(direct["status.Uid"], "65534 65534 65534 65534", "scenario check: nobody");
    assert_same(&direct, &preloaded, &["exe"], "preload as nobody");
    assert_eq!(Path::new(&preloaded["exe"]), common::preload(), "exe without the capability");
    let verbose = stderr(&both.preloaded);
    assert!(
        verbose
            .contains("preload: /proc/self/exe could not be set (Operation not permitted): it stays the preloader\n"),
        "--verbose must say exe could not be set:\n{verbose}"
    );
}

#[test]
fn root_of_user_namespace_sets_exe() {
    let unshare = common::require_tool("unshare");
    let both = probe_run(probe_program())
        .unprivileged()
        .wrapped_in([unshare.as_os_str(), "-Ur".as_ref()])
        .preload_option("--verbose")
        .run_both();
    let direct = facts(&both.direct, "as root of `unshare -Ur`");
    let preloaded = facts(&both.preloaded, "through preload as root of `unshare -Ur`");
    assert_eq!(direct["status.Uid"], "0 0 0 0", "scenario check: root of the user namespace");
    assert_same(&direct, &preloaded, &[], "preload as root of `unshare -Ur`");
    assert_eq!(Path::new(&preloaded["exe"]), probe_program());
    assert!(stderr(&both.preloaded).contains("preload: /proc/self/exe set to the program"));
}

/// The program run through the capable preloader (`preload_args` before it), and directly,
/// both wrapped as `wrap` says.
fn through_capable_preload(
    preload_args: &[&str],
    wrap: impl Fn(Invocation) -> Invocation,
) -> (BTreeMap<String, String>, BTreeMap<String, String>, Output) {
    let scratch = Scratch::new("capable");
    let capable = capable_preload(&scratch);
    let direct = facts(&wrap(probe_run(probe_program())).run_direct(), "direct");
    let through = wrap(probe_run(&capable).args(preload_args).arg(probe_program())).run_direct();
    let preloaded = facts(&through, "through the capable preload");
    (direct, preloaded, through)
}

#[test]
fn capability_gives_nobody_exe_and_nothing_else() {
    // Through env: setpriv execs with permitted capabilities left from root, and the kernel then
    // keeps a capable preloader dumpable (measured); an ordinary caller has none.
    let env = common::require_tool("env");
    let (direct, preloaded, output) =
        through_capable_preload(&["--verbose"], |inv| inv.unprivileged().wrapped_in([&env]));
    assert_eq!(direct["status.Uid"], "65534 65534 65534 65534", "scenario check: nobody");
    assert_eq!(direct["status.CapPrm"], "0000000000000000", "scenario check: nobody has no capabilities");
    // Everything, exe included: the capability sets, AT_SECURE and dumpable in particular.
    assert_same(&direct, &preloaded, &[], "nobody through the capable preload");
    for key in ["status.CapInh", "status.CapPrm", "status.CapEff", "status.CapAmb", "at_secure", "dumpable", "exe"] {
        assert_eq!(direct.get(key), preloaded.get(key), "{key}");
    }
    let verbose = stderr(&output);
    assert!(verbose.contains("preload: /proc/self/exe set to the program"), "{verbose}");
    assert!(verbose.contains("preload: capabilities of the preloader's file dropped"), "{verbose}");
}

#[test]
fn capability_changes_nothing_for_root() {
    let (direct, preloaded, output) = through_capable_preload(&["--verbose"], |inv| inv);
    assert_eq!(direct["status.Uid"], "0 0 0 0", "scenario check: root");
    assert_same(&direct, &preloaded, &[], "root through the capable preload");
    assert!(!stderr(&output).contains("dropped"), "root gains nothing from the file, so nothing is dropped");
}

/// The probe as nobody with fd 5 open (3 and 4 free, where the preloader's own files would
/// land), SIGUSR1 ignored and SIGUSR2 blocked, set up by perl before it execs the rest.
fn with_inherited_state(inv: Invocation) -> Invocation {
    let perl = common::require_tool("perl");
    let script = "use POSIX; open(my $null, '<', '/dev/null') or die; POSIX::dup2(fileno($null), 5) or die; \
                  close($null); $SIG{USR1} = 'IGNORE'; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGUSR2)) or die; \
                  exec {$ARGV[0]} @ARGV or die";
    inv.wrapped_in([perl.as_os_str(), "-e".as_ref(), script.as_ref()])
}

fn assert_inherited_state(direct: &BTreeMap<String, String>) {
    // The test harness may pass on more (cargo's jobserver pipes), to both runs alike.
    let fds: Vec<&str> = direct["fds"].split(',').collect();
    assert!(fds.starts_with(&["0", "1", "2", "5"]), "scenario check: fd 5 inherited, 3 and 4 free: {fds:?}");
    let mask = |key: &str| u64::from_str_radix(&direct[key], 16).unwrap_or_else(|e| panic!("{key}: {e}"));
    assert_ne!(mask("status.SigIgn") & 1 << (10 - 1), 0, "scenario check: SIGUSR1 ignored");
    assert_ne!(mask("status.SigBlk") & 1 << (12 - 1), 0, "scenario check: SIGUSR2 blocked");
}

/// Through a `#!` script the preloader opens three files (script, interpreter, ld.so).
fn fds_and_signals(preloader: Option<&Path>, nobody: bool) {
    let scratch = Scratch::new("fds-signals");
    let script = scratch.write("script", format!("#!{}\n", probe_program().display()), 0o755);
    let wrap = |inv: Invocation| with_inherited_state(if nobody { inv.unprivileged() } else { inv });
    let direct = facts(&wrap(probe_run(&script)).run_direct(), "direct");
    let preloaded = match preloader {
        None => facts(&wrap(probe_run(&script)).run_preloaded(), "through preload"),
        Some(preloader) => facts(&wrap(probe_run(preloader).arg(&script)).run_direct(), "through the capable preload"),
    };
    assert_inherited_state(&direct);
    let exe_may_differ: &[&str] = if nobody && preloader.is_none() { &["exe"] } else { &[] };
    assert_same(&direct, &preloaded, exe_may_differ, "fds and signal state");
}

#[test]
fn fds_and_signals_as_root() {
    fds_and_signals(None, false);
}

#[test]
fn fds_and_signals_as_nobody() {
    fds_and_signals(None, true);
}

#[test]
fn fds_and_signals_as_nobody_with_capability() {
    let scratch = Scratch::new("fds-signals-capable");
    fds_and_signals(Some(&capable_preload(&scratch)), true);
}

#[test]
fn setid_preloader_refuses_to_run() {
    let scratch = Scratch::new("setid-preload");
    for (mode, ids) in
        [(0o4755, "(uid 65534, euid 0, gid 65534, egid 65534)"), (0o2755, "(uid 65534, euid 65534, gid 65534, egid 0)")]
    {
        let copy = scratch.copy(common::preload(), &format!("preload-{mode:o}"), mode);
        for args in [&["/bin/sh", "-c", "echo the program ran"][..], &["--version"]] {
            let output = Invocation::new(&copy).args(args).unprivileged().run_direct();
            let what = format!("a mode {mode:o} preloader run as nobody with {args:?}");
            assert_eq!(output.status.code(), Some(125), "{what}: {}", stderr(&output));
            assert!(
                output.stdout.is_empty(),
                "{what} must not run anything: {:?}",
                String::from_utf8_lossy(&output.stdout)
            );
            let expected = format!("preload: refusing to run set-user-ID or set-group-ID {ids}: ");
            let message = stderr(&output);
            assert!(message.starts_with(&expected) && message.lines().count() == 1, "{what}: {message:?}");
        }
    }
}

#[test]
fn setid_program_runs_with_callers_credentials() {
    let scratch = Scratch::new("setid-program");
    let program = scratch.copy(&probe_program(), "setid-probe", 0o6755);
    let direct = facts(&probe_run(&program).unprivileged().run_direct(), "set-ID probe run directly by nobody");
    assert_eq!(direct["status.Uid"], "65534 0 0 0", "scenario check: the kernel honours set-user-ID here");
    assert_eq!(direct["at_secure"], "0x1", "scenario check: AT_SECURE of a set-ID exec");

    // ld.so direct invocation is the reference: the caller's credentials, AT_SECURE 0.
    let ld_so = probe_run("/lib64/ld-linux-x86-64.so.2").arg(&program).unprivileged().run_direct();
    let ld_so = probe::parse(&ld_so, "set-ID probe run by nobody through ld.so");
    let output = probe_run(&program).unprivileged().preload_option("--verbose").run_preloaded();
    let preloaded = facts(&output, "set-ID probe run by nobody through preload");
    assert_eq!(preloaded["status.Uid"], format!("{NOBODY} {NOBODY} {NOBODY} {NOBODY}"));
    for key in ["status.Uid", "status.Gid", "status.Groups", "status.NoNewPrivs", "status.CapInh", "status.CapPrm"]
        .into_iter()
        .chain(["status.CapEff", "status.CapBnd", "status.CapAmb", "at_uid", "at_euid", "at_gid", "at_egid"])
        .chain(["at_secure", "dumpable"])
    {
        assert_eq!(preloaded.get(key), ld_so.get(key), "{key}: preload and ld.so differ");
    }
    let line = format!(
        "preload: {}: set-user-ID and set-group-ID bits not honoured; running with the caller's credentials\n",
        program.display()
    );
    let verbose = stderr(&output);
    assert_eq!(verbose.matches(&line).count(), 1, "--verbose must say once: {line}in:\n{verbose}");
}

#[test]
fn plain_program_gets_no_setid_note() {
    let output = probe_run(probe_program()).unprivileged().preload_option("--verbose").run_preloaded();
    facts(&output, "probe through preload --verbose");
    assert!(!stderr(&output).contains("not honoured"), "{}", stderr(&output));
}

/// Issue 15, finding 5: the capability is not effective while files are opened. A program
/// nobody cannot reach (its directory is mode 000) stays out of reach through the capable
/// preload, also by /proc/PID/map_files (which CAP_CHECKPOINT_RESTORE opens) of a process of
/// nobody's that maps it.
#[test]
fn capability_is_not_effective_while_files_are_opened() {
    let scratch = Scratch::new("capable-locked");
    let preloader = capable_preload(&scratch);
    let locked = scratch.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let sleep = scratch.copy(Path::new("/bin/sleep"), "locked/sleep", 0o755);
    let setpriv = common::require_tool("setpriv");
    let mut holder = Command::new(&setpriv);
    holder.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"]).arg(&sleep).arg("30");
    holder.stdin(std::process::Stdio::null());
    let mut holder = common::spawn(&mut holder).unwrap();
    let maps_path = format!("/proc/{}/maps", holder.id());
    let mapping = (0..100)
        .find_map(|_| {
            let maps = std::fs::read_to_string(&maps_path).unwrap_or_default();
            let line = maps.lines().find(|line| line.ends_with("/locked/sleep")).map(str::to_owned);
            if line.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            line
        })
        .expect("scenario check: the holder maps its program");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let map_file = format!("/proc/{}/map_files/{}", holder.id(), mapping.split(' ').next().unwrap());
    let plain = Invocation::new(&map_file).arg("0").unprivileged().run_preloaded();
    let capable = probe_run(&preloader).arg(&map_file).arg("0").unprivileged().run_direct();
    let locked_path = Invocation::new(&sleep).arg("0").unprivileged().run_preloaded();
    let _ = holder.kill();
    let _ = holder.wait();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(
        plain.status.code(),
        Some(126),
        "scenario check: plain preload cannot open {map_file}: {}",
        stderr(&plain)
    );
    assert_eq!(locked_path.status.code(), Some(126), "scenario check: nobody cannot reach the locked directory");
    assert_eq!(
        capable.status.code(),
        Some(126),
        "the capable preload opened {map_file} with its capability: {}",
        stderr(&capable)
    );
    assert!(stderr(&capable).contains("Operation not permitted"), "{}", stderr(&capable));
    // That exe is still set: capability_gives_nobody_exe_and_nothing_else.
}

/// Issue 15, finding 3: with the capability, exe never names a program whose exec would have
/// changed the caller's credentials (set-user-ID, set-group-ID, file capabilities), since the
/// program runs without them and with whatever the caller injects (LD_PRELOAD).
#[test]
fn capability_never_points_exe_at_a_set_id_or_capable_program() {
    let scratch = Scratch::new("capable-setid");
    let preloader = capable_preload(&scratch);
    let setuid = scratch.copy(&probe_program(), "setuid-probe", 0o4755);
    let setgid = scratch.copy(&probe_program(), "setgid-probe", 0o2755);
    let capable = scratch.copy(&probe_program(), "capable-probe", 0o755);
    let set = common::output(Command::new(admin_tool("setcap")).arg("cap_net_raw+ep").arg(&capable));
    assert!(set.status.success(), "setcap: {}", stderr(&set));
    for program in [&setuid, &setgid, &capable] {
        let output = probe_run(&preloader).arg("--verbose").arg(program).unprivileged().run_direct();
        let what = format!("{} as nobody through the capable preload", program.display());
        let preloaded = facts(&output, &what);
        assert_eq!(Path::new(&preloaded["exe"]), preloader, "{what}: exe");
        assert_eq!(preloaded["status.Uid"], "65534 65534 65534 65534", "{what}: the caller's credentials");
        assert!(stderr(&output).contains("preload: /proc/self/exe left on the preloader: "), "{}", stderr(&output));
    }
    // A plain program still gets its exe (as capability_gives_nobody_exe_and_nothing_else).
    let plain = scratch.copy(&probe_program(), "plain-probe", 0o755);
    let preloaded = facts(&probe_run(&preloader).arg(&plain).unprivileged().run_direct(), "plain");
    assert_eq!(Path::new(&preloaded["exe"]), plain, "a plain program's exe");
}
