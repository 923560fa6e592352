//! Kernel-differential fuzzing: the kernel is the referee.
//!
//! Small dynamic and static test programs get their ELF header and program header table mutated
//! (seeded, reproducible); each mutant is run directly (execve from a fork: the kernel's verdict)
//! and through `preload --verbose`, both without address randomisation, and the pair is
//! classified. Failures are: preload dying of a signal (or hanging, or exiting with anything but a
//! one-line 126/127 refusal) before the program starts; the kernel running a mutant to a normal
//! exit while preload refuses it or gets a different result; preload running something the kernel
//! refuses. The differences README.md documents as deliberate are named classes here.
//!
//! CI runs a bounded number; the long run is
//!
//!     PRELOAD_MUTANTS=20000 PRELOAD_MUTANTS_SEED=1 nice cargo test --release --test mutants -- --nocapture
//!
//! It prints the seed and the count per class; failing mutants are kept (with the command lines
//! to reproduce them) in the scratch directory it names.

mod common;

use common::elf::*;
use common::{Scratch, Variant, build_c, preload, render_status};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Mutants in a CI run: about 30 s on two cores.
const CI_MUTANTS: usize = 1500;
const DEFAULT_SEED: u64 = 0x5eed_f00d;
/// A mutant that runs longer than this (an entry point in a loop) counts as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(5);
/// Output beyond this is drained and dropped.
const OUTPUT_CAP: usize = 1 << 20;
/// The line preload --verbose prints right before it jumps to the program.
const STARTED: &str = "preload: interpreter base ";

unsafe extern "C" {
    fn personality(persona: u64) -> i32;
    fn setrlimit(resource: i32, limit: *const [u64; 2]) -> i32;
}
const ADDR_NO_RANDOMIZE: u64 = 0x0040000;
const RLIMIT_CORE: i32 = 4;

/// splitmix64: tiny, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ending {
    /// execve itself failed with this errno.
    Refused(i32),
    Exit(i32),
    Signal(i32),
    Hung,
}

#[derive(Debug)]
struct Run {
    ending: Ending,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            let room = OUTPUT_CAP.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

/// Runs `argv` in `dir` (a mutant may create files wherever it runs) with an empty environment,
/// stdin from /dev/null, no address randomisation (unless `randomize`) and no core dumps; kills it after
/// [`RUN_TIMEOUT`]. The child calls execve itself: std would use execvp, whose ENOEXEC fallback
/// to /bin/sh would hide the kernel's verdict.
fn run(dir: &Path, argv: &[&std::ffi::OsStr], randomize: bool) -> Run {
    let mut cmd = Command::new(argv[0]);
    cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let setup = move || {
        // SAFETY: plain system calls on a constant and a local array.
        unsafe {
            personality(if randomize { 0 } else { ADDR_NO_RANDOMIZE });
            setrlimit(RLIMIT_CORE, &[0, 0]);
        }
    };
    // SAFETY: personality and setrlimit are async-signal-safe system calls.
    unsafe { common::execve_in_child(&mut cmd, argv, setup) };
    let mut child = match common::spawn(&mut cmd) {
        Ok(child) => child,
        Err(e) => {
            return Run {
                ending: Ending::Refused(e.raw_os_error().unwrap_or(-1)),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
        }
    };
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut hung = false;
    let status = loop {
        match child.try_wait().expect("wait for a mutant") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                hung = true;
                let _ = child.kill();
                break child.wait().expect("wait for a killed mutant");
            }
            None => thread::sleep(Duration::from_micros(500)),
        }
    };
    let ending = match (hung, status.code(), status.signal()) {
        (true, _, _) => Ending::Hung,
        (false, Some(code), _) => Ending::Exit(code),
        (false, None, Some(signal)) => Ending::Signal(signal),
        _ => panic!("wait status {status:?}"),
    };
    Run { ending, stdout: stdout.join().expect("stdout reader"), stderr: stderr.join().expect("stderr reader") }
}

/// What preload's side of a pair says about itself.
struct Preloaded<'a> {
    started: bool,
    /// preload's own one-line refusal, if that is how it ended.
    refusal: Option<&'a str>,
    /// The program's stderr, after preload's --verbose lines.
    program_stderr: &'a [u8],
}

