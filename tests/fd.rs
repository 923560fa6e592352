//! `preload --fd N NAME [ARG]...`: programs taken from an inherited descriptor — a regular file,
//! a pipe or a socket — must behave exactly as direct runs of NAME (output, exit status, and
//! what the probe sees in /proc), apart from the documented differences of a streamed program:
//! /proc/self/exe is the sealed memfd `/memfd:BASENAME (deleted)` and its segments are mapped
//! from it, so /proc/self/maps names the memfd.

mod common;

use common::probe::{Report, assert_relations, differences, facts, parse};
use common::{Both, Invocation, Scratch, Variant, build_c, require_tool, strace};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;
use std::thread;

/// The descriptor the tests hand the program over on.
const FD: i32 = 3;

unsafe extern "C" {
    fn dup2(old: i32, new: i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
}

const F_SETFD: i32 = 2;

/// In a child about to exec: `fd` open as `FD`, inherited across the exec (dup2 onto itself
/// would keep close-on-exec, so then the flag is cleared instead).
fn hand_over(fd: i32) -> std::io::Result<()> {
    // SAFETY: dup2 and fcntl are async-signal-safe and touch descriptors only.
    let result = unsafe { if fd == FD { fcntl(FD, F_SETFD, 0) } else { dup2(fd, FD) } };
    if result < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// How the program's bytes reach descriptor 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// The program file itself, open for reading: mapped like a file.
    File,
    /// A pipe a thread writes the program into.
    Pipe,
    /// One end of a unix socket pair; a thread writes the program into the other.
    Socket,
}

use Delivery::{File, Pipe, Socket};

/// Runs `inv` as `preload --fd 3 PROGRAM ARGS...` with descriptor 3 delivering `bytes` (or,
/// for [`Delivery::File`], the file `program`).
fn run_fd_bytes(inv: &Invocation, program: &Path, bytes: Vec<u8>, delivery: Delivery) -> Output {
    let (source, feeder): (OwnedFd, _) = match delivery {
        File => (fs::File::open(program).expect("open the program").into(), None),
        Pipe => {
            let (reader, mut writer) = std::io::pipe().expect("pipe");
            (reader.into(), Some(thread::spawn(move || drop(writer.write_all(&bytes)))))
        }
        Socket => {
            let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
            (ours.into(), Some(thread::spawn(move || drop(theirs.write_all(&bytes)))))
        }
    };
    let mut cmd = inv.clone().preload_option("--fd").preload_option(FD.to_string()).preloaded_command();
    let raw = source.as_raw_fd();
    // SAFETY: `hand_over` is async-signal-safe; `raw` stays open until the child is spawned.
    unsafe {
        cmd.pre_exec(move || hand_over(raw));
    }
    let output = common::run(cmd, None, &format!("`preload --fd 3 {}` ({delivery:?})", inv.describe()));
    // Our end closed, a writer the preloader stopped reading from ends with EPIPE.
    drop(source);
    if let Some(feeder) = feeder {
        feeder.join().expect("feeder thread");
    }
    output
}

fn run_fd(inv: &Invocation, program: &Path, delivery: Delivery) -> Output {
    let bytes = if delivery == File { Vec::new() } else { fs::read(program).expect("read the program") };
    run_fd_bytes(inv, program, bytes, delivery)
}

/// Runs `inv` directly and through `--fd` from `delivery`, and asserts the same output.
fn assert_same(inv: &Invocation, program: &Path, delivery: Delivery) -> Both {
    let both = Both {
        what: format!("{} (program through --fd from a {delivery:?})", inv.describe()),
        direct: inv.run_direct(),
        preloaded: run_fd(inv, program, delivery),
    };
    both.assert_same();
    both
}

fn ls(delivery: Delivery) {
    let program = require_tool("ls");
    let inv = Invocation::new(&program)
        .args(["-la", "--ignore=proc", "--ignore=tmp", "/"])
        .env_clear()
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    assert_same(&inv, &program, delivery).expect_exit(0).expect_stdout_contains(" usr\n");
}

#[test]
fn ls_from_a_file() {
    ls(File);
}

#[test]
fn ls_from_a_pipe() {
    ls(Pipe);
}

#[test]
fn ls_from_a_socket() {
    ls(Socket);
}

/// hello: awkward arguments, an environment, a thread with TLS, stdout and stderr, exit 7.
fn hello(variant: Variant, delivery: Delivery) {
    let program = build_c("hello", variant);
    let inv =
        Invocation::new(&program).args(["", "with space", "ünïcödé", "--exit", "7"]).env_clear().env("HELLO", "world");
    assert_same(&inv, &program, delivery).expect_exit(7).expect_stdout_contains("thread=42 main_tls=40");
}

#[test]
fn hello_static_from_a_file_pipe_and_socket() {
    for delivery in [File, Pipe, Socket] {
        hello(Variant::Static, delivery);
    }
}

#[test]
fn hello_dynamic_from_a_file_pipe_and_socket() {
    for delivery in [File, Pipe, Socket] {
        hello(Variant::Pie, delivery);
    }
}

#[test]
fn hello_musl_and_static_pie_from_a_pipe() {
    for variant in [Variant::MuslDynamic, Variant::StaticPie, Variant::NoPie, Variant::PieHugeAlign] {
        hello(variant, Pipe);
    }
}

/// The `filemap.*` values of a report (file mappings in address order), leaving out `path`'s.
fn file_mappings_except(facts: &BTreeMap<String, String>, path: &str) -> Vec<String> {
    facts
        .iter()
        .filter(|(key, value)| key.starts_with("filemap.") && !value.ends_with(&format!(" {path}")))
        .map(|(_, value)| value.clone())
        .collect()
}

/// Runs the probe directly and through `--fd` and compares what each sees of itself. From a
/// file, everything must be equal (/proc/self/exe and the maps name the file, as the
/// descriptor is that file). From a stream, exactly the documented differences are allowed:
/// exe is `exe` (the sealed memfd, or the preloader without the right to change it), the
/// program's mappings are the memfd's; the rest of the file mappings (interpreter, libraries)
/// must be the same.
fn probe_check(inv: &Invocation, program: &Path, delivery: Delivery, exe: &str) -> BTreeMap<String, String> {
    let direct_report = parse(&inv.run_direct(), &format!("`{}` (direct)", inv.describe()));
    let preloaded_report: Report =
        parse(&run_fd(inv, program, delivery), &format!("`preload --fd 3 {}` ({delivery:?})", inv.describe()));
    let (direct, preloaded) = (facts(&direct_report), facts(&preloaded_report));
    assert_relations(&direct, &format!("scenario check, direct run of `{}`", inv.describe()));
    let program_path = program.to_string_lossy().into_owned();
    let streamed = delivery != File;
    let report = differences(&direct, &preloaded, |key, value| {
        let value = value.map(String::as_str);
        streamed
            && ((key == "exe" && value == Some(exe))
                || (key == "prog_path" && value.is_some_and(|path| path.starts_with("/memfd:")))
                || key.starts_with("filemap."))
    });
    assert!(
        report.is_empty(),
        "`preload --fd 3 {}` from a {delivery:?} differs from the direct run:\n{report}",
        inv.describe()
    );
    if streamed {
        let not_memfd = |maps: Vec<String>| maps.into_iter().filter(|m| !m.contains(" /memfd:")).collect::<Vec<_>>();
        assert_eq!(
            file_mappings_except(&direct, &program_path),
            not_memfd(file_mappings_except(&preloaded, &program_path)),
            "file mappings other than the program's"
        );
        assert!(
            !file_mappings_except(&preloaded, "").iter().any(|m| m.contains(&program_path)),
            "a streamed program is never mapped from its file"
        );
    }
    assert_eq!(direct["exe"], program_path, "scenario check: exe of the direct run");
    direct
}

fn probe(variant: Variant) -> (Invocation, std::path::PathBuf) {
    let program = build_c("probe", variant);
    let inv = Invocation::new(&program)
        .args(["first", "", "with space", "-x", "--fd", "--"])
        .env_clear()
        .env("PATH", common::SYSTEM_PATH)
        .env("PROBE_VAR", "value");
    (inv, program)
}

fn memfd_exe(program: &Path) -> String {
    format!("/memfd:{} (deleted)", program.file_name().unwrap().to_string_lossy())
}

fn probe_from(variant: Variant, delivery: Delivery) {
    let (inv, program) = probe(variant);
    probe_check(&inv, &program, delivery, &memfd_exe(&program));
}

#[test]
fn probe_static_from_a_file_pipe_and_socket() {
    for delivery in [File, Pipe, Socket] {
        probe_from(Variant::Static, delivery);
    }
}

#[test]
fn probe_dynamic_from_a_file_pipe_and_socket() {
    for delivery in [File, Pipe, Socket] {
        probe_from(Variant::Pie, delivery);
    }
}

#[test]
fn probe_other_variants_from_a_pipe() {
    for variant in [Variant::NoPie, Variant::StaticPie, Variant::MuslDynamic, Variant::PieExecStack] {
        probe_from(variant, Pipe);
    }
}

#[test]
fn probe_from_a_pipe_unprivileged_keeps_exe_on_the_preloader() {
    let (inv, program) = probe(Variant::Pie);
    let facts = probe_check(&inv.unprivileged(), &program, Pipe, &common::preload().to_string_lossy());
    assert_eq!(facts["status.Uid"], "65534 65534 65534 65534", "scenario check: the probe ran as nobody");
}

/// With vm.memfd_noexec=2 (set in a pid namespace of its own) no memfd may be executable: the
/// program still runs, /proc/self/exe stays the preloader, and --verbose says why. Before 6.3
/// there is no such sysctl (nor MFD_EXEC): every memfd is executable, and exe is the memfd.
#[test]
fn refused_executable_memfds_still_run_and_verbose_says_what_exe_shows() {
    let program = require_tool("readlink");
    if common::kernel_version() < (6, 3) {
        assert!(!Path::new("/proc/sys/vm/memfd_noexec").exists(), "scenario check: vm.memfd_noexec came with 6.3");
        let inv = Invocation::new(&program).arg("/proc/self/exe").preload_option("--verbose");
        let output = run_fd(&inv, &program, Pipe);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{}\n", memfd_exe(&program)),
            "before 6.3 every memfd is executable: {stderr}"
        );
        assert!(!stderr.contains("executable memfds are refused"), "{stderr}");
        return;
    }
    let script = r#"echo 2 > /proc/sys/vm/memfd_noexec && exec "$@""#;
    let inv = Invocation::new(&program).arg("/proc/self/exe").preload_option("--verbose").wrapped_in([
        require_tool("unshare").to_str().unwrap(),
        "--pid",
        "--fork",
        "--mount-proc",
        "sh",
        "-c",
        script,
        "sh",
    ]);
    let output = run_fd(&inv, &program, Pipe);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{}\n", common::preload().display()));
    assert!(
        stderr.contains(
            "executable memfds are refused (Permission denied, vm.memfd_noexec): /proc/self/exe cannot show the program"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("/proc/self/exe could not be set (Permission denied): it stays the preloader"), "{stderr}");
}

/// A failed run: the status, one `preload: NAME (fd 3): reason` line, and nothing else.
fn assert_refused(output: &Output, code: i32, reason: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{what}: stderr {stderr}");
    assert!(
        output.stdout.is_empty(),
        "{what}: nothing may run, yet stdout is {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
    assert!(
        stderr.starts_with("preload: ") && stderr.contains(" (fd 3): ") && stderr.trim_end().ends_with(reason),
        "{what}: {stderr}"
    );
}

#[test]
fn a_truncated_stream_is_126_and_runs_nothing() {
    let scratch = Scratch::new("fd-truncated");
    let marker = scratch.path().join("ran");
    let program = build_c("hello", Variant::Static);
    let inv = Invocation::new(&program).args(["--touch", marker.to_str().unwrap()]);
    let bytes = fs::read(&program).unwrap();
    for (cut, reason) in [
        (bytes.len() * 3 / 5, "segment beyond end of file"),
        (40, "truncated: the stream ended inside the ELF header"),
        (0, "the stream ended before any byte arrived"),
    ] {
        for delivery in [Pipe, Socket] {
            let output = run_fd_bytes(&inv, &program, bytes[..cut].to_vec(), delivery);
            assert_refused(&output, 126, reason, &format!("{cut} of {} bytes from a {delivery:?}", bytes.len()));
            assert!(!marker.exists(), "the truncated program ran");
        }
    }
    let whole = run_fd(&inv, &program, Pipe);
    assert!(whole.status.success() && marker.exists(), "scenario check: the whole program runs and touches the marker");
}

#[test]
fn a_stream_that_is_not_elf_is_126() {
    let program = require_tool("true");
    let inv = Invocation::new(&program);
    let text = b"hello, this is not a program\n".repeat(10_000);
    assert_refused(&run_fd_bytes(&inv, &program, text, Pipe), 126, "not an ELF file", "text on a pipe");
    let script = b"#!/bin/sh\necho should not run\n".to_vec();
    assert_refused(
        &run_fd_bytes(&inv, &program, script, Socket),
        126,
        "a #! script cannot run from a descriptor (its interpreter needs a path)",
        "a script on a socket",
    );
    let mut arm = fs::read(&program).unwrap();
    arm[18] = 40;
    assert_refused(
        &run_fd_bytes(&inv, &program, arm, Pipe),
        126,
        "wrong machine: not an x86_64 program",
        "an ARM header on a pipe",
    );
}

#[test]
fn descriptor_errors_are_126() {
    let scratch = Scratch::new("fd-errors");
    let program = require_tool("true");
    let closed = common::run_preload(["--fd", "3", "true"]);
    assert_refused(&closed, 126, "Bad file descriptor", "fd 3 not open");
    let not_executable = scratch.copy(&program, "true-0644", 0o644);
    assert_refused(
        &run_fd(&Invocation::new("true"), &not_executable, File),
        126,
        "Permission denied",
        "a file without execute permission",
    );
    let script = scratch.write("script", "#!/bin/sh\necho should not run\n", 0o755);
    assert_refused(
        &run_fd(&Invocation::new("script"), &script, File),
        126,
        "a #! script cannot run from a descriptor (its interpreter needs a path)",
        "a script file",
    );
    assert_refused(&run_fd(&Invocation::new("dir"), scratch.path(), File), 126, "Is a directory", "a directory");
}

/// strace of a whole piped run (preloader and program, every thread): the program's bytes go
/// to the memfd and nowhere else; no write of any kind reaches a file; no memory is ever
/// writable and executable at once.
#[test]
fn a_piped_program_is_never_written_to_a_file() {
    let strace_path = require_tool("strace");
    for variant in [Variant::Static, Variant::Pie] {
        let program = build_c("hello", variant);
        let calls = format!("trace={},mmap,mprotect", strace::TRACE_WRITES);
        let inv = Invocation::new(&program).arg("traced").wrapped_in([
            strace_path.to_str().unwrap(),
            "-f",
            "-y",
            "-qq",
            "-s",
            "8",
            "-e",
            &calls,
            "-o",
            "/dev/stderr",
        ]);
        let output = run_fd(&inv, &program, Pipe);
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{log}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("argv[1]=\"traced\""),
            "scenario check: the program ran"
        );
        let calls = strace::parse(&log);
        let writes = strace::writes(&calls);
        let to_memfd: u64 = writes.iter().filter(|write| write.to_program_memfd()).map(|write| write.written()).sum();
        assert_eq!(
            to_memfd,
            fs::metadata(&program).unwrap().len(),
            "scenario check: strace saw the program go into the memfd\n{log}"
        );
        let writable_code: Vec<&str> = calls
            .iter()
            .filter(|call| call.text.contains("PROT_WRITE") && call.text.contains("PROT_EXEC"))
            .map(|call| call.text.as_str())
            .collect();
        assert!(writable_code.is_empty(), "memory writable and executable at once:\n{}", writable_code.join("\n"));
        let flagged: Vec<&str> =
            writes.iter().filter(|write| write.to_file()).map(|write| write.call.text.as_str()).collect();
        assert!(flagged.is_empty(), "writes to files during a piped run:\n{}", flagged.join("\n"));
    }
}

fn status_kib(stdout: &str, key: &str) -> u64 {
    let line = stdout.lines().find(|line| line.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {stdout}"));
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// A 100 MiB program from a pipe: the peak resident size of the whole run (preloader, then
/// program, one address space) stays far below the program's size: its segments are mapped from
/// the memfd (which is /proc/self/exe), not copied, and the stream passes through a 64 KiB
/// window.
#[test]
fn a_100_mib_streamed_program_costs_no_copy() {
    let program = build_c("big", Variant::Static);
    let size = fs::metadata(&program).unwrap().len();
    assert!(size > 100 << 20, "scenario check: the program is over 100 MiB");
    let inv = Invocation::new(&program);
    let direct = inv.run_direct();
    let streamed = run_fd(&inv, &program, Pipe);
    assert!(direct.status.success() && streamed.status.success(), "{}", String::from_utf8_lossy(&streamed.stderr));
    let (direct, streamed) = (String::from_utf8_lossy(&direct.stdout), String::from_utf8_lossy(&streamed.stdout));
    let peak = status_kib(&streamed, "VmHWM:");
    let exe_size: u64 = streamed.lines().find_map(|l| l.strip_prefix("exe_size: ")).unwrap().parse().unwrap();
    println!(
        "100 MiB program: {size} bytes; peak RSS direct {} KiB, streamed {peak} KiB; memfd (/proc/self/exe) {exe_size} bytes",
        status_kib(&direct, "VmHWM:")
    );
    assert_eq!(exe_size, size, "the memfd holds exactly the program");
    assert!(peak * 1024 < size + (16 << 20), "peak RSS {peak} KiB is more than the program ({size} bytes) + 16 MiB");
    // The segments are mapped from the memfd, not copied: the untouched 100 MiB stay out of RSS.
    assert!(peak * 1024 < size / 4, "peak RSS {peak} KiB: the segments were copied, not mapped from the memfd");
}

/// Issue 15, finding 10: a non-blocking socket handed in is waited on, not changed: O_NONBLOCK
/// belongs to the open file description the caller shares.
#[test]
fn a_non_blocking_socket_stays_non_blocking() {
    const F_GETFL: i32 = 3;
    const O_NONBLOCK: i32 = 0o4000;
    let program = build_c("hello", Variant::Static);
    let bytes = fs::read(&program).unwrap();
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    ours.set_nonblocking(true).unwrap();
    let kept = ours.try_clone().unwrap();
    // Late, so that the preloader finds nothing to read at first (EAGAIN).
    let feeder = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(300));
        drop(theirs.write_all(&bytes))
    });
    let source: OwnedFd = ours.into();
    let inv = Invocation::new(&program).arg("non-blocking");
    let mut cmd = inv.clone().preload_option("--fd").preload_option(FD.to_string()).preloaded_command();
    let raw = source.as_raw_fd();
    // SAFETY: `hand_over` is async-signal-safe; `raw` stays open until the child is spawned.
    unsafe {
        cmd.pre_exec(move || hand_over(raw));
    }
    let output = common::run(cmd, None, "a program from a non-blocking socket");
    drop(source);
    feeder.join().unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        common::render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    // SAFETY: F_GETFL only reads the flags of a descriptor this test owns.
    let flags = unsafe { fcntl(kept.as_raw_fd(), F_GETFL) };
    assert!(flags >= 0 && flags & O_NONBLOCK != 0, "the caller's socket came back blocking (flags {flags:#o})");
}

