//! `#!` lines over arbitrary file heads: `script::parse`.
//!
//! Checks: a head is a script exactly when it starts with `#!`; the interpreter and its
//! argument come from the first line inside the kernel's BINPRM_BUF_SIZE buffer, in that order,
//! trimmed, without blanks in the name and without NUL or newline in either; each is shorter
//! than the buffer, so the NUL-terminated copies main.rs makes always fit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use preload::script::{self, BINPRM_BUF_SIZE};

fn is_blank(byte: &u8) -> bool {
    *byte == b' ' || *byte == b'\t'
}

fuzz_target!(|head: &[u8]| {
    let parsed = script::parse(head);
    assert_eq!(parsed.is_some(), head.starts_with(b"#!"));
    let Some(Ok(shebang)) = parsed else { return };
    let buffer = &head[..head.len().min(BINPRM_BUF_SIZE)];
    // Without a newline the kernel's terminator overwrites the last byte of a full buffer.
    let buffer = if buffer.len() == BINPRM_BUF_SIZE && !buffer.contains(&b'\n') { &buffer[..BINPRM_BUF_SIZE - 1] } else { buffer };
    let offset_of = |part: &[u8]| {
        let start = part.as_ptr() as usize - head.as_ptr() as usize;
        assert!(start + part.len() <= buffer.len(), "taken from beyond the kernel's buffer");
        start
    };
    let interpreter = shebang.interpreter;
    assert!(!interpreter.is_empty() && interpreter.len() < BINPRM_BUF_SIZE);
    assert!(!interpreter.iter().any(|b| is_blank(b) || *b == 0 || *b == b'\n'), "{interpreter:?}");
    let name_start = offset_of(interpreter);
    // Only blanks between `#!` and the name.
    assert!(buffer[2..name_start].iter().all(is_blank));
    let mut line_end = name_start + interpreter.len();
    if let Some(argument) = shebang.argument {
        assert!(!argument.is_empty() && argument.len() < BINPRM_BUF_SIZE);
        assert!(!is_blank(&argument[0]) && !is_blank(&argument[argument.len() - 1]));
        assert!(!argument.iter().any(|&b| b == 0 || b == b'\n'), "{argument:?}");
        let arg_start = offset_of(argument);
        assert!(arg_start > line_end && buffer[line_end..arg_start].iter().all(is_blank));
        line_end = arg_start + argument.len();
    }
    // What follows on the line is blank up to its end (newline, NUL or the buffer's end).
    let rest = &buffer[line_end..];
    let rest = &rest[..rest.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(rest.len())];
    assert!(rest.iter().all(is_blank), "text after the argument was dropped: {rest:?}");
});
