//! Real Wine (Debian's 8.0) through preload: wine64 from outside Wine's directory, and with
//! preload installed as `wine64-preloader` so that Wine re-execs every process through it; the
//! i386 `wine` (wine32:i386) with preload installed as `wine-preloader`, compared with Wine's own
//! i386 preloader.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::RwLock;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Scratch, render_status, require_tool};

const WINE64: &str = "/usr/lib/wine/wine64";
const WINE: &str = "/usr/lib/wine/wine";
/// Wine's own i386 preloader (package wine32-preloader:i386), the oracle of the i386 test.
const WINE_PRELOADER: &str = "/usr/lib/wine/wine-preloader.static";
const WINESERVER: &str = "/usr/lib/wine/wineserver";

/// The 64-bit tests run side by side; the i386 one alone, so that its runs (which read the
/// wine process's maps at one moment) and the others' timeouts are not loaded by each other.
static ALONE: RwLock<()> = RwLock::new(());

/// Runs `command` headless in a fresh prefix under `scratch`, waits for its wineserver to exit,
/// and returns the output.
fn run_wine(scratch: &Scratch, mut command: Command) -> Output {
    assert!(Path::new(WINE64).is_file(), "{WINE64} is missing: scripts/test.sh installs Debian's wine64");
    let prefix = scratch.path().join("prefix");
    command.env("WINEPREFIX", &prefix).env("WINEDEBUG", "-all").env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    command.current_dir(env!("CARGO_MANIFEST_DIR")).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = common::run(command, None, "wine");
    let waited = common::output(Command::new(WINESERVER).arg("-w").env("WINEPREFIX", &prefix)).status;
    assert!(waited.success(), "wineserver -w failed");
    output
}

fn assert_hello(output: &Output) {
    assert_says(output, b"hello\r\n", "wine");
}

