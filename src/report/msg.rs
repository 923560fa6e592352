//! A fixed-size message buffer with just the formatting the preloader needs (text, decimal,
//! hex): core::fmt would cost several KiB of the binary.

/// A line being assembled; output past the capacity is dropped, never overflows.
pub type Msg<const N: usize> = Buffer<[u8; N]>;

/// Any [`Msg`], whatever its capacity: the formatting is compiled once, for this type.
pub type Line = Buffer<[u8]>;

/// The storage of a [`Msg`] (`B` is its byte array) or, unsized, a [`Line`].
pub struct Buffer<B: ?Sized> {
    len: usize,
    buf: B,
}

impl<const N: usize> Default for Msg<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Msg<N> {
    pub const fn new() -> Self {
        Self { len: 0, buf: [0; N] }
    }

    // The formatting itself is [`Line`]'s, compiled once; these forward to it so that a chain
    // of calls on a `Msg` passes a thin pointer, shorter at each of the many call sites than
    // the unsized `Line`'s.

    pub fn bytes(&mut self, text: &[u8]) -> &mut Self {
        Line::bytes(self, text);
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        self.bytes(text.as_bytes())
    }

    pub fn escaped(&mut self, text: &[u8]) -> &mut Self {
        Line::escaped(self, text);
        self
    }

    pub fn dec(&mut self, value: u64) -> &mut Self {
        Line::dec(self, value);
        self
    }

    pub fn hex(&mut self, value: u64) -> &mut Self {
        Line::hex(self, value);
        self
    }
}

impl<const N: usize> core::ops::Deref for Msg<N> {
    type Target = Line;

    fn deref(&self) -> &Line {
        self
    }
}

impl<const N: usize> core::ops::DerefMut for Msg<N> {
    fn deref_mut(&mut self) -> &mut Line {
        self
    }
}

impl Line {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn bytes(&mut self, text: &[u8]) -> &mut Self {
        let room = self.buf.len() - self.len;
        let take = text.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
        self
    }

    /// Bytes that come from outside (paths, names, a PT_INTERP or `#!` line, arguments), kept
    /// on one line and harmless to a terminal: printable UTF-8 as it is; a control character
    /// (C0, DEL, C1), a bidirectional-text control, a byte that is not UTF-8 and the backslash
    /// itself as `\xNN` (`\u{NNNN}` for the ones beyond a byte), `\n`, `\t` or `\\`. An escape
    /// is never cut in two.
    pub fn escaped(&mut self, text: &[u8]) -> &mut Self {
        let mut rest = text;
        while let Some(&first) = rest.first() {
            let (fits, len) = match utf8_char(rest) {
                Some((0x5c, _)) => (self.whole(b"\\\\"), 1),
                Some((0x0a, _)) => (self.whole(b"\\n"), 1),
                Some((0x09, _)) => (self.whole(b"\\t"), 1),
                Some((code @ (0..0x20 | 0x7f..0xa0), len)) => (self.hex_escape(code, false), len),
                Some((code @ (0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069), len)) => {
                    (self.hex_escape(code, true), len)
                }
                Some((_, len)) => (self.whole(&rest[..len]), len),
                None => (self.hex_escape(u32::from(first), false), 1),
            };
            if !fits {
                break;
            }
            rest = &rest[len..];
        }
        self
    }

    /// Append `piece` if it fits whole; whether it did.
    fn whole(&mut self, piece: &[u8]) -> bool {
        let fits = piece.len() <= self.buf.len() - self.len;
        if fits {
            self.bytes(piece);
        }
        fits
    }

    /// `\xNN`, or with `wide` `\u{NNNN}`, if it fits whole; whether it did.
    fn hex_escape(&mut self, code: u32, wide: bool) -> bool {
        let mut piece = *b"\\u{0000}";
        let digits = if wide { &mut piece[3..7] } else { &mut piece[2..4] };
        let mut rest = code;
        for digit in digits.iter_mut().rev() {
            *digit = b"0123456789abcdef"[(rest & 15) as usize];
            rest >>= 4;
        }
        if wide { self.whole(&piece) } else { self.whole(&[b'\\', b'x', piece[2], piece[3]]) }
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        self.bytes(text.as_bytes())
    }

    pub fn dec(&mut self, mut value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.bytes(&digits[start..])
    }

