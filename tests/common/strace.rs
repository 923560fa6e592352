//! The one parser of strace logs, for the tests and for `benches/startup.rs` (which includes this
//! file): system calls with their arguments and results, descriptors' targets as `-y` shows them,
//! and the write-family calls with what they wrote where.
//!
//! # What counts as a write to a file, and to a memfd
//!
//! A descriptor's target is what `strace -y` prints after it, `3</path>` ([`Target::of`]):
//!
//! - a **file** is a path in a mounted file system: an absolute path outside `/dev/`, or under
//!   `/dev/shm/` (a tmpfs anyone with access can open); a deleted or O_TMPFILE file
//!   (`/tmp/#123`, marked `(deleted)`) is still a file;
//! - a **memfd** is `/memfd:NAME` (strace adds `(deleted)`): memory with a name, on no mounted file
//!   system, gone with its last reference;
//! - **devices** (`/dev/null`, a terminal), **pipes** (`pipe:[…]`) and **sockets** (`socket:[…]`)
//!   are neither.
//!
//! The write-family calls ([`WRITE_CALLS`]) put bytes into their destination descriptor (the
//! first argument; the third for `splice` and `copy_file_range`). What the tests then require:
//! a program read from a pipe may be written to a memfd (its own copy, `/proc/self/exe`) but never
//! to a file (`tests/fd.rs`); a sealed program's plaintext may be written to neither, and every
//! write into either must show its bytes (`tests/sealed.rs`). [`Write::to_file`] and
//! [`Write::to_file_or_memfd`] are those two rules.
//!
//! Std only, and self-contained (no `super::`), so that a bench can include it with `#[path]`.

use std::collections::HashMap;

/// One system call of a log: `[pid] name(arguments) = result`, an `<unfinished ...>` call joined
/// with its `<... name resumed>` rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The pid prefix (`-f`), if any.
    pub pid: Option<u32>,
    pub name: String,
    /// The top-level arguments as strace prints them (strings still quoted and escaped).
    pub args: Vec<String>,
    /// What follows ` = `: `0`, `-1 ENOENT (No such file or directory)`, `?`; None when the log
    /// ends before the call returns.
    pub result: Option<String>,
    /// The call as one line, for messages.
    pub text: String,
}

impl Call {
    /// The return value, when it is a number (decimal or 0x hex).
    pub fn value(&self) -> Option<i64> {
        let word = self.result.as_deref()?.split_whitespace().next()?;
        match word.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
            None => word.parse().ok(),
        }
    }

    /// The errno name of a failed call (`ENOENT`), None if it did not fail.
    pub fn errno(&self) -> Option<&str> {
        self.result.as_deref()?.strip_prefix("-1 ")?.split_whitespace().next()
    }

    /// The target of argument `index` if it is a descriptor annotated by `-y`.
    pub fn target(&self, index: usize) -> Option<Target> {
        Target::of(self.args.get(index)?)
    }
}

/// Parses a log of `strace [-f] [-y] [-xx] [-o FILE]`: every system call, in order of completion
/// of its first part. Signal (`---`), exit (`+++`) and strace's own (`strace: `) lines are skipped.
pub fn parse(log: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut pending: HashMap<Option<u32>, String> = HashMap::new();
    for line in log.lines() {
        let (pid, rest) = split_pid(line);
        if rest.starts_with("---") || rest.starts_with("+++") || rest.starts_with("strace: ") || rest.is_empty() {
            continue;
        }
        let text = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else { continue };
            let head = pending.remove(&pid).unwrap_or_else(|| format!("{name}("));
            // The rest starts with ", next argument" or ")": join without doubling the comma.
            if head.ends_with('(') {
                format!("{head}{}", tail.trim_start_matches(", "))
            } else {
                format!("{head}{tail}")
            }
        } else {
            rest.to_string()
        };
        if let Some(call) = parse_call(pid, &text) {
            calls.push(call);
        }
    }
    // Calls the log ends inside (the process died in them, e.g. exit_group without "= ?").
    let mut unfinished: Vec<_> = pending.into_iter().filter_map(|(pid, head)| parse_call(pid, &head)).collect();
    unfinished.sort_by_key(|call| call.pid);
    calls.extend(unfinished);
    calls
}

