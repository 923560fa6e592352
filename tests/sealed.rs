//! Sealed executables: made with preload-seal, run as `PRELOAD_KEY_FD=3 preload app.sealed 3<KEY`.
//!
//! A sealed program must behave exactly as the program run directly (output, status, and what
//! the /proc probe sees, but for /proc/self/exe, which is the container, and the program's own
//! file mappings, which are anonymous copies); it must never write plaintext to a file; and a
//! wrong key, a truncated container or a flipped byte must stop it before anything runs.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::probe::{assert_relations, differences, facts, parse};
use common::{Both, Scratch, Variant, build_c, per_variant, require_tool, strace};

/// The file descriptor the tests hand the key on.
const KEY_FD: &str = "3";

/// preload-seal's compressors: LZ4 chunks (format 2, the default) and zlib (format 1).
const COMPRESSORS: [&str; 2] = ["lz4", "zlib"];

fn seal_tool() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_preload-seal"));
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn succeed(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        common::render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A scratch directory with a fresh key in it.
struct Keyed {
    scratch: Scratch,
    key: PathBuf,
}

impl Keyed {
    fn new(name: &str) -> Keyed {
        let scratch = Scratch::new(name);
        let key = scratch.path().join("key");
        succeed(common::output(seal_tool().arg("--new-key").arg(&key)), "preload-seal --new-key");
        Keyed { scratch, key }
    }

    /// `program` sealed as `<dir>/sealed/<name>`, and a plain copy as `<dir>/plain/<name>`, so
    /// that both run as `./<name>` (same argv[0], AT_EXECFN and comm) from their directories.
    fn seal(&self, program: &Path, name: &str) -> (PathBuf, PathBuf) {
        self.seal_with(program, name, &[])
    }

    /// As `seal`, with preload-seal's `options` (`--compress zlib`).
    fn seal_with(&self, program: &Path, name: &str, options: &[&str]) -> (PathBuf, PathBuf) {
        let plain = self.scratch.copy(program, &format!("plain/{name}"), 0o755);
        let sealed = self.scratch.path().join("sealed").join(name);
        fs::create_dir_all(sealed.parent().unwrap()).unwrap();
        let tool = common::output(
            seal_tool().arg("--key-file").arg(&self.key).args(options).arg("-o").arg(&sealed).arg(&plain),
        );
        succeed(tool, "preload-seal");
        (plain, sealed)
    }
}

/// How one side of a comparison starts: the same shell and spawn path for both, so that only
/// preload and the key descriptor differ.
fn shell(script: &str, words: &[&OsStr], cwd: &Path) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(words)
        .current_dir(cwd)
        .env_clear()
        .env("LANG", "C")
        .env("PROBE_VAR", "a value");
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// `./<name> ARGS` run directly from the plain copy's directory.
fn run_plain(plain: &Path, args: &[&str]) -> Output {
    let name = format!("./{}", plain.file_name().unwrap().to_string_lossy());
    let words: Vec<&OsStr> = std::iter::once(name.as_ref()).chain(args.iter().map(OsStr::new)).collect();
    common::run(
        shell(r#"unset PWD OLDPWD; exec "$@""#, &words, plain.parent().unwrap()),
        None,
        &format!("{name} (direct)"),
    )
}

/// `preload ./<name> ARGS` from the sealed copy's directory, the key on descriptor 3.
fn run_sealed(sealed: &Path, key: &Path, args: &[&str]) -> Output {
    let name = format!("./{}", sealed.file_name().unwrap().to_string_lossy());
    run_sealed_with(
        sealed.parent().unwrap(),
        key,
        &[common::preload().as_os_str(), name.as_ref()],
        args,
        &[("PRELOAD_KEY_FD", KEY_FD)],
    )
}

/// `WORDS ARGS` from `cwd` with the key file open on descriptor 3 and `env` set.
fn run_sealed_with(cwd: &Path, key: &Path, words: &[&OsStr], args: &[&str], env: &[(&str, &str)]) -> Output {
    let script = format!(r#"unset PWD OLDPWD; exec "$@" 3<'{}'"#, key.display());
    let words: Vec<&OsStr> = words.iter().copied().chain(args.iter().map(OsStr::new)).collect();
    let mut command = shell(&script, &words, cwd);
    command.envs(env.iter().copied());
    common::run(
        command,
        None,
        &format!("sealed {}", words.iter().map(|w| w.to_string_lossy()).collect::<Vec<_>>().join(" ")),
    )
}

fn compare(plain: &Path, sealed: &Path, key: &Path, args: &[&str]) -> Both {
    let both = Both {
        what: format!("{} {args:?}", plain.display()),
        direct: run_plain(plain, args),
        preloaded: run_sealed(sealed, key, args),
    };
    both.assert_same();
    both
}

#[test]
fn ls_sealed_behaves_as_ls() {
    let keyed = Keyed::new("sealed-ls");
    let (plain, sealed) = keyed.seal(Path::new("/bin/ls"), "ls");
    compare(&plain, &sealed, &keyed.key, &["-la", "--time-style=+", "/usr/share/common-licenses"])
        .expect_exit(0)
        .expect_stdout_contains("GPL");
    compare(&plain, &sealed, &keyed.key, &["/nonexistent"]).expect_exit(2);
    let container = fs::metadata(&sealed).unwrap().len();
    assert!(container < fs::metadata("/bin/ls").unwrap().len(), "scenario check: the sealed ls is compressed");
}

fn hello_sealed(variant: Variant) {
    let keyed = Keyed::new(&format!("sealed-hello-{}", variant.name()));
    for compressor in COMPRESSORS {
        let (plain, sealed) =
            keyed.seal_with(&build_c("hello", variant), &format!("hello-{compressor}"), &["--compress", compressor]);
        assert_eq!(
            fs::read(&sealed).unwrap()[8],
            if compressor == "lz4" { 2 } else { 1 },
            "scenario check: the format version of {compressor}"
        );
        compare(&plain, &sealed, &keyed.key, &["one", "two words", "--exit", "3"])
            .expect_exit(3)
            .expect_stdout_contains("two words");
    }
}

/// `program` with its PT_LOADs' bytes moved to the end of the file in reverse order: the first
/// PT_LOAD (lowest address) has the highest file offset. The kernel runs it as before.
fn reverse_file_order(program: &Path) -> Vec<u8> {
    use common::elf::{Elf, PAGE, PT_LOAD};
    let mut elf = Elf::read(program);
    let loads: Vec<usize> =
        (0..elf.phnum()).map(|i| elf.ph(i)).filter(|&at| elf.get(at, 4) == u64::from(PT_LOAD)).collect();
    assert!(loads.len() >= 3, "scenario check: {} has {} PT_LOADs", program.display(), loads.len());
    let mut regions = Vec::new();
    let mut cursor = (elf.bytes.len() as u64).next_multiple_of(PAGE);
    for &at in loads.iter().rev() {
        let (offset, filesz) = (elf.get(at + 8, 8), elf.get(at + 32, 8));
        let start = offset - offset % PAGE;
        regions.push((start, offset + filesz, cursor));
        elf.set(at + 8, 8, cursor + offset % PAGE);
        cursor += (offset + filesz - start).next_multiple_of(PAGE);
    }
    let moved = elf.bytes.clone();
    for (start, end, to) in regions {
        assert_eq!(elf.append(&moved[start as usize..end as usize], PAGE as usize) as u64, to);
    }
    let offsets: Vec<u64> = loads.iter().map(|&at| elf.get(at + 8, 8)).collect();
    assert!(offsets.windows(2).all(|pair| pair[0] > pair[1]), "scenario check: reverse file order {offsets:x?}");
    elf.bytes
}

/// PT_LOADs in reverse file order: read in file order (a zlib body is inflated once), copied
/// to their places, and the program behaves as run directly.
#[test]
fn segments_in_reverse_file_order() {
    let keyed = Keyed::new("sealed-reverse");
    let reversed = keyed.scratch.write("reversed", reverse_file_order(&build_c("hello", Variant::Static)), 0o755);
    for compressor in COMPRESSORS {
        let (plain, sealed) =
            keyed.seal_with(&reversed, &format!("reversed-{compressor}"), &["--compress", compressor]);
        compare(&plain, &sealed, &keyed.key, &["backwards", "--exit", "5"])
            .expect_exit(5)
            .expect_stdout_contains("backwards");
    }
}

per_variant!(hello_sealed:
    hello_sealed_static => Static,
    hello_sealed_dynamic => Pie,
    hello_sealed_musl_static => MuslStatic,
    hello_sealed_i386_static => I386Static,
    hello_sealed_i386_pie => I386Pie,
);

/// The file mappings (`filemap.*` values in address order) that are not `path`'s.
fn file_mappings_except(facts: &BTreeMap<String, String>, path: &str) -> Vec<String> {
    facts
        .iter()
        .filter(|(key, value)| key.starts_with("filemap.") && !value.ends_with(path))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The probe's facts and relations (tests/common/probe.rs) must match the direct run's, but
/// for exactly what names the program's file: /proc/self/exe is the container, and the
/// program's pages are anonymous copies (no path, so not among the file mappings).
fn probe_sealed(variant: Variant) {
    let keyed = Keyed::new(&format!("sealed-probe-{}", variant.name()));
    let (plain, sealed) = keyed.seal(&build_c("probe", variant), "probe");
    let args = ["first", "with space", "--verbose"];
    let direct = facts(&parse(&run_plain(&plain, &args), "direct"));
    let preloaded = facts(&parse(&run_sealed(&sealed, &keyed.key, &args), "sealed"));
    assert_relations(&direct, "scenario check, direct run");
    let (plain_path, container) = (plain.to_string_lossy(), sealed.to_string_lossy());
    let report = differences(&direct, &preloaded, |key, value| {
        let value = value.map(String::as_str);
        (key == "exe" && value == Some(&*container))
            || (key == "prog_path" && value == Some(""))
            || key.starts_with("filemap.")
    });
    assert!(report.is_empty(), "the sealed probe differs from the direct run:\n{report}");
    assert_eq!(
        file_mappings_except(&direct, &plain_path),
        file_mappings_except(&preloaded, &plain_path),
        "file mappings other than the program's"
    );
    assert!(
        !preloaded.values().any(|value| value.contains(&*plain_path)),
        "a sealed run never names the plain program"
    );
    assert_eq!(direct["exe"], plain_path, "scenario check: exe of the direct run");
    assert_eq!(preloaded["exe"], container, "/proc/self/exe of a sealed program is its container");
}

per_variant!(probe_sealed:
    probe_sealed_pie => Pie,
    probe_sealed_static => Static,
    probe_sealed_static_pie => StaticPie,
    probe_sealed_musl_dynamic => MuslDynamic,
);

/// A sealed `hello --touch MARKER`, and how to run it so that it would create MARKER.
struct Marker {
    keyed: Keyed,
    sealed: PathBuf,
    marker: PathBuf,
}

impl Marker {
    fn new(name: &str) -> Marker {
        Marker::with(name, "lz4")
    }

    /// Sealed with preload-seal's `--compress compressor`.
    fn with(name: &str, compressor: &str) -> Marker {
        let keyed = Keyed::new(&format!("{name}-{compressor}"));
        let (_, sealed) = keyed.seal_with(&build_c("hello", Variant::Pie), "hello", &["--compress", compressor]);
        let marker = keyed.scratch.path().join("marker");
        Marker { keyed, sealed, marker }
    }

    /// Run `container` (PRELOAD_KEY_FD=3 with `key` on 3, unless `env` says otherwise).
    fn run(&self, container: &Path, key: &Path, env: &[(&str, &str)], options: &[&str]) -> Output {
        let _ = fs::remove_file(&self.marker);
        let mut words = vec![common::preload().as_os_str()];
        words.extend(options.iter().map(OsStr::new));
        words.push(container.as_os_str());
        run_sealed_with(self.keyed.scratch.path(), key, &words, &["--touch", &self.marker.to_string_lossy()], env)
    }

    fn run_with_key(&self, container: &Path) -> Output {
        self.run(container, &self.keyed.key, &[("PRELOAD_KEY_FD", KEY_FD)], &[])
    }

    /// Exit 126, one line `preload: PATH: <reason...>`, and the program never ran.
    fn assert_refused(&self, output: &Output, reason: &str, what: &str) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(126), "{what}: {} ({stderr})", common::render_status(output.status));
        assert!(
            stderr.starts_with("preload: ") && stderr.contains(reason) && stderr.lines().count() == 1,
            "{what}: stderr {stderr:?} lacks {reason:?}"
        );
        assert!(output.stdout.is_empty(), "{what}: the program printed {:?}", String::from_utf8_lossy(&output.stdout));
        assert!(!self.marker.exists(), "{what}: the program ran and created its marker");
    }

    /// A copy of the container with `edit` applied, in the scratch directory.
    fn variant(&self, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
        let mut bytes = fs::read(&self.sealed).unwrap();
        edit(&mut bytes);
        self.keyed.scratch.write(name, bytes, 0o755)
    }
}

#[test]
fn correct_key_runs_the_program_and_creates_the_marker() {
    for compressor in COMPRESSORS {
        let marker = Marker::with("sealed-marker-ok", compressor);
        let output = marker.run_with_key(&marker.sealed);
        assert!(output.status.success(), "{compressor}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(marker.marker.exists(), "{compressor}: the sealed program ran");
    }
}

#[test]
fn wrong_key_fails_authentication() {
    for compressor in COMPRESSORS {
        wrong_key(Marker::with("sealed-wrong-key", compressor));
    }
}

fn wrong_key(marker: Marker) {
    let wrong = marker.keyed.scratch.write("wrong-key", [0x5au8; 32], 0o600);
    let output = marker.run(&marker.sealed, &wrong, &[("PRELOAD_KEY_FD", KEY_FD)], &[]);
    marker.assert_refused(&output, "authentication failed", "wrong key");
    let hex: String = fs::read(&marker.keyed.key).unwrap().iter().map(|b| format!("{b:02x}")).collect();
    let hex_key = marker.keyed.scratch.write("hex-key", format!("{hex}\n"), 0o600);
    assert!(
        marker.run(&marker.sealed, &hex_key, &[("PRELOAD_KEY_FD", KEY_FD)], &[]).status.success(),
        "the key in hex works too"
    );
}

#[test]
fn truncated_containers_fail_authentication() {
    for compressor in COMPRESSORS {
        truncated(Marker::with("sealed-truncated", compressor));
    }
}

fn truncated(marker: Marker) {
    let len = fs::metadata(&marker.sealed).unwrap().len() as usize;
    for keep in [len - 1, len - 16, len / 2, 57, 40, 39, 20] {
        let container = marker.variant(&format!("cut-{keep}"), |bytes| bytes.truncate(keep));
        marker.assert_refused(
            &marker.run_with_key(&container),
            "authentication failed",
            &format!("truncated to {keep} bytes"),
        );
    }
    let longer = marker.variant("longer", |bytes| bytes.push(0));
    marker.assert_refused(&marker.run_with_key(&longer), "authentication failed", "a byte appended");
}

#[test]
fn flipped_bytes_in_header_body_and_tag_fail_authentication() {
    for compressor in COMPRESSORS {
        flipped(Marker::with("sealed-flipped", compressor));
    }
}

/// An unknown format version or compressor is refused with its reason, before the tag is even
/// checked; the other header fields are covered by the tag.
#[test]
fn unknown_versions_and_compressors_are_named() {
    let marker = Marker::new("sealed-versions");
    for (what, at, value, reason) in [
        ("version 3", 8, 3, "unsupported container version"),
        ("version 1 with LZ4 chunks", 8, 1, "unknown compressor"),
        ("compressor 3", 11, 3, "unknown compressor"),
        ("zlib in version 2", 11, 1, "unknown compressor"),
    ] {
        let container = marker.variant(&format!("header-{at}-{value}"), |bytes| bytes[at] = value);
        marker.assert_refused(&marker.run_with_key(&container), &format!("authentication failed: {reason}"), what);
    }
}

fn flipped(marker: Marker) {
    let len = fs::metadata(&marker.sealed).unwrap().len() as usize;
    let header = 8..40; // after the magic: version, ids, nonce, sizes
    let body = [40, 41, 100, len / 2, len - 17];
    let tag = len - 16..len;
    for at in header.chain(body).chain(tag) {
        let container = marker.variant(&format!("flip-{at}"), |bytes| bytes[at] ^= 0x01);
        marker.assert_refused(&marker.run_with_key(&container), "authentication failed", &format!("byte {at} flipped"));
    }
    // A flipped magic byte makes it no container at all: still refused, and nothing runs.
    for at in 0..8 {
        let container = marker.variant(&format!("magic-{at}"), |bytes| bytes[at] ^= 0x01);
        marker.assert_refused(&marker.run_with_key(&container), "", &format!("magic byte {at} flipped"));
    }
}

#[test]
fn the_key_is_taken_only_from_a_descriptor() {
    let marker = Marker::new("sealed-key-sources");
    let key_bytes = fs::read(&marker.keyed.key).unwrap();
    let hex: String = key_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let unused_key = marker.keyed.scratch.write("unused", [0u8; 1], 0o600);
    // No descriptor: a key in the environment is not one.
    for (name, value) in [("PRELOAD_KEY", hex.as_str()), ("PRELOAD_KEY_FD", hex.as_str())] {
        let output = marker.run(&marker.sealed, &unused_key, &[(name, value)], &[]);
        marker.assert_refused(&output, "sealed program", &format!("{name}=<hex key>"));
    }
    // Not stdin, stdout or stderr, which belong to the program; not one that is not open (99),
    // nor the container preload opened itself (4, the lowest free with the key on 3).
    for fd in ["0", "1", "2", "99", "4"] {
        let output = marker.run(&marker.sealed, &marker.keyed.key, &[("PRELOAD_KEY_FD", fd)], &[]);
        marker.assert_refused(
            &output,
            "PRELOAD_KEY_FD must name an open descriptor above 2",
            &format!("PRELOAD_KEY_FD={fd}"),
        );
    }
    // No command-line option takes a key.
    for option in ["--key", "--key-file", "--key-fd"] {
        let output = marker.run(&marker.sealed, &marker.keyed.key, &[("PRELOAD_KEY_FD", KEY_FD)], &[option, &hex]);
        assert_eq!(output.status.code(), Some(125), "{option}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(!marker.marker.exists(), "{option}: the program ran");
    }
}

#[test]
fn the_key_descriptor_is_closed_and_unnamed_for_the_program() {
    let keyed = Keyed::new("sealed-key-closed");
    let (_, sealed) = keyed.seal(Path::new("/usr/bin/env"), "env");
    let output = run_sealed(&sealed, &keyed.key, &["/bin/ls", "/proc/self/fd"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // ls lists its own fds: 0-2 and the directory it reads (3); the key's 3 was closed first.
    assert_eq!(stdout.lines().filter(|l| *l == "3").count(), 1, "{stdout}");
    let env_output = run_sealed(&sealed, &keyed.key, &[]);
    let environment = String::from_utf8_lossy(&env_output.stdout);
    assert!(environment.contains("PROBE_VAR=a value"), "scenario check: env printed its environment: {environment}");
    assert!(
        !environment.contains("PRELOAD_KEY_FD"),
        "the program's environment names the key descriptor: {environment}"
    );
}

#[test]
fn sealed_program_from_a_pipe_and_from_a_file_descriptor() {
    let keyed = Keyed::new("sealed-fd");
    let (plain, sealed) = keyed.seal(Path::new("/bin/ls"), "ls");
    let direct = run_plain(&plain, &["-d", "/", "/proc"]);
    assert!(direct.status.success(), "scenario check: ls runs");
    let container = sealed.to_string_lossy();
    // The key on 3 and `feed` (a pipe or a redirection) giving the container on `fd`.
    let run_from = |feed: &str, redirect: &str, fd: &str| {
        let script = format!(r#"unset PWD OLDPWD; {feed} exec "$@" 3<'{}' {redirect}"#, keyed.key.display());
        let words = ["--fd", fd, "./ls", "-d", "/", "/proc"].map(OsStr::new);
        let words: Vec<&OsStr> = std::iter::once(common::preload().as_os_str()).chain(words).collect();
        let mut command = shell(&script, &words, sealed.parent().unwrap());
        command.env("PRELOAD_KEY_FD", KEY_FD);
        common::run(command, None, &format!("sealed ls from fd {fd}"))
    };
    let from_pipe = run_from(&format!("cat '{container}' |"), "", "0");
    let from_fd = run_from("", &format!("4<'{container}'"), "4");
    for (what, output) in [("pipe", from_pipe), ("fd 4", from_fd)] {
        Both { what: format!("sealed ls from {what}"), direct: direct.clone(), preloaded: output }.assert_same();
    }
}

/// The write-family calls of a log into a file or a memfd (the rule of this file: see
/// `common::strace` for the policy).
fn writes_to_files(log: &str) -> Vec<strace::Write> {
    strace::writes(&strace::parse(log)).into_iter().filter(|write| write.to_file_or_memfd()).collect()
}

/// Whether `written` holds any 32-byte piece of `program` that is not all one byte.
fn holds_plaintext(written: &[u8], program: &[u8]) -> bool {
    let pieces: Vec<&[u8]> =
        program.chunks_exact(32).filter(|piece| piece.iter().any(|&b| b != piece[0])).step_by(7).collect();
    written.windows(32).any(|window| pieces.contains(&window))
}

fn traced(command: &[&OsStr], cwd: &Path, key: &Path, env: &[(&str, &str)], scratch: &Scratch, name: &str) -> String {
    let log = scratch.path().join(format!("{name}.strace"));
    let strace_path = require_tool("strace");
    let trace = format!("trace={}", strace::TRACE_WRITES);
    let mut words: Vec<&OsStr> =
        vec![strace_path.as_os_str(), "-f".as_ref(), "-y".as_ref(), "-xx".as_ref(), "-s".as_ref(), "1000000".as_ref()];
    words.extend(["-e".as_ref(), trace.as_ref(), "-o".as_ref(), log.as_os_str()]);
    words.extend(command);
    let output = run_sealed_with(cwd, key, &words, &[], env);
    assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    fs::read_to_string(&log).unwrap()
}

#[test]
fn strace_shows_no_plaintext_written_to_any_file() {
    let keyed = Keyed::new("sealed-strace");
    let (plain, sealed) = keyed.seal(Path::new("/bin/ls"), "ls");
    let program = fs::read(&plain).unwrap();
    let dir = sealed.parent().unwrap();
    let preload = common::preload().as_os_str();
    let env = [("PRELOAD_KEY_FD", KEY_FD)];

    // Scenario check: the detector sees a plain copy written to a file.
    let copy = keyed.scratch.path().join("copy");
    let script = format!("dd if='{}' of='{}' bs=4096 status=none", plain.display(), copy.display());
    let log =
        traced(&["/bin/sh".as_ref(), "-c".as_ref(), script.as_ref()], dir, &keyed.key, &[], &keyed.scratch, "copy");
    assert!(
        writes_to_files(&log)
            .iter()
            .any(|write| write.data.as_ref().is_some_and(|data| holds_plaintext(data, &program))),
        "scenario check: dd's plaintext writes are seen"
    );

    let from_path =
        traced(&[preload, "./ls".as_ref(), "-l".as_ref(), "/".as_ref()], dir, &keyed.key, &env, &keyed.scratch, "path");
    let pipe_script = format!(r#"cat '{}' | exec "$0" --fd 0 ./ls -l /"#, sealed.display());
    let from_pipe = traced(
        &["/bin/sh".as_ref(), "-c".as_ref(), pipe_script.as_ref(), preload],
        dir,
        &keyed.key,
        &env,
        &keyed.scratch,
        "pipe",
    );
    let listing = r"write(1<\x70\x69\x70\x65\x3a"; // write(1<pipe:
    assert!(
        from_path.contains(listing) && from_pipe.contains(listing),
        "scenario check: ls wrote its listing under strace"
    );
    assert!(
        writes_to_files(&from_pipe).iter().any(|write| write.to_memfd()),
        "scenario check: the piped container was held in a memfd"
    );
    for (what, log) in [("path", &from_path), ("pipe", &from_pipe)] {
        for write in writes_to_files(log) {
            let path = write.target.as_ref().and_then(|target| target.path()).unwrap_or("?");
            let Some(data) = &write.data else {
                panic!("sealed run from {what}: {} into {path} hides what it writes", write.call.name)
            };
            assert!(!holds_plaintext(data, &program), "sealed run from {what}: plaintext written to {path}");
        }
    }
}

/// `preload-seal --key-file KEY -o OUTPUT PROGRAM`, which must succeed.
fn seal_to(keyed: &Keyed, program: &Path, output: &Path) {
    let tool = common::output(seal_tool().arg("--key-file").arg(&keyed.key).arg("-o").arg(output).arg(program));
    succeed(tool, "preload-seal");
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode()
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// `./<name> one` run through preload from its directory prints its argument: the container works.
fn assert_container_runs(container: &Path, key: &Path) {
    let output = run_sealed(container, key, &["one"]);
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains(r#"argv[1]="one""#),
        "{} does not run: {}\n{}",
        container.display(),
        common::render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A symbolic link at OUTPUT is replaced by the container, never written through: neither the
/// file it points at (content and mode) nor, for a dangling link, the path it names is touched.
#[test]
fn preload_seal_replaces_a_symlink_at_output_without_following_it() {
    let keyed = Keyed::new("seal-output-symlink");
    let program = keyed.scratch.copy(&build_c("hello", Variant::Pie), "hello", 0o755);
    let victim = keyed.scratch.write("victim", "precious\n", 0o640);
    let output = keyed.scratch.path().join("hello.sealed");
    std::os::unix::fs::symlink(&victim, &output).unwrap();
    let nowhere = keyed.scratch.path().join("nowhere");
    let dangling = keyed.scratch.path().join("dangling.sealed");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();

    seal_to(&keyed, &program, &output);
    seal_to(&keyed, &program, &dangling);

    let victim_bytes = fs::read(&victim).unwrap();
    assert!(
        victim_bytes == b"precious\n",
        "the file OUTPUT's link pointed at was written through it ({} bytes now)",
        victim_bytes.len()
    );
    assert_eq!(mode_of(&victim) & 0o7777, 0o640, "the file OUTPUT's link pointed at was chmod'ed through it");
    assert!(!nowhere.exists(), "a dangling link at OUTPUT was followed: its target was created");
    for container in [&output, &dangling] {
        assert!(
            fs::symlink_metadata(container).unwrap().file_type().is_file(),
            "{} is not a regular file now",
            container.display()
        );
        assert_eq!(mode_of(container) & 0o7777, 0o755, "{}: PROGRAM's mode", container.display());
        assert_container_runs(container, &keyed.key);
    }
    assert_eq!(
        names_in(keyed.scratch.path()),
        ["dangling.sealed", "hello", "hello.sealed", "key", "victim"],
        "no temporary file is left behind"
    );
}

/// A set-user-ID, set-group-ID or sticky bit of PROGRAM is not copied onto the container
/// (preload never honours them); the permission bits are.
#[test]
fn preload_seal_clears_set_id_and_sticky_bits() {
    let keyed = Keyed::new("seal-set-id");
    let hello = build_c("hello", Variant::Pie);
    for (mode, expected) in [(0o4755, 0o755), (0o2750, 0o750), (0o7711, 0o711), (0o6700, 0o700)] {
        let program = keyed.scratch.copy(&hello, &format!("hello-{mode:o}"), mode);
        assert_eq!(mode_of(&program) & 0o7777, mode, "scenario check: PROGRAM has mode {mode:o}");
        let output = keyed.scratch.path().join(format!("hello-{mode:o}.sealed"));
        seal_to(&keyed, &program, &output);
        assert_eq!(mode_of(&output) & 0o7777, expected, "container of a mode {mode:o} PROGRAM");
        // An existing container is replaced with the new mode too.
        seal_to(&keyed, &program, &output);
        assert_eq!(mode_of(&output) & 0o7777, expected, "container of a mode {mode:o} PROGRAM, sealed again");
    }
    assert_container_runs(&keyed.scratch.path().join("hello-4755.sealed"), &keyed.key);
}

/// When OUTPUT cannot be replaced (here it is a directory), preload-seal fails and removes its
/// temporary file.
#[test]
fn preload_seal_removes_its_temporary_file_on_failure() {
    let keyed = Keyed::new("seal-temp-cleanup");
    let program = keyed.scratch.copy(Path::new("/bin/true"), "true", 0o755);
    let output = keyed.scratch.path().join("true.sealed");
    fs::create_dir(&output).unwrap();
    fs::write(output.join("inside"), "x").unwrap();
    let tool = common::output(seal_tool().arg("--key-file").arg(&keyed.key).arg("-o").arg(&output).arg(&program));
    let stderr = String::from_utf8_lossy(&tool.stderr);
    assert_eq!(tool.status.code(), Some(1), "sealing onto a directory: {stderr}");
    assert!(stderr.starts_with("preload-seal: ") && stderr.lines().count() == 1, "one line of error: {stderr:?}");
    assert_eq!(names_in(keyed.scratch.path()), ["key", "true", "true.sealed"], "no temporary file is left behind");
    assert_eq!(names_in(&output), ["inside"], "the directory at OUTPUT is untouched");
}

/// `preload-seal --binfmt[=PRELOAD]` standard output, which must succeed.
fn binfmt_line(args: &[&str]) -> String {
    let output = succeed(common::output(seal_tool().arg("--binfmt").args(args)), "preload-seal --binfmt");
    String::from_utf8(output.stdout).expect("the binfmt line is text")
}

#[test]
fn binfmt_line_format() {
    assert_eq!(binfmt_line(&[]), ":preload-sealed:M::\\x7fPRLSEAL::/usr/bin/preload:F\n");
    let other = ":preload-sealed:M::\\x7fPRLSEAL::/opt/preload/bin/preload:F\n";
    assert_eq!(binfmt_line(&["/opt/preload/bin/preload"]), other, "--binfmt PRELOAD");
    let inline = succeed(common::output(seal_tool().arg("--binfmt=/opt/preload/bin/preload")), "--binfmt=PRELOAD");
    assert_eq!(String::from_utf8_lossy(&inline.stdout), other, "--binfmt=PRELOAD");
    // binfmt_misc splits at ':' and needs an absolute path; binfmt.d trims blanks.
    for bad in ["preload", "/a:b", "/a b", "/a\nb", ""] {
        let output = common::output(seal_tool().arg(format!("--binfmt={bad}")));
        assert_eq!(output.status.code(), Some(1), "--binfmt={bad:?} is refused");
        assert!(output.stdout.is_empty(), "--binfmt={bad:?} prints nothing on stdout");
    }
}

/// The binfmt.d file the Debian package installs is what `preload-seal --binfmt` prints.
#[test]
fn debian_binfmt_conf_is_the_binfmt_line() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/preload-sealed.conf");
    let text = fs::read_to_string(&conf).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    assert_eq!(text, binfmt_line(&[]), "{} differs from `preload-seal --binfmt`", conf.display());
}

/// The probe's output in a private binfmt_misc instance (unshare -Urm) with the sealed probe
/// registered under `flags`, run by itself from its directory through perl's exec with argv[0]
/// `argv0` (and `args`), under `strace -f` (open, openat, openat2 logged), and for comparison
/// as `preload --argv0 EXPECTED_ARGV0 ./probe ARGS` in the same namespace and under the same
/// strace. The container has mode `mode`. Returns (by itself, through preload, the strace log
/// of the run by itself).
fn probe_by_binfmt(
    flags: &str,
    mode: u32,
    argv0: &str,
    expected_argv0: &str,
    args: &[&str],
) -> (Output, Output, String) {
    let (strace, perl) = (require_tool("strace"), require_tool("perl"));
    let keyed = Keyed::new(&format!("sealed-binfmt-{flags}"));
    let (_, sealed) = keyed.seal(&build_c("probe", Variant::Pie), "probe");
    common::set_mode(&sealed, mode);
    let line = binfmt_line(&[&common::preload().to_string_lossy()]);
    let line = line.trim_end().strip_suffix(":F").expect("an F registration").to_string() + ":" + flags;
    // $1 strace, $2 perl, $3 argv[0] by itself, $4 argv[0] through preload; then the arguments.
    let runs = r#"
        strace=$1 perl=$2 argv0=$3 expected=$4; shift 4
        PRELOAD_KEY_FD=3 "$strace" -f -qq -e trace=open,openat,openat2 -o "$dir/binfmt.strace" \
            "$perl" -e 'exec {shift} @ARGV or exit 94' ./probe "$argv0" "$@" 3<"$dir/key" \
            > "$dir/binfmt.out" 2> "$dir/binfmt.err"
        echo $? > "$dir/binfmt.status"
        PRELOAD_KEY_FD=3 "$strace" -f -qq -e trace=open,openat,openat2 -o "$dir/preload.strace" \
            "$perl" -e 'exec {shift} @ARGV or exit 94' "$preload" "$preload" --argv0 "$expected" ./probe "$@" \
            3<"$dir/key" > "$dir/preload.out" 2> "$dir/preload.err"
        echo $? > "$dir/preload.status"
    "#;
    let words = [strace.as_os_str(), perl.as_os_str(), argv0.as_ref(), expected_argv0.as_ref()];
    let run = in_private_binfmt(&keyed, &sealed, &line, runs, words.into_iter().chain(args.iter().map(OsStr::new)));
    assert!(run.entry.contains(&format!("\nflags: {flags}\n")), "the registered entry: {}", run.entry);
    let log = String::from_utf8_lossy(&run.read("binfmt.strace")).into_owned();
    (run.side("binfmt"), run.side("preload"), log)
}

/// What a script left in the scratch directory after running in a private binfmt_misc instance.
struct BinfmtRun {
    dir: PathBuf,
    /// The registered entry, as binfmt_misc shows it.
    entry: String,
}

impl BinfmtRun {
    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// One run's SIDE.status, SIDE.out and SIDE.err.
    fn side(&self, side: &str) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let code: i32 = String::from_utf8(self.read(&format!("{side}.status"))).unwrap().trim().parse().unwrap();
        Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: self.read(&format!("{side}.out")),
            stderr: self.read(&format!("{side}.err")),
        }
    }
}

/// `runs`, a shell fragment, in a private binfmt_misc instance (unshare -Urm: binfmt_misc can be
/// mounted in a user namespace since Linux 6.7) with `line` registered, from the container's
/// directory; it sees $dir (the scratch directory, holding the key) and $preload, and `args` as
/// its positional parameters.
fn in_private_binfmt<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(
    keyed: &Keyed,
    sealed: &Path,
    line: &str,
    runs: &str,
    args: I,
) -> BinfmtRun {
    let dir = keyed.scratch.path().to_path_buf();
    fs::create_dir(dir.join("binfmt_misc")).unwrap();
    let script = r#"
        dir=$1 line=$2 preload=$3 sealed=$4; shift 4
        mount -t binfmt_misc binfmt_misc "$dir/binfmt_misc" || exit 90
        printf '%s' "$line" > "$dir/binfmt_misc/register" || exit 91
        cat "$dir/binfmt_misc/preload-sealed" > "$dir/entry" || exit 92
        cd "$sealed" || exit 93
        unset PWD OLDPWD
    "#
    .to_string()
        + runs;
    let preload = common::preload();
    let words = [dir.as_os_str(), line.as_ref(), preload.as_os_str(), sealed.parent().unwrap().as_os_str()];
    let words = words.into_iter().map(OsStr::to_os_string).chain(args.into_iter().map(|a| a.as_ref().to_os_string()));
    let output = common::sh_under_unshare("-Urm", &script, words);
    assert!(
        output.status.success(),
        "registering in a private binfmt_misc failed ({}; 90 mount, 91 register, 92 entry): {}",
        common::render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    let entry = fs::read_to_string(dir.join("entry")).unwrap();
    BinfmtRun { dir, entry }
}

/// The probe's facts by itself and through preload must agree, exe included (the container).
fn assert_same_probe(by_itself: &Output, through: &Output, what: &str) -> BTreeMap<String, String> {
    assert_eq!(
        through.status.code(),
        Some(0),
        "scenario check, through preload: {}",
        String::from_utf8_lossy(&through.stderr)
    );
    assert_eq!(by_itself.status.code(), Some(0), "{what}: {}", String::from_utf8_lossy(&by_itself.stderr));
    let (by_itself, through) = (facts(&parse(by_itself, what)), facts(&parse(through, "through preload")));
    assert_relations(&through, "scenario check, through preload");
    let report = differences(&through, &by_itself, |_, _| false);
    assert!(report.is_empty(), "{what} differs from `preload --argv0 ...` (- through preload, + by itself):\n{report}");
    by_itself
}

/// Flag P: the kernel passes the original argv[0] after the path and sets AT_FLAGS bit 0;
/// the program gets that argv[0], the path as AT_EXECFN and comm, and AT_FLAGS 0, as a plain
/// exec would give it.
#[test]
fn binfmt_flag_p_keeps_argv0() {
    let args = ["one", "two words"];
    let (by_itself, through, _) = probe_by_binfmt("PF", 0o755, "custom name", "custom name", &args);
    let facts = assert_same_probe(&by_itself, &through, "the container run by itself with flag P");
    assert_eq!(facts["cmdline"], format!("{:?}", "custom name\0one\0two words\0"), "argv[0] preserved");
    assert_eq!(facts["at_flags"], "0x0", "binfmt_misc's AT_FLAGS is the preloader's, not the program's");
    assert_eq!(facts["comm"], "probe");
}

/// Flag O: the kernel opens the container itself (mode 0711: executable, not readable by
/// others) and passes the descriptor as AT_EXECFD; preload reads the program through it and
/// never opens the path, and closes it: the program sees the descriptors a direct run would.
#[test]
fn binfmt_flag_o_reads_through_at_execfd() {
    let args = ["one", "two words"];
    let (by_itself, through, log) = probe_by_binfmt("OF", 0o711, "ignored", "./probe", &args);
    let facts = assert_same_probe(&by_itself, &through, "the container run by itself with flag O");
    assert_eq!(facts["cmdline"], format!("{:?}", "./probe\0one\0two words\0"), "without P, argv[0] is the path");
    assert!(log.contains("libc.so.6"), "scenario check: strace logged the opens: {log}");
    let opened: Vec<&str> = log.lines().filter(|line| line.contains("probe\"")).collect();
    assert!(opened.is_empty(), "preload opened the container by its path instead of using AT_EXECFD: {opened:?}");
}

/// The binfmt line registers in a private binfmt_misc instance (unshare -Urm: binfmt_misc can
/// be mounted in a user namespace since Linux 6.7) as the magic, offset and flags it means, and
/// an executable container then runs by itself, `PRELOAD_KEY_FD=3 ./hello ARGS 3<KEY`, exactly
/// as `PRELOAD_KEY_FD=3 preload ./hello ARGS 3<KEY` runs it in the same namespace.
#[test]
fn binfmt_registration_runs_sealed_containers_by_themselves() {
    let keyed = Keyed::new("sealed-binfmt");
    let (_, sealed) = keyed.seal(&build_c("hello", Variant::Pie), "hello");
    let preload = common::preload();
    let runs = r#"
        PRELOAD_KEY_FD=3 ./hello "$@" 3<"$dir/key" > "$dir/binfmt.out" 2> "$dir/binfmt.err"
        echo $? > "$dir/binfmt.status"
        PRELOAD_KEY_FD=3 "$preload" ./hello "$@" 3<"$dir/key" > "$dir/preload.out" 2> "$dir/preload.err"
        echo $? > "$dir/preload.status"
    "#;
    let line = binfmt_line(&[&preload.to_string_lossy()]);
    let run = in_private_binfmt(&keyed, &sealed, &line, runs, ["one", "two words", "--exit", "3"]);
    let expected = format!("enabled\ninterpreter {}\nflags: F\noffset 0\nmagic 7f50524c5345414c\n", preload.display());
    assert_eq!(run.entry, expected, "the registered entry");
    let (by_itself, through) = (run.side("binfmt"), run.side("preload"));
    assert_eq!(
        through.status.code(),
        Some(3),
        "scenario check: through preload: {}",
        String::from_utf8_lossy(&through.stderr)
    );
    assert!(
        String::from_utf8_lossy(&through.stdout).contains(r#"argv[2]="two words""#),
        "scenario check: hello printed its arguments"
    );
    assert_eq!(by_itself.status.code(), Some(3), "run by itself: {}", String::from_utf8_lossy(&by_itself.stderr));
    for (stream, by_itself, through) in
        [("out", &by_itself.stdout, &through.stdout), ("err", &by_itself.stderr, &through.stderr)]
    {
        if let Some(diff) = common::diff_text(through, by_itself) {
            panic!("std{stream} of the container run by itself differs (- through preload, + by itself):\n{diff}");
        }
    }
}

#[test]
fn a_sealed_program_is_refused_under_mdwe_naming_it() {
    // Its plaintext is never put in a memfd (by design), and anonymous copies cannot be made
    // executable under PR_SET_MDWE: refused with 126 and a reason that names MDWE. The same
    // sealed program runs without MDWE.
    let keyed = Keyed::new("sealed-mdwe");
    let (_, sealed) = keyed.seal(&build_c("hello", Variant::Static), "hello");
    let mdwe = build_c("mdwe", Variant::Pie);
    let name = format!("./{}", sealed.file_name().unwrap().to_string_lossy());
    let words = [mdwe.as_os_str(), common::preload().as_os_str(), name.as_ref()];
    let refused = run_sealed_with(sealed.parent().unwrap(), &keyed.key, &words, &[], &[("PRELOAD_KEY_FD", KEY_FD)]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(126), "{stderr}");
    assert!(stderr.starts_with(&format!("preload: {name}: memory-deny-write-execute (PR_SET_MDWE)")), "{stderr}");
    assert!(refused.stdout.is_empty(), "nothing ran");
    assert!(run_sealed(&sealed, &keyed.key, &[]).status.success(), "scenario check: it runs without MDWE");
}

/// Issue 15, finding 1: with a key offered, a plain program (or a script) in place of the
/// container is refused, by path and from a pipe, and never runs with the key's descriptor.
#[test]
fn a_plain_program_in_place_of_a_container_is_refused_when_a_key_is_offered() {
    let marker = Marker::new("sealed-plain-impostor");
    let scratch = &marker.keyed.scratch;
    let plain = scratch.copy(&build_c("hello", Variant::Pie), "app.sealed", 0o755);
    let script = scratch.write("script.sealed", format!("#!{}\n", plain.display()), 0o755);
    for (impostor, what) in [(&plain, "a plain ELF"), (&script, "a #! script")] {
        let output = marker.run_with_key(impostor);
        marker.assert_refused(&output, "not a sealed container", what);
        // Without a key it is an ordinary program, and runs.
        let output = marker.run(impostor, &marker.keyed.key, &[], &[]);
        assert!(output.status.success(), "{what} without a key: {}", String::from_utf8_lossy(&output.stderr));
        assert!(marker.marker.exists(), "{what} without a key ran");
    }
    // From a pipe: `cat plain | PRELOAD_KEY_FD=3 preload --fd 0 app`.
    let _ = fs::remove_file(&marker.marker);
    let script = format!(r#"cat '{}' | exec "$@" 3<'{}'"#, plain.display(), marker.keyed.key.display());
    let marker_path = marker.marker.to_string_lossy();
    let words = [common::preload().as_os_str(), OsStr::new("--fd"), OsStr::new("0"), OsStr::new("app")];
    let words: Vec<&OsStr> = words.into_iter().chain([OsStr::new("--touch"), OsStr::new(&*marker_path)]).collect();
    let mut command = shell(&script, &words, scratch.path());
    command.env("PRELOAD_KEY_FD", KEY_FD);
    let output = common::run(command, None, "a plain ELF from a pipe with a key");
    marker.assert_refused(&output, "not a sealed container", "a plain ELF from a pipe");
}

/// A key descriptor that sends part of a key and never ends is given up after 10 s.
#[test]
fn a_key_descriptor_that_never_ends_is_given_up() {
    let marker = Marker::new("sealed-key-stalls");
    let marker_path = marker.marker.to_string_lossy();
    // The key's pipe: four bytes, and the writing end kept open by the test.
    let (reader, mut writer) = std::io::pipe().unwrap();
    std::io::Write::write_all(&mut writer, b"0123").unwrap();
    let words: Vec<&OsStr> =
        [common::preload().as_os_str(), marker.sealed.as_os_str(), OsStr::new("--touch"), OsStr::new(&*marker_path)]
            .into();
    let mut command = shell(r#"exec "$@" 3<&0 </dev/null"#, &words, marker.keyed.scratch.path());
    command.env("PRELOAD_KEY_FD", KEY_FD).stdin(reader);
    let started = std::time::Instant::now();
    let output = common::run(command, None, "a stalled key");
    drop(writer);
    marker.assert_refused(&output, "sent nothing more for 10 s", "a stalled key");
    assert!(started.elapsed().as_secs() < 25, "the wait was not bounded: {:?}", started.elapsed());
}

/// The first 64 bytes of ChaCha20's keystream for `key`, `nonce` and block `counter` (RFC 8439
/// 2.3): block 0's first 32 bytes are the Poly1305 one-time key.
fn chacha20_block(key: &[u8; 32], nonce: &[u8; 12], counter: u32) -> [u8; 64] {
    fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(16);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(12);
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(8);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(7);
    }
    let word = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().unwrap());
    let mut state = [0u32; 16];
    state[..4].copy_from_slice(&[0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
    for i in 0..8 {
        state[4 + i] = word(&key[4 * i..4 * i + 4]);
    }
    state[12] = counter;
    for i in 0..3 {
        state[13 + i] = word(&nonce[4 * i..4 * i + 4]);
    }
    let mut working = state;
    for _ in 0..10 {
        quarter(&mut working, 0, 4, 8, 12);
        quarter(&mut working, 1, 5, 9, 13);
        quarter(&mut working, 2, 6, 10, 14);
        quarter(&mut working, 3, 7, 11, 15);
        quarter(&mut working, 0, 5, 10, 15);
        quarter(&mut working, 1, 6, 11, 12);
        quarter(&mut working, 2, 7, 8, 13);
        quarter(&mut working, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for i in 0..16 {
        out[4 * i..4 * i + 4].copy_from_slice(&working[i].wrapping_add(state[i]).to_le_bytes());
    }
    out
}

#[test]
fn chacha20_block_is_rfc_8439s() {
    // RFC 8439 2.3.2.
    let key: [u8; 32] = core::array::from_fn(|i| i as u8);
    let nonce = [0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0];
    assert_eq!(chacha20_block(&key, &nonce, 1)[..8], [0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15]);
}

/// Where `needles` occur in every readable mapping of process `pid`: "NAME at ADDR (MAPPING)".
fn find_in_memory(pid: u32, needles: &[(&str, &[u8])]) -> Vec<String> {
    use std::os::unix::fs::FileExt;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = Vec::new();
    let mut scanned = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let mut bytes = vec![0u8; (end - start) as usize];
        if mem.read_exact_at(&mut bytes, start).is_err() {
            continue;
        }
        scanned += 1;
        for (name, needle) in needles {
            for at in bytes.windows(needle.len()).enumerate().filter(|(_, w)| w == needle).map(|(at, _)| at) {
                found.push(format!("{name} at {:#x} ({line})", start + at as u64));
            }
        }
    }
    assert!(scanned > 3, "scenario check: the program's mappings were read:\n{maps}");
    found
}

/// Issue 15, finding 2: nothing of the key, its cipher states or the Poly1305 one-time key
/// stays in the running program's memory (stack, heap, anything mapped).
#[test]
fn nothing_of_the_key_stays_in_the_programs_memory() {
    let keyed = Keyed::new("sealed-key-memory");
    let (_, sealed) = keyed.seal(Path::new("/bin/cat"), "cat");
    let key: [u8; 32] = fs::read(&keyed.key).unwrap().try_into().unwrap();
    let container = fs::read(&sealed).unwrap();
    let nonce: [u8; 12] = container[12..24].try_into().unwrap();
    let one_time = chacha20_block(&key, &nonce, 0);
    let needles: [(&str, &[u8]); 5] = [
        ("the key's first half", &key[..16]),
        ("the key's second half", &key[16..]),
        ("the one-time key's r", &one_time[..16]),
        ("the one-time key's s", &one_time[16..32]),
        ("the keystream's first block", &one_time[32..48]),
    ];
    let name = "./cat".to_string();
    let script = format!(r#"unset PWD OLDPWD; exec "$@" 3<'{}'"#, keyed.key.display());
    let words = [common::preload().as_os_str(), OsStr::new(&name)];
    let mut command = shell(&script, &words, sealed.parent().unwrap());
    command.env("PRELOAD_KEY_FD", KEY_FD).stdin(Stdio::piped());
    let mut child = common::spawn(&mut command).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // cat echoing a line is cat running.
    std::io::Write::write_all(&mut stdin, b"ready\n").unwrap();
    let mut echoed = [0u8; 6];
    let echo = std::io::Read::read_exact(&mut stdout, &mut echoed);
    let found = find_in_memory(child.id(), &needles);
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(echo.is_ok() && &echoed == b"ready\n", "the sealed cat ran: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(found.is_empty(), "key material in the program's memory:\n{}", found.join("\n"));
}

/// Issue 15, finding 6: a forged container is refused on its tag before its declared body is
/// held: a sparse container declaring a 256 MiB body fails authentication (126) under an
/// address-space limit of 128 MiB, where reading the body first ran out of memory.
#[test]
fn a_forged_large_container_is_refused_before_its_body_is_held() {
    let marker = Marker::new("sealed-forged-large");
    let body_size: u64 = 256 << 20;
    let forged = marker.variant("forged", |bytes| {
        bytes.truncate(40);
        bytes[24..32].copy_from_slice(&body_size.to_le_bytes());
        bytes[32..40].copy_from_slice(&body_size.to_le_bytes());
    });
    fs::OpenOptions::new().write(true).open(&forged).unwrap().set_len(40 + body_size + 16).unwrap();
    let script = format!(r#"ulimit -v 131072; exec "$@" 3<'{}'"#, marker.keyed.key.display());
    let marker_path = marker.marker.to_string_lossy();
    let words = [common::preload().as_os_str(), forged.as_os_str(), OsStr::new("--touch"), OsStr::new(&*marker_path)];
    let mut command = shell(&script, &words, marker.keyed.scratch.path());
    command.env("PRELOAD_KEY_FD", KEY_FD);
    let output = common::run(command, None, "a forged 256 MiB container");
    marker.assert_refused(&output, "authentication failed", "a forged 256 MiB container");
    // The real one still runs under the same limit.
    let script = format!(r#"ulimit -v 131072; exec "$@" 3<'{}'"#, marker.keyed.key.display());
    let words =
        [common::preload().as_os_str(), marker.sealed.as_os_str(), OsStr::new("--touch"), OsStr::new(&*marker_path)];
    let mut command = shell(&script, &words, marker.keyed.scratch.path());
    command.env("PRELOAD_KEY_FD", KEY_FD);
    let output = common::run(command, None, "the real container under the limit");
    assert!(output.status.success() && marker.marker.exists(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A sealed program starts with its vector registers zero, as after a plain exec: the cipher's
/// AVX2 and AVX-512 backends keep its state (the key's words among it) in the upper parts of
/// ymm/zmm0-15 and in zmm16-31, which the stub's SSE reset does not reach. tests/c's probe
/// writes ymm0-15 and, where the CPU has AVX-512F, zmm16-31 before anything else runs; on a
/// CPU without AVX (where the SSE2 backend runs: scripts/test.sh's Nehalem run), xmm0-15.
#[test]
fn a_sealed_program_starts_with_zeroed_vector_registers() {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let flags = cpuinfo.lines().find(|line| line.starts_with("flags")).expect("a flags line in /proc/cpuinfo");
    let has = |flag: &str| flags.split_whitespace().any(|word| word == flag);
    let keyed = Keyed::new("vector-registers");
    let program = keyed.scratch.path().join("vector_registers");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/vector_registers.c");
    let mut gcc = Command::new(require_tool("gcc"));
    gcc.args(["-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror", "-nostdlib", "-static", "-fno-pie", "-no-pie"]);
    let (define, expected) = match (has("avx"), has("avx512f")) {
        (false, _) => ("-DXMM", 16 * 16),
        (true, false) => ("-DYMM", 16 * 32),
        (true, true) => ("-DZMM", 16 * 32 + 16 * 64),
    };
    gcc.arg(define);
    succeed(common::output(gcc.arg("-o").arg(&program).arg(&source)), "gcc vector_registers.c");
    let (plain, sealed) = keyed.seal(&program, "vector_registers");
    let direct = succeed(run_plain(&plain, &[]), "vector_registers (direct)").stdout;
    assert_eq!(direct, vec![0u8; expected], "a plain exec starts the program with zeroed registers");
    let through = succeed(run_sealed(&sealed, &keyed.key, &[]), "vector_registers (sealed)").stdout;
    assert_eq!(through, direct, "registers as the sealed program starts ({define})");
}
