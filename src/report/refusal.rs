//! Why a program cannot be run, and the exit status env(1) gives for it.

/// Exit statuses, as env(1) and the shells use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Usage error or a failure of the preloader itself.
    Failure = 125,
    /// The program was found but cannot be executed.
    CannotExecute = 126,
    /// The program was not found.
    NotFound = 127,
}

/// A reason to refuse, with the status it maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub reason: &'static str,
    /// The errno it stems from, or 0.
    pub errno: i32,
}

impl Refusal {
    pub const fn cannot_execute(reason: &'static str) -> Self {
        Self { status: Status::CannotExecute, reason, errno: 0 }
    }

    pub const fn failure(reason: &'static str) -> Self {
        Self { status: Status::Failure, reason, errno: 0 }
    }

    /// A failure of the preloader itself, worded as `errno`.
    pub fn failure_errno(errno: i32) -> Self {
        Self { status: Status::Failure, reason: errno_text(errno), errno }
    }

    /// The refusal for a failed system call on the program's path, as execve's errno would be
    /// reported by env(1): ENOENT means "not found", everything else (ENOTDIR too) "cannot
    /// execute".
    pub fn from_errno(errno: i32) -> Self {
        let status = if errno == ENOENT { Status::NotFound } else { Status::CannotExecute };
        Self { status, reason: errno_text(errno), errno }
    }

    /// Whether execvp goes on to the next PATH directory after this failure (its errno is kept
    /// only if no candidate was found but not executable).
    pub fn path_search_goes_on(&self) -> bool {
        matches!(self.errno, ENOENT | ENOTDIR)
    }
}

/// A system call of the preloader's own failed.
impl From<rustix::io::Errno> for Refusal {
    fn from(errno: rustix::io::Errno) -> Self {
        Self::failure_errno(errno.raw_os_error())
    }
}

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EIO: i32 = 5;
const E2BIG: i32 = 7;
const ENOEXEC: i32 = 8;
const EBADF: i32 = 9;
const ENOMEM: i32 = 12;
const EACCES: i32 = 13;
const EFAULT: i32 = 14;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const EINVAL: i32 = 22;
const EMFILE: i32 = 24;
const ETXTBSY: i32 = 26;
const ENOSPC: i32 = 28;
const ENAMETOOLONG: i32 = 36;
const ENOSYS: i32 = 38;
const ELOOP: i32 = 40;
const ELIBBAD: i32 = 80;
const EUSERS: i32 = 87;

/// The C library's wording of the errnos a program launch can meet.
const ERRNO_TEXTS: [(i32, &str); 22] = [
    (EPERM, "Operation not permitted"),
    (ENOENT, "No such file or directory"),
    (EIO, "Input/output error"),
    (E2BIG, "Argument list too long"),
    (ENOEXEC, "Exec format error"),
    (EBADF, "Bad file descriptor"),
    (ENOMEM, "Cannot allocate memory"),
    (EACCES, "Permission denied"),
    (EFAULT, "Bad address"),
    (EBUSY, "Device or resource busy"),
    (EEXIST, "File exists"),
    (ENOTDIR, "Not a directory"),
    (EISDIR, "Is a directory"),
    (EINVAL, "Invalid argument"),
    (EMFILE, "Too many open files"),
    (ETXTBSY, "Text file busy"),
    (ENOSPC, "No space left on device"),
    (ENAMETOOLONG, "File name too long"),
    (ENOSYS, "Function not implemented"),
    (ELOOP, "Too many levels of symbolic links"),
    (ELIBBAD, "Accessing a corrupted shared library"),
    (EUSERS, "Too many users"),
];

/// [`ERRNO_TEXTS`] packed at compile time as errno, length, text, one after the other: looked up
/// by a short loop, where a `match` would compile to a jump table and code for each arm.
static ERRNO_PACKED: [u8; packed_len()] = pack();

const fn packed_len() -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < ERRNO_TEXTS.len() {
        len += 2 + ERRNO_TEXTS[i].1.len();
        i += 1;
    }
    len
}

const fn pack() -> [u8; packed_len()] {
    let mut packed = [0; packed_len()];
    let (mut at, mut i) = (0, 0);
    while i < ERRNO_TEXTS.len() {
        let (errno, text) = ERRNO_TEXTS[i];
        assert!(errno > 0 && errno < 256 && text.len() < 256);
        packed[at] = errno as u8;
        packed[at + 1] = text.len() as u8;
        let mut j = 0;
        while j < text.len() {
            packed[at + 2 + j] = text.as_bytes()[j];
            j += 1;
        }
        at += 2 + text.len();
        i += 1;
    }
    packed
}

pub fn errno_text(errno: i32) -> &'static str {
    let mut rest: &'static [u8] = &ERRNO_PACKED;
    while let [key, len, tail @ ..] = rest {
        let (text, next) = tail.split_at(usize::from(*len).min(tail.len()));
        if i32::from(*key) == errno {
            // SAFETY: `text` is one whole &str of ERRNO_TEXTS, copied byte for byte by `pack`.
            return unsafe { core::str::from_utf8_unchecked(text) };
        }
        rest = next;
    }
    "Unknown error"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_errnos_map_to_127_and_the_rest_to_126() {
        assert_eq!(Refusal::from_errno(ENOENT).status as u8, 127);
        assert_eq!(Refusal::from_errno(ENOTDIR).status as u8, 126, "as env(1) reports it");
        assert!(
            Refusal::from_errno(ENOTDIR).path_search_goes_on() && !Refusal::from_errno(EACCES).path_search_goes_on()
        );
        assert_eq!(Refusal::from_errno(EACCES).status as u8, 126);
        assert_eq!(Refusal::from_errno(EACCES).reason, "Permission denied");
        assert_eq!(Refusal::from_errno(9999).reason, "Unknown error");
    }

    #[test]
    fn every_errno_text_is_found_whole() {
        for (errno, text) in ERRNO_TEXTS {
            assert_eq!(errno_text(errno), text);
        }
        for unknown in [0, -1, 3, 255, 256 + EPERM, i32::MAX] {
            assert_eq!(errno_text(unknown), "Unknown error", "{unknown}");
        }
    }
}