fn preloaded(run: &Run) -> Preloaded<'_> {
    let text = &run.stderr;
    let started_at = text.windows(STARTED.len()).position(|w| w == STARTED.as_bytes());
    match started_at {
        Some(at) => {
            // The started line, then the line about /proc/self/exe, then the program's stderr.
            let mut rest = &text[at..];
            for _ in 0..2 {
                rest = rest.iter().position(|&b| b == b'\n').map_or(&[][..], |nl| &rest[nl + 1..]);
            }
            Preloaded { started: true, refusal: None, program_stderr: rest }
        }
        None => {
            let last = text.strip_suffix(b"\n").unwrap_or(text);
            let line = last.rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
            let refused = matches!(run.ending, Ending::Exit(126 | 127))
                && line.starts_with(b"preload: ")
                && text.ends_with(b"\n");
            Preloaded {
                started: false,
                refusal: refused.then(|| std::str::from_utf8(line).unwrap_or("(not UTF-8)")),
                program_stderr: &[],
            }
        }
    }
}

/// The differences README.md documents, recognised by preload's reason.
const DELIBERATE: [(&str, &str); 1] =
    [("overlaps memory the preloader holds", "a fixed-address segment over the preloader's own memory is refused")];

const SIGSEGV: i32 = 11;
const SIGBUS: i32 = 7;
const SIGKILL: i32 = 9;

/// A program that ran differently under preload, and that depends on what lies outside its image
/// (README: Layout): its direct runs differ between address layouts, or a segment that the C
/// library uses at run time lies outside every PT_LOAD.
const LAYOUT_DEPENDENT: &str = "both ran, differently, depending on memory outside the image";

/// Whether the entry point, or a segment the run-time uses (dynamic section, notes, TLS, RELRO,
/// properties, program headers, unwind table, and PT_INTERP, whose string glibc's ld.so reads
/// at p_vaddr to know its own name), lies outside every PT_LOAD in memory.
fn uses_memory_outside_its_image(elf: &Elf) -> bool {
    let entries: Vec<(u64, u64, u64)> = (0..elf.phnum())
        .map(|i| elf.ph(i))
        .map(|at| (elf.field(at, P_TYPE), elf.field(at, P_VADDR), elf.field(at, P_MEMSZ)))
        .collect();
    let loads: Vec<(u64, u64)> = entries
        .iter()
        .filter(|e| e.0 == u64::from(PT_LOAD))
        .map(|&(_, vaddr, memsz)| (vaddr, vaddr.saturating_add(memsz)))
        .collect();
    let used =
        [PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_TLS, PT_PHDR, PT_GNU_RELRO, PT_GNU_PROPERTY, 0x6474_e550].map(u64::from);
    let inside = |vaddr: u64, end: u64| loads.iter().any(|&(start, stop)| start <= vaddr && end <= stop);
    // An entry point outside every PT_LOAD jumps into whatever lies beside the image: nothing
    // under the kernel, the preloader's leftover pages under preload (README: Layout).
    let entry = elf.field(0, E_ENTRY);
    !inside(entry, entry.saturating_add(1))
        || entries
            .iter()
            .filter(|e| used.contains(&e.0) && e.2 > 0)
            .any(|&(_, vaddr, memsz)| !inside(vaddr, vaddr.saturating_add(memsz)))
}

fn same_result(a: &Run, b: &Run) -> bool {
    a.ending == b.ending && a.stdout == b.stdout && a.stderr == b.stderr
}

/// The class of a pair; `Err` for a failure.
fn classify(direct: &Run, through: &Run) -> Result<&'static str, String> {
    let p = preloaded(through);
    if !p.started && p.refusal.is_none() {
        return Err(format!("preload ended with {:?} before the program started", through.ending));
    }
    if let (Some(reason), false) = (p.refusal, matches!(direct.ending, Ending::Refused(_)))
        && let Some((_, class)) = DELIBERATE.iter().find(|(needle, _)| reason.contains(needle))
    {
        return Ok(class);
    }
    match (&direct.ending, p.refusal) {
        (Ending::Refused(_), Some(_)) => Ok("both refused"),
        (Ending::Refused(errno), None) => Err(format!("the kernel refused (errno {errno}) but preload ran it")),
        // After execve's point of no return the kernel kills the process for what preload
        // refuses with a reason (README: malformed segments).
        (Ending::Signal(SIGSEGV | SIGBUS | SIGKILL), Some(_)) => {
            Ok("kernel killed it, preload refused (deliberate: malformed segments)")
        }
        (_, Some(reason)) => Err(format!("the kernel ran it ({:?}) but preload refused: {reason}", direct.ending)),
        (Ending::Exit(_), None) => {
            if direct.ending == through.ending && direct.stdout == through.stdout && direct.stderr == p.program_stderr {
                Ok("same exit and output")
            } else {
                Err("both ran, with different results".into())
            }
        }
        (Ending::Signal(a), None) if through.ending == Ending::Signal(*a) => Ok("same signal"),
        (Ending::Hung, None) if through.ending == Ending::Hung => Ok("both hung"),
        // A mutated entry point jumps into whatever lies next to the image, which differs
        // (the interpreter, vDSO and a static-pie are placed differently): not a failure.
        (Ending::Signal(_) | Ending::Hung, None) if matches!(through.ending, Ending::Signal(_) | Ending::Hung) => {
            Ok("both started and crashed, differently")
        }
        (Ending::Signal(_) | Ending::Hung, None) => Err("the kernel's run crashed, preload's did not".into()),
    }
}

