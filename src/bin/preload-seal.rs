//! `preload-seal`: make sealed executables for `preload`, and keys for them.
//!
//!     preload-seal --new-key KEYFILE
//!     preload-seal --key-file KEYFILE [--compress lz4|zlib] [-o OUTPUT] PROGRAM
//!
//! The program is compressed (LZ4 in independent chunks, format 2; or zlib, format 1, which
//! preloads before format 2 read too), encrypted with ChaCha20-Poly1305 under a fresh random
//! nonce, and written after a header that the tag also covers (see `preload::input::sealed`).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use preload::input::sealed::{self, CHUNK_SIZE, Compressor, Header, KEY_SIZE, Key, NONCE_SIZE, Secret};

const USAGE: &str = "\
Usage: preload-seal --key-file KEYFILE [--compress lz4|zlib] [-o OUTPUT] PROGRAM
       preload-seal --new-key KEYFILE

Seal PROGRAM (an ELF executable) for `preload`: compressed, encrypted and authenticated with
the key in KEYFILE (32 raw bytes, or 64 hex digits and an optional newline). OUTPUT defaults
to PROGRAM.sealed and gets PROGRAM's permission bits. --compress lz4 (the default: container
format 2, fast to start) or zlib (format 1: smaller, slower to start, and also read by
preloads older than format 2). --new-key writes a new random key to
KEYFILE (mode 0600), which must not exist yet.

Run a sealed program with its key on a descriptor, never in an argument or the environment:
    PRELOAD_KEY_FD=3 preload OUTPUT [ARG]... 3<KEYFILE
";

enum Command {
    NewKey(PathBuf),
    Seal { key_file: PathBuf, output: PathBuf, program: PathBuf, compressor: Compressor },
}

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<Command>, String> {
    let (mut key_file, mut output, mut program, mut new_key) = (None, None, None, None);
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
            Some(option) if option.starts_with('-') && option.len() > 1 => {
                return Err(format!("unknown option {option}"));
            }
            _ if program.is_none() => program = Some(PathBuf::from(arg)),
            _ => return Err("more than one PROGRAM".into()),
        }
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
        _ => Err("give either --new-key KEYFILE, or --key-file KEYFILE and PROGRAM".into()),
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
    let mode = fs::metadata(program_path).map_err(at(program_path))?.permissions().mode() & 0o7777;
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(output).map_err(at(output))?;
    file.write_all(&header.encode())
        .and_then(|()| file.write_all(&body))
        .and_then(|()| file.write_all(&tag))
        .map_err(at(output))?;
    // An existing OUTPUT keeps its mode through open: give it PROGRAM's, as a fresh one gets.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(at(output))
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
