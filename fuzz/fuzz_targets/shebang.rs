//! `#!` lines over arbitrary file heads: `script::parse`, against a model of fs/binfmt_script.c's
//! `load_script` that works as the C does, on a NUL-padded copy of the 256-byte buffer that it
//! writes its terminators into.
//!
//! Checks: a head is a script exactly when it starts with `#!`; parse refuses exactly what
//! load_script refuses, and otherwise gives the same interpreter and argument; both are
//! shorter than the buffer (so the NUL-terminated copies main.rs makes always fit), hold no NUL
//! or newline, come from inside the buffer, and the interpreter holds no blank.
#![no_main]

use libfuzzer_sys::fuzz_target;
use preload::exec::script::{self, BINPRM_BUF_SIZE};

fn is_blank(byte: &u8) -> bool {
    *byte == b' ' || *byte == b'\t'
}

type Line = (Vec<u8>, Option<Vec<u8>>);

/// load_script, step by step; `Err` where it returns -ENOEXEC.
fn load_script(head: &[u8]) -> Option<Result<Line, ()>> {
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let len = head.len().min(BINPRM_BUF_SIZE);
    buf[..len].copy_from_slice(&head[..len]);
    if buf[0] != b'#' || buf[1] != b'!' {
        return None;
    }
    let next_non_spacetab =
        |buf: &[u8; BINPRM_BUF_SIZE], first: usize, last: usize| (first..=last).find(|&i| !is_blank(&buf[i]));
    let next_terminator = |buf: &[u8; BINPRM_BUF_SIZE], first: usize, last: usize| {
        (first..=last).find(|&i| is_blank(&buf[i]) || buf[i] == 0)
    };
    let c_string = |buf: &[u8; BINPRM_BUF_SIZE], at: usize| {
        buf[at..].iter().take_while(|&&b| b != 0).copied().collect::<Vec<u8>>()
    };
    Some((|| {
        let buf_end = BINPRM_BUF_SIZE - 1;
        // strnchr: stops at the first NUL.
        let mut i_end = match buf.iter().take_while(|&&b| b != 0).position(|&b| b == b'\n') {
            Some(newline) => newline,
            None => {
                let first = next_non_spacetab(&buf, 2, buf_end).ok_or(())?;
                next_terminator(&buf, first, buf_end).ok_or(())?;
                buf_end
            }
        };
        while is_blank(&buf[i_end - 1]) {
            i_end -= 1;
        }
        buf[i_end] = 0;
        let i_name = next_non_spacetab(&buf, 2, i_end).filter(|&name| name != i_end).ok_or(())?;
        let i_sep = next_terminator(&buf, i_name, i_end);
        let i_arg = i_sep.filter(|&sep| buf[sep] != 0).and_then(|sep| next_non_spacetab(&buf, sep, i_end));
        if let Some(sep) = i_sep {
            buf[sep] = 0;
        }
        Ok((c_string(&buf, i_name), i_arg.map(|arg| c_string(&buf, arg))))
    })())
}

fuzz_target!(|head: &[u8]| {
    let parsed = script::parse(head);
    assert_eq!(parsed.is_some(), head.starts_with(b"#!"));
    let owned = parsed.map(|result| {
        result.map(|line| (line.interpreter.to_vec(), line.argument.map(<[u8]>::to_vec))).map_err(|_| ())
    });
    assert_eq!(owned, load_script(head), "differs from load_script");
    let Some(Ok(shebang)) = parsed else { return };
    let within_buffer = |part: &[u8]| {
        let start = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
        assert!(
            part.is_empty() || start + part.len() <= head.len().min(BINPRM_BUF_SIZE),
            "taken from beyond the kernel's buffer"
        );
    };
    for part in [Some(shebang.interpreter), shebang.argument].into_iter().flatten() {
        within_buffer(part);
        assert!(part.len() < BINPRM_BUF_SIZE);
        assert!(!part.iter().any(|&b| b == 0 || b == b'\n'), "{part:?}");
    }
    assert!(!shebang.interpreter.iter().any(is_blank), "{:?}", shebang.interpreter);
});
