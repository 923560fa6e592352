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
use common::{Both, Scratch, Variant, build_c, per_variant, require_tool};

/// The file descriptor the tests hand the key on.
const KEY_FD: &str = "3";

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
        let plain = self.scratch.copy(program, &format!("plain/{name}"), 0o755);
        let sealed = self.scratch.path().join("sealed").join(name);
        fs::create_dir_all(sealed.parent().unwrap()).unwrap();
        let tool = common::output(seal_tool().arg("--key-file").arg(&self.key).arg("-o").arg(&sealed).arg(&plain));
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
    let (plain, sealed) = keyed.seal(&build_c("hello", variant), "hello");
    compare(&plain, &sealed, &keyed.key, &["one", "two words", "--exit", "3"])
        .expect_exit(3)
        .expect_stdout_contains("two words");
}

per_variant!(hello_sealed:
    hello_sealed_static => Static,
    hello_sealed_dynamic => Pie,
    hello_sealed_musl_static => MuslStatic,
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
        let keyed = Keyed::new(name);
        let (_, sealed) = keyed.seal(&build_c("hello", Variant::Pie), "hello");
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
    let marker = Marker::new("sealed-marker-ok");
    let output = marker.run_with_key(&marker.sealed);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(marker.marker.exists(), "the sealed program ran");
}

#[test]
fn wrong_key_fails_authentication() {
    let marker = Marker::new("sealed-wrong-key");
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
    let marker = Marker::new("sealed-truncated");
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
    let marker = Marker::new("sealed-flipped");
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

/// One traced call that puts bytes into a file (strace -y shows a descriptor's path: a regular
/// file, or a memfd as "/memfd:..."): the call, that path, and the bytes when strace shows them
/// (write and its kin; sendfile, splice and copy_file_range show none).
struct FileWrite {
    call: String,
    path: String,
    bytes: Vec<u8>,
}

/// The bytes strace -xx shows as `\\xNN` escapes.
fn unescape(text: &str) -> Vec<u8> {
    text.split("\\x").skip(1).filter_map(|hex| u8::from_str_radix(hex.get(..2)?, 16).ok()).collect()
}

fn writes_to_files(log: &str) -> Vec<FileWrite> {
    let mut writes = Vec::new();
    for line in log.lines() {
        let call = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        let Some((name, rest)) = call.split_once('(') else { continue };
        let mut annotations = rest.split('<').skip(1).filter_map(|tail| {
            tail.split_once('>').map(|(path, _)| String::from_utf8_lossy(&unescape(path)).into_owned())
        });
        let Some(path) = annotations.find(|path| path.starts_with('/') && !path.starts_with("/dev/")) else { continue };
        let data = rest.split_once('"').and_then(|(_, tail)| tail.rsplit_once('"')).map_or("", |(data, _)| data);
        writes.push(FileWrite { call: name.to_string(), path, bytes: unescape(data) });
    }
    writes
}

/// Whether `written` holds any 32-byte piece of `program` that is not all one byte.
fn holds_plaintext(written: &[u8], program: &[u8]) -> bool {
    let pieces: Vec<&[u8]> =
        program.chunks_exact(32).filter(|piece| piece.iter().any(|&b| b != piece[0])).step_by(7).collect();
    written.windows(32).any(|window| pieces.contains(&window))
}

fn traced(command: &[&OsStr], cwd: &Path, key: &Path, env: &[(&str, &str)], scratch: &Scratch, name: &str) -> String {
    let log = scratch.path().join(format!("{name}.strace"));
    let strace = require_tool("strace");
    let mut words: Vec<&OsStr> =
        vec![strace.as_os_str(), "-f".as_ref(), "-y".as_ref(), "-xx".as_ref(), "-s".as_ref(), "1000000".as_ref()];
    words.extend([
        "-e".as_ref(),
        "trace=write,pwrite64,writev,pwritev,pwritev2,sendfile,splice,copy_file_range,vmsplice".as_ref(),
        "-o".as_ref(),
        log.as_os_str(),
    ]);
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
        writes_to_files(&log).iter().any(|write| holds_plaintext(&write.bytes, &program)),
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
        writes_to_files(&from_pipe).iter().any(|write| write.path.starts_with("/memfd:")),
        "scenario check: the piped container was held in a memfd"
    );
    for (what, log) in [("path", &from_path), ("pipe", &from_pipe)] {
        for write in writes_to_files(log) {
            assert!(
                write.call.starts_with("write") || write.call.starts_with("pwrite"),
                "sealed run from {what}: {} into {} hides what it writes",
                write.call,
                write.path
            );
            assert!(
                !holds_plaintext(&write.bytes, &program),
                "sealed run from {what}: plaintext written to {}",
                write.path
            );
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
