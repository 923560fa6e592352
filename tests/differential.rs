//! Differential tests: every program must give the same stdout, stderr and exit status (or
//! terminating signal) whether run directly or as `preload PROGRAM ARGS...`.

mod common;

use common::{Invocation, Scratch, Variant, build_c, per_variant, require_tool};

fn tool(name: &str) -> Invocation {
    Invocation::new(require_tool(name))
}

#[test]
fn true_exits_zero() {
    tool("true").assert_same().expect_exit(0);
}

#[test]
fn false_exits_one() {
    tool("false").assert_same().expect_exit(1);
}

#[test]
fn echo_awkward_arguments() {
    tool("echo")
        .args(["", " leading and trailing spaces ", "two\nlines", "tab\there", "ünïcödé ✓ 日本", "-", "--", "'\"\\"])
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("ünïcödé ✓ 日本");
}

#[test]
fn echo_5000_arguments() {
    let args: Vec<String> = (0..5000).map(|i| format!("argument-{i}-{}", "x".repeat(i % 37))).collect();
    tool("echo").args(&args).assert_same().expect_exit(0).expect_stdout_contains("argument-4999-");
}

#[test]
fn echo_huge_arguments() {
    // 12 arguments of 100 kB each (a single one may be up to 128 kB).
    let args: Vec<String> = (0..12).map(|i| format!("{i}:{}", "z".repeat(100_000))).collect();
    tool("echo").args(&args).assert_same().expect_exit(0);
}

#[test]
fn env_prints_custom_environment() {
    tool("env")
        .env_clear()
        .env("PATH", common::SYSTEM_PATH)
        .env("EMPTY", "")
        .env("SPACES", "a b  c")
        .env("NON_ASCII", "ünïcödé")
        .env("EQUALS", "x=y=z")
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("EQUALS=x=y=z\n");
}

#[test]
fn env_with_empty_environment() {
    tool("env").env_clear().assert_same().expect_exit(0);
}

#[test]
fn ls_root_directory() {
    // /proc's link count follows the number of processes and /tmp changes under other programs:
    // both are left out so that only preload can make the listings differ.
    tool("ls")
        .args(["-la", "--ignore=proc", "--ignore=tmp", "/"])
        .env_clear()
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains(" usr\n");
}

/// A file of pseudo-random lines (fixed seed).
fn generated_lines(scratch: &Scratch) -> std::path::PathBuf {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut text = String::new();
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(&format!("{:016x} line {}\n", state, state % 1000));
    }
    scratch.write("lines.txt", text, 0o644)
}

#[test]
fn sort_generated_file() {
    let scratch = Scratch::new("sort");
    let file = generated_lines(&scratch);
    tool("sort").arg(&file).env("LC_ALL", "C").assert_same().expect_exit(0);
}

#[test]
fn sha256sum_generated_file() {
    let scratch = Scratch::new("sha256sum");
    let file = generated_lines(&scratch);
    tool("sha256sum").arg(&file).assert_same().expect_exit(0).expect_stdout_contains("lines.txt");
}

#[test]
fn cat_passes_stdin_through() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let both = tool("cat").stdin(data.clone()).assert_same();
    both.expect_exit(0);
    assert_eq!(both.direct.stdout, data, "scenario check: cat copied stdin");
}

#[test]
fn python3_threads() {
    let script = "import threading, sys\n\
                  results = [0] * 8\n\
                  def work(i): results[i] = sum(range(i * 10000))\n\
                  threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]\n\
                  [t.start() for t in threads]; [t.join() for t in threads]\n\
                  print(results, sys.argv[1:])\n\
                  sys.stderr.write('to stderr\\n'); sys.exit(3)";
    tool("python3").args(["-c", script, "a b", ""]).assert_same().expect_exit(3);
}

#[test]
fn perl_threads() {
    let script = "use threads; my @t = map { my $i = $_; threads->create(sub { $i * $i }) } 1..8; \
                  print join(',', map { $_->join } @t), \" @ARGV\\n\"; warn \"to stderr\\n\"; exit 4";
    tool("perl").args(["-e", script, "x", "y z"]).assert_same().expect_exit(4).expect_stdout_contains("1,4,9");
}

#[test]
fn bash_starts_a_child() {
    tool("bash")
        .args(["-c", "echo \"parent $0 $1\"; /bin/echo child; (exit 5); echo \"status $?\"; exit 6", "name", "arg"])
        .assert_same()
        .expect_exit(6)
        .expect_stdout_contains("child\nstatus 5");
}