    /// `0x` followed by lowercase hex digits without leading zeros.
    pub fn hex(&mut self, value: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut start = digits.len();
        let mut rest = value;
        loop {
            start -= 1;
            digits[start] = b"0123456789abcdef"[(rest & 15) as usize];
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        self.text("0x").bytes(&digits[start..])
    }
}

/// The character `bytes` start with and its length in bytes, if they start with well-formed
/// UTF-8 (the ranges of the Unicode standard's table 3-7: no overlong forms, no surrogates,
/// nothing above U+10FFFF). Where none starts, the byte is escaped on its own: every byte of an
/// ill-formed sequence is then escaped, as `str::Utf8Chunks` would report them.
fn utf8_char(bytes: &[u8]) -> Option<(u32, usize)> {
    let lead = *bytes.first()?;
    let (len, second, initial) = match lead {
        0..0x80 => return Some((u32::from(lead), 1)),
        0xc2..0xe0 => (2, 0x80..=0xbf, lead & 0x1f),
        0xe0 => (3, 0xa0..=0xbf, 0),
        0xed => (3, 0x80..=0x9f, 0x0d),
        0xe1..0xf0 => (3, 0x80..=0xbf, lead & 0x0f),
        0xf0 => (4, 0x90..=0xbf, 0),
        0xf1..0xf4 => (4, 0x80..=0xbf, lead & 0x07),
        0xf4 => (4, 0x80..=0x8f, 4),
        _ => return None,
    };
    let tail = bytes.get(1..len)?;
    if !second.contains(&tail[0]) || tail[1..].iter().any(|&byte| byte & 0xc0 != 0x80) {
        return None;
    }
    let code = tail.iter().fold(u32::from(initial), |code, &byte| code << 6 | u32::from(byte & 0x3f));
    Some((code, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_text_decimal_and_hex() {
        let mut msg = Msg::<64>::new();
        msg.text("a=").dec(0).text(" b=").dec(18446744073709551615).text(" c=").hex(0x7f00_1000).text(" d=").hex(0);
        assert_eq!(msg.as_bytes(), b"a=0 b=18446744073709551615 c=0x7f001000 d=0x0");
    }

    fn escaped(text: &[u8]) -> Vec<u8> {
        let mut msg = Msg::<256>::new();
        msg.escaped(text);
        msg.as_bytes().to_vec()
    }

    #[test]
    fn escaped_keeps_printable_utf8_paths_readable() {
        assert_eq!(escaped(b"/usr/bin/my prog"), b"/usr/bin/my prog");
        assert_eq!(
            escaped("/home/jos\u{e9}/\u{65e5}\u{672c}/\u{1f600}".as_bytes()),
            "/home/jos\u{e9}/\u{65e5}\u{672c}/\u{1f600}".as_bytes()
        );
    }

    #[test]
    fn escaped_keeps_a_message_on_one_line_and_free_of_terminal_controls() {
        assert_eq!(escaped(b"/lib/ld\npreload: forged: line"), b"/lib/ld\\npreload: forged: line");
        assert_eq!(escaped(b"a\rb\tc\x1b[31md\x07e\x7f\x00"), b"a\\x0db\\tc\\x1b[31md\\x07e\\x7f\\x00");
        // Bytes that are not UTF-8 (a raw C1 CSI among them), and C1 controls encoded in UTF-8.
        assert_eq!(escaped(b"\x9b2J\xff\xc3"), b"\\x9b2J\\xff\\xc3");
        assert_eq!(escaped("\u{9b}2J\u{85}".as_bytes()), b"\\x9b2J\\x85");
        // Bidirectional overrides that would reorder what is shown.
        assert_eq!(escaped("a\u{202e}b\u{2066}".as_bytes()), b"a\\u{202e}b\\u{2066}");
        // The backslash itself, so that an escape is never ambiguous.
        assert_eq!(escaped(b"a\\x41"), b"a\\\\x41");
        for line in [&b"\n\r\x0b\x0c\x1b\x85"[..], "\u{2028}\u{2029}".as_bytes()] {
            let out = escaped(line);
            assert!(out.iter().all(|&b| b >= 0x20 && b != 0x7f), "{out:?}");
        }
    }

    /// The escaping as specified, written with std's decoder (`str::Utf8Chunks`) as the oracle.
    fn oracle(text: &[u8]) -> Vec<u8> {
        let mut out = String::new();
        for chunk in text.utf8_chunks() {
            for c in chunk.valid().chars() {
                match u32::from(c) {
                    0x5c => out.push_str("\\\\"),
                    0x0a => out.push_str("\\n"),
                    0x09 => out.push_str("\\t"),
                    code @ (0..0x20 | 0x7f..0xa0) => out.push_str(&format!("\\x{code:02x}")),
                    code @ (0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069) => {
                        out.push_str(&format!("\\u{{{code:04x}}}"))
                    }
                    _ => out.push(c),
                }
            }
            for byte in chunk.invalid() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
        out.into_bytes()
    }

    #[test]
    fn escaped_decodes_utf8_as_std_does() {
        // Every sequence of up to two bytes, every three-byte one that starts a multi-byte
        // character, each followed by a byte that might be taken for part of it; then four-byte
        // leads with pseudo-random tails.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
                inputs.push(vec![a, b, 0x80]);
                if a >= 0xc0 {
                    for c in [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xe2, 0xff] {
                        inputs.push(vec![a, b, c, b'z']);
                    }
                }
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let [a, b, c, d, e, ..] = state.to_le_bytes();
            inputs.push(vec![0xf0 | (a & 7), b, c, d, e]);
            inputs.push(vec![a, b | 0x80, c, d | 0x80, e]);
        }
        for input in inputs {
            assert_eq!(escaped(&input), oracle(&input), "{input:x?}");
        }
    }

    #[test]
    fn escaped_never_cuts_an_escape() {
        let mut msg = Msg::<5>::new();
        msg.text("ab").escaped(b"\n\n");
        assert_eq!(msg.as_bytes(), b"ab\\n");
        let mut msg = Msg::<5>::new();
        msg.text("ab").escaped("\u{e9}\u{202e}".as_bytes());
        assert_eq!(msg.as_bytes(), "ab\u{e9}".as_bytes());
    }

    #[test]
    fn truncates_instead_of_overflowing() {
        let mut msg = Msg::<4>::new();
        msg.text("hello").dec(12345);
        assert_eq!(msg.as_bytes(), b"hell");
        msg.clear();
        msg.hex(0xabc);
        assert_eq!(msg.as_bytes(), b"0xab");
    }
}
