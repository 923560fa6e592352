//! Credentials: what the preloader's own exec gave it that a plain exec of the program would
//! not have, and what the program gets instead (the decisions; `creds.rs` applies them).
//!
//! The kernel computed the preloader's credentials from the preloader's file. For an ordinary
//! preload binary they are exactly what it would compute for the program (whose set-ID bits and
//! file capabilities are not honoured, as with `ld.so PROGRAM`). Two cases differ:
//! - a set-user-ID or set-group-ID preload binary: refused, since it would run any program with
//!   its owner's privileges;
//! - a preload binary with file capabilities (`cap_checkpoint_restore+ep`, so that it may set
//!   /proc/self/exe): once that is done, the program gets what a plain exec by the caller gives.

pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;

/// The caller's ids after the preloader's exec, as the kernel put them in the auxv.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
}

impl Ids {
    pub fn from_auxv(auxv: impl Iterator<Item = (u64, u64)>) -> Self {
        let mut ids = Self::default();
        for (key, value) in auxv {
            match key {
                AT_UID => ids.uid = value,
                AT_EUID => ids.euid = value,
                AT_GID => ids.gid = value,
                AT_EGID => ids.egid = value,
                _ => {}
            }
        }
        ids
    }

    /// Real and effective ids differ: the preload binary is set-user-ID or set-group-ID (exec
    /// sets the saved ids to the effective ones, so those tell nothing more). A caller that had
    /// already split its ids is refused too: the two cannot be told apart.
    pub fn is_setid(&self) -> bool {
        self.uid != self.euid || self.gid != self.egid
    }
}

/// Why a set-ID preloader refuses to run.
pub const SETID_REFUSAL: &str = "a set-ID preloader would run any program with its owner's privileges";

/// Capability sets, one bit per `CAP_*` number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// What the program gets in place of what the preloader's exec left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramCredentials {
    /// Capability sets to install before entering the program (`None`: keep the current ones).
    pub caps: Option<Caps>,
    /// The program's AT_SECURE.
    pub secure: bool,
}

/// The state of the preloader after its own exec, as far as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterExec {
    pub caps: Caps,
    /// The ambient set (a subset of `caps.permitted`).
    pub ambient: u64,
    /// uid 0 of its user namespace without SECURE_NOROOT: exec gives it bounding | inheritable
    /// whatever the file says.
    pub root: bool,
    /// The AT_SECURE the kernel gave the preloader.
    pub secure: bool,
}

/// capabilities(7): a plain exec (no set-ID bits, no file capabilities) by a process that is
/// not root gives P' = E' = A, I' = I, and AT_SECURE only on an LSM's request. Root gets
/// bounding | inheritable whether the file has capabilities or not: nothing to undo.
///
/// The kernel sets AT_SECURE for a non-root exec that gained permitted capabilities beyond the
/// ambient set, so a preloader without AT_SECURE gained nothing. With AT_SECURE but nothing
/// beyond the ambient set, it came from an LSM, which would have asked for it for the program
/// too (as far as it can be known: see README).
pub fn after_plain_exec(state: AfterExec) -> ProgramCredentials {
    let keep = ProgramCredentials { caps: None, secure: state.secure };
    if state.root || !state.secure || state.caps.permitted & !state.ambient == 0 {
        return keep;
    }
    let caps = Caps { effective: state.ambient, permitted: state.ambient, inheritable: state.caps.inheritable };
    ProgramCredentials { caps: Some(caps), secure: false }
}

pub const NOT_HONOURED: &str = " not honoured; running with the caller's credentials";

/// S_ISUID, S_ISGID and S_IXGRP of st_mode.
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;

/// The program's file, as far as a kernel exec would take credentials from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramFile {
    pub mode: u32,
    pub owner: u32,
    pub group: u32,
    /// It has a `security.capability` attribute.
    pub has_caps: bool,
}

