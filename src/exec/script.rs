//! `#!` scripts, parsed as fs/binfmt_script.c does.

/// binfmt_script only looks at the first BINPRM_BUF_SIZE bytes.
pub const BINPRM_BUF_SIZE: usize = 256;
/// exec_binprm gives up with ELOOP after this many nested interpreters.
pub const MAX_SCRIPT_DEPTH: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shebang<'a> {
    pub interpreter: &'a [u8],
    /// Everything after the interpreter up to the end of the line, trailing blanks removed:
    /// one argument, spaces included.
    pub argument: Option<&'a [u8]>,
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Byte `index` of the kernel's buffer: the file's first bytes, then NUL padding.
fn at(buf: &[u8], index: usize) -> u8 {
    buf.get(index).copied().unwrap_or(0)
}

fn next_non_blank(buf: &[u8], first: usize, last: usize) -> Option<usize> {
    (first..=last).find(|&i| !is_blank(at(buf, i)))
}

fn next_terminator(buf: &[u8], first: usize, last: usize) -> Option<usize> {
    (first..=last).find(|&i| is_blank(at(buf, i)) || at(buf, i) == 0)
}

/// The C string the kernel sees at `start` once it has put a NUL at `end`.
fn c_string(buf: &[u8], start: usize, end: usize) -> &[u8] {
    let bytes = buf.get(start..end.min(buf.len())).unwrap_or(&[]);
    bytes.split(|&b| b == 0).next().unwrap_or(bytes)
}

/// `None` if `head` (the file's first bytes) does not start with `#!`; otherwise the parsed line,
/// or the reason the kernel refuses it (ENOEXEC).
pub fn parse(head: &[u8]) -> Option<Result<Shebang<'_>, &'static str>> {
    let buf = &head[..head.len().min(BINPRM_BUF_SIZE)];
    buf.starts_with(b"#!").then(|| parse_line(buf))
}

/// load_script's parsing, step by step, on the 256-byte buffer (indices past `buf` are its NUL
/// padding): the line ends at a newline found before any NUL; without one, the interpreter name
/// must be followed by a blank or NUL somewhere in the buffer, whose last byte is then replaced
/// by the terminator.
fn parse_line(buf: &[u8]) -> Result<Shebang<'_>, &'static str> {
    let buf_end = BINPRM_BUF_SIZE - 1;
    let newline = buf.iter().take_while(|&&b| b != 0).position(|&b| b == b'\n');
    let mut i_end = match newline {
        Some(newline) => newline,
        None => {
            let first = next_non_blank(buf, 2, buf_end).ok_or("empty #! line")?;
            next_terminator(buf, first, buf_end).ok_or("#! line too long")?;
            buf_end
        }
    };
    while is_blank(at(buf, i_end - 1)) {
        i_end -= 1;
    }
    let i_name = next_non_blank(buf, 2, i_end).filter(|&name| name != i_end).ok_or("no interpreter on the #! line")?;
    let i_sep = next_terminator(buf, i_name, i_end);
    let i_arg = i_sep.filter(|&sep| at(buf, sep) != 0).and_then(|sep| next_non_blank(buf, sep, i_end));
    Ok(Shebang {
        interpreter: c_string(buf, i_name, i_sep.unwrap_or(i_end)),
        argument: i_arg.map(|arg| c_string(buf, arg, i_end)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(head: &[u8]) -> Shebang<'_> {
        parse(head).unwrap().unwrap()
    }

    #[test]
    fn not_a_script() {
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(b"# !/bin/sh"), None);
        assert_eq!(parse(b""), None);
    }

    #[test]
    fn interpreter_and_one_argument_with_spaces() {
        assert_eq!(ok(b"#!/bin/sh\necho"), Shebang { interpreter: b"/bin/sh", argument: None });
        assert_eq!(
            ok(b"#! \t/usr/bin/env  python3 -u \t\nx"),
            Shebang { interpreter: b"/usr/bin/env", argument: Some(b"python3 -u") }
        );
        assert_eq!(ok(b"#!/bin/sh -e"), Shebang { interpreter: b"/bin/sh", argument: Some(b"-e") });
        assert_eq!(
            ok(b"#!/bin/sh\r\n"),
            Shebang { interpreter: b"/bin/sh\r", argument: None },
            "CR is part of the name, as in the kernel"
        );
        assert_eq!(ok(b"#!/bin/sh -x\0junk\n"), Shebang { interpreter: b"/bin/sh", argument: Some(b"-x") });
    }

    #[test]
    fn refuses_empty_and_truncated_lines() {
        assert_eq!(parse(b"#!\n"), Some(Err("no interpreter on the #! line")));
        assert_eq!(parse(b"#!   \t\n/bin/sh"), Some(Err("no interpreter on the #! line")));
        assert_eq!(
            ok(b"#!  "),
            Shebang { interpreter: b"", argument: None },
            "the NUL padding names an empty interpreter (ENOENT)"
        );
        let mut blanks = [b' '; BINPRM_BUF_SIZE];
        blanks[..2].copy_from_slice(b"#!");
        assert_eq!(parse(&blanks), Some(Err("empty #! line")));
        let mut long = [b'a'; BINPRM_BUF_SIZE];
        long[..3].copy_from_slice(b"#!/");
        assert_eq!(parse(&long), Some(Err("#! line too long")));
        long[100] = b' ';
        assert_eq!(ok(&long).interpreter.len(), 98, "a truncated argument is fine");
    }

    #[test]
    fn edge_cases_as_binfmt_script() {
        let mut last_byte = [b'a'; BINPRM_BUF_SIZE];
        last_byte[..3].copy_from_slice(b"#!/");
        last_byte[BINPRM_BUF_SIZE - 1] = b' ';
        assert_eq!(
            ok(&last_byte),
            Shebang { interpreter: &last_byte[2..255], argument: None },
            "a terminator in the last byte"
        );
        assert_eq!(
            ok(b"#!/bin/echo arg  \0junk\n"),
            Shebang { interpreter: b"/bin/echo", argument: Some(b"arg  ") },
            "blanks before a NUL stay"
        );
        assert_eq!(
            ok(b"#!/bin/echo \0\n"),
            Shebang { interpreter: b"/bin/echo", argument: Some(b"") },
            "a blank then a NUL: an empty argument"
        );
        assert_eq!(ok(b"#!/bin/echo\0 arg\n"), Shebang { interpreter: b"/bin/echo", argument: None });
        assert_eq!(
            ok(b"#!/bin/sh\0\n"),
            Shebang { interpreter: b"/bin/sh", argument: None },
            "the newline search stops at a NUL"
        );
    }
}
