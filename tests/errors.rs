//! Failures and options of preload itself: exit statuses as env(1) (127 not found, 126 cannot
//! execute, 125 usage error), one `preload: ` line on stderr naming the path, never a signal;
//! and --help, --version, --dry-run, --verbose.

mod common;

use common::elf::{Elf, PAGE, PT_NOTE, Phdr};
use common::{Invocation, Scratch, Variant, build_c, probe, render_status, run_preload};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Asserts that preload failed with `code` and a single `preload: ...` stderr line containing
/// `mention`, without dying of a signal and without output on stdout.
fn assert_error(output: &Output, code: i32, mention: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.signal_free(),
        "{what}: preload itself died: {} (stderr: {stderr:?})",
        render_status(output.status)
    );
    assert_eq!(output.status.code(), Some(code), "{what}: exit status (stderr: {stderr:?})");
    assert!(stderr.starts_with("preload: "), "{what}: stderr must start with `preload: `, got {stderr:?}");
    assert!(
        stderr.ends_with('\n') && stderr.matches('\n').count() == 1,
        "{what}: stderr must be exactly one line, got {stderr:?}"
    );
    assert!(stderr.contains(mention), "{what}: stderr must mention {mention:?}, got {stderr:?}");
    assert!(output.stdout.is_empty(), "{what}: unexpected stdout {:?}", String::from_utf8_lossy(&output.stdout));
}

trait SignalFree {
    fn signal_free(&self) -> bool;
}

impl SignalFree for std::process::ExitStatus {
    fn signal_free(&self) -> bool {
        std::os::unix::process::ExitStatusExt::signal(self).is_none()
    }
}

/// `preload PATH` must fail with `code`, naming PATH.
fn assert_program_error(path: &Path, code: i32) {
    let output = Invocation::new(path).arg("arg").run_preloaded();
    assert_error(&output, code, &path.to_string_lossy(), &format!("preload {}", path.display()));
}

#[test]
fn missing_file_is_127() {
    assert_program_error(Path::new("/nonexistent/program"), 127);
}

#[test]
fn missing_relative_file_is_127() {
    assert_program_error(Path::new("no/such/program"), 127);
}

#[test]
fn not_found_in_path_is_127() {
    let scratch = Scratch::new("not-in-path");
    let output = Invocation::new("no-such-program-anywhere")
        .env_clear()
        .env("PATH", format!("/nonexistent:{}", scratch.path().display()))
        .run_preloaded();
    assert_error(&output, 127, "no-such-program-anywhere", "PATH search for a missing program");
}

#[test]
fn only_non_executable_in_path_is_126() {
    // execvp: a candidate that exists but cannot be executed gives EACCES, not ENOENT.
    let scratch = Scratch::new("path-noexec");
    scratch.copy(Path::new("/bin/true"), "noexec-prog", 0o644);
    let output = Invocation::new("noexec-prog").env_clear().env("PATH", scratch.path()).run_preloaded();
    assert_error(&output, 126, "noexec-prog", "PATH search finding only a non-executable file");
}

#[test]
fn directory_is_126() {
    let scratch = Scratch::new("directory");
    let dir = scratch.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    assert_program_error(&dir, 126);
}

#[test]
fn no_exec_permission_as_root_is_126() {
    // Root may execute a file only if some x bit is set.
    let scratch = Scratch::new("noexec-root");
    assert_program_error(&scratch.copy(Path::new("/bin/true"), "true-0644", 0o644), 126);
}

/// A copy of /bin/true with `mode` (owned by root), run through preload as nobody: 126.
fn assert_nobody_cannot_run(mode: u32, what: &str) {
    let scratch = Scratch::new(&format!("nobody-{mode:o}"));
    let program = scratch.copy(Path::new("/bin/true"), &format!("true-{mode:o}"), mode);
    let output = Invocation::new(&program).unprivileged().run_preloaded();
    assert_error(&output, 126, &program.to_string_lossy(), what);
}

#[test]
fn no_exec_permission_unprivileged_is_126() {
    assert_nobody_cannot_run(0o744, "nobody running a file only root may execute");
}

#[test]
fn execute_only_file_unprivileged_is_126() {
    // The kernel can run a file nobody may not read; the preloader has to read it, so it must
    // refuse cleanly (a documented difference).
    assert_nobody_cannot_run(0o711, "nobody running an execute-only file");
}