/// What a kernel exec would have taken from the program's file and the preloader does not
/// honour (`--verbose` says so, followed by [`NOT_HONOURED`]), or `None` when the kernel would
/// not have changed the caller's credentials either. As `bprm_fill_uid`: set-group-ID needs the group execute bit too; a bit
/// naming the caller's own effective id changes nothing.
pub fn not_honoured(file: ProgramFile, ids: Ids) -> Option<&'static str> {
    let setuid = file.mode & S_ISUID != 0 && u64::from(file.owner) != ids.euid;
    let setgid = file.mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP && u64::from(file.group) != ids.egid;
    match (setuid, setgid) {
        (true, true) => Some("set-user-ID and set-group-ID bits"),
        (true, false) => Some("set-user-ID bit"),
        (false, true) => Some("set-group-ID bit"),
        (false, false) if file.has_caps && ids.euid != 0 => Some("file capabilities"),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT_RESTORE: u64 = 1 << 40;
    const NET_RAW: u64 = 1 << 13;

    fn nobody(uid: u64) -> Ids {
        Ids { uid, euid: uid, gid: uid, egid: uid }
    }

    #[test]
    fn ids_come_from_the_auxv() {
        let ids = Ids::from_auxv([(6, 4096), (AT_UID, 1000), (AT_EUID, 0), (AT_GID, 100), (AT_EGID, 100)].into_iter());
        assert_eq!(ids, Ids { uid: 1000, euid: 0, gid: 100, egid: 100 });
        assert!(ids.is_setid());
        assert!(Ids { egid: 0, ..nobody(5) }.is_setid());
        assert!(!nobody(65534).is_setid());
        assert!(!nobody(0).is_setid());
    }

    #[test]
    fn file_capabilities_of_the_preloader_are_dropped_for_a_non_root_caller() {
        let granted = Caps { effective: CHECKPOINT_RESTORE, permitted: CHECKPOINT_RESTORE, inheritable: NET_RAW };
        let state = AfterExec { caps: granted, ambient: 0, root: false, secure: true };
        let expected = Caps { effective: 0, permitted: 0, inheritable: NET_RAW };
        assert_eq!(after_plain_exec(state), ProgramCredentials { caps: Some(expected), secure: false });
    }

    #[test]
    fn ambient_capabilities_stay_permitted_and_effective() {
        // Reachable only when the kernel kept the ambient set, i.e. without file capabilities,
        // but the rule holds whatever the source of the extra permitted bits.
        let caps = Caps {
            effective: CHECKPOINT_RESTORE | NET_RAW,
            permitted: CHECKPOINT_RESTORE | NET_RAW,
            inheritable: NET_RAW,
        };
        let state = AfterExec { caps, ambient: NET_RAW, root: false, secure: true };
        let expected = Caps { effective: NET_RAW, permitted: NET_RAW, inheritable: NET_RAW };
        assert_eq!(after_plain_exec(state).caps, Some(expected));
    }

    #[test]
    fn nothing_changes_without_a_gain() {
        let plain = AfterExec {
            caps: Caps { effective: NET_RAW, permitted: NET_RAW, inheritable: NET_RAW },
            ambient: NET_RAW,
            root: false,
            secure: false,
        };
        assert_eq!(after_plain_exec(plain), ProgramCredentials { caps: None, secure: false });
        // AT_SECURE from an LSM, nothing beyond the ambient set: kept as it is.
        assert_eq!(
            after_plain_exec(AfterExec { secure: true, ..plain }),
            ProgramCredentials { caps: None, secure: true }
        );
        // Root: the kernel gave it bounding | inheritable, as it would for the program.
        let root = AfterExec {
            caps: Caps { effective: !0 >> 23, permitted: !0 >> 23, inheritable: 0 },
            ambient: 0,
            root: true,
            secure: true,
        };
        assert_eq!(after_plain_exec(root), ProgramCredentials { caps: None, secure: true });
    }

    #[test]
    fn set_id_bits_are_reported_when_the_kernel_would_apply_them() {
        let file = |mode, has_caps| ProgramFile { mode, owner: 0, group: 0, has_caps };
        let caller = nobody(65534);
        assert_eq!(not_honoured(file(0o4755, false), caller), Some("set-user-ID bit"));
        assert_eq!(not_honoured(file(0o2755, false), caller), Some("set-group-ID bit"));
        assert_eq!(not_honoured(file(0o6755, false), caller), Some("set-user-ID and set-group-ID bits"));
        assert_eq!(
            not_honoured(file(0o2745, false), caller),
            None,
            "set-group-ID without group execute is mandatory locking, not set-ID"
        );
        assert_eq!(not_honoured(file(0o0755, false), caller), None);
        assert_eq!(not_honoured(file(0o0755, true), caller), Some("file capabilities"));
        assert_eq!(
            not_honoured(file(0o6755, true), nobody(0)),
            None,
            "root running a set-ID-root program gains nothing"
        );
        assert_eq!(not_honoured(ProgramFile { owner: 65534, group: 65534, ..file(0o6755, false) }, caller), None);
    }
}
