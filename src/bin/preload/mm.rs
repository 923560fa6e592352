//! The seventh step, set the mm fields: comm and an executable stack now; the two
//! PR_SET_MM_MAP structures (with exe, and without it should exe be refused) and the program's
//! capability sets are written into the hand-off, for the stub to apply once the preloader has
//! stepped aside (`finish`): the kernel refuses a new exe while the old one is mapped (EBUSY).

use preload::cstr;
use preload::plan::credentials::{Caps, Ids, ProgramCredentials};
use preload::plan::load::mm_range;
use rustix::fd::{AsFd, AsRawFd};
use rustix::io::Errno;
use rustix::process::PrctlMmMap;

use crate::credentials;
use crate::exec::Resolved;
use crate::load::{Inspected, Mapped};
use crate::stack::{Built, Keep};
use crate::sys::proc;
use crate::sys::stage2::Handoff;

/// What the seventh step expects of exe and the capabilities, for --verbose.
pub struct MmOutcome {
    pub exe: ExeOutcome,
    /// The capabilities of the preloader's file are dropped (by the stub, after PR_SET_MM_MAP).
    pub dropped: bool,
    /// The capabilities a new user namespace gave are left (by the stub, after PR_SET_MM_MAP).
    pub left: bool,
    /// PR_SET_NAME was refused (a seccomp filter on prctl): comm stays the preloader's.
    pub comm_refused: Option<Errno>,
}

/// What becomes of /proc/self/exe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExeOutcome {
    /// Set while the preloader was still mapped: this kernel lets exe change anyway.
    Set,
    /// Set by the stub, once the preloader's image is unmapped (for an i386 program, by the
    /// preloader once its file-backed pages are anonymous copies).
    SetAfterSteppingAside,
    /// Not changed; the rest of the fields are set. Carries the reason.
    Unchanged(Errno),
    /// PR_SET_MM_MAP itself fails: nothing is set.
    Failed(Errno),
    /// Not changed on purpose (`credentials::withholds_exe`): the program's file is set-ID or
    /// has file capabilities, and only the preloader's capability would let exe name it.
    Withheld,
}

/// What the program is granted: the credentials a plain exec by the caller gives it, the
/// capabilities a new user namespace leaves it in their place (`userns`), and the caller's ids
/// (exe is withheld from a set-ID or capable program).
#[derive(Clone, Copy)]
pub struct Grant<'a> {
    pub credentials: &'a ProgramCredentials,
    pub left: Option<Caps>,
    pub ids: Ids,
}

/// _LINUX_CAPABILITY_VERSION_3: 64-bit sets in two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Set comm and prepare the rest for the stub; what it expects of exe is what the stub's
/// PR_SET_MM_MAP does, unless that is refused altogether (`Keep::KernelStrings`) — `probe`
/// tells the rest for --verbose.
pub fn point_at_program(
    resolved: &Resolved,
    inspected: &Inspected,
    mapped: &Mapped,
    stack: &Built,
    grant: &Grant,
    handoff: &mut Handoff,
) -> MmOutcome {
    let Grant { credentials, left, ids } = *grant;
    let path = resolved.path;
    let comm = match resolved.execfn().iter().rposition(|&b| b == b'/') {
        Some(slash) => cstr(&path.to_bytes_with_nul()[slash + 1..]),
        None => path,
    };
    let comm_refused = rustix::thread::set_name(comm).err();
    let (bias, extent, layout) = (mapped.bias, &inspected.extent, &stack.layout);
    let (start_code, end_code) = mm_range(bias + extent.start_code, bias + extent.end_code);
    let (start_data, end_data) = mm_range(bias + extent.start_data, bias + extent.end_data);
    let map = |exe_fd| PrctlMmMap {
        start_code,
        end_code,
        start_data,
        end_data,
        start_brk: mapped.start_brk,
        brk: mapped.start_brk,
        start_stack: layout.sp,
        arg_start: layout.arg_start,
        arg_end: layout.arg_end,
        env_start: layout.env_start,
        env_end: layout.env_end,
        // Where the stub has copied the image by the time it calls PR_SET_MM_MAP.
        auxv: layout.auxv as *mut u64,
        auxv_size: layout.auxv_len as u32,
        exe_fd,
    };
    let file = resolved.file;
    let withheld = credentials::withholds_exe(credentials, file.fd.as_fd(), ids);
    let exe_fd = if withheld { -1 } else { file.fd.as_raw_fd() };
    let parts = handoff.parts();
    parts.maps[0] = map(exe_fd);
    parts.maps[1] = map(-1);
    if let Some(caps) = left.or(credentials.caps) {
        let halves = |set: u64| [set as u32, (set >> 32) as u32];
        let ([e0, e1], [p0, p1], [i0, i1]) = (halves(caps.effective), halves(caps.permitted), halves(caps.inheritable));
        *parts.caps = [CAPABILITY_VERSION_3, 0, e0, p0, i0, e1, p1, i1];
    }
    let exe = match stack.keep {
        // Asked before the stack was built: the stub's PR_SET_MM_MAP will be refused too.
        Keep::KernelStrings(why) => ExeOutcome::Failed(why),
        Keep::Nothing if withheld => ExeOutcome::Withheld,
        Keep::Nothing => ExeOutcome::SetAfterSteppingAside,
    };
    MmOutcome { exe, dropped: credentials.caps.is_some(), left: left.is_some(), comm_refused }
}

/// For --verbose, and in a new user namespace (`userns::check_exe`): try PR_SET_MM_MAP once
/// here, while the preloader is mapped, to tell what the stub's will do: `stepped_aside` when
/// the stub runs from its own page (the preloader's image then unmapped, so the kernel's EBUSY
/// is no answer). With the capability the stub will have, raised for this try alone.
pub fn probe(
    handoff: &mut Handoff,
    stack: &Built,
    expected: ExeOutcome,
    stepped_aside: bool,
    credentials: &ProgramCredentials,
) -> ExeOutcome {
    if let ExeOutcome::Failed(_) | ExeOutcome::Withheld = expected {
        return expected;
    }
    // The saved auxv from the image where it is now, in the hand-off (the stub's, from its copy
    // on the stack, which holds the preloader's frames until then).
    let maps = handoff.parts().maps;
    let copied = maps[0].auxv;
    maps.iter_mut().for_each(|map| map.auxv = stack.auxv() as *mut u64);
    credentials::raise_for_mm(credentials);
    let outcome = match proc::set_mm_map(&maps[0]) {
        Ok(()) => ExeOutcome::Set,
        Err(Errno::BUSY) if stepped_aside => ExeOutcome::SetAfterSteppingAside,
        Err(why) => match proc::set_mm_map(&maps[1]) {
            Ok(()) => ExeOutcome::Unchanged(why),
            Err(errno) => ExeOutcome::Failed(errno),
        },
    };
    credentials::lower(credentials);
    maps.iter_mut().for_each(|map| map.auxv = copied);
    outcome
}
