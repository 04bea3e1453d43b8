//! GitHub Actions: `action.yml` matches the README and keeps the key off command lines, its run script
//! maps every input (a fake qwen records the arguments) and sets the outputs (run for real against
//! wiremock), the examples run through it, and the workflows hold the rules CI relies on.
#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking, like the tests themselves"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;
use serde_yaml::Value as Yaml;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod action_yml;
mod examples;
mod inputs;
mod masks_and_log;
mod run_step;
mod workflows;

const INPUTS: [&str; 27] = [
    "prompt",
    "prompt-file",
    "jobs",
    "model",
    "base-url",
    "api-key",
    "output-format",
    "extra-args",
    "endpoint",
    "token",
    "system-prompt",
    "system-prompt-file",
    "input",
    "file_input",
    "max-tokens",
    "max-completion-tokens",
    "temperature",
    "top-p",
    "custom-headers",
    "enable-github-mcp",
    "github-mcp-token",
    "github-mcp-toolsets",
    "provider",
    "copilot-cli-path",
    "copilot-allow-tools",
    "version",
    "download-base-url",
];
const OUTPUTS: [&str; 5] = [
    "result",
    "response",
    "response-file",
    "exit-code",
    "results-file",
];
/// actions/ai-inference v2 inputs the action declares only to warn that they are not supported.
pub(super) const UNSUPPORTED_V2_INPUTS: [&str; 6] = [
    "enable-github-mcp",
    "github-mcp-token",
    "github-mcp-toolsets",
    "provider",
    "copilot-cli-path",
    "copilot-allow-tools",
];
/// Inputs read by the install step, not by the run script.
const INSTALL_INPUTS: [&str; 2] = ["version", "download-base-url"];
pub(super) const KEY: &str = "sk-action-test-key-4242";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub(super) fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub(super) fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

pub(super) fn keys(map: &Yaml) -> Vec<String> {
    map.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().expect("a string key").to_owned())
        .collect()
}

/// `on:` as written; a YAML 1.1 reader would turn the key into `true`.
fn triggers(workflow: &Yaml) -> &Yaml {
    workflow
        .get("on")
        .or_else(|| workflow.as_mapping()?.get(Yaml::Bool(true)))
        .expect("the workflow has `on:`")
}

/// Every `run:` script of a workflow or composite action, with the job it belongs to.
fn run_scripts(doc: &Yaml) -> Vec<String> {
    let mut steps: Vec<&Yaml> = Vec::new();
    if let Some(s) = doc.get("runs").and_then(|r| r.get("steps")) {
        steps.extend(s.as_sequence().expect("steps").iter());
    }
    if let Some(jobs) = doc.get("jobs").and_then(Yaml::as_mapping) {
        for job in jobs.values() {
            if let Some(s) = job.get("steps").and_then(Yaml::as_sequence) {
                steps.extend(s.iter());
            }
        }
    }
    steps
        .iter()
        .filter_map(|s| s.get("run").and_then(Yaml::as_str).map(str::to_owned))
        .collect()
}

// ---- running the action's script: a runner's directories, its outputs, a stand-in qwen --------

fn chat_response(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    }))
}

pub(super) async fn server_answering(text: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(chat_response(text))
        .mount(&server)
        .await;
    server
}

/// A runner's directories for one action run: HOME, the workspace (cwd) and `RUNNER_TEMP`.
pub(super) struct ActionEnv {
    dir: tempfile::TempDir,
}

impl ActionEnv {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["home", "work", "runner-temp"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Self { dir }
    }
    pub(super) fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn runner_temp(&self) -> PathBuf {
        self.dir.path().join("runner-temp")
    }