/// What the mutations draw from.
struct Pool {
    /// Addresses of the stack, vDSO, vvar, the preloader's pages and the interpreter, as the
    /// program sees them under preload without randomisation.
    landmarks: Vec<u64>,
    /// PT_INTERP candidates: real interpreters, preload itself, programs with their own
    /// PT_INTERP, static programs, a directory, missing and odd paths.
    interpreters: Vec<Vec<u8>>,
}

fn interesting(rng: &mut Rng, old: u64, pool: &Pool, file_len: u64) -> u64 {
    match rng.below(16) {
        0 => 0,
        1 => old.wrapping_add(rng.pick(&[1, 8, PAGE, 0x10000, 0x20_0000])),
        2 => old.wrapping_sub(rng.pick(&[1, 8, PAGE, 0x10000, 0x20_0000])),
        3 => old ^ (1 << rng.below(64)),
        4 => old.wrapping_mul(2),
        5 => old / 2,
        // The x86_64 and compat (i386) TASK_SIZEs and their edges; a 32-bit field keeps the low half.
        6 => rng.pick(&[
            u64::MAX,
            1 << 47,
            (1 << 47) - PAGE,
            0x7fff_ffff_f000,
            1 << 63,
            u32::MAX as u64,
            0xffff_e000,
            0xffff_d000,
            0xc000_0000,
        ]),
        7 => rng.below(1 << 24),
        8 | 9 => {
            let landmark = rng.pick(&pool.landmarks);
            // As is (for ET_EXEC) or relative to the unrandomised PIE base.
            landmark.wrapping_sub(rng.pick(&[0, 0x5555_5555_4000])).wrapping_add(rng.pick(&[
                0,
                PAGE,
                PAGE.wrapping_neg(),
            ]))
        }
        10 => file_len.wrapping_add(rng.pick(&[0, 1, u64::MAX, PAGE])),
        11 => rng.below(1 << 20) * PAGE,
        12 => old.wrapping_add(rng.below(PAGE)),
        _ => rng.next(),
    }
}

/// A p_type, biased to the ones loaders act on.
fn p_type(rng: &mut Rng) -> u64 {
    u64::from(rng.pick(&[
        PT_NULL,
        PT_LOAD,
        PT_LOAD,
        PT_DYNAMIC,
        PT_INTERP,
        PT_NOTE,
        PT_PHDR,
        PT_TLS,
        PT_GNU_STACK,
        PT_GNU_RELRO,
        PT_GNU_PROPERTY,
        0x7000_0000,
    ]))
}

