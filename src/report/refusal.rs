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
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const EINVAL: i32 = 22;
const EMFILE: i32 = 24;
const ETXTBSY: i32 = 26;
const ENAMETOOLONG: i32 = 36;
const ENOSYS: i32 = 38;
const ELOOP: i32 = 40;
const ELIBBAD: i32 = 80;

/// The C library's wording of the errnos a program launch can meet.
pub fn errno_text(errno: i32) -> &'static str {
    match errno {
        EPERM => "Operation not permitted",
        ENOENT => "No such file or directory",
        EIO => "Input/output error",
        E2BIG => "Argument list too long",
        ENOEXEC => "Exec format error",
        EBADF => "Bad file descriptor",
        ENOMEM => "Cannot allocate memory",
        EACCES => "Permission denied",
        EFAULT => "Bad address",
        EEXIST => "File exists",
        ENOTDIR => "Not a directory",
        EISDIR => "Is a directory",
        EINVAL => "Invalid argument",
        EMFILE => "Too many open files",
        ETXTBSY => "Text file busy",
        ENAMETOOLONG => "File name too long",
        ENOSYS => "Function not implemented",
        ELOOP => "Too many levels of symbolic links",
        ELIBBAD => "Accessing a corrupted shared library",
        _ => "Unknown error",
    }
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
}