/// Asserts that the run `what` succeeded with exactly `expected` on stdout.
fn assert_says(output: &Output, expected: &[u8], what: &str) {
    assert!(
        output.status.success() && output.stdout == expected,
        "{what}: {}, stdout {:?}, stderr:\n{}",
        render_status(output.status),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn wine64_runs_through_preload_from_outside_its_directory() {
    let _shared = ALONE.read().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("wine-direct");
    let mut command = Command::new(common::preload());
    command.args([WINE64, "cmd", "/c", "echo", "hello"]);
    assert_hello(&run_wine(&scratch, command));
}

#[test]
fn preload_as_wine64_preloader_runs_every_wine_process() {
    let _shared = ALONE.read().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("wine-preloader");
    let bin = wine_tree(&scratch, "root", &X86_64, common::preload());
    let trace = scratch.path().join("execs");
    let mut command = Command::new(require_tool("strace"));
    command
        .args(["-f", "--seccomp-bpf", "-qq", "-e", "trace=execve", "-o"])
        .arg(&trace)
        .arg(&bin)
        .args(["cmd", "/c", "echo", "hello"]);
    assert_hello(&run_wine(&scratch, command));

    // Every Wine process (the loader, wineboot, start.exe, cmd.exe...) went through preload.
    let execs = std::fs::read_to_string(&trace).expect("strace output");
    let calls = common::strace::parse(&execs);
    let exec_of = |call: &common::strace::Call| {
        let path = call.args.first().map(|arg| common::strace::quoted_bytes(arg)).unwrap_or_default();
        (call.name == "execve" && call.value() == Some(0)).then(|| String::from_utf8_lossy(&path).into_owned())
    };
    let through_preload = calls.iter().filter_map(exec_of).filter(|path| path.ends_with("/wine64-preloader")).count();
    let direct_wine64 = calls.iter().filter_map(exec_of).filter(|path| path.ends_with("/lib/wine/wine64")).count();
    assert!(through_preload >= 3, "only {through_preload} processes ran through wine64-preloader:\n{execs}");
    assert_eq!(direct_wine64, 1, "only the first wine64 may be exec'd directly:\n{execs}");
}

/// Wine 8.0's i386 ranges as its preloader reserves them (the low 64 KiB only with
/// CAP_SYS_RAWIO, so compared, not required), and the WINEPRELOADRESERVE range the test sets.
const I386_RANGES: [(u64, u64); 3] = [(0x1_0000, 0x11_0000), (0x11_0000, 0x6800_0000), (0x7f00_0000, 0x8200_0000)];
const I386_RESERVE: (u64, u64) = (0x7000_0000, 0x7010_0000);

/// One side of Wine: its loader, the name it execs its preloader by, and the multiarch
/// directory of its ntdll.so and DLLs.
struct WineAbi {
    loader: &'static str,
    preloader: &'static str,
    triplet: &'static str,
}

const X86_64: WineAbi = WineAbi { loader: WINE64, preloader: "wine64-preloader", triplet: "x86_64-linux-gnu" };
const I386: WineAbi = WineAbi { loader: WINE, preloader: "wine-preloader", triplet: "i386-linux-gnu" };

/// The tree Wine 8.0 expects, under `name`, with `preloader` as the ABI's preloader:
/// <root>/lib/wine/{LOADER,PRELOADER,wineserver}, <root>/lib/TRIPLET/wine (ntdll.so and the
/// DLLs), <root>/share/wine. Returns the loader's path.
fn wine_tree(scratch: &Scratch, name: &str, abi: &WineAbi, preloader: &Path) -> PathBuf {
    let root = scratch.path().join(name);
    let loader_name = Path::new(abi.loader).file_name().expect("a file name").to_string_lossy();
    let loader = scratch.copy(Path::new(abi.loader), &format!("{name}/lib/wine/{loader_name}"), 0o755);
    scratch.copy(preloader, &format!("{name}/lib/wine/{}", abi.preloader), 0o755);
    std::fs::create_dir_all(root.join("lib").join(abi.triplet)).expect("mkdir");
    std::fs::create_dir_all(root.join("share")).expect("mkdir");
    let dlls = format!("/usr/lib/{}/wine", abi.triplet);
    for (target, link) in [
        (WINESERVER, "lib/wine/wineserver".to_string()),
        (&dlls, format!("lib/{}/wine", abi.triplet)),
        ("/usr/share/wine", "share/wine".to_string()),
    ] {
        symlink(target, root.join(link)).expect("symlink");
    }
    loader
}

/// A run of tests/c/win32_wait.c: its exit, output, and the wine process's /proc/PID/maps
/// read while the program waited for its input.
struct WaitRun {
    output: Output,
    maps: String,
}

/// Runs `wine exe` in the 32-bit prefix `prefix` (WINEPRELOADRESERVE set to [`I386_RESERVE`]),
/// reads the process's maps once the program has printed its line (Wine execs its preloader in
/// the same process), then ends its input and waits for it and its wineserver.
fn run_waiting(wine: &Path, exe: &Path, prefix: &Path) -> WaitRun {
    let mut command = Command::new(wine);
    command
        .arg(exe)
        .env("WINEPREFIX", prefix)
        .env("WINEARCH", "win32")
        .env("WINEDEBUG", "-all")
        .env("WINEPRELOADRESERVE", format!("{:x}-{:x}", I386_RESERVE.0, I386_RESERVE.1))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = common::spawn(&mut command).expect("cannot start wine");
    let pid = child.id().to_string();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let timed_out = finished.recv_timeout(Duration::from_secs(90)).is_err();
        if timed_out {
            let _ = common::output(Command::new("/bin/kill").args(["-KILL", &pid]));
        }
        timed_out
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read wine's stdout");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap_or_default();
    drop(child.stdin.take());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("read wine's stdout");
    let mut stderr = Vec::new();
    child.stderr.take().expect("stderr is piped").read_to_end(&mut stderr).expect("read wine's stderr");
    let status = child.wait().expect("wait for wine");
    let _ = done.send(());
    assert!(!watchdog.join().expect("watchdog thread"), "wine did not finish within 90 s and was killed");
    let waited = common::output(Command::new(WINESERVER).arg("-w").env("WINEPREFIX", prefix)).status;
    assert!(waited.success(), "wineserver -w failed");
    WaitRun { output: Output { status, stdout: [first.into_bytes(), rest].concat(), stderr }, maps }
}

/// The mappings of `maps` cut to `range`, as `start-end perms` (names left out: user shared data
/// is a per-run temporary file).
fn mappings_in(maps: &str, range: (u64, u64)) -> Vec<String> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (span, perms) = (fields.next()?, fields.next()?);
            let (start, end) = span.split_once('-')?;
            let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
            let (start, end) = (start.max(range.0), end.min(range.1));
            (start < end).then(|| format!("{start:x}-{end:x} {perms}"))
        })
        .collect()
}