#[test]
fn killed_by_sigsegv() {
    tool("bash").args(["-c", "ulimit -c 0; kill -SEGV $$"]).assert_same().expect_signal(11);
}

#[test]
fn c_program_aborts() {
    // cwd in scratch: should a core dump be written, it lands there.
    let scratch = Scratch::new("abort");
    Invocation::new(build_c("hello", Variant::Pie)).arg("--abort").cwd(scratch.path()).assert_same().expect_signal(6);
}

#[test]
fn path_search_true() {
    Invocation::new("true").env("PATH", common::SYSTEM_PATH).assert_same().expect_exit(0);
}

#[test]
fn path_search_ls() {
    let scratch = Scratch::new("path-ls");
    for name in ["b", "a", "c c"] {
        scratch.write(name, name, 0o644);
    }
    Invocation::new("ls")
        .args(["-l", "--time-style=+"])
        .cwd(scratch.path())
        .env_clear()
        .env("PATH", "/nonexistent:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("c c");
}

#[test]
fn path_search_skips_non_executable_candidates() {
    // Like execvp: a candidate that cannot be executed (no x bit, a directory) is skipped.
    let scratch = Scratch::new("path-skip");
    scratch.write("first/prog", "#!/bin/sh\necho wrong one\n", 0o644);
    std::fs::create_dir_all(scratch.path().join("second/prog")).unwrap();
    scratch.write("third/prog", "#!/bin/sh\necho \"right one: $0 $*\"\n", 0o755);
    let path = ["first", "second", "third"].map(|d| scratch.path().join(d).display().to_string()).join(":");
    Invocation::new("prog")
        .arg("arg")
        .env_clear()
        .env("PATH", path)
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("right one");
}

#[test]
fn relative_program_path() {
    let program = build_c("hello", Variant::Pie);
    Invocation::new(format!("./{}", program.file_name().unwrap().to_string_lossy()))
        .arg("relative")
        .cwd(program.parent().unwrap())
        .assert_same()
        .expect_exit(0);
}

#[test]
fn argv0_option() {
    Invocation::new(build_c("hello", Variant::Pie))
        .argv0("custom argv0")
        .arg("x")
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("argv[0]=\"custom argv0\"");
}

#[test]
fn double_dash_ends_preload_options() {
    // Everything after PROGRAM belongs to it, option-like or not; `--` before PROGRAM is eaten.
    Invocation::new(build_c("hello", Variant::Pie))
        .preload_option("--")
        .args(["--verbose", "--dry-run", "--help", "--", "--version"])
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("argv[2]=\"--dry-run\"");
}

#[test]
fn options_after_program_belong_to_program() {
    Invocation::new(build_c("hello", Variant::Pie))
        .args(["--verbose", "--argv0", "x", "--dry-run"])
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("argv[1]=\"--verbose\"");
}

/// hello in one build variant: awkward arguments, a custom environment, a thread with TLS,
/// output on stdout and stderr, and a chosen exit status.
fn hello_variant(variant: Variant) {
    Invocation::new(build_c("hello", variant))
        .args(["", "with space", "ünïcödé", "--exit", "7"])
        .env_clear()
        .env("HELLO", "world")
        .env("EMPTY", "")
        .assert_same()
        .expect_exit(7)
        .expect_stdout_contains("thread=42 main_tls=40");
}

per_variant!(hello_variant:
    hello_pie => Pie,
    hello_nopie => NoPie,
    hello_static => Static,
    hello_staticpie => StaticPie,
    hello_musl_static => MuslStatic,
    hello_musl_dynamic => MuslDynamic,
    hello_pie_execstack => PieExecStack,
    hello_pie_align2m => PieHugeAlign,
    hello_staticpie_align2m => StaticPieHugeAlign,
);

/// Writes an executable script and runs it both ways with two arguments.
fn run_script(name: &str, contents: &str) -> common::Both {
    let scratch = Scratch::new(name);
    let script = scratch.write(name, contents, 0o755);
    Invocation::new(&script).args(["A", "b c"]).env("PATH", common::SYSTEM_PATH).run_both()
}

#[test]
fn shebang_sh_with_option() {
    run_script("sh-e", "#!/bin/sh -e\necho \"$0 $*\"\nfalse\necho not reached\n").assert_same().expect_exit(1);
}

#[test]
fn shebang_env_python3() {
    require_tool("python3");
    run_script("py", "#!/usr/bin/env python3\nimport sys\nprint(sys.argv[1:])\nsys.exit(2)\n")
        .assert_same()
        .expect_exit(2)
        .expect_stdout_contains("['A', 'b c']");
}

#[test]
fn shebang_nested_scripts() {
    let scratch = Scratch::new("nested");
    let inner = scratch.write("inner", "#!/bin/sh\necho \"inner: $0 $*\"\n", 0o755);
    let outer = scratch.write("outer", format!("#!{} from-outer\n", inner.display()), 0o755);
    Invocation::new(&outer).arg("arg").assert_same().expect_exit(0).expect_stdout_contains("from-outer");
}

/// First lines the kernel's binfmt_script parses in different ways; /bin/echo shows the result.
#[test]
fn shebang_line_parsing() {
    let long_arg = "y".repeat(300);
    let cases = [
        ("plain", "#!/bin/echo\n".to_string()),
        ("one-arg", "#!/bin/echo one\n".into()),
        ("spaces", "#!  /bin/echo   spaced   words  \n".into()),
        ("tabs", "#!\t/bin/echo\targ\twith tab\t\n".into()),
        ("crlf", "#!/bin/echo crlf\r\n".into()),
        ("no-newline", "#!/bin/echo no-newline".into()),
        ("long-arg", format!("#!/bin/echo {long_arg}\n")),
    ];
    for (name, contents) in cases {
        run_script(name, &contents).assert_same().expect_exit(0);
    }
}

#[test]
fn shebang_relative_interpreter_resolved_from_cwd() {
    // The kernel opens a relative #! interpreter relative to the current directory.
    let scratch = Scratch::new("relative-interp");
    std::os::unix::fs::symlink("/bin/echo", scratch.path().join("my-echo")).unwrap();
    let script = scratch.write("script", "#!./my-echo relative\n", 0o755);
    Invocation::new(&script)
        .arg("x")
        .cwd(scratch.path())
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("relative");
}

#[test]
fn path_search_empty_element_is_cwd() {
    // execvp: an empty PATH element means the current directory.
    let scratch = Scratch::new("path-empty-element");
    scratch.write("local-prog", "#!/bin/sh\necho \"local: $0\"\n", 0o755);
    Invocation::new("local-prog")
        .cwd(scratch.path())
        .env_clear()
        .env("PATH", "/nonexistent::/usr/bin")
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("local: ");
}

#[test]
fn path_search_without_path_variable() {
    // execvp's default search path applies when PATH is unset.
    Invocation::new("true").env_clear().assert_same().expect_exit(0);
}

#[test]
fn reexec_through_proc_self_exe() {
    // As root /proc/self/exe is the program, so a program can re-execute itself through it.
    tool("bash")
        .args(["-c", "if [ -z \"$AGAIN\" ]; then AGAIN=1 exec /proc/self/exe -c 'echo re-executed $AGAIN' ; fi"])
        .assert_same()
        .expect_exit(0)
        .expect_stdout_contains("re-executed 1");
}

#[test]
fn shebang_nesting_depth() {
    // The kernel follows a few levels of #! scripts whose interpreter is itself a script, then
    // fails with ELOOP. Up to that depth preload must behave the same; beyond it, fail cleanly.
    let scratch = Scratch::new("nesting");
    let mut script = scratch.write("level0", "#!/bin/sh\necho \"level0: $*\"\n", 0o755);
    let mut kernel_refused_at = None;
    for depth in 1..=7 {
        script = scratch.write(&format!("level{depth}"), format!("#!{}\n", script.display()), 0o755);
        let inv = Invocation::new(&script).arg("x");
        match inv.try_run_direct() {
            Ok(_) => {
                inv.assert_same().expect_exit(0).expect_stdout_contains("level0: ");
            }
            Err(e) => {
                kernel_refused_at.get_or_insert((depth, e.to_string()));
                let output = inv.run_preloaded();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert_eq!(
                    output.status.code(),
                    Some(126),
                    "depth {depth} ({e} directly): preload {}: {stderr}",
                    common::render_status(output.status)
                );
                assert!(stderr.starts_with("preload: ") && stderr.lines().count() == 1, "depth {depth}: {stderr:?}");
            }
        }
    }
    assert!(kernel_refused_at.is_some(), "scenario check: the kernel refused some depth up to 7");
}

#[test]
fn preload_runs_preload() {
    // `preload preload PROGRAM` behaves as `PROGRAM`.
    Invocation::new(build_c("hello", Variant::Static))
        .preload_option(common::preload())
        .args(["a", "--exit", "9"])
        .assert_same()
        .expect_exit(9);
}