/// `"1234  rest"` (strace -f -o) or `"[pid  1234] rest"` (strace -f to a terminal or pipe).
fn split_pid(line: &str) -> (Option<u32>, &str) {
    if let Some((pid, rest)) = line.strip_prefix("[pid ").and_then(|tail| tail.split_once(']')) {
        return (pid.trim().parse().ok(), rest.trim_start());
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && line[digits..].starts_with(' ') {
        return (line[..digits].parse().ok(), line[digits..].trim_start());
    }
    (None, line)
}

/// `name(arg, arg, ...) = result` (the result may be missing).
fn parse_call(pid: Option<u32>, text: &str) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let (args, close) = split_arguments(&text[open + 1..]);
    let after = close.map_or("", |close| &text[open + 1 + close + 1..]);
    let result = after.trim_start().strip_prefix("= ").map(|r| r.trim().to_string());
    Some(Call { pid, name: name.to_string(), args, result, text: text.to_string() })
}

/// Splits `a, b, c) = r` into its top-level arguments (commas inside quotes, brackets, braces,
/// parentheses and `<...>` annotations do not split); returns them and the offset of the `)`
/// that closes the list, if present.
fn split_arguments(text: &str) -> (Vec<String>, Option<usize>) {
    let mut args = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (at, c) in text.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' | '[' | '{' | '<' => depth += 1,
            ')' if depth == 0 => {
                let last = text[start..at].trim();
                if !last.is_empty() || !args.is_empty() {
                    args.push(last.to_string());
                }
                return (args, Some(at));
            }
            ')' | ']' | '}' | '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                args.push(text[start..at].trim().to_string());
                start = at + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        args.push(last.to_string());
    }
    (args, None)
}

/// The bytes of strace's escaped text: `\xNN` (as `-x`/`-xx` print), octal `\NNN`, and the C
/// escapes `\n \t \r \v \f \\ \"`; other characters as they are.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' || at + 1 == bytes.len() {
            out.push(bytes[at]);
            at += 1;
            continue;
        }
        let next = bytes[at + 1];
        let hex = |s: &[u8]| std::str::from_utf8(s).ok().and_then(|s| u8::from_str_radix(s, 16).ok());
        match next {
            b'x' if at + 4 <= bytes.len() && hex(&bytes[at + 2..at + 4]).is_some() => {
                out.push(hex(&bytes[at + 2..at + 4]).unwrap());
                at += 4;
            }
            b'0'..=b'7' => {
                let digits = bytes[at + 1..].iter().take(3).take_while(|c| (b'0'..=b'7').contains(c)).count();
                let value = bytes[at + 1..at + 1 + digits].iter().fold(0u32, |v, &d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                at += 1 + digits;
            }
            _ => {
                out.push(match next {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'v' => 0x0b,
                    b'f' => 0x0c,
                    other => other,
                });
                at += 2;
            }
        }
    }
    out
}

/// The bytes of every quoted string in an argument, in order (`"ab"` gives `ab`; a writev's
/// `[{iov_base="a", iov_len=1}, {iov_base="b", iov_len=1}]` gives `ab`).
pub fn quoted_bytes(arg: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('"') {
        let body = &rest[open + 1..];
        let mut escaped = false;
        let close = body.char_indices().find_map(|(at, c)| {
            let end = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            end.then_some(at)
        });
        let Some(close) = close else { break };
        out.extend(unescape(&body[..close]));
        rest = &body[close + 1..];
    }
    out
}

/// A descriptor's target, as `strace -y` shows it; see the module documentation for the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    File(String),
    Memfd(String),
    Device(String),
    Pipe,
    Socket,
    Other(String),
}

impl Target {
    /// The target of an argument such as `3</tmp/x>`, `3</memfd:m>(deleted)` (strace puts a deleted
    /// file's mark after the brackets) or (`-xx`) `3<\x2f\x74...>`; None if the argument is not an
    /// annotated descriptor.
    pub fn of(arg: &str) -> Option<Target> {
        let (fd, annotation) = arg.split_once('<')?;
        let (annotation, _deleted) = annotation.rsplit_once('>')?;
        if fd.is_empty() || !fd.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let path = String::from_utf8_lossy(&unescape(annotation)).into_owned();
        Some(Target::classify(path))
    }

    fn classify(path: String) -> Target {
        if path.starts_with("/memfd:") {
            Target::Memfd(path)
        } else if path.starts_with("/dev/shm/") || (path.starts_with('/') && !path.starts_with("/dev/")) {
            Target::File(path)
        } else if path.starts_with("/dev/") {
            Target::Device(path)
        } else if path.starts_with("pipe:") {
            Target::Pipe
        } else if path.starts_with("socket:") || path.contains("-STREAM:") || path.starts_with("UNIX") {
            Target::Socket
        } else {
            Target::Other(path)
        }
    }

