//! Stage 2 (issue 11): the preloader steps aside. A program's /proc/self/maps through preload is
//! the kernel's (same order, sizes, permissions, offsets, names and gaps; with `setarch -R` the
//! same addresses) but for the stub's one page; exe is set with one PR_SET_MM_MAP; everything
//! runs under PR_SET_MDWE; a failure after the preloader is gone prints the prepared message
//! and exits 127; the stub's copy of the hand-off on the stack is wiped before the jump; without a
//! page for the stub, the final operations run in place and exe is tried while the preloader is
//! mapped (a kernel without the EBUSY rule takes it).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Invocation, Scratch, Variant, build_c, render_status, require_tool};

/// The stub's page in the program's maps.
const STUB: &str = "/memfd:preload (deleted)";

#[derive(Clone, Debug)]
struct Line {
    start: u64,
    end: u64,
    perms: String,
    offset: u64,
    name: String,
}

fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = fields[0].split_once('-').expect("start-end");
            Line {
                start: u64::from_str_radix(start, 16).unwrap(),
                end: u64::from_str_radix(end, 16).unwrap(),
                perms: fields[1].to_string(),
                offset: u64::from_str_radix(fields[2], 16).unwrap(),
                name: fields.get(5..).map(|rest| rest.join(" ")).unwrap_or_default(),
            }
        })
        .collect()
}

fn render(lines: &[Line]) -> String {
    lines.iter().map(|l| format!("{:x}-{:x} {} {:08x} {}\n", l.start, l.end, l.perms, l.offset, l.name)).collect()
}

fn success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\nstderr: {}",
        render_status(output.status),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

/// Takes the stub's page out of `lines`, checking it is one r-xp page away from everything the
/// program maps: above [stack], or (without randomisation, where the stack ends at the top of
/// the address space) in the gap between the mmap area and the stack's room.
fn without_stub(mut lines: Vec<Line>) -> Vec<Line> {
    let stubs: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].name == STUB).collect();
    assert!(stubs.len() <= 1, "more than one stub page:\n{}", render(&lines));
    if let Some(&index) = stubs.first() {
        let stub = lines.remove(index);
        assert_eq!((stub.perms.as_str(), stub.end - stub.start), ("r-xp", 4096), "the stub page: {stub:?}");
        let stack = lines.iter().find(|l| l.name == "[stack]").expect("[stack]");
        let mmap_top = lines.iter().filter(|l| l.end <= stack.start && l.name != "[stack]").map(|l| l.end).max();
        let above_stack = stub.start > stack.end;
        let in_gap = mmap_top.is_some_and(|top| stub.start > top + (16 << 20)) && stub.end + (9 << 20) < stack.start;
        assert!(above_stack || in_gap, "the stub page is next to something:\n{}", render(&lines));
    }
    lines
}

/// Below the lowest mmap_base with 28 bits of randomisation, above every program image.
const MMAP_AREA: u64 = 0x7000_0000_0000;

/// Mappings whose distance to the previous one is random under ASLR: the heap (brk), the
/// stack, the vsyscall page, and the jump from the program's image to the mmap area.
fn random_gap(before: &Line, after: &Line) -> bool {
    let named = |l: &Line| matches!(l.name.as_str(), "[heap]" | "[stack]" | "[vsyscall]");
    named(before) || named(after) || (before.start >= MMAP_AREA) != (after.start >= MMAP_AREA)
}

/// The kernel's maps against preload's: the same mappings in the same order with the same
/// sizes, permissions, offsets and names, and the same gaps between neighbours; with `exact`
/// (setarch -R), the same addresses. [stack] may differ at its low end.
fn compare(direct: &[Line], preloaded: &[Line], exact: bool) -> Result<(), String> {
    compare_with(direct, preloaded, exact, true)
}

/// [`compare`], the gaps left out with `gaps` false.
fn compare_with(direct: &[Line], preloaded: &[Line], exact: bool, gaps: bool) -> Result<(), String> {
    let report = || format!("direct:\n{}preloaded:\n{}", render(direct), render(preloaded));
    if direct.len() != preloaded.len() {
        return Err(format!("{} mappings against {}\n{}", direct.len(), preloaded.len(), report()));
    }
    for (index, (a, b)) in direct.iter().zip(preloaded).enumerate() {
        let stack = a.name == "[stack]";
        let same = a.perms == b.perms
            && a.offset == b.offset
            && a.name == b.name
            && (stack || a.end - a.start == b.end - b.start)
            && (!exact || (a.end == b.end && (stack || a.start == b.start)));
        if !same {
            return Err(format!("mapping {index} differs: {a:?} against {b:?}\n{}", report()));
        }
        if gaps && index > 0 && !random_gap(&direct[index - 1], a) && !stack {
            let (gap_a, gap_b) = (a.start - direct[index - 1].end, b.start - preloaded[index - 1].end);
            if gap_a != gap_b {
                return Err(format!("the gap before mapping {index} is {gap_a:#x} against {gap_b:#x}\n{}", report()));
            }
        }
    }
    Ok(())
}