#[test]
fn empty_file_is_126() {
    let scratch = Scratch::new("empty");
    assert_program_error(&scratch.write("empty", "", 0o755), 126);
}

#[test]
fn text_without_shebang_is_126() {
    let scratch = Scratch::new("text");
    assert_program_error(&scratch.write("text", "echo this is not a script\n", 0o755), 126);
}

#[test]
fn shebang_with_missing_interpreter_fails_cleanly() {
    // The kernel answers ENOENT (env(1) says 127); 126 ("found but cannot execute") is also
    // accepted. Either way: one line, naming the script, no signal.
    let scratch = Scratch::new("shebang-missing");
    let script = scratch.write("script", "#!/nonexistent/interpreter -x\n", 0o755);
    let output = Invocation::new(&script).run_preloaded();
    let code = output.status.code().filter(|c| [126, 127].contains(c)).unwrap_or(127);
    assert_error(&output, code, &script.to_string_lossy(), "#! with a missing interpreter");
}

/// /bin/true with `patch` applied, written executable to the scratch directory.
fn patched_true(scratch: &Scratch, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read("/bin/true").expect("read /bin/true");
    patch(&mut bytes);
    scratch.write(name, bytes, 0o755)
}

fn put(bytes: &mut [u8], offset: usize, value: &[u8]) {
    bytes[offset..offset + value.len()].copy_from_slice(value);
}

fn read_u64(bytes: &[u8], offset: usize) -> usize {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap()) as usize
}

fn read_u16(bytes: &[u8], offset: usize) -> usize {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap()) as usize
}

/// File offset and size of the PT_INTERP string.
fn interp_range(elf: &[u8]) -> (usize, usize) {
    let (phoff, phentsize, phnum) = (read_u64(elf, 32), read_u16(elf, 54), read_u16(elf, 56));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == 3)
        .map(|ph| (read_u64(elf, ph + 8), read_u64(elf, ph + 32)))
        .expect("/bin/true has a PT_INTERP")
}

#[test]
fn truncated_elf_is_126() {
    let scratch = Scratch::new("truncated");
    assert_program_error(&patched_true(&scratch, "truncated", |b| b.truncate(100)), 126);
}

#[test]
fn wrong_machine_is_126() {
    let scratch = Scratch::new("machine");
    assert_program_error(&patched_true(&scratch, "arm", |b| put(b, 18, &0x28u16.to_le_bytes())), 126);
}

#[test]
fn missing_interpreter_is_126() {
    let scratch = Scratch::new("interp");
    let program = patched_true(&scratch, "no-interp", |b| {
        let (offset, size) = interp_range(b);
        let path = format!("{:x<width$}", "/nonexistent/ld-", width = size - 1);
        put(b, offset, path.as_bytes());
    });
    assert_program_error(&program, 126);
}

/// Headers the kernel rejects with ENOEXEC: preload must refuse them with 126, not crash.
#[test]
fn malformed_elf_headers_are_126() {
    let scratch = Scratch::new("malformed");
    type Patch = fn(&mut Vec<u8>);
    let cases: [(&str, Patch); 10] = [
        ("bad-magic", |b| put(b, 1, b"ELG")),
        ("et-rel", |b| put(b, 16, &1u16.to_le_bytes())),
        ("et-core", |b| put(b, 16, &4u16.to_le_bytes())),
        ("phentsize-32", |b| put(b, 54, &32u16.to_le_bytes())),
        ("phnum-0", |b| put(b, 56, &0u16.to_le_bytes())),
        ("phnum-100", |b| put(b, 56, &100u16.to_le_bytes())),
        ("phoff-past-eof", |b| put(b, 32, &0x7fff_0000u64.to_le_bytes())),
        ("phoff-huge", |b| put(b, 32, &u64::MAX.to_le_bytes())),
        ("header-only", |b| b.truncate(64)),
        ("interp-not-nul-terminated", |b| {
            let (offset, size) = interp_range(b);
            b[offset + size - 1] = b'x';
        }),
    ];
    for (name, patch) in cases {
        assert_program_error(&patched_true(&scratch, name, patch), 126);
    }
}

