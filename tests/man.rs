//! The manual pages, man/preload.1 and man/preload-seal.1: they render without a single groff
//! warning, and they document every option the programs' --help prints, every environment
//! variable the preloader reads, and the version cargo builds.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn page(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name)
}

fn groff() -> PathBuf {
    common::require_tool("groff") // Debian package groff-base
}

/// `groff -ww -man -T<device> [extra] PAGE`: its standard output; fails on any warning or error.
fn render(page: &Path, device: &str, extra: &[&str]) -> String {
    let mut command = Command::new(groff());
    command.args(["-ww", "-man", &format!("-T{device}")]).args(extra).arg(page).env("LC_ALL", "C.UTF-8");
    let output = common::output(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "groff -ww -man -T{device} {} ({}):\n{stderr}",
        page.display(),
        common::render_status(output.status)
    );
    let text = String::from_utf8(output.stdout).expect("groff's output is UTF-8");
    assert!(text.len() > 1000, "scenario check: {} rendered to {} bytes only", page.display(), text.len());
    text
}

/// The page as plain text (no bold or underline), on lines long enough that nothing is
/// hyphenated or broken inside a paragraph's words.
fn plain_text(page: &Path) -> String {
    render(page, "ascii", &["-P", "-cbou", "-rLL=2000n"])
}

/// The lines of section `name` (from its heading to the next one) of a rendered page.
fn section<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    let mut lines = text.lines().skip_while(|line| *line != name);
    assert!(lines.next().is_some(), "the page has no section {name}:\n{text}");
    lines.take_while(|line| line.is_empty() || line.starts_with(' ')).collect()
}

/// The words of `line`, split where an option ends (`--fd=N`, `[-o`, `-v,`).
fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| c.is_whitespace() || ",[]()=".contains(c)).filter(|word| !word.is_empty())
}

/// The options `help` names: words that start with `-` and are options (`--name`, `-x`, `--`).
fn options_in(help: &str) -> Vec<String> {
    let mut options: Vec<String> = help
        .lines()
        .flat_map(words)
        .map(|word| word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|word| {
            let name = word.strip_prefix("--").or_else(|| word.strip_prefix('-'));
            name.is_some_and(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                && (word.starts_with("--") || word.len() == 2)
        })
        .map(str::to_string)
        .collect();
    options.sort();
    options.dedup();
    options
}

/// Every option in `help` is a word of the page's OPTIONS section; returns the options.
fn assert_options_documented(help: &str, page: &Path) -> Vec<String> {
    let options = options_in(help);
    let text = plain_text(page);
    let documented: Vec<&str> = section(&text, "OPTIONS").into_iter().flat_map(words).collect();
    let missing: Vec<&String> = options.iter().filter(|option| !documented.contains(&option.as_str())).collect();
    assert!(missing.is_empty(), "{} does not document {missing:?} (from --help:\n{help})", page.display());
    options
}

fn help_of(output: std::process::Output, what: &str) -> String {
    assert!(output.status.success(), "{what} --help: {}", common::render_status(output.status));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn preload_page_renders_without_warnings() {
    render(&page("preload.1"), "utf8", &[]);
}

#[test]
fn preload_page_documents_every_option_of_help() {
    let help = help_of(common::run_preload(["--help"]), "preload");
    let options = assert_options_documented(&help, &page("preload.1"));
    for expected in ["--argv0", "--base", "--dry-run", "--fd", "--interp", "--reserve", "--verbose", "--version"] {
        assert!(options.iter().any(|o| o == expected), "scenario check: {expected} found in --help: {options:?}");
    }
}

/// Every environment variable the preloader reads (`getenv(b"NAME")`, or a `..._VAR` constant
/// naming one, anywhere under src/ but preload-seal's source) is an entry of ENVIRONMENT.
#[test]
fn preload_page_documents_every_environment_variable_read() {
    let mut names = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") && !path.ends_with("preload-seal.rs") {
                let source = fs::read_to_string(&path).unwrap();
                for marker in ["getenv(b\"", "_VAR: &[u8] = b\""] {
                    for (at, _) in source.match_indices(marker) {
                        let rest = &source[at + marker.len()..];
                        names.push(rest[..rest.find('"').unwrap()].to_string());
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    for expected in ["PATH", "PRELOAD_RESERVE", "WINEPRELOADRESERVE"] {
        assert!(names.iter().any(|n| n == expected), "scenario check: the sources read {expected}: {names:?}");
    }
    let text = plain_text(&page("preload.1"));
    let environment = section(&text, "ENVIRONMENT");
    // An entry's tag is indented by 7 columns, its text by more.
    let entries: Vec<&str> = environment
        .iter()
        .filter_map(|line| line.strip_prefix("       "))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for name in &names {
        assert!(
            entries.contains(&name.as_str()),
            "ENVIRONMENT of preload.1 has no entry {name} (entries: {entries:?})"
        );
    }
}

#[test]
fn pages_name_the_version_cargo_builds() {
    let version = format!("\"preload {}\"", env!("CARGO_PKG_VERSION"));
    for name in ["preload.1", "preload-seal.1"] {
        let source = fs::read_to_string(page(name)).unwrap();
        let th = source.lines().find(|line| line.starts_with(".TH ")).expect(".TH line");
        assert!(th.contains(&version), "{name}: {th} does not name {version}");
    }
}

#[cfg(feature = "sealed")]
mod seal {
    use super::*;

    #[test]
    fn preload_seal_page_renders_without_warnings() {
        render(&page("preload-seal.1"), "utf8", &[]);
    }

    #[test]
    fn preload_seal_page_documents_every_option_of_help() {
        let mut command = Command::new(env!("CARGO_BIN_EXE_preload-seal"));
        command.arg("--help");
        let help = help_of(common::output(&mut command), "preload-seal");
        let options = assert_options_documented(&help, &page("preload-seal.1"));
        for expected in ["--binfmt", "--key-file", "--new-key", "-o"] {
            assert!(options.iter().any(|o| o == expected), "scenario check: {expected} found in --help: {options:?}");
        }
    }
}
