//! Applying `preload::plan::credentials`: the program runs with the credentials a plain exec by the
//! caller would give it, whatever the preloader's own file granted.

use preload::plan::credentials::{self, AfterExec, Caps, Ids, ProgramCredentials, ProgramFile};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;
use rustix::thread::{CapabilitiesSecureBits, CapabilitySet, CapabilitySets};

/// The program's credentials, decided before its stack is built (AT_SECURE goes into it).
pub fn plan(ids: Ids, kernel_secure: bool) -> Result<ProgramCredentials, Errno> {
    if !kernel_secure {
        // The exec gained nothing (see `after_plain_exec`): no need to ask.
        return Ok(ProgramCredentials { caps: None, secure: false });
    }
    inspect(ids)
}

/// The decision after an exec with AT_SECURE, from the capability sets the kernel gave.
#[cold]
fn inspect(ids: Ids) -> Result<ProgramCredentials, Errno> {
    let sets = rustix::thread::capabilities(None)?;
    let permitted = sets.permitted.bits();
    let mut ambient = 0;
    for cap in (0..u64::BITS).map(|bit| 1u64 << bit).filter(|cap| permitted & cap != 0) {
        if rustix::thread::capability_is_in_ambient_set(CapabilitySet::from_bits_retain(cap))? {
            ambient |= cap;
        }
    }
    let no_root = rustix::thread::capabilities_secure_bits()?.contains(CapabilitiesSecureBits::NO_ROOT);
    let caps = Caps { effective: sets.effective.bits(), permitted, inheritable: sets.inheritable.bits() };
    let decided =
        credentials::after_plain_exec(AfterExec { caps, ambient, root: ids.euid == 0 && !no_root, secure: true });
    if let Some(program) = decided.caps {
        // From here the preloader opens, reads and checks files with the effective set the
        // program will have (the caller's), not with what its own file granted; the rest stays
        // permitted for PR_SET_MM_MAP alone (see `raise_for_mm`).
        set_effective(program.effective)?;
    }
    Ok(decided)
}

/// The effective set `effective` (within the permitted set, which stays as it is).
fn set_effective(effective: u64) -> Result<(), Errno> {
    let sets = rustix::thread::capabilities(None)?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets { effective: CapabilitySet::from_bits_retain(effective), ..sets },
    )
}

/// Raise the capabilities of the preloader's file, lowered since `plan`, for PR_SET_MM_MAP
/// (which needs CAP_CHECKPOINT_RESTORE to set exe), and for nothing else: right before the stub,
/// whose capset (`finish`) sets the program's sets right after its PR_SET_MM_MAP, or around
/// --verbose's probe ([`lower`]).
pub fn raise_for_mm(credentials: &ProgramCredentials) {
    if credentials.caps.is_some() {
        // Without them exe is just not set (EPERM), as without the capability.
        let _ = rustix::thread::capabilities(None).and_then(|sets| set_effective(sets.permitted.bits()));
    }
}

/// Lower the effective set to the program's again after [`raise_for_mm`].
pub fn lower(credentials: &ProgramCredentials) {
    if let Some(program) = credentials.caps {
        // As in `inspect`, which succeeded with the same sets.
        let _ = set_effective(program.effective);
    }
}

/// What a kernel exec would have taken from the program's file and the preloader does not
/// apply; for --verbose.
#[cold]
pub fn not_honoured(program: BorrowedFd<'_>, ids: Ids) -> Option<&'static str> {
    let stat = rustix::fs::fstat(program).ok()?;
    let has_caps = rustix::fs::fgetxattr_query(program, c"security.capability").is_ok();
    credentials::not_honoured(ProgramFile { mode: stat.st_mode, owner: stat.st_uid, group: stat.st_gid, has_caps }, ids)
}

/// Whether /proc/self/exe must stay on the preloader: with the capability of the preloader's
/// file (which a caller lacks) it could name a program whose exec would have changed the
/// caller's credentials (set-user-ID, set-group-ID, file capabilities) while the program runs
/// without them, and with whatever the caller injects (LD_PRELOAD, --interp): exe would then
/// vouch for a privileged program that is not running as one. Only the file exe would name is
/// asked: a `#!` script never becomes exe (and the kernel ignores set-ID bits on scripts), and
/// the ELF interpreter is not exe either.
pub fn withholds_exe(credentials: &ProgramCredentials, program: BorrowedFd<'_>, ids: Ids) -> bool {
    credentials.caps.is_some() && not_honoured(program, ids).is_some()
}
