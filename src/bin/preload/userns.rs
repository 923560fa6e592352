//! `--userns` (or `PRELOAD_USERNS=1`): a caller that cannot set /proc/self/exe gets a new user
//! namespace of its own, in which it can, with only its own uid and gid mapped, to themselves.
//! Entered after everything is opened and mapped, just before the mm fields are set, so that
//! the namespace's capabilities (over the caller's own files) serve nothing else; the program
//! then gets what a plain exec there gives a uid that is not root: no capabilities
//! (`preload::plan::userns`).

use preload::plan::credentials::{Caps, Ids};
use preload::plan::userns::{self, Step};
use rustix::io::Errno;
use rustix::thread::CapabilitiesSecureBits;

use crate::mm::ExeOutcome;
use crate::sys::ns;

/// What `--userns` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not asked for.
    NotWanted,
    /// The caller can set exe where it is (root, or the capability).
    NotNeeded,
    /// In a new user namespace, with the caller's ids mapped to themselves.
    Entered,
}

/// A step of entering the namespace failed.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub step: Step,
    pub errno: Errno,
}

/// Enter a new user namespace if `wanted` and needed.
pub fn enter(wanted: bool, ids: Ids) -> Result<Outcome, Failure> {
    if !wanted {
        return Ok(Outcome::NotWanted);
    }
    let fail = |step| move |errno| Failure { step, errno };
    let permitted = rustix::thread::capabilities(None).map_err(fail(Step::Unshare))?.permitted.bits();
    if userns::can_set_exe(permitted) {
        return Ok(Outcome::NotNeeded);
    }
    ns::unshare_user_namespace().map_err(fail(Step::Unshare))?;
    ns::write_proc_file(c"/proc/self/uid_map", userns::id_map(ids.euid).as_bytes()).map_err(fail(Step::UidMap))?;
    ns::write_proc_file(c"/proc/self/setgroups", b"deny").map_err(fail(Step::Setgroups))?;
    ns::write_proc_file(c"/proc/self/gid_map", userns::id_map(ids.egid).as_bytes()).map_err(fail(Step::GidMap))?;
    Ok(Outcome::Entered)
}

/// In the namespace, exe must be set (as `mm::probe` tells before the preloader steps aside):
/// a refusal for want of the capability (an LSM denying capabilities in new user namespaces)
/// fails `--userns` as the other steps do.
pub fn check_exe(outcome: Outcome, exe: &ExeOutcome) -> Result<(), Failure> {
    let errno = match exe {
        ExeOutcome::Unchanged(errno) | ExeOutcome::Failed(errno) => Some(*errno),
        // Withheld by preload itself (a set-ID or capable program), not refused by the kernel.
        ExeOutcome::Set | ExeOutcome::SetAfterSteppingAside | ExeOutcome::Withheld => None,
    };
    match errno {
        Some(errno) if outcome == Outcome::Entered && userns::exe_refused_in_namespace(Some(errno.raw_os_error())) => {
            Err(Failure { step: Step::Exe, errno })
        }
        _ => Ok(()),
    }
}

/// The capabilities a plain exec in the namespace would give the program (none, for a uid that
/// is not 0), for the stub to install after PR_SET_MM_MAP. Only the capability sets change:
/// dumpability stays what the preloader's exec made it (not dumpable after an unreadable
/// executable, as binfmt_misc's `O` can start it), as a plain exec of the program would make it.
pub fn program_caps(outcome: Outcome, ids: Ids) -> Result<Option<Caps>, Errno> {
    if outcome != Outcome::Entered {
        return Ok(None);
    }
    let no_root = rustix::thread::capabilities_secure_bits()?.contains(CapabilitiesSecureBits::NO_ROOT);
    Ok(userns::program_caps(ids.euid, no_root))
}