/// `program` with a PT_LOAD of one bss page at `vaddr` first in its table, in place of its first
/// PT_NOTE (the entries before that move down one).
fn with_bss_first(scratch: &Scratch, program: &Path, vaddr: u64) -> PathBuf {
    let mut elf = Elf::read(program);
    let size = elf.phdr_size();
    let note = (0..elf.phnum()).position(|i| elf.get(elf.ph(i), 4) == u64::from(PT_NOTE)).expect("a PT_NOTE");
    let table = elf.ph(0);
    elf.bytes.copy_within(table..table + note * size, table + size);
    let bss = Phdr::load(6, 0, vaddr, 0, PAGE).bytes(elf.is_elf32());
    elf.bytes[table..table + size].copy_from_slice(&bss);
    let name = format!("{}-bss-first-{vaddr:#x}", program.file_name().unwrap().to_string_lossy());
    scratch.write(&name, elf.bytes, 0o755)
}

/// A static-pie whose first PT_LOAD has no file bytes: the kernel maps no file for it (elf_load:
/// Linux 6.7, and the stable kernels from 6.1.140 and 6.6.92 on, Debian's 6.1 among them), so
/// no mapping chooses the image's place, which is then where the bias page_start(0 - vaddr)
/// puts it: at 0 for a vaddr that starts a page (root may map page 0: the same maps through
/// preload, without randomisation), past the top of the address space otherwise, where the
/// kernel's exec dies after its point of no return (SIGSEGV) and preload refuses with 126.
/// Found by the mutants harness (seed 12).
#[test]
fn a_static_pie_whose_first_segment_has_no_file_bytes_goes_where_the_kernel_puts_it() {
    let scratch = Scratch::new("bss-first");
    let setarch = common::require_tool("setarch");
    for variant in [Variant::StaticPie, Variant::I386StaticPie] {
        for vaddr in [0, 0x14, 0x10000] {
            let program = with_bss_first(&scratch, &build_c("maps", variant), vaddr);
            let both = Invocation::new(&program).wrapped_in([setarch.as_os_str(), "-R".as_ref()]).run_both();
            if vaddr != 0 {
                assert_eq!(both.direct.status.signal(), Some(11), "scenario check, {}: SIGSEGV", both.what);
                assert_error(&both.preloaded, 126, &program.to_string_lossy(), &both.what);
                continue;
            }
            assert_eq!(
                both.preloaded.status.code(),
                Some(0),
                "{}: {}",
                both.what,
                render_status(both.preloaded.status)
            );
            // All of the maps, [heap] and [stack] named (PR_SET_MM_MAP took the mm fields), but
            // the stub's page and [vsyscall] (shown above 4 GiB to an i386 program through preload).
            let maps = |output: &Output| -> Vec<String> {
                let leftover = |line: &str| line.ends_with("/memfd:preload (deleted)") || line.ends_with("[vsyscall]");
                String::from_utf8_lossy(&output.stdout).lines().filter(|l| !leftover(l)).map(String::from).collect()
            };
            assert_eq!(maps(&both.preloaded), maps(&both.direct), "{}", both.what);
            let first = &maps(&both.direct)[0];
            assert!(vaddr != 0 || first.starts_with("00000000-"), "scenario check, {}: {first}", both.what);
        }
    }
}

/// The probe so placed at page 0: everything it sees is what it sees under the kernel, but the
/// start of the code range in /proc/self/stat (and VmExe, counted from it), which PR_SET_MM_MAP
/// takes only from 64 KiB on (README: "Programs below 64 KiB").
#[test]
fn a_program_at_page_0_gets_every_mm_field_but_a_start_code_below_64_kib() {
    let scratch = Scratch::new("page-0");
    let setarch = common::require_tool("setarch");
    let program = with_bss_first(&scratch, &build_c("probe", Variant::StaticPie), 0);
    let both = Invocation::new(&program).wrapped_in([setarch.as_os_str(), "-R".as_ref()]).run_both();
    let (direct, preloaded) = (probe::parse(&both.direct, "direct"), probe::parse(&both.preloaded, "preloaded"));
    let start_code = probe::num(&direct, "addr.stat.start_code");
    assert!(start_code < 0x1_0000, "scenario check: start_code {start_code:#x}");
    assert_eq!(probe::num(&preloaded, "addr.stat.start_code"), 0x1_0000);
    let (direct, preloaded) = (probe::facts(&direct), probe::facts(&preloaded));
    // VmExe counts from start_code too.
    let code_start = |key: &str, _: Option<&String>| key == "rel.start_code_minus_bias" || key == "status.VmExe";
    let report = probe::differences(&direct, &preloaded, code_start);
    assert!(report.is_empty(), "{}:\n{report}", both.what);
}

