//! i386 programs (IA32 emulation): the i386 probe (tests/c/probe32.c, `gcc -m32`) run directly
//! and through preload, static, static-pie, dynamic PIE and dynamic ET_EXEC.
//!
//! Without address randomisation (`setarch -R`) everything the probe reports must be equal —
//! arguments, environment, the auxv on the stack and in /proc/self/auxv, every mapping below
//! 4 GiB with its address, the mm fields of /proc/self/stat, comm, exe, personality, a signal,
//! a thread, a fork — except the mappings above 4 GiB, where the stage-2 stub's page and the
//! 64-bit [vsyscall] stay (README: "32-bit programs"). With randomisation, the values and the
//! shape of the maps must be equal, and the addresses where the compat exec puts them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Invocation, Scratch, Variant, build_c, per_variant};

const FOUR_GIB: u64 = 1 << 32;
/// The compat STACK_TOP.
const STACK_TOP: u64 = 0xffff_e000;

/// One probe run: key=value lines, in order.
fn lines(output: &std::process::Output, what: &str) -> Vec<(String, String)> {
    assert_eq!(output.status.code(), Some(3), "{what}: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{what}: stderr {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{what}: bad line {line:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A maps line's range, permissions and name.
fn mapping(line: &str) -> (u64, u64, String, String) {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (start, end) = fields[0].split_once('-').unwrap();
    (hex(start), hex(end), fields[1].to_string(), fields.get(5).map_or(String::new(), |name| name.to_string()))
}

fn value<'a>(report: &'a [(String, String)], key: &str) -> &'a str {
    report.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key}"))
}

/// The maps lines split at 4 GiB.
fn maps(report: &[(String, String)]) -> (Vec<&str>, Vec<&str>) {
    report
        .iter()
        .filter(|(key, _)| key.starts_with("map."))
        .map(|(_, line)| line.as_str())
        .partition(|line| mapping(line).0 < FOUR_GIB)
}

/// What a compat exec must have given the program, whichever way it was started.
fn check_compat_exec(report: &[(String, String)], program: &str, what: &str) {
    let (low, _) = maps(report);
    let find = |name: &str| {
        low.iter().map(|line| mapping(line)).find(|m| m.3 == name).unwrap_or_else(|| panic!("{what}: no {name}"))
    };
    let vdso = find("[vdso]");
    assert_eq!(hex(value(report, "aux.33")), vdso.0, "{what}: AT_SYSINFO_EHDR is the 32-bit [vdso]");
    let sysinfo = hex(value(report, "aux.32"));
    assert!(vdso.0 < sysinfo && sysinfo < vdso.1, "{what}: AT_SYSINFO (__kernel_vsyscall) inside [vdso]");
    let stack = find("[stack]");
    // randomize_stack_top's 0x7ff pages, then arch_align_stack's 8191 bytes aligned to 16.
    let lowest = STACK_TOP - 0x7ff * 4096 - 8192;
    assert!((lowest..=STACK_TOP).contains(&stack.1), "{what}: [stack] ends below 4 GiB");
    let argv = hex(value(report, "addr.argv"));
    assert!(stack.0 < argv && argv < stack.1, "{what}: argv on [stack]");
    assert_eq!(value(report, "aux.4"), "0x20", "{what}: AT_PHENT is sizeof(Elf32_Phdr)");
    assert_eq!(value(report, "platform"), "i686", "{what}");
    assert_eq!(value(report, "exe"), program, "{what}");
    assert_eq!(value(report, "signal"), "10", "{what}: a SA_SIGINFO handler returned through the vDSO");
    assert_eq!(value(report, "thread"), "42", "{what}");
    assert_eq!(value(report, "fork"), "7", "{what}");
    assert_eq!(value(report, "clock"), "ok", "{what}");
    // /proc/self/auxv: the saved auxv in 4-byte words, as on the stack.
    let saved = value(report, "proc_auxv");
    let words: Vec<u32> = (0..saved.len() / 8)
        .map(|i| u32::from_le_bytes(u32::from_str_radix(&saved[8 * i..8 * i + 8], 16).unwrap().to_be_bytes()))
        .collect();
    let on_stack: Vec<u32> = report
        .iter()
        .filter_map(|(key, v)| Some([key.strip_prefix("aux.")?.parse().ok()?, hex(v) as u32]))
        .flatten()
        .collect();
    assert_eq!(words[..on_stack.len()], on_stack[..], "{what}: /proc/self/auxv holds the stack's auxv");
    assert!(words[on_stack.len()..].iter().all(|&w| w == 0), "{what}: then AT_NULL");
}

