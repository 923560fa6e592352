//! `preload-seal`: make sealed executables for `preload`, and keys for them.
//!
//!     preload-seal --new-key KEYFILE
//!     preload-seal --key-file KEYFILE [--compress lz4|zlib] [-o OUTPUT] PROGRAM
//!     preload-seal --binfmt[=PRELOAD]
//!
//! The program is compressed (LZ4 in independent chunks, format 2; or zlib, format 1, which
//! preloads before format 2 read too), encrypted with ChaCha20-Poly1305 under a fresh random
//! nonce, and written after a header that the tag also covers (see `preload::input::sealed`).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use preload::input::sealed::{self, CHUNK_SIZE, Compressor, Header, KEY_SIZE, Key, NONCE_SIZE, Secret};

const USAGE: &str = "\
Usage: preload-seal --key-file KEYFILE [--compress lz4|zlib] [-o OUTPUT] PROGRAM
       preload-seal --new-key KEYFILE
       preload-seal --binfmt[=PRELOAD]

Seal PROGRAM (an ELF executable) for `preload`: compressed, encrypted and authenticated with
the key in KEYFILE (32 raw bytes, or 64 hex digits and an optional newline). OUTPUT defaults
to PROGRAM.sealed and gets PROGRAM's permission bits, set-user-ID, set-group-ID and sticky
cleared; it is written to a new file and renamed into place, so a symbolic link at OUTPUT is
replaced, never followed. --compress lz4 (the default: container format 2, fast to start) or
zlib (format 1: smaller, slower to start, and also read by preloads older than format 2).
--new-key writes a new random key to KEYFILE (mode 0600), which must not exist yet.

Run a sealed program with its key on a descriptor, never in an argument or the environment:
    PRELOAD_KEY_FD=3 preload OUTPUT [ARG]... 3<KEYFILE

--binfmt prints the binfmt_misc registration of sealed containers (magic \\x7fPRLSEAL at
offset 0, interpreter PRELOAD, flag F), for /proc/sys/fs/binfmt_misc/register or a binfmt.d
file; once registered, an executable container runs by itself:
    PRELOAD_KEY_FD=3 ./OUTPUT [ARG]... 3<KEYFILE
PRELOAD is the absolute path of preload (default /usr/bin/preload; also --binfmt PRELOAD).
";

/// The interpreter `--binfmt` names when not told otherwise: where the Debian package puts it.
const DEFAULT_PRELOAD: &str = "/usr/bin/preload";

/// The binfmt_misc entry's name (/proc/sys/fs/binfmt_misc/preload-sealed).
const BINFMT_NAME: &str = "preload-sealed";

/// The longest registration string binfmt_misc accepts (MAX_REGISTER_LENGTH in
/// fs/binfmt_misc.c).
const MAX_REGISTER_LENGTH: usize = 1920;