/// Apply one mutation; returns its description.
fn mutate(elf: &mut Elf, rng: &mut Rng, pool: &Pool) -> String {
    let file_len = elf.bytes.len() as u64;
    match rng.below(20) {
        0..=5 => {
            let n = elf.phnum() as u64;
            let r = rng.below(1 << 16);
            // 73 and 74: the one-page limit of 64-bit tables before 6.17; 128 and 129 of
            // 32-bit ones; 2048 and 2049 the 64 KiB limit of 32-bit tables.
            let counts = [0, 1, n.saturating_sub(1), n + 1, 73, 74, 128, 129, 1170, 1171, 2048, 2049, 0xffff, r];
            let (name, field, v) = match rng.below(6) {
                0 => ("e_type", E_TYPE, rng.pick(&[0, 1, 2, 3, 4, 0xfe00, r])),
                1 => ("e_machine", E_MACHINE, rng.pick(&[0, 3, 6, 62, 40, 183, 0x3e3e, r])),
                2 => ("e_phentsize", E_PHENTSIZE, rng.pick(&[0, 31, 32, 33, 55, 56, 57, 64, r])),
                3 => ("e_phnum", E_PHNUM, rng.pick(&counts)),
                4 => ("e_phoff", E_PHOFF, interesting(rng, elf.field(0, E_PHOFF), pool, file_len)),
                _ => ("e_entry", E_ENTRY, interesting(rng, elf.field(0, E_ENTRY), pool, file_len)),
            };
            elf.set_field(0, field, v);
            format!("{name}={v:#x}")
        }
        6..=11 => {
            let index = rng.below(elf.phnum() as u64) as usize;
            let at = elf.ph(index);
            let (name, field) = rng.pick(&[
                ("p_type", P_TYPE),
                ("p_flags", P_FLAGS),
                ("p_offset", P_OFFSET),
                ("p_vaddr", P_VADDR),
                ("p_filesz", P_FILESZ),
                ("p_memsz", P_MEMSZ),
                ("p_align", P_ALIGN),
            ]);
            let old = elf.field(at, field);
            let r = rng.next();
            let v = match name {
                "p_type" => p_type(rng),
                "p_flags" => rng.pick(&[0, 1, 2, 3, 4, 5, 6, 7, r & 0xffff_ffff]),
                "p_align" => rng.pick(&[0, 1, 3, 8, PAGE, 0x10000, 0x20_0000, 0x30_0000, 1 << 30, 1 << 40, r]),
                _ => interesting(rng, old, pool, file_len),
            };
            elf.set_field(at, field, v);
            format!("phdr[{index}].{name}={v:#x}")
        }
        12 | 13 => {
            let path = pool.interpreters[rng.below(pool.interpreters.len() as u64) as usize].clone();
            let mut bytes = path.clone();
            bytes.push(0);
            let at = elf.append(&bytes, 1);
            let slot = match elf.find(PT_INTERP) {
                Some(slot) => slot,
                None => {
                    // Turn some other entry into a PT_INTERP.
                    let slot = elf.ph(rng.below(elf.phnum() as u64) as usize);
                    if elf.get(slot, 4) == u64::from(PT_LOAD) {
                        return "PT_INTERP (no slot)".into();
                    }
                    elf.set(slot, 4, u64::from(PT_INTERP));
                    slot
                }
            };
            let size = bytes.len() as u64;
            let size = match rng.below(6) {
                0 => size - 1,
                1 => size + rng.below(3),
                _ => size,
            };
            elf.set_field(slot, P_OFFSET, at as u64);
            elf.set_field(slot, P_FILESZ, size);
            format!("PT_INTERP={:?} size {size}", String::from_utf8_lossy(&path))
        }
        14 => {
            // A PT_LOAD copied over another entry, maybe shifted: overlapping segments.
            let loads: Vec<usize> = (0..elf.phnum()).filter(|&i| elf.get(elf.ph(i), 4) == u64::from(PT_LOAD)).collect();
            if loads.is_empty() {
                return "duplicate (no PT_LOAD)".into();
            }
            let from = rng.pick(&loads);
            let to = rng.below(elf.phnum() as u64) as usize;
            let (src, dst, size) = (elf.ph(from), elf.ph(to), elf.phdr_size());
            let Some(entry) = elf.bytes.get(src..src + size).map(<[u8]>::to_vec) else {
                return "duplicate (out of file)".into();
            };
            if let Some(target) = elf.bytes.get_mut(dst..dst + size) {
                target.copy_from_slice(&entry);
            }
            let shift = rng.pick(&[0, PAGE, 2 * PAGE, PAGE.wrapping_neg()]);
            elf.set_field(dst, P_VADDR, elf.field(dst, P_VADDR).wrapping_add(shift));
            elf.set_field(dst, P_OFFSET, elf.field(dst, P_OFFSET).wrapping_add(shift));
            let flags = rng.pick(&[elf.field(dst, P_FLAGS), 0, 4, 6]);
            elf.set_field(dst, P_FLAGS, flags);
            format!("phdr[{to}]=phdr[{from}] shifted {shift:#x} flags {flags}")
        }
        15 => {
            let (a, b) = (rng.below(elf.phnum() as u64) as usize, rng.below(elf.phnum() as u64) as usize);
            let (pa, pb, size) = (elf.ph(a), elf.ph(b), elf.phdr_size());
            if pa.max(pb) + size <= elf.bytes.len() && pa != pb {
                for k in 0..size {
                    elf.bytes.swap(pa + k, pb + k);
                }
            }
            format!("swap phdr[{a}] phdr[{b}]")
        }
        16 => {
            let len = match rng.below(3) {
                0 => rng.below(elf.bytes.len().min(4096) as u64),
                1 => elf.bytes.len() as u64 - 1 - rng.below(64).min(elf.bytes.len() as u64 - 1),
                _ => rng.below(elf.bytes.len() as u64),
            };
            elf.bytes.truncate(len as usize);
            format!("truncate to {len}")
        }
        17 => grow_table(elf, rng),
        _ => {
            let end = elf.phoff().saturating_add(elf.phnum() * elf.phdr_size()).min(elf.bytes.len());
            let at = if rng.below(2) == 0 { rng.below(64) as usize } else { rng.below(end as u64) as usize };
            let bit = rng.below(8);
            if let Some(byte) = elf.bytes.get_mut(at) {
                *byte ^= 1 << bit;
            }
            format!("flip bit {bit} of byte {at}")
        }
    }
}

