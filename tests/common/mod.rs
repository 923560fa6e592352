//! Shared helpers for the integration tests: the binary under test, scratch directories, C test
//! programs built in several variants, and running a program directly and through `preload`.
//!
//! Std only, on purpose: dev-dependencies that enable `std` on rustix or goblin would break the
//! no_std preloader's build.
#![allow(dead_code)] // every test crate uses a different subset

pub mod elf;
pub mod probe;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, mpsc};
use std::thread;
use std::time::Duration;

/// A fixed PATH for tools the tests run, so that results do not depend on the caller's PATH
/// (pyenv shims and the like).
pub const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long one program may run before the test kills it and fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// uid/gid of the unprivileged user the tests switch to.
pub const NOBODY: u32 = 65534;

/// The binary under test: a copy of the `preload` cargo built (target/release/preload under
/// `cargo test --release`), placed in the scratch root so that tests running as nobody can
/// execute it wherever the checkout lives (CI may clone into a mode-0700 directory).
pub fn preload() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_preload"));
        let copy = scratch_root().join(format!("preload-{}-bin", std::process::id()));
        // Not while another thread forks: its child would hold the write descriptor (ETXTBSY).
        let _no_spawn = SPAWN_LOCK.write().unwrap_or_else(|e| e.into_inner());
        fs::copy(built, &copy).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", built.display(), copy.display()));
        set_mode(&copy, 0o755);
        copy
    })
}

/// `<temp dir>/preload-test-scratch` (world-traversable, as /tmp is), created mode 0755: tests
/// also run programs as nobody, who cannot reach a checkout under a private directory. The
/// first call in a test process removes leftovers of test processes that no longer run.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join("preload-test-scratch");
        make_dir(&root);
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()) {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
        root
    })
}

/// Held for reading while spawning, for writing while a scratch file is open for writing: a
/// child forked by another test thread would otherwise inherit the write descriptor until its
/// exec, and executing the new file meanwhile fails with ETXTBSY.
static SPAWN_LOCK: RwLock<()> = RwLock::new(());

/// Creates `dir` (and its parents) with mode 0755 whatever the umask.
fn make_dir(dir: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    set_mode(dir, 0o755);
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {:o} {}: {e}", mode, path.display()));
}

