//! Messages: errors on stderr as `preload: PATH: reason`, and the load plan for --verbose and
//! --dry-run.

use goblin::elf64::program_header::{PF_R, PF_W, PF_X};
use preload::elf::Image;
use preload::elf::origin::RunPath;
use preload::plan::credentials::{self, Ids};
use preload::plan::load::{Placement, Segment};
use preload::plan::reserve::Range;
use preload::plan::userns as plan_userns;
use preload::report::msg::Msg;
use preload::report::refusal::{Refusal, Status, errno_text};
use rustix::io::Errno;

use crate::exec::Resolved;
use crate::input::source::Held;
use crate::load::{Inspected, Mapped};
use crate::mm::{ExeOutcome, MmOutcome};
use crate::plan::{Plan, RandomSource};
use crate::reserve::ReserveError;
use crate::stack::Built;
use crate::sys::io::{STDERR, print};
use crate::userns::{self, Outcome};

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
        print(self.fd, self.line.as_bytes());
        self.line.clear();
        self.line.text("preload: ");
    }
}

/// Why a run stopped before the program started.
pub enum Error<'a> {
    /// `path`: the refusal's reason.
    At { path: &'a [u8], refusal: Refusal },
    /// `path`: interpreter `interpreter`: the reason; the program cannot be executed.
    Interpreter { path: &'a [u8], interpreter: &'a [u8], refusal: Refusal },
    /// A range given to keep free could not be reserved.
    Reservation { range: Range, why: ReserveError },
    /// `--userns`: the user namespace could not be entered.
    Userns { path: &'a [u8], failure: userns::Failure },
}

impl<'a> Error<'a> {
    pub fn at(path: &'a [u8], refusal: Refusal) -> Self {
        Self::At { path, refusal }
    }

    pub fn cannot_execute(path: &'a [u8], reason: &'static str) -> Self {
        Self::at(path, Refusal::cannot_execute(reason))
    }

    /// A failure of the preloader itself while working on `path`.
    pub fn failure(path: &'a [u8], errno: Errno) -> Self {
        Self::at(path, Refusal::from(errno))
    }

    /// Print the message; returns the exit status.
    pub fn report(&self) -> i32 {
        let mut out = Printer::new(STDERR);
        let status = match self {
            Self::At { path, refusal } => {
                out.line().escaped(path).text(": ").text(refusal.reason);
                refusal.status
            }
            Self::Interpreter { path, interpreter, refusal } => {
                out.line().escaped(path).text(": interpreter ").escaped(interpreter).text(": ").text(refusal.reason);
                Status::CannotExecute
            }
            Self::Reservation { range, why } => {
                out.line().text("reserve: ").hex(range.start).text("-").hex(range.end);
                match why {
                    ReserveError::Overlap { other, name, name_len } => out
                        .line()
                        .text(" overlaps ")
                        .escaped(&name[..usize::from(*name_len)])
                        .text(" ")
                        .hex(other.start)
                        .text("-")
                        .hex(other.end),
                    ReserveError::Failed(errno) => out.line().text(": ").text(errno_text(errno.raw_os_error())),
                };
                Status::Failure
            }
            Self::Userns { path, failure } => {
                let errno = failure.errno.raw_os_error();
                out.line().bytes(path).text(": --userns: ").text(failure.step.what()).text(": ");
                out.line().text(errno_text(errno)).text(")").text(plan_userns::hint(failure.step, errno));
                Status::Failure
            }
        };
        out.end();
        status as i32
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
    Status::Failure as i32
}

/// Started by binfmt_misc in a way it cannot be used: the message; returns the exit status.
#[cold]
pub fn binfmt_refusal(reason: &str) -> i32 {
    let mut out = Printer::new(STDERR);
    out.line().text(reason);
    out.end();
    Status::Failure as i32
}

fn flags_text(flags: u32) -> &'static str {
    const NAMES: [&str; 8] = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
    NAMES[(flags & (PF_R | PF_W | PF_X)) as usize]
}

/// The segments of `image`, at `bias` when known.
fn image(out: &mut Printer, role: &str, path: &[u8], image: &Image, bias: Option<u64>) {
    out.line().text(role).text(" ").escaped(path).text(if image.relocatable { ": ET_DYN" } else { ": ET_EXEC" });
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

/// The fourth step, report (--verbose, --dry-run): the ranges to keep free, how the program is
/// held, and where its segments and its interpreter's go.
pub fn plan(out: &mut Printer, resolved: &Resolved, inspected: &Inspected, plan: &Plan) {
    for range in plan.reserved.as_slice() {
        out.line().text("reserve ").hex(range.start).text("-").hex(range.end);
        out.end();
    }
    let (name, file) = (resolved.exe_path, resolved.file);
    match &file.held {
        Held::File => {}
        Held::Stream(memfd) => {
            out.line().escaped(name).text(": a stream of ").dec(file.size).text(if file.copy_segments() {
                " bytes, held in a sealed memfd; segments copied into anonymous memory"
            } else {
                " bytes, held in a sealed memfd; segments mapped from it"
            });
            out.end();
            if let Some(why) = memfd.exec_refused {
                out.line()
                    .text("executable memfds are refused (")
                    .text(errno_text(why.raw_os_error()))
                    .text(", vm.memfd_noexec): /proc/self/exe cannot show the program");
                out.end();
            }
        }
        #[cfg(feature = "sealed")]
        Held::Sealed(_) => {
            out.line().escaped(name).text(": sealed, authenticated; ").dec(file.size);
            out.line()
                .text(" bytes inflated into anonymous memory, segments copied; its container stands for it as exe");
            out.end();
        }
    }
    if let RandomSource::Fallback(why) = plan.random_source {
        out.line().text("getrandom refused (").text(errno_text(why.raw_os_error()));
        out.line().text("): AT_RANDOM is the kernel's own for preload's exec");
        out.line().text(if plan.randomize { ", the offsets from /dev/urandom" } else { "" });
        out.end();
    }
    image(out, "program", name, &inspected.image, plan.placement.planned_bias());
    if let Some(interp) = &inspected.interpreter {
        let bias = Placement::of_interpreter(interp.image.relocatable).planned_bias();
        image(out, "interpreter", interp.path, &interp.image, bias);
    }
}

/// After the seventh step (--verbose): where everything went, and what became of exe.
pub fn outcome(out: &mut Printer, mapped: &Mapped, stack: &Built, set: &MmOutcome) {
    if stack.exec_refused {
        out.line().text("could not make the stack executable");
        out.end();
    }
    out.line()
        .text("interpreter base ")
        .hex(mapped.base)
        .text(", entry ")
        .hex(mapped.entry)
        .text(", brk ")
        .hex(mapped.start_brk)
        .text(", stack ")
        .hex(stack.layout.sp);
    out.end();
    if let Some(why) = set.comm_refused {
        out.line()
            .text("comm could not be set (")
            .text(errno_text(why.raw_os_error()))
            .text("): it stays the preloader's");
        out.end();
    }
    match set.exe {
        ExeOutcome::Set => out.line().text("/proc/self/exe set to the program"),
        ExeOutcome::SetAfterSteppingAside => {
            out.line().text("/proc/self/exe set to the program once the preloader has stepped aside")
        }
        ExeOutcome::Unchanged(errno) => out
            .line()
            .text("/proc/self/exe could not be set (")
            .text(errno_text(errno.raw_os_error()))
            .text("): it stays the preloader"),
        ExeOutcome::Withheld => out.line().text(
            "/proc/self/exe left on the preloader: the program's file is set-ID or has file capabilities, which it \
             runs without, and only the preloader's capability would let exe name it",
        ),
        ExeOutcome::Failed(errno) => out
            .line()
            .text("PR_SET_MM_MAP refused (")
            .text(errno_text(errno.raw_os_error()))
            .text("): /proc/self/cmdline shows preload's own command line and environ the environment it was given")
            .text(" (its strings are kept in place); exe, auxv, the stat fields and brk stay the preloader's"),
    };
    out.end();
}

/// For --verbose: what of the program's file was not applied, and whether the capabilities of
/// the preloader's file were dropped.
pub fn credentials(out: &mut Printer, path: &[u8], not_honoured: Option<&str>, dropped: bool) {
    if let Some(what) = not_honoured {
        out.line().escaped(path).text(": ").text(what).text(credentials::NOT_HONOURED);
        out.end();
    }
    if dropped {
        out.line().text("capabilities of the preloader's file dropped: the program runs with the caller's");
        out.end();
    }
}

/// For --verbose: what `--userns` did.
pub fn userns(out: &mut Printer, outcome: Outcome, ids: Ids) {
    match outcome {
        Outcome::NotWanted => return,
        Outcome::NotNeeded => out.line().text("--userns: not needed, the caller can set /proc/self/exe where it is"),
        Outcome::Entered => out
            .line()
            .text("--userns: in a new user namespace, uid ")
            .dec(ids.euid)
            .text(" and gid ")
            .dec(ids.egid)
            .text(" mapped to themselves; the program runs there without capabilities"),
    };
    out.end();
}

/// For --verbose, when exe is not the program: a program whose libraries ld.so finds through
/// `$ORIGIN` (taken from /proc/self/exe) may not find them.
pub fn origin(out: &mut Printer, path: &[u8], run_path: RunPath) {
    out.line().bytes(path).text(": its ").text(run_path.name());
    out.line().text(" uses $ORIGIN, which ld.so takes from /proc/self/exe, the preloader here:");
    out.line().text(" libraries found through it may be missing (--userns or the capability sets exe)");
    out.end();
}