fn probe(variant: Variant) -> (String, Invocation) {
    probe_at(&build_c("probe32", variant))
}

fn probe_at(program: &Path) -> (String, Invocation) {
    (
        program.to_string_lossy().into_owned(),
        Invocation::new(program).arg("an argument").arg("").env_clear().env("A", "1"),
    )
}

/// Without randomisation the compat exec is reproduced exactly below 4 GiB.
fn same_without_aslr(variant: Variant) {
    compare_without_aslr(&build_c("probe32", variant));
}

/// The probe at `program` without randomisation; returns preload's report.
fn compare_without_aslr(program: &Path) -> Vec<(String, String)> {
    let (program, inv) = probe_at(program);
    let setarch = common::require_tool("setarch");
    let both = inv.wrapped_in([setarch.as_os_str(), "x86_64".as_ref(), "-R".as_ref()]).run_both();
    let direct = lines(&both.direct, "direct");
    let preloaded = lines(&both.preloaded, "preloaded");
    check_compat_exec(&direct, &program, "direct");
    check_compat_exec(&preloaded, &program, "preloaded");
    let below = |report: &[(String, String)]| -> Vec<(String, String)> {
        report.iter().filter(|(key, line)| !key.starts_with("map.") || mapping(line).0 < FOUR_GIB).cloned().collect()
    };
    let (direct_below, preloaded_below) = (below(&direct), below(&preloaded));
    for (d, p) in direct_below.iter().zip(&preloaded_below) {
        assert_eq!(d, p, "{}: direct and preloaded differ", both.what);
    }
    assert_eq!(direct_below.len(), preloaded_below.len(), "{}", both.what);
    // Above 4 GiB: nothing for the kernel's compat exec; through preload, the stage-2 stub's
    // page and the 64-bit [vsyscall] where the kernel shows it to 64-bit programs, as to this
    // test (not with vsyscall=none, the default of Debian's 6.1).
    assert_eq!(maps(&direct).1, Vec::<&str>::new(), "a compat exec maps nothing above 4 GiB");
    let above: Vec<(String, String)> =
        maps(&preloaded).1.iter().map(|line| mapping(line)).map(|(_, _, perms, name)| (perms, name)).collect();
    let vsyscall =
        std::fs::read_to_string("/proc/self/maps").unwrap().lines().find(|l| l.ends_with("[vsyscall]")).map(|line| {
            let (_, _, perms, name) = mapping(line);
            (perms, name)
        });
    let expected: Vec<(String, String)> =
        [("r-xp".to_string(), "/memfd:preload".to_string())].into_iter().chain(vsyscall).collect();
    assert_eq!(above, expected, "the documented difference above 4 GiB");
    let stack = maps(&preloaded).0.iter().map(|line| mapping(line)).find(|m| m.3 == "[stack]").unwrap();
    assert_eq!(stack.1, STACK_TOP, "no randomisation: the stack ends at STACK_TOP");
    preloaded
}

/// Without PT_GNU_STACK the kernel gives an i386 program READ_IMPLIES_EXEC (elf_read_implies_exec)
/// before mapping it: every readable mapping is executable, the stack too.
fn without_pt_gnu_stack(variant: Variant) {
    let mut bytes = std::fs::read(build_c("probe32", variant)).unwrap();
    let word = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let (phoff, phnum) = (word(&bytes, 28), usize::from(u16::from_le_bytes([bytes[44], bytes[45]])));
    let stack = (0..phnum).map(|i| phoff + 32 * i).find(|&at| word(&bytes, at) == 0x6474_e551).expect("PT_GNU_STACK");
    bytes[stack..stack + 4].copy_from_slice(&0u32.to_le_bytes()); // PT_NULL
    let scratch = Scratch::new("i386-no-gnu-stack");
    let program = scratch.write("probe32", bytes, 0o755);
    let report = compare_without_aslr(&program);
    assert_eq!(hex(value(&report, "personality")) & 0x40_0000, 0x40_0000, "READ_IMPLIES_EXEC");
    let (low, _) = maps(&report);
    for (_, _, perms, name) in low.iter().map(|line| mapping(line)) {
        let data = perms.starts_with('r') && !name.starts_with("[vvar");
        assert!(!data || &perms[2..3] == "x", "readable implies executable: {perms} {name}");
    }
}

