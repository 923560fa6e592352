//! Programs that arrive as a stream of bytes (a pipe, a socket, a terminal, or a decrypting
//! reader): the interface, and the pure part of taking one in.
//!
//! The bytes are passed on as they arrive (the loader stores them in a sealed memfd), and the
//! first ones are judged at once: a stream that cannot start an x86_64 ELF executable is
//! refused after its first few bytes, not after all of them.

use goblin::elf64::header::{ELFMAG, SIZEOF_EHDR};

use crate::elf;
use crate::report::refusal::Refusal;

/// The program's bytes, from offset 0 onwards, each exactly once.
pub trait ByteStream {
    /// Fill the start of `buf` with the next bytes and say how many; `Ok(0)` only at the end
    /// of the program (or when `buf` is empty).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Refusal>;
}

/// Why a `#!` script is refused from a descriptor: its interpreter would need a path to it.
pub const SCRIPT_WITHOUT_PATH: &str = "a #! script cannot run from a descriptor (its interpreter needs a path)";

/// Judge the first bytes of a program (up to an ELF header's worth): an error as soon as they
/// cannot start an x86_64 or i386 executable; the complete header gets the kernel's header
/// checks (the compat loader's for an i386 machine, from its 52-byte header).
pub fn check_start(bytes: &[u8]) -> Result<(), &'static str> {
    if bytes.starts_with(b"#!") {
        return Err(SCRIPT_WITHOUT_PATH);
    }
    // A sealed container is judged whole once it has arrived (it is authenticated first).
    #[cfg(feature = "sealed")]
    if bytes.len() > 1
        && crate::input::sealed::MAGIC.starts_with(&bytes[..bytes.len().min(crate::input::sealed::MAGIC.len())])
    {
        return Ok(());
    }
    let magic = bytes.len().min(ELFMAG.len());
    if bytes[..magic] != ELFMAG[..magic] && !b"#!".starts_with(bytes) {
        return Err("not an ELF file");
    }
    if elf::ia32::is_ia32(bytes) {
        if bytes.len() >= elf::ia32::SIZEOF_EHDR {
            elf::ia32::phdr_table(&elf::ia32::header(bytes)?)?;
        }
    } else if bytes.len() >= SIZEOF_EHDR {
        elf::phdr_table(&elf::header(bytes)?)?;
    }
    Ok(())
}

/// The most bytes a stream may bring, and which limit that is (for the refusal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// Why the stream is refused when it brings more.
    pub reason: &'static str,
}

impl Limit {
    /// The lower of `--max-size` (or its default) and RLIMIT_FSIZE, which the memfd the
    /// stream goes into is subject to (a write past it would raise SIGXFSZ).
    pub fn new(max_size: Option<u64>, file_size_limit: Option<u64>) -> Self {
        let max = match max_size {
            Some(bytes) => Self { bytes, reason: "the stream is longer than --max-size" },
            None => Self {
                bytes: crate::cli::DEFAULT_MAX_SIZE,
                reason: "the stream is longer than 1 GiB, the default --max-size",
            },
        };
        match file_size_limit {
            Some(bytes) if bytes < max.bytes => {
                Self { bytes, reason: "the stream is longer than RLIMIT_FSIZE (ulimit -f) allows a file" }
            }
            _ => max,
        }
    }
}

