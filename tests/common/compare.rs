//! Comparing a direct run with a run through preload: [`Both`], line diffs, and readable
//! renderings of wait statuses and bytes.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output};

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

pub(super) fn shell_word(word: &OsStr) -> String {
    let bytes = word.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(|c| c.is_ascii_alphanumeric() || b"/._-=+:,".contains(c)) {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        escape(bytes)
    }
}
