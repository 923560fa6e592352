//! The seventh step, set the mm fields: comm, an executable stack if the program asks for one,
//! then the mm fields, the saved auxv and /proc/self/exe with one PR_SET_MM_MAP; the
//! capabilities that served it are dropped after it.

use preload::cstr;
use preload::plan::credentials::{Ids, ProgramCredentials};
use preload::report::refusal::Refusal;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd};
use rustix::io::Errno;
use rustix::process::PrctlMmMap;

use crate::credentials;
use crate::exec::Resolved;
use crate::load::{Inspected, Mapped};
use crate::report::Error;
use crate::stack::Built;
use crate::sys::image::replace_own_file_mappings;
use crate::sys::proc;

/// What the seventh step did, for --verbose.
pub struct MmOutcome {
    pub exe: ExeOutcome,
    /// The capabilities of the preloader's file were dropped.
    pub dropped: bool,
    /// PR_SET_NAME was refused (a seccomp filter on prctl): comm stays the preloader's.
    pub comm_refused: Option<Errno>,
}

/// Point the process at the program.
pub fn point_at_program<'b>(
    resolved: &Resolved<'b>,
    inspected: &Inspected,
    mapped: &Mapped,
    stack: &Built,
    credentials: &ProgramCredentials,
    ids: Ids,
) -> Result<MmOutcome, Error<'b>> {
    let path = resolved.path;
    let comm = match resolved.execfn().iter().rposition(|&b| b == b'/') {
        Some(slash) => cstr(&path.to_bytes_with_nul()[slash + 1..]),
        None => path,
    };
    let comm_refused = rustix::thread::set_name(comm).err();
    let (bias, extent, layout) = (mapped.bias, &inspected.extent, &stack.layout);
    let mut map = PrctlMmMap {
        start_code: bias + extent.start_code,
        end_code: bias + extent.end_code,
        start_data: bias + extent.start_data,
        end_data: bias + extent.end_data,
        start_brk: mapped.start_brk,
        brk: mapped.start_brk,
        start_stack: layout.sp,
        arg_start: layout.arg_start,
        arg_end: layout.arg_end,
        env_start: layout.env_start,
        env_end: layout.env_end,
        auxv: stack.auxv(),
        auxv_size: layout.auxv_len as u32,
        exe_fd: -1,
    };
    let file = resolved.file;
    credentials::raise_for_mm(credentials);
    let exe = match credentials::withholds_exe(credentials, file.fd.as_fd(), ids) {
        false => set(&mut map, file.fd.as_fd()),
        true => withheld(&mut map),
    };
    // The capabilities of the preloader's file served PR_SET_MM_MAP: the program must not keep them.
    let dropped = credentials::apply(credentials).map_err(|_| {
        Error::at(resolved.exe_path, Refusal::failure("cannot drop the capabilities of the preloader's file"))
    })?;
    Ok(MmOutcome { exe, dropped, comm_refused })
}

/// What became of /proc/self/exe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExeOutcome {
    /// Set on the first try: this kernel lets exe change while the old file is mapped.
    Set,
    /// Set after replacing the preloader's own file mappings with anonymous copies (EBUSY).
    SetAfterUnmapping,
    /// Not changed; the rest of the fields were set. Carries the reason.
    Unchanged(Errno),
    /// PR_SET_MM_MAP itself failed: nothing was set.
    Failed(Errno),
    /// Not changed on purpose (`credentials::withholds_exe`): the program's file is set-ID or
    /// has file capabilities, and only the preloader's capability would let exe name it.
    Withheld,
}

/// Apply `map`, trying to set exe to `exe` as described in [`ExeOutcome`]. Whenever the first
/// try fails, the preloader's own file mappings are replaced by anonymous copies: that is what
/// EBUSY asks for, and otherwise (EPERM) it keeps the preloader's file out of the program's
/// /proc/self/maps all the same.
pub fn set(map: &mut PrctlMmMap, exe: BorrowedFd<'_>) -> ExeOutcome {
    map.exe_fd = exe.as_raw_fd();
    let first = match apply(map) {
        Ok(()) => return ExeOutcome::Set,
        Err(errno) => errno,
    };
    match replace_own_file_mappings() {
        Ok(()) if first == Errno::BUSY => match apply(map) {
            Ok(()) => ExeOutcome::SetAfterUnmapping,
            Err(errno) => without_exe(map, errno),
        },
        Ok(()) => without_exe(map, first),
        Err(errno) => without_exe(map, errno),
    }
}

/// Apply `map` without exe, the preloader's file mappings replaced all the same.
fn withheld(map: &mut PrctlMmMap) -> ExeOutcome {
    let _ = replace_own_file_mappings();
    match apply(map) {
        Ok(()) => ExeOutcome::Withheld,
        Err(errno) => ExeOutcome::Failed(errno),
    }
}

fn without_exe(map: &mut PrctlMmMap, why: Errno) -> ExeOutcome {
    map.exe_fd = -1;
    match apply(map) {
        Ok(()) => ExeOutcome::Unchanged(why),
        Err(errno) => ExeOutcome::Failed(errno),
    }
}

fn apply(map: &PrctlMmMap) -> Result<(), Errno> {
    proc::set_mm_map(map)
}