/// tests/c/maps.c as a musl static-pie (musl-gcc has no -static-pie: linked by hand with rcrt1.o).
fn musl_static_pie(scratch: &Scratch) -> PathBuf {
    let lib = Path::new("/usr/lib/x86_64-linux-musl");
    let out = scratch.path().join("maps-musl-staticpie");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/maps.c");
    let libgcc = common::output(Command::new(require_tool("gcc")).arg("-print-libgcc-file-name"));
    let libgcc = String::from_utf8(libgcc.stdout).unwrap().trim().to_string();
    let built = common::output(
        Command::new(require_tool("gcc"))
            .args(["-O1", "-nostdlib", "-nostartfiles", "-static-pie", "-fPIE", "-isystem"])
            .arg("/usr/include/x86_64-linux-musl")
            .arg("-o")
            .arg(&out)
            .arg(lib.join("rcrt1.o"))
            .arg(lib.join("crti.o"))
            .arg(&source)
            .arg(lib.join("libc.a"))
            .arg(libgcc)
            .arg(lib.join("crtn.o")),
    );
    assert!(built.status.success(), "linking a musl static-pie: {}", String::from_utf8_lossy(&built.stderr));
    out
}

/// The one difference a 2 MiB-aligned static-pie keeps with randomisation (README, "Where it
/// differs"): when the randomised top of the mmap area leaves less than the vDSO block above
/// the image, the kernel puts the block into the highest hole between the image's segments;
/// preload, which maps such an image below its own pages, puts it above. Moves the direct
/// run's block there, so that everything else is still compared.
fn vdso_above_the_image(lines: &mut Vec<Line>, program: &Path) {
    let name = program.to_string_lossy();
    let is_vdso = |l: &Line| matches!(l.name.as_str(), "[vvar]" | "[vvar_vclock]" | "[vdso]");
    let (Some(first), Some(last_image)) = (lines.iter().position(is_vdso), lines.iter().rposition(|l| l.name == *name))
    else {
        return;
    };
    if first < last_image {
        eprintln!("{name}: the kernel put the vDSO in a hole of the image (randomisation left no room above it)");
        let block: Vec<Line> = lines.iter().filter(|l| is_vdso(l)).cloned().collect();
        lines.retain(|l| !is_vdso(l));
        // After the image's last mapping and its bss (the anonymous line right after it).
        let mut at = lines.iter().rposition(|l| l.name == *name).expect("the image") + 1;
        if lines.get(at).is_some_and(|l| l.name.is_empty()) {
            at += 1;
        }
        lines.splice(at..at, block);
    }
}

/// `random_gaps`: the gaps are random between two direct runs too (an image aligned to 2 MiB
/// is as far from the randomised top of the mmap area as the alignment leaves it); compared
/// under `setarch -R` only.
fn assert_kernel_layout(program: &Path, what: &str, random_gaps: bool) {
    for exact in [false, true] {
        let mut inv = Invocation::new(program);
        if exact {
            inv = inv.wrapped_in(["setarch", "x86_64", "-R"]);
        }
        let mut direct = parse(&success(&inv.run_direct(), what));
        if random_gaps && !exact {
            vdso_above_the_image(&mut direct, program);
        }
        let preloaded = without_stub(parse(&success(&inv.run_preloaded(), what)));
        if let Err(why) = compare_with(&direct, &preloaded, exact, exact || !random_gaps) {
            panic!("{what}{}: {why}", if exact { " under setarch -R" } else { "" });
        }
    }
}

#[test]
fn maps_are_the_kernels_for_every_kind_of_program() {
    for variant in [
        Variant::Pie,
        Variant::NoPie,
        Variant::Static,
        Variant::StaticPie,
        Variant::MuslDynamic,
        Variant::MuslStatic,
        Variant::PieHugeAlign,
        // 8 MiB with its 2 MiB alignment: larger than the preloader's span, mapped by the
        // preloader; the kernel puts the vDSO in the room above it.
        Variant::StaticPieHugeAlign,
    ] {
        assert_kernel_layout(&build_c("maps", variant), variant.name(), variant == Variant::StaticPieHugeAlign);
    }
    let scratch = Scratch::new("stage2-musl-staticpie");
    assert_kernel_layout(&musl_static_pie(&scratch), "musl-staticpie", false);
}

