//! The probe's report (tests/c/probe.c), shared by the tests that run it: parsing, the
//! comparable facts with the relations that must hold, and the differences between two runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Output;

/// key=value lines of one probe run.
pub type Report = BTreeMap<String, String>;

pub fn parse(output: &Output, what: &str) -> Report {
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "probe {what} failed: {}\nstderr: {}\nstdout: {}",
        super::render_status(output.status),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let text = String::from_utf8(output.stdout.clone()).expect("probe output is UTF-8");
    text.lines()
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("bad probe line {line:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

pub fn get<'a>(report: &'a Report, key: &str) -> &'a str {
    report.get(key).unwrap_or_else(|| panic!("probe output lacks {key}")).as_str()
}

pub fn num(report: &Report, key: &str) -> u64 {
    let value = get(report, key);
    u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{key}={value}: {e}"))
}

pub fn decode_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    format!("{:?}", String::from_utf8_lossy(&bytes))
}

pub fn page_up(x: u64) -> u64 {
    (x + 4095) & !4095
}

/// Address-space randomisation as the kernel applies it to this process.
pub fn randomized(report: &Report) -> bool {
    let va_space = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").expect("randomize_va_space");
    let personality = u64::from_str_radix(get(report, "personality").trim_start_matches("0x"), 16).unwrap();
    va_space.trim() == "2" && personality & 0x0040000 == 0 // ADDR_NO_RANDOMIZE
}