/// Whether the mappings of `maps` cover `range` without a hole.
fn covered(maps: &str, range: (u64, u64)) -> bool {
    let mut next = range.0;
    for line in mappings_in(maps, (0, u64::MAX)) {
        let (start, end) = line.split_once(' ').and_then(|(span, _)| span.split_once('-')).expect("a span");
        let (start, end) = (u64::from_str_radix(start, 16).expect("hex"), u64::from_str_radix(end, 16).expect("hex"));
        if start <= next && next < end {
            next = end;
        }
    }
    next >= range.1
}

#[test]
fn preload_as_wine_preloader_runs_i386_wine_as_wines_own_preloader_does() {
    let _alone = ALONE.write().unwrap_or_else(|e| e.into_inner());
    for (path, package) in [(WINE, "wine32:i386"), (WINE_PRELOADER, "wine32-preloader:i386"), (WINESERVER, "wine")] {
        assert!(Path::new(path).is_file(), "{path} is missing: scripts/test.sh installs {package}");
    }
    let scratch = Scratch::new("wine-i386");
    // Large-address-aware: Wine keeps every range reserved for it (for other programs it frees
    // what lies between 0x20000000 and 0x7f000000, the WINEPRELOADRESERVE range included).
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/win32_wait.c");
    let exe = scratch.path().join("wait.exe");
    let compiled = common::output(
        Command::new(require_tool("i686-w64-mingw32-gcc"))
            .args(["-O2", "-Wall", "-Werror", "-Wl,--large-address-aware", "-o"])
            .arg(&exe)
            .arg(&source),
    );
    assert!(compiled.status.success(), "i686-w64-mingw32-gcc failed: {}", String::from_utf8_lossy(&compiled.stderr));
    let through_preload = wine_tree(&scratch, "preload", &I386, common::preload());
    let through_wine = wine_tree(&scratch, "wine", &I386, Path::new(WINE_PRELOADER));
    let prefix = scratch.path().join("prefix");

    // The prefix is made through preload: wineboot and the services Wine starts for it run
    // through the tree's wine-preloader too. Then one run through each preloader, compared.
    let first = run_waiting(&through_preload, &exe, &prefix);
    let runs = [run_waiting(&through_preload, &exe, &prefix), run_waiting(&through_wine, &exe, &prefix)];
    for (run, what) in [(&first, "first (new prefix)"), (&runs[0], "preload"), (&runs[1], "Wine's preloader")] {
        assert_says(&run.output, b"hello from i386 Windows\r\n", what);
    }
    let [preloaded, own] = &runs;
    // Which preloader ran: Wine's stays mapped; preload leaves none of its file mapped.
    assert!(own.maps.contains("/wine/wine-preloader"), "Wine's preloader is not mapped:\n{}", own.maps);
    assert!(!preloaded.maps.contains("wine-preloader"), "preload's file is still mapped:\n{}", preloaded.maps);
    let low = (0, I386_RANGES[1].1);
    for range in [low, I386_RESERVE, I386_RANGES[2]] {
        assert_eq!(
            mappings_in(&preloaded.maps, range),
            mappings_in(&own.maps, range),
            "the mappings in {:#x}-{:#x} differ (left through preload, right through Wine's preloader)",
            range.0,
            range.1
        );
    }
    // The difference (README, TIF_ADDR32): through preload a 32-bit mapping at a fixed address
    // may end at 4 GiB, as Wine's reservation around its stack does, which a compat exec's
    // TASK_SIZE (0xffffe000) refuses.
    let ends_at_4_gib =
        |maps: &str| maps.lines().any(|line| line.split(' ').next().is_some_and(|span| span.ends_with("-100000000")));
    assert!(!ends_at_4_gib(&own.maps), "a mapping ends at 4 GiB through Wine's preloader:\n{}", own.maps);
    assert!(ends_at_4_gib(&preloaded.maps), "no mapping ends at 4 GiB through preload:\n{}", preloaded.maps);
    for range in I386_RANGES.into_iter().chain([I386_RESERVE]) {
        assert!(covered(&own.maps, range), "{range:x?} is not reserved through Wine's preloader:\n{}", own.maps);
        assert!(covered(&preloaded.maps, range), "{range:x?} is not reserved through preload:\n{}", preloaded.maps);
    }
}