#[test]
fn the_comparison_sees_a_leftover_page_and_a_moved_vdso() {
    // The check must be able to fail: the layout before stage 2 (a leftover r-x page at the top,
    // the vDSO above the interpreter) is refused.
    let direct = parse(&success(&Invocation::new("/bin/cat").arg("/proc/self/maps").run_direct(), "cat"));
    let mut leftover = direct.clone();
    let stack = leftover.iter().position(|l| l.name == "[stack]").unwrap();
    let top = leftover[stack - 1].end;
    leftover
        .insert(stack, Line { start: top, end: top + 0x10000, perms: "r-xp".into(), offset: 0, name: String::new() });
    assert!(compare(&direct, &leftover, false).is_err());
    let mut swapped = direct.clone();
    let vdso = swapped.iter().position(|l| l.name == "[vdso]").unwrap();
    // With its neighbour below ([vvar], above the stack on 6.1 where the vDSO is the last line).
    swapped.swap(vdso - 1, vdso);
    assert!(compare(&direct, &swapped, false).is_err());
    assert!(compare(&direct, &direct, true).is_ok());
}

/// `strace -f -e trace=prctl` of `preload ARGS`: the PR_SET_MM_MAP lines (not the
/// PR_SET_MM_MAP_SIZE probe, which changes nothing).
fn mm_map_calls(wrapper: &[&str], args: &[&str]) -> Vec<String> {
    let scratch = Scratch::new("stage2-strace");
    let log = scratch.path().join("strace.log");
    let mut cmd = Command::new(require_tool("strace"));
    cmd.args(["-f", "-e", "trace=prctl", "-o"]).arg(&log).args(wrapper).arg(common::preload()).args(args);
    let output = common::output(&mut cmd);
    assert!(output.status.success(), "strace preload {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    fs::read_to_string(&log).unwrap().lines().filter(|l| l.contains("PR_SET_MM_MAP,")).map(str::to_string).collect()
}

#[test]
fn exe_is_set_with_exactly_one_pr_set_mm_map() {
    let calls = mm_map_calls(&[], &["/bin/true"]);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(calls[0].ends_with("= 0"), "{calls:#?}");
    let exe = Invocation::new("/bin/readlink").arg("/proc/self/exe").run_preloaded();
    assert_eq!(success(&exe, "readlink"), "/usr/bin/readlink\n");
}

fn helper(name: &str) -> PathBuf {
    build_c(name, Variant::Pie)
}

/// `fault NR INDEX VALUE ERRNO preload ARGS...` (tests/c/fault.c).
fn with_fault(faults: &[[&str; 4]], args: &[&str]) -> Output {
    let fault = helper("fault");
    let mut words: Vec<String> = Vec::new();
    for rule in faults {
        words.push(fault.to_string_lossy().into_owned());
        words.extend(rule.iter().map(|s| s.to_string()));
    }
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]).arg(common::preload()).args(args).stdin(Stdio::null());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    common::run(cmd, None, &format!("preload {args:?} under {faults:?}"))
}

#[test]
fn a_failure_after_stepping_aside_prints_the_prepared_message_and_exits_127() {
    // The stub's mmap of the interpreter (descriptor 4: the program is 3) fails with ENOMEM.
    let output = with_fault(&[["9", "4", "4", "12"]], &["/bin/true"]);
    assert_eq!(output.status.code(), Some(127), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "preload: /bin/true: the exec could not be finished after the preloader had stepped aside (mapping the \
         image, the vDSO or the mm fields failed)\n"
    );
    // Without the fault the same run succeeds: the fault is what failed it.
    assert!(with_fault(&[["9", "4", "999", "12"]], &["/bin/true"]).status.success());
}

#[test]
fn the_stubs_copy_of_the_hand_off_is_wiped_before_the_jump() {
    // The stub runs from a copy of the hand-off's head on the stack below the program's stack
    // pointer; the failure message is part of it. A static program (whose start uses little
    // stack) scans [stack] below its frame for the message's text.
    let scan = build_c("stack_below", Variant::Static);
    let needle = "could not be finished after the preloader";
    let run = |extra: &[&str]| {
        let output = common::output(Command::new(common::preload()).arg(&scan).arg(needle).args(extra));
        success(&output, "preload stack_below")
    };
    assert_eq!(run(&[]), "clean\n", "the head's copy was left on the stack");
    // The scan finds what lies below the frame: the text planted there by a call.
    assert_eq!(run(&["plant"]), "found\n");
}

