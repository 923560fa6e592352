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

fn is_blank(byte: &u8) -> bool {
    *byte == b' ' || *byte == b'\t'
}

/// `None` if `head` (the file's first bytes) does not start with `#!`; otherwise the parsed line,
/// or the reason the kernel refuses it (ENOEXEC).
pub fn parse(head: &[u8]) -> Option<Result<Shebang<'_>, &'static str>> {
    let head = &head[..head.len().min(BINPRM_BUF_SIZE)];
    let rest = head.strip_prefix(b"#!")?;
    Some(parse_line(rest, head.len() == BINPRM_BUF_SIZE))
}

fn parse_line(rest: &[u8], buffer_full: bool) -> Result<Shebang<'_>, &'static str> {
    let line = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => &rest[..end],
        None => {
            // Without a newline the interpreter path must visibly end inside the buffer (the
            // kernel's last buffer byte is overwritten by its terminator).
            let line = if buffer_full { &rest[..rest.len() - 1] } else { rest };
            let path_start = line.iter().position(|b| !is_blank(b)).ok_or("empty #! line")?;
            let terminated = line[path_start..].iter().any(|&b| is_blank(&b) || b == 0);
            if buffer_full && !terminated {
                return Err("#! line too long");
            }
            line
        }
    };
    // The kernel works on a C string: a NUL ends the line.
    let line = line.split(|&b| b == 0).next().unwrap_or(line);
    let end = line.iter().rposition(|b| !is_blank(b)).map_or(0, |i| i + 1);
    let line = &line[..end];
    let start = line.iter().position(|b| !is_blank(b)).ok_or("no interpreter on the #! line")?;
    let line = &line[start..];
    let name_end = line.iter().position(is_blank).unwrap_or(line.len());
    let (interpreter, rest) = line.split_at(name_end);
    let arg_start = rest.iter().position(|b| !is_blank(b));
    Ok(Shebang { interpreter, argument: arg_start.map(|s| &rest[s..]) })
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
        assert_eq!(ok(b"#! \t/usr/bin/env  python3 -u \t\nx"), Shebang { interpreter: b"/usr/bin/env", argument: Some(b"python3 -u") });
        assert_eq!(ok(b"#!/bin/sh -e"), Shebang { interpreter: b"/bin/sh", argument: Some(b"-e") });
        assert_eq!(ok(b"#!/bin/sh\r\n"), Shebang { interpreter: b"/bin/sh\r", argument: None }, "CR is part of the name, as in the kernel");
        assert_eq!(ok(b"#!/bin/sh -x\0junk\n"), Shebang { interpreter: b"/bin/sh", argument: Some(b"-x") });
    }

    #[test]
    fn refuses_empty_and_truncated_lines() {
        assert_eq!(parse(b"#!\n"), Some(Err("no interpreter on the #! line")));
        assert_eq!(parse(b"#!   \t\n/bin/sh"), Some(Err("no interpreter on the #! line")));
        assert_eq!(parse(b"#!  "), Some(Err("empty #! line")));
        let mut long = [b'a'; BINPRM_BUF_SIZE];
        long[..3].copy_from_slice(b"#!/");
        assert_eq!(parse(&long), Some(Err("#! line too long")));
        long[100] = b' ';
        assert_eq!(ok(&long).interpreter.len(), 98, "a truncated argument is fine");
    }
}