per_variant!(without_pt_gnu_stack:
    i386_static_without_pt_gnu_stack => I386Static,
    i386_pie_without_pt_gnu_stack => I386Pie,
);

per_variant!(same_without_aslr:
    i386_static_same_without_aslr => I386Static,
    i386_staticpie_same_without_aslr => I386StaticPie,
    i386_pie_same_without_aslr => I386Pie,
    i386_nopie_same_without_aslr => I386NoPie,
);

/// With randomisation: the same values and the same shape of maps, in the compat layout.
fn same_shape_with_aslr(variant: Variant) {
    let (program, inv) = probe(variant);
    let both = inv.run_both();
    let direct = lines(&both.direct, "direct");
    let preloaded = lines(&both.preloaded, "preloaded");
    check_compat_exec(&direct, &program, "direct");
    check_compat_exec(&preloaded, &program, "preloaded");
    // Randomised: addresses (auxv pointers, maps ranges, the mm fields, AT_RANDOM's bytes).
    const ADDRESS_AUX: [&str; 8] = ["aux.3", "aux.7", "aux.9", "aux.15", "aux.25", "aux.31", "aux.32", "aux.33"];
    let fixed = |report: &[(String, String)]| -> BTreeMap<String, String> {
        report
            .iter()
            .filter(|(key, _)| {
                !(key.starts_with("map.")
                    || key.starts_with("stat.")
                    || key.starts_with("addr.")
                    || key == "proc_auxv"
                    || ADDRESS_AUX.contains(&key.as_str()))
            })
            .cloned()
            .collect()
    };
    assert_eq!(fixed(&direct), fixed(&preloaded), "{}", both.what);
    let keys = |report: &[(String, String)]| -> Vec<String> {
        report.iter().filter(|(key, _)| key.starts_with("aux.")).map(|(key, _)| key.clone()).collect()
    };
    assert_eq!(keys(&direct), keys(&preloaded), "{}: the auxv's order", both.what);
    let shape = |report: &[(String, String)]| -> Vec<(String, String)> {
        maps(report).0.iter().map(|line| mapping(line)).map(|(_, _, perms, name)| (perms, name)).collect()
    };
    assert_eq!(shape(&direct), shape(&preloaded), "{}: the maps below 4 GiB", both.what);
    // Where the compat exec puts a PIE: ELF_ET_DYN_BASE (0x56555000) plus 8 bits of pages.
    if variant == Variant::I386Pie {
        for report in [&direct, &preloaded] {
            let first = mapping(maps(report).0[0]).0;
            assert!((0x5655_5000..0x5665_5000).contains(&first), "PIE at {first:#x}");
        }
    }
}

per_variant!(same_shape_with_aslr:
    i386_static_same_shape_with_aslr => I386Static,
    i386_staticpie_same_shape_with_aslr => I386StaticPie,
    i386_pie_same_shape_with_aslr => I386Pie,
    i386_nopie_same_shape_with_aslr => I386NoPie,
);

/// From a pipe (--fd 0): the program's bytes copied into anonymous memory, exe the memfd.
#[test]
fn i386_program_from_a_pipe() {
    let program = build_c("probe32", Variant::I386Pie);
    let bytes = std::fs::read(&program).unwrap();
    let output = Invocation::new("probe32").preload_option("--fd").preload_option("0").stdin(bytes).run_preloaded();
    let report = lines(&output, "from a pipe");
    check_compat_exec(&report, "/memfd:probe32 (deleted)", "from a pipe");
}

/// Unprivileged, exe stays the preloader; everything else is as for root.
#[test]
fn i386_program_unprivileged() {
    let (program, inv) = probe(Variant::I386Static);
    let both = inv.unprivileged().run_both();
    check_compat_exec(&lines(&both.direct, "direct"), &program, "direct");
    let preloaded = lines(&both.preloaded, "preloaded");
    check_compat_exec(&preloaded, &common::preload().to_string_lossy(), "preloaded");
}

