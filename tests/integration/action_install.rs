//! The action's install step (`scripts/action-install.sh`), run for real against a local release
//! server: the checksum is verified and the binary tool-cached, a wrong checksum installs nothing, and
//! with no release asset the cargo fallback is chosen (a fake cargo on PATH records the build).
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TARGET: &str = "x86_64-unknown-linux-musl";
const FAKE_QWEN: &str = "#!/bin/sh\necho \"released qwen $*\"\n";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn cargo_version() -> String {
    std::fs::read_to_string(repo_file("Cargo.toml"))
        .expect("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("version")
        .trim_matches('"')
        .to_owned()
}

fn chmod_x(path: &Path) {
    let mut perms = std::fs::metadata(path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// `qwen-<version>-<target>.tar.gz` as release.yml packs it (a directory holding the binaries).
fn release_archive(version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("qwen-{version}-{TARGET}");
    std::fs::create_dir(dir.path().join(&name)).expect("mkdir");
    for bin in ["qwen", "qwen-code"] {
        let file = dir.path().join(&name).join(bin);
        std::fs::write(&file, FAKE_QWEN).expect("write");
        chmod_x(&file);
    }
    let tarball = dir.path().join("a.tar.gz");
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-czf")
        .arg(&tarball)
        .arg(&name)
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(tarball).expect("read archive")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// A release server for `version` whose SHA256SUMS says `listed_sum` (None: the archive's real sum).
async fn release_server(version: &str, listed_sum: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let archive = release_archive(version);
    let asset = format!("qwen-{version}-{TARGET}.tar.gz");
    let sum = listed_sum.map_or_else(|| sha256_hex(&archive), str::to_owned);
    let sums = format!(
        "{}  qwen-{version}-aarch64-apple-darwin.tar.gz\n{sum}  {asset}\n",
        "0".repeat(64)
    );
    Mock::given(method("GET"))
        .and(path(format!("/{version}/SHA256SUMS")))
        .respond_with(ResponseTemplate::new(200).set_body_string(sums))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{version}/{asset}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(archive))
        .mount(&server)
        .await;
    server
}

/// A runner: tool cache, `RUNNER_TEMP`, `GITHUB_OUTPUT` / `GITHUB_PATH` files, and a bin directory first
/// on PATH (for a fake cargo).
struct Runner {
    dir: tempfile::TempDir,
}

struct Install {
    output: Output,
    github_output: String,
    github_path: String,
}

impl Install {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn output(&self, name: &str) -> Option<String> {
        self.github_output
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
            .next_back()
    }
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["tool-cache", "runner-temp", "bin", "home"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Self { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Put a fake `cargo` first on PATH: it records its arguments and "installs" a qwen at `--root`.
    fn fake_cargo(&self) {
        let cargo = self.path("bin/cargo");
        let script = r#"#!/usr/bin/env bash
printf '%s\n' "$@" >"$(dirname "$0")/cargo-args"
root=""
while [ $# -gt 0 ]; do [ "$1" = --root ] && root=$2; shift; done
mkdir -p "$root/bin" && printf '#!/bin/sh\necho built qwen\n' >"$root/bin/qwen" && chmod +x "$root/bin/qwen"
"#;
        std::fs::write(&cargo, script).expect("write");
        chmod_x(&cargo);
    }
    fn cargo_args(&self) -> Option<Vec<String>> {
        std::fs::read_to_string(self.path("bin/cargo-args"))
            .ok()
            .map(|s| s.lines().map(str::to_owned).collect())
    }

    fn install(&self, args: &[&str], env: &[(&str, &str)]) -> Install {
        let github_output = self.path("github-output");
        let github_path = self.path("github-path");
        std::fs::write(&github_output, "").expect("GITHUB_OUTPUT");
        std::fs::write(&github_path, "").expect("GITHUB_PATH");
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.arg(repo_file("scripts/action-install.sh"))
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("GITHUB_ACTIONS", "true")
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TOOL_CACHE", self.path("tool-cache"))
            .env("RUNNER_TEMP", self.path("runner-temp"))
            .env("GITHUB_OUTPUT", &github_output)
            .env("GITHUB_PATH", &github_path)
            .env("ACTION_PATH", repo_file(""))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let output = cmd.output().expect("run the install script");
        Install {
            output,
            github_output: std::fs::read_to_string(&github_output).expect("read"),
            github_path: std::fs::read_to_string(&github_path).expect("read"),
        }
    }
}

#[tokio::test]
async fn install_verifies_the_checksum_caches_the_binary_and_reuses_the_cache() {
    let version = "v1.2.3";
    let server = release_server(version, None).await;
    let runner = Runner::new();
    let env = [
        ("QWEN_INSTALL_ACTION_REF", version),
        ("QWEN_INSTALL_BASE_URL", &server.uri()),
    ];
    let run = runner.install(&[], &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let dest = runner.path("tool-cache/qwen/1.2.3/x64");
    assert_eq!(
        run.output("qwen-path"),
        Some(format!("{}/qwen", dest.display()))
    );
    assert_eq!(run.github_path, format!("{}\n", dest.display()));
    assert_eq!(run.output("build"), None);
    assert!(runner.path("tool-cache/qwen/1.2.3/x64.complete").is_file());
    assert!(dest.join("qwen-code").is_file());
    assert!(
        run.stderr()
            .contains("sha256 of qwen-v1.2.3-x86_64-unknown-linux-musl.tar.gz verified"),
        "{}",
        run.stderr()
    );
    let out = Command::new(dest.join("qwen"))
        .arg("--version")
        .output()
        .expect("run installed qwen");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "released qwen --version\n"
    );
    assert_eq!(server.received_requests().await.expect("requests").len(), 2);
    // Nothing is left in RUNNER_TEMP.
    assert_eq!(
        std::fs::read_dir(runner.path("runner-temp"))
            .expect("dir")
            .count(),
        0
    );

    // Warm: from the tool cache, without a request.
    let again = runner.install(&[], &env);
    assert_eq!(again.code(), Some(0), "{}", again.stderr());
    assert!(
        again.stderr().contains("from the tool cache"),
        "{}",
        again.stderr()
    );
    assert_eq!(again.output("qwen-path"), run.output("qwen-path"));
    assert_eq!(server.received_requests().await.expect("requests").len(), 2);
}

#[tokio::test]
async fn install_refuses_a_wrong_checksum_and_installs_nothing() {
    let version = "v1.2.3";
    let server = release_server(version, Some(&"ab".repeat(32))).await;
    let runner = Runner::new();
    runner.fake_cargo();
    let run = runner.install(
        &[],
        &[
            ("QWEN_INSTALL_VERSION", "1.2.3"),
            ("QWEN_INSTALL_BASE_URL", &server.uri()),
        ],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("::error title=qwen install::checksum mismatch for qwen-v1.2.3-x86_64-unknown-linux-musl.tar.gz"), "{stderr}");
    assert!(stderr.contains("nothing installed"), "{stderr}");
    assert!(
        !runner.path("tool-cache/qwen").exists(),
        "something was installed"
    );
    assert_eq!(run.github_path, "");
    assert_eq!(run.output("qwen-path"), None);
    assert_eq!(
        run.output("build"),
        None,
        "a tampered release is not a reason to build"
    );
    assert_eq!(runner.cargo_args(), None);
    assert_eq!(
        std::fs::read_dir(runner.path("runner-temp"))
            .expect("dir")
            .count(),
        0
    );
}

#[tokio::test]
async fn install_falls_back_to_cargo_when_the_release_has_no_asset() {
    let server = MockServer::start().await; // answers 404 to everything
    let runner = Runner::new();
    runner.fake_cargo();
    let run = runner.install(
        &[],
        &[
            ("QWEN_INSTALL_ACTION_REF", "v9.9.9"),
            ("QWEN_INSTALL_BASE_URL", &server.uri()),
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stderr().contains("no release v9.9.9"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains("falling back to building qwen from source with cargo"),
        "{}",
        run.stderr()
    );
    assert_eq!(run.output("build").as_deref(), Some("true"));
    assert!(
        run.output("cache-key")
            .is_some_and(|k| k.starts_with("qwen-bin-Linux-X64-"))
    );
    assert_eq!(run.output("qwen-path"), None);
    assert_eq!(run.github_path, "");

    // The action's next step: the build.
    let build = runner.install(&["--build"], &[]);
    assert_eq!(build.code(), Some(0), "{}", build.stderr());
    let root = runner.path("runner-temp/qwen-action");
    let repo = repo_file("");
    assert_eq!(
        runner.cargo_args().expect("cargo ran"),
        [
            "install",
            "--path",
            repo.to_str().expect("utf-8"),
            "--locked",
            "--root",
            root.to_str().expect("utf-8"),
            "--bin",
            "qwen"
        ]
    );
    assert_eq!(
        build.output("qwen-path"),
        Some(format!("{}/bin/qwen", root.display()))
    );
    assert_eq!(build.github_path, format!("{}/bin\n", root.display()));

    // Restored by the Actions cache: no second build.
    std::fs::remove_file(runner.path("bin/cargo-args")).expect("rm");
    let restored = runner.install(&["--build"], &[]);
    assert_eq!(restored.code(), Some(0));
    assert!(
        restored
            .stderr()
            .contains("restored from the Actions cache")
    );
    assert_eq!(runner.cargo_args(), None);
}

/// Which release is asked for: the `version` input, a full tag ref, a moving major tag (the version
/// in the action's Cargo.toml), or none at all (branch, commit, unknown runner: cargo, no request).
#[tokio::test]
async fn install_picks_the_release_from_the_version_input_or_the_action_ref() {
    let v = format!("v{}", cargo_version());
    let major = v.split('.').next().expect("major").to_owned();
    let sha = "2599039cbf16eef0008eefe8a173584dac3e5c71";
    let rows: Vec<(&str, &str, &str, Option<String>)> = vec![
        ("", "v1.2.3", "X64", Some("/v1.2.3/SHA256SUMS".into())),
        ("0.7.0", "main", "X64", Some("/v0.7.0/SHA256SUMS".into())),
        ("v2.0.0", "v1.2.3", "X64", Some("/v2.0.0/SHA256SUMS".into())),
        (
            "",
            "v1.2.3-rc.1",
            "X64",
            Some("/v1.2.3-rc.1/SHA256SUMS".into()),
        ),
        ("", &major, "X64", Some(format!("/{v}/SHA256SUMS"))),
        ("", "v99", "X64", None),
        ("", "main", "X64", None),
        ("", sha, "X64", None),
        ("", "", "X64", None),
        ("", "v1.2.3", "X86", None),
    ];
    for (version, reference, arch, want) in rows {
        let server = MockServer::start().await;
        let runner = Runner::new();
        runner.fake_cargo();
        let run = runner.install(
            &[],
            &[
                ("QWEN_INSTALL_VERSION", version),
                ("QWEN_INSTALL_ACTION_REF", reference),
                ("QWEN_INSTALL_BASE_URL", &server.uri()),
                ("RUNNER_ARCH", arch),
            ],
        );
        let row = format!("version={version:?} ref={reference:?} arch={arch}");
        assert_eq!(run.code(), Some(0), "{row}: {}", run.stderr());
        assert_eq!(run.output("build").as_deref(), Some("true"), "{row}");
        let asked: Vec<String> = server
            .received_requests()
            .await
            .expect("requests")
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect();
        assert_eq!(asked.first().cloned(), want, "{row}");
        assert_eq!(
            runner.cargo_args(),
            None,
            "{row}: the build is the next step's"
        );
    }
}

#[tokio::test]
async fn install_defaults_to_the_action_repositorys_releases_and_refuses_odd_values() {
    let server = MockServer::start().await;
    let runner = Runner::new();
    let run = runner.install(
        &[],
        &[
            ("QWEN_INSTALL_ACTION_REF", "v1.2.3"),
            ("GITHUB_SERVER_URL", &server.uri()),
            ("QWEN_INSTALL_ACTION_REPOSITORY", "someone/qwen-fork"),
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let asked = server.received_requests().await.expect("requests");
    assert_eq!(
        asked[0].url.path(),
        "/someone/qwen-fork/releases/download/v1.2.3/SHA256SUMS"
    );

    // The runner's checkout path names the ref and repository (the context may be empty in a
    // composite action).
    let runner = Runner::new();
    let fake_path = runner.path("work/_actions/someone/qwen-fork/v1.4.0");
    std::fs::create_dir_all(&fake_path).expect("mkdir");
    let run = runner.install(
        &[],
        &[
            ("ACTION_PATH", fake_path.to_str().expect("utf-8")),
            ("GITHUB_SERVER_URL", &server.uri()),
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let asked = server.received_requests().await.expect("requests");
    assert_eq!(
        asked.last().expect("a request").url.path(),
        "/someone/qwen-fork/releases/download/v1.4.0/SHA256SUMS"
    );

    // Credentials in a mirror URL are masked before the first line that shows the URL.
    let runner = Runner::new();
    let run = runner.install(
        &[],
        &[
            ("QWEN_INSTALL_ACTION_REF", "v1.2.3"),
            (
                "QWEN_INSTALL_BASE_URL",
                "http://mirror-user:mirror-pass@127.0.0.1:9/releases",
            ),
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines[0], "::add-mask::mirror-user:mirror-pass", "{stderr}");
    assert_eq!(lines[1], "::add-mask::mirror-pass", "{stderr}");

    for (name, value, message) in [
        (
            "QWEN_INSTALL_VERSION",
            "1.0/../../x",
            "is not a release version",
        ),
        (
            "QWEN_INSTALL_VERSION",
            "1.0\nevil",
            "is not a release version",
        ),
        (
            "QWEN_INSTALL_BASE_URL",
            "file:///etc",
            "must be an http(s) URL",
        ),
    ] {
        let runner = Runner::new();
        let env = [("QWEN_INSTALL_ACTION_REF", "v1.2.3"), (name, value)];
        let run = runner.install(&[], &env);
        assert_eq!(run.code(), Some(1), "{value}: {}", run.stderr());
        assert!(run.stderr().contains(message), "{value}: {}", run.stderr());
        assert_eq!(run.github_path, "");
    }
}