/// Pass every byte of `stream` to `sink`, through `window` (which bounds what is in flight),
/// checking the start as it arrives ([`check_start`]), and refusing a stream longer than
/// `limit` before any byte past it reaches `sink`. Returns the number of bytes.
pub fn drain(
    stream: &mut impl ByteStream,
    window: &mut [u8],
    limit: Limit,
    mut sink: impl FnMut(&[u8]) -> Result<(), Refusal>,
) -> Result<u64, Refusal> {
    let mut header = [0u8; SIZEOF_EHDR];
    let mut total = 0u64;
    loop {
        let len = stream.read(window)?;
        if len == 0 {
            break;
        }
        let chunk = &window[..len];
        if let Some(start) = usize::try_from(total).ok().filter(|&start| start < SIZEOF_EHDR) {
            let take = len.min(SIZEOF_EHDR - start);
            header[start..start + take].copy_from_slice(&chunk[..take]);
            check_start(&header[..start + take]).map_err(Refusal::cannot_execute)?;
        }
        if total + len as u64 > limit.bytes {
            return Err(Refusal::cannot_execute(limit.reason));
        }
        sink(chunk)?;
        total += len as u64;
    }
    match total {
        0 => Err(Refusal::cannot_execute("the stream ended before any byte arrived")),
        _ if total < SIZEOF_EHDR as u64 => {
            Err(Refusal::cannot_execute("truncated: the stream ended inside the ELF header"))
        }
        _ => Ok(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::header_bytes;
    use goblin::elf::header::{EM_X86_64, ET_DYN};

    /// Hands out `data` in chunks of the given sizes (cycling), as a pipe or socket might.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: &'a [usize],
        calls: usize,
    }

    impl ByteStream for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Refusal> {
            let size = self.sizes[self.calls % self.sizes.len()].min(buf.len()).min(self.data.len());
            self.calls += 1;
            buf[..size].copy_from_slice(&self.data[..size]);
            self.data = &self.data[size..];
            Ok(size)
        }
    }

    fn program(len: usize) -> Vec<u8> {
        let mut bytes = header_bytes(ET_DYN, EM_X86_64, 1).to_vec();
        bytes.extend((0..len.saturating_sub(bytes.len())).map(|i| i as u8));
        bytes.truncate(len);
        bytes
    }

    fn drain_all(data: &[u8], sizes: &[usize], window: usize) -> (Result<u64, Refusal>, Vec<u8>, usize) {
        let mut stream = Chunked { data, sizes, calls: 0 };
        let mut out = Vec::new();
        let mut window = vec![0u8; window];
        let result = drain(&mut stream, &mut window, Limit::new(None, None), |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        });
        (result, out, stream.calls)
    }

    #[test]
    fn passes_every_byte_once_in_order_whatever_the_chunks() {
        let data = program(100_000);
        for (sizes, window) in
            [(&[1usize][..], 7), (&[3, 64, 1000][..], 4096), (&[usize::MAX][..], 65536), (&[63, 1, 2][..], 64)]
        {
            let (result, out, _) = drain_all(&data, sizes, window);
            assert_eq!(result, Ok(100_000), "{sizes:?}");
            assert!(out == data, "bytes differ with chunks {sizes:?}");
        }
    }

    #[test]
    fn refuses_a_bad_start_before_reading_the_rest() {
        let mut text = vec![b'x'; 1 << 20];
        text[..5].copy_from_slice(b"hello");
        let (result, out, calls) = drain_all(&text, &[16], 4096);
        assert_eq!(result, Err(Refusal::cannot_execute("not an ELF file")));
        assert!(out.is_empty() && calls == 1, "nothing passed on, one read only");

        let mut arm = program(4096);
        arm[18] = 40;
        let (result, out, calls) = drain_all(&arm, &[32], 4096);
        assert_eq!(result.unwrap_err().reason, "wrong machine: not an x86_64 program");
        assert_eq!((out.len(), calls), (32, 2), "refused as soon as the header is complete");

        let (result, _, _) = drain_all(b"#!/bin/sh\necho hi\n", &[1], 16);
        assert_eq!(result.unwrap_err().reason, SCRIPT_WITHOUT_PATH);
    }

    #[test]
    fn a_stream_that_ends_early_is_refused() {
        assert_eq!(drain_all(b"", &[1], 16).0.unwrap_err().reason, "the stream ended before any byte arrived");
        let (result, _, _) = drain_all(&program(63), &[10], 16);
        assert_eq!(result.unwrap_err(), Refusal::cannot_execute("truncated: the stream ended inside the ELF header"));
        assert_eq!(drain_all(&program(64), &[10], 16).0, Ok(64));
    }

    #[test]
    fn errors_of_the_stream_and_the_sink_stop_the_drain() {
        struct Failing;
        impl ByteStream for Failing {
            fn read(&mut self, _: &mut [u8]) -> Result<usize, Refusal> {
                Err(Refusal::cannot_execute("Input/output error"))
            }
        }
        let limit = Limit::new(None, None);
        assert_eq!(drain(&mut Failing, &mut [0; 8], limit, |_| Ok(())).unwrap_err().reason, "Input/output error");
        let data = program(1000);
        let mut stream = Chunked { data: &data, sizes: &[100], calls: 0 };
        let full = Refusal::failure("No space left on device");
        assert_eq!(drain(&mut stream, &mut [0; 100], limit, |_| Err(full)), Err(full));
    }

    #[test]
    fn the_limit_is_the_lower_of_max_size_and_rlimit_fsize() {
        let default = Limit::new(None, None);
        assert_eq!(default.bytes, 1 << 30);
        assert!(default.reason.contains("default --max-size"));
        assert_eq!(Limit::new(Some(4096), Some(1 << 40)), Limit { bytes: 4096, ..Limit::new(Some(1), None) });
        let fsize = Limit::new(Some(1 << 20), Some(10 << 10));
        assert_eq!(fsize.bytes, 10 << 10);
        assert!(fsize.reason.contains("RLIMIT_FSIZE"), "{}", fsize.reason);
        assert_eq!(Limit::new(None, Some(2 << 30)).bytes, 1 << 30);
    }

    #[test]
    fn a_stream_longer_than_the_limit_is_refused_before_the_excess_is_passed_on() {
        let data = program(10_000);
        for (sizes, window) in [(&[1usize][..], 7), (&[3, 64, 1000][..], 4096), (&[usize::MAX][..], 65536)] {
            let limit = Limit::new(Some(9_999), None);
            let mut stream = Chunked { data: &data, sizes, calls: 0 };
            let mut passed = 0u64;
            let result = drain(&mut stream, &mut vec![0; window], limit, |chunk| {
                passed += chunk.len() as u64;
                Ok(())
            });
            assert_eq!(result, Err(Refusal::cannot_execute("the stream is longer than --max-size")), "{sizes:?}");
            assert!(passed <= 9_999, "{passed} bytes passed on");
            let mut stream = Chunked { data: &data, sizes, calls: 0 };
            let exact = drain(&mut stream, &mut vec![0; window], Limit::new(Some(10_000), None), |_| Ok(()));
            assert_eq!(exact, Ok(10_000), "a stream of exactly the limit");
        }
    }

    #[test]
    fn check_start_judges_prefixes() {
        assert_eq!(check_start(b""), Ok(()));
        assert_eq!(check_start(b"\x7fE"), Ok(()));
        assert_eq!(check_start(b"#"), Ok(()));
        assert_eq!(check_start(b"\x7fX"), Err("not an ELF file"));
        assert_eq!(check_start(b"MZ"), Err("not an ELF file"));
        assert_eq!(check_start(&program(64)), Ok(()));
        assert_eq!(check_start(&program(40)), Ok(()));
        let mut i386 = [0u8; 52];
        i386[..4].copy_from_slice(b"\x7fELF");
        i386[16] = 2; // ET_EXEC
        i386[18] = 3; // EM_386
        i386[42] = 32; // e_phentsize
        i386[44] = 1; // e_phnum
        assert_eq!(check_start(&i386), Ok(()), "an i386 program streams too");
        assert_eq!(check_start(&i386[..30]), Ok(()));
        i386[42] = 56;
        assert_eq!(check_start(&i386[..51]), Ok(()), "judged from the whole 52-byte header");
        assert_eq!(check_start(&i386), Err("bad program header entry size"));
        assert_eq!(check_start(&[&i386[..], &[0; 12]].concat()), Err("bad program header entry size"));
        #[cfg(feature = "sealed")]
        {
            assert_eq!(check_start(b"\x7fPRL"), Ok(()));
            assert_eq!(check_start(&[&crate::input::sealed::MAGIC[..], &[0xff; 60]].concat()), Ok(()));
            assert_eq!(check_start(b"\x7fPRX"), Err("not an ELF file"));
        }
    }
}
