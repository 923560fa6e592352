//! Messages: errors on stderr as `preload: PATH: reason`, and the load plan for --verbose and
//! --dry-run.

use goblin::elf64::program_header::{PF_R, PF_W, PF_X};
use preload::elf::Image;
use preload::plan::credentials::{self, Ids};
use preload::plan::load::Segment;
use preload::plan::reserve::Range;
use preload::report::msg::Msg;
use preload::report::refusal::Refusal;

use crate::reserve::ReserveError;

use crate::sys::rt::{STDERR, write_all};

/// One line at a time, each starting `preload: `.
pub struct Printer {
    fd: i32,
    line: Msg<512>,
}

impl Printer {
    pub fn new(fd: i32) -> Self {
        let mut printer = Self { fd, line: Msg::new() };
        printer.line.text("preload: ");
        printer
    }

    pub fn line(&mut self) -> &mut Msg<512> {
        &mut self.line
    }

    pub fn end(&mut self) {
        self.line.text("\n");
        write_all(self.fd, self.line.as_bytes());
        self.line.clear();
        self.line.text("preload: ");
    }
}

/// Why a run stopped before the program started.
pub struct Error<'a> {
    pub path: &'a [u8],
    /// What, within `path`, failed: ("interpreter ", its path).
    pub context: Option<(&'static str, &'a [u8])>,
    pub refusal: Refusal,
    /// For a range that could not be reserved: the range and why.
    pub reservation: Option<(Range, ReserveError)>,
}

impl<'a> Error<'a> {
    pub fn at(path: &'a [u8], refusal: Refusal) -> Self {
        Self { path, context: None, refusal, reservation: None }
    }

    pub fn reservation(range: Range, why: ReserveError) -> Self {
        Self { reservation: Some((range, why)), ..Self::at(b"reserve", Refusal::failure("")) }
    }

    pub fn cannot_execute(path: &'a [u8], reason: &'static str) -> Self {
        Self::at(path, Refusal::cannot_execute(reason))
    }

    pub fn interpreter(path: &'a [u8], interpreter: &'a [u8], refusal: Refusal) -> Self {
        Self {
            context: Some(("interpreter ", interpreter)),
            ..Self::at(path, Refusal { status: preload::report::refusal::Status::CannotExecute, ..refusal })
        }
    }

    /// Print the message; returns the exit status.
    pub fn report(&self) -> i32 {
        let mut out = Printer::new(STDERR);
        out.line().bytes(self.path).text(": ");
        if let Some((what, path)) = self.context {
            out.line().text(what).bytes(path).text(": ");
        }
        match &self.reservation {
            None => out.line().text(self.refusal.reason),
            Some((range, why)) => {
                out.line().hex(range.start).text("-").hex(range.end);
                match why {
                    ReserveError::Overlap { other, name, name_len } => out
                        .line()
                        .text(" overlaps ")
                        .bytes(&name[..*name_len])
                        .text(" ")
                        .hex(other.start)
                        .text("-")
                        .hex(other.end),
                    ReserveError::Failed(errno) => {
                        out.line().text(": ").text(preload::report::refusal::errno_text(errno.raw_os_error()))
                    }
                }
            }
        };
        out.end();
        self.refusal.status as i32
    }
}

/// A set-ID preloader refuses to run: the message; returns the exit status.
#[cold]
pub fn setid_refusal(ids: Ids) -> i32 {
    let mut out = Printer::new(STDERR);
    out.line()
        .text("refusing to run set-user-ID or set-group-ID (uid ")
        .dec(ids.uid)
        .text(", euid ")
        .dec(ids.euid)
        .text(", gid ")
        .dec(ids.gid)
        .text(", egid ")
        .dec(ids.egid);
    out.line().text("): ").text(credentials::SETID_REFUSAL);
    out.end();
    preload::report::refusal::Status::Failure as i32
}

/// For --verbose: what of the program's file was not applied, and whether the capabilities of
/// the preloader's file were dropped.
pub fn credentials(out: &mut Printer, path: &[u8], not_honoured: Option<&str>, dropped: bool) {
    if let Some(what) = not_honoured {
        out.line().bytes(path).text(": ").text(what).text(credentials::NOT_HONOURED);
        out.end();
    }
    if dropped {
        out.line().text("capabilities of the preloader's file dropped: the program runs with the caller's");
        out.end();
    }
}

fn flags_text(flags: u32) -> &'static str {
    const NAMES: [&str; 8] = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
    NAMES[(flags & (PF_R | PF_W | PF_X)) as usize]
}

/// The segments of `image`, at `bias` when known.
pub fn image(out: &mut Printer, role: &str, path: &[u8], image: &Image, bias: Option<u64>) {
    out.line().text(role).text(" ").bytes(path).text(if image.relocatable { ": ET_DYN" } else { ": ET_EXEC" });
    match bias {
        Some(bias) => out.line().text(", load bias ").hex(bias).text(", entry ").hex(bias.wrapping_add(image.entry)),
        None => out.line().text(", placed by mmap, entry +").hex(image.entry),
    };
    out.end();
    let bias = bias.unwrap_or(0);
    for ph in image.loads() {
        let seg = Segment::of(ph);
        let end = seg.start + seg.file_len;
        out.line()
            .text("  map ")
            .hex(bias.wrapping_add(seg.start))
            .text("-")
            .hex(bias.wrapping_add(end))
            .text(" ")
            .text(flags_text(seg.flags))
            .text(" file offset ")
            .hex(seg.offset);
        if let Some((start, end)) = seg.anon {
            out.line().text(", bss ").hex(bias.wrapping_add(start)).text("-").hex(bias.wrapping_add(end));
        }
        out.end();
    }
}