/// The program header table moved to the end of the file and grown to a count around the
/// kernel's limits, with PT_NULL entries or tiny extra PT_LOADs.
fn grow_table(elf: &mut Elf, rng: &mut Rng) -> String {
    let count = if elf.is_elf32() {
        rng.pick(&[elf.phnum() + 2, 40, 127, 128, 129, 200, 2047, 2048, 2049])
    } else {
        rng.pick(&[elf.phnum() + 2, 40, 64, 73, 74, 200, 1169, 1170, 1171])
    };
    let extra_loads = rng.below(2) == 0;
    let table_size = (count * elf.phdr_size()) as u64;
    let first = elf.end_of_image() + 16 * PAGE + table_size.next_multiple_of(PAGE) + PAGE;
    let extra: Vec<Phdr> = if extra_loads {
        (0..count as u64).map(|i| Phdr::load(6, 0, first + 2 * PAGE * i, 0, 16)).collect()
    } else {
        Vec::new()
    };
    let at = elf.move_table(&extra, count);
    format!("table moved to {at:#x} with {count} entries ({})", if extra_loads { "extra PT_LOADs" } else { "PT_NULL" })
}

/// Addresses of what the program shares its address space with under preload.
fn landmarks(scratch: &Scratch) -> Vec<u64> {
    let cat = scratch.copy(Path::new("/bin/cat"), "cat", 0o755);
    let maps = run(scratch.path(), &[preload().as_os_str(), cat.as_os_str(), "/proc/self/maps".as_ref()], false);
    assert_eq!(
        maps.ending,
        Ending::Exit(0),
        "scenario check: preload cat /proc/self/maps: {}",
        String::from_utf8_lossy(&maps.stderr)
    );
    let text = String::from_utf8_lossy(&maps.stdout);
    let mut found: Vec<u64> = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|range| range.split_once('-'))
        .flat_map(|(a, b)| [a, b])
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .collect();
    assert!(
        text.contains("[vdso]") && text.contains("[stack]"),
        "scenario check: maps name the vDSO and stack:\n{text}"
    );
    found.sort_unstable();
    found.dedup();
    found
}

fn count_from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

struct Base {
    name: String,
    bytes: Vec<u8>,
}

