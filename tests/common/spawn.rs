//! Every process a test starts goes through here: the spawn lock, the runners with their
//! timeout, the tools the tests need, and a child that calls execve(2) itself.

use std::ffi::{CString, OsStr};
use std::io::Write as _;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{RwLock, mpsc};
use std::thread;
use std::time::Duration;

use super::scratch::preload;

/// A fixed PATH for tools the tests run, so that results do not depend on the caller's PATH
/// (pyenv shims and the like).
pub const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// uid/gid of the unprivileged user the tests switch to.
pub const NOBODY: u32 = 65534;

/// How long one program may run before the test kills it and fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Held for reading while spawning, for writing while a scratch file is open for writing: a
/// child forked by another test thread would otherwise inherit the write descriptor until its
/// exec, and executing the new file meanwhile fails with ETXTBSY.
pub(super) static SPAWN_LOCK: RwLock<()> = RwLock::new(());

/// Finds a tool in [`SYSTEM_PATH`]; a missing tool fails the test (it never skips it).
pub fn require_tool(name: &str) -> PathBuf {
    SYSTEM_PATH.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("required tool `{name}` not found in {SYSTEM_PATH}: run scripts/test.sh, which installs it")
    })
}

/// Runs `preload ARGS...` with the test's environment and stdin from /dev/null.
pub fn run_preload<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> Output {
    let mut cmd = Command::new(preload());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    same_spawn_path(&mut cmd);
    run(cmd, None, "preload")
}

/// Makes std spawn `cmd` with fork+exec. Left alone, std uses posix_spawn for some commands
/// (e.g. an absolute program) and fork+exec for others (a PATH search in a changed
/// environment), and a posix_spawn child starts with signals 32 and 33 ignored (glibc-internal
/// signals; measured): the direct and preloaded runs would start from different signal
/// dispositions.
pub(super) fn same_spawn_path(cmd: &mut Command) {
    // SAFETY: the closure does nothing, so it is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
}

/// Spawns `cmd`, feeds it `stdin`, collects its output; kills it and fails after [`TIMEOUT`].
/// Every spawn of a test goes through here, under [`SPAWN_LOCK`].
pub fn run(cmd: Command, stdin: Option<&[u8]>, what: &str) -> Output {
    try_run(cmd, stdin, what).unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// `unshare FLAGS /bin/sh -c SCRIPT sh ARGS...` in a clean environment (PATH and LANG only),
/// stdin from /dev/null, output collected: a script run in namespaces of the test's own.
pub fn sh_under_unshare<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(flags: &str, script: &str, args: I) -> Output {
    let mut command = Command::new(require_tool("unshare"));
    command
        .args([flags, "/bin/sh", "-c", script, "sh"])
        .args(args)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run(command, None, &format!("unshare {flags} sh"))
}

/// `cmd.output()` (stdin null, output collected), spawned under [`SPAWN_LOCK`]: for the tools
/// the tests run (compilers, mkfifo, setcap...), which must not inherit a write descriptor either.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    child.wait_with_output().unwrap_or_else(|e| panic!("cannot wait for {cmd:?}: {e}"))
}

/// Spawns `cmd` under [`SPAWN_LOCK`], for tests that wait for the child themselves.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let _no_write = SPAWN_LOCK.read().unwrap_or_else(|e| e.into_inner());
    // The one place a test forks (the others call this): it holds the spawn lock.
    #[allow(clippy::disallowed_methods)]
    cmd.spawn()
}

/// [`run`], returning a failure to start the program.
pub(super) fn try_run(mut cmd: Command, stdin: Option<&[u8]>, what: &str) -> std::io::Result<Output> {
    let mut child = spawn(&mut cmd)?;
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let data = data.to_vec();
        // A program that exits without reading gives EPIPE here, which is fine.
        thread::spawn(move || drop(pipe.write_all(&data)))
    });
    let pid = child.id().to_string();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let timed_out = finished.recv_timeout(TIMEOUT).is_err();
        if timed_out {
            let _ = output(Command::new("/bin/kill").args(["-KILL", &pid]));
        }
        timed_out
    });
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("cannot wait for {what}: {e}"));
    let _ = done.send(());
    let timed_out = watchdog.join().expect("watchdog thread");
    if let Some(feeder) = feeder {
        feeder.join().expect("stdin feeder thread");
    }
    assert!(!timed_out, "{what} did not finish within {TIMEOUT:?} and was killed");
    Ok(output)
}

unsafe extern "C" {
    fn execve(path: *const std::ffi::c_char, argv: *const usize, envp: *const usize) -> i32;
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut [i64; 18]) -> i32;
}

/// Makes `cmd`'s child call execve(2) itself with exactly `argv` (`argv[0]` is also the path)
/// and an empty environment, after `setup` (in the child, between fork and exec). std would
/// exec with execvp, whose ENOEXEC fallback to /bin/sh hides the kernel's verdict on a file; a
/// failed execve is returned by [`spawn`] as the errno.
///
/// # Safety
///
/// `setup` runs in the forked child of a multi-threaded process: it must be async-signal-safe
/// (system calls on memory prepared before the fork; no allocation, no locks).
pub unsafe fn execve_in_child(cmd: &mut Command, argv: &[&OsStr], mut setup: impl FnMut() + Send + Sync + 'static) {
    let strings: Vec<CString> =
        argv.iter().map(|a| CString::new(a.as_encoded_bytes()).expect("no NUL in arguments")).collect();
    let pointers: Vec<usize> = strings.iter().map(|s| s.as_ptr() as usize).chain([0]).collect();
    // SAFETY: the caller vouches for `setup`; execve is async-signal-safe, and its path, argv and
    // envp were built before the fork (moved into the closure; the pointers point into `strings`,
    // which the closure owns, so they stay valid).
    unsafe {
        cmd.pre_exec(move || {
            setup();
            let no_env = [0usize];
            execve(strings[0].as_ptr(), pointers.as_ptr(), no_env.as_ptr());
            Err(std::io::Error::last_os_error())
        });
    }
}

/// Runs `cmd` (under the spawn lock, stdin, stdout and stderr on /dev/null) and returns its
/// wait status and the minor page faults of the child's whole life (getrusage through wait4),
/// fork to exit: for a program started by posix_spawn, the few faults of the spawning child
/// before its exec plus the program's own.
pub fn run_counting_faults(cmd: &mut Command) -> (ExitStatus, u64) {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    #[allow(clippy::zombie_processes, reason = "reaped by the wait4 below, which std does not see")]
    let child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let mut status = 0;
    // struct rusage on x86_64: two timevals (4 words), then 14 longs; ru_minflt is the 5th long.
    let mut usage = [0i64; 18];
    // SAFETY: `status` and `usage` are writable and as large as the kernel's int and struct
    // rusage; the child is ours and not yet reaped (std reaps only in wait, which is not called:
    // dropping a Child does not wait).
    let reaped = unsafe { wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 for {cmd:?}: {}", std::io::Error::last_os_error());
    (ExitStatus::from_raw(status), usage[4 + 4] as u64)
}