enum Command {
    NewKey(PathBuf),
    Seal {
        key_file: PathBuf,
        output: PathBuf,
        program: PathBuf,
        compressor: Compressor,
    },
    /// Print the binfmt_misc registration with this interpreter.
    Binfmt(PathBuf),
}

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<Command>, String> {
    let (mut key_file, mut output, mut program, mut new_key, mut binfmt) = (None, None, None, None, None);
    let mut compressor = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().map(PathBuf::from).ok_or(format!("{name} needs a value"));
        match arg.to_str() {
            Some("--help" | "-h") => return Ok(None),
            Some("--key-file") => key_file = Some(value("--key-file")?),
            Some("-o" | "--output") => output = Some(value("-o")?),
            Some("--new-key") => new_key = Some(value("--new-key")?),
            Some("--compress") => {
                compressor = Some(match value("--compress")?.to_str() {
                    Some("lz4") => Compressor::Lz4Chunks,
                    Some("zlib") => Compressor::Zlib,
                    _ => return Err("--compress takes lz4 or zlib".into()),
                })
            }
            Some("--binfmt") => binfmt = Some(None),
            _ if arg.as_bytes().starts_with(b"--binfmt=") => {
                binfmt = Some(Some(PathBuf::from(OsStr::from_bytes(&arg.as_bytes()[b"--binfmt=".len()..]))))
            }
            Some(option) if option.starts_with('-') && option.len() > 1 => {
                return Err(format!("unknown option {option}"));
            }
            _ if program.is_none() => program = Some(PathBuf::from(arg)),
            _ => return Err("more than one PROGRAM".into()),
        }
    }
    if let Some(inline) = binfmt {
        if new_key.is_some() || key_file.is_some() || output.is_some() || compressor.is_some() {
            return Err("--binfmt takes no other option".into());
        }
        return match (inline, program) {
            (Some(_), Some(_)) => Err("--binfmt takes one PRELOAD".into()),
            (inline, program) => {
                Ok(Some(Command::Binfmt(inline.or(program).unwrap_or_else(|| DEFAULT_PRELOAD.into()))))
            }
        };
    }
    match (new_key, key_file, program) {
        (Some(path), None, None) if output.is_none() && compressor.is_none() => Ok(Some(Command::NewKey(path))),
        (None, Some(key_file), Some(program)) => {
            let output = output.unwrap_or_else(|| {
                let mut name = program.clone().into_os_string();
                name.push(".sealed");
                name.into()
            });
            let compressor = compressor.unwrap_or(Compressor::Lz4Chunks);
            Ok(Some(Command::Seal { key_file, output, program, compressor }))
        }
        _ => Err("give --new-key KEYFILE, or --key-file KEYFILE and PROGRAM, or --binfmt".into()),
    }
}

fn random(buf: &mut [u8]) -> Result<(), String> {
    match rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty()) {
        Ok(n) if n == buf.len() => Ok(()),
        _ => Err("getrandom failed".into()),
    }
}

fn at(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |err| format!("{}: {err}", path.display())
}

fn new_key(path: &Path) -> Result<(), String> {
    let mut key = Key::zeroed();
    random(&mut key.0)?;
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(at(path))?;
    file.write_all(&key.0).map_err(at(path))
}

fn read_key(path: &Path) -> Result<Key, String> {
    let mut text = Secret([0u8; 2 * KEY_SIZE + 2]);
    let mut file = File::open(path).map_err(at(path))?;
    let mut len = 0;
    loop {
        match file.read(&mut text.0[len..]).map_err(at(path))? {
            0 => break,
            n => len += n,
        }
        if len == text.0.len() {
            break;
        }
    }
    let mut key = Key::zeroed();
    sealed::parse_key(&text.0[..len], &mut key).map_err(|reason| format!("{}: {reason}", path.display()))?;
    Ok(key)
}

/// The body for `compressor`: one zlib stream, or LZ4 chunks (see `preload::input::sealed`).
fn compress(program: &[u8], compressor: Compressor) -> Result<Vec<u8>, String> {
    match compressor {
        Compressor::Zlib => {
            let mut body = vec![0u8; zlib_rs::compress_bound(program.len())];
            let (compressed, rc) = zlib_rs::compress_slice(&mut body, program, zlib_rs::DeflateConfig::default());
            if rc != zlib_rs::ReturnCode::Ok {
                return Err(format!("compression failed ({rc:?})"));
            }
            let len = compressed.len();
            body.truncate(len);
            Ok(body)
        }
        Compressor::Lz4Chunks => {
            let mut body = Vec::with_capacity(program.len() + program.len() / 64 + 64);
            let mut out = vec![0u8; sealed::chunk_bound(CHUNK_SIZE)];
            for chunk in program.chunks(CHUNK_SIZE) {
                let len = sealed::compress_chunk(chunk, &mut out);
                body.extend_from_slice(&out[..len]);
            }
            Ok(body)
        }
    }
}