/// `sh -c SCRIPT sh PRELOAD`, for streams set up by the shell.
fn shell_with_preload(script: &str) -> Output {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(script).arg("sh").arg(common::preload());
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    common::run(cmd, None, script)
}

/// Exit 126, one `preload: ` line naming the stream and `reason`.
fn assert_stream_refused(output: &Output, reason: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(126), "{what}: {} ({stderr})", common::render_status(output.status));
    assert!(stderr.starts_with("preload: app (fd 0): ") && stderr.lines().count() == 1, "{what}: {stderr}");
    assert!(stderr.contains(reason), "{what}: {stderr}");
    assert!(output.stdout.is_empty(), "{what}: the program ran");
}

/// Issue 15, finding 4: a stream is bounded, by --max-size (default 1 GiB) and by RLIMIT_FSIZE,
/// and refused cleanly (126, one line naming the limit) when longer: no memfd filling up
/// until the OOM killer comes, no SIGXFSZ.
#[test]
fn a_stream_longer_than_its_limit_is_refused() {
    let tru = require_tool("true");
    let endless =
        format!("(head -c 4096 {}; cat /dev/zero) 2>/dev/null | \"$1\" --max-size 8M --fd 0 app", tru.display());
    assert_stream_refused(&shell_with_preload(&endless), "longer than --max-size", "an endless stream");
    // ulimit -f counts blocks of 512 (dash) or 1024 bytes: either way less than `true`.
    let limited = format!("ulimit -f 10; cat {} | \"$1\" --fd 0 app", tru.display());
    assert_stream_refused(&shell_with_preload(&limited), "RLIMIT_FSIZE", "a stream over ulimit -f");
    // Within both, it runs.
    let fits = format!("ulimit -f 100000; cat {} | \"$1\" --max-size 1M --fd 0 app", tru.display());
    let output = shell_with_preload(&fits);
    assert!(
        output.status.success(),
        "{}: {}",
        common::render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    let exact = fs::metadata(&tru).unwrap().len();
    let at_limit = format!("cat {} | \"$1\" --max-size {exact} --fd 0 app", tru.display());
    assert!(shell_with_preload(&at_limit).status.success(), "a program of exactly --max-size runs");
    let below = format!("cat {} | \"$1\" --max-size {} --fd 0 app", tru.display(), exact - 1);
    assert_stream_refused(&shell_with_preload(&below), "longer than --max-size", "one byte over --max-size");
}
