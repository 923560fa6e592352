//! Where tests put their files: the scratch root under the temp dir, per-test directories, and the
//! copy of the binary under test.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::spawn::SPAWN_LOCK;

/// The binary under test: a copy of the `preload` cargo built (target/release/preload under
/// `cargo test --release`), placed in the scratch root so that tests running as nobody can
/// execute it wherever the checkout lives (CI may clone into a mode-0700 directory).
pub fn preload() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_preload"));
        let copy = scratch_root().join(format!("preload-{}-bin", std::process::id()));
        // Not while another thread forks: its child would hold the write descriptor (ETXTBSY).
        let _no_spawn = SPAWN_LOCK.write().unwrap_or_else(|e| e.into_inner());
        fs::copy(built, &copy).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", built.display(), copy.display()));
        set_mode(&copy, 0o755);
        copy
    })
}

/// `<temp dir>/preload-test-scratch` (world-traversable, as /tmp is), created mode 0755: tests
/// also run programs as nobody, who cannot reach a checkout under a private directory. The
/// first call in a test process removes leftovers of test processes that no longer run, but
/// not the directories of failed tests ([`FAILED_MARK`]), which are there to be looked at.
pub(super) fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join("preload-test-scratch");
        make_dir(&root);
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let failed = entry.path().join(FAILED_MARK).exists();
            if !failed
                && pid.is_some_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
            {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
        root
    })
}

/// The file a failed test's scratch directory gets, which keeps it from the clean-up.
const FAILED_MARK: &str = ".failed-test";

/// Creates `dir` (and its parents) with mode 0755 whatever the umask.
pub(super) fn make_dir(dir: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    set_mode(dir, 0o755);
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {:o} {}: {e}", mode, path.display()));
}

/// A unique per-test directory `<temp dir>/preload-test-scratch/<name>-<pid>-<n>`, mode 0755.
/// It is removed when the test passes and kept (until the next run) when it fails.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = scratch_root().join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        make_dir(&path);
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` in the scratch directory with the given mode.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            make_dir(parent);
        }
        {
            let _no_spawn = SPAWN_LOCK.write().unwrap_or_else(|e| e.into_inner());
            fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        set_mode(&path, mode);
        path
    }

    /// Copies `from` to `name` in the scratch directory with the given mode.
    pub fn copy(&self, from: &Path, name: &str, mode: u32) -> PathBuf {
        let bytes = fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
        self.write(name, bytes, mode)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() {
            let _ = fs::write(self.path.join(FAILED_MARK), "");
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