    /// The path of a file or memfd.
    pub fn path(&self) -> Option<&str> {
        match self {
            Target::File(path) | Target::Memfd(path) => Some(path),
            _ => None,
        }
    }
}

/// The write-family calls: name, index of the destination descriptor, index of the argument that
/// shows the bytes (None: the call moves bytes strace does not show).
pub const WRITE_CALLS: [(&str, usize, Option<usize>); 10] = [
    ("write", 0, Some(1)),
    ("pwrite64", 0, Some(1)),
    ("writev", 0, Some(1)),
    ("pwritev", 0, Some(1)),
    ("pwritev2", 0, Some(1)),
    ("vmsplice", 0, Some(1)),
    ("sendfile", 0, None),
    ("splice", 2, None),
    ("tee", 1, None),
    ("copy_file_range", 2, None),
];

/// The `-e trace=` list that shows every write-family call.
pub const TRACE_WRITES: &str = "write,pwrite64,writev,pwritev,pwritev2,vmsplice,sendfile,splice,tee,copy_file_range";

/// One write-family call: where it wrote, and what when strace shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub call: Call,
    /// The destination; None if its descriptor is not annotated (strace without -y).
    pub target: Option<Target>,
    /// The bytes shown (up to strace's `-s` limit); None for calls that do not show them.
    pub data: Option<Vec<u8>>,
}

impl Write {
    /// The bytes it wrote (its return value), 0 if it failed.
    pub fn written(&self) -> u64 {
        self.call.value().map_or(0, |v| v.max(0) as u64)
    }

    /// Rule of `tests/fd.rs`: a write into a file (a memfd is not one).
    pub fn to_file(&self) -> bool {
        matches!(self.target, Some(Target::File(_)))
    }

    /// Rule of `tests/sealed.rs`: a write into a file or a memfd (both hold bytes others could
    /// read later).
    pub fn to_file_or_memfd(&self) -> bool {
        matches!(self.target, Some(Target::File(_) | Target::Memfd(_)))
    }

    pub fn to_memfd(&self) -> bool {
        matches!(self.target, Some(Target::Memfd(_)))
    }
}

/// The write-family calls among `calls`.
pub fn writes(calls: &[Call]) -> Vec<Write> {
    calls
        .iter()
        .filter_map(|call| {
            let &(_, destination, data) = WRITE_CALLS.iter().find(|(name, _, _)| *name == call.name)?;
            Some(Write {
                call: call.clone(),
                target: call.target(destination),
                data: data.map(|index| call.args.get(index).map_or_else(Vec::new, |arg| quoted_bytes(arg))),
            })
        })
        .collect()
}

/// The system calls a preloader makes from its entry to its jump to the program's interpreter, in
/// a log of `strace -f PRELOADER [OPTIONS] PROGRAM` where PROGRAM is dynamic with glibc's ld.so:
///
/// - start: the line after the first successful `execve` (the kernel's exec of the preloader);
/// - end: ld.so's first system call, excluded. glibc's ld.so starts with `brk(NULL)` (rtld's
///   `_dl_sysdep_start` asks for the current break before anything else), and the preloader never
///   calls brk (it is no_std, without an allocator), so the first `brk(NULL)` after the execve,
///   in the same process, is the boundary.
///
/// Fails, saying which, when a marker is missing.
pub fn preloader_calls(calls: &[Call]) -> Result<&[Call], String> {
    let exec = calls
        .iter()
        .position(|call| call.name == "execve" && call.value() == Some(0))
        .ok_or("no successful execve in the log")?;
    let pid = calls[exec].pid;
    let end = calls[exec + 1..]
        .iter()
        .position(|call| call.pid == pid && call.name == "brk" && call.args == ["NULL"])
        .ok_or("no brk(NULL) (ld.so's first system call) after the execve")?;
    Ok(&calls[exec + 1..exec + 1 + end])
}

/// `name count` for each system call of `calls`, most frequent first, and `name ERRNO` for each
/// failed one: a summary to print.
pub fn summary(calls: &[Call]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for call in calls {
        match counts.iter_mut().find(|(name, _)| *name == call.name) {
            Some((_, count)) => *count += 1,
            None => counts.push((&call.name, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let counted: Vec<String> = counts.iter().map(|(name, count)| format!("{name} {count}")).collect();
    let failed: Vec<String> =
        calls.iter().filter_map(|call| Some(format!("{} {}", call.name, call.errno()?))).collect();
    format!("{}; failed: {}", counted.join(", "), if failed.is_empty() { "none".into() } else { failed.join(", ") })
}