/// A `#!` script whose interpreter is an i386 program.
#[test]
fn i386_program_as_script_interpreter() {
    let scratch = Scratch::new("i386-script");
    let interpreter = build_c("probe32", Variant::I386Pie);
    let script = scratch.write("script", format!("#!{} opt\n", interpreter.display()), 0o755);
    let both = Invocation::new(&script).arg("x").env_clear().run_both();
    let (direct, preloaded) = (lines(&both.direct, "direct"), lines(&both.preloaded, "preloaded"));
    for key in ["argc", "argv.0", "argv.1", "argv.2", "argv.3", "execfn", "comm", "exe"] {
        assert_eq!(value(&direct, key), value(&preloaded, key), "{key}");
    }
    check_compat_exec(&preloaded, &interpreter.to_string_lossy(), "preloaded");
}

/// A core dump is written by the loader that exec'd the task (`mm->binfmt`): a compat exec's is
/// an ELFCLASS32 core; through preload the 64-bit loader writes an ELFCLASS64 core with the
/// i386 machine and 64-bit notes (README: "32-bit programs", a documented difference).
#[test]
fn i386_core_dump_is_written_by_the_64_bit_loader() {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    assert_eq!(pattern.trim(), "core", "this test reads ./core: kernel.core_pattern must be `core`");
    let program = build_c("abort", Variant::I386Static);
    let prlimit = common::require_tool("prlimit");
    let scratch = Scratch::new("i386-core");
    let core_of = |preloaded: bool| {
        let dir = scratch.path().join(if preloaded { "preloaded" } else { "direct" });
        std::fs::create_dir_all(&dir).unwrap();
        let inv = Invocation::new(&program).cwd(&dir).wrapped_in([prlimit.as_os_str(), "--core=unlimited".as_ref()]);
        let output = if preloaded { inv.run_preloaded() } else { inv.run_direct() };
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&output.status), Some(6), "SIGABRT");
        std::fs::read(dir.join("core")).expect("a core file")
    };
    let (direct, preloaded) = (core_of(false), core_of(true));
    let class_and_machine = |core: &[u8]| (core[4], u16::from_le_bytes([core[18], core[19]]));
    assert_eq!(&direct[..4], b"\x7fELF");
    assert_eq!(class_and_machine(&direct), (1, 3), "a compat exec's core: ELFCLASS32, EM_386");
    assert_eq!(&preloaded[..4], b"\x7fELF");
    assert_eq!(class_and_machine(&preloaded), (2, 3), "through preload: ELFCLASS64, EM_386");
}

/// `--interp` names the i386 interpreter in place of PT_INTERP; arguments and environment of
/// 1.1 MiB (below the kernel's E2BIG limit) land on the 32-bit stack as with the kernel.
#[test]
fn i386_interp_option_and_large_arguments() {
    let (program, inv) = probe(Variant::I386Pie);
    let big = "x".repeat(100_000);
    let inv = inv.args(std::iter::repeat_n(big.as_str(), 10)).env("BIG", "y".repeat(120_000));
    let both = inv.preload_option("--interp").preload_option("/lib/ld-linux.so.2").run_both();
    let (direct, preloaded) = (lines(&both.direct, "direct"), lines(&both.preloaded, "preloaded"));
    check_compat_exec(&direct, &program, "direct");
    check_compat_exec(&preloaded, &program, "preloaded");
    assert_eq!(value(&preloaded, "argc"), "13");
    for key in ["argv.12", "env.1", "cmdline"] {
        assert_eq!(value(&direct, key), value(&preloaded, key), "{key}");
    }
}

/// `--userns`: unprivileged, an i386 program gets exe in a user namespace of its own, as an x86_64
/// one does (tests/userns.rs), where without it exe stays the preloader
/// (`i386_program_unprivileged`).
#[test]
fn i386_program_gets_exe_with_userns() {
    let (program, inv) = probe(Variant::I386Static);
    let output = inv.unprivileged().preload_option("--userns").run_preloaded();
    check_compat_exec(&lines(&output, "--userns"), &program, "--userns");
}

