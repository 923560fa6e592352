//! Finding PROGRAM as execvp(3) does.

/// glibc's execvp search path when PATH is unset (confstr _CS_PATH).
pub const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";
/// PATH_MAX, including the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// Whether `name` is used as a path as it stands (it contains a slash).
pub fn is_path(name: &[u8]) -> bool {
    name.contains(&b'/')
}

/// The directories to try, in order; an empty entry means the current directory.
pub fn directories(path: Option<&[u8]>) -> impl Iterator<Item = &[u8]> {
    path.unwrap_or(DEFAULT_PATH).split(|&b| b == b':')
}

/// `dir/name` with a terminating NUL in `buf` (just `name` for an empty entry, as glibc builds
/// it); `None` if it would exceed PATH_MAX.
pub fn join<'b>(dir: &[u8], name: &[u8], buf: &'b mut [u8; PATH_MAX]) -> Option<&'b [u8]> {
    let slash = usize::from(!dir.is_empty());
    let len = dir.len() + slash + name.len();
    if len + 1 > PATH_MAX {
        return None;
    }
    buf[..dir.len()].copy_from_slice(dir);
    buf[dir.len()] = b'/';
    buf[dir.len() + slash..len].copy_from_slice(name);
    buf[len] = 0;
    Some(&buf[..=len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_like_execvp() {
        let dirs: Vec<_> = directories(Some(b"/a::/b:")).collect();
        assert_eq!(dirs, [&b"/a"[..], b"", b"/b", b""]);
        let default: Vec<_> = directories(None).collect();
        assert_eq!(default, [&b"/bin"[..], b"/usr/bin"]);
    }

    #[test]
    fn joins_with_nul_and_bounds() {
        let mut buf = [0u8; PATH_MAX];
        assert_eq!(join(b"/usr/bin", b"ls", &mut buf), Some(&b"/usr/bin/ls\0"[..]));
        assert_eq!(join(b"", b"ls", &mut buf), Some(&b"ls\0"[..]));
        let long = [b'a'; PATH_MAX];
        assert_eq!(join(b"/", &long[..PATH_MAX - 2], &mut buf), None);
        assert_eq!(join(b"/", &long[..PATH_MAX - 3], &mut buf).map(<[u8]>::len), Some(PATH_MAX));
        assert!(is_path(b"./x") && !is_path(b"x"));
    }
}
