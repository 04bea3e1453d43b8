//! The documentation's contracts: the README's exit-code table is the table in `src/exit.rs`,
//! `--help` names every code, and the README's MSRV is Cargo.toml's `rust-version`.

use std::path::PathBuf;

fn read(rel: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The `| code | meaning |` rows of the first table after `marker` (leading `/// ` removed).
fn table_rows(text: &str, marker: &str) -> Vec<(String, String)> {
    let after = text
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{marker}`"));
    after
        .lines()
        .map(|l| l.trim_start_matches("///").trim())
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].to_owned(), cells[1..].join("|"))
        })
        .collect()
}

#[test]
fn the_readme_exit_code_table_is_the_one_in_exit_rs() {
    let readme = table_rows(&read("README.md"), "## Exit codes");
    let code = table_rows(
        &read("src/exit.rs"),
        "The numbers are part of the public contract",
    );
    assert!(code.len() >= 9, "{code:?}");
    assert_eq!(
        readme, code,
        "README.md's exit-code table differs from src/exit.rs"
    );
}

#[test]
fn help_names_every_exit_code() {
    let code = table_rows(
        &read("src/exit.rs"),
        "The numbers are part of the public contract",
    );
    let out = crate::common::TestEnv::new()
        .cmd()
        .arg("--help")
        .output()
        .expect("run qwen --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let line = help
        .lines()
        .skip_while(|l| !l.starts_with("Exit codes:"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    for (codes, _) in code {
        for c in codes.split(" / ") {
            assert!(line.contains(c), "--help's exit codes lack {c}: {line}");
        }
    }
}

#[test]
fn the_readme_minimum_rust_is_cargo_rust_version() {
    let cargo = read("Cargo.toml");
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"');
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("Rust toolchain ({version} or newer)")),
        "README.md must state the minimum Rust version {version}"
    );
}