    /// Run `scripts/action-run.sh` as the action's step does: inputs as `QWEN_ACTION_*` variables,
    /// the key as `OPENAI_API_KEY`, a cleared environment plus `extra_env`.
    pub(super) fn run(
        self,
        inputs: &[(&str, &str)],
        key: Option<&str>,
        extra_env: &[(String, String)],
    ) -> ActionRun {
        let github_output = self.dir.path().join("github-output");
        std::fs::write(&github_output, "").expect("create GITHUB_OUTPUT");
        let mut cmd = Command::new("bash");
        cmd.arg(repo_file("scripts/action-run.sh"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("RUNNER_TEMP", self.runner_temp())
            .env("GITHUB_OUTPUT", &github_output)
            .env("QWEN_BIN", env!("CARGO_BIN_EXE_qwen"))
            .current_dir(self.work())
            .stdin(Stdio::null());
        if let Some(key) = key {
            cmd.env("OPENAI_API_KEY", key);
        }
        for (name, value) in inputs {
            cmd.env(input_var(name), value);
        }
        for (name, value) in extra_env {
            cmd.env(name, value);
        }
        let output = cmd.output().expect("run bash");
        let github_output = std::fs::read_to_string(&github_output).expect("read GITHUB_OUTPUT");
        ActionRun {
            output,
            github_output,
            _env: self,
        }
    }
}

fn input_var(name: &str) -> String {
    format!(
        "QWEN_ACTION_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

pub(super) struct ActionRun {
    output: Output,
    github_output: String,
    /// Kept so that the directories (and `response-file`) outlive the run.
    _env: ActionEnv,
}

impl ActionRun {
    pub(super) fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub(super) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The outputs written to `$GITHUB_OUTPUT`, read the way the runner reads them
    /// (`name=value` lines and `name<<DELIM` … `DELIM` blocks).
    fn outputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = self.github_output.split('\n');
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            if let Some((name, delim)) = line.split_once("<<") {
                let mut value = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                out.push((name.to_owned(), value.join("\n")));
            } else {
                let (name, value) = line.split_once('=').expect("name=value");
                out.push((name.to_owned(), value.to_owned()));
            }
        }
        out
    }

    pub(super) fn output(&self, name: &str) -> Option<String> {
        self.outputs()
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The secrets appear nowhere but in `::add-mask::` commands, which the runner consumes (they
    /// are not shown) and which come before any other line.
    pub(super) fn assert_secrets_never_shown(&self, secrets: &[&str]) {
        let stderr = self.stderr();
        let masks: Vec<String> = secrets.iter().map(|s| format!("::add-mask::{s}")).collect();
        let lines: Vec<&str> = stderr.lines().collect();
        let first_other = lines
            .iter()
            .position(|l| !l.starts_with("::add-mask::"))
            .unwrap_or(lines.len());
        for mask in &masks {
            assert!(
                lines[..first_other].contains(&mask.as_str()),
                "`{mask}` is not among the first lines:\n{stderr}"
            );
        }
        let shown: Vec<&str> = lines[first_other..].to_vec();
        for secret in secrets {
            for (what, text) in [
                ("stdout", self.stdout()),
                ("stderr", shown.join("\n")),
                ("GITHUB_OUTPUT", self.github_output.clone()),
            ] {
                assert!(
                    !text.contains(secret),
                    "`{secret}` leaked on {what}: {text}"
                );
            }
        }
    }

    fn assert_key_never_shown(&self) {
        self.assert_secrets_never_shown(&[KEY]);
    }

    /// The log copy of qwen's stdout, checked to sit between `::stop-commands::<token>` and
    /// `::<token>::` with a token of 32 hex digits.
    fn logged_answer(&self) -> String {
        let stdout = self.stdout();
        let first = stdout.lines().next().unwrap_or_default();
        let token = first
            .strip_prefix("::stop-commands::")
            .unwrap_or_else(|| panic!("no stop-commands first: {stdout}"));
        assert_eq!(token.len(), 32, "{token}");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        let end = format!("::{token}::\n");
        assert!(stdout.ends_with(&end), "not resumed at the end: {stdout}");
        stdout[first.len() + 1..stdout.len() - end.len()].to_owned()
    }
}

fn run_action(inputs: &[(&str, &str)], key: Option<&str>) -> ActionRun {
    ActionEnv::new().run(inputs, key, &[])
}

/// A stand-in for qwen that records its arguments and the key it was given, and prints a chosen
/// answer.
struct FakeQwen {
    dir: tempfile::TempDir,
}

impl FakeQwen {
    fn new(answer: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = r#"#!/usr/bin/env bash
d=$(dirname "$0")
: >"$d/argv"
for a in "$@"; do
  printf '%s\0' "$a" >>"$d/argv"
done
printf '%s' "${OPENAI_API_KEY-<unset>}" >"$d/key"
[ -f "$d/stderr" ] && cat -- "$d/stderr" >&2
cat -- "$d/answer"
exit "$(cat -- "$d/code")"
"#;
        let bin = dir.path().join("qwen");
        std::fs::write(&bin, script).expect("write fake");
        std::fs::write(dir.path().join("answer"), answer).expect("write answer");
        std::fs::write(dir.path().join("code"), "0").expect("write code");
        let mut perms = std::fs::metadata(&bin).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&bin, perms).expect("chmod");
        Self { dir }
    }
    fn env(&self) -> Vec<(String, String)> {
        let bin = self.dir.path().join("qwen");
        vec![("QWEN_BIN".into(), bin.to_string_lossy().into_owned())]
    }
    fn argv(&self) -> Vec<String> {
        let raw = std::fs::read(self.dir.path().join("argv")).unwrap_or_default();
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
    fn ran(&self) -> bool {
        self.dir.path().join("argv").exists()
    }
    fn key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("key")).unwrap_or_default()
    }
}

pub(super) fn base_url(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}