#[test]
fn without_a_stub_page_exe_is_tried_while_mapped() {
    // memfd_create refused: the stub runs in place, in the preloader's text, and PR_SET_MM_MAP
    // with exe is tried while the preloader is still mapped. This kernel refuses it (EBUSY); the
    // rest is set and the program runs.
    let no_memfd = ["319", "-1", "0", "1"];
    let stock = with_fault(&[no_memfd], &["--verbose", "/bin/readlink", "/proc/self/exe"]);
    let stderr = String::from_utf8_lossy(&stock.stderr);
    assert!(stock.status.success(), "{stderr}");
    assert!(stderr.contains("/proc/self/exe could not be set (Device or resource busy)"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&stock.stdout), format!("{}\n", common::preload().display()));
    // A double for a kernel without the EBUSY rule: PR_SET_MM (35) answers 0.
    let relaxed = with_fault(&[no_memfd, ["157", "0", "35", "0"]], &["--verbose", "/bin/true"]);
    let stderr = String::from_utf8_lossy(&relaxed.stderr);
    assert!(relaxed.status.success(), "{stderr}");
    assert!(stderr.contains("preload: /proc/self/exe set to the program\n"), "{stderr}");
}

/// `mdwe SHELL-COMMAND` with $PRELOAD and $MDWE set, stdin `stdin`.
fn under_mdwe(script: &str, stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]).env("PRELOAD", common::preload()).env("MDWE", helper("mdwe"));
    cmd.env("PYTHON3", require_tool("python3"));
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    common::run(cmd, stdin, &format!("sh -c {script:?}"))
}

#[test]
fn under_mdwe_everything_runs_with_exe_set() {
    // The scenario: MDWE is in force (the kernel refuses an anonymous page made executable).
    let direct = under_mdwe(r#"exec "$MDWE" /bin/readlink /proc/self/exe"#, None);
    assert_eq!(success(&direct, "direct under MDWE"), "/usr/bin/readlink\n");
    let path = under_mdwe(r#"exec "$MDWE" "$PRELOAD" /bin/readlink /proc/self/exe"#, None);
    assert_eq!(success(&path, "preload under MDWE"), "/usr/bin/readlink\n");
    let file =
        under_mdwe(r#"exec "$MDWE" "$PRELOAD" --fd 3 /usr/bin/readlink /proc/self/exe 3</usr/bin/readlink"#, None);
    assert_eq!(success(&file, "--fd from a file under MDWE"), "/usr/bin/readlink\n");
    let program = fs::read("/usr/bin/readlink").unwrap();
    let pipe = under_mdwe(
        r#"exec "$MDWE" "$PRELOAD" --fd 3 /usr/bin/readlink /proc/self/exe 3<&0 </dev/null"#,
        Some(&program),
    );
    assert_eq!(success(&pipe, "--fd from a pipe under MDWE"), "/memfd:readlink (deleted)\n");
    for variant in [Variant::Static, Variant::StaticPie, Variant::MuslDynamic] {
        let maps = build_c("maps", variant);
        let script = format!(r#"exec "$MDWE" "$PRELOAD" {}"#, maps.display());
        success(&under_mdwe(&script, None), variant.name());
    }
}

#[test]
fn the_mdwe_helper_really_refuses_exec_gain() {
    // Scenario check for the MDWE tests: under the helper, anonymous memory cannot be made
    // executable (what preload's self-copy needed before stage 2); without it, it can.
    let script = r#"exec ${MDWE:+"$MDWE"} "$PYTHON3" -c 'import ctypes, mmap
libc = ctypes.CDLL(None)
page = mmap.mmap(-1, 4096)
addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
print(libc.mprotect(ctypes.c_void_p(addr), 4096, 5))'"#;
    assert_eq!(success(&under_mdwe(script, None), "mprotect under MDWE"), "-1\n");
    let mut plain = Command::new("/bin/sh");
    plain.args(["-c", script]).env_remove("MDWE").env("PYTHON3", require_tool("python3"));
    plain.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    assert_eq!(success(&common::run(plain, None, "mprotect"), "mprotect without MDWE"), "0\n");
}