/// preload asks whether IA32 emulation is on with SIGSEGV caught and unblocked for a moment: the
/// program inherits the caller's mask and ignored signals all the same, SIGSEGV among them.
#[test]
fn i386_program_inherits_sigsegv_blocked_and_ignored() {
    let perl = common::require_tool("perl");
    let script = "use POSIX; $SIG{SEGV} = 'IGNORE'; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGSEGV)) or die; \
                  exec {$ARGV[0]} @ARGV or die";
    let (_, inv) = probe(Variant::I386Static);
    let both = inv.wrapped_in([perl.as_os_str(), "-e".as_ref(), script.as_ref()]).run_both();
    let (direct, preloaded) = (lines(&both.direct, "direct"), lines(&both.preloaded, "preloaded"));
    for key in ["status.SigBlk", "status.SigIgn"] {
        let mask = u64::from_str_radix(value(&direct, key), 16).unwrap();
        assert_ne!(mask & 1 << (11 - 1), 0, "scenario check: SIGSEGV in {key}");
        assert_eq!(value(&direct, key), value(&preloaded, key), "{key}");
    }
}

/// valgrind's x86 tools are static i386 ET_EXEC programs that amd64 valgrind's launcher execs
/// for a 32-bit client, naming itself in VALGRIND_LAUNCHER.
fn valgrind_tool(tool: &Path) -> Invocation {
    Invocation::new(tool)
        .env("VALGRIND_LAUNCHER", common::require_tool("valgrind"))
        .env("VALGRIND_LIB", "/usr/libexec/valgrind")
}

