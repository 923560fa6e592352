//! `--userns`: a caller without CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) in its user namespace
//! cannot set /proc/self/exe; in a new user namespace of its own it can. The decisions: whether
//! one is wanted and needed, the one-line id maps that give the caller its own ids there, the
//! capabilities the program keeps (what a plain exec by a non-root uid in that namespace gives:
//! none), and the wording of a refusal.

use crate::plan::credentials::Caps;
use crate::report::msg::Msg;

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// The environment variable that asks for `--userns`: exactly `PRELOAD_USERNS=1`.
pub const ENV_VAR: &[u8] = b"PRELOAD_USERNS";

/// `--userns`, or `PRELOAD_USERNS=1`.
pub fn wanted(option: bool, env: Option<&[u8]>) -> bool {
    option || env == Some(b"1")
}

/// Whether `--userns` failed although the namespace was entered: setting exe there was refused
/// for want of the capability (EPERM: an LSM denies capabilities in new namespaces). Other
/// errors (a non-executable memfd, say) would refuse exe with or without a namespace.
pub fn exe_refused_in_namespace(errno: Option<i32>) -> bool {
    errno == Some(EPERM)
}

/// Whether a process with `permitted` capabilities can set exe without a namespace of its
/// own (it raises its effective set from the permitted one if it must).
pub fn can_set_exe(permitted: u64) -> bool {
    permitted & (1 << CAP_SYS_ADMIN | 1 << CAP_CHECKPOINT_RESTORE) != 0
}

/// The line written to uid_map (or gid_map): `id` in the new namespace is `id` outside, and
/// nothing else is mapped.
pub fn id_map(id: u64) -> Msg<48> {
    let mut line = Msg::new();
    line.dec(id).text(" ").dec(id).text(" 1\n");
    line
}

/// What the program keeps: exec by a uid that is not 0 in its namespace gives empty permitted
/// and effective sets (the ambient set is empty in a new namespace), and the new namespace
/// starts with an empty inheritable set. The bounding set stays full, as after that exec.
pub const PROGRAM_CAPS: Caps = Caps { effective: 0, permitted: 0, inheritable: 0 };

/// The capabilities to install for the program in the new namespace: [`PROGRAM_CAPS`], unless
/// the caller's uid is 0 (a root that has dropped its capabilities: uid 0 is then mapped, and
/// exec by root there gives the full bounding set, which it already holds; SECURE_NOROOT
/// makes root an ordinary uid).
pub fn program_caps(euid: u64, no_root: bool) -> Option<Caps> {
    (euid != 0 || no_root).then_some(PROGRAM_CAPS)
}

/// The steps of entering a namespace, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Unshare,
    UidMap,
    Setgroups,
    GidMap,
    /// Setting /proc/self/exe in the namespace, refused for want of the capability.
    Exe,
}

impl Step {
    pub fn what(self) -> &'static str {
        match self {
            Self::Unshare => "cannot create a user namespace (unshare",
            Self::UidMap => "cannot map the caller's uid in the new user namespace (/proc/self/uid_map",
            Self::Setgroups => "cannot deny setgroups in the new user namespace (/proc/self/setgroups",
            Self::GidMap => "cannot map the caller's gid in the new user namespace (/proc/self/gid_map",
            Self::Exe => "cannot set /proc/self/exe in the new user namespace (PR_SET_MM_MAP",
        }
    }
}

const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const EUSERS: i32 = 87;

/// Why it failed, as far as the errno tells, after `Step::what`, the errno text and `)`.
pub fn hint(step: Step, errno: i32) -> &'static str {
    match (step, errno) {
        (Step::Unshare, ENOSPC) => {
            ": unprivileged user namespaces are disabled here (user.max_user_namespaces is 0) or their limit is reached"
        }
        (Step::Unshare, EPERM) => {
            ": unprivileged user namespaces are disabled here (kernel.unprivileged_userns_clone=0, a seccomp filter, or a chroot)"
        }
        (Step::Unshare, EUSERS) => ": user namespaces nest 32 deep at most",
        (Step::Unshare, EINVAL) => ": the process is multithreaded or shares its file system information",
        (Step::UidMap, EPERM) => {
            ": capabilities in new user namespaces are denied here (AppArmor's \
             kernel.apparmor_restrict_unprivileged_userns, or another LSM), or uid 0 was to be mapped \
             without CAP_SETFCAP"
        }
        (_, EPERM) => {
            ": capabilities in new user namespaces are denied here (AppArmor's \
             kernel.apparmor_restrict_unprivileged_userns, or another LSM)"
        }
        (_, EACCES) => ": the process's /proc files are not the caller's (it is not dumpable)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_by_option_or_exactly_one_in_the_environment() {
        assert!(wanted(true, None));
        assert!(wanted(false, Some(b"1")));
        assert!(wanted(true, Some(b"0")));
        for value in [&b"0"[..], b"", b"yes", b"1 ", b"01"] {
            assert!(!wanted(false, Some(value)), "{value:?}");
        }
        assert!(!wanted(false, None));
    }

    #[test]
    fn either_capability_sets_exe() {
        assert!(can_set_exe(1 << CAP_CHECKPOINT_RESTORE));
        assert!(can_set_exe(1 << CAP_SYS_ADMIN | 1 << 13));
        assert!(can_set_exe(!0 >> 23), "root's full set");
        assert!(!can_set_exe(0));
        assert!(!can_set_exe(1 << 13 | 1 << 12 | 1 << 39), "CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF");
    }

    #[test]
    fn only_a_capability_refusal_of_exe_fails_the_namespace() {
        assert!(exe_refused_in_namespace(Some(EPERM)));
        assert!(!exe_refused_in_namespace(Some(EACCES)), "a non-executable file or memfd");
        assert!(!exe_refused_in_namespace(None), "exe set");
    }

    #[test]
    fn maps_one_id_to_itself() {
        assert_eq!(id_map(1000).as_bytes(), b"1000 1000 1\n");
        assert_eq!(id_map(0).as_bytes(), b"0 0 1\n");
        assert_eq!(id_map(4294967294).as_bytes(), b"4294967294 4294967294 1\n");
    }

    #[test]
    fn the_program_keeps_no_capability_unless_root() {
        assert_eq!(PROGRAM_CAPS, Caps::default());
        assert_eq!(program_caps(1000, false), Some(PROGRAM_CAPS));
        assert_eq!(program_caps(0, true), Some(PROGRAM_CAPS), "SECURE_NOROOT");
        assert_eq!(program_caps(0, false), None, "root's exec there gives every capability");
    }

    #[test]
    fn refusals_say_where_namespaces_are_disabled() {
        assert!(hint(Step::Unshare, ENOSPC).contains("user.max_user_namespaces"));
        assert!(hint(Step::Unshare, EPERM).contains("kernel.unprivileged_userns_clone=0"));
        assert!(hint(Step::UidMap, EPERM).contains("AppArmor") && hint(Step::UidMap, EPERM).contains("CAP_SETFCAP"));
        assert!(hint(Step::GidMap, EPERM).contains("AppArmor"));
        assert!(hint(Step::UidMap, EACCES).contains("not dumpable"));
        assert!(hint(Step::Unshare, EUSERS).contains("32"));
        assert_eq!(hint(Step::Setgroups, 5), "");
        assert!(hint(Step::Exe, EPERM).contains("AppArmor"));
        for step in [Step::Unshare, Step::UidMap, Step::Setgroups, Step::GidMap, Step::Exe] {
            assert!(step.what().starts_with("cannot ") && step.what().ends_with(|c: char| c.is_alphanumeric()));
        }
    }
}
