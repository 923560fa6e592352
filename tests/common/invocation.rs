//! A program run directly (as the kernel execs it) and through `preload`, with the same
//! arguments, environment, stdin and cwd.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::compare::{Both, shell_word};
use super::scratch::preload;
use super::spawn::{NOBODY, require_tool, run, same_spawn_path, try_run};

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