fn assert_usage_error(args: &[&str], mention: &str) {
    assert_error(&run_preload(args), 125, mention, &format!("preload {args:?}"));
}

#[test]
fn no_program_is_usage_error() {
    assert_usage_error(&[], "preload: ");
}

#[test]
fn only_double_dash_is_usage_error() {
    assert_usage_error(&["--"], "preload: ");
}

#[test]
fn unknown_option_is_usage_error() {
    assert_usage_error(&["--bogus-option", "/bin/true"], "--bogus-option");
}

#[test]
fn argv0_without_value_is_usage_error() {
    assert_usage_error(&["--argv0"], "--argv0");
}

#[test]
fn help_exits_zero() {
    let output = run_preload(["--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "--help: {}", render_status(output.status));
    assert!(stdout.to_lowercase().contains("usage"), "--help must print usage on stdout, got {stdout:?}");
    assert!(stdout.contains("PROGRAM"), "--help must name PROGRAM, got {stdout:?}");
}

#[test]
fn version_exits_zero() {
    let output = run_preload(["--version"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "--version: {}", render_status(output.status));
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "--version must print the version, got {stdout:?}");
}

#[test]
fn dry_run_runs_nothing() {
    let scratch = Scratch::new("dry-run");
    let marker = scratch.path().join("marker");
    let hello = build_c("hello", Variant::Pie);

    // Scenario check: without --dry-run, the program creates the marker.
    let ran = Invocation::new(&hello).arg("--touch").arg(&marker).run_preloaded();
    assert!(ran.status.success() && marker.exists(), "scenario check: preload hello --touch creates the marker");
    std::fs::remove_file(&marker).unwrap();

    let output = run_preload(["--dry-run".as_ref(), hello.as_os_str(), "--touch".as_ref(), marker.as_os_str()]);
    let all_output = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "--dry-run: {} {all_output}", render_status(output.status));
    assert!(!marker.exists(), "--dry-run ran the program");
    assert!(
        all_output.contains(&*hello.to_string_lossy()),
        "--dry-run must print a plan naming the program: {all_output:?}"
    );
}

#[test]
fn dry_run_of_missing_program_is_127() {
    let output = run_preload(["--dry-run", "/nonexistent/program"]);
    assert_error(&output, 127, "/nonexistent/program", "preload --dry-run /nonexistent/program");
}

#[test]
fn verbose_keeps_program_output_and_adds_a_plan() {
    let inv = Invocation::new(build_c("hello", Variant::Pie)).args(["a", "--exit", "3"]).preload_option("--verbose");
    let both = inv.run_both();
    both.expect_exit(3);
    assert_eq!(both.preloaded.status.code(), Some(3), "--verbose: exit status of the program");
    assert_eq!(both.preloaded.stdout, both.direct.stdout, "--verbose must not change the program's stdout");
    let stderr = String::from_utf8_lossy(&both.preloaded.stderr);
    let plan = stderr
        .strip_suffix(&*String::from_utf8_lossy(&both.direct.stderr))
        .unwrap_or_else(|| panic!("--verbose: the program's stderr must come last, got {stderr:?}"));
    assert!(!plan.is_empty(), "--verbose printed no plan");
    assert!(plan.lines().all(|l| l.starts_with("preload: ")), "--verbose lines must start with `preload: `: {plan:?}");
}

#[test]
fn program_on_noexec_mount_is_126() {
    // In a private mount namespace: a tmpfs mounted noexec, where the kernel refuses to exec.
    let scratch = Scratch::new("noexec-mount");
    let mount_point = scratch.path().join("mnt");
    std::fs::create_dir(&mount_point).unwrap();
    let script = r#"set -e
        mount -t tmpfs -o noexec,mode=0755 none "$1"
        cp /bin/true "$1/true"
        if "$1/true" 2>/dev/null; then echo "scenario check: noexec not in effect" >&2; exit 99; fi
        exec "$2" "$1/true""#;
    let output = Invocation::new(common::require_tool("unshare"))
        .args([
            "-m".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
            "sh".as_ref(),
            mount_point.as_os_str(),
            common::preload().as_os_str(),
        ])
        .run_direct();
    assert_error(&output, 126, &mount_point.join("true").to_string_lossy(), "program on a noexec mount");
}

#[test]
fn a_fifo_is_refused_at_once_not_waited_on() {
    let scratch = Scratch::new("fifo");
    let fifo = scratch.path().join("fifo");
    let made = common::output(std::process::Command::new("mkfifo").arg(&fifo)).status;
    assert!(made.success(), "mkfifo failed");
    common::set_mode(&fifo, 0o755);
    // The harness kills a run that hangs after 60 s and fails the test.
    let output = run_preload([&fifo]);
    assert_error(&output, 126, &fifo.to_string_lossy(), "a FIFO as PROGRAM");
}

#[test]
fn path_search_stops_at_an_execute_only_program_instead_of_running_a_later_one() {
    let scratch = Scratch::new("path-execute-only");
    scratch.write("first/tool", "#!/bin/sh\necho first\n", 0o711);
    scratch.write("second/tool", "#!/bin/sh\necho second\n", 0o755);
    let path = format!("{}:{}", scratch.path().join("first").display(), scratch.path().join("second").display());
    let output = Invocation::new("tool").env("PATH", path).unprivileged().run_preloaded();
    assert_error(&output, 126, "executable but not readable", "an execute-only first match in PATH");
}

/// Issue 15, finding 7: untrusted bytes (a PT_INTERP, a `#!` line, a file name) never forge
/// extra `preload: ` lines or reach the terminal as control codes; they are escaped.
#[test]
fn untrusted_bytes_in_messages_are_escaped() {
    let scratch = Scratch::new("escaped");
    let forged = "/x\npreload: forged\x1b[31m\r\x07";
    let program = patched_true(&scratch, "interp-forged", |b| {
        let (offset, size) = interp_range(b);
        let path = format!("{forged:x<width$}", width = size - 1);
        put(b, offset, path.as_bytes());
    });
    let script = scratch.write("script-forged", b"#!/nonexistent/\x1b]0;title\x07\x9b2J -x\n", 0o755);
    let named = scratch.write("name\npreload: forged\x1b[2J", "not a program\n", 0o755);
    for (path, mention) in [
        (&program, "interpreter /x\\npreload: forged\\x1b[31m\\x0d\\x07xx"),
        (&script, "interpreter /nonexistent/\\x1b]0;title\\x07\\x9b2J"),
        (&named, "name\\npreload: forged\\x1b[2J"),
    ] {
        let output = Invocation::new(path).run_preloaded();
        let code = output.status.code().unwrap_or(0);
        assert!([126, 127].contains(&code), "{}: {}", path.display(), render_status(output.status));
        assert_error(&output, code, mention, &format!("preload {}", path.display()));
        let stderr = &output.stderr;
        assert!(
            !stderr.iter().any(|&b| b < 0x20 && b != b'\n' || b == 0x7f || b >= 0x80),
            "control or non-UTF-8 bytes reach the terminal: {:?}",
            String::from_utf8_lossy(stderr)
        );
    }
    // An ordinary UTF-8 path stays readable.
    let readable = scratch.write("prógramme ✓", "not a program\n", 0o755);
    let output = Invocation::new(&readable).run_preloaded();
    assert_error(&output, 126, "prógramme ✓", "a UTF-8 path");
}

/// A preloader built without sealed support: the one scripts/test.sh and scripts/test-kernels.sh
/// build (PRELOAD_WITHOUT_SEALED names it; under qemu there is no toolchain to build with), or
/// built here.
fn without_sealed() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PRELOAD_WITHOUT_SEALED") {
        return path.into();
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("without-sealed");
    let build = common::output(
        std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--bin", "preload", "--no-default-features", "--quiet", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target),
    );
    assert!(build.status.success(), "building without sealed support: {}", String::from_utf8_lossy(&build.stderr));
    target.join("release/preload")
}

/// For a preloader built without sealed support: nothing is a container there, so a key offered
/// (PRELOAD_KEY_FD) is refused rather than left to the program.
#[test]
fn a_key_offered_to_a_preload_without_sealed_support_is_refused() {
    let preload = without_sealed();
    let tru = common::require_tool("true");
    let mut command = std::process::Command::new("/bin/sh");
    command.arg("-c").arg(r#"exec "$@" 3</dev/null"#).arg("sh").arg(&preload).arg(&tru).env("PRELOAD_KEY_FD", "3");
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = common::run(command, None, "a key offered without sealed support");
    assert_error(&output, 126, "no sealed support", "a key offered without sealed support");
    let mut plain = std::process::Command::new(&preload);
    plain
        .arg(&tru)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    assert!(common::run(plain, None, "no key").status.success(), "without a key it runs");
}
