//! The repository's workflows hold the rules CI relies on: fmt, clippy, tests and the declared
//! Rust version; release binaries on tags; every action pinned and no credentials persisted.

use std::path::Path;

use serde_yaml::Value as Yaml;

use super::{read, repo_file, run_scripts, triggers, yaml};

fn cargo_rust_version() -> String {
    let manifest = read("Cargo.toml");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"')
        .to_owned()
}

#[test]
fn ci_workflow_checks_fmt_clippy_tests_and_the_declared_rust_version() {
    let ci = yaml(".github/workflows/ci.yml");
    assert_eq!(ci["permissions"]["contents"].as_str(), Some("read"));
    assert_eq!(
        ci["permissions"].as_mapping().map(serde_yaml::Mapping::len),
        Some(1)
    );
    assert_eq!(
        ci["concurrency"]["cancel-in-progress"].as_bool(),
        Some(true)
    );
    assert!(
        ci["concurrency"]["group"]
            .as_str()
            .is_some_and(|g| g.contains("github.ref"))
    );
    let on = triggers(&ci);
    assert!(on.get("push").is_some() && on.get("pull_request").is_some());

    let scripts = run_scripts(&ci).join("\n");
    assert!(scripts.contains("cargo fmt --all -- --check"), "{scripts}");
    assert!(
        scripts.contains("cargo clippy --all-targets --locked -- -D warnings"),
        "{scripts}"
    );
    assert!(scripts.contains("cargo nextest run --locked"), "{scripts}");
    let text = read(".github/workflows/ci.yml");
    assert!(text.contains("tool: nextest"));
    assert!(!text.contains("contents: write"));
    assert!(scripts.contains("./scripts/lint-ci.sh"), "{scripts}");

    let msrv = ci["jobs"]["msrv"]["strategy"]["matrix"]["rust"]
        .as_sequence()
        .expect("msrv matrix");
    assert_eq!(msrv.len(), 1);
    assert_eq!(msrv[0].as_str(), Some(cargo_rust_version().as_str()));
}

#[test]
fn release_workflow_ships_linux_and_macos_binaries_with_one_sha256sums_on_tags() {
    let release = yaml(".github/workflows/release.yml");
    let tags = &triggers(&release)["push"]["tags"];
    assert_eq!(tags.as_sequence().map(Vec::len), Some(1));
    assert_eq!(tags[0].as_str(), Some("v*"));
    // Nothing by default; read for the builds, write only where the release is published.
    assert_eq!(
        release["permissions"]
            .as_mapping()
            .map(serde_yaml::Mapping::len),
        Some(0)
    );
    assert_eq!(
        release["jobs"]["build"]["permissions"]["contents"].as_str(),
        Some("read")
    );
    assert_eq!(
        release["jobs"]["release"]["permissions"]["contents"].as_str(),
        Some("write")
    );
    let matrix: Vec<(&str, &str)> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("build matrix")
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap_or_default(),
                e["os"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        matrix,
        [
            ("x86_64-unknown-linux-musl", "ubuntu-latest"),
            ("aarch64-unknown-linux-musl", "ubuntu-latest"),
            ("x86_64-apple-darwin", "macos-latest"),
            ("aarch64-apple-darwin", "macos-latest"),
        ]
    );
    let scripts = run_scripts(&release).join("\n");
    assert!(scripts.contains("cargo build --release --locked --target \"$TARGET\""));
    assert!(
        scripts.contains("name=\"qwen-$VERSION-$TARGET\""),
        "the asset name the install script expects"
    );
    assert!(scripts.contains("sha256sum qwen-*.tar.gz > SHA256SUMS"));
    assert!(scripts.contains("gh release create") && scripts.contains("gh release upload"));
    assert!(!read(".github/workflows/release.yml").contains("softprops/"));
    // The install script looks for exactly these assets.
    let install = read("scripts/action-install.sh");
    for target in matrix.iter().map(|(t, _)| t) {
        assert!(install.contains(&format!("target={target}")), "{target}");
    }
    assert!(install.contains("asset=\"qwen-$version-$target.tar.gz\""));
}

/// Every `uses:` of the action, the workflows and the examples is pinned to a full commit SHA with the
/// version in a comment (GitHub's own `actions/*` too, so zizmor needs no configuration); every
/// checkout leaves no credentials behind.
#[test]
fn workflows_pin_third_party_actions_and_do_not_persist_credentials() {
    let mut files = vec![
        "action.yml".to_owned(),
        ".github/workflows/ci.yml".to_owned(),
        ".github/workflows/release.yml".to_owned(),
    ];
    for entry in std::fs::read_dir(repo_file("examples/github-actions")).expect("examples") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if Path::new(&name).extension().is_some_and(|e| e == "yml") {
            files.push(format!("examples/github-actions/{name}"));
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        let text = read(file);
        for line in text.lines() {
            let Some(uses) = line
                .trim_start()
                .trim_start_matches("- ")
                .strip_prefix("uses: ")
            else {
                continue;
            };
            let (_, rest) = uses
                .split_once('@')
                .unwrap_or_else(|| panic!("{file}: {line}"));
            let reference = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit()),
                "{file}: `{line}` is not pinned to a commit"
            );
            assert!(rest.contains(" # "), "{file}: `{line}` names no version");
        }
        let doc = yaml(file);
        let mut steps: Vec<&Yaml> = Vec::new();
        if let Some(jobs) = doc.get("jobs").and_then(Yaml::as_mapping) {
            for job in jobs.values() {
                steps.extend(job["steps"].as_sequence().into_iter().flatten());
            }
        }
        for s in steps {
            if s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(
                    s["with"]["persist-credentials"].as_bool(),
                    Some(false),
                    "{file}"
                );
            }
        }
    }
    assert!(
        !repo_file(".github/zizmor.yml").exists() && !repo_file("zizmor.yml").exists(),
        "zizmor runs at its default settings"
    );
}
