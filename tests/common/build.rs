//! The C test programs (`tests/c/*.c`), compiled once per test process in each [`Variant`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use super::compare::render_status;
use super::scratch::{make_dir, scratch_root, set_mode};
use super::spawn::{output, require_tool};

/// How a C test program is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// glibc, dynamic PIE (`-fPIE -pie`).
    Pie,
    /// glibc, dynamic ET_EXEC (`-no-pie -fno-pie`).
    NoPie,
    /// glibc, static ET_EXEC (`-static`).
    Static,
    /// glibc, static-pie (`-static-pie`): ET_DYN without PT_INTERP.
    StaticPie,
    /// musl, static (`musl-gcc -static`).
    MuslStatic,
    /// musl, dynamic (`musl-gcc`), interpreter /lib/ld-musl-x86_64.so.1.
    MuslDynamic,
    /// glibc, dynamic PIE with an executable stack (`-z execstack`).
    PieExecStack,
    /// glibc, dynamic PIE with 2 MiB segment alignment (`-z max-page-size=0x200000`).
    PieHugeAlign,
    /// glibc, static-pie with 2 MiB segment alignment.
    StaticPieHugeAlign,
}

impl Variant {
    pub const ALL: [Variant; 9] = [
        Variant::Pie,
        Variant::NoPie,
        Variant::Static,
        Variant::StaticPie,
        Variant::MuslStatic,
        Variant::MuslDynamic,
        Variant::PieExecStack,
        Variant::PieHugeAlign,
        Variant::StaticPieHugeAlign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Pie => "pie",
            Variant::NoPie => "nopie",
            Variant::Static => "static",
            Variant::StaticPie => "staticpie",
            Variant::MuslStatic => "musl-static",
            Variant::MuslDynamic => "musl-dynamic",
            Variant::PieExecStack => "pie-execstack",
            Variant::PieHugeAlign => "pie-align2m",
            Variant::StaticPieHugeAlign => "staticpie-align2m",
        }
    }

    fn compiler(self) -> &'static str {
        match self {
            Variant::MuslStatic | Variant::MuslDynamic => "musl-gcc",
            _ => "gcc",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Variant::Pie => &["-fPIE", "-pie"],
            Variant::NoPie => &["-no-pie", "-fno-pie"],
            Variant::Static => &["-static"],
            Variant::StaticPie => &["-static-pie", "-fPIE"],
            Variant::MuslStatic => &["-static"],
            Variant::MuslDynamic => &[],
            Variant::PieExecStack => &["-fPIE", "-pie", "-z", "execstack"],
            Variant::PieHugeAlign => &["-fPIE", "-pie", "-Wl,-z,max-page-size=0x200000"],
            Variant::StaticPieHugeAlign => &["-static-pie", "-fPIE", "-Wl,-z,max-page-size=0x200000"],
        }
    }
}

/// Compiles `tests/c/<src>.c` in the given variant (once per test process) and returns the path
/// of the executable, `<temp dir>/preload-test-scratch/build-<pid>-0/<src>-<variant>`.
pub fn build_c(src: &str, variant: Variant) -> PathBuf {
    type Cache = Mutex<HashMap<(String, Variant), Arc<OnceLock<PathBuf>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    static BUILD_DIR: OnceLock<PathBuf> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((src.to_string(), variant))
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let dir = BUILD_DIR.get_or_init(|| {
            let dir = scratch_root().join(format!("build-{}-0", std::process::id()));
            make_dir(&dir);
            dir
        });
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{src}.c"));
        let out = dir.join(format!("{src}-{}", variant.name()));
        let compiler = require_tool(variant.compiler());
        let result = output(
            Command::new(&compiler)
                .args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
                .args(variant.flags())
                .arg("-o")
                .arg(&out)
                .arg(&source),
        );
        assert!(
            result.status.success(),
            "compiling {} ({}) failed: {}\n{}",
            source.display(),
            variant.name(),
            render_status(result.status),
            String::from_utf8_lossy(&result.stderr)
        );
        set_mode(&out, 0o755);
        out
    })
    .clone()
}
