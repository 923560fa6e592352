//! A fixed-size message buffer with just the formatting the preloader needs (text, decimal,
//! hex): core::fmt would cost several KiB of the binary.

/// A line being assembled; output past the capacity is dropped, never overflows.
pub struct Msg<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Msg<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Msg<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn bytes(&mut self, text: &[u8]) -> &mut Self {
        let room = N - self.len;
        let take = text.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_text_decimal_and_hex() {
        let mut msg = Msg::<64>::new();
        msg.text("a=").dec(0).text(" b=").dec(18446744073709551615).text(" c=").hex(0x7f00_1000).text(" d=").hex(0);
        assert_eq!(msg.as_bytes(), b"a=0 b=18446744073709551615 c=0x7f001000 d=0x0");
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