fn seal(key_file: &Path, output: &Path, program_path: &Path, compressor: Compressor) -> Result<(), String> {
    let key = read_key(key_file)?;
    let program = fs::read(program_path).map_err(at(program_path))?;
    if !program.starts_with(b"\x7fELF") {
        return Err(format!("{}: not an ELF executable", program_path.display()));
    }
    if program.len() as u64 > sealed::MAX_PROGRAM_SIZE {
        return Err(format!("{}: larger than {} bytes", program_path.display(), sealed::MAX_PROGRAM_SIZE));
    }
    let mut body = compress(&program, compressor).map_err(|why| format!("{}: {why}", program_path.display()))?;
    let mut header =
        Header { compressor, nonce: [0; NONCE_SIZE], program_size: program.len() as u64, body_size: body.len() as u64 };
    random(&mut header.nonce)?;
    let tag = sealed::seal(&key, &header, &mut body);
    // PROGRAM's permission bits without set-user-ID, set-group-ID and sticky: a container is run
    // by preload, which never honours them, and a set-ID file that is not what it seems is a trap.
    let mode = fs::metadata(program_path).map_err(at(program_path))?.permissions().mode() & 0o777;
    replace(output, &[&header.encode(), &body, &tag], mode)
}

/// Puts `parts`, one after the other, at `path` with permission bits `mode`, atomically: written
/// to a new temporary file in the same directory (`O_EXCL | O_NOFOLLOW`, mode 0600 while it is
/// written), given `mode`, synced, then renamed over `path`. Nothing at `path` is ever opened or
/// followed: a symbolic link there is replaced, not written through, and a reader sees either
/// the old file or the whole new one. The temporary file is removed if anything fails.
fn replace(path: &Path, parts: &[&[u8]], mode: u32) -> Result<(), String> {
    let name = path.file_name().ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut nonce = [0u8; 8];
    random(&mut nonce)?;
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{:016x}.tmp", u64::from_le_bytes(nonce)));
    let temp = dir.join(temp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&temp)
        .map_err(at(&temp))?;
    let written = parts
        .iter()
        .try_for_each(|part| file.write_all(part))
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .map_err(at(&temp))
        .and_then(|()| fs::rename(&temp, path).map_err(at(path)));
    drop(file);
    if let Err(message) = written {
        let _ = fs::remove_file(&temp);
        return Err(message);
    }
    // The rename itself is durable once the directory is synced: best effort, as a directory
    // one may write but not read cannot be opened for it, and OUTPUT is in place either way.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The binfmt_misc registration string (`:name:type:offset:magic:mask:interpreter:flags`, see
/// the kernel's Documentation/admin-guide/binfmt-misc.rst) for sealed containers, one line:
/// recognised by magic (`M`) at offset 0 (left empty), the magic's bytes that are not printable
/// written `\xHH` as binfmt_misc unescapes them, no mask, and flag `F`: the kernel opens the
/// interpreter when the line is registered, so it works in mount namespaces and chroots that do
/// not have it. Without `P` the interpreter gets the container's path as typed, as
/// `preload ./app.sealed ARG...` would, and argv[0] of the container's caller is dropped.
fn binfmt_line(preload: &Path) -> Result<Vec<u8>, String> {
    let path = preload.as_os_str().as_bytes();
    if !path.starts_with(b"/") || path.iter().any(|&b| b == b':' || b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(format!(
            "{}: PRELOAD must be an absolute path without ':', blanks or control characters",
            preload.display()
        ));
    }
    let mut line = format!(":{BINFMT_NAME}:M::").into_bytes();
    for byte in sealed::MAGIC {
        match byte {
            b'!'..=b'~' if byte != b'\\' && byte != b':' => line.push(byte),
            _ => line.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
        }
    }
    line.extend_from_slice(b"::");
    line.extend_from_slice(path);
    line.extend_from_slice(b":F\n");
    if line.len() > MAX_REGISTER_LENGTH {
        return Err(format!("{}: longer than binfmt_misc accepts", preload.display()));
    }
    Ok(line)
}

fn main() -> ExitCode {
    let outcome = match parse(std::env::args_os().skip(1)) {
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(Command::NewKey(path))) => new_key(&path),
        Ok(Some(Command::Seal { key_file, output, program, compressor })) => {
            seal(&key_file, &output, &program, compressor)
        }
        Ok(Some(Command::Binfmt(preload))) => binfmt_line(&preload)
            .and_then(|line| std::io::stdout().write_all(&line).map_err(|err| format!("standard output: {err}"))),
        Err(usage) => {
            eprintln!("preload-seal: {usage} (try 'preload-seal --help')");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("preload-seal: {message}");
            ExitCode::FAILURE
        }
    }
}