/// Every x86 tool prints the same `--help` through preload as when the kernel runs it.
#[test]
fn valgrind_x86_tools_help_as_under_the_kernel() {
    let tools: Vec<_> = std::fs::read_dir("/usr/libexec/valgrind")
        .expect("valgrind's tool directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with("-x86-linux"))
        // getoff is a helper of valgrind's, not a tool: it has no --help.
        .filter(|path| !path.to_string_lossy().contains("/getoff-"))
        .collect();
    assert!(tools.len() >= 5, "scenario check: valgrind's x86 tools, found {tools:?}");
    for tool in tools {
        valgrind_tool(&tool).arg("--help").assert_same().expect_exit(0).expect_stdout_contains("usage: valgrind");
    }
}

/// memcheck-x86-linux run through preload checks a static i386 client as when the kernel runs
/// it: the same report, the uninitialised read found, the client's output.
#[test]
fn valgrind_memcheck_x86_checks_an_i386_client_as_under_the_kernel() {
    let client = build_c("uninitialised", Variant::I386Static);
    let both = valgrind_tool(Path::new("/usr/libexec/valgrind/memcheck-x86-linux")).arg(&client).run_both();
    let report = |output: &std::process::Output| {
        let text = String::from_utf8_lossy(&output.stderr);
        text.lines().map(|line| line.split_once("== ").map_or(line, |(_, rest)| rest).to_owned()).collect::<Vec<_>>()
    };
    let (direct, preloaded) = (report(&both.direct), report(&both.preloaded));
    assert!(
        direct.iter().any(|line| line.contains("Conditional jump or move depends on uninitialised value")),
        "scenario check: memcheck reports the uninitialised read directly: {direct:#?}"
    );
    assert_eq!(direct, preloaded, "memcheck's report, direct and through preload");
    assert_eq!(both.direct.stdout, both.preloaded.stdout, "the client's output");
    assert_eq!(both.direct.status.code(), Some(0));
    assert_eq!(both.preloaded.status.code(), Some(0));
}

// musl i386. Debian's musl-dev:i386 depends on the i686 cross compiler, which conflicts with
// gcc-multilib, so scripts/test.sh unpacks musl:i386 and musl-dev:i386 into MUSL_I386 instead
// of installing them, and the probe is linked against that tree with gcc -m32; a dynamic
// probe names the tree's ld-musl-i386.so.1 as its interpreter.

/// Where scripts/test.sh unpacks musl:i386 and musl-dev:i386.
const MUSL_I386: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/musl-i386");

/// tests/c/probe32.c built against musl i386: static ET_EXEC, or a dynamic PIE.
fn musl_probe(scratch: &Scratch, dynamic: bool) -> std::path::PathBuf {
    let root = Path::new(MUSL_I386);
    let lib = root.join("usr/lib/i386-linux-musl");
    assert!(lib.join("libc.a").is_file(), "{} is missing: scripts/test.sh unpacks musl-dev:i386 there", lib.display());
    let gcc = common::require_tool("gcc");
    let gcc_file = |name: &str| -> std::path::PathBuf {
        let found =
            common::output(std::process::Command::new(&gcc).args(["-m32", &format!("-print-file-name={name}")]));
        std::path::PathBuf::from(String::from_utf8_lossy(&found.stdout).trim())
    };
    let (crt1, crtbegin, crtend) =
        if dynamic { ("Scrt1.o", "crtbeginS.o", "crtendS.o") } else { ("crt1.o", "crtbegin.o", "crtend.o") };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/probe32.c");
    let out = scratch.path().join(if dynamic { "probe32-musl-pie" } else { "probe32-musl-static" });
    let mut command = std::process::Command::new(&gcc);
    command.args(["-m32", "-std=gnu11", "-O1", "-Wall", "-Werror", "-nostdinc", "-nostdlib", "-isystem"]);
    command.arg(root.join("usr/include/i386-linux-musl")).arg("-isystem").arg(gcc_file("include"));
    if dynamic {
        let interpreter = root.join("lib/ld-musl-i386.so.1");
        command.args(["-fPIE", "-pie"]).arg(format!("-Wl,-dynamic-linker,{}", interpreter.display()));
    } else {
        command.args(["-static", "-fno-pie", "-no-pie"]);
    }
    command.arg("-o").arg(&out).arg(lib.join(crt1)).arg(lib.join("crti.o")).arg(gcc_file(crtbegin)).arg(&source);
    command.arg(if dynamic { root.join("lib/i386-linux-musl/libc.so") } else { lib.join("libc.a") });
    command.arg(gcc_file("libgcc.a")).arg(gcc_file(crtend)).arg(lib.join("crtn.o"));
    let result = common::output(&mut command);
    assert!(
        result.status.success(),
        "building the musl i386 probe failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

#[test]
fn i386_musl_static_same_without_aslr() {
    let scratch = Scratch::new("i386-musl-static");
    compare_without_aslr(&musl_probe(&scratch, false));
}

#[test]
fn i386_musl_pie_same_without_aslr() {
    let scratch = Scratch::new("i386-musl-pie");
    let report = compare_without_aslr(&musl_probe(&scratch, true));
    let interpreter = Path::new(MUSL_I386).join("lib/i386-linux-musl/libc.so");
    let (low, _) = maps(&report);
    assert!(
        low.iter().any(|line| line.ends_with(&*interpreter.to_string_lossy())),
        "scenario check: musl's ld.so is mapped:\n{low:#?}"
    );
}

/// The options that shape a launch work for i386 programs: --argv0 (the program's argv[0]),
/// --base (a PIE's load address below 4 GiB), --reserve (a range below 4 GiB kept free,
/// PROT_NONE), --dry-run (the plan on stdout, nothing run) and --verbose (the plan on stderr).
#[test]
fn i386_launch_options() {
    let program = build_c("probe32", Variant::I386Pie);
    let report_of = |inv: Invocation| lines(&inv.run_preloaded(), "through preload");

    let report = report_of(Invocation::new(&program).preload_option("--argv0").preload_option("renamed"));
    assert_eq!(value(&report, "argv.0"), "renamed", "--argv0");

    let report = report_of(Invocation::new(&program).preload_option("--base").preload_option("0x30000000"));
    let (low, _) = maps(&report);
    let first = low.iter().find(|line| line.ends_with(&*program.to_string_lossy())).expect("the program mapped");
    assert_eq!(mapping(first).0, 0x3000_0000, "--base: {first}");

    let report =
        report_of(Invocation::new(&program).preload_option("--reserve").preload_option("0x10000000-0x20000000"));
    let (low, _) = maps(&report);
    assert!(low.iter().any(|line| line.starts_with("10000000-20000000 ---p")), "--reserve below 4 GiB:\n{low:#?}");

    let dry = Invocation::new(&program).preload_option("--dry-run").run_preloaded();
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success() && plan.contains("i386 program"), "--dry-run: {plan}");
    assert!(!plan.contains("argv.0"), "--dry-run runs nothing: {plan}");
    let verbose = Invocation::new(&program).preload_option("--verbose").run_preloaded();
    let said = String::from_utf8_lossy(&verbose.stderr);
    assert!(verbose.status.code() == Some(3) && said.contains("i386 program"), "--verbose: {said}");
    assert!(String::from_utf8_lossy(&verbose.stdout).contains("argv.0="), "--verbose runs the program");
}