/// A unique per-test directory `<temp dir>/preload-test-scratch/<name>-<pid>-<n>`, mode 0755.
/// It is removed when the test passes and kept (until the next run) when it fails.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = scratch_root().join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        make_dir(&path);
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` in the scratch directory with the given mode.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            make_dir(parent);
        }
        {
            let _no_spawn = SPAWN_LOCK.write().unwrap_or_else(|e| e.into_inner());
            fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        set_mode(&path, mode);
        path
    }

    /// Copies `from` to `name` in the scratch directory with the given mode.
    pub fn copy(&self, from: &Path, name: &str, mode: u32) -> PathBuf {
        let bytes = fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
        self.write(name, bytes, mode)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// (major, minor) of the running kernel, from /proc/sys/kernel/osrelease: tests of behaviour that
/// changed between kernels (scripts/test-kernels.sh runs them on older ones) follow the kernel.
pub fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").expect("read /proc/sys/kernel/osrelease");
    let number = |part: Option<&str>| -> Option<u32> { part?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok() };
    let mut parts = release.trim().split('.');
    match (number(parts.next()), number(parts.next())) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("cannot parse the kernel release {release:?}"),
    }
}

/// The most program headers the running kernel reads: 64 KiB of them (1170) from 6.17 on, one
/// page (73) before ("binfmt_elf: remove the 4k limitation of program header size").
pub fn max_phdrs() -> usize {
    if kernel_version() >= (6, 17) { 1170 } else { 73 }
}

/// Finds a tool in [`SYSTEM_PATH`]; a missing tool fails the test (it never skips it).
pub fn require_tool(name: &str) -> PathBuf {
    SYSTEM_PATH.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("required tool `{name}` not found in {SYSTEM_PATH}: run scripts/test.sh, which installs it")
    })
}

/// How a C test program is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// glibc, dynamic PIE (`-fPIE -pie`).
    Pie,
    /// glibc, dynamic ET_EXEC (`-no-pie -fno-pie`).
    NoPie,
    /// glibc, static ET_EXEC (`-static`).
    Static,
    /// glibc, static-pie (`-static-pie`): ET_DYN without PT_INTERP.
    StaticPie,
    /// musl, static (`musl-gcc -static`).
    MuslStatic,
    /// musl, dynamic (`musl-gcc`), interpreter /lib/ld-musl-x86_64.so.1.
    MuslDynamic,
    /// glibc, dynamic PIE with an executable stack (`-z execstack`).
    PieExecStack,
    /// glibc, dynamic PIE with 2 MiB segment alignment (`-z max-page-size=0x200000`).
    PieHugeAlign,
    /// glibc, static-pie with 2 MiB segment alignment.
    StaticPieHugeAlign,
}

impl Variant {
    pub const ALL: [Variant; 9] = [
        Variant::Pie,
        Variant::NoPie,
        Variant::Static,
        Variant::StaticPie,
        Variant::MuslStatic,
        Variant::MuslDynamic,
        Variant::PieExecStack,
        Variant::PieHugeAlign,
        Variant::StaticPieHugeAlign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Pie => "pie",
            Variant::NoPie => "nopie",
            Variant::Static => "static",
            Variant::StaticPie => "staticpie",
            Variant::MuslStatic => "musl-static",
            Variant::MuslDynamic => "musl-dynamic",
            Variant::PieExecStack => "pie-execstack",
            Variant::PieHugeAlign => "pie-align2m",
            Variant::StaticPieHugeAlign => "staticpie-align2m",
        }
    }

    fn compiler(self) -> &'static str {
        match self {
            Variant::MuslStatic | Variant::MuslDynamic => "musl-gcc",
            _ => "gcc",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Variant::Pie => &["-fPIE", "-pie"],
            Variant::NoPie => &["-no-pie", "-fno-pie"],
            Variant::Static => &["-static"],
            Variant::StaticPie => &["-static-pie", "-fPIE"],
            Variant::MuslStatic => &["-static"],
            Variant::MuslDynamic => &[],
            Variant::PieExecStack => &["-fPIE", "-pie", "-z", "execstack"],
            Variant::PieHugeAlign => &["-fPIE", "-pie", "-Wl,-z,max-page-size=0x200000"],
            Variant::StaticPieHugeAlign => &["-static-pie", "-fPIE", "-Wl,-z,max-page-size=0x200000"],
        }
    }
}

/// Compiles `tests/c/<src>.c` in the given variant (once per test process) and returns the path
/// of the executable, `<temp dir>/preload-test-scratch/build-<pid>-0/<src>-<variant>`.
pub fn build_c(src: &str, variant: Variant) -> PathBuf {
    type Cache = Mutex<HashMap<(String, Variant), Arc<OnceLock<PathBuf>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    static BUILD_DIR: OnceLock<PathBuf> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((src.to_string(), variant))
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let dir = BUILD_DIR.get_or_init(|| {
            let dir = scratch_root().join(format!("build-{}-0", std::process::id()));
            make_dir(&dir);
            dir
        });
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{src}.c"));
        let out = dir.join(format!("{src}-{}", variant.name()));
        let compiler = require_tool(variant.compiler());
        let result = output(
            Command::new(&compiler)
                .args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
                .args(variant.flags())
                .arg("-o")
                .arg(&out)
                .arg(&source),
        );
        assert!(
            result.status.success(),
            "compiling {} ({}) failed: {}\n{}",
            source.display(),
            variant.name(),
            render_status(result.status),
            String::from_utf8_lossy(&result.stderr)
        );
        set_mode(&out, 0o755);
        out
    })
    .clone()
}

/// A program with its arguments, environment, stdin and cwd, to be run directly (as the kernel
/// execs it) and as `preload [OPTIONS] PROGRAM ARGS...`.
#[derive(Clone, Debug)]
pub struct Invocation {
    program: OsString,
    args: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    argv0: Option<OsString>,
    wrapper: Vec<OsString>,
    preload_options: Vec<OsString>,
}

impl Invocation {
    pub fn new(program: impl AsRef<OsStr>) -> Invocation {
        Invocation {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            stdin: None,
            cwd: None,
            argv0: None,
            wrapper: Vec::new(),
            preload_options: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Starts from an empty environment instead of the test process's.
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Bytes piped to the program's stdin (otherwise stdin is /dev/null).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// argv[0] for the program: `arg0` when run directly, `--argv0 NAME` through preload.
    pub fn argv0(mut self, name: impl AsRef<OsStr>) -> Self {
        self.argv0 = Some(name.as_ref().to_os_string());
        self
    }

    /// Runs both sides through `command` (which must exec its arguments): e.g.
    /// `setarch x86_64 -R` runs `setarch x86_64 -R PROGRAM...` and
    /// `setarch x86_64 -R preload PROGRAM...`.
    pub fn wrapped_in<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, command: I) -> Self {
        self.wrapper.extend(command.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Runs both sides as uid/gid 65534 without capabilities (through setpriv).
    pub fn unprivileged(self) -> Self {
        let setpriv = require_tool("setpriv").into_os_string();
        let uid = format!("--reuid={NOBODY}");
        let gid = format!("--regid={NOBODY}");
        self.wrapped_in([
            setpriv,
            uid.into(),
            gid.into(),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
            "--".into(),
        ])
    }

    /// An option for preload itself, placed before PROGRAM (e.g. `--`, `--verbose`).
    pub fn preload_option(mut self, option: impl AsRef<OsStr>) -> Self {
        self.preload_options.push(option.as_ref().to_os_string());
        self
    }

    /// A readable one-line rendering of the direct command.
    pub fn describe(&self) -> String {
        let mut words = vec![self.program.clone()];
        words.extend(self.args.iter().cloned());
        let mut line = words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ");
        if line.len() > 300 {
            line.truncate(300);
            line.push_str(&format!("… ({} arguments)", self.args.len()));
        }
        if !self.wrapper.is_empty() {
            let wrapper = self.wrapper.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ");
            line.insert_str(0, &format!("[through {wrapper}] "));
        }
        line
    }

    fn command(&self, preloaded: bool) -> Command {
        assert!(self.argv0.is_none() || self.wrapper.is_empty(), "argv0 cannot be combined with a wrapper");
        let mut argv: Vec<OsString> = self.wrapper.clone();
        if preloaded {
            argv.push(preload().as_os_str().to_os_string());
            if let Some(name) = &self.argv0 {
                argv.extend(["--argv0".into(), name.clone()]);
            }
            argv.extend(self.preload_options.iter().cloned());
        }
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if let (Some(name), false) = (&self.argv0, preloaded) {
            cmd.arg0(name);
        }
        if self.env_clear {
            cmd.env_clear();
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        same_spawn_path(&mut cmd);
        cmd
    }

    pub fn run_direct(&self) -> Output {
        run(self.command(false), self.stdin.as_deref(), &format!("`{}`", self.describe()))
    }

    /// Runs the program directly; an exec failure is returned instead of failing the test.
    pub fn try_run_direct(&self) -> std::io::Result<Output> {
        try_run(self.command(false), self.stdin.as_deref(), &format!("`{}`", self.describe()))
    }

    /// The command [`Invocation::run_preloaded`] runs, for callers that add to it (e.g. a
    /// descriptor set up in a `pre_exec` hook) and run it with [`run`].
    pub fn preloaded_command(&self) -> Command {
        self.command(true)
    }

    pub fn run_preloaded(&self) -> Output {
        run(self.command(true), self.stdin.as_deref(), &format!("`preload {}`", self.describe()))
    }

    /// Runs the program directly, then through preload.
    pub fn run_both(&self) -> Both {
        Both { what: self.describe(), direct: self.run_direct(), preloaded: self.run_preloaded() }
    }

    /// Runs both ways and asserts identical stdout, stderr and wait status.
    pub fn assert_same(&self) -> Both {
        let both = self.run_both();
        both.assert_same();
        both
    }
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
fn same_spawn_path(cmd: &mut Command) {
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

/// `cmd.output()` (stdin null, output collected), spawned under [`SPAWN_LOCK`]: for the tools
/// the tests run (compilers, mkfifo, setcap...), which must not inherit a write descriptor either.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    child.wait_with_output().unwrap_or_else(|e| panic!("cannot wait for {cmd:?}: {e}"))
}

/// Spawns `cmd` under [`SPAWN_LOCK`], for tests that wait for the child themselves.
pub fn spawn(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let _no_write = SPAWN_LOCK.read().unwrap_or_else(|e| e.into_inner());
    cmd.spawn()
}

/// [`run`], returning a failure to start the program.
fn try_run(mut cmd: Command, stdin: Option<&[u8]>, what: &str) -> std::io::Result<Output> {
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

/// The results of one [`Invocation`] run directly and through preload.
pub struct Both {
    pub what: String,
    pub direct: Output,
    pub preloaded: Output,
}

impl Both {
    /// Asserts identical stdout, stderr and wait status (exit code or signal, core dump flag).
    pub fn assert_same(&self) -> &Self {
        let mut report = String::new();
        if self.direct.status.into_raw() != self.preloaded.status.into_raw() {
            let _ = writeln!(
                report,
                "exit status differs: direct {}, preloaded {}",
                render_status(self.direct.status),
                render_status(self.preloaded.status)
            );
        }
        for (name, direct, preloaded) in [
            ("stdout", &self.direct.stdout, &self.preloaded.stdout),
            ("stderr", &self.direct.stderr, &self.preloaded.stderr),
        ] {
            if let Some(diff) = diff_text(direct, preloaded) {
                let _ = writeln!(report, "{name} differs (- direct, + preloaded):\n{diff}");
            }
        }
        assert!(
            report.is_empty(),
            "running through preload differs from running directly\ncommand: {}\n{report}",
            self.what
        );
        self
    }

    /// Asserts that the direct run (and so, after [`Both::assert_same`], both) ended with `code`:
    /// guards against a scenario that does not test what it means to.
    pub fn expect_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.direct.status.code(),
            Some(code),
            "scenario check: `{}` run directly ended with {} (stderr: {})",
            self.what,
            render_status(self.direct.status),
            String::from_utf8_lossy(&self.direct.stderr)
        );
        self
    }

    /// Asserts that the direct run was killed by `signal`.
    pub fn expect_signal(&self, signal: i32) -> &Self {
        assert_eq!(
            self.direct.status.signal(),
            Some(signal),
            "scenario check: `{}` run directly ended with {}",
            self.what,
            render_status(self.direct.status)
        );
        self
    }

    /// Asserts that the direct run's stdout contains `needle`.
    pub fn expect_stdout_contains(&self, needle: &str) -> &Self {
        let stdout = String::from_utf8_lossy(&self.direct.stdout);
        assert!(stdout.contains(needle), "scenario check: stdout of `{}` lacks {needle:?}:\n{stdout}", self.what);
        self
    }
}

/// "exit 3", "signal 11 (SIGSEGV)", "signal 6 (SIGABRT), core dumped".
pub fn render_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                _ => "",
            };
            let core = if status.core_dumped() { ", core dumped" } else { "" };
            format!("signal {signal}{name}{core}")
        }
        _ => format!("wait status {:#x}", status.into_raw()),
    }
}

/// A line diff around the first differing line, or None when equal.
pub fn diff_text(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let a_lines: Vec<&[u8]> = a.split_inclusive(|&c| c == b'\n').collect();
    let b_lines: Vec<&[u8]> = b.split_inclusive(|&c| c == b'\n').collect();
    let first = a_lines.iter().zip(&b_lines).take_while(|(x, y)| x == y).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  direct {} bytes in {} lines, preloaded {} bytes in {} lines; first difference at line {}",
        a.len(),
        a_lines.len(),
        b.len(),
        b_lines.len(),
        first + 1
    );
    for line in &a_lines[first.saturating_sub(2)..first] {
        let _ = writeln!(out, "   {}", escape(line));
    }
    for (sign, lines) in [('-', &a_lines), ('+', &b_lines)] {
        for line in lines.iter().skip(first).take(6) {
            let _ = writeln!(out, "  {sign}{}", escape(line));
        }
        if lines.len() > first + 6 {
            let _ = writeln!(out, "  {sign}… ({} more lines)", lines.len() - first - 6);
        }
    }
    Some(out)
}

/// A line, quoted and escaped, at most 200 characters.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = format!("{:?}", String::from_utf8_lossy(bytes));
    if s.len() > 200 {
        let cut = (0..=200).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn shell_word(word: &OsStr) -> String {
    let bytes = word.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(|c| c.is_ascii_alphanumeric() || b"/._-=+:,".contains(c)) {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        escape(bytes)
    }
}

/// Generates one `#[test]` per variant calling `$check(Variant::X)`.
#[allow(unused_macros)]
macro_rules! per_variant {
    ($check:ident: $($test:ident => $variant:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $check(common::Variant::$variant)
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use per_variant;