#[test]
fn mutants_behave_as_under_the_kernel() {
    let total = count_from_env("PRELOAD_MUTANTS", CI_MUTANTS as u64) as usize;
    let seed = count_from_env("PRELOAD_MUTANTS_SEED", DEFAULT_SEED);
    println!("mutants: {total} with seed {seed} (PRELOAD_MUTANTS, PRELOAD_MUTANTS_SEED)");
    let scratch = Scratch::new("mutants");
    // The i386 programs are mutated at their own (ELFCLASS32) field offsets, each judged against
    // the kernel's IA32 emulation.
    let variants = [
        Variant::Static,
        Variant::Pie,
        Variant::NoPie,
        Variant::StaticPie,
        Variant::MuslStatic,
        Variant::MuslDynamic,
        Variant::I386Static,
        Variant::I386StaticPie,
        Variant::I386Pie,
    ];
    let mut bases: Vec<Base> = variants
        .iter()
        .map(|&v| Base {
            name: v.name().into(),
            bytes: std::fs::read(build_c("hello", v)).expect("read a test program"),
        })
        .collect();
    bases.push(Base { name: "i386".into(), bytes: i386_exit_42() });
    let true_copy = scratch.copy(Path::new("/bin/true"), "true", 0o755);
    let os = |p: &Path| p.as_os_str().as_encoded_bytes().to_vec();
    let pool = Pool {
        landmarks: landmarks(&scratch),
        interpreters: vec![
            b"/lib64/ld-linux-x86-64.so.2".to_vec(),
            b"/lib/ld-linux.so.2".to_vec(),
            b"/lib/ld-musl-x86_64.so.1".to_vec(),
            os(preload()),
            os(&true_copy),
            os(&build_c("hello", Variant::Static)),
            os(&build_c("hello", Variant::StaticPie)),
            b"/".to_vec(),
            b"/nonexistent/ld.so".to_vec(),
            b"".to_vec(),
            b"/bin/sh".to_vec(),
            b"relative/ld.so".to_vec(),
        ],
    };

    let next = AtomicUsize::new(0);
    let counts: Mutex<BTreeMap<&'static str, usize>> = Mutex::default();
    let failures: Mutex<Vec<String>> = Mutex::default();
    let workers = thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let started = Instant::now();
    let (progress, progress_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        for _ in 0..workers {
            let progress = progress.clone();
            s.spawn(|| {
                let progress = progress;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    rng.next();
                    let base = &bases[rng.below(bases.len() as u64) as usize];
                    let mut elf = Elf { bytes: base.bytes.clone() };
                    let mutations: Vec<String> =
                        (0..1 + rng.below(3)).map(|_| mutate(&mut elf, &mut rng, &pool)).collect();
                    let name = format!("m{index}-{}", base.name);
                    let path = scratch.write(&name, &elf.bytes, 0o755);
                    let direct = run(scratch.path(), &[path.as_os_str()], false);
                    let through =
                        run(scratch.path(), &[preload().as_os_str(), "--verbose".as_ref(), path.as_os_str()], false);
                    let layout_dependent = || {
                        uses_memory_outside_its_image(&elf)
                            || (0..3).any(|_| !same_result(&direct, &run(scratch.path(), &[path.as_os_str()], true)))
                    };
                    match classify(&direct, &through).or_else(|why| {
                        if preloaded(&through).started && layout_dependent() { Ok(LAYOUT_DEPENDENT) } else { Err(why) }
                    }) {
                        Ok(class) => {
                            *counts.lock().unwrap().entry(class).or_default() += 1;
                            let _ = std::fs::remove_file(&path);
                        }
                        Err(why) => {
                            *counts.lock().unwrap().entry("FAILURE").or_default() += 1;
                            failures
                                .lock()
                                .unwrap()
                                .push(describe_failure(index, &base.name, &mutations, &path, &why, &direct, &through));
                        }
                    }
                    let _ = progress.send(());
                }
            });
        }
        drop(progress);
        let mut done = 0;
        while progress_rx.recv().is_ok() {
            done += 1;
            if done % 1000 == 0 {
                println!("  {done} mutants in {:.0?}", started.elapsed());
            }
        }
    });

    let counts = counts.into_inner().unwrap();
    let mut summary = format!("{total} mutants (seed {seed}) in {:.1?}:\n", started.elapsed());
    for (class, n) in &counts {
        let _ = writeln!(summary, "  {n:6}  {class}");
    }
    println!("{summary}");
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures; mutants kept in {} (the scratch directory survives a failed test)\n{}\n{summary}",
        failures.len(),
        scratch.path().display(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(counts.values().sum::<usize>(), total, "every mutant is classified");
}

fn describe_failure(
    index: usize,
    base: &str,
    mutations: &[String],
    path: &Path,
    why: &str,
    direct: &Run,
    through: &Run,
) -> String {
    let ending = |run: &Run| match &run.ending {
        Ending::Exit(_) | Ending::Signal(_) => render_status(std::process::ExitStatus::from_raw(match run.ending {
            Ending::Exit(c) => c << 8,
            Ending::Signal(s) => s,
            _ => 0,
        })),
        other => format!("{other:?}"),
    };
    format!(
        "mutant {index} of {base} [{}]: {why}\n  file: {}\n  direct: {}\n  preload: {}, stderr: {}",
        mutations.join("; "),
        path.display(),
        ending(direct),
        ending(through),
        common::escape(&through.stderr[through.stderr.len().saturating_sub(400)..])
    )
}
