//! Real Wine (Debian's wine64 8.0) through preload: from outside Wine's directory, and with
//! preload installed as `wine64-preloader` so that Wine re-execs every process through it.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Scratch, render_status, require_tool};

const WINE64: &str = "/usr/lib/wine/wine64";
const WINESERVER: &str = "/usr/lib/wine/wineserver";

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
    assert!(
        output.status.success() && output.stdout == b"hello\r\n",
        "wine: {}, stdout {:?}, stderr:\n{}",
        render_status(output.status),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn wine64_runs_through_preload_from_outside_its_directory() {
    let scratch = Scratch::new("wine-direct");
    let mut command = Command::new(common::preload());
    command.args([WINE64, "cmd", "/c", "echo", "hello"]);
    assert_hello(&run_wine(&scratch, command));
}

#[test]
fn preload_as_wine64_preloader_runs_every_wine_process() {
    // The layout Wine 8.0 expects: <root>/lib/wine/{wine64,wine64-preloader,wineserver},
    // <root>/lib/x86_64-linux-gnu/wine (ntdll.so and the DLLs), <root>/share/wine.
    let scratch = Scratch::new("wine-preloader");
    let root = scratch.path().join("root");
    let bin = scratch.copy(Path::new(WINE64), "root/lib/wine/wine64", 0o755);
    scratch.copy(common::preload(), "root/lib/wine/wine64-preloader", 0o755);
    std::fs::create_dir_all(root.join("lib/x86_64-linux-gnu")).expect("mkdir");
    std::fs::create_dir_all(root.join("share")).expect("mkdir");
    for (target, link) in [
        (WINESERVER, "lib/wine/wineserver"),
        ("/usr/lib/x86_64-linux-gnu/wine", "lib/x86_64-linux-gnu/wine"),
        ("/usr/share/wine", "share/wine"),
    ] {
        symlink(target, root.join(link)).expect("symlink");
    }
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