/// The comparable view of a run: every deterministic value as printed, plus `ok.*` relations
/// (which must hold) and `rel.*` values derived from randomised addresses (which must be equal).
pub fn facts(report: &Report) -> BTreeMap<String, String> {
    let mut facts: BTreeMap<String, String> = report
        .iter()
        .filter(|(key, _)| !key.starts_with("addr."))
        .map(|(key, value)| match key.as_str() {
            "cmdline" | "environ" => (key.clone(), decode_hex(value)),
            _ => (key.clone(), value.clone()),
        })
        .collect();
    let a = |key: &str| num(report, &format!("addr.{key}"));
    let mut ok = |name: &str, holds: bool| facts.insert(format!("ok.{name}"), holds.to_string());

    let bias = a("prog_first") - num(report, "elf.first_load_vaddr");
    let (stack_start, stack_end) = (a("stack_start"), a("stack_end"));
    let in_stack = |addr: u64| stack_start <= addr && addr < stack_end;
    let execfn_len = get(report, "at_execfn_str").len() as u64;
    let has_interp = !get(report, "interp_path").is_empty();
    let static_pie = get(report, "elf.type") == "3" && !has_interp;

    ok("proc_auxv_is_stack_auxv", get(report, "addr.proc_auxv") == get(report, "addr.stack_auxv"));
    ok("at_entry_is_start", a("at_entry") == a("start"));
    ok("at_entry_is_bias_plus_e_entry", a("at_entry") == bias + num(report, "elf.entry"));
    ok("at_phdr_in_program_first_mapping", a("prog_first") <= a("at_phdr") && a("at_phdr") < a("prog_first_end"));
    ok("dl_first_phdr_is_at_phdr", a("dl_first_phdr") == a("at_phdr"));
    ok("dl_first_addr_is_load_bias", a("dl_first_addr") == bias);
    ok(
        "at_base_is_interpreter_first_mapping",
        if has_interp { a("at_base") == a("interp_first") } else { a("at_base") == 0 },
    );
    ok("arg_start_is_argv0", a("stat.arg_start") == a("argv0"));
    ok("arg_end_is_end_of_arg_strings", a("stat.arg_end") == a("args_end"));
    ok("arg_end_is_env_start", a("stat.arg_end") == a("stat.env_start"));
    ok("env_start_is_env0", a("stat.env_start") == if a("env0") != 0 { a("env0") } else { a("args_end") });
    ok("env_end_is_end_of_env_strings", a("stat.env_end") == a("env_strings_end"));
    ok("env_end_is_at_execfn", a("stat.env_end") == a("at_execfn"));
    ok("at_execfn_at_stack_top", stack_end - a("at_execfn") == execfn_len + 1 + 8);
    ok("start_stack_is_initial_sp", a("stat.start_stack") == a("sp"));
    ok(
        "initial_data_in_stack_mapping",
        ["sp", "argv0", "at_random", "at_platform", "at_execfn"].iter().all(|k| in_stack(a(k))),
    );
    ok("at_random_then_at_platform", a("at_random") % 16 == 9 && a("at_platform") == a("at_random") + 16);
    ok("load_bias_aligned_to_max_p_align", bias.is_multiple_of(num(report, "elf.max_load_align").max(4096)));
    ok("sysinfo_ehdr_is_vdso", a("at_sysinfo_ehdr") == a("vdso_start"));
    // The first [heap] mapping. 6.1 (measured; not 6.18) also names [heap] a mapping that ends
    // at start_brk: without ASLR that is the bss, right below the brk.
    ok("heap_starts_at_start_brk", a("heap_start") == a("stat.start_brk") || a("heap_end") == a("stat.start_brk"));
    ok("brk_not_below_start_brk", a("brk") >= a("stat.start_brk"));
    // fs/binfmt_elf.c: start_brk = PAGE_ALIGN(end of the program's bss), moved to
    // ELF_ET_DYN_BASE for a static-pie (also without ASLR: measured under setarch -R), then
    // randomised by up to 1 GiB.
    let base = page_up(if static_pie { 0x5555_5555_4aaa } else { bias + num(report, "elf.load_end_vaddr") });
    let start_brk = a("stat.start_brk");
    ok(
        "start_brk_follows_kernel_rule",
        if randomized(report) { base <= start_brk && start_brk < base + (1 << 30) + 4096 } else { start_brk == base },
    );

    let mut rel = |name: &str, value: u64| facts.insert(format!("rel.{name}"), format!("{value:#x}"));
    for field in ["start_code", "end_code", "start_data", "end_data"] {
        rel(&format!("{field}_minus_bias"), a(&format!("stat.{field}")).wrapping_sub(bias));
    }
    rel("at_phdr_minus_bias", a("at_phdr") - bias);
    rel("prog_first_minus_bias", a("prog_first") - bias);
    rel("at_platform_minus_sp", a("at_platform") - a("sp"));
    rel("arg_bytes", a("stat.arg_end") - a("stat.arg_start"));
    rel("env_bytes", a("stat.env_end") - a("stat.env_start"));
    facts.insert("rel.heap_above_program".into(), (start_brk >= a("prog_end")).to_string());
    if !randomized(report) {
        // Without ASLR the kernel's choices are fixed addresses, and the preloader must make
        // the same ones (a static-pie is placed by mmap, below whatever is mapped already).
        let mut fixed = |name: &str, value: u64| facts.insert(format!("fixed.{name}"), format!("{value:#x}"));
        if !static_pie {
            fixed("load_bias", bias);
            fixed("start_brk", start_brk);
        }
        fixed("stack_end", stack_end);
        fixed("initial_sp", a("sp"));
        fixed("at_execfn", a("at_execfn"));
    }
    facts
}

/// Asserts every `ok.*` relation holds in `facts`.
pub fn assert_relations(facts: &BTreeMap<String, String>, what: &str) {
    let broken: Vec<&str> =
        facts.iter().filter(|(k, v)| k.starts_with("ok.") && *v != "true").map(|(k, _)| k.as_str()).collect();
    assert!(broken.is_empty(), "{what}: relations that do not hold: {broken:?}");
}

/// The facts of `preloaded` that differ from `direct`, one indented entry each, leaving out
/// the keys for which `accepted(key, preloaded value)` holds; empty when they agree.
pub fn differences(
    direct: &BTreeMap<String, String>,
    preloaded: &BTreeMap<String, String>,
    accepted: impl Fn(&str, Option<&String>) -> bool,
) -> String {
    let mut report = String::new();
    for key in direct.keys().chain(preloaded.keys().filter(|k| !direct.contains_key(*k))) {
        let (d, p) = (direct.get(key), preloaded.get(key));
        if d != p && !accepted(key, p) {
            let show = |v: Option<&String>| v.map_or("(missing)".to_string(), |v| super::escape(v.as_bytes()));
            let _ = writeln!(report, "  {key}:\n    direct:    {}\n    preloaded: {}", show(d), show(p));
        }
    }
    report
}
